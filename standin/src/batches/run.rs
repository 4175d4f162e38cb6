//! A batch's run, the one writer of its status. Time runs from creation over the completion
//! delay D: `validating` for the first tenth, `in_progress` while the requests run, `finalizing`
//! from nine tenths, and `completed` (or `expired`) at D, or later when the requests take
//! longer. Requests run eagerly and concurrently, a few at a time (as many as the machine has
//! cores, composing on the blocking pool), but request i of n shows as done, in
//! `request_counts` and the journal, only from its share of the `in_progress` span
//! (`(i+1)/n`), so counts grow as a provider's do and a cancel keeps the requests done before
//! it. The output and error files are written when the batch ends.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::warn;

use super::files::BATCH_OUTPUT;
use super::jobs::Job;
use super::journal::RequestOutcome;
use super::wire::{
    BatchError, BatchErrors, BatchObject, BatchStatus, LineError, LineResponse, OutputLine,
};
use crate::openai::Usage;
use crate::reply::{self, Refused, random_id, unix_now};
use crate::server::{AppState, new_request_id};

/// How often a running batch updates its counts.
const TICK: Duration = Duration::from_millis(20);

/// When a batch's phases begin, from its creation and completion delay.
struct Plan {
    in_progress: Instant,
    finalizing: Instant,
    ends: Instant,
    total: usize,
}

impl Plan {
    fn new(job: &Job) -> Plan {
        let delay = job.behaviour.completion_delay();
        Plan {
            in_progress: job.created + delay / 10,
            finalizing: job.created + delay.mul_f64(0.9),
            ends: job.created + delay,
            total: job.lines.len(),
        }
    }

    /// When request `index` (0-based) shows as done at the earliest.
    fn due(&self, index: usize) -> Instant {
        let share = (index + 1) as f64 / self.total.max(1) as f64;
        self.in_progress + (self.finalizing - self.in_progress).mul_f64(share)
    }
}

/// A request that ran: its line of the output or error file and what the journal records.
struct Done {
    line: String,
    status_code: u16,
    menu_days: Option<u8>,
    usage: Option<Usage>,
    /// Whether it shows as done (its time came).
    shown: bool,
}

/// What ended a wait.
enum Wake {
    Due,
    Cancelled,
    Shutdown,
}

async fn wait_until(deadline: Instant, job: &Job, state: &AppState) -> Wake {
    tokio::select! {
        biased;
        _ = state.shutdown.cancelled() => Wake::Shutdown,
        _ = job.cancel.cancelled() => Wake::Cancelled,
        _ = tokio::time::sleep_until(deadline) => Wake::Due,
    }
}

/// Runs `job` to its end. `failure` is why its input file cannot be used, found at creation:
/// the batch then fails when its validation ends.
pub(crate) async fn run(state: Arc<AppState>, job: Arc<Job>, failure: Option<BatchError>) {
    let plan = Plan::new(&job);
    let mut results: Vec<Option<Done>> = (0..plan.total).map(|_| None).collect();
    let wake = match wait_until(plan.in_progress, &job, &state).await {
        Wake::Due => match failure {
            Some(error) => {
                fail(&job, error);
                return;
            }
            None if settle(&job, BatchStatus::InProgress) => {
                let runs = job.behaviour.runs(plan.total);
                execute(&state, &job, &plan, &mut results[..runs]).await
            }
            None => Wake::Cancelled,
        },
        other => other,
    };
    let expires = job.behaviour.expire_after_fraction.is_some();
    let wake = match wake {
        Wake::Due if expires || settle(&job, BatchStatus::Finalizing) => {
            wait_until(plan.ends, &job, &state).await
        }
        Wake::Due => Wake::Cancelled,
        other => other,
    };
    match wake {
        Wake::Shutdown => {}
        Wake::Due if expires => finish(&state, &job, &results, BatchStatus::Expired),
        Wake::Due => finish(&state, &job, &results, BatchStatus::Completed),
        Wake::Cancelled => {
            // Requests in flight are let go; cancelling lasts a tenth of the delay.
            let wind_down = job.behaviour.completion_delay() / 10;
            tokio::select! {
                _ = state.shutdown.cancelled() => {}
                _ = tokio::time::sleep(wind_down) => {
                    finish(&state, &job, &results, BatchStatus::Cancelled);
                }
            }
        }
    }
}

/// Runs the requests `results` stands for (the first of the batch) until each ran and the
/// `in_progress` span is over, or a cancel or shutdown comes.
async fn execute(
    state: &Arc<AppState>,
    job: &Arc<Job>,
    plan: &Plan,
    results: &mut [Option<Done>],
) -> Wake {
    let mut tasks = JoinSet::new();
    let mut index_of = HashMap::new();
    for index in 0..results.len() {
        let handle = tasks.spawn(answer(state.clone(), job.clone(), index));
        index_of.insert(handle.id(), index);
    }
    loop {
        tokio::select! {
            biased;
            _ = state.shutdown.cancelled() => return Wake::Shutdown,
            _ = job.cancel.cancelled() => {
                show(job, plan, results, Instant::now());
                return Wake::Cancelled;
            }
            Some(joined) = tasks.join_next_with_id() => {
                let (index, done) = match joined {
                    Ok((id, done)) => (index_of[&id], done),
                    Err(e) => {
                        let index = index_of[&e.id()];
                        (index, error_done(&job.lines[index].custom_id, reply::server_error()))
                    }
                };
                results[index] = Some(done);
            }
            _ = tokio::time::sleep(TICK) => {}
        }
        let now = Instant::now();
        show(job, plan, results, now);
        if tasks.is_empty() && now >= plan.finalizing {
            return Wake::Due;
        }
    }
}

/// Answers request `index` of the batch as the endpoint would (or with the 500 the behaviour
/// asks for), holding a permit of the pool; all of it, to the file line, on the blocking pool.
async fn answer(state: Arc<AppState>, job: Arc<Job>, index: usize) -> Done {
    let _permit = state.batches.pool.acquire().await;
    let custom_id = job.lines[index].custom_id.clone();
    let shared = state.clone();
    let answering = tokio::task::spawn_blocking(move || {
        let line = &job.lines[index];
        let position = index + 1;
        let answered = if job.behaviour.fails(position) {
            Err(reply::server_error())
        } else {
            reply::answer_line(&shared, &line.body, job.behaviour.breaks(position))
        };
        match answered {
            Ok(answer) => Done {
                line: response_line(
                    &line.custom_id,
                    200,
                    serde_json::to_value(&answer.completion).unwrap_or_default(),
                ),
                status_code: 200,
                menu_days: answer.menu_days,
                usage: Some(answer.completion.usage),
                shown: false,
            },
            Err(refused) => error_done(&line.custom_id, refused),
        }
    });
    answering.await.unwrap_or_else(|e| {
        warn!(error = %e, "answering a batch request failed");
        error_done(&custom_id, reply::server_error())
    })
}

fn error_done(custom_id: &str, refused: Refused) -> Done {
    let status_code = refused.status.as_u16();
    Done {
        line: response_line(
            custom_id,
            status_code,
            serde_json::to_value(&refused.body).unwrap_or_default(),
        ),
        status_code,
        menu_days: None,
        usage: None,
        shown: false,
    }
}

/// A line of the output or error file carrying the request's HTTP answer.
fn response_line(custom_id: &str, status_code: u16, body: serde_json::Value) -> String {
    file_line(OutputLine {
        id: format!("batch_req_{}", random_id(32)),
        custom_id: custom_id.to_string(),
        response: Some(LineResponse {
            status_code,
            request_id: new_request_id(),
            body,
        }),
        error: None,
    })
}

fn file_line(line: OutputLine) -> String {
    serde_json::to_string(&line).unwrap_or_default()
}

/// Marks the requests whose time came as done, in the counts and the journal.
fn show(job: &Job, plan: &Plan, results: &mut [Option<Done>], now: Instant) {
    let newly: Vec<(usize, &Done)> = results
        .iter_mut()
        .enumerate()
        .filter_map(|(index, result)| match result {
            Some(done) if !done.shown && plan.due(index) <= now => {
                done.shown = true;
                Some((index, &*done))
            }
            _ => None,
        })
        .collect();
    if newly.is_empty() {
        return;
    }
    job.update(|record| {
        for (index, done) in newly {
            let ok = done.status_code == 200;
            if ok {
                record.object.request_counts.completed += 1;
            } else {
                record.object.request_counts.failed += 1;
            }
            let entry = &mut record.requests[index];
            entry.outcome = if ok {
                RequestOutcome::Completed
            } else {
                RequestOutcome::Failed
            };
            entry.status_code = Some(done.status_code);
            entry.menu_days = done.menu_days;
            entry.prompt_tokens = done.usage.map(|u| u.prompt_tokens);
            entry.completion_tokens = done.usage.map(|u| u.completion_tokens);
        }
    });
}

/// Moves the batch to `status` now, unless a cancel came first (then `false`).
fn settle(job: &Job, status: BatchStatus) -> bool {
    job.update(|record| {
        let cancelled = record.object.status == BatchStatus::Cancelling;
        if !cancelled {
            stamp(&mut record.object, status);
        }
        !cancelled
    })
}

/// Sets `status` and its time.
fn stamp(object: &mut BatchObject, status: BatchStatus) {
    object.status = status;
    let now = Some(unix_now());
    match status {
        BatchStatus::InProgress => object.in_progress_at = now,
        BatchStatus::Finalizing => object.finalizing_at = now,
        BatchStatus::Completed => object.completed_at = now,
        BatchStatus::Failed => object.failed_at = now,
        BatchStatus::Expired => object.expired_at = now,
        BatchStatus::Cancelled => object.cancelled_at = now,
        BatchStatus::Cancelling => object.cancelling_at = now,
        BatchStatus::Validating => {}
    }
}

/// The status a batch ends with: `status`, or `cancelled` when a cancel came first.
fn ending(object: &BatchObject, status: BatchStatus) -> BatchStatus {
    if object.status == BatchStatus::Cancelling {
        BatchStatus::Cancelled
    } else {
        status
    }
}

/// Ends a batch whose input file cannot be used: `failed`, with why.
fn fail(job: &Job, error: BatchError) {
    job.update(|record| {
        let status = ending(&record.object, BatchStatus::Failed);
        stamp(&mut record.object, status);
        if status == BatchStatus::Failed {
            record.object.errors = Some(BatchErrors {
                object: "list".to_string(),
                data: vec![error],
            });
        }
    });
}

/// Writes the output and error files and ends the batch `status`: the requests shown as done
/// have their lines, and when it expired, those that never ran `batch_expired` lines. A cancel
/// that came meanwhile ends it `cancelled` instead, with the same files. The status and the
/// files' ids change together, so a reader never sees an ended batch without its files.
fn finish(state: &AppState, job: &Job, results: &[Option<Done>], status: BatchStatus) {
    let mut output = String::new();
    let mut errors = String::new();
    let mut unfinished = Vec::new();
    for (index, result) in results.iter().enumerate() {
        match result {
            Some(done) if done.shown => {
                let file = if done.status_code == 200 {
                    &mut output
                } else {
                    &mut errors
                };
                file.push_str(&done.line);
                file.push('\n');
            }
            None if status == BatchStatus::Expired => {
                errors.push_str(&file_line(OutputLine {
                    id: format!("batch_req_{}", random_id(32)),
                    custom_id: job.lines[index].custom_id.clone(),
                    response: None,
                    error: Some(LineError {
                        code: "batch_expired".to_string(),
                        message: "This request could not be executed before the completion \
                                  window expired."
                            .to_string(),
                    }),
                }));
                errors.push('\n');
                unfinished.push(index);
            }
            _ => unfinished.push(index),
        }
    }
    let store = |kind: &str, content: String| {
        (!content.is_empty()).then(|| {
            state
                .batches
                .files
                .insert(
                    format!("{}_{kind}.jsonl", job.id),
                    BATCH_OUTPUT,
                    content.into(),
                    None,
                )
                .id
        })
    };
    let output_file_id = store("output", output);
    let error_file_id = store("error", errors);
    job.update(|record| {
        let status = ending(&record.object, status);
        stamp(&mut record.object, status);
        record.object.output_file_id = output_file_id;
        record.object.error_file_id = error_file_id;
        let outcome = match status {
            BatchStatus::Expired => RequestOutcome::Expired,
            _ => RequestOutcome::Cancelled,
        };
        for index in unfinished {
            record.requests[index].outcome = outcome;
        }
    });
}
