//! The weekly batch pages: `GET /admin/batches` (every run, newest first, in keyset pages: how
//! it started and by whom, its period, whom it served and skipped, its jobs by status, their
//! tokens and cost, when it started and finished) and `GET /admin/batches/{id}` (one run: what
//! it cost and what the Batch API saved, its provider batches with theirs, why people were
//! skipped, links to its jobs, and a button that requeues its failed ones).

use std::collections::{BTreeSet, HashMap};

use axum::extract::State;
use maud::{Markup, html};
use shared::batch::RunStatus;
use shared::db::batch_runs::{BatchSummary, JobCounts};
use shared::job::JobStatus;
use uuid::Uuid;

use super::csrf;
use super::error::{InPage, PageError};
use super::flash::Flash;
use super::layout::{self, dollars, maybe_time, none, time};
use super::session::Admin;
use crate::admin::ops;
use crate::extract::{Id, QueryParams};
use crate::pagination;
use crate::state::AppState;

/// `GET /admin/batches`
pub async fn list(
    State(state): State<AppState>,
    admin: Admin,
    InPage(params): InPage<QueryParams>,
) -> Result<Markup, PageError> {
    let limit = pagination::limit(&params)?;
    let cursor = pagination::cursor(&params)?;
    let (batches, next) = ops::batches_page(state.stores(), cursor, limit).await?;
    let emails = emails(&state, &batches).await?;
    Ok(layout::page(
        "Batches",
        Some(&admin),
        None,
        html! {
            (layout::table_or(
                &batches,
                "No batch has run yet.",
                html! {
                    th { "period" } th { "trigger" } th { "status" } th.num { "targeted" }
                    th.num { "skipped" } th { "jobs" } th.num { "tokens" } th.num { "cost" }
                    th { "started" } th { "finished" }
                },
                |batch| html! {
                    tr {
                        td { a href={ "/admin/batches/" (batch.run.id) } { (batch.run.period_start) } }
                        td { (trigger(batch, &emails)) }
                        td { (run_status(batch.run.status)) }
                        td.num { (batch.run.targeted) }
                        td.num { (batch.run.skipped) }
                        td { (job_counts(batch.run.id, &batch.jobs)) }
                        td.num { (batch.prompt_tokens + batch.completion_tokens) }
                        td.num { (dollars(batch.cost_usd)) }
                        td { (time(batch.run.created_at)) }
                        td { (maybe_time(batch.finished_at)) }
                    }
                },
            ))
            // An empty page has no next one.
            @if let Some(next) = next {
                a href={ "/admin/batches?limit=" (limit) "&cursor=" (next) } { "older →" }
            }
        },
    ))
}

/// `GET /admin/batches/{id}`
pub async fn show(
    State(state): State<AppState>,
    admin: Admin,
    InPage(Id(id)): InPage<Id>,
    InPage(params): InPage<QueryParams>,
) -> Result<Markup, PageError> {
    let batch = ops::batch(state.stores(), id).await?;
    let emails = emails(&state, std::slice::from_ref(&batch)).await?;
    let run = &batch.run;
    Ok(layout::page(
        &format!("Batch for {}", run.period_start),
        Some(&admin),
        Flash::read(&params),
        html! {
            dl.facts {
                dt { "id" } dd.id { (run.id) }
                dt { "status" } dd { (run_status(run.status)) }
                dt { "trigger" } dd { (trigger(&batch, &emails)) }
                dt { "period" } dd { "the seven days from " (run.period_start) }
                dt { "fire time" } dd { (time(run.fire_at)) }
                dt { "targeted" } dd { (run.targeted) " people" }
                dt { "skipped" } dd { (run.skipped) " people" }
                dt { "started" } dd { (time(run.created_at)) }
                dt { "jobs created" } dd { (maybe_time(run.enqueued_at)) }
                dt { "finished" } dd { (maybe_time(batch.finished_at)) }
                dt { "LLM calls" } dd { (batch.llm_calls) }
                dt { "tokens" } dd { (batch.prompt_tokens) " prompt, " (batch.completion_tokens) " completion" }
                dt { "cost" } dd { (dollars(batch.cost_usd)) }
                dt { "saved by the Batch API" } dd { (dollars(batch.saved_usd)) }
            }
            @if !batch.provider_batches.is_empty() {
                h2 { "Provider batches" }
                (layout::table_or(
                    &batch.provider_batches,
                    "No provider batch yet.",
                    html! {
                        th { "batch" } th { "model" } th { "status" } th.num { "requests" }
                        th.num { "answered" } th.num { "failed" } th.num { "expired" }
                        th.num { "cost" } th.num { "saved" }
                    },
                    |provider| html! {
                        tr {
                            td {
                                code { (provider.id) }
                                @if let Some(id) = &provider.provider_batch_id { br; code { (id) } }
                            }
                            td { code { (provider.endpoint) } " " (provider.model) }
                            td {
                                (provider.status)
                                @if let Some(status) = &provider.provider_status { " (" (status) ")" }
                            }
                            td.num { (provider.requests) }
                            td.num { (provider.completed) }
                            td.num { (provider.failed) }
                            td.num { (provider.expired) }
                            td.num { (dollars(provider.cost_usd)) }
                            td.num { (dollars(provider.saved_usd)) }
                        }
                    },
                ))
            }
            h2 { "Jobs by status" }
            table {
                thead { tr { th { "status" } th.num { "jobs" } } }
                tbody {
                    @for (status, count) in by_status(&batch.jobs) {
                        tr {
                            td { a href={ "/admin/jobs?status=" (status.as_str()) "&batch_id=" (run.id) } { (layout::status(status)) } }
                            td.num { (count) }
                        }
                    }
                }
            }
            div.actions {
                a href={ "/admin/jobs?status=&batch_id=" (run.id) } { "Every job of this batch" }
                @if batch.jobs.failed > 0 {
                    form.inline method="post" action={ "/admin/batches/" (run.id) "/requeue-failed" } {
                        (csrf::field(&admin.csrf))
                        button.primary type="submit" { "Requeue all " (batch.jobs.failed) " failed jobs" }
                    }
                }
            }
            h2 { "Skipped people" }
            (layout::table_or(
                &run.skip_reasons,
                "Nobody was skipped.",
                html! { th { "reason" } th.num { "people" } },
                |(reason, count)| html! { tr { td { code { (reason) } } td.num { (count) } } },
            ))
        },
    ))
}

/// The emails of the admins who started `batches` by hand, by id.
async fn emails(
    state: &AppState,
    batches: &[BatchSummary],
) -> Result<HashMap<Uuid, String>, PageError> {
    let admins: BTreeSet<Uuid> = batches.iter().filter_map(|b| b.run.triggered_by).collect();
    Ok(ops::emails(state.stores(), admins).await?)
}

/// How the run started: the schedule (by name), or by hand (by whom).
fn trigger(batch: &BatchSummary, emails: &HashMap<Uuid, String>) -> Markup {
    let run = &batch.run;
    html! {
        (run.trigger.as_str())
        @match run.triggered_by {
            Some(admin) => { " by " (emails.get(&admin).map_or_else(|| admin.to_string(), Clone::clone)) }
            None => { " " span.muted { "(" (run.schedule) ")" } }
        }
    }
}

/// A run's status as a badge, coloured like the job statuses it resembles.
fn run_status(status: RunStatus) -> Markup {
    let look = match status {
        RunStatus::Enqueuing => JobStatus::Running,
        RunStatus::Enqueued => JobStatus::Succeeded,
        RunStatus::Skipped => JobStatus::Cancelled,
    };
    html! { span.status.(look.as_str()) { (status.as_str()) } }
}

/// The counts of a batch's jobs, every status.
fn by_status(jobs: &JobCounts) -> [(JobStatus, i64); 6] {
    [
        (JobStatus::Queued, jobs.queued),
        (JobStatus::Running, jobs.running),
        (JobStatus::Retrying, jobs.retrying),
        (JobStatus::Succeeded, jobs.succeeded),
        (JobStatus::Failed, jobs.failed),
        (JobStatus::Cancelled, jobs.cancelled),
    ]
}

/// The statuses a batch's jobs are in, each with its count and a link to those jobs.
fn job_counts(batch: Uuid, jobs: &JobCounts) -> Markup {
    let present: Vec<(JobStatus, i64)> = by_status(jobs)
        .into_iter()
        .filter(|(_, count)| *count > 0)
        .collect();
    html! {
        @if present.is_empty() {
            (none())
        }
        @for (status, count) in present {
            a href={ "/admin/jobs?status=" (status.as_str()) "&batch_id=" (batch) } {
                (count) " " (layout::status(status))
            }
            " "
        }
    }
}
