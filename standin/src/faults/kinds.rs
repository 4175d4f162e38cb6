//! The fault vocabulary: every way a real provider (or a compatible local server) misbehaves,
//! with its parameters, as scripts (`/_standin/script`) and `--fault-kinds` name them.

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::limits::LimitKind;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
