//! Provider batches (`provider_batches`): the batch lane's record of each batch it submits to
//! a provider's Batch API, and the statements that move provider-lane jobs in and out of one.
//!
//! A batch is written, with its jobs assigned, before anything is sent to the provider
//! ([`create`], in the gathering transaction); the provider's ids are stored as soon as they are
//! known. One worker drives a batch at a time, under a lease ([`take`]); every write of the
//! batch is fenced by the lease's owner, so a worker whose lease lapsed and was taken over
//! changes nothing. Collecting a job ([`collect_jobs`]) is fenced by the job still waiting on
//! this batch, so collecting twice (after a crash) saves nothing twice.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use crate::job::{JobStatus, Usage};
use domain::request::GenerationRequest;

/// Where a provider batch is (`provider_batches.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchStatus {
    /// Jobs assigned; the input file or the provider's batch is not made yet.
    Preparing,
    /// The provider's batch exists (`provider_batch_id`) and runs.
    Submitted,
    /// The provider's batch reached a final status; its answers are not all collected yet.
    Finished,
    /// Every job's answer was saved, and each job sent on to the normal lane.
    Collected,
}

impl BatchStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BatchStatus::Preparing => "preparing",
            BatchStatus::Submitted => "submitted",
            BatchStatus::Finished => "finished",
            BatchStatus::Collected => "collected",
        }
    }

    /// The status `provider_batches.status` names; `None` for a value the schema does not
    /// allow.
    pub fn parse(value: &str) -> Option<BatchStatus> {
        [
            BatchStatus::Preparing,
            BatchStatus::Submitted,
            BatchStatus::Finished,
            BatchStatus::Collected,
        ]
        .into_iter()
        .find(|s| s.as_str() == value)
    }
}

/// A `provider_batches` row (see the migration `20261130000003_batch_lane.sql` for each column).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProviderBatch {
    pub id: Uuid,
    pub endpoint: String,
    pub model: String,
    /// A [`BatchStatus`], as written.
    pub status: String,
    pub provider_status: Option<String>,
    pub input_file_id: Option<String>,
    pub provider_batch_id: Option<String>,
    pub output_file_id: Option<String>,
    pub error_file_id: Option<String>,
    pub requests: i32,
    pub bytes: i64,
    pub prompt_tokens: i64,
    pub completed: i32,
    pub failed: i32,
    pub expired: i32,
    pub cost_micros: i64,
    pub saved_micros: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub collected_at: Option<DateTime<Utc>>,
}

impl ProviderBatch {
    /// The row's status; `Preparing` for a value the schema does not allow (never written).
    pub fn status(&self) -> BatchStatus {
        BatchStatus::parse(&self.status).unwrap_or(BatchStatus::Preparing)
    }
}

/// A provider-lane job as the batch lane reads it: enough to write its request line.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LaneJob {
    pub id: Uuid,
    pub status: JobStatus,
    pub request: Json<GenerationRequest>,
}

/// Makes the gathering transactions of one endpoint and model wait for each other, to the end
/// of the calling transaction: the provider's limit on enqueued tokens is per model, so two
/// workers must not both count the same room.
#[tracing::instrument(skip_all, fields(endpoint = endpoint, llm.model = model), err(level = "warn"))]
pub async fn lock_gathering(
    conn: &mut PgConnection,
    endpoint: &str,
    model: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 2026113003))")
        .bind(endpoint)
        .bind(model)
        .execute(conn)
        .await?;
    Ok(())
}

/// Prompt tokens of the batches of `endpoint` and `model` the provider still holds or will
/// (preparing or submitted): what counts against its limit on enqueued tokens.
#[tracing::instrument(skip_all, fields(endpoint = endpoint, llm.model = model), err(level = "warn"))]
pub async fn enqueued_tokens(
    conn: &mut PgConnection,
    endpoint: &str,
    model: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT coalesce(sum(prompt_tokens), 0)::bigint FROM provider_batches
         WHERE endpoint = $1 AND model = $2 AND status IN ('preparing', 'submitted')",
    )
    .bind(endpoint)
    .bind(model)
    .fetch_one(conn)
    .await
}

/// Up to `limit` provider-lane jobs not yet in a provider batch, oldest first, of runs already
/// enqueued, whose request asks for one of `tiers` (`standard`, `premium`: the tiers the
/// endpoint serves with one model). Read without a lock: [`lock_waiting`] takes those still
/// waiting in the gathering transaction.
#[tracing::instrument(skip_all, fields(limit = limit), err(level = "warn"))]
pub async fn waiting(
    conn: &mut PgConnection,
    tiers: &[&str],
    limit: i64,
) -> Result<Vec<LaneJob>, sqlx::Error> {
    sqlx::query_as(
        "SELECT g.id, g.status, g.request FROM generation_jobs g
         WHERE g.provider_lane AND g.provider_batch_id IS NULL AND g.status = 'queued'
           AND coalesce(g.request->>'model', 'standard') = ANY($1)
           AND EXISTS (SELECT 1 FROM batch_runs r WHERE r.id = g.batch_id AND r.status = 'enqueued')
         ORDER BY g.id
         LIMIT $2",
    )
    .bind(tiers)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Those of `ids` still waiting to be gathered (provider lane, queued, in no provider batch),
/// locked to the end of the calling transaction; a job another gathering holds is passed over
/// (`FOR UPDATE SKIP LOCKED`).
#[tracing::instrument(skip_all, fields(jobs = ids.len()), err(level = "warn"))]
pub async fn lock_waiting(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM generation_jobs
         WHERE id = ANY($1) AND provider_lane AND provider_batch_id IS NULL AND status = 'queued'
         FOR UPDATE SKIP LOCKED",
    )
    .bind(ids)
    .fetch_all(conn)
    .await
}

/// A provider batch about to be recorded (see [`create`]).
#[derive(Debug, Clone)]
pub struct NewBatch<'a> {
    pub endpoint: &'a str,
    pub model: &'a str,
    /// Its input file: lines, bytes, and the prompt tokens its lines will be billed.
    pub requests: i32,
    pub bytes: i64,
    pub prompt_tokens: i64,
    /// The worker that will drive it, and for how long from now.
    pub owner: &'a str,
    pub lease: Duration,
}

/// Records a provider batch (status `preparing`, leased to `batch.owner`) and assigns `jobs`
/// to it, in the gathering transaction (after [`lock_waiting`] locked them). Returns the row.
#[tracing::instrument(skip_all, fields(jobs = jobs.len()), err(level = "warn"))]
pub async fn create(
    conn: &mut PgConnection,
    batch: &NewBatch<'_>,
    jobs: &[Uuid],
) -> Result<ProviderBatch, sqlx::Error> {
    let row: ProviderBatch = sqlx::query_as(
        "INSERT INTO provider_batches
             (id, endpoint, model, requests, bytes, prompt_tokens, lease_owner, lease_expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8))
         RETURNING *",
    )
    .bind(Uuid::now_v7())
    .bind(batch.endpoint)
    .bind(batch.model)
    .bind(batch.requests)
    .bind(batch.bytes)
    .bind(batch.prompt_tokens)
    .bind(batch.owner)
    .bind(batch.lease.as_secs_f64())
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE generation_jobs SET provider_batch_id = $1, updated_at = now()
         WHERE id = ANY($2)",
    )
    .bind(row.id)
    .bind(jobs)
    .execute(conn)
    .await?;
    Ok(row)
}

/// Takes (or renews) the lease of up to `limit` batches not collected yet whose lease is free,
/// lapsed, or `owner`'s already, oldest first, for `lease` from now. Returns them.
#[tracing::instrument(skip_all, fields(limit = limit), err(level = "warn"))]
pub async fn take(
    conn: &mut PgConnection,
    owner: &str,
    lease: Duration,
    limit: i64,
) -> Result<Vec<ProviderBatch>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE provider_batches
         SET lease_owner = $1, lease_expires_at = now() + make_interval(secs => $2)
         WHERE id IN (
             SELECT id FROM provider_batches
             WHERE status <> 'collected'
               AND (lease_owner = $1 OR lease_expires_at IS NULL OR lease_expires_at < now())
             ORDER BY created_at, id
             LIMIT $3
             FOR UPDATE SKIP LOCKED)
         RETURNING *",
    )
    .bind(owner)
    .bind(lease.as_secs_f64())
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Extends `owner`'s lease on the batch for `lease` from now; `false`: another worker took it
/// over (or it is collected), and this one must stop driving it.
#[tracing::instrument(skip_all, fields(provider_batch = %id), err(level = "warn"))]
pub async fn renew(
    conn: &mut PgConnection,
    id: Uuid,
    owner: &str,
    lease: Duration,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE provider_batches SET lease_expires_at = now() + make_interval(secs => $3)
         WHERE id = $1 AND lease_owner = $2 AND status <> 'collected'",
    )
    .bind(id)
    .bind(owner)
    .bind(lease.as_secs_f64())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Lets go of every lease `owner` holds (a worker shutting down), so that another worker
/// takes its batches over at once rather than when the leases lapse. Returns how many.
#[tracing::instrument(skip_all, err(level = "warn"))]
pub async fn release(conn: &mut PgConnection, owner: &str) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE provider_batches SET lease_expires_at = NULL
         WHERE lease_owner = $1 AND status <> 'collected' AND lease_expires_at IS NOT NULL",
    )
    .bind(owner)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// The jobs still on the batch's provider lane (not collected), by id, whatever their status:
/// the queued ones are the lines of its input file; a cancelled one leaves the lane when the
/// batch is collected.
#[tracing::instrument(skip_all, fields(provider_batch = %id), err(level = "warn"))]
pub async fn jobs_of(conn: &mut PgConnection, id: Uuid) -> Result<Vec<LaneJob>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, status, request FROM generation_jobs
         WHERE provider_lane AND provider_batch_id = $1
         ORDER BY id",
    )
    .bind(id)
    .fetch_all(conn)
    .await
}

/// Stores the uploaded input file's id, under `owner`'s lease. `false`: fenced out.
#[tracing::instrument(skip_all, fields(provider_batch = %id), err(level = "warn"))]
pub async fn set_input_file(
    conn: &mut PgConnection,
    id: Uuid,
    owner: &str,
    file_id: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE provider_batches SET input_file_id = $3
         WHERE id = $1 AND lease_owner = $2 AND status = 'preparing'",
    )
    .bind(id)
    .bind(owner)
    .bind(file_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Stores the provider's batch id (and the status it answered with): the batch is `submitted`.
/// Fenced by `owner`'s lease; `false`: fenced out.
#[tracing::instrument(skip_all, fields(provider_batch = %id), err(level = "warn"))]
pub async fn submitted(
    conn: &mut PgConnection,
    id: Uuid,
    owner: &str,
    provider_batch_id: &str,
    provider_status: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE provider_batches
         SET status = 'submitted', provider_batch_id = $3, provider_status = $4,
             submitted_at = now()
         WHERE id = $1 AND lease_owner = $2 AND status = 'preparing'",
    )
    .bind(id)
    .bind(owner)
    .bind(provider_batch_id)
    .bind(provider_status)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// What the provider said of a batch when last asked.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    pub provider_status: &'a str,
    /// Lines answered and failed so far (`request_counts`).
    pub completed: i64,
    pub failed: i64,
}

/// Records the provider's status of a submitted batch, under `owner`'s lease. `false`: fenced
/// out.
#[tracing::instrument(skip_all, fields(provider_batch = %id), err(level = "warn"))]
pub async fn seen(
    conn: &mut PgConnection,
    id: Uuid,
    owner: &str,
    seen: Seen<'_>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE provider_batches
         SET provider_status = $3, completed = $4, failed = $5
         WHERE id = $1 AND lease_owner = $2 AND status = 'submitted'",
    )
    .bind(id)
    .bind(owner)
    .bind(seen.provider_status)
    .bind(i32::try_from(seen.completed).unwrap_or(i32::MAX))
    .bind(i32::try_from(seen.failed).unwrap_or(i32::MAX))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records that the batch reached a final `provider_status` (or was refused before it ran),
/// with its output and error files: the batch is `finished`, its answers to collect. Fenced by
/// `owner`'s lease; `false`: fenced out.
#[tracing::instrument(skip_all, fields(provider_batch = %id), err(level = "warn"))]
pub async fn finished(
    conn: &mut PgConnection,
    id: Uuid,
    owner: &str,
    provider_status: &str,
    output_file_id: Option<&str>,
    error_file_id: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE provider_batches
         SET status = 'finished', provider_status = $3, output_file_id = $4, error_file_id = $5,
             finished_at = now()
         WHERE id = $1 AND lease_owner = $2 AND status IN ('preparing', 'submitted')",
    )
    .bind(id)
    .bind(owner)
    .bind(provider_status)
    .bind(output_file_id)
    .bind(error_file_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// What a job gets from its provider batch (see [`collect_jobs`]).
#[derive(Debug, Clone)]
pub struct JobCollection {
    pub job_id: Uuid,
    /// The accepted days: number and the day as JSON, saved as attempt 0's.
    pub days: Vec<(i32, String)>,
    /// Why each refused day was refused, by day number.
    pub problems: BTreeMap<String, Vec<String>>,
    /// What its line cost (at the batch price); nothing for a line that never ran.
    pub usage: Usage,
}

/// A job [`collect_jobs`] sent on: its id, status and weekly batch run (its queue lane).
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct Collected {
    pub id: Uuid,
    pub status: JobStatus,
    pub batch_id: Option<Uuid>,
}

/// Collects jobs of the provider batch `batch` in one statement, each on its own fence: a job
/// still waiting on this batch gets its accepted days (attempt 0), its days' problems and its
/// usage, and leaves the provider lane (a queued job is then the normal lane's: the caller
/// pushes it). A job no longer waiting on it (collected before) is left alone. Returns the jobs
/// collected now.
#[tracing::instrument(skip_all, fields(provider_batch = %batch, jobs = jobs.len()), err(level = "warn"))]
pub async fn collect_jobs(
    conn: &mut PgConnection,
    batch: Uuid,
    jobs: &[JobCollection],
) -> Result<Vec<Collected>, sqlx::Error> {
    let problems = jobs
        .iter()
        .map(|j| super::jobs::to_json(&j.problems))
        .collect::<Result<Vec<String>, _>>()?;
    let days = || jobs.iter().flat_map(|j| j.days.iter().map(move |d| (j, d)));
    sqlx::query_as(
        "WITH input AS (
             SELECT * FROM unnest($2::uuid[], $3::text[], $4::int[], $5::int[], $6::bigint[],
                                  $7::bigint[], $8::bigint[], $9::bigint[])
                 AS i (job_id, problems, days, calls, prompt, completion, cost, saved)),
         collected AS (
             UPDATE generation_jobs g
             SET provider_lane = false, day_problems = i.problems::jsonb,
                 days_done = g.days_done + i.days,
                 llm_calls = g.llm_calls + i.calls, prompt_tokens = g.prompt_tokens + i.prompt,
                 completion_tokens = g.completion_tokens + i.completion,
                 cost_micros = g.cost_micros + i.cost,
                 batch_saved_micros = g.batch_saved_micros + i.saved,
                 queued_at = now(), updated_at = now()
             FROM input i
             WHERE g.id = i.job_id AND g.provider_lane AND g.provider_batch_id = $1
             RETURNING g.id, g.status, g.batch_id),
         saved AS (
             INSERT INTO job_days (job_id, day_number, day, attempt)
             SELECT d.job_id, d.day_number, d.day::jsonb, 0
             FROM unnest($10::uuid[], $11::int[], $12::text[]) AS d (job_id, day_number, day)
             JOIN collected c ON c.id = d.job_id
             ON CONFLICT (job_id, day_number) DO NOTHING)
         SELECT id, status, batch_id FROM collected",
    )
    .bind(batch)
    .bind(jobs.iter().map(|j| j.job_id).collect::<Vec<_>>())
    .bind(problems)
    .bind(jobs.iter().map(|j| j.days.len() as i32).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.usage.calls).collect::<Vec<_>>())
    .bind(
        jobs.iter()
            .map(|j| j.usage.prompt_tokens)
            .collect::<Vec<_>>(),
    )
    .bind(
        jobs.iter()
            .map(|j| j.usage.completion_tokens)
            .collect::<Vec<_>>(),
    )
    .bind(jobs.iter().map(|j| j.usage.cost_micros).collect::<Vec<_>>())
    .bind(
        jobs.iter()
            .map(|j| j.usage.batch_saved_micros)
            .collect::<Vec<_>>(),
    )
    .bind(days().map(|(j, _)| j.job_id).collect::<Vec<_>>())
    .bind(days().map(|(_, (n, _))| *n).collect::<Vec<_>>())
    .bind(days().map(|(_, (_, day))| day.as_str()).collect::<Vec<_>>())
    .fetch_all(conn)
    .await
}

/// What collecting a batch found, over all its lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Lines answered (200), lines failed (an error answer), jobs with no line answered at
    /// all (expired, cancelled, or the batch failed or was refused).
    pub completed: i32,
    pub failed: i32,
    pub expired: i32,
    /// What the answers cost at the batch price, and saved against the normal lane, in
    /// micro-US-dollars.
    pub cost_micros: i64,
    pub saved_micros: i64,
}

/// Marks a finished batch `collected`, with its tally, and lets its lease go. Fenced by
/// `owner`'s lease; `false`: fenced out.
#[tracing::instrument(skip_all, fields(provider_batch = %id), err(level = "warn"))]
pub async fn collected(
    conn: &mut PgConnection,
    id: Uuid,
    owner: &str,
    tally: Tally,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE provider_batches
         SET status = 'collected', completed = $3, failed = $4, expired = $5, cost_micros = $6,
             saved_micros = $7, collected_at = now(), lease_expires_at = NULL
         WHERE id = $1 AND lease_owner = $2 AND status = 'finished'",
    )
    .bind(id)
    .bind(owner)
    .bind(tally.completed)
    .bind(tally.failed)
    .bind(tally.expired)
    .bind(tally.cost_micros)
    .bind(tally.saved_micros)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// How many of the batch's jobs still wait on it (provider lane, queued): none means every
/// one was cancelled, and the provider's batch is no longer worth its price.
#[tracing::instrument(skip_all, fields(provider_batch = %id), err(level = "warn"))]
pub async fn still_waiting(conn: &mut PgConnection, id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM generation_jobs
         WHERE provider_lane AND provider_batch_id = $1 AND status = 'queued'",
    )
    .bind(id)
    .fetch_one(conn)
    .await
}

/// Batches not collected yet, by status (`preparing`, `submitted`, `finished`), for the
/// in-flight gauges.
#[tracing::instrument(skip_all, err(level = "warn"))]
pub async fn open_by_status(conn: &mut PgConnection) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT status, count(*) FROM provider_batches WHERE status <> 'collected'
         GROUP BY status",
    )
    .fetch_all(conn)
    .await
}
