//! The admin dashboard at `/admin`: server-rendered HTML over the admin operations.

use axum::Router;

use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
}
