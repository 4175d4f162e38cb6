//! The HTTP routes, one module per resource, merged into one router.

pub mod admin;
pub mod auth;
pub mod coaching;
pub mod health;
pub mod jobs;
pub mod menus;
pub mod preferences;

use axum::Router;

use crate::middleware;
use crate::state::AppState;

/// Every route under the middleware stack, ready to serve.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .merge(health::routes())
        .merge(auth::routes())
        .merge(preferences::routes())
        .merge(menus::routes())
        .merge(jobs::routes())
        .merge(coaching::routes())
        .merge(admin::routes())
        .merge(crate::dashboard::routes());
    middleware::apply(routes, &state).with_state(state)
}
