//! The attempts a worker process runs, each kept alive by a short lease that one statement
//! renews for all of them on a timer, whatever their progress (so a crashed process's jobs
//! resume elsewhere within one lease). An attempt is told to stop, and stops calling the model
//! at once, when a renewal finds its job cancelled or taken over, when a cancellation message
//! names it, or when shutdown can wait no longer. (Anchors: underway's heartbeat and fencing,
//! BullMQ's lock renewal.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use uuid::Uuid;

use super::Lifecycle;
use crate::db::jobs::Fence;
use crate::events::{self, Subscriber};

/// How soon a renewal that failed (the database away) is tried again.
const RETRY_RENEWAL: Duration = Duration::from_secs(1);

/// How long past its lease a running job is left to its own worker before the reconciler gives
/// it to another: after a database outage longer than the lease, the worker renews within a
/// renewal retry of the database's return; three of them is room enough.
pub const RENEWAL_GRACE: Duration = Duration::from_secs(3);

/// Why a running attempt must stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Its job was cancelled.
    Cancelled,
    /// Its lease was taken over by another attempt (or the job changed under it).
    Superseded,
    /// The worker is shutting down and the grace period is over.
    Shutdown,
}

impl Stop {
    fn label(self) -> &'static str {
        match self {
            Stop::Cancelled => "cancelled",
            Stop::Superseded => "superseded",
            Stop::Shutdown => "shutdown",
        }
    }
}

struct Running {
    fence: Fence,
    token: CancellationToken,
    why: OnceLock<Stop>,
}

impl Running {
    fn stop(&self, why: Stop) {
        if self.why.set(why).is_ok() {
            metrics::counter!("attempts_stopped_total", "reason" => why.label()).increment(1);
            tracing::info!(job.id = %self.fence.job, reason = why.label(), "stopping a running attempt");
        }
        self.token.cancel();
    }
}

/// The running attempts of one worker process. Cheap to clone.
#[derive(Clone)]
pub struct Leases {
    inner: Arc<Inner>,
}

struct Inner {
    life: Lifecycle,
    lease: Duration,
    held: Mutex<HashMap<Uuid, Arc<Running>>>,
    /// Set by [`Leases::stop_all`]: an attempt held later starts stopped.
    closing: AtomicBool,
}

/// One running attempt's lease, held while it runs (dropping it lets go).
pub struct Lease {
    running: Arc<Running>,
    leases: Leases,
}

impl Lease {
    /// Fires when the attempt must stop; wait on it beside every network wait.
    pub fn token(&self) -> &CancellationToken {
        &self.running.token
    }

    pub fn stopped(&self) -> WaitForCancellationFuture<'_> {
        self.running.token.cancelled()
    }

    /// Why the attempt was told to stop, if it was.
    pub fn stop_reason(&self) -> Option<Stop> {
        self.running.why.get().copied()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut held = self.leases.lock();
        if held
            .get(&self.running.fence.job)
            .is_some_and(|r| Arc::ptr_eq(r, &self.running))
        {
            held.remove(&self.running.fence.job);
        }
    }
}

impl Leases {
    /// Leases of `lease` each, renewed through `life`.
    pub fn new(life: Lifecycle, lease: Duration) -> Leases {
        Leases {
            inner: Arc::new(Inner {
                life,
                lease,
                held: Mutex::default(),
                closing: AtomicBool::new(false),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Arc<Running>>> {
        self.inner.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts renewing the lease of the attempt `fence` claimed (its claim set the first one).
    pub fn hold(&self, fence: Fence) -> Lease {
        let running = Arc::new(Running {
            fence,
            token: CancellationToken::new(),
            why: OnceLock::new(),
        });
        self.lock().insert(fence.job, running.clone());
        if self.inner.closing.load(Ordering::SeqCst) {
            running.stop(Stop::Shutdown);
        }
        Lease {
            running,
            leases: self.clone(),
        }
    }

    /// Tells the attempt `fence` to stop, if this process runs it. `true` if it does.
    pub fn stop(&self, fence: Fence, why: Stop) -> bool {
        let running = self.lock().get(&fence.job).cloned();
        match running {
            Some(r) if r.fence == fence => {
                r.stop(why);
                true
            }
            _ => false,
        }
    }

    /// Tells every attempt, and every one held from now on, to stop.
    pub fn stop_all(&self, why: Stop) {
        self.inner.closing.store(true, Ordering::SeqCst);
        let all: Vec<Arc<Running>> = self.lock().values().cloned().collect();
        for running in all {
            running.stop(why);
        }
    }

    /// Renews every lease held, in one statement, and stops the attempts whose job was
    /// cancelled or taken over. Returns how many were renewed.
    #[tracing::instrument(skip_all)]
    pub async fn renew(&self) -> Result<usize, sqlx::Error> {
        let fences: Vec<Fence> = self.lock().values().map(|r| r.fence).collect();
        if fences.is_empty() {
            return Ok(0);
        }
        let renewed = self.inner.life.renew(&fences, self.inner.lease).await?;
        for fence in fences.iter().filter(|f| !renewed.contains(&f.job)) {
            metrics::counter!("leases_lost_total").increment(1);
            self.stop(*fence, Stop::Superseded);
        }
        Ok(renewed.len())
    }

    /// Renews the leases every `every` until `stop`; after a failed renewal (the database
    /// away), every second until one succeeds, so leases are back as soon as it is.
    pub async fn keep(self, every: Duration, stop: CancellationToken) {
        let mut wait = every;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = match self.renew().await {
                Ok(_) => every,
                Err(e) => {
                    tracing::warn!(error = %e, "could not renew leases; trying again");
                    RETRY_RENEWAL.min(every)
                }
            };
        }
    }

    /// Stops the attempts that cancellation messages name, until `stop`: a cancel reaches the
    /// running attempt within a message's latency (and, should messages be lost, at the next
    /// renewal).
    pub async fn listen(self, stop: CancellationToken) {
        let queue = self.inner.life.queue().clone();
        let (subscribed, _) = tokio::sync::oneshot::channel();
        events::subscribe(
            queue.redis().target().clone(),
            queue.redis().keys().cancellations(),
            self,
            stop,
            subscribed,
        )
        .await;
    }
}

/// Waits for `future` unless `stop` fires first (then the future is dropped: a request in
/// flight is abandoned).
pub async fn unless_stopped<T>(
    stop: &CancellationToken,
    future: impl std::future::Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        biased;
        _ = stop.cancelled() => None,
        value = future => Some(value),
    }
}

impl Subscriber for Leases {
    fn message(&mut self, payload: String) {
        match events::parse_cancellation(&payload) {
            Some(fence) => {
                self.stop(fence, Stop::Cancelled);
            }
            None => tracing::warn!("ignoring a cancellation that names no attempt"),
        }
    }
}
