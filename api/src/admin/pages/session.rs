//! Who is logged in to the dashboard. The session is a cookie holding a bearer token issued by
//! [`Tokens`](crate::auth::Tokens) for a session of its own, kept where scripts cannot read it
//! (`HttpOnly`) and never sent with a request another site starts (`SameSite=Strict`); the
//! [`Admin`] extractor turns it into the admin, sending anyone without a live session to the
//! login page and anyone not an admin now (whatever the token says) to a 403.

use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use shared::db::users::Role;
use uuid::Uuid;

use super::csrf;
use super::error::PageError;
use crate::auth;
use crate::error::ApiError;
use crate::state::AppState;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "menus_admin_session";

/// What anyone but an admin is told.
pub const ADMINS_ONLY: &str = "the dashboard is for admins only";

/// The admin a dashboard request comes from.
pub struct Admin {
    pub id: Uuid,
    /// The session the cookie's token belongs to; logging out ends it.
    pub session: Uuid,
    /// The CSRF token of this session, for the forms a page renders and the check of a POST.
    /// The session token itself stays in the cookie: pages never show it.
    pub csrf: String,
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let token = cookie(&parts.headers, SESSION_COOKIE).ok_or(PageError::LoggedOut)?;
        let caller = match auth::session_of(state, token).await {
            Ok(caller) => caller,
            // An outage is not a logout.
            Err(e @ (ApiError::Busy { .. } | ApiError::DatabaseUnavailable)) => {
                return Err(e.into());
            }
            Err(_) => return Err(PageError::LoggedOut),
        };
        // Only admins can log in here, but any bearer token fits in the cookie, and a role can
        // change after login.
        if caller.role != Role::Admin {
            return Err(ApiError::Forbidden(ADMINS_ONLY).into());
        }
        Ok(Admin {
            id: caller.id,
            session: caller.session,
            csrf: csrf::token(&state.tokens, token),
        })
    }
}

/// The value of the cookie `name` sent with a request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(key, value)| (key == name).then_some(value))
}

/// A `Set-Cookie` value for a cookie of the dashboard: sent to `/admin` only, unreadable by
/// scripts, never sent with a request another site starts, and over HTTPS only if `secure`.
/// An empty value with no lifetime deletes the cookie.
pub fn set_cookie(name: &str, value: &str, lifetime: Duration, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::try_from(format!(
        "{name}={value}; Path=/admin; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
        lifetime.as_secs()
    ))
    .expect("cookie names and values here are tokens, hex or empty")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_is_found_among_others_and_in_any_cookie_header() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; theme=dark"));
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("menus_admin_session=x.y.z"),
        );
        assert_eq!(cookie(&headers, "theme"), Some("dark"));
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("x.y.z"));
        assert_eq!(cookie(&headers, "menus_admin"), None);
        assert_eq!(cookie(&HeaderMap::new(), SESSION_COOKIE), None);
    }

    #[test]
    fn a_session_cookie_is_http_only_strict_and_secure_only_when_asked() {
        let plain = set_cookie(SESSION_COOKIE, "t", Duration::from_secs(60), false);
        assert_eq!(
            plain,
            "menus_admin_session=t; Path=/admin; Max-Age=60; HttpOnly; SameSite=Strict"
        );
        let secure = set_cookie(SESSION_COOKIE, "", Duration::ZERO, true);
        assert!(
            secure
                .to_str()
                .unwrap()
                .ends_with("Max-Age=0; HttpOnly; SameSite=Strict; Secure")
        );
    }
}
