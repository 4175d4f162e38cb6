//! Events over Redis pub/sub: "this job changed" (long polls and dashboards wake up), "this
//! attempt was cancelled" (the worker running it stops at once) and "this account changed" (API
//! processes forget its sessions' state). All are hints: a lost message only delays a long poll
//! until its timeout, a cancelled attempt until its next lease renewal, which finds the job
//! cancelled, or an account change until the API's memory of it expires (seconds). PostgreSQL
//! stays the truth.

use std::time::Duration;

use futures::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::db::jobs::Fence;
use crate::keyspace::RedisTarget;
use crate::keyspace::{COMMAND_TIMEOUT, Redis};

const RECONNECT_MIN: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);
/// A subscribed connection receives nothing while nothing happens; pinging it is how a dead
/// connection (a failover, a dropped NAT mapping) is noticed.
const PING_EVERY: Duration = Duration::from_secs(10);

/// Tells long-pollers and dashboards that these jobs changed, in one round trip.
pub async fn jobs_changed(redis: &Redis, ids: &[Uuid]) -> redis::RedisResult<()> {
    let channel = redis.keys().job_events();
    publish(redis, &channel, ids.iter().map(Uuid::to_string)).await
}

/// Tells every API process that these accounts changed (sessions revoked, a new password or
/// role, disabled), so none keeps answering from what it remembered of them.
pub async fn accounts_changed(redis: &Redis, ids: &[Uuid]) -> redis::RedisResult<()> {
    let channel = redis.keys().account_events();
    publish(redis, &channel, ids.iter().map(Uuid::to_string)).await
}

/// Tells the workers that these attempts' jobs were cancelled, in one round trip. The message
/// is `{job id}:{fence}`, so only the attempt that was running stops (not a later one of the
/// same job, after a requeue).
pub async fn attempts_cancelled(redis: &Redis, fences: &[Fence]) -> redis::RedisResult<()> {
    let channel = redis.keys().cancellations();
    let messages = fences.iter().map(|f| format!("{}:{}", f.job, f.token));
    publish(redis, &channel, messages).await
}

/// Publishes each message on `channel`, pipelined.
#[tracing::instrument(skip_all, fields(channel = %channel), err)]
async fn publish(
    redis: &Redis,
    channel: &str,
    messages: impl Iterator<Item = String>,
) -> redis::RedisResult<()> {
    let mut pipe = redis::pipe();
    for message in messages {
        pipe.publish(channel, message).ignore();
    }
    if pipe.is_empty() {
        return Ok(());
    }
    pipe.query_async(&mut redis.connection()).await
}

/// Reads a cancellation message published by [`attempts_cancelled`].
pub fn parse_cancellation(payload: &str) -> Option<Fence> {
    let (job, token) = payload.split_once(':')?;
    Some(Fence {
        job: job.parse().ok()?,
        token: token.parse().ok()?,
    })
}

/// What a subscription does with what it receives.
pub trait Subscriber: Send + 'static {
    /// A message's payload.
    fn message(&mut self, payload: String);
    /// The subscription was lost and is back: whatever was published meanwhile is lost.
    fn resubscribed(&mut self) {}
}

/// [`subscribe`] in a task of its own, waiting as long as `first_wait` for the first
/// subscription (so what is published right after startup is received); whether it stands.
pub async fn subscribe_in_background(
    target: RedisTarget,
    channel: String,
    subscriber: impl Subscriber,
    stop: CancellationToken,
    first_wait: Duration,
) -> bool {
    let (subscribed, first) = oneshot::channel();
    tokio::spawn(subscribe(target, channel, subscriber, stop, subscribed));
    tokio::time::timeout(first_wait, first).await.is_ok()
}

/// Keeps a subscription to `channel` until `stop`, reconnecting with backoff, and passes what
/// arrives to `subscriber`. `subscribed` is told once the first subscription stands. On a
/// cluster, where a message published on any node reaches every node, each try connects to the
/// next of its nodes, so one node down does not stop the events.
pub async fn subscribe(
    target: RedisTarget,
    channel: String,
    mut subscriber: impl Subscriber,
    stop: CancellationToken,
    subscribed: oneshot::Sender<()>,
) {
    let mut first = Some(subscribed);
    let mut backoff = RECONNECT_MIN;
    let nodes = target.subscription_nodes();
    for client in nodes.iter().cycle() {
        match connect(client, &channel).await {
            Ok((sink, stream)) => {
                backoff = RECONNECT_MIN;
                match first.take() {
                    Some(first) => drop(first.send(())),
                    None => subscriber.resubscribed(),
                }
                let lost = relay(sink, stream, &mut subscriber, &stop).await;
                if stop.is_cancelled() {
                    return;
                }
                tracing::warn!(channel, reason = lost, "subscription lost; resubscribing");
            }
            Err(e) => {
                tracing::warn!(
                    channel,
                    error = format!("{e:#}"),
                    retry_in_ms = backoff.as_millis() as u64,
                    "cannot subscribe"
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

async fn connect(
    client: &redis::Client,
    channel: &str,
) -> Result<(PubSubSink, PubSubStream), Box<dyn std::error::Error + Send + Sync>> {
    let connect = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok::<_, redis::RedisError>(pubsub.split())
    };
    Ok(tokio::time::timeout(COMMAND_TIMEOUT, connect).await??)
}

/// Passes messages on until the connection is lost (the reason is returned) or `stop`.
async fn relay(
    mut sink: PubSubSink,
    mut stream: PubSubStream,
    subscriber: &mut impl Subscriber,
    stop: &CancellationToken,
) -> &'static str {
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.reset();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return "stopped",
            message = stream.next() => match message {
                None => return "connection closed",
                Some(message) => match message.get_payload::<String>() {
                    Ok(payload) => subscriber.message(payload),
                    Err(_) => tracing::warn!("ignoring a message that is not text"),
                },
            },
            _ = ping.tick() => {
                let pong = tokio::time::timeout(COMMAND_TIMEOUT, sink.ping::<redis::Value>()).await;
                if !matches!(pong, Ok(Ok(_))) {
                    return "ping failed";
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancellation_names_the_job_and_the_attempt() {
        let fence = Fence {
            job: Uuid::now_v7(),
            token: 42,
        };
        let payload = format!("{}:{}", fence.job, fence.token);
        assert_eq!(parse_cancellation(&payload), Some(fence));
        assert_eq!(parse_cancellation("nonsense"), None);
        assert_eq!(parse_cancellation(&format!("{}:x", fence.job)), None);
    }
}
