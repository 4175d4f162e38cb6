//! The admin dashboard at `/admin`: server-rendered HTML over the admin operations
//! (`super::ops`), for admins logged in with their password. Pages need no JavaScript; actions
//! are plain forms, each carrying a CSRF token bound to the session.
//!
//! `session` (the cookie and who it says is asking), `csrf` (form tokens), `login`, the pages
//! (`overview`, `jobs`, `batches`, `audit`), `actions` (requeue and cancel), and what they
//! share: `layout`, `flash` and `error`.

mod actions;
mod audit;
mod batches;
mod csrf;
mod error;
mod flash;
mod jobs;
mod layout;
mod login;
mod overview;
mod session;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::middleware::map_response;
use axum::response::Response;
use axum::routing::{get, post};

use crate::state::AppState;

/// What a page may load and do: its inline style, and forms to this site. No script runs, and
/// no other site may frame a page (a framed button can be clicked by trickery).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Every dashboard route.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(overview::show))
        .route("/admin/login", get(login::form).post(login::submit))
        .route("/admin/logout", post(login::logout))
        .route("/admin/jobs", get(jobs::list))
        .route("/admin/jobs/requeue", post(actions::requeue_matching))
        .route("/admin/jobs/{id}", get(jobs::show))
        .route("/admin/jobs/{id}/requeue", post(actions::requeue_one))
        .route("/admin/jobs/{id}/cancel", post(actions::cancel_one))
        .route("/admin/batches", get(batches::list))
        .route("/admin/batches/{id}", get(batches::show))
        .route(
            "/admin/batches/{id}/requeue-failed",
            post(actions::requeue_failed_batch),
        )
        .route("/admin/audit", get(audit::list))
        .layer(map_response(page_headers))
}

/// Pages show job data and carry CSRF tokens: nothing may cache or frame them.
async fn page_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}
