//! Coaches and their clients: a coach invites by email, the client accepts, and from then on
//! the coach may submit menus for the client and read the client's jobs and menus.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use shared::db::coaching::{self, Link};
use shared::db::users::{self, Role};
use sqlx::PgConnection;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::CurrentUser;
use crate::error::{ApiError, Envelope};
use crate::extract::{Id, JsonBody};
use crate::openapi::{
    BodyTooLarge, Internal, InvalidBody, MalformedJson, NotJson, Unauthenticated, Unavailable,
};
use crate::routes::auth::checked_email;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(invite))
        .routes(routes!(clients))
        .routes(routes!(invitations))
        .routes(routes!(accept))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Invitation {
    /// The client's email address; they see the invitation once they have an account with it.
    email: String,
}

#[derive(Serialize, ToSchema)]
struct Links {
    items: Vec<Link>,
}

const COACHES_ONLY: &str = "only coach accounts may do this";

/// Whose jobs and menus a request is about: the caller's own, or with `client_id` a linked
/// client's (coaches only). A client who is not linked is reported as not found.
pub(crate) async fn acting_for(
    conn: &mut PgConnection,
    caller: &CurrentUser,
    client_id: Option<Uuid>,
) -> Result<Uuid, ApiError> {
    let Some(client_id) = client_id else {
        return Ok(caller.id);
    };
    if caller.role != Role::Coach {
        return Err(ApiError::Forbidden(
            "only coach accounts may act for a client (client_id)",
        ));
    }
    if coaching::is_client(conn, caller.id, client_id).await? {
        Ok(client_id)
    } else {
        Err(ApiError::ClientNotFound)
    }
}

/// Invites a client by email; inviting the same address again answers the existing link.
#[utoipa::path(
    post,
    path = "/v1/coach/invitations",
    operation_id = "invite_client",
    tag = "coaching",
    security(("bearer" = [])),
    request_body = Invitation,
    responses(
        (status = 201, description = "The link, not yet accepted", body = Link),
        (status = 400, response = MalformedJson),
        (status = 401, response = Unauthenticated),
        (
            status = 403,
            description = "`forbidden`: the caller is not a coach",
            body = Envelope,
        ),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = NotJson),
        (status = 422, response = InvalidBody),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
async fn invite(
    State(state): State<AppState>,
    caller: CurrentUser,
    JsonBody(body): JsonBody<Invitation>,
) -> Result<(StatusCode, Json<Link>), ApiError> {
    if caller.role != Role::Coach {
        return Err(ApiError::Forbidden(COACHES_ONLY));
    }
    let email = checked_email("email", &body.email).map_err(|e| ApiError::Validation(vec![e]))?;
    let mut conn = shared::db::hold(&state.db, "coaching").await?;
    let link = coaching::invite(&mut conn, caller.id, &email).await?;
    Ok((StatusCode::CREATED, Json(link)))
}

/// The caller's links to clients, accepted or not.
#[utoipa::path(
    get,
    path = "/v1/coach/clients",
    operation_id = "list_clients",
    tag = "coaching",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The coach's links, oldest first", body = Links),
        (status = 401, response = Unauthenticated),
        (
            status = 403,
            description = "`forbidden`: the caller is not a coach",
            body = Envelope,
        ),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
async fn clients(
    State(state): State<AppState>,
    caller: CurrentUser,
) -> Result<Json<Links>, ApiError> {
    if caller.role != Role::Coach {
        return Err(ApiError::Forbidden(COACHES_ONLY));
    }
    let mut conn = shared::db::hold(&state.db, "coaching").await?;
    let items = coaching::links_of(&mut conn, caller.id).await?;
    Ok(Json(Links { items }))
}

/// Open invitations addressed to the caller's email.
#[utoipa::path(
    get,
    path = "/v1/invitations",
    operation_id = "list_invitations",
    tag = "coaching",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Open invitations, oldest first", body = Links),
        (status = 401, response = Unauthenticated),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
async fn invitations(
    State(state): State<AppState>,
    caller: CurrentUser,
) -> Result<Json<Links>, ApiError> {
    let mut conn = shared::db::hold(&state.db, "coaching").await?;
    let email = email_of(&mut conn, &caller).await?;
    let items = coaching::pending_for(&mut conn, &email).await?;
    Ok(Json(Links { items }))
}

/// Accepts an invitation addressed to the caller.
///
/// From then on the coach may submit menus for the caller and read their jobs and menus. No
/// body is read.
#[utoipa::path(
    post,
    path = "/v1/invitations/{id}/accept",
    operation_id = "accept_invitation",
    tag = "coaching",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The invitation's (link's) id")),
    responses(
        (status = 200, description = "The link, accepted", body = Link),
        (status = 401, response = Unauthenticated),
        (
            status = 404,
            description = "`not_found`: no open invitation with this id is addressed to the \
                caller (an id that is not a UUID included)",
            body = Envelope,
        ),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
async fn accept(
    State(state): State<AppState>,
    caller: CurrentUser,
    Id(id): Id,
) -> Result<Json<Link>, ApiError> {
    let mut conn = shared::db::hold(&state.db, "coaching").await?;
    let email = email_of(&mut conn, &caller).await?;
    coaching::accept(&mut conn, id, caller.id, &email)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("invitation"))
}

/// Invitations go by email, which the token does not carry.
async fn email_of(conn: &mut PgConnection, caller: &CurrentUser) -> Result<String, ApiError> {
    users::find_by_id(conn, caller.id)
        .await?
        .map(|u| u.email)
        .ok_or(ApiError::InvalidToken)
}
