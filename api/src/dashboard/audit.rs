//! `GET /admin/audit`: what admins did (requeues and cancellations, one job or by filter, and
//! batches started by hand), newest first, in pages.

use axum::extract::State;
use maud::{Markup, html};

use super::error::{InPage, PageError};
use super::layout::{self, none, time};
use super::session::Admin;
use crate::admin;
use crate::extract::QueryParams;
use crate::pagination;
use crate::state::AppState;

pub async fn list(
    State(state): State<AppState>,
    admin: Admin,
    InPage(params): InPage<QueryParams>,
) -> Result<Markup, PageError> {
    let limit = pagination::limit(&params)?;
    let before = params
        .text("cursor")
        .map(|c| c.parse::<i64>().map_err(|_| pagination::invalid_cursor()))
        .transpose()?;
    let (actions, next) = admin::actions_page(state.stores(), before, limit).await?;
    Ok(layout::page(
        "Audit log",
        Some(&admin),
        None,
        html! {
            @if actions.is_empty() {
                p.muted { "No admin action yet." }
            } @else {
                table {
                    thead {
                        tr { th { "when" } th { "admin" } th { "action" } th { "job" } th { "filter" } th.num { "jobs affected" } }
                    }
                    tbody {
                        @for action in &actions {
                            tr {
                                td { (time(action.created_at)) }
                                td { (action.admin_email) }
                                td { code { (action.action) } }
                                td {
                                    @if let Some(job) = action.job_id {
                                        a.id href={ "/admin/jobs/" (job) } { (job) }
                                    } @else { (none()) }
                                }
                                td {
                                    @if let Some(filter) = &action.filter {
                                        code { (filter.0) }
                                    } @else { (none()) }
                                }
                                td.num { (action.affected) }
                            }
                        }
                    }
                }
                @if let Some(next) = next {
                    a href={ "/admin/audit?limit=" (limit) "&cursor=" (next) } { "older →" }
                }
            }
        },
    ))
}
