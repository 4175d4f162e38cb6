//! Generation jobs and their per-day checkpoints.
//!
//! Every write a worker makes is fenced by the attempt number it claimed: a stale attempt (its
//! lease taken over after a crash, or its job cancelled) changes nothing. Each write is a single
//! statement (several tables at once through a data-modifying CTE), so it is atomic without an
//! explicit transaction and holds a connection for one round trip. Each also keeps the attempt's
//! row in `job_attempts` (its cost, and how it ended) through the `tally_attempt` SQL function.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use crate::job::{JobError, JobStatus, Usage};
use crate::menu::{Day, MenuPlan};
use crate::request::GenerationRequest;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRow {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub requested_by: Uuid,
    pub request: Json<GenerationRequest>,
    pub status: JobStatus,
    pub attempts: i32,
    pub max_attempts: i32,
    pub days_total: i32,
    pub days_done: i32,
    pub last_error_code: Option<String>,
    pub last_error_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub menu_id: Option<Uuid>,
    pub llm_calls: i32,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub idempotency_key: Option<String>,
    pub batch_id: Option<Uuid>,
    pub snoozes: i32,
    pub deadline_at: Option<DateTime<Utc>>,
    pub queued_at: DateTime<Utc>,
}

/// A job about to be created.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub owner_id: Uuid,
    pub requested_by: Uuid,
    pub request: GenerationRequest,
    pub max_attempts: i32,
    pub idempotency_key: Option<String>,
    pub batch_id: Option<Uuid>,
}

/// What [`insert`] did.
#[derive(Debug, Clone)]
pub enum Inserted {
    Created(JobRow),
    /// The requester already used this idempotency key: the job it created.
    Existing(JobRow),
}

/// Creates a queued job, or finds the one created earlier with the same idempotency key.
pub async fn insert(conn: &mut PgConnection, job: &NewJob) -> Result<Inserted, sqlx::Error> {
    let created: Option<JobRow> = sqlx::query_as(
        "INSERT INTO generation_jobs
             (id, owner_id, requested_by, request, max_attempts, days_total, idempotency_key, batch_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (requested_by, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
         RETURNING *",
    )
    .bind(Uuid::now_v7())
    .bind(job.owner_id)
    .bind(job.requested_by)
    .bind(Json(&job.request))
    .bind(job.max_attempts)
    .bind(i32::from(job.request.days))
    .bind(&job.idempotency_key)
    .bind(job.batch_id)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = created {
        return Ok(Inserted::Created(row));
    }
    let existing = sqlx::query_as(
        "SELECT * FROM generation_jobs WHERE requested_by = $1 AND idempotency_key = $2",
    )
    .bind(job.requested_by)
    .bind(&job.idempotency_key)
    .fetch_one(conn)
    .await?;
    Ok(Inserted::Existing(existing))
}

pub async fn get(conn: &mut PgConnection, id: Uuid) -> Result<Option<JobRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM generation_jobs WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// The job if `viewer` may see it (its owner, or the owner's coach).
pub async fn get_visible(
    conn: &mut PgConnection,
    id: Uuid,
    viewer: Uuid,
) -> Result<Option<JobRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM generation_jobs WHERE id = $1 AND visible_to(owner_id, $2)")
        .bind(id)
        .bind(viewer)
        .fetch_optional(conn)
        .await
}

/// Cancels a job that has not finished; returns the job as it is afterwards.
pub async fn cancel(
    conn: &mut PgConnection,
    id: Uuid,
    viewer: Uuid,
) -> Result<Option<JobRow>, sqlx::Error> {
    let cancelled: Option<JobRow> = sqlx::query_as(
        "WITH cancelled AS (
             UPDATE generation_jobs
             SET status = 'cancelled', finished_at = now(), updated_at = now(),
                 lease_expires_at = NULL, next_attempt_at = NULL
             WHERE id = $1 AND visible_to(owner_id, $2)
               AND status IN ('queued', 'running', 'retrying')
             RETURNING *),
         -- A running attempt ends here; its worker stops at its next write.
         closed AS (
             UPDATE job_attempts SET ended_at = now(), outcome = 'cancelled'
             WHERE job_id = $1 AND ended_at IS NULL AND EXISTS (SELECT 1 FROM cancelled))
         SELECT * FROM cancelled",
    )
    .bind(id)
    .bind(viewer)
    .fetch_optional(&mut *conn)
    .await?;
    match cancelled {
        Some(row) => Ok(Some(row)),
        None => get_visible(conn, id, viewer).await,
    }
}

/// A job this worker now runs, with the days earlier attempts already finished.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub job: JobRow,
    pub days: Vec<Day>,
}

/// What a delivery of a job id found.
#[derive(Debug, Clone)]
pub enum Claim {
    Claimed(Box<ClaimedJob>),
    /// Not claimable before this time: a retry that is not due, or a live attempt's lease.
    NotBefore(DateTime<Utc>),
    /// Finished, cancelled, or unknown: acknowledge and forget the delivery.
    Gone,
}

/// Takes the job for a new attempt if it is due, or if the attempt running it lost its lease.
pub async fn claim(
    conn: &mut PgConnection,
    id: Uuid,
    worker_id: &str,
    lease: Duration,
    deadline: Duration,
) -> Result<Claim, sqlx::Error> {
    // One round trip: the claim and the days earlier attempts finished.
    let claimed: Option<ClaimedRow> = sqlx::query_as(
        "WITH claimed AS (
             UPDATE generation_jobs
             SET status = 'running', attempts = attempts + 1, worker_id = $2,
                 started_at = coalesce(started_at, now()), next_attempt_at = NULL,
                 deadline_at = coalesce(deadline_at, now() + make_interval(secs => $4)),
                 lease_expires_at = now() + make_interval(secs => $3), updated_at = now()
             WHERE id = $1
               AND ((status IN ('queued', 'retrying')
                     AND coalesce(next_attempt_at, '-infinity') <= now())
                    OR (status = 'running' AND lease_expires_at < now()))
             RETURNING *),
         -- An attempt still open here lost its lease: its worker is gone.
         abandoned AS (
             UPDATE job_attempts SET ended_at = now(), outcome = 'abandoned'
             WHERE job_id = $1 AND ended_at IS NULL AND EXISTS (SELECT 1 FROM claimed)),
         opened AS (
             INSERT INTO job_attempts (job_id, number, worker_id)
             SELECT id, attempts, $2 FROM claimed)
         SELECT claimed.*,
                coalesce((SELECT jsonb_agg(day ORDER BY day_number) FROM job_days
                          WHERE job_id = claimed.id), '[]') AS days
         FROM claimed",
    )
    .bind(id)
    .bind(worker_id)
    .bind(lease.as_secs_f64())
    .bind(deadline.as_secs_f64())
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = claimed {
        return Ok(Claim::Claimed(Box::new(ClaimedJob {
            job: row.job,
            days: row.days.0,
        })));
    }
    type State = (JobStatus, Option<DateTime<Utc>>, Option<DateTime<Utc>>);
    let row: Option<State> = sqlx::query_as(
        "SELECT status, next_attempt_at, lease_expires_at FROM generation_jobs WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(match row {
        Some((JobStatus::Queued | JobStatus::Retrying, Some(at), _)) => Claim::NotBefore(at),
        Some((JobStatus::Running, _, Some(at))) => Claim::NotBefore(at),
        _ => Claim::Gone,
    })
}

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    #[sqlx(flatten)]
    job: JobRow,
    days: Json<Vec<Day>>,
}

/// Saves a validated day, moves progress on and renews the lease, in one statement. `false`:
/// the attempt was fenced out (cancelled or superseded) and nothing was written.
pub async fn save_day(
    conn: &mut PgConnection,
    id: Uuid,
    attempt: i32,
    day: &Day,
    usage: Usage,
    lease: Duration,
) -> Result<bool, sqlx::Error> {
    let saved = sqlx::query(
        "WITH fenced AS (
             UPDATE generation_jobs
             SET days_done = days_done + 1,
                 lease_expires_at = now() + make_interval(secs => $3), updated_at = now(),
                 llm_calls = llm_calls + $4, prompt_tokens = prompt_tokens + $5,
                 completion_tokens = completion_tokens + $6, snoozes = snoozes + $9
             WHERE id = $1 AND attempts = $2 AND status = 'running'
             RETURNING id),
         tallied AS (
             SELECT tally_attempt($1, $2, $4, $5, $6, NULL, NULL, NULL) FROM fenced)
         INSERT INTO job_days (job_id, day_number, day, attempt)
         SELECT id, $7, $8, $2 FROM fenced CROSS JOIN tallied",
    )
    .bind(id)
    .bind(attempt)
    .bind(lease.as_secs_f64())
    .bind(usage.calls)
    .bind(usage.prompt_tokens)
    .bind(usage.completion_tokens)
    .bind(i32::from(day.day_number))
    .bind(Json(day))
    .bind(usage.snoozes)
    .execute(conn)
    .await?;
    Ok(saved.rows_affected() == 1)
}

/// Stores the menu and marks the job succeeded, in one statement. `None`: fenced out, nothing
/// written.
pub async fn complete(
    conn: &mut PgConnection,
    id: Uuid,
    attempt: i32,
    plan: &MenuPlan,
    usage: Usage,
) -> Result<Option<Uuid>, sqlx::Error> {
    let menu_id = Uuid::now_v7();
    let stored = sqlx::query(
        "WITH done AS (
             UPDATE generation_jobs
             SET status = 'succeeded', menu_id = $3, finished_at = now(), updated_at = now(),
                 lease_expires_at = NULL, last_error_code = NULL, last_error_message = NULL,
                 llm_calls = llm_calls + $4, prompt_tokens = prompt_tokens + $5,
                 completion_tokens = completion_tokens + $6, snoozes = snoozes + $8
             WHERE id = $1 AND attempts = $2 AND status = 'running'
             RETURNING id, owner_id, requested_by, request),
         tallied AS (
             SELECT tally_attempt($1, $2, $4, $5, $6, 'succeeded', NULL, NULL) FROM done)
         INSERT INTO menus (id, job_id, owner_id, requested_by, request, plan)
         SELECT $3, id, owner_id, requested_by, request, $7 FROM done CROSS JOIN tallied",
    )
    .bind(id)
    .bind(attempt)
    .bind(menu_id)
    .bind(usage.calls)
    .bind(usage.prompt_tokens)
    .bind(usage.completion_tokens)
    .bind(Json(plan))
    .bind(usage.snoozes)
    .execute(conn)
    .await?;
    Ok((stored.rows_affected() == 1).then_some(menu_id))
}

/// Ends an attempt that failed: `retry_at` schedules another attempt, `None` fails the job.
/// Returns the job's new status, or `None` if the attempt was fenced out.
pub async fn fail_attempt(
    conn: &mut PgConnection,
    id: Uuid,
    attempt: i32,
    error: &JobError,
    retry_at: Option<DateTime<Utc>>,
    usage: Usage,
) -> Result<Option<JobStatus>, sqlx::Error> {
    sqlx::query_scalar(
        "WITH failed AS (
             UPDATE generation_jobs
             SET status = CASE WHEN $5::timestamptz IS NULL THEN 'failed' ELSE 'retrying' END::job_status,
                 next_attempt_at = $5, queued_at = coalesce($5, queued_at),
                 finished_at = CASE WHEN $5::timestamptz IS NULL THEN now() END,
                 last_error_code = $3, last_error_message = $4, lease_expires_at = NULL,
                 updated_at = now(), llm_calls = llm_calls + $6, prompt_tokens = prompt_tokens + $7,
                 completion_tokens = completion_tokens + $8, snoozes = snoozes + $9
             WHERE id = $1 AND attempts = $2 AND status = 'running'
             RETURNING status),
         tallied AS (
             SELECT tally_attempt($1, $2, $6, $7, $8,
                 CASE WHEN $5::timestamptz IS NULL THEN 'failed' ELSE 'retrying' END, $3, $4)
             FROM failed)
         SELECT status FROM failed CROSS JOIN tallied",
    )
    .bind(id)
    .bind(attempt)
    .bind(&error.code)
    .bind(&error.message)
    .bind(retry_at)
    .bind(usage.calls)
    .bind(usage.prompt_tokens)
    .bind(usage.completion_tokens)
    .bind(usage.snoozes)
    .fetch_optional(conn)
    .await
}

/// Adds the cost of calls made by an attempt that was fenced out (its job cancelled, or taken
/// over), and ends the attempt's row.
pub async fn add_usage(
    conn: &mut PgConnection,
    id: Uuid,
    attempt: i32,
    usage: Usage,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH job AS (
             UPDATE generation_jobs SET llm_calls = llm_calls + $3, prompt_tokens = prompt_tokens + $4,
                 completion_tokens = completion_tokens + $5, snoozes = snoozes + $6
             WHERE id = $1
             RETURNING status)
         SELECT tally_attempt($1, $2, $3, $4, $5,
             CASE WHEN status = 'cancelled' THEN 'cancelled' ELSE 'superseded' END, NULL, NULL)
         FROM job",
    )
    .bind(id)
    .bind(attempt)
    .bind(usage.calls)
    .bind(usage.prompt_tokens)
    .bind(usage.completion_tokens)
    .bind(usage.snoozes)
    .execute(conn)
    .await?;
    Ok(())
}

/// Why an attempt was given back without being counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// The provider made the job wait (a rate limit beyond what a worker sleeps through, the
    /// budget's horizon, or an open circuit when `outage`).
    Snoozed { until: DateTime<Utc>, outage: bool },
    /// Its worker is shutting down: claimable again at once.
    HandedBack,
}

/// Gives an unfinished attempt back without counting it. A provider outage pushes the job's
/// deadline back by the wait, since it is not the job's doing. `false`: fenced out, nothing
/// changed.
pub async fn release(
    conn: &mut PgConnection,
    id: Uuid,
    attempt: i32,
    why: Release,
    usage: Usage,
) -> Result<bool, sqlx::Error> {
    let (not_before, outage, outcome) = match why {
        Release::Snoozed { until, outage } => (Some(until), outage, "snoozed"),
        Release::HandedBack => (None, false, "handed_back"),
    };
    Ok(sqlx::query(
        "WITH released AS (
             UPDATE generation_jobs
             SET status = CASE WHEN attempts > 1 THEN 'retrying' ELSE 'queued' END::job_status,
                 attempts = attempts - 1, lease_expires_at = NULL, next_attempt_at = $3,
                 queued_at = coalesce($3, now()),
                 deadline_at = CASE WHEN $4 THEN deadline_at + greatest($3 - now(), '0'::interval)
                                    ELSE deadline_at END,
                 updated_at = now(), llm_calls = llm_calls + $5, prompt_tokens = prompt_tokens + $6,
                 completion_tokens = completion_tokens + $7, snoozes = snoozes + $8
             WHERE id = $1 AND attempts = $2 AND status = 'running'
             RETURNING id)
         SELECT tally_attempt($1, $2, $5, $6, $7, $9, NULL, NULL) FROM released",
    )
    .bind(id)
    .bind(attempt)
    .bind(not_before)
    .bind(outage)
    .bind(usage.calls)
    .bind(usage.prompt_tokens)
    .bind(usage.completion_tokens)
    .bind(usage.snoozes)
    .bind(outcome)
    .fetch_all(conn)
    .await?
    .len()
        == 1)
}

/// What a person's requests have cost so far, over every job they submitted.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow, serde::Serialize, utoipa::ToSchema,
)]
pub struct UsageTotals {
    pub jobs: i64,
    pub llm_calls: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
}

pub async fn usage_of(
    conn: &mut PgConnection,
    requested_by: Uuid,
) -> Result<UsageTotals, sqlx::Error> {
    sqlx::query_as(
        "SELECT count(*) AS jobs, coalesce(sum(llm_calls), 0)::bigint AS llm_calls,
                coalesce(sum(prompt_tokens), 0)::bigint AS prompt_tokens,
                coalesce(sum(completion_tokens), 0)::bigint AS completion_tokens
         FROM generation_jobs WHERE requested_by = $1",
    )
    .bind(requested_by)
    .fetch_one(conn)
    .await
}
