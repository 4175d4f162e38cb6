//! The overview's statistics for admins, as JSON (the dashboard's overview shows the same).

use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::admin::ops::{self, Stats};
use crate::auth::AdminUser;
use crate::error::{ApiError, Envelope};
use crate::openapi::{AdminOnly, Unauthenticated, Unavailable};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stats))
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
