//! CSRF tokens for the dashboard's forms. A token is an HMAC-SHA256, under the JWT secret, of
//! the session token (or, on the login page, of a random login cookie): another site can neither
//! read it from our pages nor compute it, so it cannot make an admin's browser post a form. Every
//! POST is checked by [`Checked`] before its handler runs, so a refused one changes nothing.

use axum::Form;
use axum::extract::{FromRequest, FromRequestParts, Request};
use hmac::Mac;
use maud::{Markup, html};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::error::PageError;
use super::session::Admin;
use crate::auth::Tokens;
use crate::error::ApiError;
use crate::state::AppState;

/// Fed to the MAC before the token it is bound to: `:` never occurs in a JWT's signed part, so
/// no CSRF token is ever a valid token signature.
const PURPOSE: &[u8] = b"dashboard-csrf:";

/// The name of the form field that carries the token.
const FIELD: &str = "csrf";

/// The CSRF token bound to `binding` (a session token, or a login cookie), as hex.
pub fn token(tokens: &Tokens, binding: &str) -> String {
    let mut mac = tokens.keyed_mac();
    mac.update(PURPOSE);
    mac.update(binding.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Whether a form carried the expected token. Compared in constant time, so the answer's
/// timing does not tell how much of a guess was right.
pub fn matches(expected: &str, given: Option<&str>) -> bool {
    given.is_some_and(|given| bool::from(expected.as_bytes().ct_eq(given.as_bytes())))
}

/// What a form without the right token is told.
pub fn refused() -> ApiError {
    ApiError::Forbidden(
        "the form's security token is missing or belongs to another session; reload the page and try again",
    )
}

/// The hidden field every dashboard form carries.
pub fn field(token: &str) -> Markup {
    html! { input type="hidden" name=(FIELD) value=(token); }
}

/// A dashboard action from an admin whose form carried their session's CSRF token.
pub struct Checked(pub Admin);

#[derive(Deserialize)]
struct TokenField {
    csrf: Option<String>,
}

impl FromRequest<AppState> for Checked {
    type Rejection = PageError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, PageError> {
        let (mut parts, body) = request.into_parts();
        let admin = Admin::from_request_parts(&mut parts, state).await?;
        // A body that is not a form carries no token either.
        let given = Form::<TokenField>::from_request(Request::from_parts(parts, body), state)
            .await
            .ok()
            .and_then(|Form(form)| form.csrf);
        if !matches(&admin.csrf, given.as_deref()) {
            return Err(refused().into());
        }
        Ok(Checked(admin))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use secrecy::SecretString;

    use super::*;

    fn tokens(secret: &str) -> Tokens {
        Tokens::new(&SecretString::from(secret), Duration::from_secs(60))
    }

    #[test]
    fn a_token_is_bound_to_its_session_and_to_the_secret() {
        let ours = tokens("0123456789abcdef0123456789abcdef");
        let theirs = tokens("fedcba9876543210fedcba9876543210");
        let mine = token(&ours, "session-a");
        assert_eq!(mine.len(), 64);
        assert_eq!(mine, token(&ours, "session-a"), "stable for a session");
        assert!(matches(&mine, Some(&token(&ours, "session-a"))));
        assert!(!matches(&mine, Some(&token(&ours, "session-b"))));
        assert!(!matches(&mine, Some(&token(&theirs, "session-a"))));
        assert!(!matches(&mine, Some(&mine[..63])));
        assert!(!matches(&mine, Some("")));
        assert!(!matches(&mine, None));
    }
}
