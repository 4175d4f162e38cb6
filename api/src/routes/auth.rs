//! Accounts: register, log in, renew and end a session, change a password, who am I, and what
//! one's requests have cost. (An admin's change of an account is in `crate::admin`.)
//!
//! Whatever hashes a password runs under the per-address rate limit and the hashing bound. No
//! database connection is held while a password is hashed.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use shared::db::jobs;
use shared::db::sessions as sessions_db;
use shared::db::users::{self, Role, User};
use shared::password;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{self, CurrentUser};
use crate::email::{Email, checked_email};
use crate::error::{ApiError, Envelope};
use crate::extract::JsonBody;
use crate::openapi::{
    InvalidBody, JsonBodyRefusals, ServerRefusals, SignedInRefusals, TooManyRequests,
};
use crate::rate_limit::ClientAddr;
use crate::sessions::{self, Issued};
use crate::state::AppState;
use crate::views::{AccountUsageView, UserView};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(change_password))
        .routes(routes!(usage))
}

/// The roles anyone may sign up with; admins are made by operators.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum SignupRole {
    #[default]
    User,
    Coach,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Registration {
    /// An address of a plausible shape (`name@example.com`), at most 254 characters once
    /// trimmed; one account per address, compared case-insensitively.
    email: Email,
    /// 12 to 1,024 characters, not the email.
    #[schema(min_length = 12, max_length = 1024)]
    password: String,
    /// Default `user`.
    #[serde(default)]
    role: SignupRole,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Credentials {
    email: String,
    password: String,
}

/// A refresh token, to renew a session's access token.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Refresh {
    /// The `refresh_token` of the last register, login or refresh answer.
    #[schema(min_length = 1, max_length = 200)]
    refresh_token: String,
}

/// A new password, with the current one.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    /// 12 to 1,024 characters, not the email.
    #[schema(min_length = 12, max_length = 1024)]
    new_password: String,
}

/// What register, login, refresh and a password change answer: the account, a short-lived
/// access token and the refresh token that renews it.
#[derive(Serialize, ToSchema)]
struct Session {
    user: UserView,
    /// The access token: send as `Authorization: Bearer <token>`.
    token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    token_type: &'static str,
    /// Seconds until the access token expires (`TOKEN_TTL_SECS`, 900 by default).
    expires_in: u64,
    /// Trades for a new access token (and a new refresh token) at `POST /v1/auth/refresh`;
    /// each works once. Keep it secret.
    refresh_token: String,
    /// Seconds until the session ends and the refresh token stops working
    /// (`REFRESH_TTL_SECS`, 30 days by default).
    refresh_expires_in: u64,
}

impl Session {
    /// Opens a session for `user`.
    async fn open(state: &AppState, user: User) -> Result<Session, ApiError> {
        let issued =
            sessions::open(state, &user, state.session_lifetime, state.tokens.ttl()).await?;
        Ok(Session::of(state, user, issued))
    }

    fn of(state: &AppState, user: User, issued: Issued) -> Session {
        Session {
            token: issued.access_token,
            token_type: "Bearer",
            expires_in: state.tokens.ttl().as_secs(),
            refresh_token: issued.refresh_token,
            refresh_expires_in: state.session_lifetime.as_secs(),
            user: user.into(),
        }
    }
}

/// Creates an account (role `user` or `coach`) and logs it in.
#[utoipa::path(
    post,
    path = "/v1/auth/register",
    operation_id = "register",
    tag = "auth",
    request_body = Registration,
    responses(
        (status = 201, description = "The account, and a token for it", body = Session),
        (
            status = 403,
            description = "`registration_disabled`: this server does not take sign-ups",
            body = Envelope,
        ),
        (
            status = 409,
            description = "`email_taken`: an account with this email exists",
            body = Envelope,
        ),
        (
            status = 422,
            description = "`unknown_field`, `missing_field`, `invalid_type`: the body does not \
                fit the schema; `validation_failed`: `invalid_email`, or the password's \
                `invalid_length` or `password_is_email` (in `details`)",
            body = Envelope,
        ),
        (status = 429, response = TooManyRequests),
        JsonBodyRefusals,
        ServerRefusals,
    )
)]
async fn register(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    JsonBody(body): JsonBody<Registration>,
) -> Result<(StatusCode, Json<Session>), ApiError> {
    if !state.registration_enabled {
        return Err(ApiError::RegistrationDisabled);
    }
    let mut problems = Vec::new();
    let email = checked_email("email", &body.email.0).unwrap_or_else(|e| {
        problems.push(e);
        String::new()
    });
    problems.extend(password::problem("password", &body.password, &body.email.0));
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    state.login_limit.check(&addr)?;
    let hash = hash_password(&state, body.password).await?;
    let role = match body.role {
        SignupRole::User => Role::User,
        SignupRole::Coach => Role::Coach,
    };
    let user = users::insert(
        &mut *shared::db::hold(&state.db, "auth").await?,
        &email,
        &hash,
        role,
    )
    .await
    .map_err(|e| match shared::db::unique_violation(&e) {
        Some(_) => ApiError::EmailTaken,
        None => e.into(),
    })?;
    Ok((
        StatusCode::CREATED,
        Json(Session::open(&state, user).await?),
    ))
}

/// Exchanges an email and password for a token.
#[utoipa::path(
    post,
    path = "/v1/auth/login",
    operation_id = "login",
    tag = "auth",
    request_body = Credentials,
    responses(
        (status = 200, description = "The account, and a token for it", body = Session),
        (
            status = 401,
            description = "`invalid_credentials`: no account has this email and password",
            body = Envelope,
        ),
        (
            status = 422,
            description = "`unknown_field`, `missing_field`, `invalid_type`: the body does not \
                fit the schema",
            body = Envelope,
        ),
        (status = 429, response = TooManyRequests),
        JsonBodyRefusals,
        ServerRefusals,
    )
)]
async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    JsonBody(body): JsonBody<Credentials>,
) -> Result<Json<Session>, ApiError> {
    let user = auth::authenticate(&state, addr, &body.email, body.password).await?;
    Ok(Json(Session::open(&state, user).await?))
}

/// Trades a refresh token for a new access token and a new refresh token.
///
/// The refresh token given stops working. Using one a second time (a copy in other hands) ends
/// its session: both holders must log in again.
#[utoipa::path(
    post,
    path = "/v1/auth/refresh",
    operation_id = "refresh",
    tag = "auth",
    request_body = Refresh,
    responses(
        (status = 200, description = "The account, and new tokens", body = Session),
        (
            status = 401,
            description = "`invalid_token`: not a refresh token of ours, used before, or its \
                session ended (logout, password change, disabled account, expired)",
            body = Envelope,
        ),
        (status = 422, response = InvalidBody),
        (status = 429, response = TooManyRequests),
        JsonBodyRefusals,
        ServerRefusals,
    )
)]
async fn refresh(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    JsonBody(body): JsonBody<Refresh>,
) -> Result<Json<Session>, ApiError> {
    state.login_limit.check(&addr)?;
    let (user, issued) = sessions::refresh(&state, &body.refresh_token).await?;
    Ok(Json(Session::of(&state, user, issued)))
}

/// Ends the caller's session: its access and refresh tokens stop working at once.
#[utoipa::path(
    post,
    path = "/v1/auth/logout",
    operation_id = "logout",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The session is ended"),
        SignedInRefusals,
    )
)]
async fn logout(
    State(state): State<AppState>,
    caller: CurrentUser,
) -> Result<StatusCode, ApiError> {
    sessions::end(&state, caller.id, caller.session).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's account.
#[utoipa::path(
    get,
    path = "/v1/me",
    operation_id = "me",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's account", body = UserView),
        SignedInRefusals,
    )
)]
async fn me(
    State(state): State<AppState>,
    caller: CurrentUser,
) -> Result<Json<UserView>, ApiError> {
    let mut conn = shared::db::hold(&state.db, "auth").await?;
    // A valid token for an account that was deleted since.
    let user = users::find_by_id(&mut conn, caller.id)
        .await?
        .ok_or(ApiError::SessionEnded)?;
    Ok(Json(user.into()))
}

/// Changes the caller's password.
///
/// Every other session of the account ends at once; this one goes on with new tokens (the
/// answer), since the old ones stop working too.
#[utoipa::path(
    put,
    path = "/v1/me/password",
    operation_id = "change_password",
    tag = "auth",
    security(("bearer" = [])),
    request_body = PasswordChange,
    responses(
        (status = 200, description = "The account, and new tokens", body = Session),
        (
            status = 403,
            description = "`invalid_credentials`: `current_password` is wrong",
            body = Envelope,
        ),
        (
            status = 422,
            description = "`unknown_field`, `missing_field`, `invalid_type`: the body does not \
                fit the schema; `validation_failed`: the new password's `invalid_length` or \
                `password_is_email` (in `details`)",
            body = Envelope,
        ),
        (status = 429, response = TooManyRequests),
        JsonBodyRefusals,
        SignedInRefusals,
    )
)]
async fn change_password(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    caller: CurrentUser,
    JsonBody(body): JsonBody<PasswordChange>,
) -> Result<Json<Session>, ApiError> {
    let email = {
        let mut conn = shared::db::hold(&state.db, "auth").await?;
        users::find_by_id(&mut conn, caller.id)
            .await?
            .ok_or(ApiError::SessionEnded)?
            .email
    };
    if let Some(problem) = password::problem("new_password", &body.new_password, &email) {
        return Err(ApiError::Validation(vec![problem]));
    }
    // The current password is checked as a login checks it, throttle included, so a stolen
    // access token cannot be used to guess it faster.
    let user = match auth::authenticate(&state, addr, &email, body.current_password).await {
        Err(ApiError::InvalidCredentials) => return Err(ApiError::Forbidden(WRONG_PASSWORD)),
        other => other?,
    };
    let hash = hash_password(&state, body.new_password).await?;
    let mut tx = state.db.begin().await?;
    users::set_password(&mut tx, user.id, &hash).await?;
    sessions_db::revoke_all(&mut tx, user.id, None).await?;
    tx.commit().await?;
    sessions::account_changed(&state, user.id).await;
    Ok(Json(Session::open(&state, user).await?))
}

/// The argon2id hash of a new password, computed under the hashing bound, off the async threads.
async fn hash_password(state: &AppState, password: String) -> Result<String, ApiError> {
    state
        .hasher
        .run(move || password::hash(&password))
        .await?
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("hash a password: {e}")))
}

/// What a password change answers when the current password is wrong.
const WRONG_PASSWORD: &str = "current_password is not this account's password";

/// What the caller's requests have cost: LLM calls, tokens and US dollars over every job they
/// submitted.
#[utoipa::path(
    get,
    path = "/v1/me/usage",
    operation_id = "my_usage",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Totals over the caller's jobs", body = AccountUsageView),
        SignedInRefusals,
    )
)]
async fn usage(
    State(state): State<AppState>,
    caller: CurrentUser,
) -> Result<Json<AccountUsageView>, ApiError> {
    let totals =
        jobs::usage_of(&mut *shared::db::hold(&state.db, "auth").await?, caller.id).await?;
    Ok(Json(AccountUsageView::from(totals)))
}

#[cfg(test)]
mod tests {
    use utoipa::PartialSchema;

    use super::*;

    #[test]
    fn the_documented_password_length_is_the_checked_one() {
        for (schema, field) in [
            (Registration::schema(), "password"),
            (PasswordChange::schema(), "new_password"),
        ] {
            let schema = serde_json::to_value(schema).unwrap();
            let password = &schema["properties"][field];
            assert_eq!(password["minLength"], *password::LENGTH.start());
            assert_eq!(password["maxLength"], *password::LENGTH.end());
        }
    }
}
