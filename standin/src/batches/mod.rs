//! OpenAI's Batch API as the stand-in serves it (<https://platform.openai.com/docs/guides/batch>):
//! upload a JSONL file of Chat Completions requests (`files`, read by `input`), create a batch
//! of it, poll it, cancel it, list batches (`jobs`), and download the output and error files
//! once it ends. Each request is answered by the same code as `/v1/chat/completions` (`reply`),
//! so a day brief gets a day and a whole-menu brief the whole menu; `run` moves a batch through
//! its statuses over a configurable delay, shaped by the `behaviour` knobs (partial expiry,
//! failing requests, broken days, file limits). Every batch is in the `journal`. Nothing is
//! global: two stand-ins are two independent providers.

mod behaviour;
mod files;
mod input;
mod jobs;
mod journal;
mod run;
pub mod wire;

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Router, routing::MethodRouter};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

pub use behaviour::BatchBehaviour;
pub use journal::{BatchEntry, BatchRequestEntry, RequestOutcome};

use crate::reply::bad_request;
use crate::server::AppState;
use files::Files;
use jobs::Jobs;

/// The batch side of one stand-in: its knobs, files and batches, and the permits that bound
/// how many batch requests are answered at once.
pub(crate) struct Batches {
    behaviour: Mutex<BatchBehaviour>,
    files: Files,
    jobs: Jobs,
    /// One permit per core: composing is CPU work, and a batch of thousands must leave the
    /// server free to answer its other calls.
    pool: Semaphore,
}

impl Batches {
    pub(crate) fn new(behaviour: BatchBehaviour) -> Batches {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Batches {
            behaviour: Mutex::new(behaviour),
            files: Files::default(),
            jobs: Jobs::default(),
            pool: Semaphore::new(cores),
        }
    }

    pub(crate) fn behaviour(&self) -> BatchBehaviour {
        self.lock().clone()
    }

    /// Applies to batches and uploads from now on; batches already created keep theirs.
    pub(crate) fn set_behaviour(&self, behaviour: BatchBehaviour) {
        *self.lock() = behaviour;
    }

    /// Applies the fields `changes` names (see [`BatchBehaviour::changed`]) and returns the
    /// behaviour now in force.
    fn change(&self, changes: &Value) -> Result<BatchBehaviour, String> {
        let mut behaviour = self.lock();
        *behaviour = behaviour.changed(changes)?;
        Ok(behaviour.clone())
    }

    /// Every batch created, oldest first.
    pub(crate) fn journal(&self) -> Vec<BatchEntry> {
        self.jobs.all().iter().map(|job| job.entry()).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BatchBehaviour> {
        self.behaviour.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The OpenAI routes, authenticated as the chat endpoint is. An upload's size is checked
/// against `max_file_bytes` while it is read, so the server's default body limit is lifted.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    let upload: MethodRouter<Arc<AppState>> =
        post(files::upload).layer(DefaultBodyLimit::disable());
    Router::new()
        .route("/v1/files", upload)
        .route("/v1/files/{id}", get(files::retrieve))
        .route("/v1/files/{id}/content", get(files::content))
        .route("/v1/batches", post(jobs::create).get(jobs::list))
        .route("/v1/batches/{id}", get(jobs::retrieve))
        .route("/v1/batches/{id}/cancel", post(jobs::cancel))
}

/// The admin routes: the journal and the knobs.
pub(crate) fn admin_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/_standin/batches", get(get_journal))
        .route(
            "/_standin/batches/behaviour",
            get(get_behaviour).post(change_behaviour),
        )
}

async fn get_journal(State(state): State<Arc<AppState>>) -> Response {
    Json(json!({ "batches": state.batches.journal() })).into_response()
}

async fn get_behaviour(State(state): State<Arc<AppState>>) -> Response {
    Json(state.batches.behaviour()).into_response()
}

/// `POST /_standin/batches/behaviour`: the fields given replace the current ones (`null`
/// unsets an optional knob); answers the behaviour now in force.
async fn change_behaviour(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let changed = serde_json::from_slice::<Value>(&body)
        .map_err(|e| e.to_string())
        .and_then(|changes| state.batches.change(&changes));
    match changed {
        Ok(behaviour) => Json(behaviour).into_response(),
        Err(e) => bad_request(format!("Invalid behaviour: {e}"), None, None).into_response(),
    }
}
