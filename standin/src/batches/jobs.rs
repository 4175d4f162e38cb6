//! The Batches endpoints (<https://platform.openai.com/docs/api-reference/batch>): create,
//! retrieve, list (newest first, `limit` and `after`) and cancel, over the batches one stand-in
//! holds in memory. A created batch is run by `run`, which alone moves it through its statuses
//! (a cancel only asks it to stop).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::behaviour::BatchBehaviour;
use super::input::{CHAT_COMPLETIONS, InputLine};
use super::journal::{BatchEntry, BatchRequestEntry, RequestOutcome};
use super::run;
use super::wire::{BatchError, BatchList, BatchObject, BatchStatus, RequestCounts};
use crate::openai::ErrorBody;
use crate::reply::{Refused, bad_request, random_id, unix_now};
use crate::server::AppState;

/// The only completion window OpenAI offers, in seconds.
const WINDOW: &str = "24h";
const WINDOW_SECONDS: i64 = 24 * 60 * 60;
/// OpenAI's metadata limits: pairs, key length, value length.
const METADATA_PAIRS: usize = 16;
const METADATA_KEY: usize = 64;
const METADATA_VALUE: usize = 512;

/// One batch: what it was created with, and its record, changed by its run.
pub(crate) struct Job {
    pub(crate) id: String,
    pub(crate) behaviour: BatchBehaviour,
    pub(crate) created: Instant,
    pub(crate) lines: Arc<[InputLine]>,
    /// Fired by `POST /v1/batches/{id}/cancel`.
    pub(crate) cancel: CancellationToken,
    record: Mutex<Record>,
}

/// What a batch shows: its Batch object and its requests' journal entries.
pub(crate) struct Record {
    pub(crate) object: BatchObject,
    pub(crate) requests: Vec<BatchRequestEntry>,
}

impl Job {
    pub(crate) fn object(&self) -> BatchObject {
        self.lock().object.clone()
    }

    pub(crate) fn entry(&self) -> BatchEntry {
        let record = self.lock();
        BatchEntry {
            id: record.object.id.clone(),
            input_file_id: record.object.input_file_id.clone(),
            metadata: record.object.metadata.clone(),
            status: record.object.status,
            created_at: record.object.created_at,
            requests: record.requests.clone(),
        }
    }

    pub(crate) fn update<T>(&self, change: impl FnOnce(&mut Record) -> T) -> T {
        change(&mut self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Every batch of one stand-in, oldest first.
#[derive(Default)]
pub(crate) struct Jobs {
    all: Mutex<Vec<Arc<Job>>>,
}

impl Jobs {
    pub(crate) fn all(&self) -> Vec<Arc<Job>> {
        self.lock().clone()
    }

    fn get(&self, id: &str) -> Option<Arc<Job>> {
        self.lock().iter().rev().find(|j| j.id == id).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Job>>> {
        self.all.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `POST /v1/batches` body.
#[derive(Deserialize)]
struct CreateBatch {
    input_file_id: Option<String>,
    endpoint: Option<String>,
    completion_window: Option<String>,
    metadata: Option<Value>,
}

/// `POST /v1/batches`: the batch, `validating`. Parameters are checked at once (400); an input
/// file that is unknown, not a batch input or empty makes a batch that ends `failed`.
pub(crate) async fn create(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let request = match read_create(&body) {
        Ok(request) => request,
        Err(refused) => return refused.into_response(),
    };
    let (lines, failure): (Arc<[InputLine]>, _) =
        match state.batches.files.get(&request.input_file_id) {
            None => (
                Arc::new([]),
                Some(failure(
                    "invalid_file",
                    format!("No such File object: {}", request.input_file_id),
                )),
            ),
            Some(file) => match &file.lines {
                None => (
                    Arc::new([]),
                    Some(failure(
                        "invalid_file",
                        format!(
                            "File {} has purpose '{}', not 'batch'.",
                            request.input_file_id, file.object.purpose
                        ),
                    )),
                ),
                Some(lines) if lines.is_empty() => (
                    lines.clone(),
                    Some(failure(
                        "empty_file",
                        "The input file has no request.".into(),
                    )),
                ),
                Some(lines) => (lines.clone(), None),
            },
        };
    let created_at = unix_now();
    let object = BatchObject {
        id: format!("batch_{}", random_id(24)),
        object: "batch".to_string(),
        endpoint: CHAT_COMPLETIONS.to_string(),
        errors: None,
        input_file_id: request.input_file_id,
        completion_window: WINDOW.to_string(),
        status: BatchStatus::Validating,
        output_file_id: None,
        error_file_id: None,
        created_at,
        in_progress_at: None,
        expires_at: Some(created_at + WINDOW_SECONDS),
        finalizing_at: None,
        completed_at: None,
        failed_at: None,
        expired_at: None,
        cancelling_at: None,
        cancelled_at: None,
        request_counts: RequestCounts {
            total: lines.len() as u32,
            ..RequestCounts::default()
        },
        metadata: request.metadata,
    };
    let requests = lines
        .iter()
        .map(|line| BatchRequestEntry {
            custom_id: line.custom_id.clone(),
            outcome: RequestOutcome::Pending,
            status_code: None,
            menu_days: None,
            prompt_tokens: None,
            completion_tokens: None,
        })
        .collect();
    let job = Arc::new(Job {
        id: object.id.clone(),
        behaviour: state.batches.behaviour(),
        created: Instant::now(),
        lines,
        cancel: CancellationToken::new(),
        record: Mutex::new(Record {
            object: object.clone(),
            requests,
        }),
    });
    state.batches.jobs.lock().push(job.clone());
    tokio::spawn(run::run(state.clone(), job, failure));
    Json(object).into_response()
}

/// The checked parameters of a create.
struct Create {
    input_file_id: String,
    metadata: Option<BTreeMap<String, String>>,
}

fn read_create(body: &[u8]) -> Result<Create, Refused> {
    let request: CreateBatch = serde_json::from_slice(body)
        .map_err(|e| bad_request(format!("Invalid request body: {e}"), None, None))?;
    let missing = |param: &str| {
        bad_request(
            format!("Missing required parameter: '{param}'."),
            Some(param),
            Some("missing_required_parameter"),
        )
    };
    let input_file_id = request
        .input_file_id
        .ok_or_else(|| missing("input_file_id"))?;
    let endpoint = request.endpoint.ok_or_else(|| missing("endpoint"))?;
    if endpoint != CHAT_COMPLETIONS {
        return Err(invalid_value(
            "endpoint",
            &endpoint,
            &format!("'{CHAT_COMPLETIONS}'"),
        ));
    }
    let window = request
        .completion_window
        .ok_or_else(|| missing("completion_window"))?;
    if window != WINDOW {
        return Err(invalid_value(
            "completion_window",
            &window,
            &format!("'{WINDOW}'"),
        ));
    }
    let metadata = match request.metadata {
        None | Some(Value::Null) => None,
        Some(value) => Some(read_metadata(value)?),
    };
    Ok(Create {
        input_file_id,
        metadata,
    })
}

fn read_metadata(value: Value) -> Result<BTreeMap<String, String>, Refused> {
    let invalid = |why: String| bad_request(why, Some("metadata"), Some("invalid_value"));
    let Value::Object(pairs) = value else {
        return Err(invalid("Invalid 'metadata': expected an object.".into()));
    };
    if pairs.len() > METADATA_PAIRS {
        return Err(invalid(format!(
            "Invalid 'metadata': at most {METADATA_PAIRS} pairs."
        )));
    }
    pairs
        .into_iter()
        .map(|(key, value)| match value {
            Value::String(text)
                if key.chars().count() <= METADATA_KEY
                    && text.chars().count() <= METADATA_VALUE =>
            {
                Ok((key, text))
            }
            _ => Err(invalid(format!(
                "Invalid 'metadata.{key}': keys are strings of at most {METADATA_KEY} \
                 characters, values strings of at most {METADATA_VALUE}."
            ))),
        })
        .collect()
}

fn invalid_value(param: &str, value: &str, supported: &str) -> Refused {
    bad_request(
        format!("Invalid value for '{param}': '{value}'. Supported values are: {supported}."),
        Some(param),
        Some("invalid_value"),
    )
}

fn failure(code: &str, message: String) -> BatchError {
    BatchError {
        code: code.to_string(),
        message,
        param: Some("input_file_id".to_string()),
        line: None,
    }
}

/// `GET /v1/batches/{id}`.
pub(crate) async fn retrieve(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Response {
    match state.batches.jobs.get(&id) {
        Some(job) => Json(job.object()).into_response(),
        None => no_such_batch(&id).into_response(),
    }
}

/// `GET /v1/batches?limit=N&after=ID`: newest first; `limit` 1–100, default 20; `after` a
/// batch id of an earlier page, whose older batches follow.
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
        None => 20,
        Some(Ok(limit)) if (1..=100).contains(&limit) => limit,
        Some(_) => {
            return bad_request(
                "Invalid 'limit': expected an integer between 1 and 100.",
                Some("limit"),
                Some("invalid_value"),
            )
            .into_response();
        }
    };
    let newest_first: Vec<BatchObject> = state
        .batches
        .jobs
        .all()
        .iter()
        .rev()
        .map(|job| job.object())
        .collect();
    let start = match query.get("after") {
        None => 0,
        Some(after) => match newest_first.iter().position(|b| &b.id == after) {
            Some(at) => at + 1,
            None => return no_such_batch(after).into_response(),
        },
    };
    let rest = &newest_first[start..];
    let data: Vec<BatchObject> = rest.iter().take(limit).cloned().collect();
    Json(BatchList {
        object: "list".to_string(),
        first_id: data.first().map(|b| b.id.clone()),
        last_id: data.last().map(|b| b.id.clone()),
        has_more: rest.len() > data.len(),
        data,
    })
    .into_response()
}

/// `POST /v1/batches/{id}/cancel`: the batch, `cancelling` (its run then stops it and marks
/// it `cancelled`). Cancelling a cancelled or cancelling batch changes nothing; a batch that
/// ended otherwise cannot be cancelled (400).
pub(crate) async fn cancel(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    let Some(job) = state.batches.jobs.get(&id) else {
        return no_such_batch(&id).into_response();
    };
    let refused = job.update(|record| {
        let status = record.object.status;
        match status {
            BatchStatus::Validating | BatchStatus::InProgress | BatchStatus::Finalizing => {
                record.object.status = BatchStatus::Cancelling;
                record.object.cancelling_at = Some(unix_now());
                None
            }
            BatchStatus::Cancelling | BatchStatus::Cancelled => None,
            BatchStatus::Failed | BatchStatus::Completed | BatchStatus::Expired => {
                Some(bad_request(
                    format!("Cannot cancel a batch with status '{}'.", status.as_str()),
                    None,
                    None,
                ))
            }
        }
    });
    if let Some(refused) = refused {
        return refused.into_response();
    }
    job.cancel.cancel();
    Json(job.object()).into_response()
}

fn no_such_batch(id: &str) -> Refused {
    Refused {
        status: StatusCode::NOT_FOUND,
        body: ErrorBody::new(
            format!("No batch found with id '{id}'."),
            "invalid_request_error",
            Some("batch_id"),
            Value::Null,
        ),
    }
}
