//! Generation jobs and their per-day checkpoints: the statements of every transition of a job's
//! life (the `lifecycle` module runs them, with their queue side effects).
//!
//! Every write a worker makes is fenced by the fence its claim took: a stale attempt (its lease
//! taken over after a crash, or its job cancelled or requeued) changes nothing. Each write is a single
//! statement (several tables at once through a data-modifying CTE), so it is atomic without an
//! explicit transaction and holds a connection for one round trip. Each also keeps the attempt's
//! row in `job_attempts` (its cost, and how it ended) through the `tally_attempt` SQL function.
//! The busiest (insert, claim, save a day, complete) take many jobs at once (`*_many`, over
//! `unnest` arrays): `lifecycle::group` gives each group of concurrent writes one statement and
//! one commit.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::admin::JobFilter;
use crate::job::{JobError, JobStatus, Usage};
use crate::queue::Lane;
use domain::menu::{Day, MenuPlan};
use domain::request::GenerationRequest;

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
    /// What the job's LLM calls cost so far, in micro-US-dollars (every attempt's, and the
    /// provider batch's share).
    pub cost_micros: i64,
    /// What the Batch API's discount saved on the job against the normal lane, in
    /// micro-US-dollars.
    pub batch_saved_micros: i64,
    pub idempotency_key: Option<String>,
    pub batch_id: Option<Uuid>,
    pub snoozes: i32,
    pub deadline_at: Option<DateTime<Utc>>,
    pub queued_at: DateTime<Utc>,
    /// The latest attempt's fence (see [`Fence`]); `None` before the first claim.
    pub fence: Option<i64>,
    /// Waiting for the provider's Batch API (a provider-lane batch run's job not yet
    /// collected): no claim takes it and the reconciler leaves it alone.
    pub provider_lane: bool,
    /// The provider batch (`provider_batches.id`) it was gathered into.
    pub provider_batch_id: Option<Uuid>,
    /// Why the batch lane's answer for a day was refused, by day number (`{"3": ["…"]}`):
    /// the normal lane's first ask of that day lists them.
    pub day_problems: Json<BTreeMap<String, Vec<String>>>,
    /// Where each saved day came from, in day order: read by [`get`] and [`get_visible`] (a
    /// job's own view), `None` from every other statement.
    #[sqlx(default)]
    pub day_sources: Option<Json<Vec<DayOrigin>>>,
}

/// Where one saved day of a job came from (its `domain::menu::DaySource`, with its number).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct DayOrigin {
    pub day: i32,
    /// The endpoint's name (`LLM_ENDPOINTS`; `default` for the single-endpoint settings).
    pub endpoint: String,
    pub model: String,
    /// `normal` (Chat Completions) or `batch` (a provider batch through the Batch API).
    pub lane: String,
}

/// The job's columns and its days' origins, narrowed by `$where`: the statement of [`get`]
/// and [`get_visible`] (a literal, so the SQL stays static).
macro_rules! job_with_day_sources {
    ($where:literal) => {
        concat!(
            "SELECT g.*,
                 (SELECT jsonb_agg(jsonb_build_object('day', d.day_number) || (d.day->'source')
                                   ORDER BY d.day_number)
                  FROM job_days d WHERE d.job_id = g.id AND d.day ? 'source') AS day_sources
             FROM generation_jobs g WHERE ",
            $where
        )
    };
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

/// The one result of a `_many` statement given one item: [`insert`], [`claim`] and [`complete`]
/// are their `_many` forms run on a slice of one, which answer one result per item.
fn sole<T>(results: Vec<T>) -> T {
    let [result] = <[T; 1]>::try_from(results)
        .unwrap_or_else(|results| panic!("one item in, {} results out", results.len()));
    result
}

/// Creates a queued job, or finds the one created earlier with the same idempotency key.
#[tracing::instrument(skip_all, fields(user_id = %job.owner_id), err(level = "warn"))]
pub async fn insert(conn: &mut PgConnection, job: &NewJob) -> Result<Inserted, sqlx::Error> {
    Ok(sole(insert_many(conn, std::slice::from_ref(job)).await?))
}

/// [`insert`] for many jobs in one statement and one commit (concurrent submissions, grouped):
/// one [`Inserted`] per job, in order. Two jobs of the group with the same requester and
/// idempotency key are one job: the first creates it, the second finds it.
#[tracing::instrument(skip_all, fields(jobs = jobs.len()), err(level = "warn"))]
pub async fn insert_many(
    conn: &mut PgConnection,
    jobs: &[NewJob],
) -> Result<Vec<Inserted>, sqlx::Error> {
    let ids: Vec<Uuid> = jobs.iter().map(|_| Uuid::now_v7()).collect();
    let created: Vec<JobRow> = sqlx::query_as(
        "INSERT INTO generation_jobs
             (id, owner_id, requested_by, request, max_attempts, days_total, idempotency_key, batch_id)
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::jsonb[], $5::int[],
                              $6::int[], $7::text[], $8::uuid[])
         ON CONFLICT (requested_by, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
         RETURNING *",
    )
    .bind(&ids)
    .bind(jobs.iter().map(|j| j.owner_id).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.requested_by).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| Json(&j.request)).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.max_attempts).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| i32::from(j.request.days)).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.idempotency_key.as_deref()).collect::<Vec<_>>())
    .bind(jobs.iter().map(|j| j.batch_id).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await?;
    let mut created: HashMap<Uuid, JobRow> = created.into_iter().map(|row| (row.id, row)).collect();
    // Not created: its idempotency key was used before (or earlier in this group).
    let reused: Vec<(Uuid, &str)> = jobs
        .iter()
        .zip(&ids)
        .filter(|(_, id)| !created.contains_key(id))
        .filter_map(|(job, _)| Some((job.requested_by, job.idempotency_key.as_deref()?)))
        .collect();
    let mut existing: HashMap<(Uuid, String), JobRow> = HashMap::new();
    if !reused.is_empty() {
        let (requesters, keys): (Vec<Uuid>, Vec<&str>) = reused.into_iter().unzip();
        let rows: Vec<JobRow> = sqlx::query_as(
            "SELECT g.* FROM generation_jobs g
             JOIN unnest($1::uuid[], $2::text[]) AS k (requested_by, key)
               ON g.requested_by = k.requested_by AND g.idempotency_key = k.key",
        )
        .bind(requesters)
        .bind(keys)
        .fetch_all(conn)
        .await?;
        for row in rows {
            if let Some(key) = row.idempotency_key.clone() {
                existing.insert((row.requested_by, key), row);
            }
        }
    }
    jobs.iter()
        .zip(ids)
        .map(|(job, id)| {
            if let Some(row) = created.remove(&id) {
                return Ok(Inserted::Created(row));
            }
            job.idempotency_key
                .as_ref()
                .and_then(|key| existing.get(&(job.requested_by, key.clone())))
                .map(|row| Inserted::Existing(row.clone()))
                .ok_or(sqlx::Error::RowNotFound)
        })
        .collect()
}

#[tracing::instrument(skip_all, fields(job_id = %id), err(level = "warn"))]
pub async fn get(conn: &mut PgConnection, id: Uuid) -> Result<Option<JobRow>, sqlx::Error> {
    sqlx::query_as(job_with_day_sources!("g.id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// The job if `viewer` may see it (its owner, or the owner's coach).
#[tracing::instrument(skip_all, fields(job_id = %id, viewer = %viewer), err(level = "warn"))]
pub async fn get_visible(
    conn: &mut PgConnection,
    id: Uuid,
    viewer: Uuid,
) -> Result<Option<JobRow>, sqlx::Error> {
    sqlx::query_as(job_with_day_sources!(
        "g.id = $1 AND visible_to(g.owner_id, $2)"
    ))
    .bind(id)
    .bind(viewer)
    .fetch_optional(conn)
    .await
}

/// Which jobs a cancel or a requeue acts on.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// One job; with a `viewer`, only if that person may see it (its owner, or the owner's
    /// coach).
    Job { id: Uuid, viewer: Option<Uuid> },
    /// Every job an admin's filter matches.
    Matching(&'a JobFilter),
}

impl Target<'_> {
    /// Appends `AND …` narrowing a statement to the target.
    pub(crate) fn push_conditions(&self, query: &mut QueryBuilder<Postgres>) {
        match self {
            Target::Job { id, viewer } => {
                query.push(" AND id = ").push_bind(*id);
                if let Some(viewer) = viewer {
                    query
                        .push(" AND visible_to(owner_id, ")
                        .push_bind(*viewer)
                        .push(")");
                }
            }
            Target::Matching(filter) => filter.push_conditions(query),
        }
    }
}

/// A job a cancel ended, and the fence of its latest attempt: the worker running that attempt
/// (if one is) is told to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct Cancelled {
    pub id: Uuid,
    pub fence: Option<i64>,
}

/// Cancels the unfinished jobs of `target`, closing their open attempts.
pub async fn cancel(
    conn: &mut PgConnection,
    target: Target<'_>,
) -> Result<Vec<Cancelled>, sqlx::Error> {
    let mut query = QueryBuilder::new(
        "WITH cancelled AS (
             UPDATE generation_jobs
             SET status = 'cancelled', finished_at = now(), updated_at = now(),
                 lease_expires_at = NULL, next_attempt_at = NULL
             WHERE status IN ('queued', 'running', 'retrying')",
    );
    target.push_conditions(&mut query);
    query.push(
        " RETURNING id, fence),
         -- A running attempt ends here; its worker is told to stop, and its writes are fenced.
         closed AS (
             UPDATE job_attempts SET ended_at = now(), outcome = 'cancelled'
             WHERE ended_at IS NULL AND job_id IN (SELECT id FROM cancelled))
         SELECT id, fence FROM cancelled",
    );
    query.build_query_as().fetch_all(conn).await
}

/// An attempt as its writes name it: the job, and the fence its claim took (the id of the
/// attempt's `job_attempts` row, never repeated). A write whose fence is no longer the job's
/// changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fence {
    pub job: Uuid,
    pub token: i64,
}

/// A job this worker now runs, with the days earlier attempts already finished.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub job: JobRow,
    pub days: Vec<Day>,
    pub fence: Fence,
}

/// What a delivery of a job id found.
#[derive(Debug, Clone)]
pub enum Claim {
    Claimed(Box<ClaimedJob>),
    /// Not claimable before this time: a retry that is not due, or a live attempt's lease.
    NotBefore(DateTime<Utc>),
    /// Due, but its owner already runs as many jobs as the cap allows: try again shortly.
    OwnerBusy,
    /// Finished, cancelled, unknown, or waiting for the provider's Batch API (its batch lane
    /// pushes it once collected): acknowledge and forget the delivery.
    Gone,
}

/// A delivery of a job id asking for a new attempt (see [`claim_many`]).
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    pub id: Uuid,
    /// Written on the job and the attempt: which process runs it.
    pub worker_id: String,
    /// The attempt's lease from now.
    pub lease: Duration,
    /// How long the job may run from its first claim.
    pub deadline: Duration,
    /// Jobs its owner may run at once (0: no cap).
    pub owner_cap: u32,
}

/// Takes the job for a new attempt if it is due, or if the attempt running it lost its lease,
/// unless its owner already runs `owner_cap` jobs (0: no cap; checked under a per-owner lock,
/// see `owner_has_room` in the migrations). The attempt gets a new fence and the lease `lease`;
/// the job's deadline starts at its first claim.
#[tracing::instrument(skip_all, fields(job_id = %request.id), err(level = "warn"))]
pub async fn claim(conn: &mut PgConnection, request: &ClaimRequest) -> Result<Claim, sqlx::Error> {
    Ok(sole(claim_many(conn, std::slice::from_ref(request)).await?))
}

/// [`claim`] for many deliveries in one statement and one commit: one [`Claim`] per request,
/// in order. A job asked for twice in the group is claimed once; the other request finds the
/// live attempt (`NotBefore`). The owners' locks are taken first, in one global order, so two
/// groups never wait on each other in a cycle.
#[tracing::instrument(skip_all, fields(jobs = requests.len()), err(level = "warn"))]
pub async fn claim_many(
    conn: &mut PgConnection,
    requests: &[ClaimRequest],
) -> Result<Vec<Claim>, sqlx::Error> {
    // Each job once; a repeat is answered by the second query, as a live attempt.
    let mut seen = HashSet::new();
    let first: Vec<&ClaimRequest> = requests.iter().filter(|r| seen.insert(r.id)).collect();
    // One round trip: the claims, their attempt rows and the days earlier attempts finished.
    let claimed: Vec<ClaimedRow> = sqlx::query_as(
        "WITH input AS (
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::float8[], $4::float8[], $5::int[])
                 AS i (id, worker_id, lease, deadline, cap)),
         -- Every owner lock the group needs, in one order for all groups (no deadlock).
         locks AS MATERIALIZED (
             SELECT pg_advisory_xact_lock(k) FROM (
                 SELECT DISTINCT hashtextextended(g.owner_id::text, 2026112908) AS k
                 FROM generation_jobs g JOIN input i ON g.id = i.id
                 WHERE i.cap > 0
                 ORDER BY k) AS keys),
         claimed AS (
             UPDATE generation_jobs g
             SET status = 'running', attempts = g.attempts + 1, worker_id = i.worker_id,
                 fence = nextval('job_attempts_id_seq'),
                 started_at = coalesce(g.started_at, now()), next_attempt_at = NULL,
                 deadline_at = coalesce(g.deadline_at, now() + make_interval(secs => i.deadline)),
                 lease_expires_at = now() + make_interval(secs => i.lease), updated_at = now()
             FROM input i
             WHERE g.id = i.id AND NOT g.provider_lane
               AND ((g.status IN ('queued', 'retrying')
                     AND coalesce(g.next_attempt_at, '-infinity') <= now())
                    OR (g.status = 'running' AND g.lease_expires_at < now()))
               -- The locks are an argument, so they are all taken before the first check.
               AND owner_has_room(g.owner_id, g.id,
                                  i.cap + (SELECT 0 * count(*) FROM locks)::int)
             RETURNING g.*),
         -- An attempt still open here lost its lease: its worker is gone.
         abandoned AS (
             UPDATE job_attempts SET ended_at = now(), outcome = 'abandoned'
             WHERE job_id IN (SELECT id FROM claimed) AND ended_at IS NULL),
         opened AS (
             INSERT INTO job_attempts (id, job_id, number, worker_id)
             SELECT fence, id, attempts, worker_id FROM claimed)
         SELECT claimed.*,
                coalesce((SELECT jsonb_agg(day ORDER BY day_number) FROM job_days
                          WHERE job_id = claimed.id), '[]') AS days
         FROM claimed",
    )
    .bind(first.iter().map(|r| r.id).collect::<Vec<_>>())
    .bind(
        first
            .iter()
            .map(|r| r.worker_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        first
            .iter()
            .map(|r| r.lease.as_secs_f64())
            .collect::<Vec<_>>(),
    )
    .bind(
        first
            .iter()
            .map(|r| r.deadline.as_secs_f64())
            .collect::<Vec<_>>(),
    )
    .bind(
        first
            .iter()
            .map(|r| i32::try_from(r.owner_cap).unwrap_or(i32::MAX))
            .collect::<Vec<_>>(),
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut claimed: HashMap<Uuid, ClaimedRow> =
        claimed.into_iter().map(|row| (row.job.id, row)).collect();
    let mut claims: Vec<Option<Claim>> = requests
        .iter()
        .map(|r| {
            claimed.remove(&r.id).map(|row| {
                let fence = Fence {
                    job: row.job.id,
                    token: row.job.fence.unwrap_or_default(),
                };
                Claim::Claimed(Box::new(ClaimedJob {
                    job: row.job,
                    days: row.days.0,
                    fence,
                }))
            })
        })
        .collect();
    let unclaimed: Vec<Uuid> = requests
        .iter()
        .zip(&claims)
        .filter(|(_, claim)| claim.is_none())
        .map(|(r, _)| r.id)
        .collect();
    if unclaimed.is_empty() {
        return Ok(claims.into_iter().flatten().collect());
    }
    // Not taken: say why, by the database's clock.
    type State = (
        Uuid,
        JobStatus,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
        DateTime<Utc>,
    );
    let states: Vec<State> = sqlx::query_as(
        "SELECT id, status, next_attempt_at, lease_expires_at, now() FROM generation_jobs
         WHERE id = ANY($1) AND NOT provider_lane",
    )
    .bind(&unclaimed)
    .fetch_all(conn)
    .await?;
    let states: HashMap<Uuid, State> = states.into_iter().map(|s| (s.0, s)).collect();
    for (request, claim) in requests.iter().zip(claims.iter_mut()) {
        if claim.is_some() {
            continue;
        }
        *claim = Some(match states.get(&request.id) {
            Some((_, JobStatus::Queued | JobStatus::Retrying, Some(at), _, now)) if at > now => {
                Claim::NotBefore(*at)
            }
            Some((_, JobStatus::Running, _, Some(at), now)) if at >= now => Claim::NotBefore(*at),
            // Due (or its lease lapsed), yet not taken: its owner is at the cap.
            Some((_, JobStatus::Queued | JobStatus::Retrying | JobStatus::Running, ..)) => {
                Claim::OwnerBusy
            }
            _ => Claim::Gone,
        });
    }
    Ok(claims.into_iter().flatten().collect())
}

#[derive(sqlx::FromRow)]
struct ClaimedRow {
    #[sqlx(flatten)]
    job: JobRow,
    days: Json<Vec<Day>>,
}

/// Extends the leases of running attempts, in one statement: `held` are the attempts a worker
/// runs. Returns the jobs whose lease was renewed; an attempt missing from it was cancelled or
/// taken over, and must stop.
#[tracing::instrument(skip_all, fields(jobs = held.len()), err(level = "warn"))]
pub async fn renew_leases(
    conn: &mut PgConnection,
    held: &[Fence],
    lease: Duration,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let (ids, fences): (Vec<Uuid>, Vec<i64>) = held.iter().map(|f| (f.job, f.token)).unzip();
    sqlx::query_scalar(
        "UPDATE generation_jobs AS g
         SET lease_expires_at = now() + make_interval(secs => $3)
         FROM unnest($1::uuid[], $2::bigint[]) AS held (id, fence)
         WHERE g.id = held.id AND g.fence = held.fence AND g.status = 'running'
         RETURNING g.id",
    )
    .bind(ids)
    .bind(fences)
    .bind(lease.as_secs_f64())
    .fetch_all(conn)
    .await
}

/// A value as the JSON text a grouped statement binds (cast to `jsonb` there).
pub fn to_json(value: &impl serde::Serialize) -> Result<String, sqlx::Error> {
    serde_json::to_string(value).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

/// A validated day to save (see [`save_days`]).
#[derive(Debug, Clone)]
pub struct DayWrite {
    pub fence: Fence,
    /// The attempt's number, recorded on the day.
    pub attempt_number: i32,
    pub day_number: i32,
    /// The day as JSON (serialised before the write waits for its group).
    pub day: String,
    /// What the calls cost since the last write.
    pub usage: Usage,
    /// The lease the attempt gets from now.
    pub lease: Duration,
}

/// Saves validated days, moves each job's progress on and renews its lease, in one statement
/// for all of them; one result per day, in order. `false`: that attempt was fenced out
/// (cancelled or superseded) and nothing was written for it. Saving a day the attempt already
/// saved (a retry after a lost reply) writes nothing more and is `true`.
#[tracing::instrument(skip_all, fields(days = days.len()), err(level = "warn"))]
pub async fn save_days(
    conn: &mut PgConnection,
    days: &[DayWrite],
) -> Result<Vec<bool>, sqlx::Error> {
    let owned: Vec<(Uuid, i64)> = sqlx::query_as(
        "WITH input AS (
             SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::int[], $4::text[], $5::int[],
                                  $6::int[], $7::bigint[], $8::bigint[], $9::int[], $10::float8[],
                                  $11::bigint[], $12::bigint[])
                 AS i (job_id, fence, day_number, day, attempt, calls, prompt, completion,
                       snoozes, lease, cost, saved)),
         owner AS (
             SELECT i.* FROM generation_jobs g
             JOIN input i ON g.id = i.job_id AND g.fence = i.fence
             WHERE g.status = 'running'
             FOR UPDATE OF g),
         saved AS (
             INSERT INTO job_days (job_id, day_number, day, attempt)
             SELECT job_id, day_number, day::jsonb, attempt FROM owner
             ON CONFLICT (job_id, day_number) DO NOTHING
             RETURNING job_id),
         job AS (
             UPDATE generation_jobs g
             SET days_done = g.days_done + o.n,
                 lease_expires_at = now() + make_interval(secs => o.lease), updated_at = now(),
                 llm_calls = g.llm_calls + o.calls * o.n,
                 prompt_tokens = g.prompt_tokens + o.prompt * o.n,
                 completion_tokens = g.completion_tokens + o.completion * o.n,
                 snoozes = g.snoozes + o.snoozes * o.n,
                 cost_micros = g.cost_micros + o.cost * o.n,
                 batch_saved_micros = g.batch_saved_micros + o.saved * o.n
             FROM (SELECT owner.*, (SELECT count(*) FROM saved WHERE saved.job_id = owner.job_id)::int AS n
                   FROM owner) AS o
             WHERE g.id = o.job_id
             RETURNING g.id, g.fence),
         tallied AS (
             SELECT tally_attempt(o.fence, o.calls, o.prompt, o.completion, o.cost, NULL, NULL, NULL)
             FROM owner o JOIN saved s ON s.job_id = o.job_id)
         -- `tallied` is read so that it runs: a plain SELECT in WITH runs only when read.
         SELECT id, fence FROM job WHERE (SELECT count(*) FROM tallied) >= 0",
    )
    .bind(days.iter().map(|d| d.fence.job).collect::<Vec<_>>())
    .bind(days.iter().map(|d| d.fence.token).collect::<Vec<_>>())
    .bind(days.iter().map(|d| d.day_number).collect::<Vec<_>>())
    .bind(days.iter().map(|d| d.day.as_str()).collect::<Vec<_>>())
    .bind(days.iter().map(|d| d.attempt_number).collect::<Vec<_>>())
    .bind(days.iter().map(|d| d.usage.calls).collect::<Vec<_>>())
    .bind(days.iter().map(|d| d.usage.prompt_tokens).collect::<Vec<_>>())
    .bind(days.iter().map(|d| d.usage.completion_tokens).collect::<Vec<_>>())
    .bind(days.iter().map(|d| d.usage.snoozes).collect::<Vec<_>>())
    .bind(days.iter().map(|d| d.lease.as_secs_f64()).collect::<Vec<_>>())
    .bind(days.iter().map(|d| d.usage.cost_micros).collect::<Vec<_>>())
    .bind(
        days.iter()
            .map(|d| d.usage.batch_saved_micros)
            .collect::<Vec<_>>(),
    )
    .fetch_all(conn)
    .await?;
    let owned: HashSet<(Uuid, i64)> = owned.into_iter().collect();
    Ok(days
        .iter()
        .map(|d| owned.contains(&(d.fence.job, d.fence.token)))
        .collect())
}

/// A finished plan to store (see [`complete_many`]).
#[derive(Debug, Clone)]
pub struct Completion {
    pub fence: Fence,
    /// The attempt's number, recorded on the last day.
    pub attempt_number: i32,
    /// The plan as JSON, and its last day's number and JSON (serialised before the write waits
    /// for its group).
    pub plan: String,
    pub days: i32,
    pub last_day: Option<(i32, String)>,
    /// What the calls cost since the last write.
    pub usage: Usage,
}

impl Completion {
    /// Errors: `sqlx::Error::Encode` if the plan cannot be written as JSON.
    pub fn new(
        fence: Fence,
        attempt_number: i32,
        plan: &MenuPlan,
        usage: Usage,
    ) -> Result<Completion, sqlx::Error> {
        Ok(Completion {
            fence,
            attempt_number,
            plan: to_json(plan)?,
            days: plan.days.len() as i32,
            last_day: match plan.days.last() {
                Some(day) => Some((i32::from(day.day_number), to_json(day)?)),
                None => None,
            },
            usage,
        })
    }
}

/// Saves the plan's last day (the checkpoint it would have had, unless an earlier attempt
/// saved it), stores the menu and marks the job succeeded, in one statement: a job's last day
/// costs no commit of its own. `None`: fenced out, nothing written.
#[tracing::instrument(skip_all, fields(job_id = %fence.job, attempt = attempt_number), err(level = "warn"))]
pub async fn complete(
    conn: &mut PgConnection,
    fence: Fence,
    attempt_number: i32,
    plan: &MenuPlan,
    usage: Usage,
) -> Result<Option<Uuid>, sqlx::Error> {
    let completion = Completion::new(fence, attempt_number, plan, usage)?;
    Ok(sole(
        complete_many(conn, std::slice::from_ref(&completion)).await?,
    ))
}

/// [`complete`] for many attempts in one statement and one commit: the new menu's id per
/// attempt, in order (`None`: fenced out).
#[tracing::instrument(skip_all, fields(jobs = done.len()), err(level = "warn"))]
pub async fn complete_many(
    conn: &mut PgConnection,
    done: &[Completion],
) -> Result<Vec<Option<Uuid>>, sqlx::Error> {
    let menu_ids: Vec<Uuid> = done.iter().map(|_| Uuid::now_v7()).collect();
    let stored: Vec<Uuid> = sqlx::query_scalar(
        "WITH input AS (
             SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::uuid[], $4::text[], $5::int[],
                                  $6::int[], $7::text[], $8::int[], $9::int[], $10::bigint[],
                                  $11::bigint[], $12::int[], $13::bigint[], $14::bigint[])
                 AS i (job_id, fence, menu_id, plan, days, last_number, last_day, attempt,
                       calls, prompt, completion, snoozes, cost, saved)),
         done AS (
             UPDATE generation_jobs g
             SET status = 'succeeded', menu_id = i.menu_id, finished_at = now(), updated_at = now(),
                 lease_expires_at = NULL, last_error_code = NULL, last_error_message = NULL,
                 days_done = i.days,
                 llm_calls = g.llm_calls + i.calls, prompt_tokens = g.prompt_tokens + i.prompt,
                 completion_tokens = g.completion_tokens + i.completion,
                 snoozes = g.snoozes + i.snoozes, cost_micros = g.cost_micros + i.cost,
                 batch_saved_micros = g.batch_saved_micros + i.saved
             FROM input i
             WHERE g.id = i.job_id AND g.fence = i.fence AND g.status = 'running'
             RETURNING g.id, g.fence, g.owner_id, g.requested_by, g.request),
         last_day AS (
             INSERT INTO job_days (job_id, day_number, day, attempt)
             SELECT i.job_id, i.last_number, i.last_day::jsonb, i.attempt
             FROM done JOIN input i ON i.job_id = done.id AND i.fence = done.fence
             WHERE i.last_day IS NOT NULL
             ON CONFLICT (job_id, day_number) DO NOTHING),
         tallied AS (
             SELECT done.id, done.fence,
                    tally_attempt(i.fence, i.calls, i.prompt, i.completion, i.cost, 'succeeded', NULL,
                                  NULL)
             FROM done JOIN input i ON i.job_id = done.id AND i.fence = done.fence)
         INSERT INTO menus (id, job_id, owner_id, requested_by, request, plan)
         SELECT i.menu_id, done.id, done.owner_id, done.requested_by, done.request, i.plan::jsonb
         FROM done
         JOIN input i ON i.job_id = done.id AND i.fence = done.fence
         JOIN tallied t ON t.id = done.id AND t.fence = done.fence
         RETURNING id",
    )
    .bind(done.iter().map(|c| c.fence.job).collect::<Vec<_>>())
    .bind(done.iter().map(|c| c.fence.token).collect::<Vec<_>>())
    .bind(&menu_ids)
    .bind(done.iter().map(|c| c.plan.as_str()).collect::<Vec<_>>())
    .bind(done.iter().map(|c| c.days).collect::<Vec<_>>())
    .bind(
        done.iter()
            .map(|c| c.last_day.as_ref().map_or(0, |(n, _)| *n))
            .collect::<Vec<_>>(),
    )
    .bind(
        done.iter()
            .map(|c| c.last_day.as_ref().map(|(_, d)| d.as_str()))
            .collect::<Vec<_>>(),
    )
    .bind(done.iter().map(|c| c.attempt_number).collect::<Vec<_>>())
    .bind(done.iter().map(|c| c.usage.calls).collect::<Vec<_>>())
    .bind(
        done.iter()
            .map(|c| c.usage.prompt_tokens)
            .collect::<Vec<_>>(),
    )
    .bind(
        done.iter()
            .map(|c| c.usage.completion_tokens)
            .collect::<Vec<_>>(),
    )
    .bind(done.iter().map(|c| c.usage.snoozes).collect::<Vec<_>>())
    .bind(done.iter().map(|c| c.usage.cost_micros).collect::<Vec<_>>())
    .bind(
        done.iter()
            .map(|c| c.usage.batch_saved_micros)
            .collect::<Vec<_>>(),
    )
    .fetch_all(conn)
    .await?;
    let stored: HashSet<Uuid> = stored.into_iter().collect();
    Ok(menu_ids
        .into_iter()
        .map(|id| stored.contains(&id).then_some(id))
        .collect())
}

/// Ends an attempt that failed: `retry_at` schedules another attempt, `None` fails the job.
/// Returns the job's new status, or `None` if the attempt was fenced out.
#[tracing::instrument(skip_all, fields(job_id = %fence.job, error_code = error.code), err(level = "warn"))]
pub async fn fail_attempt(
    conn: &mut PgConnection,
    fence: Fence,
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
                 completion_tokens = completion_tokens + $8, snoozes = snoozes + $9,
                 cost_micros = cost_micros + $10, batch_saved_micros = batch_saved_micros + $11
             WHERE id = $1 AND fence = $2 AND status = 'running'
             RETURNING status),
         tallied AS (
             SELECT tally_attempt($2, $6, $7, $8, $10,
                 CASE WHEN $5::timestamptz IS NULL THEN 'failed' ELSE 'retrying' END, $3, $4)
             FROM failed)
         SELECT status FROM failed CROSS JOIN tallied",
    )
    .bind(fence.job)
    .bind(fence.token)
    .bind(&error.code)
    .bind(&error.message)
    .bind(retry_at)
    .bind(usage.calls)
    .bind(usage.prompt_tokens)
    .bind(usage.completion_tokens)
    .bind(usage.snoozes)
    .bind(usage.cost_micros)
    .bind(usage.batch_saved_micros)
    .fetch_optional(conn)
    .await
}

/// Records what an attempt that stopped without a transition of its own cost (its job was
/// cancelled, or another attempt took it over), and ends the attempt's row. Returns the job's
/// status (`None`: the job is gone).
#[tracing::instrument(skip_all, fields(job_id = %fence.job), err(level = "warn"))]
pub async fn stop_attempt(
    conn: &mut PgConnection,
    fence: Fence,
    usage: Usage,
) -> Result<Option<JobStatus>, sqlx::Error> {
    sqlx::query_scalar(
        "WITH job AS (
             UPDATE generation_jobs SET llm_calls = llm_calls + $3, prompt_tokens = prompt_tokens + $4,
                 completion_tokens = completion_tokens + $5, snoozes = snoozes + $6,
                 cost_micros = cost_micros + $7, batch_saved_micros = batch_saved_micros + $8
             WHERE id = $1
             RETURNING status),
         tallied AS (
             SELECT tally_attempt($2, $3, $4, $5, $7,
                 CASE WHEN status = 'cancelled' THEN 'cancelled' ELSE 'superseded' END, NULL, NULL)
             FROM job)
         SELECT status FROM job, tallied",
    )
    .bind(fence.job)
    .bind(fence.token)
    .bind(usage.calls)
    .bind(usage.prompt_tokens)
    .bind(usage.completion_tokens)
    .bind(usage.snoozes)
    .bind(usage.cost_micros)
    .bind(usage.batch_saved_micros)
    .fetch_optional(conn)
    .await
}

/// How an attempt ended, as its row records it (`None` while it runs): tells a write retried
/// after a lost reply whether its first try had committed.
#[tracing::instrument(skip_all, fields(job_id = %fence.job), err(level = "warn"))]
pub async fn attempt_outcome(
    conn: &mut PgConnection,
    fence: Fence,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT outcome FROM job_attempts WHERE id = $1 AND job_id = $2")
        .bind(fence.token)
        .bind(fence.job)
        .fetch_optional(conn)
        .await
        .map(Option::flatten)
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

impl Release {
    /// The outcome recorded on the attempt's row.
    pub fn outcome(self) -> &'static str {
        match self {
            Release::Snoozed { .. } => "snoozed",
            Release::HandedBack => "handed_back",
        }
    }
}

/// Gives an unfinished attempt back without counting it. A provider outage pushes the job's
/// deadline back by the wait, since it is not the job's doing. `false`: fenced out, nothing
/// changed.
#[tracing::instrument(skip_all, fields(job_id = %fence.job, why = ?why), err(level = "warn"))]
pub async fn release(
    conn: &mut PgConnection,
    fence: Fence,
    why: Release,
    usage: Usage,
) -> Result<bool, sqlx::Error> {
    let (not_before, outage) = match why {
        Release::Snoozed { until, outage } => (Some(until), outage),
        Release::HandedBack => (None, false),
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
                 completion_tokens = completion_tokens + $7, snoozes = snoozes + $8,
                 cost_micros = cost_micros + $10, batch_saved_micros = batch_saved_micros + $11
             WHERE id = $1 AND fence = $2 AND status = 'running'
             RETURNING id)
         SELECT tally_attempt($2, $5, $6, $7, $10, $9, NULL, NULL) FROM released",
    )
    .bind(fence.job)
    .bind(fence.token)
    .bind(not_before)
    .bind(outage)
    .bind(usage.calls)
    .bind(usage.prompt_tokens)
    .bind(usage.completion_tokens)
    .bind(usage.snoozes)
    .bind(why.outcome())
    .bind(usage.cost_micros)
    .bind(usage.batch_saved_micros)
    .fetch_all(conn)
    .await?
    .len()
        == 1)
}

/// Unfinished jobs that should be in the queue now, ids before `before` (a page of at most
/// `limit`, newest first; ids are v7 UUIDs, so by creation), with their lanes: queued or retrying jobs that are
/// due, and running jobs whose lease lapsed more than `grace` ago (the grace lets a live worker
/// renew after a database outage before its jobs are given to others). Jobs waiting for the
/// provider's Batch API (`provider_lane`) are not due: the batch lane pushes them.
#[tracing::instrument(skip_all, fields(limit = limit), err(level = "warn"))]
pub async fn due_before(
    conn: &mut PgConnection,
    before: Uuid,
    grace: Duration,
    limit: i64,
) -> Result<Vec<(Uuid, Lane)>, sqlx::Error> {
    let rows: Vec<(Uuid, Option<Uuid>)> = sqlx::query_as(
        "SELECT id, batch_id FROM generation_jobs
         WHERE status IN ('queued', 'running', 'retrying') AND id < $1 AND NOT provider_lane
           AND ((status <> 'running' AND coalesce(next_attempt_at, '-infinity') <= now())
                OR (status = 'running'
                    AND lease_expires_at < now() - make_interval(secs => $2)))
         ORDER BY id DESC LIMIT $3",
    )
    .bind(before)
    .bind(grace.as_secs_f64())
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, batch)| (id, Lane::of(batch)))
        .collect())
}

/// What a person's jobs have cost so far: every job they submitted ([`usage_of`]), or every
/// job for them ([`usage_owned`]).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow, serde::Serialize, utoipa::ToSchema,
)]
pub struct UsageTotals {
    pub jobs: i64,
    pub llm_calls: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// What those jobs cost, in micro-US-dollars (shown in dollars, `cost_usd`, by the views).
    #[serde(skip)]
    pub cost_micros: i64,
    /// What the Batch API's discount saved on them, in micro-US-dollars (likewise).
    #[serde(skip)]
    pub batch_saved_micros: i64,
}

/// The columns of [`UsageTotals`], summed over the jobs a statement selects.
const USAGE_TOTALS: &str = "count(*) AS jobs, coalesce(sum(llm_calls), 0)::bigint AS llm_calls,
     coalesce(sum(prompt_tokens), 0)::bigint AS prompt_tokens,
     coalesce(sum(completion_tokens), 0)::bigint AS completion_tokens,
     coalesce(sum(cost_micros), 0)::bigint AS cost_micros,
     coalesce(sum(batch_saved_micros), 0)::bigint AS batch_saved_micros";

/// Whether `owner_id` has `limit` jobs (or more) waiting or running, and whether
/// `requested_by` already used `idempotency_key` (its retry must find its job, not the limit).
/// Reads at most `limit` index entries, however many jobs wait.
#[tracing::instrument(skip_all, fields(user_id = %owner_id, limit = limit), err(level = "warn"))]
pub async fn waiting_at_limit(
    conn: &mut PgConnection,
    owner_id: Uuid,
    limit: u32,
    requested_by: Uuid,
    idempotency_key: Option<&str>,
) -> Result<(bool, bool), sqlx::Error> {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM (SELECT 1 FROM generation_jobs
                  WHERE owner_id = $1 AND status IN ('queued', 'running', 'retrying')
                  LIMIT $2) AS waiting) >= $2,
                EXISTS (SELECT 1 FROM generation_jobs
                         WHERE requested_by = $3 AND idempotency_key = $4)",
    )
    .bind(owner_id)
    .bind(i64::from(limit))
    .bind(requested_by)
    .bind(idempotency_key)
    .fetch_one(conn)
    .await
}

#[tracing::instrument(skip_all, fields(user_id = %requested_by), err(level = "warn"))]
pub async fn usage_of(
    conn: &mut PgConnection,
    requested_by: Uuid,
) -> Result<UsageTotals, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {USAGE_TOTALS} FROM generation_jobs WHERE requested_by = $1"
    )))
    .bind(requested_by)
    .fetch_one(conn)
    .await
}

/// What the jobs for `owner_id` have cost so far, whoever submitted them (they, their coach or
/// the weekly batch).
#[tracing::instrument(skip_all, fields(user_id = %owner_id), err(level = "warn"))]
pub async fn usage_owned(
    conn: &mut PgConnection,
    owner_id: Uuid,
) -> Result<UsageTotals, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {USAGE_TOTALS} FROM generation_jobs WHERE owner_id = $1"
    )))
    .bind(owner_id)
    .fetch_one(conn)
    .await
}

/// Creates the queued jobs of a batch run, one per person, in one statement: `people` pairs
/// each person (owner and requester alike) with their request. A person who already has a job
/// in the batch, or a batch job starting the same day, gets no second one. `provider_lane`: the
/// jobs wait for the provider's Batch API (see [`JobRow::provider_lane`]). Returns the ids of
/// the jobs created.
#[tracing::instrument(skip_all, fields(batch_id = %batch_id, jobs = people.len()), err(level = "warn"))]
pub async fn insert_batch(
    conn: &mut PgConnection,
    batch_id: Uuid,
    max_attempts: i32,
    provider_lane: bool,
    people: &[(Uuid, GenerationRequest)],
) -> Result<Vec<Uuid>, sqlx::Error> {
    let ids: Vec<Uuid> = people.iter().map(|_| Uuid::now_v7()).collect();
    let owners: Vec<Uuid> = people.iter().map(|(owner, _)| *owner).collect();
    let days: Vec<i32> = people
        .iter()
        .map(|(_, request)| i32::from(request.days))
        .collect();
    let requests: Vec<Json<&GenerationRequest>> =
        people.iter().map(|(_, request)| Json(request)).collect();
    sqlx::query_scalar(
        "INSERT INTO generation_jobs
             (id, owner_id, requested_by, request, max_attempts, days_total, batch_id, provider_lane)
         SELECT id, owner_id, owner_id, request, $5, days_total, $6, $7
         FROM unnest($1::uuid[], $2::uuid[], $3::jsonb[], $4::int[])
             AS p (id, owner_id, request, days_total)
         ON CONFLICT DO NOTHING
         RETURNING id",
    )
    .bind(ids)
    .bind(owners)
    .bind(requests)
    .bind(days)
    .bind(max_attempts)
    .bind(batch_id)
    .bind(provider_lane)
    .fetch_all(conn)
    .await
}
