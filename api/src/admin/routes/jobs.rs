//! Jobs for admins: any person's, by filter, one with its attempts, and requeue and cancel (one
//! job, or every job a filter matches).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use shared::db::admin::{Attempt, JobFilter};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::Requeued;
use crate::admin::ops;
use crate::auth::AdminUser;
use crate::error::{ApiError, Envelope};
use crate::extract::{FromQuery, Id, JsonBody, Query, QueryParams};
use crate::openapi::{
    AdminOnly, AdminRefusals, BulkRefusals, CancelRefusals, InvalidQuery, ItemRefusals,
};
use crate::pagination::PageParams;
use crate::state::AppState;
use crate::views::{JobPage, JobView};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs))
        .routes(routes!(requeue_matching))
        .routes(routes!(cancel_matching))
        .routes(routes!(show_job))
        .routes(routes!(requeue_one))
        .routes(routes!(cancel_one))
}

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
        (
            status = 422,
            description = "`invalid_type`: `limit` is not an integer, or `user_id` or \
                `batch_id` not a UUID; `validation_failed`: a filter parameter given empty, an \
                unknown `status`, a time that is not RFC 3339, `limit` out of range, or a \
                `cursor` not of its shape",
            body = Envelope,
        ),
        AdminRefusals,
    )
)]
async fn list_jobs(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(filter): Query<JobFilter>,
    Query(PageParams { limit, cursor }): Query<PageParams>,
) -> Result<Json<JobPage>, ApiError> {
    let (rows, next_cursor) = ops::jobs_page(state.stores(), &filter, cursor, limit).await?;
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
        AdminRefusals,
        ItemRefusals,
    )
)]
async fn show_job(
    State(state): State<AppState>,
    _admin: AdminUser,
    Id(id): Id,
) -> Result<Json<AdminJob>, ApiError> {
    let (job, attempts) = ops::job_with_attempts(state.stores(), id).await?;
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
        AdminRefusals,
        ItemRefusals,
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
        (status = 403, response = AdminOnly),
        CancelRefusals,
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

/// The job as it is now, for the answer to an action on it.
async fn job_view(state: &AppState, id: Uuid) -> Result<Json<JobView>, ApiError> {
    Ok(Json(ops::job(state.stores(), id).await?.into()))
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
        BulkRefusals,
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
        BulkRefusals,
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
