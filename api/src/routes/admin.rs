//! The admin API (role `admin`; anyone else gets 403): jobs by filter, one job with its attempts,
//! requeue and cancel (one, or every job a filter matches), the audit log and the statistics;
//! and the weekly batches (`super::batches`).

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use domain::field_error::FieldError;
use serde::{Deserialize, Serialize};
use shared::db::Cursor;
use shared::db::admin::{self, Action, Attempt, JobFilter};
use shared::db::jobs;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::admin::{self as ops, Stats};
use crate::auth::AdminUser;
use crate::error::{ApiError, Envelope};
use crate::extract::{FromQuery, Id, JsonBody, Query, QueryParams};
use crate::openapi::{
    AdminOnly, BodyTooLarge, Internal, InvalidFilter, InvalidPage, InvalidQuery, MalformedJson,
    NotFound, NotJson, Unauthenticated, Unavailable,
};
use crate::pagination::{self, PageParams};
use crate::routes::jobs::{JobPage, JobView, status_param};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs))
        .routes(routes!(requeue_matching))
        .routes(routes!(cancel_matching))
        .routes(routes!(show_job))
        .routes(routes!(requeue_one))
        .routes(routes!(cancel_one))
        .routes(routes!(list_actions))
        .routes(routes!(stats))
        .merge(super::batches::routes())
}

/// The filter from query parameters: `status`, `error_code`, `user_id`, `batch_id`,
/// `created_after`, `created_before` (RFC 3339).
pub fn filter_from(params: &QueryParams) -> Result<JobFilter, ApiError> {
    let status = status_param(params)?;
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

/// The filter parameters as the JSON API reads them: as [`filter_from`] does (which the
/// dashboard's forms share), but a parameter given empty is refused, as its schema says, where a
/// form's empty field means "any".
impl FromQuery for JobFilter {
    fn from_query(params: &QueryParams) -> Result<Self, ApiError> {
        for name in FILTER_PARAMS {
            params.non_empty(name)?;
        }
        filter_from(params)
    }
}

/// The query parameters of a [`JobFilter`].
const FILTER_PARAMS: [&str; 6] = [
    "status",
    "error_code",
    "user_id",
    "batch_id",
    "created_after",
    "created_before",
];

/// Jobs of every user, newest first, narrowed by the filter parameters.
#[utoipa::path(
    get,
    path = "/v1/admin/jobs",
    operation_id = "admin_list_jobs",
    tag = "admin",
    security(("bearer" = ["admin"])),
    params(JobFilter, PageParams),
    responses(
        (status = 200, description = "A page of jobs", body = JobPage),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthenticated),
        (status = 403, response = AdminOnly),
        (
            status = 422,
            description = "`invalid_type`: `limit` is not an integer, or `user_id` or \
                `batch_id` not a UUID; `validation_failed`: a filter parameter given empty, an \
                unknown `status`, a time that is not RFC 3339, `limit` out of range, or a \
                `cursor` not of its shape",
            body = Envelope,
        ),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
async fn list_jobs(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(filter): Query<JobFilter>,
    Query(PageParams { limit, cursor }): Query<PageParams>,
) -> Result<Json<JobPage>, ApiError> {
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
#[derive(Serialize, ToSchema)]
struct AdminJob {
    job: JobView,
    attempts: Vec<Attempt>,
}

/// Any job, with every attempt.
#[utoipa::path(
    get,
    path = "/v1/admin/jobs/{id}",
    operation_id = "admin_get_job",
    tag = "admin",
    security(("bearer" = ["admin"])),
    params(("id" = Uuid, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job and its attempts, first first", body = AdminJob),
        (status = 401, response = Unauthenticated),
        (status = 403, response = AdminOnly),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
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

/// The query of `POST /v1/admin/jobs/{id}/requeue`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
struct RequeueParams {
    /// `true`: all its attempts again; `false` (the default): one more.
    #[param(value_type = Option<bool>, default = false)]
    reset_attempts: bool,
}

impl FromQuery for RequeueParams {
    fn from_query(params: &QueryParams) -> Result<Self, ApiError> {
        Ok(RequeueParams {
            reset_attempts: params.flag("reset_attempts")?,
        })
    }
}

/// Requeues a job that is not running or succeeded.
///
/// A failed or cancelled job goes back to the queue, its finished days kept;
/// `?reset_attempts=true` gives it all its attempts again (default: one more attempt). A
/// waiting job (queued or retrying) is pushed to the queue again and made due at once, in case
/// Redis lost it.
#[utoipa::path(
    post,
    path = "/v1/admin/jobs/{id}/requeue",
    operation_id = "admin_requeue_job",
    tag = "admin",
    security(("bearer" = ["admin"])),
    params(
        ("id" = Uuid, Path, description = "The job's id"),
        RequeueParams,
    ),
    responses(
        (status = 200, description = "The job, queued again", body = JobView),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthenticated),
        (status = 403, response = AdminOnly),
        (status = 404, response = NotFound),
        (
            status = 409,
            description = "`not_requeueable`: the job is running or succeeded",
            body = Envelope,
        ),
        (
            status = 422,
            description = "`validation_failed`: `reset_attempts` is neither `true` nor `false`",
            body = Envelope,
        ),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
async fn requeue_one(
    State(state): State<AppState>,
    admin: AdminUser,
    Id(id): Id,
    Query(RequeueParams { reset_attempts }): Query<RequeueParams>,
) -> Result<Json<JobView>, ApiError> {
    ops::requeue_one(state.stores(), admin.id, id, reset_attempts).await?;
    job_view(&state, id).await
}

/// Cancels a job that has not finished.
#[utoipa::path(
    post,
    path = "/v1/admin/jobs/{id}/cancel",
    operation_id = "admin_cancel_job",
    tag = "admin",
    security(("bearer" = ["admin"])),
    params(("id" = Uuid, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job, cancelled", body = JobView),
        (status = 401, response = Unauthenticated),
        (status = 403, response = AdminOnly),
        (status = 404, response = NotFound),
        (
            status = 409,
            description = "`job_finished`: the job has finished and can no longer be cancelled",
            body = Envelope,
        ),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = BulkRequeue)]
struct Bulk {
    /// The jobs to requeue: at least one field must be set.
    filter: JobFilter,
    /// `true`: all their attempts again; `false` (the default): one more.
    #[serde(default)]
    reset_attempts: bool,
}

/// How many jobs a bulk requeue requeued (also a batch's "requeue failed").
#[derive(Serialize, ToSchema)]
pub(super) struct Requeued {
    pub(super) requeued: usize,
}

/// Requeues every job a filter matches that is not running or succeeded.
///
/// In one transaction, recorded in the audit log. Finished days are kept.
#[utoipa::path(
    post,
    path = "/v1/admin/jobs/requeue",
    operation_id = "admin_requeue_jobs",
    tag = "admin",
    security(("bearer" = ["admin"])),
    request_body = Bulk,
    responses(
        (status = 200, description = "How many jobs were requeued", body = Requeued),
        (status = 400, response = MalformedJson),
        (status = 401, response = Unauthenticated),
        (status = 403, response = AdminOnly),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = NotJson),
        (status = 422, response = InvalidFilter),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
async fn requeue_matching(
    State(state): State<AppState>,
    admin: AdminUser,
    JsonBody(bulk): JsonBody<Bulk>,
) -> Result<Json<Requeued>, ApiError> {
    let requeued = ops::requeue_matching(
        state.stores(),
        admin.id,
        &bulk.filter,
        bulk.reset_attempts,
        &shared::lifecycle::no_progress,
    )
    .await?;
    Ok(Json(Requeued { requeued }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct BulkCancel {
    /// The jobs to cancel: at least one field must be set.
    filter: JobFilter,
}

#[derive(Serialize, ToSchema)]
struct Cancelled {
    cancelled: usize,
}

/// Cancels every unfinished job a filter matches.
///
/// In one transaction, recorded in the audit log.
#[utoipa::path(
    post,
    path = "/v1/admin/jobs/cancel",
    operation_id = "admin_cancel_jobs",
    tag = "admin",
    security(("bearer" = ["admin"])),
    request_body = BulkCancel,
    responses(
        (status = 200, description = "How many jobs were cancelled", body = Cancelled),
        (status = 400, response = MalformedJson),
        (status = 401, response = Unauthenticated),
        (status = 403, response = AdminOnly),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = NotJson),
        (status = 422, response = InvalidFilter),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
async fn cancel_matching(
    State(state): State<AppState>,
    admin: AdminUser,
    JsonBody(bulk): JsonBody<BulkCancel>,
) -> Result<Json<Cancelled>, ApiError> {
    let cancelled = ops::cancel_matching(state.stores(), admin.id, &bulk.filter).await?;
    Ok(Json(Cancelled { cancelled }))
}

#[derive(Serialize, ToSchema)]
struct ActionPage {
    items: Vec<Action>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

/// The most digits of an audit log cursor, an action's id in decimal: 18 always fit an `i64`.
/// An empty cursor is the first page, like an absent one.
const ACTION_CURSOR_DIGITS: usize = 18;

/// The query of the audit log: a page whose cursor is the last action's id.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
struct ActionPageParams {
    /// Items per page.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100, default = 20)]
    limit: i64,
    /// The `next_cursor` of the page before, as it was given; absent or empty: the first page.
    #[param(rename = "cursor", value_type = Option<String>, pattern = "^([0-9]{1,18})?$")]
    before: Option<i64>,
}

impl FromQuery for ActionPageParams {
    fn from_query(params: &QueryParams) -> Result<Self, ApiError> {
        let digits = |c: &str| {
            (1..=ACTION_CURSOR_DIGITS).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_digit())
        };
        let before = match params.text("cursor") {
            None | Some("") => None,
            Some(c) if digits(c) => Some(c.parse().map_err(|_| pagination::invalid_cursor())?),
            Some(_) => return Err(pagination::invalid_cursor()),
        };
        Ok(ActionPageParams {
            limit: pagination::limit(params)?,
            before,
        })
    }
}

/// The audit log, newest first; the cursor is the last action's id.
#[utoipa::path(
    get,
    path = "/v1/admin/actions",
    operation_id = "admin_list_actions",
    tag = "admin",
    security(("bearer" = ["admin"])),
    params(ActionPageParams),
    responses(
        (status = 200, description = "A page of admin actions", body = ActionPage),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthenticated),
        (status = 403, response = AdminOnly),
        (status = 422, response = InvalidPage),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
async fn list_actions(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(ActionPageParams { limit, before }): Query<ActionPageParams>,
) -> Result<Json<ActionPage>, ApiError> {
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

/// The overview statistics.
///
/// Jobs by status and throughput, queue depth, LLM calls and 429s per model, open circuits,
/// the budget in use, and this process's database pool.
#[utoipa::path(
    get,
    path = "/v1/admin/stats",
    operation_id = "admin_stats",
    tag = "admin",
    security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "The statistics", body = Stats),
        (status = 401, response = Unauthenticated),
        (status = 403, response = AdminOnly),
        (
            status = 500,
            description = "`internal`: something failed on the server's side, Redis being \
                unreachable included",
            body = Envelope,
        ),
        (status = 503, response = Unavailable),
    )
)]
async fn stats(State(state): State<AppState>, _admin: AdminUser) -> Result<Json<Stats>, ApiError> {
    Ok(Json(ops::stats(state.stores()).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_audit_page_is_the_checked_one() {
        let params = ActionPageParams::into_params(|| None);
        let schema = |name: &str| {
            let param = params.iter().find(|p| p.name == name).unwrap();
            serde_json::to_value(&param.schema).unwrap()
        };
        let limit = schema("limit");
        assert_eq!(
            (&limit["minimum"], &limit["maximum"], &limit["default"]),
            (
                &pagination::PAGE_SIZE.0.into(),
                &pagination::PAGE_SIZE.1.into(),
                &pagination::DEFAULT_PAGE_SIZE.into()
            )
        );
        assert_eq!(
            schema("cursor")["pattern"],
            format!("^([0-9]{{1,{ACTION_CURSOR_DIGITS}}})?$")
        );
        assert!(ACTION_CURSOR_DIGITS < i64::MAX.to_string().len());
    }

    #[test]
    fn the_documented_filter_parameters_are_the_read_ones() {
        let documented: Vec<String> = JobFilter::into_params(|| None)
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(documented, FILTER_PARAMS);
    }
}
