//! The Chat Completions wire format as OpenAI speaks it: what a client sends, what a successful
//! answer and an error look like, and the model list. Kept apart from the server so the shapes
//! can be read (and compared with the real API) in one place.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /v1/chat/completions` body: the fields the stand-in reads. Unknown fields are accepted
/// and ignored, as the many OpenAI-compatible servers do.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatRequest {
    pub model: Option<String>,
    pub messages: Option<Vec<ChatMessage>>,
    pub response_format: Option<ResponseFormat>,
    pub max_completion_tokens: Option<i64>,
    /// Deprecated by OpenAI but the only limit Ollama reads; either may be sent.
    pub max_tokens: Option<i64>,
    pub temperature: Option<f64>,
    pub seed: Option<i64>,
}

impl ChatRequest {
    /// The completion budget the client asked for, whichever field it used.
    pub fn completion_limit(&self) -> Option<i64> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    /// The text of the last message sent with role `user`.
    pub fn last_user_text(&self) -> Option<String> {
        self.messages
            .as_deref()?
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .map(ChatMessage::text)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<MessageContent>,
}

impl ChatMessage {
    /// The message's text: a plain string, or its text parts joined.
    pub fn text(&self) -> String {
        match &self.content {
            None => String::new(),
            Some(MessageContent::Text(text)) => text.clone(),
            Some(MessageContent::Parts(parts)) => parts
                .iter()
                .filter_map(|p| p.text.as_deref())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

/// Message content is a string or, in the newer form, a list of typed parts.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// One part of a message; only text parts carry anything the stand-in reads.
#[derive(Debug, Clone, Deserialize)]
pub struct ContentPart {
    pub text: Option<String>,
}

/// `response_format`: plain text, JSON mode, or Structured Outputs with a schema.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: JsonSchemaFormat },
}

impl ResponseFormat {
    /// The `type` as it is spelled on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            ResponseFormat::Text => "text",
            ResponseFormat::JsonObject => "json_object",
            ResponseFormat::JsonSchema { .. } => "json_schema",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct JsonSchemaFormat {
    pub name: String,
    #[serde(default)]
    pub schema: Option<Value>,
}

/// A successful answer (`object: "chat.completion"`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChatCompletion {
    pub id: String,
    pub object: String,
    pub created: i64,
    pub model: String,
    pub system_fingerprint: String,
    pub service_tier: String,
    pub choices: Vec<Choice>,
    pub usage: Usage,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Choice {
    pub index: u32,
    pub message: AssistantMessage,
    pub logprobs: Option<Value>,
    pub finish_reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AssistantMessage {
    pub role: String,
    /// The answer as a JSON string; `null` when the model refused.
    pub content: Option<String>,
    pub refusal: Option<String>,
    pub annotations: Vec<Value>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
    pub prompt_tokens_details: PromptTokensDetails,
    pub completion_tokens_details: CompletionTokensDetails,
}

impl Usage {
    pub fn new(prompt_tokens: u32, completion_tokens: u32) -> Usage {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            ..Usage::default()
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    pub cached_tokens: u32,
    pub audio_tokens: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletionTokensDetails {
    pub reasoning_tokens: u32,
    pub audio_tokens: u32,
    pub accepted_prediction_tokens: u32,
    pub rejected_prediction_tokens: u32,
}

/// OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorDetail {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub param: Option<String>,
    /// A string for OpenAI; integers and null are produced by the parser-stressing faults.
    pub code: Value,
}

impl ErrorBody {
    pub fn new(message: impl Into<String>, kind: &str, param: Option<&str>, code: Value) -> Self {
        ErrorBody {
            error: ErrorDetail {
                message: message.into(),
                kind: kind.to_string(),
                param: param.map(str::to_string),
                code,
            },
        }
    }

    /// The common case: a string code, or none.
    pub fn coded(message: impl Into<String>, kind: &str, code: Option<&str>) -> Self {
        ErrorBody::new(message, kind, None, code.map_or(Value::Null, Value::from))
    }
}

/// `GET /v1/models`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelList {
    pub object: String,
    pub data: Vec<Model>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Model {
    pub id: String,
    pub object: String,
    pub created: i64,
    pub owned_by: String,
}

impl Model {
    pub fn new(id: &str) -> Model {
        Model {
            id: id.to_string(),
            object: "model".to_string(),
            // A fixed date: the stand-in's models do not change.
            created: 1_721_172_741,
            owned_by: "system".to_string(),
        }
    }
}
