//! Batch runs (`batch_runs`): one row per fire time of a schedule or per manual period, the
//! lease and cursor of the enqueue that fills it, and what admins see of it (its jobs by
//! status and their cost). Also the read an enqueue pages through: the opted-in people, each
//! with their menu's start and their previous week's titles.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::types::Json;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::Cursor;
use crate::batch::{BatchLaneMode, BatchRun, RunStatus, Trigger};
use crate::job::usd;

/// The columns [`Row`] reads, in a statement over `batch_runs`.
const COLUMNS: &str = "id, schedule, fire_at, period_start, trigger, triggered_by, status, lane,
     targeted::bigint AS targeted, skipped::bigint AS skipped, skip_reasons, cursor,
     created_at, enqueued_at";

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    schedule: String,
    fire_at: DateTime<Utc>,
    period_start: NaiveDate,
    trigger: String,
    triggered_by: Option<Uuid>,
    status: String,
    lane: String,
    targeted: i64,
    skipped: i64,
    skip_reasons: Json<BTreeMap<String, i64>>,
    cursor: Option<Uuid>,
    created_at: DateTime<Utc>,
    enqueued_at: Option<DateTime<Utc>>,
}

impl Row {
    /// The run, and the cursor of its enqueue (the last person it went past).
    fn split(self) -> Result<(BatchRun, Option<Uuid>), sqlx::Error> {
        let undecodable = |column: &str, value: &str| {
            sqlx::Error::Decode(format!("batch_runs.{column} holds {value:?}").into())
        };
        let run = BatchRun {
            id: self.id,
            schedule: self.schedule,
            fire_at: self.fire_at,
            period_start: self.period_start,
            trigger: Trigger::parse(&self.trigger)
                .ok_or_else(|| undecodable("trigger", &self.trigger))?,
            triggered_by: self.triggered_by,
            status: RunStatus::parse(&self.status)
                .ok_or_else(|| undecodable("status", &self.status))?,
            lane: BatchLaneMode::parse(&self.lane)
                .ok_or_else(|| undecodable("lane", &self.lane))?,
            targeted: self.targeted,
            skipped: self.skipped,
            skip_reasons: self.skip_reasons.0,
            created_at: self.created_at,
            enqueued_at: self.enqueued_at,
        };
        Ok((run, self.cursor))
    }

    fn run(self) -> Result<BatchRun, sqlx::Error> {
        self.split().map(|(run, _)| run)
    }
}

/// A run about to be recorded.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub schedule: &'a str,
    pub fire_at: DateTime<Utc>,
    pub period_start: NaiveDate,
    pub trigger: Trigger,
    pub triggered_by: Option<Uuid>,
    /// `Enqueuing` (to be enqueued) or `Skipped` (a miss outside the catch-up window).
    pub status: RunStatus,
    /// How its jobs will reach the model.
    pub lane: BatchLaneMode,
    /// The enqueue that holds the run from the start; `None`: unleased, for whichever
    /// scheduler resumes it first.
    pub holder: Option<Holder>,
}

/// An enqueue's hold on a run: its fence, and its lease from now.
#[derive(Debug, Clone, Copy)]
pub struct Holder {
    pub fence: Uuid,
    pub lease: Duration,
}

/// Records the run (held by `holder`, or unleased), unless its (schedule, fire time) is
/// recorded already: then `None`, and the run belongs to whoever recorded it.
#[tracing::instrument(skip_all, fields(schedule = run.schedule, fire_at = %run.fire_at), err(level = "warn"))]
pub async fn insert(
    conn: &mut PgConnection,
    run: &NewRun<'_>,
) -> Result<Option<BatchRun>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO batch_runs (id, schedule, fire_at, period_start, trigger, triggered_by,
                                 status, enqueuer, lease_expires_at, lane)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + make_interval(secs => $9), $10)
         ON CONFLICT (schedule, fire_at) DO NOTHING
         RETURNING {COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(run.schedule)
    .bind(run.fire_at)
    .bind(run.period_start)
    .bind(run.trigger.as_str())
    .bind(run.triggered_by)
    .bind(run.status.as_str())
    .bind(run.holder.map(|h| h.fence))
    // NULL seconds make a NULL lease: unleased.
    .bind(run.holder.map(|h| h.lease.as_secs_f64()))
    .bind(run.lane.as_str())
    .fetch_optional(conn)
    .await?;
    row.map(Row::run).transpose()
}

/// Records missed fire times of `schedule` as skipped runs, in one statement; times already
/// recorded are left as they are. `fires` pairs each fire time with its period's first day.
/// Returns how many rows were added.
#[tracing::instrument(skip_all, fields(schedule = schedule, runs = fires.len()), err(level = "warn"))]
pub async fn insert_skipped(
    conn: &mut PgConnection,
    schedule: &str,
    fires: &[(DateTime<Utc>, NaiveDate)],
) -> Result<u64, sqlx::Error> {
    let (fire_at, period_start): (Vec<DateTime<Utc>>, Vec<NaiveDate>) =
        fires.iter().copied().unzip();
    let ids: Vec<Uuid> = fires.iter().map(|_| Uuid::now_v7()).collect();
    let done = sqlx::query(
        "INSERT INTO batch_runs (id, schedule, fire_at, period_start, trigger, status)
         SELECT id, $1, fire_at, period_start, 'schedule', 'skipped'
         FROM unnest($2::uuid[], $3::timestamptz[], $4::date[]) AS f (id, fire_at, period_start)
         ON CONFLICT (schedule, fire_at) DO NOTHING",
    )
    .bind(schedule)
    .bind(ids)
    .bind(fire_at)
    .bind(period_start)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// The run of `schedule` recorded for `fire_at`, if any.
#[tracing::instrument(skip_all, fields(schedule = schedule, fire_at = %fire_at), err(level = "warn"))]
pub async fn get_by_key(
    conn: &mut PgConnection,
    schedule: &str,
    fire_at: DateTime<Utc>,
) -> Result<Option<BatchRun>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM batch_runs WHERE schedule = $1 AND fire_at = $2"
    )))
    .bind(schedule)
    .bind(fire_at)
    .fetch_optional(conn)
    .await?;
    row.map(Row::run).transpose()
}

/// The latest fire time recorded for `schedule` (whatever became of it).
#[tracing::instrument(skip_all, fields(schedule = schedule), err(level = "warn"))]
pub async fn latest_fire_at(
    conn: &mut PgConnection,
    schedule: &str,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar("SELECT max(fire_at) FROM batch_runs WHERE schedule = $1")
        .bind(schedule)
        .fetch_one(conn)
        .await
}

/// Runs still enqueuing whose enqueue nobody holds: never leased (a manual run, a crash right
/// after the insert) or whose lease lapsed (its enqueuer died). At most `limit`, oldest first.
#[tracing::instrument(skip_all, fields(limit = limit), err(level = "warn"))]
pub async fn unleased(conn: &mut PgConnection, limit: i64) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM batch_runs
         WHERE status = 'enqueuing' AND (lease_expires_at IS NULL OR lease_expires_at < now())
         ORDER BY created_at, id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// A run's enqueue, as the process that took its lease starts it.
#[derive(Debug, Clone)]
pub struct Leased {
    pub run: BatchRun,
    /// The last person (by id) an earlier enqueue of this run went past; `None` from the start.
    pub cursor: Option<Uuid>,
}

/// Takes the run's lease for `lease` under the new `fence` if the run is enqueuing and its
/// lease is free or lapsed; `None` otherwise (another process holds it, or it is done).
#[tracing::instrument(skip_all, fields(batch_id = %id), err(level = "warn"))]
pub async fn take_lease(
    conn: &mut PgConnection,
    id: Uuid,
    fence: Uuid,
    lease: Duration,
) -> Result<Option<Leased>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE batch_runs
         SET enqueuer = $2, lease_expires_at = now() + make_interval(secs => $3)
         WHERE id = $1 AND status = 'enqueuing'
           AND (lease_expires_at IS NULL OR lease_expires_at < now())
         RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(fence)
    .bind(lease.as_secs_f64())
    .fetch_optional(conn)
    .await?;
    row.map(|row| row.split().map(|(run, cursor)| Leased { run, cursor }))
        .transpose()
}

/// Locks the run for the rest of the transaction if `fence` still holds its enqueue; `false`:
/// another process took the run over (or it is done), and this enqueue must stop.
#[tracing::instrument(skip_all, fields(batch_id = %id), err(level = "warn"))]
pub async fn hold(conn: &mut PgConnection, id: Uuid, fence: Uuid) -> Result<bool, sqlx::Error> {
    let held: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM batch_runs
         WHERE id = $1 AND enqueuer = $2 AND status = 'enqueuing'
         FOR UPDATE",
    )
    .bind(id)
    .bind(fence)
    .fetch_optional(conn)
    .await?;
    Ok(held.is_some())
}

/// What one chunk of an enqueue did.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// The last person of the chunk (the cursor from now on).
    pub cursor: Option<Uuid>,
    /// Jobs the chunk created.
    pub targeted: i64,
    /// People the chunk skipped, by reason.
    pub skip_reasons: BTreeMap<String, i64>,
    /// Whether this was the last chunk: the run becomes `enqueued`.
    pub last: bool,
}

/// Adds a chunk's progress to the run held under `fence` and renews its lease for `lease`;
/// on the last chunk the run becomes `enqueued` and its lease is released. `None`: the fence
/// no longer holds the run. Call within the chunk's transaction, after [`hold`].
#[tracing::instrument(skip_all, fields(batch_id = %id, targeted = progress.targeted, last = progress.last), err(level = "warn"))]
pub async fn advance(
    conn: &mut PgConnection,
    id: Uuid,
    fence: Uuid,
    progress: &Progress,
    lease: Duration,
) -> Result<Option<BatchRun>, sqlx::Error> {
    let skipped: i64 = progress.skip_reasons.values().sum();
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE batch_runs
         SET cursor = coalesce($3, cursor),
             targeted = targeted + $4,
             skipped = skipped + $5,
             skip_reasons = (SELECT coalesce(jsonb_object_agg(key, n), '{{}}')
                             FROM (SELECT key, sum(value::bigint) AS n
                                   FROM (SELECT * FROM jsonb_each_text(skip_reasons)
                                         UNION ALL SELECT * FROM jsonb_each_text($6)) AS e
                                   GROUP BY key) AS s),
             status = CASE WHEN $7 THEN 'enqueued' ELSE status END,
             enqueued_at = CASE WHEN $7 THEN now() ELSE enqueued_at END,
             lease_expires_at = CASE WHEN $7 THEN NULL
                                     ELSE now() + make_interval(secs => $8) END
         WHERE id = $1 AND enqueuer = $2 AND status = 'enqueuing'
         RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(fence)
    .bind(progress.cursor)
    .bind(progress.targeted)
    .bind(skipped)
    .bind(Json(&progress.skip_reasons))
    .bind(progress.last)
    .bind(lease.as_secs_f64())
    .fetch_optional(conn)
    .await?;
    row.map(Row::run).transpose()
}

/// An opted-in person as a batch reads them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Person {
    pub user_id: Uuid,
    /// The stored options as JSON text: a batch tells options it cannot read from options
    /// that do not validate.
    pub options: String,
    /// Their menu's first day: the first date on or after the period's first day that falls
    /// on their `weekly_start_day`.
    pub start_date: NaiveDate,
    /// The titles of their most recently created menu whose own start date lies in the seven
    /// days before `start_date` (every day's meals, then every day's snacks); empty without
    /// one.
    pub previous_titles: Json<Vec<String>>,
    /// Whether a batch (this or another) already created their menu starting `start_date`.
    pub already_generated: bool,
}

/// Up to `limit` people who opted in to the weekly batch, by id, after `after` (from the first
/// when `None`), for the period from `period_start`: one statement per page (each person's
/// previous menu is an index probe of `menus_owner_idx`), so a walk over everyone keeps one
/// page in memory.
#[tracing::instrument(skip_all, fields(period_start = %period_start, limit = limit), err(level = "warn"))]
pub async fn people_after(
    conn: &mut PgConnection,
    after: Option<Uuid>,
    period_start: NaiveDate,
    limit: i64,
) -> Result<Vec<Person>, sqlx::Error> {
    sqlx::query_as(
        "SELECT p.user_id, p.options::text AS options, s.start_date,
                coalesce(previous.titles, '[]') AS previous_titles,
                EXISTS (SELECT 1 FROM generation_jobs g
                        WHERE g.owner_id = p.user_id AND g.batch_id IS NOT NULL
                          AND g.request->>'start_date' = s.start_date::text) AS already_generated
         FROM preferences p
         CROSS JOIN LATERAL (
             SELECT $2::date + (p.weekly_start_day - extract(isodow FROM $2::date)::int + 7) % 7
                 AS start_date) s
         LEFT JOIN LATERAL (
             SELECT jsonb_path_query_array(m.plan, '$.days[*].meals[*].title')
                    || jsonb_path_query_array(m.plan, '$.days[*].snacks[*].title') AS titles
             FROM menus m
             WHERE m.owner_id = p.user_id
               AND (m.request->>'start_date')::date >= s.start_date - 7
               AND (m.request->>'start_date')::date < s.start_date
             ORDER BY m.created_at DESC, m.id DESC
             LIMIT 1) previous ON true
         WHERE p.auto_generate_weekly AND p.user_id > $1
         ORDER BY p.user_id
         LIMIT $3",
    )
    .bind(after.unwrap_or(Uuid::nil()))
    .bind(period_start)
    .bind(limit)
    .fetch_all(conn)
    .await
}

#[tracing::instrument(skip_all, fields(batch_id = %id), err(level = "warn"))]
pub async fn get(conn: &mut PgConnection, id: Uuid) -> Result<Option<BatchRun>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM batch_runs WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.map(Row::run).transpose()
}

/// A batch's jobs by status.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema,
)]
pub struct JobCounts {
    pub queued: i64,
    pub running: i64,
    pub retrying: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub cancelled: i64,
}

impl JobCounts {
    /// Jobs not finished yet (queued, running or retrying).
    pub fn unfinished(&self) -> i64 {
        self.queued + self.running + self.retrying
    }
}

/// A batch run as admins see it: the run, its jobs by status and what they cost so far.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BatchSummary {
    #[serde(flatten)]
    pub run: BatchRun,
    pub jobs: JobCounts,
    /// LLM calls of the batch's jobs so far.
    pub llm_calls: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// What the batch's jobs cost so far, in US dollars.
    pub cost_usd: f64,
    /// What the provider's Batch API saved on them against the normal lane's price, in US
    /// dollars (0 for a run on the normal lane).
    pub saved_usd: f64,
    /// When its last job finished, once the run is enqueued and none of its jobs is
    /// unfinished (when it is enqueued, for a run that created no job); `None` until then, and
    /// for a skipped run.
    pub finished_at: Option<DateTime<Utc>>,
    /// The provider batches (the Batch API lane) its jobs were gathered into, oldest first,
    /// each with what it cost; empty for a run on the normal lane.
    pub provider_batches: Vec<ProviderBatchCost>,
}

/// A provider batch (one input file and one `POST /v1/batches`, see `provider_batches`) that
/// holds jobs of a run, and what it cost. Its counts and cost are the whole batch's: a batch
/// may also hold jobs of other runs.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ProviderBatchCost {
    /// Ours (`provider_batches.id`; the batch's `menus_batch` metadata at the provider).
    pub id: Uuid,
    /// The provider's id for it, once it accepted the batch.
    pub provider_batch_id: Option<String>,
    /// The configured endpoint's name, and the model every request asked.
    pub endpoint: String,
    pub model: String,
    /// `preparing`, `submitted`, `finished` or `collected`.
    pub status: String,
    /// The provider's status when last seen (`validating`, `in_progress`, `completed`,
    /// `expired`, `cancelled`, `failed`…).
    pub provider_status: Option<String>,
    /// Requests in its input file (one per job), then those answered, failed and expired.
    pub requests: i32,
    pub completed: i32,
    pub failed: i32,
    pub expired: i32,
    /// What its answers cost at the Batch API's price, in US dollars (0 until collected).
    pub cost_usd: f64,
    /// What that saved against the normal lane's price for the same tokens, in US dollars.
    pub saved_usd: f64,
}

/// A [`ProviderBatchCost`] and the run whose jobs it holds.
#[derive(sqlx::FromRow)]
struct RunProviderBatch {
    batch_id: Uuid,
    #[sqlx(flatten)]
    provider_batch: ProviderBatchCost,
}

#[derive(sqlx::FromRow)]
struct Totals {
    batch_id: Uuid,
    #[sqlx(flatten)]
    jobs: JobCounts,
    llm_calls: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
    cost_micros: i64,
    saved_micros: i64,
    last_finished_at: Option<DateTime<Utc>>,
}

/// The summaries of `runs`, with their jobs counted in one statement (and, when a run is on the
/// provider lane, its provider batches read in a second).
async fn summarize(
    conn: &mut PgConnection,
    runs: Vec<BatchRun>,
) -> Result<Vec<BatchSummary>, sqlx::Error> {
    let ids: Vec<Uuid> = runs.iter().map(|run| run.id).collect();
    let totals: Vec<Totals> = sqlx::query_as(
        "SELECT batch_id,
                count(*) FILTER (WHERE status = 'queued') AS queued,
                count(*) FILTER (WHERE status = 'running') AS running,
                count(*) FILTER (WHERE status = 'retrying') AS retrying,
                count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
                count(*) FILTER (WHERE status = 'failed') AS failed,
                count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
                coalesce(sum(llm_calls), 0)::bigint AS llm_calls,
                coalesce(sum(prompt_tokens), 0)::bigint AS prompt_tokens,
                coalesce(sum(completion_tokens), 0)::bigint AS completion_tokens,
                coalesce(sum(cost_micros), 0)::bigint AS cost_micros,
                coalesce(sum(batch_saved_micros), 0)::bigint AS saved_micros,
                max(finished_at) AS last_finished_at
         FROM generation_jobs WHERE batch_id = ANY($1)
         GROUP BY batch_id",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut provider_batches: HashMap<Uuid, Vec<ProviderBatchCost>> = HashMap::new();
    if runs.iter().any(|run| run.lane == BatchLaneMode::Provider) {
        let rows: Vec<RunProviderBatch> = sqlx::query_as(
            "SELECT r.batch_id, p.id, p.provider_batch_id, p.endpoint, p.model, p.status,
                    p.provider_status, p.requests, p.completed, p.failed, p.expired,
                    p.cost_micros / 1e6::float8 AS cost_usd,
                    p.saved_micros / 1e6::float8 AS saved_usd
             FROM (SELECT DISTINCT batch_id, provider_batch_id FROM generation_jobs
                   WHERE batch_id = ANY($1) AND provider_batch_id IS NOT NULL) AS r
             JOIN provider_batches p ON p.id = r.provider_batch_id
             ORDER BY p.created_at, p.id",
        )
        .bind(&ids)
        .fetch_all(conn)
        .await?;
        for row in rows {
            provider_batches
                .entry(row.batch_id)
                .or_default()
                .push(row.provider_batch);
        }
    }
    let mut totals: HashMap<Uuid, Totals> = totals.into_iter().map(|t| (t.batch_id, t)).collect();
    Ok(runs
        .into_iter()
        .map(|run| {
            let totals = totals.remove(&run.id);
            let jobs = totals.as_ref().map(|t| t.jobs).unwrap_or_default();
            let finished_at = match (run.status, &totals) {
                (RunStatus::Enqueued, Some(t)) if jobs.unfinished() == 0 => t.last_finished_at,
                (RunStatus::Enqueued, None) => run.enqueued_at,
                _ => None,
            };
            BatchSummary {
                jobs,
                llm_calls: totals.as_ref().map_or(0, |t| t.llm_calls),
                prompt_tokens: totals.as_ref().map_or(0, |t| t.prompt_tokens),
                completion_tokens: totals.as_ref().map_or(0, |t| t.completion_tokens),
                cost_usd: usd(totals.as_ref().map_or(0, |t| t.cost_micros)),
                saved_usd: usd(totals.as_ref().map_or(0, |t| t.saved_micros)),
                finished_at,
                provider_batches: provider_batches.remove(&run.id).unwrap_or_default(),
                run,
            }
        })
        .collect())
}

/// One run with its jobs by status and their cost; `None` if there is no such run.
#[tracing::instrument(skip_all, fields(batch_id = %id), err(level = "warn"))]
pub async fn summary(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<BatchSummary>, sqlx::Error> {
    let Some(run) = get(conn, id).await? else {
        return Ok(None);
    };
    Ok(summarize(conn, vec![run]).await?.pop())
}

/// A page of runs, newest first (`created_at DESC, id DESC`), after `before` (the last run of
/// the previous page), with their jobs counted in one statement for the whole page.
#[tracing::instrument(skip_all, fields(limit = limit), err(level = "warn"))]
pub async fn list(
    conn: &mut PgConnection,
    before: Option<Cursor>,
    limit: i64,
) -> Result<Vec<BatchSummary>, sqlx::Error> {
    let mut query = QueryBuilder::<Postgres>::new("SELECT ");
    query.push(COLUMNS).push(" FROM batch_runs WHERE true");
    Cursor::push_page(before, &mut query, limit);
    let rows: Vec<Row> = query.build_query_as().fetch_all(&mut *conn).await?;
    let runs = rows
        .into_iter()
        .map(Row::run)
        .collect::<Result<Vec<_>, _>>()?;
    summarize(conn, runs).await
}
