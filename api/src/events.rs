//! Job change events for long polls: one Redis subscription per API process, fanned out to the
//! waiting requests through a broadcast channel.
//!
//! Workers publish a job's id on `Keys::job_events` whenever the job changes. A request that
//! long-polls a job waits for its id here instead of opening a Redis connection of its own, so
//! a thousand waiting clients cost one connection.

use std::time::Duration;

use shared::events::Subscriber;
use tokio::sync::{broadcast, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Sent to every waiter after the subscription was re-established: events published while it
/// was down are lost, so any job may have changed.
const ANY_JOB: Uuid = Uuid::nil();
/// Events buffered per waiter; one that falls further behind simply re-reads its job.
const CAPACITY: usize = 1024;
/// How long startup waits for the first subscription before serving without it.
const FIRST_SUBSCRIPTION_WAIT: Duration = Duration::from_secs(2);

/// The fan-out end of the subscription.
pub struct JobEvents {
    sender: broadcast::Sender<Uuid>,
}

impl JobEvents {
    /// Subscribes to `channel` in a task of its own (that reconnects with backoff) until `stop`.
    /// Waits briefly for the first subscription, so events published right after startup reach
    /// the waiters.
    pub async fn start(client: redis::Client, channel: String, stop: CancellationToken) -> Self {
        let (sender, _) = broadcast::channel(CAPACITY);
        let (subscribed, first) = oneshot::channel();
        tokio::spawn(shared::events::subscribe(
            client,
            channel,
            FanOut(sender.clone()),
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

/// Fans each job id out to the waiters.
struct FanOut(broadcast::Sender<Uuid>);

impl Subscriber for FanOut {
    fn message(&mut self, payload: String) {
        match payload.parse() {
            // No waiter is no error: the event simply concerns nobody here.
            Ok(id) => drop(self.0.send(id)),
            Err(_) => tracing::warn!("ignoring a job event that is not a job id"),
        }
    }

    fn resubscribed(&mut self) {
        drop(self.0.send(ANY_JOB));
    }
}
