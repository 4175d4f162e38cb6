//! Bearer tokens: checking a password at login, issuing tokens, and the extractor that turns one
//! into the caller.
//!
//! Access tokens are short-lived HS256 JWTs carrying the user id (`sub`), the role when issued,
//! the session (`sid`), and when they were issued and expire. Every request also checks that the
//! session is still live and takes the account's current role from it (`sessions`), so a logout,
//! a password or role change, or a disabled account takes effect on the next request. The
//! dashboard carries the same tokens in a cookie.

use std::net::IpAddr;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use hmac::{Hmac, Mac};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use shared::db::users::{self, Role, User};
use shared::password;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// What a token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    pub role: Role,
    /// The session the token belongs to.
    pub sid: Uuid,
    /// Issued at, seconds since the Unix epoch.
    pub iat: u64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: u64,
}

/// Signs and checks tokens with the configured secret.
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
    /// HMAC-SHA256 keyed with the same secret, for values bound to a token.
    mac: Hmac<Sha256>,
}

impl Tokens {
    pub fn new(secret: &SecretString, ttl: Duration) -> Tokens {
        let key = secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        // An expired token is expired, with no grace period (the default allows 60 s).
        validation.leeway = 0;
        Tokens {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            validation,
            ttl,
            mac: Hmac::new_from_slice(key).expect("HMAC takes a key of any length"),
        }
    }

    /// How long an access token is valid.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A token for `user_id` in session `sid`, valid for `ttl`.
    pub fn issue(
        &self,
        user_id: Uuid,
        role: Role,
        sid: Uuid,
        ttl: Duration,
    ) -> Result<String, ApiError> {
        let iat = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: user_id,
            role,
            sid,
            iat,
            exp: iat + ttl.as_secs(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::Internal(e.into()))
    }

    /// A MAC keyed with the token secret, for values derived from a token (the dashboard's
    /// CSRF tokens). Callers feed a purpose first, with a character no JWT contains, so that
    /// no MAC they make is ever a token's signature.
    pub fn keyed_mac(&self) -> Hmac<Sha256> {
        self.mac.clone()
    }

    /// The claims of a token this server signed and that has not expired; the session is not
    /// checked here ([`session_of`] does).
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        jsonwebtoken::decode(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => ApiError::ExpiredToken,
                _ => ApiError::InvalidToken,
            })
    }
}

/// Checks an email and password, for the API's login and the dashboard's alike: under the
/// per-address limit and the per-account throttle, with the hash computed off the async threads
/// and no database connection held meanwhile. A disabled account is refused (403
/// `account_disabled`) only once its password is right.
pub async fn authenticate(
    state: &AppState,
    addr: IpAddr,
    email: &str,
    password: String,
) -> Result<User, ApiError> {
    state.login_limit.check(&addr)?;
    state.login_throttle.check(email).await?;
    // No account's email holds the NUL character (PostgreSQL cannot store it, nor take it in a
    // query): such an email is unknown, without asking.
    let user = match email.contains('\0') {
        true => None,
        false => {
            let mut conn = shared::db::hold(&state.db, "auth").await?;
            users::find_by_email(&mut conn, email.trim()).await?
        }
    };
    // An unknown email is verified against a dummy hash, so it takes as long as a wrong
    // password and the answer's timing does not tell which accounts exist.
    let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
    let matches = state
        .hasher
        .run(move || match &stored_hash {
            Some(hash) => password::verify(&password, hash),
            None => password::verify(&password, password::dummy_hash()),
        })
        .await?;
    match user {
        Some(user) if matches => {
            state.login_throttle.succeeded(email).await?;
            match user.disabled_at {
                Some(_) => Err(ApiError::AccountDisabled),
                None => Ok(user),
            }
        }
        _ => {
            if let Some(lock) = state.login_throttle.failed(email).await? {
                tracing::warn!(
                    lock_secs = lock.as_secs(),
                    "repeated wrong passwords for one account; its logins are refused for a while"
                );
            }
            Err(ApiError::InvalidCredentials)
        }
    }
}

/// The caller a token names, once its session is found live: the account's role now, not when
/// the token was issued. 401 `invalid_token` for an ended session.
pub async fn session_of(state: &AppState, token: &str) -> Result<CurrentUser, ApiError> {
    let claims = state.tokens.verify(token)?;
    match state.sessions.state(&state.db, claims.sid).await? {
        Some(session) if session.live && session.user_id == claims.sub => Ok(CurrentUser {
            id: claims.sub,
            role: session.role,
            session: claims.sid,
        }),
        _ => Err(ApiError::SessionEnded),
    }
}

/// The authenticated caller. Handlers that take it answer 401 to anyone without a valid token.
#[derive(Debug, Clone, Copy)]
pub struct CurrentUser {
    pub id: Uuid,
    /// The account's role now.
    pub role: Role,
    /// The session the token belongs to.
    pub session: Uuid,
}

/// The caller, who must be an admin: anyone else is refused with 403.
#[derive(Debug, Clone, Copy)]
pub struct AdminUser {
    pub id: Uuid,
}

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = CurrentUser::from_request_parts(parts, state).await?;
        if caller.role != Role::Admin {
            return Err(ApiError::Forbidden("this is for admins only"));
        }
        Ok(AdminUser { id: caller.id })
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or(ApiError::Unauthenticated)?;
        let value = value.to_str().map_err(|_| ApiError::InvalidToken)?;
        // Another scheme (Basic, …) carries no bearer token at all.
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Err(ApiError::Unauthenticated),
        };
        session_of(state, token).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(secret: &str, ttl: u64) -> Tokens {
        Tokens::new(&SecretString::from(secret), Duration::from_secs(ttl))
    }

    #[test]
    fn a_token_verifies_with_its_own_secret_only() {
        let ours = tokens("0123456789abcdef0123456789abcdef", 60);
        let theirs = tokens("fedcba9876543210fedcba9876543210", 60);
        let id = Uuid::now_v7();
        let sid = Uuid::now_v7();
        let token = ours
            .issue(id, Role::Coach, sid, Duration::from_secs(60))
            .unwrap();
        let claims = ours.verify(&token).unwrap();
        assert_eq!(
            (claims.sub, claims.role, claims.sid),
            (id, Role::Coach, sid)
        );
        assert_eq!(claims.exp - claims.iat, 60);
        assert!(matches!(theirs.verify(&token), Err(ApiError::InvalidToken)));
        assert!(matches!(
            ours.verify("not.a.token"),
            Err(ApiError::InvalidToken)
        ));
    }
}
