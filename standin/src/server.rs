//! The HTTP server: the routes (OpenAI's under `/v1`, the admin ones under `/_standin`; the
//! Batch API's come from `batches`), what
//! every handler shares, and the accept loop.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use secrecy::ExposeSecret;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::answers::Answers;
use crate::batches::{self, Batches};
use crate::chat::chat_completions;
use crate::config::Config;
use crate::connection::serve_connection;
use crate::faults::{self, Script, Step};
use crate::limits::Limiter;
use crate::log::RequestLog;
use crate::openai::{ErrorBody, Model, ModelList};

/// Models listed by `GET /v1/models` when any model name is accepted.
const DEFAULT_MODELS: [&str; 2] = ["gpt-4o-mini", "gpt-4o"];

/// Everything the handlers share.
pub(crate) struct AppState {
    pub(crate) config: Config,
    pub(crate) script: Script,
    pub(crate) log: RequestLog,
    pub(crate) limiter: Option<Limiter>,
    /// Answers kept by body, in benchmark mode.
    pub(crate) answers: Option<Answers>,
    /// The Batch API's files, batches and knobs.
    pub(crate) batches: Batches,
    rng: Mutex<StdRng>,
    pub(crate) shutdown: CancellationToken,
}

impl AppState {
    pub(crate) fn new(config: Config, shutdown: CancellationToken) -> Arc<AppState> {
        Arc::new(AppState {
            limiter: config
                .limits
                .is_limited()
                .then(|| Limiter::new(config.limits)),
            answers: config.reuse_answers.then(Answers::default),
            batches: Batches::new(config.batches.clone()),
            rng: Mutex::new(StdRng::seed_from_u64(config.seed)),
            script: Script::default(),
            log: RequestLog::new(),
            shutdown,
            config,
        })
    }

    pub(crate) fn with_rng<T>(&self, f: impl FnOnce(&mut StdRng) -> T) -> T {
        f(&mut self.rng.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Accepts connections until `shutdown`, then lets open connections finish their requests.
pub(crate) async fn run(listener: TcpListener, state: Arc<AppState>, shutdown: CancellationToken) {
    // Load the tokenizer and the catalogue now, so the first call's latency is what was set.
    tokio::task::spawn_blocking(|| {
        crate::tokens::count("warm up");
        crate::catalogue::recipes().len()
    });
    let app = router(state);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, app.clone(), shutdown.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// The routes. The admin routes need no key: the stand-in only ever listens for local tests.
fn router(state: Arc<AppState>) -> Router {
    let openai = Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/models", get(list_models))
        .route("/v1/models/{model}", get(get_model))
        .merge(batches::routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    let admin = Router::new()
        .route(
            "/_standin/script",
            get(get_script).post(push_script).delete(clear_script),
        )
        .route(
            "/_standin/requests",
            get(get_requests).delete(clear_requests),
        )
        .merge(batches::admin_routes());
    openai
        .merge(admin)
        .fallback(unknown_route)
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

/// The id OpenAI puts in `x-request-id`; handlers read it to log it.
#[derive(Clone)]
pub(crate) struct RequestId(pub(crate) String);

/// A fresh `req_…` id, as OpenAI names each request it answers.
pub(crate) fn new_request_id() -> String {
    format!("req_{:032x}", rand::rng().random::<u128>())
}

/// Gives every request an id and every response the `x-request-id` header.
async fn request_id(mut request: Request, next: Next) -> Response {
    let id = new_request_id();
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// Bearer-token check on the OpenAI routes, with OpenAI's 401 bodies.
async fn authenticate(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return faults::invalid_api_key(
            "You didn't provide an API key. You need to provide your API key in an \
             Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). You \
             can obtain an API key from https://platform.openai.com/account/api-keys.",
        );
    };
    if let Some(expected) = &state.config.api_key
        && token != expected.expose_secret()
    {
        // OpenAI echoes part of the key; the stand-in does not, so no log ever holds one.
        return faults::invalid_api_key(
            "Incorrect API key provided. You can find your API key at \
             https://platform.openai.com/account/api-keys.",
        );
    }
    next.run(request).await
}

async fn unknown_route(method: Method, uri: Uri) -> Response {
    faults::error(
        StatusCode::NOT_FOUND,
        ErrorBody::coded(
            format!("Invalid URL ({method} {})", uri.path()),
            "invalid_request_error",
            None,
        ),
    )
}

fn served_models(state: &AppState) -> Vec<String> {
    if state.config.models.is_empty() {
        DEFAULT_MODELS.iter().map(|m| m.to_string()).collect()
    } else {
        state.config.models.clone()
    }
}

pub(crate) fn serves_model(state: &AppState, model: &str) -> bool {
    state.config.models.is_empty() || state.config.models.iter().any(|m| m == model)
}

async fn list_models(State(state): State<Arc<AppState>>) -> Json<ModelList> {
    Json(ModelList {
        object: "list".to_string(),
        data: served_models(&state)
            .iter()
            .map(|m| Model::new(m))
            .collect(),
    })
}

async fn get_model(State(state): State<Arc<AppState>>, Path(model): Path<String>) -> Response {
    if serves_model(&state, &model) {
        Json(Model::new(&model)).into_response()
    } else {
        faults::model_not_found(&model)
    }
}

/// `POST /_standin/script`: one step or a list of them, appended to the script.
async fn push_script(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let parsed = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(list @ serde_json::Value::Array(_)) => serde_json::from_value::<Vec<Step>>(list),
        Ok(one) => serde_json::from_value::<Step>(one).map(|s| vec![s]),
        Err(e) => Err(e),
    };
    match parsed {
        Ok(steps) => state.script.push(steps),
        Err(e) => {
            return faults::error(
                StatusCode::BAD_REQUEST,
                ErrorBody::coded(
                    format!("Invalid script: {e}"),
                    "invalid_request_error",
                    None,
                ),
            );
        }
    }
    Json(json!({ "steps": state.script.steps() })).into_response()
}

async fn get_script(State(state): State<Arc<AppState>>) -> Response {
    Json(json!({ "steps": state.script.steps() })).into_response()
}

async fn clear_script(State(state): State<Arc<AppState>>) -> StatusCode {
    state.script.clear();
    StatusCode::NO_CONTENT
}

async fn get_requests(State(state): State<Arc<AppState>>) -> Response {
    Json(json!({ "requests": state.log.entries() })).into_response()
}

async fn clear_requests(State(state): State<Arc<AppState>>) -> StatusCode {
    state.log.clear();
    StatusCode::NO_CONTENT
}
