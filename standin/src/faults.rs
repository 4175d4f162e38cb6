//! Fault injection: every way a real provider (or a compatible local server) misbehaves, each
//! producing exactly the status, headers and body it would, so the worker's error handling can be
//! tested against the real shapes. Faults come from a scripted FIFO ("the next N calls get X"),
//! or at random for demos and benchmarks.

use std::collections::VecDeque;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::limits::{self, Budget, LimitKind, Remaining};
use crate::openai::ErrorBody;

/// One kind of misbehaviour. In JSON, `{"kind": "rate_limited", ...parameters}`; every parameter
/// has a default, so `{"kind": "hang"}` is enough.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Answer normally, after this much extra delay.
    Latency {
        #[serde(default = "default_extra_latency_ms")]
        ms: u64,
    },
    /// 429 `rate_limit_exceeded`, with the headers and message hint as configured.
    RateLimited(RateLimitFault),
    /// 429 `insufficient_quota`: billing, not a rate; must not be retried.
    InsufficientQuota,
    /// 429 "Request too large … Limit X, Requested Y": larger than the whole budget.
    RequestTooLarge {
        #[serde(default = "default_tpm_limit")]
        limit: u32,
    },
    /// 500, 502, 503 or 504 with a JSON, HTML or empty body.
    ServerError {
        #[serde(default = "default_server_status")]
        status: u16,
        #[serde(default)]
        body: BodyStyle,
    },
    /// 408.
    RequestTimeout,
    /// 409.
    Conflict,
    /// Hold the request this long before answering normally: longer than any sane client
    /// timeout by default. Other calls are served meanwhile.
    Hang {
        #[serde(default = "default_hang_ms")]
        ms: u64,
    },
    /// Drop the connection with a TCP reset and no HTTP response.
    Reset,
    /// 200 whose content is not valid JSON.
    MalformedJson,
    /// 200 whose JSON is cut off, with `finish_reason: "length"`.
    Truncated,
    /// 200 with `content: null` and a `refusal`.
    Refusal {
        #[serde(default = "default_refusal")]
        message: String,
    },
    /// 200 with `finish_reason: "content_filter"` and partial content.
    ContentFilter,
    /// 200 whose content is this text instead of a day (by default a short poem): a model that
    /// obeyed an instruction planted in the data it was given.
    Prose {
        #[serde(default = "default_prose")]
        content: String,
    },
    /// 200 with a schema-valid day that breaks one of the menu rules.
    BrokenRule {
        #[serde(default)]
        rule: BrokenRule,
    },
    /// 401 `invalid_api_key`, whatever key was sent.
    InvalidApiKey,
    /// 403, as OpenAI answers from an unsupported region.
    PermissionDenied,
    /// 404 `model_not_found`, whatever model was asked for.
    ModelNotFound,
    /// 400 `context_length_exceeded`.
    ContextLengthExceeded {
        #[serde(default = "default_context_window")]
        max_context: u32,
    },
    /// An error whose `code` is the HTTP status as an integer, as vLLM and llama.cpp send.
    IntegerCode {
        #[serde(default = "default_server_status")]
        status: u16,
    },
    /// vLLM's legacy error shape: the fields at the top level, no `error` wrapper.
    LegacyVllm {
        #[serde(default = "default_bad_request")]
        status: u16,
    },
    /// An error with `code: null`, as Ollama sends.
    NullCode {
        #[serde(default = "default_unavailable")]
        status: u16,
    },
}

/// Parameters of a 429 `rate_limit_exceeded`. Each header is optional, as at OpenAI, so a client
/// can be tested on every source of a retry delay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitFault {
    /// Which budget ran out (the error's `type`).
    pub limit_type: LimitKind,
    /// Whether the message ends with OpenAI's "Please try again in …" hint.
    pub hint: bool,
    /// The wait the hint (and, unless set, the exhausted budget's reset) names; defaults to
    /// `retry_after_ms`, else `retry_after_s`, else one second.
    pub try_again_ms: Option<u64>,
    /// `retry-after` in seconds (whole or fractional).
    pub retry_after_s: Option<f64>,
    /// `retry-after` exactly as written, sent instead of `retry_after_s`'s value: `"0"`, `"-3"`,
    /// `"soon"` or an HTTP date, to test how a client takes a zero, negative, unreadable or past
    /// wait. The hint and the reset headers do not read it. Not sent if it is not valid header
    /// text.
    pub retry_after: Option<String>,
    /// `retry-after-ms`.
    pub retry_after_ms: Option<u64>,
    /// `x-should-retry`.
    pub should_retry: Option<bool>,
    /// Whether to send the six `x-ratelimit-*` headers.
    pub ratelimit_headers: bool,
    /// `x-ratelimit-reset-*` of the exhausted budget; defaults to the wait.
    pub reset_ms: Option<u64>,
    /// The exhausted budget's limit.
    pub limit: Option<u32>,
}

impl Default for RateLimitFault {
    fn default() -> Self {
        RateLimitFault {
            limit_type: LimitKind::Requests,
            hint: true,
            try_again_ms: None,
            retry_after_s: None,
            retry_after: None,
            retry_after_ms: None,
            should_retry: None,
            ratelimit_headers: true,
            reset_ms: None,
            limit: None,
        }
    }
}

/// How a server error's body looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyStyle {
    #[default]
    Json,
    /// A proxy's HTML error page, as a 502 often is.
    Html,
    Empty,
}

/// Which menu rule a [`Fault::BrokenRule`] answer breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokenRule {
    /// An ingredient the brief says to avoid (falls back to `calories_off` when none is listed).
    #[default]
    DislikedFood,
    /// A title from `used_titles` (or, on a first day, one title twice).
    RepeatedTitle,
    /// Portions far larger than the calorie targets.
    CaloriesOff,
    /// One of the requested meals left out.
    MissingMeal,
}

fn default_extra_latency_ms() -> u64 {
    2_000
}
fn default_tpm_limit() -> u32 {
    30_000
}
fn default_server_status() -> u16 {
    500
}
fn default_bad_request() -> u16 {
    400
}
fn default_unavailable() -> u16 {
    503
}
fn default_hang_ms() -> u64 {
    // Ten minutes: past the SDKs' 600 s default and far past any per-call timeout we set.
    600_000
}
fn default_refusal() -> String {
    "I'm sorry, but I can't help with that request.".to_string()
}
fn default_prose() -> String {
    "Roses are red, the brief was JSON,\nI ignored it and wrote you this poem.".to_string()
}
fn default_context_window() -> u32 {
    128_000
}

impl Fault {
    /// The fault's `kind`, as logged.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Latency { .. } => "latency",
            Fault::RateLimited(_) => "rate_limited",
            Fault::InsufficientQuota => "insufficient_quota",
            Fault::RequestTooLarge { .. } => "request_too_large",
            Fault::ServerError { .. } => "server_error",
            Fault::RequestTimeout => "request_timeout",
            Fault::Conflict => "conflict",
            Fault::Hang { .. } => "hang",
            Fault::Reset => "reset",
            Fault::MalformedJson => "malformed_json",
            Fault::Truncated => "truncated",
            Fault::Refusal { .. } => "refusal",
            Fault::ContentFilter => "content_filter",
            Fault::BrokenRule { .. } => "broken_rule",
            Fault::Prose { .. } => "prose",
            Fault::InvalidApiKey => "invalid_api_key",
            Fault::PermissionDenied => "permission_denied",
            Fault::ModelNotFound => "model_not_found",
            Fault::ContextLengthExceeded { .. } => "context_length_exceeded",
            Fault::IntegerCode { .. } => "integer_code",
            Fault::LegacyVllm { .. } => "legacy_vllm",
            Fault::NullCode { .. } => "null_code",
        }
    }

    /// The HTTP error this fault answers with, or `None` for faults that shape a normal answer
    /// (latency, hang, reset and the 200 variants).
    pub fn error_response(&self, call: &CallFacts) -> Option<Response> {
        let response = match self {
            Fault::RateLimited(r) => r.response(call),
            Fault::InsufficientQuota => error(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorBody::coded(
                    "You exceeded your current quota, please check your plan and billing \
                     details. For more information on this error, read the docs: \
                     https://platform.openai.com/docs/guides/error-codes/api-errors.",
                    "insufficient_quota",
                    Some("insufficient_quota"),
                ),
            ),
            Fault::RequestTooLarge { limit } => error(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorBody::coded(
                    limits::too_large_message(
                        &call.model,
                        *limit,
                        call.reserved_tokens.max(limit.saturating_add(1)),
                    ),
                    "tokens",
                    Some("rate_limit_exceeded"),
                ),
            ),
            Fault::ServerError { status, body } => server_error(*status, *body),
            Fault::RequestTimeout => error(
                StatusCode::REQUEST_TIMEOUT,
                ErrorBody::coded("Request timed out.", "timeout", None),
            ),
            Fault::Conflict => error(
                StatusCode::CONFLICT,
                ErrorBody::coded(
                    "The request conflicted with another request in progress. Please retry.",
                    "conflict_error",
                    None,
                ),
            ),
            Fault::InvalidApiKey => invalid_api_key(
                "Incorrect API key provided. You can find your API key at \
                 https://platform.openai.com/account/api-keys.",
            ),
            Fault::PermissionDenied => error(
                StatusCode::FORBIDDEN,
                ErrorBody::coded(
                    "Country, region, or territory not supported",
                    "request_forbidden",
                    Some("unsupported_country_region_territory"),
                ),
            ),
            Fault::ModelNotFound => model_not_found(&call.model),
            Fault::ContextLengthExceeded { max_context } => error(
                StatusCode::BAD_REQUEST,
                ErrorBody::new(
                    format!(
                        "This model's maximum context length is {max_context} tokens. However, \
                         your messages resulted in {} tokens. Please reduce the length of the \
                         messages.",
                        call.prompt_tokens.max(max_context.saturating_add(1))
                    ),
                    "invalid_request_error",
                    Some("messages"),
                    json!("context_length_exceeded"),
                ),
            ),
            Fault::IntegerCode { status } => error(
                status_code(*status),
                ErrorBody::new(reason(*status), vllm_type(*status), None, json!(status)),
            ),
            Fault::LegacyVllm { status } => (
                status_code(*status),
                axum::Json(json!({
                    "object": "error",
                    "message": reason(*status),
                    "type": vllm_type(*status),
                    "param": null,
                    "code": status,
                })),
            )
                .into_response(),
            Fault::NullCode { status } => error(
                status_code(*status),
                ErrorBody::coded(reason(*status), "api_error", None),
            ),
            Fault::Latency { .. }
            | Fault::Hang { .. }
            | Fault::Reset
            | Fault::MalformedJson
            | Fault::Truncated
            | Fault::Refusal { .. }
            | Fault::ContentFilter
            | Fault::BrokenRule { .. }
            | Fault::Prose { .. } => return None,
        };
        Some(response)
    }
}

/// `--fault-kinds` entries: a kind's name (`hang`) or a whole JSON fault
/// (`{"kind":"hang","ms":5000}`).
impl FromStr for Fault {
    type Err = String;

    fn from_str(s: &str) -> Result<Fault, String> {
        let s = s.trim();
        let value = if s.starts_with('{') {
            serde_json::from_str(s).map_err(|e| format!("invalid fault JSON: {e}"))?
        } else {
            json!({ "kind": s })
        };
        serde_json::from_value(value).map_err(|e| format!("invalid fault {s:?}: {e}"))
    }
}

/// What a fault's answer may need to know about the call.
#[derive(Debug, Clone)]
pub struct CallFacts {
    pub model: String,
    pub prompt_tokens: u32,
    /// Prompt tokens plus the completion budget: what OpenAI counts against tokens per minute.
    pub reserved_tokens: u32,
}

impl RateLimitFault {
    fn response(&self, call: &CallFacts) -> Response {
        let kind = self.limit_type;
        let wait = Duration::from_millis(
            self.try_again_ms
                .or(self.retry_after_ms)
                .or(self.retry_after_s.map(|s| (s * 1000.0) as u64))
                .unwrap_or(1000),
        );
        let limit = self.limit.unwrap_or(match kind {
            LimitKind::Requests => 500,
            LimitKind::Tokens => 200_000,
        });
        let (used, requested) = match kind {
            LimitKind::Requests => (u64::from(limit), 1),
            LimitKind::Tokens => (
                u64::from(limit.saturating_sub(call.reserved_tokens / 2)),
                call.reserved_tokens,
            ),
        };
        let mut message =
            limits::rate_limit_message(&call.model, kind, limit, used, requested, wait);
        if !self.hint {
            // Without a hint the message ends at the limits, as some 429s do.
            if let Some(cut) = message.find(" Please try again") {
                message.truncate(cut);
            }
        }
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorBody::coded(message, kind.as_str(), Some("rate_limit_exceeded")),
        );
        let headers = response.headers_mut();
        if self.ratelimit_headers {
            let reset = Duration::from_millis(self.reset_ms.unwrap_or(wait.as_millis() as u64));
            let exhausted = Remaining {
                limit,
                remaining: 0,
                reset,
            };
            // The other budget is nearly full: one unit comes back every window/limit.
            let other = |limit: u32| Remaining {
                limit,
                remaining: limit.saturating_sub(1),
                reset: Duration::from_secs(60) / limit.max(1),
            };
            let budget = match kind {
                LimitKind::Requests => Budget {
                    requests: Some(exhausted),
                    tokens: Some(other(200_000)),
                },
                LimitKind::Tokens => Budget {
                    requests: Some(other(500)),
                    tokens: Some(exhausted),
                },
            };
            insert_headers(headers, &budget.headers());
        }
        if let Some(raw) = self.retry_after.clone().or(self.retry_after_s.map(number)) {
            insert_headers(headers, &[("retry-after".into(), raw)]);
        }
        if let Some(ms) = self.retry_after_ms {
            insert_headers(headers, &[("retry-after-ms".into(), ms.to_string())]);
        }
        if let Some(retry) = self.should_retry {
            insert_headers(headers, &[("x-should-retry".into(), retry.to_string())]);
        }
        response
    }
}

/// Seconds as a header value: `2`, or `1.5` when fractional.
fn number(seconds: f64) -> String {
    if seconds.fract() == 0.0 {
        format!("{}", seconds as i64)
    } else {
        seconds.to_string()
    }
}

/// Adds headers to a response; names and values the stand-in builds itself are always valid.
pub fn insert_headers(headers: &mut axum::http::HeaderMap, pairs: &[(String, String)]) {
    for (name, value) in pairs {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
}

/// An error answer in OpenAI's shape.
pub fn error(status: StatusCode, body: ErrorBody) -> Response {
    (status, axum::Json(body)).into_response()
}

/// 401 `invalid_api_key` with the given message.
pub fn invalid_api_key(message: &str) -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        ErrorBody::coded(message, "invalid_request_error", Some("invalid_api_key")),
    )
}

/// 404 `model_not_found`.
pub fn model_not_found(model: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        ErrorBody::coded(
            format!("The model `{model}` does not exist or you do not have access to it."),
            "invalid_request_error",
            Some("model_not_found"),
        ),
    )
}

fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn reason(status: u16) -> String {
    match status {
        400 => "max_tokens must be at least 1, got 0.".to_string(),
        503 => "The server is overloaded or not ready yet.".to_string(),
        s => format!(
            "{} {}",
            s,
            status_code(s).canonical_reason().unwrap_or("Error")
        ),
    }
}

/// vLLM names the error type after its exception class.
fn vllm_type(status: u16) -> &'static str {
    match status {
        400 => "BadRequestError",
        404 => "NotFoundError",
        s if s >= 500 => "InternalServerError",
        _ => "BadRequestError",
    }
}

fn server_error(status: u16, style: BodyStyle) -> Response {
    let code = status_code(status);
    match style {
        BodyStyle::Json => {
            let message = match status {
                503 => "The engine is currently overloaded, please try again later.",
                502 => "Bad gateway.",
                504 => "Gateway timeout.",
                _ => "The server had an error while processing your request. Sorry about that!",
            };
            error(code, ErrorBody::coded(message, "server_error", None))
        }
        BodyStyle::Html => {
            let reason = code.canonical_reason().unwrap_or("Error");
            let page = format!(
                "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n\
                 <center><h1>{status} {reason}</h1></center>\r\n<hr><center>cloudflare</center>\
                 \r\n</body>\r\n</html>\r\n"
            );
            (code, [(header::CONTENT_TYPE, "text/html")], page).into_response()
        }
        BodyStyle::Empty => code.into_response(),
    }
}

/// A step of the script: how the next `times` calls are answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The fault to inject; `None` (or absent) answers normally.
    #[serde(default)]
    pub fault: Option<Fault>,
    /// How many calls this step answers; `None` (JSON `null`) means every call until the script
    /// is cleared. Absent means one.
    #[serde(default = "one")]
    pub times: Option<u32>,
}

fn one() -> Option<u32> {
    Some(1)
}

impl Step {
    /// The next call gets `fault`.
    pub fn once(fault: Fault) -> Step {
        Step::times(1, fault)
    }

    /// The next `n` calls get `fault`.
    pub fn times(n: u32, fault: Fault) -> Step {
        Step {
            fault: Some(fault),
            times: Some(n),
        }
    }

    /// Every call gets `fault` until the script is cleared.
    pub fn always(fault: Fault) -> Step {
        Step {
            fault: Some(fault),
            times: None,
        }
    }

    /// The next `n` calls are answered normally.
    pub fn pass(n: u32) -> Step {
        Step {
            fault: None,
            times: Some(n),
        }
    }
}

/// The scripted FIFO of steps.
#[derive(Debug, Default)]
pub struct Script {
    steps: Mutex<VecDeque<Step>>,
}

impl Script {
    pub fn push(&self, steps: impl IntoIterator<Item = Step>) {
        self.lock()
            .extend(steps.into_iter().filter(|s| s.times != Some(0)));
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    pub fn steps(&self) -> Vec<Step> {
        self.lock().iter().cloned().collect()
    }

    /// Takes the next call's answer: `None` when the script is empty, else the step's fault
    /// (`Some(None)`: answer normally).
    pub fn next(&self) -> Option<Option<Fault>> {
        let mut steps = self.lock();
        let step = steps.front_mut()?;
        let fault = step.fault.clone();
        if let Some(n) = step.times.as_mut() {
            *n -= 1;
            if *n == 0 {
                steps.pop_front();
            }
        }
        Some(fault)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Step>> {
        self.steps.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Faults drawn at random for a whole run: each call gets one of `kinds` with probability `rate`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RandomFaults {
    pub rate: f64,
    pub kinds: Vec<Fault>,
}

impl RandomFaults {
    pub fn draw(&self, rng: &mut impl Rng) -> Option<Fault> {
        if self.kinds.is_empty() || self.rate <= 0.0 || !rng.random_bool(self.rate.min(1.0)) {
            return None;
        }
        Some(self.kinds[rng.random_range(0..self.kinds.len())].clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn faults_parse_from_a_name_or_json() {
        assert_eq!("reset".parse::<Fault>(), Ok(Fault::Reset));
        assert_eq!(
            "{\"kind\":\"hang\",\"ms\":5}".parse::<Fault>(),
            Ok(Fault::Hang { ms: 5 })
        );
        assert_eq!(
            "rate_limited".parse::<Fault>(),
            Ok(Fault::RateLimited(RateLimitFault::default()))
        );
        assert_eq!(
            "{\"kind\":\"rate_limited\",\"retry_after\":\"-3\"}".parse::<Fault>(),
            Ok(Fault::RateLimited(RateLimitFault {
                retry_after: Some("-3".into()),
                ..RateLimitFault::default()
            }))
        );
        assert!("no_such_fault".parse::<Fault>().is_err());
    }

    #[test]
    fn the_script_runs_in_order_and_unlimited_steps_stay() {
        let script = Script::default();
        script.push([
            Step::times(2, Fault::Reset),
            Step::pass(1),
            Step::always(Fault::Conflict),
        ]);
        assert_eq!(script.next(), Some(Some(Fault::Reset)));
        assert_eq!(script.next(), Some(Some(Fault::Reset)));
        assert_eq!(script.next(), Some(None));
        for _ in 0..5 {
            assert_eq!(script.next(), Some(Some(Fault::Conflict)));
        }
        script.clear();
        assert_eq!(script.next(), None);
    }

    #[test]
    fn steps_read_from_json_default_to_one_call() {
        let step: Step = serde_json::from_str("{\"fault\":{\"kind\":\"reset\"}}").unwrap();
        assert_eq!(step, Step::once(Fault::Reset));
        let step: Step = serde_json::from_str("{\"times\":null}").unwrap();
        assert_eq!(step.times, None);
    }

    #[test]
    fn random_faults_follow_the_rate() {
        let faults = RandomFaults {
            rate: 0.25,
            kinds: vec![Fault::Reset, Fault::Conflict],
        };
        let mut rng = StdRng::seed_from_u64(7);
        let hits = (0..4000)
            .filter(|_| faults.draw(&mut rng).is_some())
            .count();
        assert!((800..1200).contains(&hits), "{hits} of 4000");
        assert_eq!(RandomFaults::default().draw(&mut rng), None);
    }
}
