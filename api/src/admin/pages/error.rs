//! How a dashboard request fails: without a valid session it goes to the login page; anything
//! else is an HTML page with the status and message the JSON API would give for the same error.

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::layout;
use crate::admin::AdminError;
use crate::error::ApiError;
use crate::state::AppState;

/// Where anyone without a valid session is sent.
pub const LOGIN_PAGE: &str = "/admin/login";

/// A dashboard request that cannot be served.
#[derive(Debug)]
pub enum PageError {
    /// No session cookie, or one that is expired, forged or not a token at all.
    LoggedOut,
    /// Refused or failed, as the JSON API would be.
    Refused(ApiError),
}

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> Self {
        PageError::Refused(error)
    }
}

/// An operation's failure, shown as the JSON API would answer it.
impl From<AdminError> for PageError {
    fn from(error: AdminError) -> Self {
        PageError::Refused(error.into())
    }
}

impl From<sqlx::Error> for PageError {
    fn from(error: sqlx::Error) -> Self {
        PageError::Refused(error.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::LoggedOut => Redirect::to(LOGIN_PAGE).into_response(),
            PageError::Refused(error) => {
                let page = layout::error_page(error.status(), &error.to_string());
                // The JSON answer's status and headers (Retry-After…), and its logging of an
                // internal failure, once; only the body is a page instead.
                let (mut parts, _) = error.into_response().into_parts();
                parts.headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                );
                Response::from_parts(parts, Body::from(page.into_string()))
            }
        }
    }
}

/// An extractor of the JSON API (the path's id, the query string) whose refusal is shown as a
/// page rather than as JSON.
pub struct InPage<E>(pub E);

impl<E> FromRequestParts<AppState> for InPage<E>
where
    E: FromRequestParts<AppState, Rejection = ApiError>,
{
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        Ok(InPage(E::from_request_parts(parts, state).await?))
    }
}
