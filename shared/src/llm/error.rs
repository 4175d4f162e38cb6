//! The one classification of an LLM call's failure (DESIGN.md §4). The worker reacts by class:
//! rate limited → wait as told; transient → back off and retry; invalid output → re-ask with
//! the problems; permanent for the job → fail the job; permanent for the fleet → stop calling.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use super::wait::server_wait;
use super::wire::ErrorBody;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    RateLimited,
    Transient,
    InvalidOutput,
    PermanentForJob,
    PermanentForFleet,
}

/// The code of an answer cut off at its completion cap (`finish_reason: "length"`).
pub const TRUNCATED: &str = "llm_truncated";

/// A failed call: its class, a stable code, a message safe to store and show (no secrets), a
/// server-directed wait if the server gave one, and for invalid output the problems found.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct LlmError {
    pub class: ErrorClass,
    pub code: &'static str,
    pub message: String,
    pub wait: Option<Duration>,
    pub problems: Vec<String>,
}

impl LlmError {
    pub fn new(class: ErrorClass, code: &'static str, message: impl Into<String>) -> Self {
        LlmError {
            class,
            code,
            message: redact(&message.into()),
            wait: None,
            problems: Vec::new(),
        }
    }

    /// An answer that parsed as JSON but is not a valid day.
    pub fn invalid_output(problems: Vec<String>) -> Self {
        let mut e = LlmError::new(
            ErrorClass::InvalidOutput,
            "invalid_output",
            format!(
                "the model's day broke the menu rules: {}",
                problems.join("; ")
            ),
        );
        e.problems = problems;
        e
    }

    /// A transport failure: nothing came back (or not all of it).
    pub fn from_transport(error: &reqwest::Error) -> Self {
        let (code, what) = if error.is_timeout() {
            ("llm_timeout", "the call to the model timed out")
        } else if error.is_connect() {
            ("llm_connect", "could not connect to the model provider")
        } else if error.is_body() || error.is_decode() {
            ("llm_body_cut", "the provider's answer was cut off")
        } else {
            ("llm_network", "the connection to the model provider failed")
        };
        LlmError::new(ErrorClass::Transient, code, what)
    }

    /// A non-success HTTP status, classified from the status, the headers and the body.
    pub fn from_status(status: StatusCode, headers: &HeaderMap, body: &str) -> Self {
        let err = ErrorBody::parse(body);
        let detail = if err.message.is_empty() {
            status.to_string()
        } else {
            err.message.clone()
        };
        let should_retry = headers
            .get("x-should-retry")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.eq_ignore_ascii_case("true"));
        let quota = [
            "insufficient_quota",
            "insufficient_quota_org",
            "insufficient_quota_project",
            "insufficient_quota_user",
            "billing_hard_limit_reached",
        ];
        let mut e = match status.as_u16() {
            429 if quota.iter().any(|q| err.names(q)) => LlmError::new(
                ErrorClass::PermanentForFleet,
                "llm_quota_exceeded",
                format!("the provider account is out of quota: {detail}"),
            ),
            429 if detail.contains("Request too large") => LlmError::new(
                ErrorClass::PermanentForFleet,
                "llm_request_too_large",
                format!("a request is larger than the whole token budget: {detail}"),
            ),
            429 => LlmError::new(
                ErrorClass::RateLimited,
                "llm_rate_limited",
                format!("the provider is rate limiting: {detail}"),
            ),
            401 => LlmError::new(
                ErrorClass::PermanentForFleet,
                "llm_invalid_api_key",
                // The provider's message quotes part of the key: never store it.
                "the provider rejected the API key",
            ),
            403 => LlmError::new(
                ErrorClass::PermanentForFleet,
                "llm_forbidden",
                format!("the provider refused access: {detail}"),
            ),
            404 => LlmError::new(
                ErrorClass::PermanentForFleet,
                "llm_model_not_found",
                format!("the model is not available: {detail}"),
            ),
            408 | 409 => LlmError::new(
                ErrorClass::Transient,
                "llm_retryable_status",
                format!("the provider asked to retry ({status}): {detail}"),
            ),
            500..=599 => LlmError::new(
                ErrorClass::Transient,
                "llm_server_error",
                format!("the provider failed ({status}): {detail}"),
            ),
            _ if err.names("context_length_exceeded") => LlmError::new(
                ErrorClass::PermanentForJob,
                "llm_context_length_exceeded",
                format!("the request is too long for the model: {detail}"),
            ),
            _ => LlmError::new(
                ErrorClass::PermanentForJob,
                "llm_bad_request",
                format!("the provider refused the request ({status}): {detail}"),
            ),
        };
        // Servers that say whether to retry are obeyed, within the classes that allow it.
        match (should_retry, e.class) {
            (Some(false), ErrorClass::Transient | ErrorClass::RateLimited) => {
                e.class = ErrorClass::PermanentForJob;
            }
            (Some(true), ErrorClass::PermanentForJob) => e.class = ErrorClass::Transient,
            _ => {}
        }
        if e.class == ErrorClass::RateLimited || e.class == ErrorClass::Transient {
            e.wait = server_wait(headers, err.kind.as_deref(), &err.message);
        }
        e
    }
}

/// Masks anything that looks like an API key (`sk-…`), in case a provider echoes one.
fn redact(message: &str) -> String {
    message
        .split(' ')
        .map(|word| {
            if word.contains("sk-") && word.len() > 8 {
                "[redacted]"
            } else {
                word
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn classify(status: u16, body: &str) -> LlmError {
        LlmError::from_status(
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            body,
        )
    }

    #[test]
    fn quota_and_rate_limit_429s_are_told_apart() {
        let quota = classify(
            429,
            r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#,
        );
        assert_eq!(quota.class, ErrorClass::PermanentForFleet);
        let project = classify(
            429,
            r#"{"error":{"message":"x","code":"insufficient_quota_project"}}"#,
        );
        assert_eq!(project.class, ErrorClass::PermanentForFleet);
        let limited = classify(
            429,
            r#"{"error":{"message":"Rate limit reached. Please try again in 2s.","type":"requests","code":"rate_limit_exceeded"}}"#,
        );
        assert_eq!(limited.class, ErrorClass::RateLimited);
        assert_eq!(limited.wait, Some(Duration::from_secs(2)));
        let too_large = classify(
            429,
            "Request too large for gpt-4o … Limit 30000, Requested 61337.",
        );
        assert_eq!(too_large.code, "llm_request_too_large");
    }

    #[test]
    fn statuses_map_to_their_classes() {
        assert_eq!(
            classify(500, "<html>oops</html>").class,
            ErrorClass::Transient
        );
        assert_eq!(classify(503, "").class, ErrorClass::Transient);
        assert_eq!(classify(408, "").class, ErrorClass::Transient);
        assert_eq!(classify(409, "").class, ErrorClass::Transient);
        assert_eq!(classify(401, "").class, ErrorClass::PermanentForFleet);
        assert_eq!(classify(403, "").class, ErrorClass::PermanentForFleet);
        assert_eq!(classify(404, "").class, ErrorClass::PermanentForFleet);
        let context = classify(
            400,
            r#"{"error":{"message":"maximum context length","code":"context_length_exceeded"}}"#,
        );
        assert_eq!(context.code, "llm_context_length_exceeded");
        assert_eq!(context.class, ErrorClass::PermanentForJob);
    }

    #[test]
    fn a_transient_error_carries_the_servers_wait_too() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("3"));
        let e = LlmError::from_status(StatusCode::SERVICE_UNAVAILABLE, &headers, "");
        assert_eq!(e.class, ErrorClass::Transient);
        assert_eq!(e.wait, Some(Duration::from_secs(3)));
        let permanent = LlmError::from_status(StatusCode::BAD_REQUEST, &headers, "");
        assert_eq!(permanent.wait, None, "no wait on what will not be retried");
    }

    #[test]
    fn x_should_retry_is_obeyed() {
        let mut headers = HeaderMap::new();
        headers.insert("x-should-retry", HeaderValue::from_static("true"));
        let e = LlmError::from_status(StatusCode::BAD_REQUEST, &headers, "");
        assert_eq!(e.class, ErrorClass::Transient);
        headers.insert("x-should-retry", HeaderValue::from_static("false"));
        let e = LlmError::from_status(StatusCode::SERVICE_UNAVAILABLE, &headers, "");
        assert_eq!(e.class, ErrorClass::PermanentForJob);
    }

    #[test]
    fn api_keys_never_reach_a_message() {
        let e = classify(
            401,
            r#"{"error":{"message":"Incorrect API key provided: sk-abc123456789. You can find…","code":"invalid_api_key"}}"#,
        );
        assert!(!e.message.contains("sk-"));
        let e = classify(400, r#"{"error":{"message":"key sk-abcdefghijkl is bad"}}"#);
        assert!(!e.message.contains("sk-abcdefghijkl"));
    }
}
