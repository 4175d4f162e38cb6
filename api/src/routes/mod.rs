//! The HTTP routes, one module per resource, merged into one router with the admin wing's
//! (`crate::admin`: its JSON routes and its dashboard). No route module imports another: what
//! several show is in `crate::views`.
//!
//! Every JSON route is registered with `utoipa_axum::routes!` in its module, which describes it in
//! the OpenAPI document as it adds it to the router (see `crate::openapi`); a plain `.route(`
//! would serve a route the document does not list, and `tests/openapi.rs` refuses one.

pub mod auth;
pub mod coaching;
pub mod health;
pub mod job_events;
pub mod jobs;
pub mod menus;
pub mod preferences;

use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::admin;
use crate::middleware;
use crate::openapi::{self, ApiDoc};
use crate::state::AppState;

/// Every route under the middleware stack, ready to serve.
pub fn router(state: AppState) -> Router {
    let (routes, document) = documented().split_for_parts();
    let routes = routes
        .merge(openapi::routes(document))
        // HTML pages for people, not part of the JSON API the document describes.
        .merge(admin::pages::routes());
    middleware::apply(routes, &state).with_state(state)
}

/// The JSON API: its routes, and the OpenAPI document describing them.
pub fn documented() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(health::routes())
        .merge(auth::routes())
        .merge(preferences::routes())
        .merge(menus::routes())
        .merge(jobs::routes())
        .merge(job_events::routes())
        .merge(coaching::routes())
        .merge(admin::routes::routes())
}
