//! Password hashing off the async threads, a bounded number at a time.
//!
//! argon2id takes a core for tens of milliseconds on purpose. Run on the async threads, a burst
//! of logins would stall every other request; run unbounded on the blocking pool, it would take
//! every core. So each hash runs on the blocking pool under a permit, and a request that cannot
//! get a permit soon is told to come back rather than queueing without end.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::error::ApiError;

/// How long a request waits for a hashing permit before it is answered 503 `busy`.
const QUEUE_WAIT: Duration = Duration::from_secs(3);
/// What a `busy` answer suggests: about the time a queue of waiting hashes takes to clear.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Runs CPU-heavy password work under a concurrency bound.
pub struct Hasher {
    permits: Arc<Semaphore>,
}

impl Hasher {
    pub fn new(concurrency: usize) -> Hasher {
        Hasher {
            permits: Arc::new(Semaphore::new(concurrency)),
        }
    }

    /// Runs `work` on the blocking pool once a permit is free.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = tokio::time::timeout(QUEUE_WAIT, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| ApiError::Busy {
                retry_after: RETRY_AFTER,
            })?
            .map_err(|e| ApiError::Internal(e.into()))?;
        // The permit moves into the blocking task: if the client goes away, the hash still runs
        // to its end and must still count against the bound.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|e| ApiError::Internal(e.into()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn no_more_than_the_bound_run_at_once() {
        let hasher = Arc::new(Hasher::new(2));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let runs: Vec<_> = (0..6)
            .map(|_| {
                let (hasher, running, most) = (hasher.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    hasher
                        .run(move || {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(20));
                            running.fetch_sub(1, Ordering::SeqCst);
                        })
                        .await
                })
            })
            .collect();
        for run in runs {
            run.await.unwrap().unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_that_waits_too_long_for_a_permit_is_told_to_come_back() {
        let hasher = Hasher::new(1);
        let _busy = hasher.permits.clone().acquire_owned().await.unwrap();
        match hasher.run(|| ()).await {
            Err(ApiError::Busy { retry_after }) => assert_eq!(retry_after, RETRY_AFTER),
            other => panic!("{other:?}"),
        }
    }
}
