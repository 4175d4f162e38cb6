//! The weekly batch for admins: start one by hand for a period (or see what it would do), list
//! and read batch runs with their jobs by status and cost, and requeue a batch's failed jobs.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use shared::batch::BatchLaneMode;
use shared::batch::enqueue::{self, Plan, Started};
use shared::db::batch_runs::BatchSummary;
use utoipa::openapi::schema::{AnyOfBuilder, Schema};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Requeued;
use crate::admin::ops;
use crate::auth::AdminUser;
use crate::error::{ApiError, Envelope};
use crate::extract::{Id, JsonBody, Query};
use crate::openapi::{AdminPageRefusals, AdminRefusals, ItemRefusals, JsonBodyRefusals};
use crate::pagination::PageParams;
use crate::state::AppState;
use crate::views::batch_url;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start, list))
        .routes(routes!(show))
        .routes(routes!(requeue_failed))
}

/// What to start.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct BatchStart {
    /// The period's first day: each opted-in person's menu starts on their weekday
    /// (`weekly_start_day`) within the seven days from it. Tomorrow in the schedule's zone
    /// (`BATCH_TIMEZONE`) when absent; at most 28 days before and 366 days after today there.
    #[serde(default)]
    period_start: Option<NaiveDate>,
    /// `true`: only count whom the batch would generate for and whom it would skip; nothing
    /// is written.
    #[serde(default)]
    dry_run: bool,
    /// How the batch's jobs reach the model: `normal` (one Chat Completions call per day, the
    /// default) or `provider` (first as one whole-menu request per person through the
    /// provider's Batch API: half the price, answered within 24 hours).
    #[serde(default)]
    lane: BatchLaneMode,
}

/// The body of a 200 from `POST /v1/admin/batches`: with `dry_run`, what a batch for the
/// period would do now (`Plan`); without, the batch started earlier for the same period
/// (`BatchSummary`). Documented as `anyOf`, not `oneOf`: a summary has every field a plan has.
#[derive(Serialize)]
#[serde(untagged)]
enum StartAnswer {
    Plan(Plan),
    Existing(Box<BatchSummary>),
}

impl PartialSchema for StartAnswer {
    fn schema() -> RefOr<Schema> {
        AnyOfBuilder::new()
            .item(Ref::from_schema_name(Plan::name()))
            .item(Ref::from_schema_name(BatchSummary::name()))
            .description(Some(
                "With `dry_run`, what a batch for the period would do now (`Plan`); without, \
                 the batch started earlier for the same period (`BatchSummary`)",
            ))
            .into()
    }
}

impl ToSchema for StartAnswer {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((Plan::name().into(), Plan::schema()));
        Plan::schemas(schemas);
        schemas.push((BatchSummary::name().into(), BatchSummary::schema()));
        BatchSummary::schemas(schemas);
    }
}

/// Starts the weekly batch for a period, now, or says what it would do.
///
/// A manual batch is one per period, however often it is asked for: 202 with the new batch
/// (a worker's scheduler creates its jobs within seconds), 200 with the one started earlier for
/// the same period. With `dry_run`, 200 with the counts a batch would have now, and nothing is
/// written. A new batch is recorded in the audit log (`batch_start`).
#[utoipa::path(
    post,
    path = "/v1/admin/batches",
    operation_id = "admin_start_batch",
    tag = "admin",
    security(("bearer" = ["admin"])),
    request_body = BatchStart,
    responses(
        (
            status = 202,
            description = "Started: the batch's run was recorded; its jobs are being created",
            body = BatchSummary,
            headers(("Location" = String, description = "The batch's URL")),
        ),
        (
            status = 200,
            description = "With `dry_run`: what the batch would do (`Plan`). Without: a batch \
                was started for this period before, and this is it (`BatchSummary`, with \
                `Location`)",
            body = StartAnswer,
            headers(("Location" = String, description = "The batch's URL (not with `dry_run`)")),
        ),
        (
            status = 422,
            description = "`unknown_field`, `invalid_type`: the body does not fit the schema; \
                `validation_failed`: `period_start` is not a date (YYYY-MM-DD) or is out of \
                range, or `lane` is neither `normal` nor `provider`",
            body = Envelope,
        ),
        JsonBodyRefusals,
        AdminRefusals,
    )
)]
async fn start(
    State(state): State<AppState>,
    admin: AdminUser,
    JsonBody(body): JsonBody<BatchStart>,
) -> Result<Response, ApiError> {
    let period_start = ops::batch_period(state.batch_timezone, body.period_start)?;
    if body.dry_run {
        let plan = enqueue::dry_run(&state.db, period_start).await?;
        return Ok(Json(StartAnswer::Plan(plan)).into_response());
    }
    let started = ops::start_batch(
        state.stores(),
        admin.id,
        state.batch_timezone,
        period_start,
        body.lane,
    )
    .await?;
    let (created, id) = match &started {
        Started::Created(run) => (true, run.id),
        Started::Existing(run) => (false, run.id),
    };
    let summary = ops::batch(state.stores(), id).await?;
    let location =
        HeaderValue::try_from(batch_url(id)).map_err(|e| ApiError::Internal(e.into()))?;
    let location = [(header::LOCATION, location)];
    Ok(match created {
        true => (StatusCode::ACCEPTED, location, Json(summary)).into_response(),
        false => (location, Json(StartAnswer::Existing(Box::new(summary)))).into_response(),
    })
}

#[derive(Serialize, ToSchema)]
struct BatchPage {
    items: Vec<BatchSummary>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

/// Batch runs, newest first: scheduled, caught up, skipped and manual ones.
#[utoipa::path(
    get,
    path = "/v1/admin/batches",
    operation_id = "admin_list_batches",
    tag = "admin",
    security(("bearer" = ["admin"])),
    params(PageParams),
    responses(
        (status = 200, description = "A page of batch runs", body = BatchPage),
        AdminPageRefusals,
    )
)]
async fn list(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(PageParams { limit, cursor }): Query<PageParams>,
) -> Result<Json<BatchPage>, ApiError> {
    let (items, next_cursor) = ops::batches_page(state.stores(), cursor, limit).await?;
    Ok(Json(BatchPage { items, next_cursor }))
}

/// One batch run, with its jobs by status and what they cost.
#[utoipa::path(
    get,
    path = "/v1/admin/batches/{id}",
    operation_id = "admin_get_batch",
    tag = "admin",
    security(("bearer" = ["admin"])),
    params(("id" = Uuid, Path, description = "The batch's id")),
    responses(
        (status = 200, description = "The batch run", body = BatchSummary),
        AdminRefusals,
        ItemRefusals,
    )
)]
async fn show(
    State(state): State<AppState>,
    _admin: AdminUser,
    Id(id): Id,
) -> Result<Json<BatchSummary>, ApiError> {
    Ok(Json(ops::batch(state.stores(), id).await?))
}

/// Requeues every failed job of a batch.
///
/// Each gets one more attempt, its finished days kept; in one transaction, recorded in the
/// audit log as a bulk requeue (`requeue_matching`, filter `batch_id` and `status: failed`).
#[utoipa::path(
    post,
    path = "/v1/admin/batches/{id}/requeue-failed",
    operation_id = "admin_requeue_failed_batch_jobs",
    tag = "admin",
    security(("bearer" = ["admin"])),
    params(("id" = Uuid, Path, description = "The batch's id")),
    responses(
        (status = 200, description = "How many jobs were requeued", body = Requeued),
        AdminRefusals,
        ItemRefusals,
    )
)]
async fn requeue_failed(
    State(state): State<AppState>,
    admin: AdminUser,
    Id(id): Id,
) -> Result<Json<Requeued>, ApiError> {
    let requeued = ops::requeue_failed(state.stores(), admin.id, id).await?;
    Ok(Json(Requeued { requeued }))
}
