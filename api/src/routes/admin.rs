//! The admin API (role `admin`; anyone else gets 403): jobs by filter, one job with its attempts,
//! requeue and cancel (one, or every job a filter matches), the audit log and the statistics.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::db::Cursor;
use shared::db::admin::{self, Action, Attempt, JobFilter};
use shared::db::jobs;
use shared::job::JobStatus;
use shared::request::FieldError;
use uuid::Uuid;

use crate::admin::{self as ops, Stats};
use crate::auth::AdminUser;
use crate::error::ApiError;
use crate::extract::{Id, JsonBody, QueryParams};
use crate::pagination;
use crate::routes::jobs::JobView;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/jobs", get(list_jobs))
        .route("/v1/admin/jobs/requeue", post(requeue_matching))
        .route("/v1/admin/jobs/cancel", post(cancel_matching))
        .route("/v1/admin/jobs/{id}", get(show_job))
        .route("/v1/admin/jobs/{id}/requeue", post(requeue_one))
        .route("/v1/admin/jobs/{id}/cancel", post(cancel_one))
        .route("/v1/admin/actions", get(list_actions))
        .route("/v1/admin/stats", get(stats))
}

/// The filter from query parameters: `status`, `error_code`, `user_id`, `batch_id`,
/// `created_after`, `created_before` (RFC 3339).
pub fn filter_from(params: &QueryParams) -> Result<JobFilter, ApiError> {
    let status = params
        .text("status")
        .filter(|s| !s.is_empty())
        .map(|s| {
            serde_json::from_value::<JobStatus>(serde_json::Value::String(s.to_string())).map_err(
                |_| {
                    ApiError::Validation(vec![FieldError::new(
                        "status",
                        "invalid_value",
                        "status must be one of queued, running, retrying, succeeded, failed, cancelled",
                    )])
                },
            )
        })
        .transpose()?;
    let time = |name: &str| -> Result<Option<DateTime<Utc>>, ApiError> {
        params
            .text(name)
            .filter(|s| !s.is_empty())
            .map(|raw| {
                DateTime::parse_from_rfc3339(raw)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| {
                        ApiError::Validation(vec![FieldError::new(
                            name,
                            "invalid_value",
                            format!(
                                "{name} must be an RFC 3339 time, such as 2026-11-26T09:00:00Z"
                            ),
                        )])
                    })
            })
            .transpose()
    };
    Ok(JobFilter {
        status,
        error_code: params
            .text("error_code")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        user_id: params.uuid("user_id")?,
        batch_id: params.uuid("batch_id")?,
        created_after: time("created_after")?,
        created_before: time("created_before")?,
    })
}

#[derive(Serialize)]
struct JobPage {
    items: Vec<JobView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

async fn list_jobs(
    State(state): State<AppState>,
    _admin: AdminUser,
    params: QueryParams,
) -> Result<Json<JobPage>, ApiError> {
    let filter = filter_from(&params)?;
    let limit = params.int(
        "limit",
        pagination::PAGE_SIZE,
        pagination::DEFAULT_PAGE_SIZE,
    )?;
    let cursor = params.text("cursor").map(pagination::decode).transpose()?;
    let rows = admin::list_jobs(
        &mut *shared::db::hold(&state.db, "admin").await?,
        &filter,
        cursor,
        limit + 1,
    )
    .await?;
    let (rows, next_cursor) = pagination::split(rows, limit, |j| Cursor {
        created_at: j.created_at,
        id: j.id,
    });
    Ok(Json(JobPage {
        items: rows.into_iter().map(JobView::from).collect(),
        next_cursor,
    }))
}

/// A job as admins see it: its view and every attempt.
#[derive(Serialize)]
struct AdminJob {
    job: JobView,
    attempts: Vec<Attempt>,
}

async fn show_job(
    State(state): State<AppState>,
    _admin: AdminUser,
    Id(id): Id,
) -> Result<Json<AdminJob>, ApiError> {
    let mut conn = shared::db::hold(&state.db, "admin").await?;
    let job = jobs::get(&mut conn, id)
        .await?
        .ok_or(ApiError::NotFound("job"))?;
    let attempts = admin::attempts(&mut conn, id).await?;
    Ok(Json(AdminJob {
        job: job.into(),
        attempts,
    }))
}

/// `?reset_attempts=true` gives the job all its attempts again (default: one more attempt).
async fn requeue_one(
    State(state): State<AppState>,
    admin: AdminUser,
    Id(id): Id,
    params: QueryParams,
) -> Result<Json<JobView>, ApiError> {
    let reset = params.flag("reset_attempts")?;
    ops::requeue_one(state.stores(), admin.id, id, reset).await?;
    job_view(&state, id).await
}

async fn cancel_one(
    State(state): State<AppState>,
    admin: AdminUser,
    Id(id): Id,
) -> Result<Json<JobView>, ApiError> {
    ops::cancel_one(state.stores(), admin.id, id).await?;
    job_view(&state, id).await
}

async fn job_view(state: &AppState, id: Uuid) -> Result<Json<JobView>, ApiError> {
    let job = jobs::get(&mut *shared::db::hold(&state.db, "admin").await?, id)
        .await?
        .ok_or(ApiError::NotFound("job"))?;
    Ok(Json(job.into()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Bulk {
    filter: JobFilter,
    #[serde(default)]
    reset_attempts: bool,
}

/// A bulk action must name what it acts on: an empty filter would touch every job.
fn checked(filter: JobFilter) -> Result<JobFilter, ApiError> {
    if filter == JobFilter::default() {
        return Err(ApiError::Validation(vec![FieldError::new(
            "filter",
            "empty",
            "give at least one filter field (status, error_code, user_id, batch_id, created_after, created_before)",
        )]));
    }
    Ok(filter)
}

#[derive(Serialize)]
struct Requeued {
    requeued: usize,
}

async fn requeue_matching(
    State(state): State<AppState>,
    admin: AdminUser,
    JsonBody(bulk): JsonBody<Bulk>,
) -> Result<Json<Requeued>, ApiError> {
    let filter = checked(bulk.filter)?;
    let requeued = ops::requeue_matching(
        state.stores(),
        admin.id,
        &filter,
        bulk.reset_attempts,
        &ops::no_progress,
    )
    .await?;
    Ok(Json(Requeued { requeued }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkCancel {
    filter: JobFilter,
}

#[derive(Serialize)]
struct Cancelled {
    cancelled: usize,
}

async fn cancel_matching(
    State(state): State<AppState>,
    admin: AdminUser,
    JsonBody(bulk): JsonBody<BulkCancel>,
) -> Result<Json<Cancelled>, ApiError> {
    let filter = checked(bulk.filter)?;
    let cancelled = ops::cancel_matching(state.stores(), admin.id, &filter).await?;
    Ok(Json(Cancelled { cancelled }))
}

#[derive(Serialize)]
struct ActionPage {
    items: Vec<Action>,
    next_cursor: Option<String>,
}

/// The audit log, newest first; the cursor is the last action's id.
async fn list_actions(
    State(state): State<AppState>,
    _admin: AdminUser,
    params: QueryParams,
) -> Result<Json<ActionPage>, ApiError> {
    let limit = params.int(
        "limit",
        pagination::PAGE_SIZE,
        pagination::DEFAULT_PAGE_SIZE,
    )?;
    let before = params
        .text("cursor")
        .map(|c| c.parse::<i64>().map_err(|_| pagination::invalid_cursor()))
        .transpose()?;
    let mut items = admin::actions(
        &mut *shared::db::hold(&state.db, "admin").await?,
        before,
        limit + 1,
    )
    .await?;
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|a| a.id.to_string())
    } else {
        None
    };
    Ok(Json(ActionPage { items, next_cursor }))
}

async fn stats(State(state): State<AppState>, _admin: AdminUser) -> Result<Json<Stats>, ApiError> {
    Ok(Json(ops::stats(state.stores()).await?))
}
