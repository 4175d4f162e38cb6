//! What admins do, once, for the JSON admin API, the HTML dashboard and the `api admin` command:
//! requeue and cancel one job or every job a filter matches (transitions of the job's life,
//! `shared::lifecycle`, with each action recorded in the same transaction), start a weekly batch
//! by hand and requeue its failed jobs, and gather the statistics of the overview. Everything
//! works on the stores alone, so the command needs no running API.

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate, Utc};
use chrono_tz::Tz;
use domain::field_error::FieldError;
use serde::Serialize;
use shared::batch::enqueue::{self, Started};
use shared::llm::circuit::{Circuit, OpenCircuit};
use shared::db::Cursor;
use shared::db::admin::{self, Action, JobFilter, JobStats, Refused};
use shared::db::batch_runs::{self, BatchSummary};
use shared::db::jobs::{JobRow, Target};
use shared::job::JobStatus;
use shared::lifecycle::{Audit, Lifecycle, Progress, no_progress};
use shared::llm::stats::ModelCalls;
use shared::queue::Queue;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::ApiError;
use crate::pagination;

/// The stores admin operations work on.
#[derive(Clone, Copy)]
pub struct Stores<'a> {
    pub db: &'a PgPool,
    pub queue: &'a Queue,
}

impl Stores<'_> {
    /// The job's life over these stores: transitions answer 503 rather than wait out an outage.
    fn life(self) -> Lifecycle {
        Lifecycle::new(self.db.clone(), self.queue.clone())
    }
}

/// Requeues one job that is not running or finished well (see `db::admin::requeue`).
pub async fn requeue_one(
    stores: Stores<'_>,
    admin_id: Uuid,
    job: Uuid,
    reset_attempts: bool,
) -> Result<(), ApiError> {
    let audit = Audit {
        admin_id,
        action: "requeue",
        filter: None,
    };
    let target = Target::Job {
        id: job,
        viewer: None,
    };
    let requeued = stores
        .life()
        .requeue(target, reset_attempts, Some(audit), &no_progress)
        .await?;
    if requeued.is_empty() {
        return Err(refused(stores, job, ApiError::NotRequeueable).await?);
    }
    Ok(())
}

/// A bulk action must name what it acts on: an empty filter would touch every job, and an
/// empty error code names none.
fn require_filter(filter: &JobFilter) -> Result<(), ApiError> {
    if *filter == JobFilter::default() {
        return Err(ApiError::Validation(vec![FieldError::new(
            "filter",
            "empty",
            "give at least one filter: status, error code, user id, batch id, created after or created before",
        )]));
    }
    if filter.error_code.as_deref() == Some("") {
        return Err(ApiError::Validation(vec![FieldError::new(
            "filter.error_code",
            "empty",
            "filter.error_code must not be empty: leave it out instead",
        )]));
    }
    Ok(())
}

/// Requeues every job the filter matches that is not running or finished well; returns how
/// many. An empty filter is refused.
pub async fn requeue_matching(
    stores: Stores<'_>,
    admin_id: Uuid,
    filter: &JobFilter,
    reset_attempts: bool,
    progress: Progress<'_>,
) -> Result<usize, ApiError> {
    require_filter(filter)?;
    let audit = Audit {
        admin_id,
        action: "requeue_matching",
        filter: Some(filter),
    };
    let ids = stores
        .life()
        .requeue(
            Target::Matching(filter),
            reset_attempts,
            Some(audit),
            progress,
        )
        .await?;
    Ok(ids.len())
}

/// Cancels one unfinished job.
pub async fn cancel_one(stores: Stores<'_>, admin_id: Uuid, job: Uuid) -> Result<(), ApiError> {
    let audit = Audit {
        admin_id,
        action: "cancel",
        filter: None,
    };
    let target = Target::Job {
        id: job,
        viewer: None,
    };
    let cancelled = stores.life().cancel(target, Some(audit)).await?;
    if cancelled.is_empty() {
        return Err(refused(stores, job, |_| ApiError::JobFinished).await?);
    }
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
    let audit = Audit {
        admin_id,
        action: "cancel_matching",
        filter: Some(filter),
    };
    let ids = stores
        .life()
        .cancel(Target::Matching(filter), Some(audit))
        .await?;
    Ok(ids.len())
}

/// Why one job was not acted on: not found, or `by_status` of the status it has.
async fn refused(
    stores: Stores<'_>,
    job: Uuid,
    by_status: impl FnOnce(JobStatus) -> ApiError,
) -> Result<ApiError, ApiError> {
    let mut conn = shared::db::hold(stores.db, "admin").await?;
    Ok(match admin::refusal(&mut conn, job).await? {
        Refused::NotFound => ApiError::NotFound("job"),
        Refused::Status(status) => by_status(status),
    })
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

/// How many days before today (in the schedule's zone) a manual batch's period may start: a
/// week missed in the last four can still be made up.
pub const PERIOD_DAYS_BACK: u64 = 28;
/// How many days after today it may start: a year ahead, at most.
pub const PERIOD_DAYS_AHEAD: u64 = 366;

/// The first day of a manual batch's period: `asked`, or tomorrow in `tz` (the schedule's zone)
/// when not given. A day more than [`PERIOD_DAYS_BACK`] before or [`PERIOD_DAYS_AHEAD`] after
/// today there is refused, naming `period_start`.
pub fn batch_period(tz: Tz, asked: Option<NaiveDate>) -> Result<NaiveDate, ApiError> {
    let today = Utc::now().with_timezone(&tz).date_naive();
    let Some(asked) = asked else {
        return Ok(today + Days::new(1));
    };
    let earliest = today - Days::new(PERIOD_DAYS_BACK);
    let latest = today + Days::new(PERIOD_DAYS_AHEAD);
    if (earliest..=latest).contains(&asked) {
        return Ok(asked);
    }
    Err(ApiError::Validation(vec![FieldError::new(
        "period_start",
        "out_of_range",
        format!(
            "period_start must be between {earliest} and {latest} ({PERIOD_DAYS_BACK} days \
             before to {PERIOD_DAYS_AHEAD} days after today in {tz}), got {asked}"
        ),
    )]))
}

/// Starts a manual batch for the seven days from `period_start` (see `enqueue::start_manual`):
/// its run is recorded and a worker's scheduler enqueues it within seconds; the run started
/// earlier for the same period is returned instead of a second one. A new run is recorded in
/// the audit log as `batch_start`, with the batch's id as its filter.
pub async fn start_batch(
    stores: Stores<'_>,
    admin_id: Uuid,
    tz: Tz,
    period_start: NaiveDate,
) -> Result<Started, ApiError> {
    let started = enqueue::start_manual(stores.db, tz, period_start, admin_id).await?;
    if let Started::Created(run) = &started {
        // After the run's own insert (`start_manual` holds its own connection): an outage in
        // between leaves a run without its record, never a record without its run.
        let filter = JobFilter {
            batch_id: Some(run.id),
            ..JobFilter::default()
        };
        let mut conn = shared::db::hold(stores.db, "admin").await?;
        admin::record(&mut conn, admin_id, "batch_start", None, Some(&filter), 0).await?;
    }
    Ok(started)
}

/// One batch run with its jobs by status and their cost.
pub async fn batch(stores: Stores<'_>, id: Uuid) -> Result<BatchSummary, ApiError> {
    let mut conn = shared::db::hold(stores.db, "admin").await?;
    batch_runs::summary(&mut conn, id)
        .await?
        .ok_or(ApiError::NotFound("batch"))
}

/// A keyset page of batch runs, newest first, after `cursor`; and the cursor of the next page,
/// if there is one.
pub async fn batches_page(
    stores: Stores<'_>,
    cursor: Option<Cursor>,
    limit: i64,
) -> Result<(Vec<BatchSummary>, Option<String>), ApiError> {
    let mut conn = shared::db::hold(stores.db, "admin").await?;
    let rows = batch_runs::list(&mut conn, cursor, limit + 1).await?;
    Ok(pagination::split(rows, limit, |batch| Cursor {
        created_at: batch.run.created_at,
        id: batch.run.id,
    }))
}

/// Requeues every failed job of a batch (one more attempt each) through the bulk requeue, so
/// it is recorded as `requeue_matching` with the filter `{batch_id, status: failed}`; returns
/// how many. An unknown batch is `NotFound`.
pub async fn requeue_failed(
    stores: Stores<'_>,
    admin_id: Uuid,
    batch: Uuid,
) -> Result<usize, ApiError> {
    let found = batch_runs::get(&mut *shared::db::hold(stores.db, "admin").await?, batch).await?;
    if found.is_none() {
        return Err(ApiError::NotFound("batch"));
    }
    let filter = JobFilter {
        status: Some(JobStatus::Failed),
        batch_id: Some(batch),
        ..JobFilter::default()
    };
    requeue_matching(stores, admin_id, &filter, false, &no_progress).await
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
