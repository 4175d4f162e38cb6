//! The answers of the error faults, each with exactly the status, headers and body a provider
//! sends (OpenAI's shape, and vLLM's, llama.cpp's and Ollama's variants), so the worker's error
//! handling is tested against the real shapes; the server's own refusals use them too.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::kinds::{BodyStyle, Fault, RateLimitFault};
use crate::limits::{self, Budget, LimitKind, Remaining};
use crate::openai::ErrorBody;

impl Fault {
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
    error(StatusCode::NOT_FOUND, model_not_found_body(model))
}

/// The body of a 404 `model_not_found`, also written into a batch's error file.
pub fn model_not_found_body(model: &str) -> ErrorBody {
    ErrorBody::coded(
        format!("The model `{model}` does not exist or you do not have access to it."),
        "invalid_request_error",
        Some("model_not_found"),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn call() -> CallFacts {
        CallFacts {
            model: "gpt-4o-mini".into(),
            prompt_tokens: 1_000,
            reserved_tokens: 3_500,
        }
    }

    fn header(response: &Response, name: &str) -> Option<String> {
        let value = response.headers().get(name)?;
        Some(value.to_str().unwrap().to_string())
    }

    #[test]
    fn a_rate_limit_sends_every_configured_source_of_its_wait() {
        let fault = Fault::RateLimited(RateLimitFault {
            retry_after_s: Some(1.5),
            retry_after_ms: Some(1_500),
            should_retry: Some(true),
            ..RateLimitFault::default()
        });
        let response = fault.error_response(&call()).unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header(&response, "retry-after").as_deref(), Some("1.5"));
        assert_eq!(header(&response, "retry-after-ms").as_deref(), Some("1500"));
        assert_eq!(header(&response, "x-should-retry").as_deref(), Some("true"));
        assert_eq!(
            header(&response, "x-ratelimit-remaining-requests").as_deref(),
            Some("0")
        );
    }

    #[test]
    fn a_proxy_error_page_is_html_and_answer_shaping_faults_are_no_error() {
        let fault = Fault::ServerError {
            status: 502,
            body: BodyStyle::Html,
        };
        let response = fault.error_response(&call()).unwrap();
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(
            header(&response, "content-type").as_deref(),
            Some("text/html")
        );
        for shaping in [Fault::Reset, Fault::Truncated, Fault::Hang { ms: 1 }] {
            assert!(shaping.error_response(&call()).is_none(), "{shaping:?}");
        }
    }

    #[test]
    fn whole_seconds_are_written_without_a_fraction() {
        assert_eq!(number(2.0), "2");
        assert_eq!(number(1.5), "1.5");
    }
}
