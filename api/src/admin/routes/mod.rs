//! The JSON admin API (role `admin`; anyone else gets 403), one module per resource: `jobs` (any
//! person's, by filter, with their attempts; requeue and cancel), `batches` (the weekly batch by
//! hand), `audit` (what admins did), `stats` (the overview) and `users` (an account's role or state). Each handler reads its input,
//! calls the operation (`super::ops`) and answers; the operation's `AdminError` becomes the
//! `ApiError` of the answer here.

mod audit;
mod batches;
mod jobs;
mod stats;
mod users;

use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// Every admin route.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(jobs::routes())
        .merge(audit::routes())
        .merge(stats::routes())
        .merge(batches::routes())
        .merge(users::routes())
}

/// How many jobs a bulk requeue requeued (also a batch's "requeue failed").
#[derive(Serialize, ToSchema)]
struct Requeued {
    requeued: usize,
}
