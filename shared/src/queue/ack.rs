//! Acknowledgement: the layer apalis puts around every job, outside the job's own middleware,
//! so it sees the final outcome (after catch-panic) and settles the delivery in Redis.
//!
//! `Ok` removes the id from the worker's in-flight list. `Err` means the job could not be
//! handled at all (PostgreSQL unreachable, a panic): the id goes to the delayed set to be
//! delivered again shortly. Both are retried, since losing the reply of an idempotent command
//! is normal when a connection drops.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Duration;

use apalis_core::task::Task;
use backon::{ExponentialBuilder, Retryable};
use redis::AsyncCommands;
use tower::{Layer, Service};
use uuid::Uuid;

use super::Queue;
use super::backend::InProgress;

/// Removes one occurrence of the id from the in-flight list and schedules it again.
/// KEYS: inflight, delayed. ARGV: id, delay in ms.
static NACK: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        redis.call('LREM', KEYS[1], 1, ARGV[1])
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
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
        let inflight = queue.keys().inflight(worker_id);
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
    async fn settle(&self, id: Uuid, handled: bool) {
        let member = id.to_string();
        let result = if handled {
            (|| async {
                self.queue
                    .connection()
                    .lrem::<_, _, ()>(&self.inflight, 1, &member)
                    .await
            })
            .retry(retry_policy())
            .await
        } else {
            (|| async {
                NACK.key(&self.inflight)
                    .key(self.queue.keys().delayed())
                    .arg(&member)
                    .arg(self.redelivery_delay.as_millis() as u64)
                    .invoke_async::<()>(&mut self.queue.connection())
                    .await
            })
            .retry(retry_policy())
            .await
        };
        if let Err(e) = result {
            tracing::error!(job.id = %id, error = %e, "could not settle a delivery in redis");
        }
        self.in_progress.remove(id);
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
    S: Service<Task<Uuid>>,
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
            acker.settle(id, outcome.is_ok()).await;
            outcome
        })
    }
}
