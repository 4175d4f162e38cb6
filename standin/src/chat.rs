//! `POST /v1/chat/completions`: from the request body to the answer OpenAI would give, in the
//! order the real API decides: parameters, model, rate limits, then the model's answer. Faults
//! step in after the rate limiter, where a real provider's failures happen. The answer itself
//! (checks, composing, shaping) is `reply`'s, shared with the batches' lines.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use tracing::info;

use crate::connection::Connection;
use crate::faults::{self, CallFacts, Fault, insert_headers};
use crate::limits::{self, Budget, LimitKind, Verdict};
use crate::log::LoggedMessage;
use crate::openai::ErrorBody;
use crate::reply::{self, Ask, Kept, Message, Refused};
use crate::server::{AppState, RequestId};

/// What OpenAI reserves against tokens per minute when a call sets no completion limit.
const DEFAULT_COMPLETION_RESERVE: u32 = 4096;

/// What one call turned into: an HTTP answer, or no answer at all.
enum Outcome {
    Answer(Response),
    Dropped { reset: bool },
}

impl From<Response> for Outcome {
    fn from(response: Response) -> Outcome {
        Outcome::Answer(response)
    }
}

impl From<Refused> for Outcome {
    fn from(refused: Refused) -> Outcome {
        Outcome::Answer(refused.into_response())
    }
}

/// The handler: logs the call on arrival and on answer around [`answer`].
pub(crate) async fn chat_completions(
    State(state): State<Arc<AppState>>,
    Extension(RequestId(id)): Extension<RequestId>,
    connection: Option<Extension<Connection>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let client_request_id = headers
        .get("x-client-request-id")
        .and_then(|v| v.to_str().ok());
    let seq = state.log.arrive(&id, client_request_id);
    match answer(&state, seq, &body, started).await {
        Outcome::Answer(response) => {
            let status = response.status().as_u16();
            state.log.answer(seq, Some(status));
            let logged = state.log.get(seq).unwrap_or_default();
            info!(
                request.id = %id,
                request.seq = seq,
                request.client_id = client_request_id.unwrap_or_default(),
                llm.model = logged.model.as_deref().unwrap_or_default(),
                http.status = status,
                fault = logged.fault.as_deref().unwrap_or_default(),
                finish_reason = logged.finish_reason.as_deref().unwrap_or_default(),
                latency_ms = started.elapsed().as_millis() as u64,
                "chat completion"
            );
            response
        }
        Outcome::Dropped { reset } => {
            state.log.answer(seq, None);
            info!(
                request.id = %id,
                request.seq = seq,
                request.client_id = client_request_id.unwrap_or_default(),
                reset,
                "connection dropped without an answer"
            );
            match connection {
                Some(Extension(c)) if reset => c.reset(),
                Some(Extension(c)) => c.close(),
                None => {}
            }
            // The connection is being dropped, and this future with it.
            std::future::pending::<()>().await;
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn answer(state: &Arc<AppState>, seq: u64, body: &[u8], started: Instant) -> Outcome {
    let request = match reply::parse(body) {
        Ok(r) => r,
        Err(refused) => return refused.into(),
    };
    let ask = Ask::of(&request);
    state.log.update(seq, |e| {
        e.model = request.model.clone();
        e.max_completion_tokens = request.completion_limit();
        e.response_format = request
            .response_format
            .as_ref()
            .map(|f| f.kind().to_string());
        e.day = ask.as_ref().and_then(Ask::day);
        e.menu_days = ask.as_ref().and_then(Ask::menu_days);
        e.problems = ask.as_ref().and_then(Ask::problems);
        if state.config.record_messages {
            e.messages = request
                .messages
                .iter()
                .flatten()
                .map(|m| LoggedMessage {
                    role: m.role.clone(),
                    content: m.text(),
                })
                .collect();
        }
    });
    let model = match reply::check(state, &request) {
        Ok(model) => model,
        Err(refused) => return refused.into(),
    };

    // Benchmark mode: a body answered before is answered the same way, without composing or
    // counting again.
    let kept = Kept::of(state, body);
    let prompt_tokens = kept.prompt_tokens(&request);
    let limit = request.completion_limit().map(|l| l as u32);
    let reserved = prompt_tokens + limit.unwrap_or(DEFAULT_COMPLETION_RESERVE);
    state
        .log
        .update(seq, |e| e.prompt_tokens = Some(prompt_tokens));
    let budget = match admit(state, &model, reserved) {
        Ok(budget) => budget,
        Err(response) => return (*response).into(),
    };

    let fault = state
        .script
        .next()
        .unwrap_or_else(|| state.with_rng(|rng| state.config.faults.draw(rng)));
    if let Some(f) = &fault {
        state
            .log
            .update(seq, |e| e.fault = Some(f.name().to_string()));
    }
    let mut delay = state.with_rng(|rng| state.config.latency.draw(rng));
    match &fault {
        Some(Fault::Reset) => return Outcome::Dropped { reset: true },
        Some(Fault::Hang { ms }) => {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(*ms)) => {}
                _ = state.shutdown.cancelled() => return Outcome::Dropped { reset: false },
            }
        }
        Some(Fault::Latency { ms }) => delay += Duration::from_millis(*ms),
        Some(f) => {
            let facts = CallFacts {
                model: model.clone(),
                prompt_tokens,
                reserved_tokens: reserved,
            };
            if let Some(response) = f.error_response(&facts) {
                return response.into();
            }
        }
        None => {}
    }

    let Some(ask) = ask else {
        return Ask::missing().into();
    };
    let seed = reply::seed(&request, body);
    let message = match kept.message(ask, seed, fault, delay, prompt_tokens).await {
        Ok(message) => message,
        Err(refused) => return refused.into(),
    };
    respond(
        state,
        seq,
        started,
        budget,
        model,
        prompt_tokens,
        message.capped(limit),
    )
}

/// The 200 answer carrying `message`, with OpenAI's headers and the rate-limit headers.
fn respond(
    state: &AppState,
    seq: u64,
    started: Instant,
    budget: Budget,
    model: String,
    prompt_tokens: u32,
    message: Message,
) -> Outcome {
    state.log.update(seq, |e| {
        e.finish_reason = Some(message.finish_reason.to_string());
        e.completion_tokens = Some(message.tokens);
    });
    let mut response = Json(message.completion(model, prompt_tokens)).into_response();
    insert_headers(
        response.headers_mut(),
        &[
            (
                "openai-processing-ms".to_string(),
                started.elapsed().as_millis().to_string(),
            ),
            ("openai-version".to_string(), "2020-10-01".to_string()),
        ],
    );
    insert_headers(response.headers_mut(), &budget.headers());
    response.into()
}

/// The rate limiter's verdict, as the budget to report or the 429 to send.
fn admit(state: &AppState, model: &str, reserved: u32) -> Result<Budget, Box<Response>> {
    let Some(limiter) = &state.limiter else {
        return Ok(Budget::default());
    };
    match limiter.check(Instant::now(), reserved) {
        Verdict::Admitted(budget) => Ok(budget),
        Verdict::Limited {
            kind,
            limit,
            used,
            requested,
            retry_in,
            budget,
        } => {
            let message = limits::rate_limit_message(model, kind, limit, used, requested, retry_in);
            let mut response = faults::error(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorBody::coded(message, kind.as_str(), Some("rate_limit_exceeded")),
            );
            insert_headers(response.headers_mut(), &budget.headers());
            Err(Box::new(response))
        }
        Verdict::TooLarge { limit, requested } => Err(Box::new(faults::error(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorBody::coded(
                limits::too_large_message(model, limit, requested),
                LimitKind::Tokens.as_str(),
                Some("rate_limit_exceeded"),
            ),
        ))),
    }
}
