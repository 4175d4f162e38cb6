//! `POST /v1/chat/completions`: from the request body to the answer OpenAI would give, in the
//! order the real API decides: parameters, model, rate limits, then the model's answer. Faults
//! step in after the rate limiter, where a real provider's failures happen.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use domain::menu::Day;
use domain::prompt::DayBrief;
use rand::Rng;
use serde_json::Value;
use tracing::{info, warn};

use crate::answers::{Answer, Answers};
use crate::compose::{answer_content, break_rule, compose};
use crate::connection::Connection;
use crate::faults::{self, CallFacts, Fault, insert_headers};
use crate::limits::{self, Budget, LimitKind, Verdict};
use crate::log::LoggedMessage;
use crate::openai::{AssistantMessage, ChatCompletion, ChatRequest, Choice, ErrorBody, Usage};
use crate::server::{AppState, RequestId, serves_model};
use crate::tokens;

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
    let request = match parse(body) {
        Ok(r) => r,
        Err(response) => return (*response).into(),
    };
    let brief: Option<DayBrief> = request
        .last_user_text()
        .and_then(|t| serde_json::from_str(&t).ok());
    state.log.update(seq, |e| {
        e.model = request.model.clone();
        e.max_completion_tokens = request.completion_limit();
        e.response_format = request
            .response_format
            .as_ref()
            .map(|f| f.kind().to_string());
        e.day = brief.as_ref().map(|b| b.day);
        e.problems = brief.as_ref().map(|b| b.problems.len());
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
    if let Some(invalid) = validate(&request) {
        return invalid.into();
    }
    let model = request.model.clone().unwrap_or_default();
    if !serves_model(state, &model) {
        return faults::model_not_found(&model).into();
    }

    // Benchmark mode: a body answered before is answered the same way, without composing or
    // counting again.
    let reuse = state.answers.as_ref().map(|a| (a, Answers::key(body)));
    let reused = reuse.and_then(|(answers, key)| answers.get(key));
    let prompt_tokens = reused.as_ref().map_or_else(
        || tokens::prompt_tokens(&request) as u32,
        |a| a.prompt_tokens,
    );
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

    let Some(brief) = brief else {
        return bad_request(
            "Invalid 'messages': the last user message must be a day brief, the JSON object \
             the menu worker sends (day, servings, diet, dishes, macros_pct, ...).",
            Some("messages"),
            None,
        )
        .into();
    };
    let message = 'message: {
        if let (Some(answer), None) = (&reused, &fault) {
            tokio::time::sleep(delay).await;
            break 'message Message {
                content: Some(answer.content.to_string()),
                refusal: None,
                finish_reason: "stop",
                tokens: answer.completion_tokens,
            };
        }
        let seed = request
            .seed
            .map_or_else(|| hash_messages(body), |s| s as u64);
        let composing = {
            let brief = brief.clone();
            tokio::task::spawn_blocking(move || compose(&brief, seed))
        };
        // The latency runs while the day is composed, so a call takes what was configured.
        let (composed, _) = tokio::join!(composing, tokio::time::sleep(delay));
        let day = match composed {
            Ok(c) => c.day,
            Err(e) => {
                warn!(error = %e, "composing a day failed");
                return faults::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorBody::coded(
                        "The server had an error while processing your request.",
                        "server_error",
                        None,
                    ),
                )
                .into();
            }
        };
        let faultless = fault.is_none();
        let message = Message::for_day(&brief, day, fault);
        if let (Some((answers, key)), true, Some(content)) = (reuse, faultless, &message.content) {
            let answer = Answer {
                prompt_tokens,
                content: Arc::from(content.as_str()),
                completion_tokens: message.tokens,
            };
            answers.keep(key, answer);
        }
        message
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

/// The body as a request; errors are boxed answers (a `Response` is large).
fn parse(body: &[u8]) -> Result<ChatRequest, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(if e.is_syntax() || e.is_eof() {
            bad_request(
                "We could not parse the JSON body of your request. (HINT: This likely means \
                 you aren't using your HTTP library correctly. The OpenAI API expects a JSON \
                 payload, but what was sent was not valid JSON.)",
                None,
                None,
            )
        } else {
            bad_request(format!("Invalid request: {e}"), None, None)
        })
    })
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

/// The assistant's message and how it ended.
struct Message {
    content: Option<String>,
    refusal: Option<String>,
    finish_reason: &'static str,
    tokens: u32,
}

impl Message {
    /// The message for a composed day, shaped by a fault that answers 200.
    fn for_day(brief: &DayBrief, day: Day, fault: Option<Fault>) -> Message {
        let text = |content: String, finish_reason| Message {
            tokens: tokens::count(&content),
            content: Some(content),
            refusal: None,
            finish_reason,
        };
        let cut = |day: &Day, share: usize, finish_reason| {
            let full = answer_content(day);
            let (content, n) = tokens::truncate(&full, tokens::count(&full) as usize / share);
            Message {
                content: Some(content),
                refusal: None,
                finish_reason,
                tokens: n as u32,
            }
        };
        match fault {
            Some(Fault::MalformedJson) => text(malformed(&answer_content(&day)), "stop"),
            Some(Fault::Truncated) => cut(&day, 2, "length"),
            Some(Fault::ContentFilter) => cut(&day, 3, "content_filter"),
            Some(Fault::Refusal { message }) => Message {
                tokens: tokens::count(&message),
                content: None,
                refusal: Some(message),
                finish_reason: "stop",
            },
            Some(Fault::BrokenRule { rule }) => {
                text(answer_content(&break_rule(brief, day, rule)), "stop")
            }
            Some(Fault::Prose { content }) => text(content, "stop"),
            _ => text(answer_content(&day), "stop"),
        }
    }

    /// Cut where the real API would when the completion budget is smaller than the answer.
    fn capped(self, limit: Option<u32>) -> Message {
        match (&self.content, limit) {
            (Some(content), Some(max)) if self.tokens > max => {
                let (cut, n) = tokens::truncate(content, max as usize);
                Message {
                    content: Some(cut),
                    refusal: None,
                    finish_reason: "length",
                    tokens: n as u32,
                }
            }
            _ => self,
        }
    }

    fn completion(self, model: String, prompt_tokens: u32) -> ChatCompletion {
        ChatCompletion {
            id: format!("chatcmpl-{}", random_id(29)),
            object: "chat.completion".to_string(),
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
            model,
            system_fingerprint: "fp_standin".to_string(),
            service_tier: "default".to_string(),
            choices: vec![Choice {
                index: 0,
                message: AssistantMessage {
                    role: "assistant".to_string(),
                    content: self.content,
                    refusal: self.refusal,
                    annotations: Vec::new(),
                },
                logprobs: None,
                finish_reason: self.finish_reason.to_string(),
            }],
            usage: Usage::new(prompt_tokens, self.tokens),
        }
    }
}

fn bad_request(message: impl Into<String>, param: Option<&str>, code: Option<&str>) -> Response {
    faults::error(
        StatusCode::BAD_REQUEST,
        ErrorBody::new(
            message,
            "invalid_request_error",
            param,
            code.map_or(Value::Null, Value::from),
        ),
    )
}

/// The parameter checks OpenAI makes, with its messages and codes.
fn validate(request: &ChatRequest) -> Option<Response> {
    if request.model.as_deref().is_none_or(str::is_empty) {
        return Some(bad_request(
            "you must provide a model parameter",
            None,
            None,
        ));
    }
    match request.messages.as_deref() {
        None => {
            return Some(bad_request(
                "Missing required parameter: 'messages'.",
                Some("messages"),
                Some("missing_required_parameter"),
            ));
        }
        Some([]) => {
            return Some(bad_request(
                "Invalid 'messages': empty array. Expected an array with minimum length 1, but \
                 got an empty array instead.",
                Some("messages"),
                Some("empty_array"),
            ));
        }
        Some(_) => {}
    }
    for (param, value) in [
        ("max_completion_tokens", request.max_completion_tokens),
        ("max_tokens", request.max_tokens),
    ] {
        if let Some(v) = value
            && v < 1
        {
            return Some(bad_request(
                format!(
                    "Invalid '{param}': integer below minimum value. Expected a value >= 1, but \
                     got {v} instead."
                ),
                Some(param),
                Some("integer_below_min_value"),
            ));
        }
    }
    if let Some(t) = request.temperature
        && !(0.0..=2.0).contains(&t)
    {
        let (side, bound, code) = if t < 0.0 {
            ("below minimum", ">= 0", "decimal_below_min_value")
        } else {
            ("above maximum", "<= 2", "decimal_above_max_value")
        };
        return Some(bad_request(
            format!(
                "Invalid 'temperature': decimal {side} value. Expected a value {bound}, but got \
                 {t} instead."
            ),
            Some("temperature"),
            Some(code),
        ));
    }
    None
}

/// The seed of a call without one: the same messages give the same day.
fn hash_messages(body: &[u8]) -> u64 {
    let messages = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("messages").cloned())
        .unwrap_or_default();
    let mut hasher = DefaultHasher::new();
    messages.to_string().hash(&mut hasher);
    hasher.finish()
}

/// JSON no parser accepts: the first key loses its colon and the object its closing brace.
fn malformed(content: &str) -> String {
    let mut broken = content.replacen("\":", "\" ", 1);
    broken.pop();
    broken
}

fn random_id(len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_content_does_not_parse() {
        let text = "{\"meals\":[],\"snacks\":[]}";
        assert!(serde_json::from_str::<Value>(text).is_ok());
        assert!(serde_json::from_str::<Value>(&malformed(text)).is_err());
    }

    #[test]
    fn ids_look_like_openai_ids() {
        let id = random_id(29);
        assert_eq!(id.len(), 29);
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn a_message_over_its_budget_is_cut_with_length() {
        let long = Message {
            content: Some("{\"meals\":[{\"title\":\"Shakshuka\"}],\"snacks\":[]}".into()),
            refusal: None,
            finish_reason: "stop",
            tokens: 14,
        };
        let cut = long.capped(Some(4));
        assert_eq!((cut.tokens, cut.finish_reason), (4, "length"));
    }
}
