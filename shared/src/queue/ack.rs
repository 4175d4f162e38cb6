//! Acknowledgement: the layer apalis puts around every job, outside the job's own middleware,
//! so it sees the final outcome (after catch-panic) and settles the delivery in Redis.
//!
//! The job's handler says what becomes of the delivery ([`Settle`]): done with, due again at a
//! time (a retry, a snooze, a live attempt's lease), or due again now (handed back). `Err` means
//! the job could not be handled at all (a panic, a store unreachable for too long): the id is
//! delivered again shortly. Each settlement is one script, so the id leaves the in-flight list
//! and lands where it goes next atomically; it is retried, since losing the reply of an
//! idempotent command is normal when a connection drops.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Duration;

use apalis_core::task::Task;
use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, Utc};
use tower::{Layer, Service};
use uuid::Uuid;

use super::Queue;
use super::backend::InProgress;

/// What becomes of a delivery once its job was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Nothing more to do for this job in the queue (finished, failed for good, or gone).
    Done,
    /// Deliver it again at this time.
    At(DateTime<Utc>),
    /// Deliver it again now, before the jobs waiting (handed back at shutdown).
    Now,
    /// This delivery is stale: another attempt holds the job, so its place in the queue (and
    /// its lane) is left as it is.
    Stale,
}

/// Removes one occurrence of the id from the in-flight list and puts it where it goes next:
/// `now` to the consuming end of its lane's ready list. KEYS: inflight, delayed, ready,
/// ready:batch, members. ARGV: id, how (`done`, `at`, `now`, `again`, `stale`), for `at` the time (unix
/// ms) and for `again` the delay (ms, from the server's clock), and the lane's code (kept if
/// Redis lost the id's entry).
static SETTLE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local id, how = ARGV[1], ARGV[2]
        redis.call('LREM', KEYS[1], 1, id)
        if how == 'stale' then return 1 end
        if how == 'done' then
            redis.call('HDEL', KEYS[5], id)
            return 1
        end
        redis.call('HSETNX', KEYS[5], id, ARGV[4])
        if how == 'now' then
            local batch = redis.call('HGET', KEYS[5], id) == 'b'
            redis.call('RPUSH', batch and KEYS[4] or KEYS[3], id)
        elseif how == 'at' then
            redis.call('ZADD', KEYS[2], tonumber(ARGV[3]), id)
        else
            local t = redis.call('TIME')
            local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
            redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), id)
        end
        return 1",
    )
});

/// Settles deliveries for one worker.
#[derive(Clone)]
pub struct AckLayer {
    acker: Arc<Acker>,
}

struct Acker {
    queue: Queue,
    inflight: String,
    in_progress: Arc<InProgress>,
    redelivery_delay: Duration,
}

impl AckLayer {
    pub fn new(
        queue: Queue,
        worker_id: &str,
        in_progress: Arc<InProgress>,
        redelivery_delay: Duration,
    ) -> Self {
        let inflight = queue.redis().keys().inflight(worker_id);
        AckLayer {
            acker: Arc::new(Acker {
                queue,
                inflight,
                in_progress,
                redelivery_delay,
            }),
        }
    }
}

fn retry_policy() -> ExponentialBuilder {
    // About 30 s in all; after that the id stays in flight and goes back at shutdown (or by the
    // reaper), where the next claim sees the job is finished and skips it.
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(5))
        .with_max_times(10)
        .with_jitter()
}

impl Acker {
    /// Settles a delivery as its handler said; `None`: it could not be handled at all.
    async fn settle(&self, id: Uuid, settle: Option<Settle>) {
        // Forgotten first: a heartbeat that restores lost in-flight ids must not put back one
        // being settled; and should the settlement fail, the id left in flight is redelivered
        // as an orphan when the connection is back.
        let lane = self.in_progress.remove(id);
        let member = id.to_string();
        let (how, arg) = match settle {
            Some(Settle::Done) => ("done", 0),
            Some(Settle::Now) => ("now", 0),
            Some(Settle::Stale) => ("stale", 0),
            Some(Settle::At(at)) => ("at", at.timestamp_millis()),
            None => ("again", self.redelivery_delay.as_millis() as i64),
        };
        let keys = self.queue.redis().keys();
        let result = (|| async {
            SETTLE
                .key(&self.inflight)
                .key(keys.delayed())
                .key(keys.ready())
                .key(keys.ready_batch())
                .key(keys.members())
                .arg(&member)
                .arg(how)
                .arg(arg)
                .arg(lane.code())
                .invoke_async::<()>(&mut self.queue.redis().connection())
                .await
        })
        .retry(retry_policy())
        .await;
        if let Err(e) = result {
            tracing::error!(job.id = %id, error = %e, "could not settle a delivery in redis");
        }
    }
}

impl<S> Layer<S> for AckLayer {
    type Service = AckService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AckService {
            inner,
            acker: self.acker.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AckService<S> {
    inner: S,
    acker: Arc<Acker>,
}

impl<S> Service<Task<Uuid>> for AckService<S>
where
    S: Service<Task<Uuid>, Response = Settle>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, task: Task<Uuid>) -> Self::Future {
        let id = task.args;
        let job = self.inner.call(task);
        let acker = self.acker.clone();
        Box::pin(async move {
            let outcome = job.await;
            acker.settle(id, outcome.as_ref().ok().copied()).await;
            outcome
        })
    }
}
