//! What admins do, once, for the JSON admin API, the HTML dashboard and the `api admin` command:
//! read jobs (any person's) with their attempts, requeue and cancel one job or every job a filter
//! matches (transitions of the job's life, `shared::lifecycle`, with each action recorded in the
//! same transaction), read the audit log, start a weekly batch by hand and requeue its failed
//! jobs, read an account with what its jobs cost, change its role or state, and gather the statistics of the overview. Everything works on the stores alone, so the
//! command needs no running API; every operation fails with an [`AdminError`].

use std::collections::{BTreeMap, HashMap};

use chrono::{Days, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use shared::batch::BatchLaneMode;
use shared::batch::enqueue::{self, Started};
use shared::db::Cursor;
use shared::db::admin::{self, Action, Attempt, JobFilter, JobStats, Refused};
use shared::db::batch_runs::{self, BatchSummary};
use shared::db::jobs::{self, JobRow, Target, UsageTotals};
use shared::db::sessions;
use shared::db::users::{self, Role, User};
use shared::job::JobStatus;
use shared::lifecycle::{Audit, Lifecycle, Progress, no_progress};
use shared::llm::circuit::{Circuit, OpenCircuit};
use shared::llm::stats::ModelCalls;
use shared::queue::Queue;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::error::AdminError;
use crate::pagination;

/// The stores admin operations work on.
#[derive(Clone, Copy)]
pub struct Stores<'a> {
    pub db: &'a PgPool,
    pub queue: &'a Queue,
}

impl Stores<'_> {
    /// The job's life over these stores: transitions fail rather than wait out an outage.
    fn life(self) -> Lifecycle {
        Lifecycle::new(self.db.clone(), self.queue.clone())
    }

    /// A pooled connection, for the reads.
    async fn conn(self) -> Result<shared::db::Held, sqlx::Error> {
        shared::db::hold(self.db, "admin").await
    }
}

/// One job, whoever it is for. `NotFound` if there is none.
#[tracing::instrument(skip_all, fields(job_id = %id), err(level = "info"))]
pub async fn job(stores: Stores<'_>, id: Uuid) -> Result<JobRow, AdminError> {
    find_job(&mut *stores.conn().await?, id).await
}

/// One job and every attempt it made, first first. `NotFound` if there is no such job.
#[tracing::instrument(skip_all, fields(job_id = %id), err(level = "info"))]
pub async fn job_with_attempts(
    stores: Stores<'_>,
    id: Uuid,
) -> Result<(JobRow, Vec<Attempt>), AdminError> {
    let mut conn = stores.conn().await?;
    let job = find_job(&mut conn, id).await?;
    Ok((job, admin::attempts(&mut conn, id).await?))
}

async fn find_job(conn: &mut PgConnection, id: Uuid) -> Result<JobRow, AdminError> {
    jobs::get(conn, id)
        .await?
        .ok_or(AdminError::NotFound("job"))
}

/// Requeues one job that is not running or finished well (see `db::admin::requeue`):
/// `NotFound` without such a job, `NotRequeueable` when it is running or succeeded.
#[tracing::instrument(skip_all, fields(admin_id = %admin_id, job_id = %job, reset_attempts = reset_attempts), err(level = "info"))]
pub async fn requeue_one(
    stores: Stores<'_>,
    admin_id: Uuid,
    job: Uuid,
    reset_attempts: bool,
) -> Result<(), AdminError> {
    let audit = Audit {
        admin_id,
        action: "requeue",
        filter: None,
    };
    let requeued = stores
        .life()
        .requeue(one(job), reset_attempts, Some(audit), &no_progress)
        .await?;
    if requeued.is_empty() {
        return Err(refused(stores, job, AdminError::NotRequeueable).await?);
    }
    Ok(())
}

/// Requeues every job the filter matches that is not running or finished well; returns how
/// many. An empty filter is refused (`Invalid`).
#[tracing::instrument(skip_all, fields(admin_id = %admin_id, filter = ?filter, reset_attempts = reset_attempts), err(level = "info"))]
pub async fn requeue_matching(
    stores: Stores<'_>,
    admin_id: Uuid,
    filter: &JobFilter,
    reset_attempts: bool,
    progress: Progress<'_>,
) -> Result<usize, AdminError> {
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

/// Cancels one unfinished job: `NotFound` without such a job, `JobFinished` when it has
/// finished. (The one cancel there is, `Lifecycle::cancel`, also serves owners.)
#[tracing::instrument(skip_all, fields(admin_id = %admin_id, job_id = %job), err(level = "info"))]
pub async fn cancel_one(stores: Stores<'_>, admin_id: Uuid, job: Uuid) -> Result<(), AdminError> {
    let audit = Audit {
        admin_id,
        action: "cancel",
        filter: None,
    };
    let cancelled = stores.life().cancel(one(job), Some(audit)).await?;
    if cancelled.is_empty() {
        return Err(refused(stores, job, |_| AdminError::JobFinished).await?);
    }
    Ok(())
}

/// Cancels every unfinished job the filter matches; returns how many. An empty filter is
/// refused (`Invalid`).
#[tracing::instrument(skip_all, fields(admin_id = %admin_id, filter = ?filter), err(level = "info"))]
pub async fn cancel_matching(
    stores: Stores<'_>,
    admin_id: Uuid,
    filter: &JobFilter,
) -> Result<usize, AdminError> {
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

/// One job, whoever it is for, as a target of a transition.
fn one(id: Uuid) -> Target<'static> {
    Target::Job { id, viewer: None }
}

/// A bulk action must name what it acts on: an empty filter would touch every job, and an
/// empty error code names none.
fn require_filter(filter: &JobFilter) -> Result<(), AdminError> {
    if *filter == JobFilter::default() {
        return Err(AdminError::invalid(
            "filter",
            "empty",
            "give at least one filter: status, error code, user id, batch id, created after or created before",
        ));
    }
    if filter.error_code.as_deref() == Some("") {
        return Err(AdminError::invalid(
            "filter.error_code",
            "empty",
            "filter.error_code must not be empty: leave it out instead",
        ));
    }
    Ok(())
}

/// Why one job was not acted on: not found, or `by_status` of the status it has.
async fn refused(
    stores: Stores<'_>,
    job: Uuid,
    by_status: impl FnOnce(JobStatus) -> AdminError,
) -> Result<AdminError, AdminError> {
    Ok(
        match admin::refusal(&mut *stores.conn().await?, job).await? {
            Refused::NotFound => AdminError::NotFound("job"),
            Refused::Status(status) => by_status(status),
        },
    )
}

/// A keyset page of the jobs `filter` matches, newest first, after `cursor`; and the cursor of
/// the next page, if there is one.
#[tracing::instrument(skip_all, fields(filter = ?filter, limit = limit), err(level = "info"))]
pub async fn jobs_page(
    stores: Stores<'_>,
    filter: &JobFilter,
    cursor: Option<Cursor>,
    limit: i64,
) -> Result<(Vec<JobRow>, Option<String>), AdminError> {
    let rows = admin::list_jobs(&mut *stores.conn().await?, filter, cursor, limit + 1).await?;
    Ok(pagination::split(rows, limit, |job| Cursor {
        created_at: job.created_at,
        id: job.id,
    }))
}

/// A page of the audit log, newest first, before the action with id `before`; and the cursor
/// of the next page (the last action's id), if there is one.
#[tracing::instrument(skip_all, fields(before = ?before, limit = limit), err(level = "info"))]
pub async fn actions_page(
    stores: Stores<'_>,
    before: Option<i64>,
    limit: i64,
) -> Result<(Vec<Action>, Option<String>), AdminError> {
    let mut actions = admin::actions(&mut *stores.conn().await?, before, limit + 1).await?;
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
/// today there is refused (`Invalid`, naming `period_start`).
pub fn batch_period(tz: Tz, asked: Option<NaiveDate>) -> Result<NaiveDate, AdminError> {
    let today = Utc::now().with_timezone(&tz).date_naive();
    let Some(asked) = asked else {
        return Ok(today + Days::new(1));
    };
    let earliest = today - Days::new(PERIOD_DAYS_BACK);
    let latest = today + Days::new(PERIOD_DAYS_AHEAD);
    if (earliest..=latest).contains(&asked) {
        return Ok(asked);
    }
    Err(AdminError::invalid(
        "period_start",
        "out_of_range",
        format!(
            "period_start must be between {earliest} and {latest} ({PERIOD_DAYS_BACK} days \
             before to {PERIOD_DAYS_AHEAD} days after today in {tz}), got {asked}"
        ),
    ))
}

/// Starts a manual batch for the seven days from `period_start`, its jobs on `lane` (see
/// `enqueue::start_manual_in`): its run is recorded and a worker's scheduler enqueues it within
/// seconds; the run started earlier for the same period is returned instead of a second one. A
/// new run is recorded in the audit log as `batch_start`, with the batch's id as its filter.
#[tracing::instrument(skip_all, fields(admin_id = %admin_id, period_start = %period_start, lane = lane.as_str()), err(level = "info"))]
pub async fn start_batch(
    stores: Stores<'_>,
    admin_id: Uuid,
    tz: Tz,
    period_start: NaiveDate,
    lane: BatchLaneMode,
) -> Result<Started, AdminError> {
    let started = enqueue::start_manual_in(stores.db, tz, period_start, admin_id, lane).await?;
    if let Started::Created(run) = &started {
        // After the run's own insert (`start_manual` holds its own connection): an outage in
        // between leaves a run without its record, never a record without its run.
        let filter = JobFilter {
            batch_id: Some(run.id),
            ..JobFilter::default()
        };
        let mut conn = stores.conn().await?;
        admin::record(&mut conn, admin_id, "batch_start", None, Some(&filter), 0).await?;
    }
    Ok(started)
}

/// One batch run with its jobs by status and their cost; `NotFound` if there is none.
#[tracing::instrument(skip_all, fields(batch_id = %id), err(level = "info"))]
pub async fn batch(stores: Stores<'_>, id: Uuid) -> Result<BatchSummary, AdminError> {
    batch_runs::summary(&mut *stores.conn().await?, id)
        .await?
        .ok_or(AdminError::NotFound("batch"))
}

/// A keyset page of batch runs, newest first, after `cursor`; and the cursor of the next page,
/// if there is one.
#[tracing::instrument(skip_all, fields(limit = limit), err(level = "info"))]
pub async fn batches_page(
    stores: Stores<'_>,
    cursor: Option<Cursor>,
    limit: i64,
) -> Result<(Vec<BatchSummary>, Option<String>), AdminError> {
    let rows = batch_runs::list(&mut *stores.conn().await?, cursor, limit + 1).await?;
    Ok(pagination::split(rows, limit, |batch| Cursor {
        created_at: batch.run.created_at,
        id: batch.run.id,
    }))
}

/// Requeues every failed job of a batch (one more attempt each) through the bulk requeue, so
/// it is recorded as `requeue_matching` with the filter `{batch_id, status: failed}`; returns
/// how many. An unknown batch is `NotFound`.
#[tracing::instrument(skip_all, fields(admin_id = %admin_id, batch_id = %batch), err(level = "info"))]
pub async fn requeue_failed(
    stores: Stores<'_>,
    admin_id: Uuid,
    batch: Uuid,
) -> Result<usize, AdminError> {
    if batch_runs::get(&mut *stores.conn().await?, batch)
        .await?
        .is_none()
    {
        return Err(AdminError::NotFound("batch"));
    }
    let filter = JobFilter {
        status: Some(JobStatus::Failed),
        batch_id: Some(batch),
        ..JobFilter::default()
    };
    requeue_matching(stores, admin_id, &filter, false, &no_progress).await
}

/// The emails of the accounts `ids` that exist, by id.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn emails(
    stores: Stores<'_>,
    ids: impl IntoIterator<Item = Uuid>,
) -> Result<HashMap<Uuid, String>, AdminError> {
    let mut conn = stores.conn().await?;
    let mut emails = HashMap::new();
    for id in ids {
        if let Some(user) = users::find_by_id(&mut conn, id).await? {
            emails.insert(id, user.email);
        }
    }
    Ok(emails)
}

/// Account `id` and what the jobs for it (submitted by anyone) have cost. `NotFound` without
/// such an account.
#[tracing::instrument(skip_all, fields(user_id = %id), err(level = "info"))]
pub async fn account(stores: Stores<'_>, id: Uuid) -> Result<(User, UsageTotals), AdminError> {
    let mut conn = stores.conn().await?;
    let user = users::find_by_id(&mut conn, id)
        .await?
        .ok_or(AdminError::NotFound("account"))?;
    Ok((user, jobs::usage_owned(&mut conn, id).await?))
}

/// Changes account `id`'s `role`, or disables (`true`: its sessions end) or re-enables it, in
/// one transaction recorded as `update_account`; returns the account as it is now. Refused
/// (`Invalid`): a change of nothing (`empty_change`), or an admin disabling or demoting their
/// own account (`own_account`); another admin can. `NotFound` without such an account. The API
/// processes are not told here: the caller does that once this has committed.
#[tracing::instrument(skip_all, fields(admin_id = %admin_id, user_id = %id, role = ?role, disabled = ?disabled), err(level = "info"))]
pub async fn update_account(
    stores: Stores<'_>,
    admin_id: Uuid,
    id: Uuid,
    role: Option<Role>,
    disabled: Option<bool>,
) -> Result<User, AdminError> {
    if role.is_none() && disabled.is_none() {
        return Err(AdminError::invalid(
            "",
            "empty_change",
            "give role, disabled or both",
        ));
    }
    if id == admin_id && (disabled == Some(true) || role.is_some_and(|r| r != Role::Admin)) {
        return Err(AdminError::invalid(
            if disabled == Some(true) {
                "disabled"
            } else {
                "role"
            },
            "own_account",
            "an admin cannot disable or demote their own account",
        ));
    }
    let mut tx = stores.db.begin().await?;
    let user = users::update_account(&mut tx, id, role, disabled)
        .await?
        .ok_or(AdminError::NotFound("account"))?;
    if disabled == Some(true) {
        sessions::revoke_all(&mut tx, id, None).await?;
    }
    admin::record(&mut tx, admin_id, "update_account", None, None, 1).await?;
    tx.commit().await?;
    Ok(user)
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

/// The statistics of the overview, from PostgreSQL and Redis; either failing fails them.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn stats(stores: Stores<'_>) -> Result<Stats, AdminError> {
    let jobs = admin::stats(&mut *stores.conn().await?).await?;
    let queue = QueueStats {
        ready: stores.queue.ready_len().await?,
        delayed: stores.queue.delayed_len().await?,
    };
    let redis = stores.queue.redis();
    let llm = shared::llm::stats::read(redis).await?;
    let open_circuits = Circuit::open_circuits(redis).await?;
    let limits: Option<String> =
        redis::AsyncCommands::get(&mut redis.connection(), redis.keys().llm_limits()).await?;
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
