//! Accounts for admins: read one with what its jobs have cost, change its role, or disable or
//! re-enable it.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use shared::db::users::Role;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::admin::ops;
use crate::auth::AdminUser;
use crate::error::{ApiError, Envelope};
use crate::extract::{Id, JsonBody};
use crate::openapi::{AdminRefusals, ItemRefusals, JsonBodyRefusals};
use crate::sessions;
use crate::state::AppState;
use crate::views::{AccountUsageView, UserView};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show_account, update_account))
}

/// An account as admins see it: the account, and what the jobs for it (whoever submitted them:
/// its owner, a coach or the weekly batch) have cost.
#[derive(Serialize, ToSchema)]
struct AdminAccount {
    #[serde(flatten)]
    account: UserView,
    #[serde(flatten)]
    usage: AccountUsageView,
}

/// Any account, with the LLM calls, tokens and US dollars its jobs have cost.
#[utoipa::path(
    get,
    path = "/v1/admin/users/{id}",
    operation_id = "admin_get_account",
    tag = "admin",
    security(("bearer" = ["admin"])),
    params(("id" = Uuid, Path, description = "The account")),
    responses(
        (status = 200, description = "The account and its jobs' cost", body = AdminAccount),
        AdminRefusals,
        ItemRefusals,
    )
)]
async fn show_account(
    State(state): State<AppState>,
    _admin: AdminUser,
    Id(id): Id,
) -> Result<Json<AdminAccount>, ApiError> {
    let (user, usage) = ops::account(state.stores(), id).await?;
    Ok(Json(AdminAccount {
        account: user.into(),
        usage: usage.into(),
    }))
}

/// What an admin changes of an account; at least one field.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
struct AccountChange {
    #[serde(default, deserialize_with = "domain::request::present")]
    #[schema(nullable = false)]
    role: Option<Role>,
    /// `true` ends its sessions and refuses its logins; `false` lets it log in again.
    #[serde(default, deserialize_with = "domain::request::present")]
    #[schema(nullable = false)]
    disabled: Option<bool>,
}

/// Changes an account's role, or disables or re-enables it. Takes effect on the account's next
/// request: its tokens carry the new role, and a disabled account's sessions end.
#[utoipa::path(
    patch,
    path = "/v1/admin/users/{id}",
    operation_id = "update_account",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The account")),
    request_body = AccountChange,
    responses(
        (status = 200, description = "The account as it is now", body = UserView),
        (
            status = 422,
            description = "`unknown_field`, `invalid_type`: the body does not fit the schema; \
                `validation_failed`: the body changes nothing (`empty_change`), or an admin \
                would disable or demote their own account (`own_account`)",
            body = Envelope,
        ),
        JsonBodyRefusals,
        AdminRefusals,
        ItemRefusals,
    )
)]
async fn update_account(
    State(state): State<AppState>,
    admin: AdminUser,
    Id(id): Id,
    JsonBody(body): JsonBody<AccountChange>,
) -> Result<Json<UserView>, ApiError> {
    let user = ops::update_account(state.stores(), admin.id, id, body.role, body.disabled).await?;
    sessions::account_changed(&state, id).await;
    Ok(Json(user.into()))
}
