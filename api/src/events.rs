//! Job change events for long polls and event streams: one Redis subscription per API process,
//! handed to the requests waiting on that job.
//!
//! Workers publish a job's id on `Keys::job_events` whenever the job changes. A request that
//! long-polls a job waits for its id here instead of opening a Redis connection of its own, so
//! a thousand waiting clients cost one connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use shared::events::Subscriber;
use shared::keyspace::RedisTarget;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The fan-out end of the subscription: the requests waiting, by job. An event wakes only the
/// waiters of its job, so ten thousand waiters cost an event no more than its own job's do.
pub struct JobEvents {
    waiters: Arc<Waiters>,
}

/// Per job being waited on, a change counter its waiters watch; the entry goes with its last
/// waiter.
#[derive(Default)]
struct Waiters(Mutex<HashMap<Uuid, watch::Sender<u64>>>);

impl Waiters {
    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, watch::Sender<u64>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(sender: &watch::Sender<u64>) {
        sender.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl JobEvents {
    /// Subscribes to `channel` in a task of its own (that reconnects with backoff) until `stop`.
    /// Waits for the first subscription as long as `first_wait`, so events published right
    /// after startup reach the waiters.
    pub async fn start(
        target: RedisTarget,
        channel: String,
        stop: CancellationToken,
        first_wait: Duration,
    ) -> Self {
        let waiters = Arc::new(Waiters::default());
        let subscriber = FanOut(waiters.clone());
        if !shared::events::subscribe_in_background(target, channel, subscriber, stop, first_wait)
            .await
        {
            tracing::warn!("not yet subscribed to job events; long polls wait their full time");
        }
        JobEvents { waiters }
    }

    /// Starts listening for changes of `job`. Take it before reading the job, so a change
    /// between the read and the wait is not missed.
    pub fn listen(&self, job: Uuid) -> Listener {
        let receiver = self
            .waiters
            .lock()
            .entry(job)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        Listener {
            job,
            receiver,
            waiters: self.waiters.clone(),
        }
    }

    /// Jobs waited on now (each counted once however many wait on it).
    #[cfg(test)]
    fn jobs_waited_on(&self) -> usize {
        self.waiters.lock().len()
    }
}

/// One waiting request's view of its job's events.
pub struct Listener {
    job: Uuid,
    receiver: watch::Receiver<u64>,
    waiters: Arc<Waiters>,
}

impl Listener {
    /// The job listened to.
    pub fn job(&self) -> Uuid {
        self.job
    }

    /// Completes when the job may have changed since the listener was taken or since the last
    /// time this completed.
    pub async fn changed(&mut self) {
        // The sender lives while a receiver does: an error cannot happen, and would mean "look
        // again" anyway.
        drop(self.receiver.changed().await);
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // Under the lock, so no listener can join between the count and the removal; this
        // listener's own receiver is the one left when it is the last.
        let mut waiters = self.waiters.lock();
        if waiters
            .get(&self.job)
            .is_some_and(|sender| sender.receiver_count() == 1)
        {
            waiters.remove(&self.job);
        }
    }
}

/// Hands each job id to that job's waiters.
struct FanOut(Arc<Waiters>);

impl Subscriber for FanOut {
    fn message(&mut self, payload: String) {
        match payload.parse::<Uuid>() {
            // No waiter is no error: the event simply concerns nobody here.
            Ok(id) => {
                if let Some(sender) = self.0.lock().get(&id) {
                    Waiters::bump(sender);
                }
            }
            Err(_) => tracing::warn!("ignoring a job event that is not a job id"),
        }
    }

    /// Events published while the subscription was down are lost: every job waited on may have
    /// changed.
    fn resubscribed(&mut self) {
        for sender in self.0.lock().values() {
            Waiters::bump(sender);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events() -> (JobEvents, FanOut) {
        let waiters = Arc::new(Waiters::default());
        (
            JobEvents {
                waiters: waiters.clone(),
            },
            FanOut(waiters),
        )
    }

    async fn woken(listener: &mut Listener) -> bool {
        tokio::time::timeout(Duration::from_millis(50), listener.changed())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn an_event_wakes_its_jobs_waiters_only_and_none_is_missed() {
        let (events, mut fan_out) = events();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let mut first = events.listen(a);
        let mut second = events.listen(a);
        let mut other = events.listen(b);
        assert_eq!(events.jobs_waited_on(), 2);
        // Published before anyone waits: still seen by the waiters taken earlier.
        fan_out.message(a.to_string());
        assert!(woken(&mut first).await);
        assert!(woken(&mut second).await);
        assert!(
            !woken(&mut other).await,
            "another job's event wakes nobody here"
        );
        assert!(!woken(&mut first).await, "seen once");
        fan_out.message("not a uuid".into());
        fan_out.message(Uuid::now_v7().to_string());
        assert!(!woken(&mut first).await);
        // After a resubscription any job may have changed.
        fan_out.resubscribed();
        assert!(woken(&mut first).await && woken(&mut other).await);
    }

    #[tokio::test]
    async fn a_jobs_entry_goes_with_its_last_waiter() {
        let (events, _fan_out) = events();
        let job = Uuid::now_v7();
        let first = events.listen(job);
        let second = events.listen(job);
        drop(first);
        assert_eq!(events.jobs_waited_on(), 1);
        drop(second);
        assert_eq!(events.jobs_waited_on(), 0);
    }
}
