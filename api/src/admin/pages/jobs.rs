//! The jobs pages: `GET /admin/jobs` (jobs by filter, failed ones unless told otherwise, with
//! their errors and cost, a requeue button per row and one for every job the filter matches, in
//! keyset pages) and `GET /admin/jobs/{id}` (one job and every attempt it made, with their
//! cost).

use axum::extract::State;
use maud::{Markup, html};
use shared::db::admin::JobFilter;
use shared::db::jobs::JobRow;
use shared::job::{JobStatus, usd};

use super::csrf;
use super::error::{InPage, PageError};
use super::flash::Flash;
use super::layout::{self, dollars, maybe_time, none, time};
use super::session::Admin;
use crate::admin::filter::{self, Reading};
use crate::admin::ops;
use crate::extract::{Id, QueryParams};
use crate::pagination;
use crate::state::AppState;

/// `GET /admin/jobs`
pub async fn list(
    State(state): State<AppState>,
    admin: Admin,
    InPage(params): InPage<QueryParams>,
) -> Result<Markup, PageError> {
    let filter = filter::read(&params, Reading::Page)?;
    let limit = pagination::limit(&params)?;
    let cursor = pagination::cursor(&params)?;
    let (rows, next) = ops::jobs_page(state.stores(), &filter, cursor, limit).await?;
    let query = filter::to_query(&filter);
    let title = match filter.status {
        Some(status) => format!("Jobs: {}", status.as_str()),
        None => "Jobs".to_string(),
    };
    Ok(layout::page(
        &title,
        Some(&admin),
        Flash::read(&params),
        html! {
            (filter_form(&filter))
            (layout::table_or(
                &rows,
                "No job matches.",
                html! {
                    th { "job" } th { "owner" } th { "status" } th.num { "attempts" }
                    th { "error" } th.num { "cost" } th { "created" } th { "finished" } th {}
                },
                |job| row(job, &admin),
            ))
            @if !rows.is_empty() {
                div.actions {
                    @if let Some(next) = &next {
                        a href={ "/admin/jobs?" (query) "&limit=" (limit) "&cursor=" (next) } { "next page →" }
                    }
                    // An empty filter would requeue every requeueable job there is.
                    @if filter != JobFilter::default() {
                        form.inline method="post" action={ "/admin/jobs/requeue?" (query) } {
                            (csrf::field(&admin.csrf))
                            button.primary type="submit" { "Requeue all jobs matching this filter" }
                        }
                    }
                }
            }
        },
    ))
}

/// The filter as a form that reloads the page (a GET: it changes nothing).
fn filter_form(filter: &JobFilter) -> Markup {
    let text = |value: Option<String>| value.unwrap_or_default();
    html! {
        form.filters method="get" action="/admin/jobs" {
            label { "status"
                select name="status" {
                    option value="" selected[filter.status.is_none()] { "any" }
                    @for status in JobStatus::ALL {
                        option value=(status.as_str()) selected[filter.status == Some(status)] { (status.as_str()) }
                    }
                }
            }
            label { "error code" input name="error_code" value=(text(filter.error_code.clone())) placeholder="llm_timeout"; }
            label { "owner id" input name="user_id" value=(text(filter.user_id.map(|id| id.to_string()))); }
            label { "batch id" input name="batch_id" value=(text(filter.batch_id.map(|id| id.to_string()))); }
            @if let Some(after) = filter.created_after {
                input type="hidden" name="created_after" value=(after.to_rfc3339());
            }
            @if let Some(before) = filter.created_before {
                input type="hidden" name="created_before" value=(before.to_rfc3339());
            }
            button type="submit" { "Filter" }
        }
    }
}

fn row(job: &JobRow, admin: &Admin) -> Markup {
    html! {
        tr {
            td { a.id href={ "/admin/jobs/" (job.id) } { (job.id) } }
            td { a.id href={ "/admin/jobs?status=&user_id=" (job.owner_id) } { (job.owner_id) } }
            td { (layout::status(job.status)) }
            td.num { (job.attempts) " / " (job.max_attempts) }
            td {
                @if let Some(error_code) = &job.last_error_code { code { (error_code) } br; }
                @if let Some(message) = &job.last_error_message { (message) }
            }
            td.num { (dollars(usd(job.cost_micros))) }
            td { (time(job.created_at)) }
            td { (maybe_time(job.finished_at)) }
            td {
                @if job.status.is_requeueable() {
                    form.inline method="post" action={ "/admin/jobs/" (job.id) "/requeue" } {
                        (csrf::field(&admin.csrf))
                        button type="submit" { "Requeue" }
                    }
                }
            }
        }
    }
}

/// `GET /admin/jobs/{id}`
pub async fn show(
    State(state): State<AppState>,
    admin: Admin,
    InPage(Id(id)): InPage<Id>,
    InPage(params): InPage<QueryParams>,
) -> Result<Markup, PageError> {
    let (job, attempts) = ops::job_with_attempts(state.stores(), id).await?;
    let request = serde_json::to_string_pretty(&job.request.0).unwrap_or_default();
    Ok(layout::page(
        &format!("Job {id}"),
        Some(&admin),
        Flash::read(&params),
        html! {
            dl.facts {
                dt { "status" } dd { (layout::status(job.status)) }
                dt { "owner" } dd.id { (job.owner_id) }
                dt { "requested by" } dd.id { (job.requested_by) }
                dt { "days done" } dd { (job.days_done) " of " (job.days_total) }
                dt { "attempts" } dd { (job.attempts) " of " (job.max_attempts) }
                dt { "error" } dd {
                    @if let Some(error_code) = &job.last_error_code {
                        code { (error_code) } " " (job.last_error_message.as_deref().unwrap_or_default())
                    } @else { (none()) }
                }
                dt { "menu" } dd.id { @if let Some(menu) = job.menu_id { (menu) } @else { (none()) } }
                dt { "batch" } dd.id { @if let Some(batch) = job.batch_id { (batch) } @else { (none()) } }
                dt { "created" } dd { (time(job.created_at)) }
                dt { "started" } dd { (maybe_time(job.started_at)) }
                dt { "next attempt" } dd { (maybe_time(job.next_attempt_at)) }
                dt { "finished" } dd { (maybe_time(job.finished_at)) }
                dt { "LLM calls" } dd { (job.llm_calls) }
                dt { "tokens" } dd { (job.prompt_tokens) " prompt, " (job.completion_tokens) " completion" }
                dt { "cost" } dd {
                    (dollars(usd(job.cost_micros)))
                    @if job.batch_saved_micros > 0 {
                        " (the batch lane saved " (dollars(usd(job.batch_saved_micros))) ")"
                    }
                }
            }
            div.actions {
                @if job.status.is_requeueable() {
                    form.inline method="post" action={ "/admin/jobs/" (id) "/requeue" } {
                        (csrf::field(&admin.csrf))
                        button.primary type="submit" { "Requeue" }
                    }
                }
                @if !job.status.is_terminal() {
                    form.inline method="post" action={ "/admin/jobs/" (id) "/cancel" } {
                        (csrf::field(&admin.csrf))
                        button.danger type="submit" { "Cancel" }
                    }
                }
            }
            h2 { "Attempts" }
            (layout::table_or(
                &attempts,
                "No attempt yet.",
                html! {
                    th.num { "#" } th { "worker" } th { "started" } th { "ended" } th { "outcome" }
                    th { "error" } th.num { "LLM calls" } th.num { "prompt tokens" } th.num { "completion tokens" }
                    th.num { "cost" }
                },
                |attempt| html! {
                    tr {
                        td.num { (attempt.number) }
                        td { code { (attempt.worker_id.as_deref().unwrap_or("—")) } }
                        td { (time(attempt.started_at)) }
                        td { (maybe_time(attempt.ended_at)) }
                        td { (attempt.outcome.as_deref().unwrap_or("running")) }
                        td {
                            @if let Some(error_code) = &attempt.error_code { code { (error_code) } br; }
                            @if let Some(message) = &attempt.error_message { (message) }
                        }
                        td.num { (attempt.llm_calls) }
                        td.num { (attempt.prompt_tokens) }
                        td.num { (attempt.completion_tokens) }
                        td.num { (dollars(attempt.cost_usd)) }
                    }
                },
            ))
            details {
                summary { "Request" }
                pre { (request) }
            }
        },
    ))
}
