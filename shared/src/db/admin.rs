//! What admins see and do: jobs by filter (keyset pages), each job's attempts, requeueing one
//! job or every job a filter matches, the record of admin actions, and the statistics of the
//! overview. (Cancelling is a transition owners make too: `jobs::cancel`.)

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, Postgres, QueryBuilder};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::Cursor;
use super::jobs::{JobRow, Target};
use crate::job::JobStatus;
use crate::queue::Lane;

/// Which jobs an admin means. Every field narrows; an empty filter matches every job, so a bulk
/// action, whose body holds one, refuses it: at least one field (`minProperties: 1`). A field is
/// left out rather than `null`, which is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, IntoParams)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
#[into_params(parameter_in = Query)]
pub struct JobFilter {
    #[serde(
        default,
        deserialize_with = "domain::request::present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(nullable = false)]
    pub status: Option<JobStatus>,
    /// The code of the job's last error.
    #[serde(
        default,
        deserialize_with = "domain::request::present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(nullable = false, min_length = 1)]
    #[param(min_length = 1)]
    pub error_code: Option<String>,
    /// The person the jobs are for.
    #[serde(
        default,
        deserialize_with = "domain::request::present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(nullable = false)]
    pub user_id: Option<Uuid>,
    /// The batch the jobs were created in.
    #[serde(
        default,
        deserialize_with = "domain::request::present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(nullable = false)]
    pub batch_id: Option<Uuid>,
    /// Created at or after this time (RFC 3339).
    #[serde(
        default,
        deserialize_with = "domain::request::present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(nullable = false)]
    pub created_after: Option<DateTime<Utc>>,
    /// Created before this time (RFC 3339).
    #[serde(
        default,
        deserialize_with = "domain::request::present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(nullable = false)]
    pub created_before: Option<DateTime<Utc>>,
}

impl JobFilter {
    /// Appends `AND …` for every field set.
    pub(crate) fn push_conditions(&self, query: &mut QueryBuilder<Postgres>) {
        if let Some(status) = self.status {
            query.push(" AND status = ").push_bind(status);
        }
        if let Some(code) = &self.error_code {
            query
                .push(" AND last_error_code = ")
                .push_bind(code.clone());
        }
        if let Some(user) = self.user_id {
            query.push(" AND owner_id = ").push_bind(user);
        }
        if let Some(batch) = self.batch_id {
            query.push(" AND batch_id = ").push_bind(batch);
        }
        if let Some(after) = self.created_after {
            query.push(" AND created_at >= ").push_bind(after);
        }
        if let Some(before) = self.created_before {
            query.push(" AND created_at < ").push_bind(before);
        }
    }
}

/// Jobs matching `filter`, newest first, after `cursor`: at most `limit`.
#[tracing::instrument(skip_all, fields(filter = ?filter, limit = limit), err(level = "warn"))]
pub async fn list_jobs(
    conn: &mut PgConnection,
    filter: &JobFilter,
    cursor: Option<Cursor>,
    limit: i64,
) -> Result<Vec<JobRow>, sqlx::Error> {
    let mut query = QueryBuilder::new("SELECT * FROM generation_jobs WHERE true");
    filter.push_conditions(&mut query);
    Cursor::push_page(cursor, &mut query, limit);
    query.build_query_as().fetch_all(conn).await
}

/// One attempt of a job, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, ToSchema)]
pub struct Attempt {
    pub number: i32,
    pub worker_id: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub llm_calls: i32,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// What the attempt's LLM calls cost, in US dollars (its `cost_micros` ÷ 1e6).
    pub cost_usd: f64,
}

/// Every attempt of a job, first first.
#[tracing::instrument(skip_all, fields(job_id = %job_id), err(level = "warn"))]
pub async fn attempts(conn: &mut PgConnection, job_id: Uuid) -> Result<Vec<Attempt>, sqlx::Error> {
    sqlx::query_as(
        "SELECT number, worker_id, started_at, ended_at, outcome, error_code, error_message,
                llm_calls, prompt_tokens, completion_tokens, cost_micros / 1e6::float8 AS cost_usd
         FROM job_attempts WHERE job_id = $1 ORDER BY id",
    )
    .bind(job_id)
    .fetch_all(conn)
    .await
}

/// Why one job could not be requeued or cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    NotFound,
    /// The job's status does not allow it (requeue: not while running or once succeeded;
    /// cancel: only unfinished jobs).
    Status(JobStatus),
}

/// Makes the jobs of `target` that are requeueable (`JobStatus::is_requeueable`) due now:
/// failed and cancelled jobs go back to the queue, and queued or retrying ones (a push Redis
/// lost, a retry an admin does not want to wait for) are made due at once. Finished days are kept, so no day is paid for twice. Without
/// `reset_attempts` a failed job gets one more attempt; with it, all its attempts again (the
/// attempt budget, not the fence: a stale attempt stays fenced out). Running and succeeded jobs
/// are left alone. Returns the ids to push to Redis, with their lanes.
#[tracing::instrument(skip_all, fields(target = ?target, reset_attempts = reset_attempts), err(level = "warn"))]
pub async fn requeue(
    conn: &mut PgConnection,
    target: Target<'_>,
    reset_attempts: bool,
) -> Result<Vec<(Uuid, Lane)>, sqlx::Error> {
    let mut query = QueryBuilder::new(
        "UPDATE generation_jobs
         SET attempts = CASE WHEN ",
    );
    query
        .push_bind(reset_attempts)
        .push(
            " THEN 0 ELSE attempts END,
             max_attempts = CASE WHEN ",
        )
        .push_bind(reset_attempts)
        .push(
            " THEN max_attempts ELSE greatest(max_attempts, attempts + 1) END,
             status = CASE WHEN attempts = 0 OR ",
        )
        .push_bind(reset_attempts)
        .push(
            " THEN 'queued' ELSE 'retrying' END::job_status,
             last_error_code = NULL, last_error_message = NULL, finished_at = NULL,
             next_attempt_at = NULL, lease_expires_at = NULL, deadline_at = NULL, snoozes = 0,
             queued_at = now(), updated_at = now()
         WHERE status NOT IN ('running', 'succeeded')",
        );
    target.push_conditions(&mut query);
    query.push(" RETURNING id, batch_id");
    let rows: Vec<(Uuid, Option<Uuid>)> = query.build_query_as().fetch_all(conn).await?;
    Ok(rows
        .into_iter()
        .map(|(id, batch)| (id, Lane::of(batch)))
        .collect())
}

/// Why `id` was not acted on: missing, or its status.
#[tracing::instrument(skip_all, fields(job_id = %id), err(level = "warn"))]
pub async fn refusal(conn: &mut PgConnection, id: Uuid) -> Result<Refused, sqlx::Error> {
    let status: Option<JobStatus> =
        sqlx::query_scalar("SELECT status FROM generation_jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(conn)
            .await?;
    Ok(status.map_or(Refused::NotFound, Refused::Status))
}

/// One recorded admin action.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, ToSchema)]
pub struct Action {
    pub id: i64,
    pub admin_id: Uuid,
    pub admin_email: String,
    pub action: String,
    pub job_id: Option<Uuid>,
    /// The filter of a bulk action.
    #[schema(value_type = Option<JobFilter>)]
    pub filter: Option<sqlx::types::Json<serde_json::Value>>,
    pub affected: i32,
    pub created_at: DateTime<Utc>,
}

/// Records what an admin did (`action`, on one job or on the jobs `filter` matched, `affected`
/// of them); call in the transaction that did it.
#[tracing::instrument(skip_all, fields(admin_id = %admin_id, action = action, job_id = ?job_id, affected = affected), err(level = "warn"))]
pub async fn record(
    conn: &mut PgConnection,
    admin_id: Uuid,
    action: &str,
    job_id: Option<Uuid>,
    filter: Option<&JobFilter>,
    affected: usize,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO admin_actions (admin_id, action, job_id, filter, affected)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(admin_id)
    .bind(action)
    .bind(job_id)
    .bind(filter.map(sqlx::types::Json))
    .bind(i32::try_from(affected).unwrap_or(i32::MAX))
    .execute(conn)
    .await?;
    Ok(())
}

/// Admin actions, newest first, before the action with id `before`: at most `limit`.
#[tracing::instrument(skip_all, fields(before = ?before, limit = limit), err(level = "warn"))]
pub async fn actions(
    conn: &mut PgConnection,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Action>, sqlx::Error> {
    sqlx::query_as(
        "SELECT a.id, a.admin_id, u.email AS admin_email, a.action, a.job_id, a.filter,
                a.affected, a.created_at
         FROM admin_actions a JOIN users u ON u.id = a.admin_id
         WHERE $1::bigint IS NULL OR a.id < $1
         ORDER BY a.id DESC LIMIT $2",
    )
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Jobs finished in a recent span, and how many failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, sqlx::FromRow, ToSchema)]
pub struct Throughput {
    pub succeeded: i64,
    pub failed: i64,
    /// Failed ÷ finished (0 when nothing finished).
    pub failure_rate: f64,
    /// What those jobs' LLM calls cost, in US dollars.
    pub cost_usd: f64,
    /// What the Batch API's discount saved on them against the normal lane, in US dollars.
    pub batch_saved_usd: f64,
}

/// What the job table says about the system now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct JobStats {
    pub by_status: std::collections::BTreeMap<String, i64>,
    /// Age of the oldest job that is due and not running, in seconds.
    pub oldest_waiting_secs: Option<f64>,
    pub last_5_minutes: Throughput,
    pub last_60_minutes: Throughput,
}

/// Jobs by status, the oldest waiting job's age, and the jobs finished over the last 5 and 60
/// minutes (five statements on one connection).
#[tracing::instrument(skip_all, err(level = "warn"))]
pub async fn stats(conn: &mut PgConnection) -> Result<JobStats, sqlx::Error> {
    let counts: Vec<(JobStatus, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM generation_jobs GROUP BY status")
            .fetch_all(&mut *conn)
            .await?;
    let oldest_waiting_secs: Option<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM now() - min(queued_at))::float8 FROM generation_jobs
         WHERE status IN ('queued', 'retrying') AND queued_at <= now()",
    )
    .fetch_one(&mut *conn)
    .await?;
    let throughput = |minutes: i32| {
        sqlx::query_as::<_, Throughput>(
            "SELECT count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
                    count(*) FILTER (WHERE status = 'failed') AS failed,
                    coalesce(count(*) FILTER (WHERE status = 'failed')::float8
                             / nullif(count(*), 0), 0) AS failure_rate,
                    coalesce(sum(cost_micros), 0) / 1e6::float8 AS cost_usd,
                    coalesce(sum(batch_saved_micros), 0) / 1e6::float8 AS batch_saved_usd
             FROM generation_jobs
             WHERE status IN ('succeeded', 'failed')
               AND finished_at > now() - make_interval(mins => $1)",
        )
        .bind(minutes)
    };
    let last_5_minutes = throughput(5).fetch_one(&mut *conn).await?;
    let last_60_minutes = throughput(60).fetch_one(&mut *conn).await?;
    Ok(JobStats {
        by_status: counts
            .into_iter()
            .map(|(s, n)| (s.as_str().to_string(), n))
            .collect(),
        oldest_waiting_secs,
        last_5_minutes,
        last_60_minutes,
    })
}
