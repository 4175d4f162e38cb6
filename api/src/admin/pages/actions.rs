//! The dashboard's actions, each a plain form POST checked for its CSRF token, done through the
//! admin operations (so each is audited), and answered with a redirect (303) to the page to look
//! at next, with a flash saying what happened.

use axum::extract::State;
use axum::response::Redirect;
use uuid::Uuid;

use super::csrf::Checked;
use super::error::{InPage, PageError};
use super::flash::Flash;
use crate::admin::filter::{self, Reading};
use crate::admin::ops;
use crate::extract::{Id, QueryParams};
use crate::state::AppState;

/// `POST /admin/jobs/{id}/requeue`: one more attempt for a failed or cancelled job (a waiting
/// one is queued again at once); back to the job's page, where it shows queued.
pub async fn requeue_one(
    State(state): State<AppState>,
    InPage(Id(id)): InPage<Id>,
    Checked(admin): Checked,
) -> Result<Redirect, PageError> {
    let flash = match ops::requeue_one(state.stores(), admin.id, id, false).await {
        Ok(()) => Flash::Requeued,
        Err(error) => Flash::refusal(error)?,
    };
    Ok(to_job(id, flash))
}

/// `POST /admin/jobs/{id}/cancel`
pub async fn cancel_one(
    State(state): State<AppState>,
    InPage(Id(id)): InPage<Id>,
    Checked(admin): Checked,
) -> Result<Redirect, PageError> {
    let flash = match ops::cancel_one(state.stores(), admin.id, id).await {
        Ok(()) => Flash::Cancelled,
        Err(error) => Flash::refusal(error)?,
    };
    Ok(to_job(id, flash))
}

/// `POST /admin/jobs/requeue?<filter>`: every requeueable job the jobs page's filter matches (the form's URL carries the filter the page showed); back to that page.
pub async fn requeue_matching(
    State(state): State<AppState>,
    InPage(params): InPage<QueryParams>,
    Checked(admin): Checked,
) -> Result<Redirect, PageError> {
    // An empty filter (`status=` alone) is refused; the page offers no form for one.
    let filter = filter::read(&params, Reading::Page)?;
    let requeued = ops::requeue_matching(
        state.stores(),
        admin.id,
        &filter,
        false,
        &shared::lifecycle::no_progress,
    )
    .await?;
    Ok(Redirect::to(&format!(
        "/admin/jobs?{}&{}",
        filter::to_query(&filter),
        Flash::RequeuedMatching(requeued).query()
    )))
}

/// `POST /admin/batches/{id}/requeue-failed`: one more attempt for every failed job of the
/// batch; back to the batch's page, saying how many.
pub async fn requeue_failed_batch(
    State(state): State<AppState>,
    InPage(Id(id)): InPage<Id>,
    Checked(admin): Checked,
) -> Result<Redirect, PageError> {
    let requeued = ops::requeue_failed(state.stores(), admin.id, id).await?;
    Ok(Redirect::to(&format!(
        "/admin/batches/{id}?{}",
        Flash::RequeuedMatching(requeued).query()
    )))
}

fn to_job(id: Uuid, flash: Flash) -> Redirect {
    Redirect::to(&format!("/admin/jobs/{id}?{}", flash.query()))
}
