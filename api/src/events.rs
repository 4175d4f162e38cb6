//! Job change events for long polls: one Redis subscription per API process, fanned out to the
//! waiting requests through a broadcast channel.
//!
//! Workers publish a job's id on `Keys::job_events` whenever the job changes. A request that
//! long-polls a job waits for its id here instead of opening a Redis connection of its own, so
//! a thousand waiting clients cost one connection.

use std::time::Duration;

use futures::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use tokio::sync::{broadcast, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Sent to every waiter after the subscription was re-established: events published while it
/// was down are lost, so any job may have changed.
const ANY_JOB: Uuid = Uuid::nil();
/// Events buffered per waiter; one that falls further behind simply re-reads its job.
const CAPACITY: usize = 1024;
const RECONNECT_MIN: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);
/// A subscribed connection receives nothing while no job changes; pinging it is how a dead
/// connection (a failover, a dropped NAT mapping) is noticed.
const PING_EVERY: Duration = Duration::from_secs(10);
/// How long startup waits for the first subscription before serving without it.
const FIRST_SUBSCRIPTION_WAIT: Duration = Duration::from_secs(2);

/// The fan-out end of the subscription.
pub struct JobEvents {
    sender: broadcast::Sender<Uuid>,
}

impl JobEvents {
    /// Subscribes to `channel` in a task of its own that reconnects with backoff until `stop`.
    /// Waits briefly for the first subscription, so events published right after startup reach
    /// the waiters.
    pub async fn start(client: redis::Client, channel: String, stop: CancellationToken) -> Self {
        let (sender, _) = broadcast::channel(CAPACITY);
        let (subscribed, first) = oneshot::channel();
        tokio::spawn(subscribe_until_stopped(
            client,
            channel,
            sender.clone(),
            stop,
            subscribed,
        ));
        if tokio::time::timeout(FIRST_SUBSCRIPTION_WAIT, first)
            .await
            .is_err()
        {
            tracing::warn!("not yet subscribed to job events; long polls wait their full time");
        }
        JobEvents { sender }
    }

    /// Starts listening. Take it before reading the job, so a change between the read and the
    /// wait is not missed.
    pub fn listen(&self) -> Listener {
        Listener(self.sender.subscribe())
    }
}

/// One waiting request's view of the events.
pub struct Listener(broadcast::Receiver<Uuid>);

impl Listener {
    /// Completes when `job` may have changed.
    pub async fn changed(&mut self, job: Uuid) {
        loop {
            match self.0.recv().await {
                Ok(id) if id == job || id == ANY_JOB => return,
                Ok(_) => continue,
                // Lagged: some events were dropped, one of them may have been ours.
                Err(_) => return,
            }
        }
    }
}

async fn subscribe_until_stopped(
    client: redis::Client,
    channel: String,
    sender: broadcast::Sender<Uuid>,
    stop: CancellationToken,
    subscribed: oneshot::Sender<()>,
) {
    let mut first = Some(subscribed);
    let mut backoff = RECONNECT_MIN;
    loop {
        match subscribe(&client, &channel).await {
            Ok((sink, stream)) => {
                backoff = RECONNECT_MIN;
                match first.take() {
                    Some(first) => drop(first.send(())),
                    None => drop(sender.send(ANY_JOB)),
                }
                let lost = relay(sink, stream, &sender, &stop).await;
                if stop.is_cancelled() {
                    return;
                }
                tracing::warn!(reason = lost, "job event subscription lost; resubscribing");
            }
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    retry_in_ms = backoff.as_millis() as u64,
                    "cannot subscribe to job events"
                );
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(RECONNECT_MAX);
    }
}

async fn subscribe(
    client: &redis::Client,
    channel: &str,
) -> anyhow::Result<(PubSubSink, PubSubStream)> {
    let connect = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok::<_, redis::RedisError>(pubsub.split())
    };
    Ok(tokio::time::timeout(shared::queue::COMMAND_TIMEOUT, connect).await??)
}

/// Passes events on until the connection is lost (the reason is returned) or `stop`.
async fn relay(
    mut sink: PubSubSink,
    mut stream: PubSubStream,
    sender: &broadcast::Sender<Uuid>,
    stop: &CancellationToken,
) -> &'static str {
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.reset();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return "stopped",
            message = stream.next() => match message {
                None => return "connection closed",
                Some(message) => {
                    match message.get_payload::<String>().ok().and_then(|p| p.parse().ok()) {
                        // No waiter is no error: the event simply concerns nobody here.
                        Some(id) => drop(sender.send(id)),
                        None => tracing::warn!("ignoring a job event that is not a job id"),
                    }
                }
            },
            _ = ping.tick() => {
                let pong = tokio::time::timeout(shared::queue::COMMAND_TIMEOUT, sink.ping::<redis::Value>()).await;
                if !matches!(pong, Ok(Ok(_))) {
                    return "ping failed";
                }
            }
        }
    }
}
