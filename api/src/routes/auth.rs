//! Accounts: register, log in, and who am I.
//!
//! Both register and login hash a password, so both run under the per-address rate limit and
//! the hashing bound. No database connection is held while a password is hashed.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use shared::db::jobs;
use shared::db::users::{self, Role, User};
use shared::password;
use shared::request::FieldError;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::CurrentUser;
use crate::error::{ApiError, Envelope};
use crate::extract::JsonBody;
use crate::openapi::{
    BodyTooLarge, Internal, MalformedJson, NotJson, TooManyRequests, Unauthenticated, Unavailable,
};
use crate::rate_limit::ClientAddr;
use crate::state::AppState;

const PASSWORD_CHARS: (usize, usize) = (8, 128);
/// The longest address SMTP can deliver to.
const EMAIL_CHARS: usize = 254;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(me))
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
    email: String,
    #[schema(min_length = 8, max_length = 128)]
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

#[derive(Serialize, ToSchema)]
#[schema(as = User)]
struct UserView {
    id: Uuid,
    email: String,
    role: Role,
}

impl From<User> for UserView {
    fn from(user: User) -> Self {
        UserView {
            id: user.id,
            email: user.email,
            role: user.role,
        }
    }
}

/// What register and login answer: the account and a token for it.
#[derive(Serialize, ToSchema)]
struct Session {
    user: UserView,
    /// Send as `Authorization: Bearer <token>`.
    token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    token_type: &'static str,
    /// Seconds until the token expires.
    expires_in: u64,
}

impl Session {
    fn for_user(state: &AppState, user: User) -> Result<Session, ApiError> {
        Ok(Session {
            token: state.tokens.issue(user.id, user.role)?,
            token_type: "Bearer",
            expires_in: state.tokens.ttl().as_secs(),
            user: user.into(),
        })
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
        (status = 400, response = MalformedJson),
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
        (status = 413, response = BodyTooLarge),
        (status = 415, response = NotJson),
        (
            status = 422,
            description = "`unknown_field`, `missing_field`, `invalid_type`: the body does not \
                fit the schema; `validation_failed`: `invalid_email` or the password's \
                `invalid_length` (in `details`)",
            body = Envelope,
        ),
        (status = 429, response = TooManyRequests),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
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
    let email = checked_email("email", &body.email).unwrap_or_else(|e| {
        problems.push(e);
        String::new()
    });
    let chars = body.password.chars().count();
    if !(PASSWORD_CHARS.0..=PASSWORD_CHARS.1).contains(&chars) {
        problems.push(FieldError::new(
            "password",
            "invalid_length",
            format!(
                "password must be {} to {} characters long",
                PASSWORD_CHARS.0, PASSWORD_CHARS.1
            ),
        ));
    }
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    state.login_limit.check(&addr)?;
    let password = body.password;
    let hash = state
        .hasher
        .run(move || password::hash(&password))
        .await?
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("hash a password: {e}")))?;
    let role = match body.role {
        SignupRole::User => Role::User,
        SignupRole::Coach => Role::Coach,
    };
    let mut conn = shared::db::hold(&state.db, "auth").await?;
    let user = users::insert(&mut conn, &email, &hash, role)
        .await
        .map_err(|e| match shared::db::unique_violation(&e) {
            Some(_) => ApiError::EmailTaken,
            None => e.into(),
        })?;
    Ok((StatusCode::CREATED, Json(Session::for_user(&state, user)?)))
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
        (status = 400, response = MalformedJson),
        (
            status = 401,
            description = "`invalid_credentials`: no account has this email and password",
            body = Envelope,
        ),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = NotJson),
        (
            status = 422,
            description = "`unknown_field`, `missing_field`, `invalid_type`: the body does not \
                fit the schema",
            body = Envelope,
        ),
        (status = 429, response = TooManyRequests),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    JsonBody(body): JsonBody<Credentials>,
) -> Result<Json<Session>, ApiError> {
    state.login_limit.check(&addr)?;
    let user = {
        let mut conn = shared::db::hold(&state.db, "auth").await?;
        users::find_by_email(&mut conn, body.email.trim()).await?
    };
    // An unknown email is verified against a dummy hash, so it takes as long as a wrong
    // password and the answer's timing does not tell which accounts exist.
    let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
    let password = body.password;
    let matches = state
        .hasher
        .run(move || match &stored_hash {
            Some(hash) => password::verify(&password, hash),
            None => password::verify(&password, password::dummy_hash()),
        })
        .await?;
    match user {
        Some(user) if matches => Ok(Json(Session::for_user(&state, user)?)),
        _ => Err(ApiError::InvalidCredentials),
    }
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
        (status = 401, response = Unauthenticated),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
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
        .ok_or(ApiError::InvalidToken)?;
    Ok(Json(user.into()))
}

/// What the caller's requests have cost: LLM calls and tokens over every job they submitted.
#[utoipa::path(
    get,
    path = "/v1/me/usage",
    operation_id = "my_usage",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Totals over the caller's jobs", body = UsageView),
        (status = 401, response = Unauthenticated),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
async fn usage(
    State(state): State<AppState>,
    caller: CurrentUser,
) -> Result<Json<UsageView>, ApiError> {
    let totals =
        jobs::usage_of(&mut *shared::db::hold(&state.db, "auth").await?, caller.id).await?;
    Ok(Json(UsageView {
        total_tokens: totals.prompt_tokens + totals.completion_tokens,
        totals,
    }))
}

#[derive(Serialize, ToSchema)]
#[schema(as = AccountUsage)]
struct UsageView {
    #[serde(flatten)]
    totals: jobs::UsageTotals,
    /// Prompt and completion tokens together.
    total_tokens: i64,
}

/// A trimmed email address of a plausible shape: one `@`, something on each side, a dot in the
/// domain, no spaces. Whether it is deliverable only a mail could tell.
pub(crate) fn checked_email(field: &str, raw: &str) -> Result<String, FieldError> {
    let email = raw.trim();
    let plausible = email.chars().count() <= EMAIL_CHARS
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain
                    .split_once('.')
                    .is_some_and(|(head, tail)| !head.is_empty() && !tail.is_empty())
                && !domain.ends_with('.')
        });
    if plausible {
        Ok(email.to_string())
    } else {
        Err(FieldError::new(
            field,
            "invalid_email",
            format!("{field} must be an email address like name@example.com"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use utoipa::PartialSchema;

    use super::*;

    #[test]
    fn the_documented_password_length_is_the_checked_one() {
        let schema = serde_json::to_value(Registration::schema()).unwrap();
        let password = &schema["properties"]["password"];
        assert_eq!(password["minLength"], PASSWORD_CHARS.0);
        assert_eq!(password["maxLength"], PASSWORD_CHARS.1);
    }

    #[test]
    fn plausible_emails_pass_and_others_are_named() {
        for good in ["a@b.co", " Ann.Lee+menus@example.org ", "x@sub.domain.io"] {
            assert!(checked_email("email", good).is_ok(), "{good}");
        }
        for bad in [
            "", "ann", "@b.co", "a@", "a@b", "a@@b.co", "a b@c.co", "a@b.", "a@.co",
        ] {
            let e = checked_email("email", bad).unwrap_err();
            assert_eq!(
                (e.field.as_str(), e.code),
                ("email", "invalid_email"),
                "{bad}"
            );
        }
    }
}
