//! `GET /admin/audit`: what admins did (requeues and cancellations, one job or by filter, and
//! batches started by hand), newest first, in pages.

use axum::extract::State;
use maud::{Markup, html};

use super::error::{InPage, PageError};
use super::layout::{self, none, time};
use super::session::Admin;
use crate::admin::audit_page::ActionPageParams;
use crate::admin::ops;
use crate::extract::Query;
use crate::state::AppState;

pub async fn list(
    State(state): State<AppState>,
    admin: Admin,
    InPage(Query(ActionPageParams { limit, before })): InPage<Query<ActionPageParams>>,
) -> Result<Markup, PageError> {
    let (actions, next) = ops::actions_page(state.stores(), before, limit).await?;
    Ok(layout::page(
        "Audit log",
        Some(&admin),
        None,
        html! {
            (layout::table_or(
                &actions,
                "No admin action yet.",
                html! { th { "when" } th { "admin" } th { "action" } th { "job" } th { "filter" } th.num { "jobs affected" } },
                |action| html! {
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
                },
            ))
            // An empty page has no next one.
            @if let Some(next) = next {
                a href={ "/admin/audit?limit=" (limit) "&cursor=" (next) } { "older →" }
            }
        },
    ))
}
