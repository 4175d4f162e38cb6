//! Coaches and their clients: a coach invites by email, the client accepts, and from then on
//! the coach may submit menus for the client and read the client's jobs and menus, until either
//! side ends the link (the coach removes the client, or the client leaves the coach). After
//! that the former coach is answered as anyone else: 404 on the client's jobs and menus,
//! `client_not_found` for `client_id`. The jobs and menus stay the client's.

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

use crate::auth::CurrentUser;
use crate::email::{Email, checked_email};
use crate::error::{ApiError, Envelope};
use crate::extract::{Id, JsonBody};
use crate::openapi::{InvalidBody, JsonBodyRefusals, SignedInRefusals};
use crate::state::AppState;

/// The coaching routes: invitations, links, and ending a link from either side.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(invite))
        .routes(routes!(clients))
        .routes(routes!(remove_client))
        .routes(routes!(invitations))
        .routes(routes!(accept))
        .routes(routes!(coaches))
        .routes(routes!(leave_coach))
}

/// The body of `POST /v1/coach/invitations`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Invitation {
    /// The client's email address; they see the invitation once they have an account with it.
    email: Email,
}

/// A list of links.
#[derive(Serialize, ToSchema)]
struct Links {
    items: Vec<Link>,
}

/// What anyone but a coach is told on the coach's routes.
const COACHES_ONLY: &str = "only coach accounts may do this";

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
        (
            status = 403,
            description = "`forbidden`: the caller is not a coach",
            body = Envelope,
        ),
        (status = 422, response = InvalidBody),
        JsonBodyRefusals,
        SignedInRefusals,
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
    let email = checked_email("email", &body.email.0).map_err(|e| ApiError::Validation(vec![e]))?;
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
        (
            status = 403,
            description = "`forbidden`: the caller is not a coach",
            body = Envelope,
        ),
        SignedInRefusals,
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

/// Ends the link with a client: from now on the coach may no longer submit for them nor read
/// their jobs and menus (404, as for anyone's), jobs the coach submitted for them included, which
/// stay the client's.
///
/// Removing again answers 404: the link is gone, as for someone never linked. An open (not yet
/// accepted) invitation is not a client and is not removed here.
#[utoipa::path(
    delete,
    path = "/v1/coach/clients/{client_id}",
    operation_id = "remove_client",
    tag = "coaching",
    security(("bearer" = [])),
    params(("client_id" = Uuid, Path, description = "The client's account id")),
    responses(
        (status = 204, description = "The link ended"),
        (
            status = 403,
            description = "`forbidden`: the caller is not a coach",
            body = Envelope,
        ),
        (
            status = 404,
            description = "`client_not_found`: no client with this id has an accepted link with \
                the caller (never linked, the link already ended, or an id that is not a UUID)",
            body = Envelope,
        ),
        SignedInRefusals,
    )
)]
async fn remove_client(
    State(state): State<AppState>,
    caller: CurrentUser,
    client_id: Result<Id, ApiError>,
) -> Result<StatusCode, ApiError> {
    if caller.role != Role::Coach {
        return Err(ApiError::Forbidden(COACHES_ONLY));
    }
    let Ok(Id(client_id)) = client_id else {
        return Err(ApiError::ClientNotFound);
    };
    let mut conn = shared::db::hold(&state.db, "coaching").await?;
    if coaching::unlink(&mut conn, caller.id, client_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::ClientNotFound)
    }
}

/// The caller's coaches: those whose invitation they accepted, who may act for them now.
#[utoipa::path(
    get,
    path = "/v1/me/coaches",
    operation_id = "list_coaches",
    tag = "coaching",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's accepted links, oldest first", body = Links),
        SignedInRefusals,
    )
)]
async fn coaches(
    State(state): State<AppState>,
    caller: CurrentUser,
) -> Result<Json<Links>, ApiError> {
    let mut conn = shared::db::hold(&state.db, "coaching").await?;
    let items = coaching::coaches_of(&mut conn, caller.id).await?;
    Ok(Json(Links { items }))
}

/// Leaves a coach: from now on they may no longer submit for the caller nor read the caller's
/// jobs and menus. The caller keeps every job and menu, those the coach submitted included.
///
/// Any account may be a client (invitations go by email), so any role may leave. Leaving again
/// answers 404: the link is gone, as for a coach never accepted.
#[utoipa::path(
    delete,
    path = "/v1/me/coaches/{coach_id}",
    operation_id = "leave_coach",
    tag = "coaching",
    security(("bearer" = [])),
    params(("coach_id" = Uuid, Path, description = "The coach's account id")),
    responses(
        (status = 204, description = "The link ended"),
        (
            status = 404,
            description = "`not_found`: the caller has no accepted link with a coach of this id \
                (never accepted, the link already ended, or an id that is not a UUID)",
            body = Envelope,
        ),
        SignedInRefusals,
    )
)]
async fn leave_coach(
    State(state): State<AppState>,
    caller: CurrentUser,
    Id(coach_id): Id,
) -> Result<StatusCode, ApiError> {
    let mut conn = shared::db::hold(&state.db, "coaching").await?;
    if coaching::unlink(&mut conn, coach_id, caller.id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("coach"))
    }
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
        SignedInRefusals,
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
/// From then on the coach may submit menus for the caller and read their jobs and menus, until
/// either of them ends the link. No body is read.
#[utoipa::path(
    post,
    path = "/v1/invitations/{id}/accept",
    operation_id = "accept_invitation",
    tag = "coaching",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The invitation's (link's) id")),
    responses(
        (status = 200, description = "The link, accepted", body = Link),
        (
            status = 404,
            description = "`not_found`: no open invitation with this id is addressed to the \
                caller (an id that is not a UUID included)",
            body = Envelope,
        ),
        SignedInRefusals,
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
