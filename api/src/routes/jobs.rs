//! A generation job as its owner (or the owner's coach) sees it: status, progress, attempts,
//! the last error and the cost so far; long-polled with `?wait=`; cancelled with DELETE; and the
//! caller's own jobs, newest first (the weekly batch's among them).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use shared::db::Cursor;
use shared::db::admin::{self, JobFilter};
use shared::db::jobs::Target;
use shared::job::JobStatus;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::admin::filter;
use crate::auth::CurrentUser;
use crate::error::{ApiError, Envelope};
use crate::extract::{FromQuery, Id, Query, QueryParams};
use crate::openapi::{CancelRefusals, InvalidQuery, ItemRefusals, SignedInRefusals};
use crate::pagination::{self, PageParams};
use crate::state::AppState;
use crate::views::{JobPage, JobView, visible_job};

/// `?wait=` in seconds: long enough to save most polls, short enough for proxies' idle limits.
const WAIT_SECS: (i64, i64) = (0, 25);
/// A long poll answers this much before the request timeout would cut it off.
const WAIT_MARGIN: Duration = Duration::from_secs(1);

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show, cancel))
}

/// The query of `GET /v1/jobs`, besides the page.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobListParams {
    /// Only jobs in this state.
    pub status: Option<JobStatus>,
}

impl FromQuery for JobListParams {
    fn from_query(params: &QueryParams) -> Result<Self, ApiError> {
        params.non_empty("status")?;
        Ok(JobListParams {
            status: filter::status_param(params)?,
        })
    }
}

/// The query of `GET /v1/jobs/{id}`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitParams {
    /// Long poll: answer when the job changes or finishes, or after this many seconds,
    /// whichever comes first (at once when it has finished already). Without it, or 0, the job
    /// now. The wait ends a second before the request timeout, and at once when the server
    /// shuts down.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 25, default = 0)]
    pub wait: Duration,
}

impl FromQuery for WaitParams {
    fn from_query(params: &QueryParams) -> Result<Self, ApiError> {
        let secs = params.int("wait", WAIT_SECS, 0)?;
        Ok(WaitParams {
            wait: Duration::from_secs(secs.unsigned_abs()),
        })
    }
}

/// The caller's jobs, newest first.
///
/// The jobs whose menus are for the caller: those they submitted, those their coach submitted
/// for them, and their weekly batch jobs (`batch_id` set), which they may cancel like any other.
#[utoipa::path(
    get,
    path = "/v1/jobs",
    operation_id = "list_jobs",
    tag = "jobs",
    security(("bearer" = [])),
    params(PageParams, JobListParams),
    responses(
        (status = 200, description = "A page of the caller's jobs", body = JobPage),
        (status = 400, response = InvalidQuery),
        (
            status = 422,
            description = "`invalid_type`: `limit` is not an integer; `validation_failed`: an \
                unknown or empty `status`, `limit` out of range or a `cursor` not of its shape",
            body = Envelope,
        ),
        SignedInRefusals,
    )
)]
async fn list(
    State(state): State<AppState>,
    caller: CurrentUser,
    Query(PageParams { limit, cursor }): Query<PageParams>,
    Query(only): Query<JobListParams>,
) -> Result<Json<JobPage>, ApiError> {
    let filter = JobFilter {
        status: only.status,
        user_id: Some(caller.id),
        ..JobFilter::default()
    };
    let mut conn = shared::db::hold(&state.db, "jobs").await?;
    // One more than asked tells whether another page follows.
    let rows = admin::list_jobs(&mut conn, &filter, cursor, limit + 1).await?;
    let (rows, next_cursor) = pagination::split(rows, limit, |j| Cursor {
        created_at: j.created_at,
        id: j.id,
    });
    Ok(Json(JobPage {
        items: rows.into_iter().map(JobView::from).collect(),
        next_cursor,
    }))
}

/// A job, now or long-polled.
///
/// The job now, or with `?wait=N` once it changes (or is finished), or after N seconds.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    operation_id = "get_job",
    tag = "jobs",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The job's id"),
        WaitParams,
    ),
    responses(
        (
            status = 200,
            description = "The job",
            body = JobView,
            links(
                ("GetMenu" = (
                    operation_id = "get_menu",
                    parameters(("id" = "$response.body#/menu_id")),
                    description = "The menu, once the job has succeeded (`menu_id` is `null` before)"
                )),
                ("GetGroceryList" = (
                    operation_id = "get_grocery_list",
                    parameters(("id" = "$response.body#/menu_id")),
                    description = "The menu's grocery list, once the job has succeeded"
                )),
            ),
        ),
        (status = 400, response = InvalidQuery),
        (
            status = 422,
            description = "`invalid_type`: `wait` is not an integer; `validation_failed`: `wait` \
                is out of range",
            body = Envelope,
        ),
        ItemRefusals,
    )
)]
async fn show(
    State(state): State<AppState>,
    caller: CurrentUser,
    Id(id): Id,
    Query(WaitParams { wait }): Query<WaitParams>,
) -> Result<Json<JobView>, ApiError> {
    let wait = wait.min(state.request_timeout.saturating_sub(WAIT_MARGIN));
    let mut changes = state.events.listen(id);
    let job = visible_job(&state, id, caller.id).await?;
    if job.status.is_terminal() || wait.is_zero() {
        return Ok(Json(job.into()));
    }
    // No connection is held here: `visible_job` returned its connection to the pool.
    tokio::select! {
        _ = tokio::time::timeout(wait, changes.changed()) => {}
        _ = state.stopping.cancelled() => {}
    }
    Ok(Json(visible_job(&state, id, caller.id).await?.into()))
}

/// Cancels a job that has not finished.
///
/// The worker running it stops within a second: no new call to the model starts, and one in
/// flight is dropped.
#[utoipa::path(
    delete,
    path = "/v1/jobs/{id}",
    operation_id = "cancel_job",
    tag = "jobs",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job, cancelled", body = JobView),
        CancelRefusals,
    )
)]
async fn cancel(
    State(state): State<AppState>,
    caller: CurrentUser,
    Id(id): Id,
) -> Result<Json<JobView>, ApiError> {
    let target = Target::Job {
        id,
        viewer: Some(caller.id),
    };
    let cancelled = !state.life.cancel(target, None).await?.is_empty();
    let job = visible_job(&state, id, caller.id).await?;
    if !cancelled {
        // Not visible (404 above), or finished before the cancel.
        return Err(ApiError::JobFinished);
    }
    Ok(Json(job.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_wait_is_the_checked_one() {
        let document = serde_json::to_value(crate::routes::documented().into_openapi()).unwrap();
        let parameters = document["paths"]["/v1/jobs/{id}"]["get"]["parameters"]
            .as_array()
            .unwrap();
        let wait = &parameters.iter().find(|p| p["name"] == "wait").unwrap()["schema"];
        assert_eq!(
            (&wait["minimum"], &wait["maximum"]),
            (&WAIT_SECS.0.into(), &WAIT_SECS.1.into())
        );
    }
}
