//! `GET /admin`: the state of the system at a glance, from [`ops::stats`](crate::admin::ops::stats):
//! jobs by status, queue depth and lag, throughput, failure rate and cost, LLM calls and 429s per
//! model, open circuits, budget in use and the database pool.

use axum::extract::State;
use maud::{Markup, html};
use serde_json::Value;
use shared::db::admin::Throughput;
use shared::job::JobStatus;

use super::error::PageError;
use super::layout::{self, age, dollars, percent};
use super::session::Admin;
use crate::admin::ops::{self, Stats};
use crate::state::AppState;

pub async fn show(State(state): State<AppState>, admin: Admin) -> Result<Markup, PageError> {
    let stats = ops::stats(state.stores()).await?;
    Ok(layout::page(
        "Overview",
        Some(&admin),
        None,
        html! {
            (headline(&stats))
            h2 { "Jobs by status" }
            table {
                thead { tr { th { "status" } th.num { "jobs" } } }
                tbody {
                    @for status in JobStatus::ALL {
                        tr {
                            td { a href={ "/admin/jobs?status=" (status.as_str()) } { (layout::status(status)) } }
                            td.num { (stats.jobs.by_status.get(status.as_str()).copied().unwrap_or(0)) }
                        }
                    }
                }
            }
            h2 { "Finished jobs" }
            table {
                thead { tr { th { "over the last" } th.num { "succeeded" } th.num { "failed" } th.num { "failure rate" } th.num { "cost" } th.num { "saved by the batch lane" } } }
                tbody {
                    (throughput("5 minutes", &stats.jobs.last_5_minutes))
                    (throughput("60 minutes", &stats.jobs.last_60_minutes))
                }
            }
            h2 { "LLM calls per model" }
            (layout::table_or(
                &stats.llm,
                "No call in the last hour.",
                html! { th { "model" } th.num { "calls, 5 min" } th.num { "calls, 60 min" } th.num { "429s, 5 min" } th.num { "429s, 60 min" } },
                |(model, calls)| html! {
                    tr {
                        td { code { (model) } }
                        td.num { (calls.calls_5m) }
                        td.num { (calls.calls_60m) }
                        td.num { (calls.rate_limited_5m) }
                        td.num { (calls.rate_limited_60m) }
                    }
                },
            ))
            h2 { "Provider circuits" }
            (layout::table_or(
                &stats.open_circuits,
                "Every circuit is closed: calls go through.",
                html! { th { "model" } th { "error" } th { "opened" } th { "next probe" } },
                |circuit| html! {
                    tr {
                        td { code { (circuit.model) } }
                        td { code { (circuit.code) } " " (circuit.message) }
                        td { (layout::time(circuit.opened_at)) }
                        td { (layout::time(circuit.probe_at)) }
                    }
                },
            ))
            h2 { "LLM budget" }
            (budget(&stats))
        },
    ))
}

/// The figures an operator looks at first, as cards; the alarming ones stand out.
fn headline(stats: &Stats) -> Markup {
    let failure_rate = stats.jobs.last_5_minutes.failure_rate;
    let circuits = stats.open_circuits.len();
    html! {
        div.cards {
            div.card {
                div.value { (stats.queue.ready) }
                div.label { "ready in the queue (" (stats.queue.delayed) " delayed)" }
            }
            div.card {
                div.value { (stats.jobs.oldest_waiting_secs.map_or_else(|| "—".to_string(), age)) }
                div.label { "oldest waiting job" }
            }
            div.card.alarm[failure_rate > 0.0] {
                div.value { (percent(failure_rate)) }
                div.label { "failure rate, 5 min (60 min: " (percent(stats.jobs.last_60_minutes.failure_rate)) ")" }
            }
            div.card.alarm[circuits > 0] {
                div.value { (circuits) }
                div.label { "open circuits" }
            }
            div.card {
                div.value { (stats.budget_in_use.map_or_else(|| "—".to_string(), percent)) }
                div.label { "LLM budget in use, 5 min" }
            }
            div.card {
                div.value { (stats.database.pool_in_use) " / " (stats.database.pool_size) }
                div.label { "database connections in use (this API process)" }
            }
        }
    }
}

fn throughput(span: &str, figures: &Throughput) -> Markup {
    html! {
        tr {
            td { (span) }
            td.num { (figures.succeeded) }
            td.num { (figures.failed) }
            td.num { (percent(figures.failure_rate)) }
            td.num { (dollars(figures.cost_usd)) }
            td.num { (dollars(figures.batch_saved_usd)) }
        }
    }
}

/// The budget the workers last published, each limit `unlimited` when not set.
fn budget(stats: &Stats) -> Markup {
    let Some(budget) = &stats.budget else {
        return html! { p.muted { "No worker has published its budget yet." } };
    };
    let limit = |name: &str| match &budget[name] {
        Value::Number(n) => n.to_string(),
        _ => "unlimited".to_string(),
    };
    html! {
        dl.facts {
            dt { "requests per minute" } dd { (limit("rpm")) }
            dt { "tokens per minute" } dd { (limit("tpm")) }
            dt { "window" } dd { (limit("window_ms")) " ms" }
            dt { "in use, last 5 minutes" } dd { (stats.budget_in_use.map_or_else(|| "—".to_string(), percent)) }
        }
    }
}
