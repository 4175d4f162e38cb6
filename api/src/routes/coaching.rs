//! Coaches and their clients: a coach invites by email, the client accepts, and from then on
//! the coach may submit menus for the client and read the client's jobs and menus.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use shared::db::coaching::{self, Link};
use shared::db::users::{self, Role};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::auth::CurrentUser;
use crate::error::ApiError;
use crate::extract::{Id, JsonBody};
use crate::routes::auth::checked_email;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/coach/invitations", post(invite))
        .route("/v1/coach/clients", get(clients))
        .route("/v1/invitations", get(invitations))
        .route("/v1/invitations/{id}/accept", post(accept))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Invitation {
    email: String,
}

#[derive(Serialize)]
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
async fn invitations(
    State(state): State<AppState>,
    caller: CurrentUser,
) -> Result<Json<Links>, ApiError> {
    let mut conn = shared::db::hold(&state.db, "coaching").await?;
    let email = email_of(&mut conn, &caller).await?;
    let items = coaching::pending_for(&mut conn, &email).await?;
    Ok(Json(Links { items }))
}

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
