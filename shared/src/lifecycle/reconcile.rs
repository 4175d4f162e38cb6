//! The reconciler: PostgreSQL says which jobs should be in the queue now; whatever Redis does not
//! hold of them (a push lost while Redis was away, a restart without persistence, a flush) is
//! pushed again. Due queued and retrying jobs, and running jobs whose lease lapsed (their worker
//! died and Redis lost its in-flight list too), are walked a page at a time and pushed with the
//! queue's deduplicating push, so any number of reconcilers may run at once without pushing a
//! job twice; a short lock lets the replicas take turns so they do not repeat each other's work.
//! (Anchors: River's rescuer, Oban's lifeline.)

use std::time::Duration;

use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Lifecycle;
use crate::db::{self, jobs};
use crate::queue::Lane;

/// Jobs read and pushed per round trip.
const PAGE: i64 = 1_000;

/// One pass over every unfinished job. `grace`: how long past its lease a running job is left
/// to its own worker (one that was cut off from the database renews as soon as it is back).
/// The jobs are overdue, so they are pushed ahead of those waiting, the oldest nearest the
/// front (the walk goes from the newest down). Returns how many jobs were pushed (those Redis
/// did not hold).
#[tracing::instrument(skip_all)]
pub async fn reconcile(life: &Lifecycle, grace: Duration) -> Result<usize, Error> {
    let mut before = Uuid::max();
    let mut pushed = 0;
    loop {
        let page = {
            let mut conn = db::hold(life.pool(), "reconcile").await?;
            jobs::due_before(&mut conn, before, grace, PAGE).await?
        };
        let Some((last, _)) = page.last() else {
            break;
        };
        before = *last;
        for lane in [Lane::Interactive, Lane::Batch] {
            let ids = lane.ids_in(&page);
            pushed += life.queue().push_first(lane, &ids).await?;
        }
        if (page.len() as i64) < PAGE {
            break;
        }
    }
    if pushed > 0 {
        metrics::counter!("jobs_reconciled_total").increment(pushed as u64);
        tracing::info!(jobs = pushed, "reconciler queued jobs redis did not hold");
    }
    Ok(pushed)
}

/// Why a pass could not finish; the next one tries again.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Runs a pass every `every` until `stop`, unless another replica made one within that time.
pub async fn run(life: Lifecycle, every: Duration, grace: Duration, stop: CancellationToken) {
    let lock = life.queue().redis().keys().reconciler();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        // The lock outlives the pass by design: it marks "a pass ran within `every`". Held a
        // little less than `every`, so this replica's own next tick is never locked out.
        let turn: redis::RedisResult<Option<String>> = life
            .queue()
            .redis()
            .connection()
            .set_options(
                &lock,
                "1",
                redis::SetOptions::default()
                    .conditional_set(redis::ExistenceCheck::NX)
                    .with_expiration(redis::SetExpiry::PX(every.as_millis() as u64 * 9 / 10)),
            )
            .await;
        match turn {
            Ok(None) => continue,
            Ok(Some(_)) => {}
            // Redis is away: nothing to push into. The pass after it returns does the work.
            Err(e) => {
                tracing::debug!(error = %e, "reconciler: redis unreachable");
                continue;
            }
        }
        if let Err(e) = reconcile(&life, grace).await {
            tracing::warn!(error = %e, "reconciler pass failed; the next one tries again");
        }
    }
}
