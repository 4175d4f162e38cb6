//! The audit log for admins: what admins did, newest first, a page at a time (the cursor is the
//! last action's id).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use shared::db::admin::Action;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::admin::audit_page::ActionPageParams;
use crate::admin::ops;
use crate::auth::AdminUser;
use crate::error::ApiError;
use crate::extract::Query;
use crate::openapi::AdminPageRefusals;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_actions))
}

#[derive(Serialize, ToSchema)]
struct ActionPage {
    items: Vec<Action>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    next_cursor: Option<String>,
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
        AdminPageRefusals,
    )
)]
async fn list_actions(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(ActionPageParams { limit, before }): Query<ActionPageParams>,
) -> Result<Json<ActionPage>, ApiError> {
    let (items, next_cursor) = ops::actions_page(state.stores(), before, limit).await?;
    Ok(Json(ActionPage { items, next_cursor }))
}
