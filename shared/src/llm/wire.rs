//! The Chat Completions wire format, as much of it as we send and read. Responses are parsed
//! leniently: compatible servers omit fields, and error bodies vary (`code` may be a string, a
//! number or null; vLLM once put the fields at the top level; a 5xx body may be HTML).

use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize)]
pub struct ChatRequest<'a> {
    pub model: &'a str,
    pub messages: Vec<Message<'a>>,
    pub response_format: ResponseFormat<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    pub temperature: f32,
}

#[derive(Debug, Serialize)]
pub struct Message<'a> {
    pub role: &'static str,
    pub content: &'a str,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat<'a> {
    JsonSchema { json_schema: JsonSchemaFormat<'a> },
    JsonObject,
}

#[derive(Debug, Serialize)]
pub struct JsonSchemaFormat<'a> {
    pub name: &'static str,
    pub strict: bool,
    pub schema: &'a serde_json::Value,
}

#[derive(Debug, Default, Deserialize)]
pub struct ChatResponse {
    #[serde(default)]
    pub choices: Vec<Choice>,
    #[serde(default)]
    pub usage: Option<WireUsage>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Choice {
    #[serde(default)]
    pub message: ResponseMessage,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ResponseMessage {
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub refusal: Option<String>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub struct WireUsage {
    #[serde(default)]
    pub prompt_tokens: i64,
    #[serde(default)]
    pub completion_tokens: i64,
}

/// An error body in any of the shapes seen in the wild.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ErrorBody {
    pub message: String,
    pub kind: Option<String>,
    pub code: Option<String>,
}

impl ErrorBody {
    /// Reads `{"error":{…}}`, the legacy top-level shape, or anything else as plain text.
    pub fn parse(body: &str) -> ErrorBody {
        let value: serde_json::Value = match serde_json::from_str(body) {
            Ok(v) => v,
            Err(_) => {
                return ErrorBody {
                    message: body.trim().chars().take(300).collect(),
                    ..Default::default()
                };
            }
        };
        let inner = match value.get("error") {
            Some(e) if e.is_object() => e,
            Some(serde_json::Value::String(s)) => {
                return ErrorBody {
                    message: s.clone(),
                    ..Default::default()
                };
            }
            _ => &value,
        };
        let text = |key: &str| match inner.get(key) {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        ErrorBody {
            message: text("message").unwrap_or_default(),
            kind: text("type"),
            code: text("code"),
        }
    }

    /// Whether the code or type names `name` (providers put the same word in either).
    pub fn names(&self, name: &str) -> bool {
        self.code.as_deref() == Some(name) || self.kind.as_deref() == Some(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_parse_in_every_shape() {
        let openai = ErrorBody::parse(
            r#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#,
        );
        assert_eq!(openai.code.as_deref(), Some("rate_limit_exceeded"));
        assert_eq!(openai.kind.as_deref(), Some("requests"));
        let vllm =
            ErrorBody::parse(r#"{"error":{"message":"bad","type":"BadRequestError","code":400}}"#);
        assert_eq!(vllm.code.as_deref(), Some("400"));
        let legacy =
            ErrorBody::parse(r#"{"object":"error","message":"old","type":"x","code":400}"#);
        assert_eq!(legacy.message, "old");
        let ollama =
            ErrorBody::parse(r#"{"error":{"message":"m","type":"api_error","code":null}}"#);
        assert_eq!(ollama.code, None);
        let html = ErrorBody::parse("<html><body>502 Bad Gateway</body></html>");
        assert!(html.message.contains("502"));
        assert_eq!(ErrorBody::parse("").message, "");
    }
}
