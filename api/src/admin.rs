//! What admins do, once, for the JSON admin API, the HTML dashboard and the `api admin` command:
//! requeue and cancel one job or every job a filter matches (recording each action in the same
//! transaction, then pushing requeued ids to the queue), and gather the statistics of the
//! overview. Everything works on the stores alone, so the command needs no running API.

use std::collections::BTreeMap;

use serde::Serialize;
use shared::circuit::{Circuit, OpenCircuit};
use shared::db::Cursor;
use shared::db::admin::{self, Action, JobFilter, JobStats, Refused};
use shared::db::jobs::JobRow;
use shared::llm::stats::ModelCalls;
use shared::queue::Queue;
use shared::request::FieldError;
use sqlx::{Connection, PgPool};
use uuid::Uuid;

use crate::error::ApiError;
use crate::pagination;

/// The stores admin operations work on.
#[derive(Clone, Copy)]
pub struct Stores<'a> {
    pub db: &'a PgPool,
    pub queue: &'a Queue,
}

/// Told how many requeued jobs have been pushed to the queue so far, out of how many.
pub type Progress<'a> = &'a (dyn Fn(usize, usize) + Sync);

/// For callers that do not show progress.
pub fn no_progress(_: usize, _: usize) {}

/// Ids pushed to Redis per round trip when many jobs are requeued at once.
const PUSH_CHUNK: usize = 1_000;

/// Requeues one failed or cancelled job.
pub async fn requeue_one(
    stores: Stores<'_>,
    admin_id: Uuid,
    job: Uuid,
    reset_attempts: bool,
) -> Result<(), ApiError> {
    let mut held = shared::db::hold(stores.db, "admin").await?;
    let mut tx = held.begin().await?;
    admin::requeue_one(&mut tx, job, reset_attempts)
        .await?
        .map_err(|refused| match refused {
            Refused::NotFound => ApiError::NotFound("job"),
            Refused::Status(status) => ApiError::NotRequeueable(status),
        })?;
    admin::record(&mut tx, admin_id, "requeue", Some(job), None, 1).await?;
    tx.commit().await?;
    drop(held);
    push(stores, &[job], &no_progress).await;
    metrics::counter!("jobs_requeued_total").increment(1);
    Ok(())
}

/// A bulk action must name what it acts on: an empty filter would touch every job.
fn require_filter(filter: &JobFilter) -> Result<(), ApiError> {
    if *filter == JobFilter::default() {
        return Err(ApiError::Validation(vec![FieldError::new(
            "filter",
            "empty",
            "give at least one filter: status, error code, user id, batch id, created after or created before",
        )]));
    }
    Ok(())
}

/// Requeues every failed or cancelled job the filter matches; returns how many. An empty
/// filter is refused.
pub async fn requeue_matching(
    stores: Stores<'_>,
    admin_id: Uuid,
    filter: &JobFilter,
    reset_attempts: bool,
    progress: Progress<'_>,
) -> Result<usize, ApiError> {
    require_filter(filter)?;
    let mut held = shared::db::hold(stores.db, "admin").await?;
    let mut tx = held.begin().await?;
    let ids = admin::requeue_matching(&mut tx, filter, reset_attempts).await?;
    admin::record(
        &mut tx,
        admin_id,
        "requeue_matching",
        None,
        Some(filter),
        ids.len(),
    )
    .await?;
    tx.commit().await?;
    drop(held);
    push(stores, &ids, progress).await;
    metrics::counter!("jobs_requeued_total").increment(ids.len() as u64);
    Ok(ids.len())
}

/// Cancels one unfinished job.
pub async fn cancel_one(stores: Stores<'_>, admin_id: Uuid, job: Uuid) -> Result<(), ApiError> {
    let mut held = shared::db::hold(stores.db, "admin").await?;
    let mut tx = held.begin().await?;
    admin::cancel_one(&mut tx, job)
        .await?
        .map_err(|refused| match refused {
            Refused::NotFound => ApiError::NotFound("job"),
            Refused::Status(_) => ApiError::JobFinished,
        })?;
    admin::record(&mut tx, admin_id, "cancel", Some(job), None, 1).await?;
    tx.commit().await?;
    drop(held);
    announce(stores, &[job]).await;
    metrics::counter!("jobs_cancelled_total").increment(1);
    Ok(())
}

/// Cancels every unfinished job the filter matches; returns how many. An empty filter is
/// refused.
pub async fn cancel_matching(
    stores: Stores<'_>,
    admin_id: Uuid,
    filter: &JobFilter,
) -> Result<usize, ApiError> {
    require_filter(filter)?;
    let mut held = shared::db::hold(stores.db, "admin").await?;
    let mut tx = held.begin().await?;
    let ids = admin::cancel_matching(&mut tx, filter).await?;
    admin::record(
        &mut tx,
        admin_id,
        "cancel_matching",
        None,
        Some(filter),
        ids.len(),
    )
    .await?;
    tx.commit().await?;
    drop(held);
    announce(stores, &ids).await;
    metrics::counter!("jobs_cancelled_total").increment(ids.len() as u64);
    Ok(ids.len())
}

/// A keyset page of the jobs `filter` matches, newest first, after `cursor`; and the cursor of
/// the next page, if there is one.
pub async fn jobs_page(
    stores: Stores<'_>,
    filter: &JobFilter,
    cursor: Option<Cursor>,
    limit: i64,
) -> Result<(Vec<JobRow>, Option<String>), ApiError> {
    let mut conn = shared::db::hold(stores.db, "admin").await?;
    let rows = admin::list_jobs(&mut conn, filter, cursor, limit + 1).await?;
    Ok(pagination::split(rows, limit, |job| Cursor {
        created_at: job.created_at,
        id: job.id,
    }))
}

/// A page of the audit log, newest first, before the action with id `before`; and the cursor
/// of the next page (the last action's id), if there is one.
pub async fn actions_page(
    stores: Stores<'_>,
    before: Option<i64>,
    limit: i64,
) -> Result<(Vec<Action>, Option<String>), ApiError> {
    let mut conn = shared::db::hold(stores.db, "admin").await?;
    let mut actions = admin::actions(&mut conn, before, limit + 1).await?;
    if actions.len() as i64 <= limit {
        return Ok((actions, None));
    }
    actions.truncate(limit as usize);
    let next = actions.last().map(|action| action.id.to_string());
    Ok((actions, next))
}

/// Queues requeued jobs. The rows are committed first: if Redis is away, they wait for the
/// reconciler like any job whose push was lost.
async fn push(stores: Stores<'_>, ids: &[Uuid], progress: Progress<'_>) {
    let mut pushed = 0;
    for chunk in ids.chunks(PUSH_CHUNK) {
        if let Err(e) = stores.queue.enqueue_many(chunk).await {
            tracing::error!(error = %e, jobs = chunk.len(), "requeued jobs saved but not queued");
            return;
        }
        pushed += chunk.len();
        progress(pushed, ids.len());
    }
    announce(stores, ids).await;
}

/// Wakes long polls on jobs an admin changed.
async fn announce(stores: Stores<'_>, ids: &[Uuid]) {
    for id in ids {
        if stores.queue.publish_job_event(*id).await.is_err() {
            return;
        }
    }
}

/// The overview: jobs, queue, LLM calls, circuits, budget and database.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Stats {
    pub jobs: JobStats,
    pub queue: QueueStats,
    /// Calls and 429s per model over the last 5 and 60 minutes, across the fleet.
    pub llm: BTreeMap<String, ModelCalls>,
    pub open_circuits: Vec<OpenCircuit>,
    /// The budget the workers run with (`rpm`, `tpm`, `window_ms`), and the share of the
    /// requests-per-minute budget the fleet used over the last 5 minutes.
    pub budget: Option<serde_json::Value>,
    pub budget_in_use: Option<f64>,
    pub database: DatabaseStats,
}

/// Job ids waiting in Redis: ready to be taken, and delayed until a set time (retries,
/// redeliveries).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QueueStats {
    pub ready: u64,
    pub delayed: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DatabaseStats {
    /// Connections of this process's pool in use now, and its size.
    pub pool_in_use: u32,
    pub pool_size: u32,
}

pub async fn stats(stores: Stores<'_>) -> Result<Stats, ApiError> {
    let jobs = admin::stats(&mut *shared::db::hold(stores.db, "admin").await?).await?;
    let queue = QueueStats {
        ready: stores.queue.ready_len().await.map_err(redis_down)?,
        delayed: stores.queue.delayed_len().await.map_err(redis_down)?,
    };
    let llm = shared::llm::stats::read(stores.queue)
        .await
        .map_err(redis_down)?;
    let open_circuits = Circuit::open_circuits(stores.queue)
        .await
        .map_err(redis_down)?;
    let limits: Option<String> = redis::AsyncCommands::get(
        &mut stores.queue.connection(),
        stores.queue.keys().llm_limits(),
    )
    .await
    .map_err(redis_down)?;
    let budget: Option<serde_json::Value> = limits.and_then(|l| serde_json::from_str(&l).ok());
    let rpm = budget
        .as_ref()
        .and_then(|b| b["rpm"].as_f64())
        .filter(|r| *r > 0.0);
    let calls_5m: i64 = llm.values().map(|m| m.calls_5m).sum();
    let size = stores.db.size();
    Ok(Stats {
        jobs,
        queue,
        budget_in_use: rpm.map(|rpm| calls_5m as f64 / (rpm * 5.0)),
        llm,
        open_circuits,
        budget,
        database: DatabaseStats {
            pool_in_use: size - stores.db.num_idle() as u32,
            pool_size: size,
        },
    })
}

fn redis_down(e: redis::RedisError) -> ApiError {
    ApiError::Internal(anyhow::anyhow!("redis: {e}"))
}
