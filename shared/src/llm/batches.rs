//! The Files and Batches API client of the batch lane: upload a JSONL input file, create a
//! batch over it, read it back (by id, or by our metadata after a crash), cancel it, and
//! download its output and error files; and the formats of those files' lines. Shapes and
//! rules are OpenAI's (https://platform.openai.com/docs/api-reference/batch,
//! https://platform.openai.com/docs/api-reference/files, https://platform.openai.com/docs/guides/batch).
//!
//! Every failure is an [`LlmError`] classified as a chat call's is (`error`): a transport
//! failure or a 5xx is transient, a 401 is the fleet's, a 400 the request's. This client makes
//! one request per call and never retries; the batch lane tries again on its next pass.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::multipart::{Form, Part};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::error::{ErrorClass, LlmError};
use crate::config::LlmConfig;

/// The only endpoint our batches call: every line is a Chat Completions request.
pub const CHAT_COMPLETIONS: &str = "/v1/chat/completions";

/// The only completion window the Batch API offers.
pub const COMPLETION_WINDOW: &str = "24h";

/// The metadata key naming our `provider_batches.id` on the provider's batch, so a worker that
/// crashed between creating a batch and storing its id finds it instead of creating another.
pub const METADATA_KEY: &str = "menus_batch";

/// Batches read per page of `GET /v1/batches` (the API's maximum is 100).
const LIST_PAGE: u32 = 100;

/// Pages of `GET /v1/batches` read at most while looking for one batch.
const LIST_PAGES: usize = 50;

/// A batch's status, as the Batch API reports it (the batch object's `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderStatus {
    /// The input file is being checked.
    Validating,
    InProgress,
    /// The output files are being written.
    Finalizing,
    Completed,
    /// Not finished within the 24-hour window: what ran is in the output file, the rest are
    /// `batch_expired` lines of the error file.
    Expired,
    Cancelling,
    Cancelled,
    /// The input file failed validation (`errors` says why): nothing ran.
    Failed,
    /// A status this client does not know (a newer API): treated as still running.
    #[serde(other)]
    Unknown,
}

impl ProviderStatus {
    /// Whether the batch will not change any more (its files, if any, are final).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ProviderStatus::Completed
                | ProviderStatus::Expired
                | ProviderStatus::Cancelled
                | ProviderStatus::Failed
        )
    }

    /// As the API writes it (and `provider_batches.provider_status` stores it).
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderStatus::Validating => "validating",
            ProviderStatus::InProgress => "in_progress",
            ProviderStatus::Finalizing => "finalizing",
            ProviderStatus::Completed => "completed",
            ProviderStatus::Expired => "expired",
            ProviderStatus::Cancelling => "cancelling",
            ProviderStatus::Cancelled => "cancelled",
            ProviderStatus::Failed => "failed",
            ProviderStatus::Unknown => "unknown",
        }
    }
}

/// A batch's request counts (`request_counts`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct RequestCounts {
    #[serde(default)]
    pub total: i64,
    #[serde(default)]
    pub completed: i64,
    #[serde(default)]
    pub failed: i64,
}

/// The batch object, as much of it as the batch lane reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Batch {
    /// `batch_…`.
    pub id: String,
    pub status: ProviderStatus,
    #[serde(default)]
    pub input_file_id: Option<String>,
    /// The answered lines (`file-…`), once the batch is final (none if nothing succeeded).
    #[serde(default)]
    pub output_file_id: Option<String>,
    /// The failed and expired lines, once the batch is final (none if nothing failed).
    #[serde(default)]
    pub error_file_id: Option<String>,
    /// Unix seconds.
    #[serde(default)]
    pub created_at: i64,
    #[serde(default)]
    pub request_counts: Option<RequestCounts>,
    /// Up to 16 string pairs set at creation.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Why a `failed` batch failed: `{"data": [{"code", "message", "line"}]}`.
    #[serde(default)]
    pub errors: Option<serde_json::Value>,
}

impl Batch {
    /// The metadata value under `key`, if set.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.metadata.as_ref()?.get(key).map(String::as_str)
    }
}

/// A page of `GET /v1/batches` (newest first).
#[derive(Debug, Deserialize)]
struct BatchList {
    #[serde(default)]
    data: Vec<Batch>,
    #[serde(default)]
    has_more: bool,
    #[serde(default)]
    last_id: Option<String>,
}

/// The file object `POST /v1/files` answers.
#[derive(Debug, Clone, Deserialize)]
pub struct FileObject {
    /// `file-…`.
    pub id: String,
    /// Its size in bytes.
    #[serde(default)]
    pub bytes: i64,
}

/// One line of an input file: a Chat Completions request named by `custom_id` (unique in the
/// file).
#[derive(Debug, Serialize)]
pub struct InputLine<'a> {
    pub custom_id: &'a str,
    pub method: &'static str,
    pub url: &'static str,
    pub body: &'a serde_json::Value,
}

impl<'a> InputLine<'a> {
    /// A `POST /v1/chat/completions` line.
    pub fn chat(custom_id: &'a str, body: &'a serde_json::Value) -> InputLine<'a> {
        InputLine {
            custom_id,
            method: "POST",
            url: CHAT_COMPLETIONS,
            body,
        }
    }
}

/// One line of an output or error file. An answered request has a `response` (its HTTP status
/// and body: a ChatCompletion for 200, an error body otherwise); a request that never ran (the
/// batch expired or was cancelled first) has only an `error` (`batch_expired`,
/// `batch_cancelled`).
#[derive(Debug, Clone, Deserialize)]
pub struct OutputLine {
    pub custom_id: String,
    #[serde(default)]
    pub response: Option<LineResponse>,
    #[serde(default)]
    pub error: Option<LineError>,
}

/// The HTTP answer of one line.
#[derive(Debug, Clone, Deserialize)]
pub struct LineResponse {
    pub status_code: u16,
    #[serde(default)]
    pub body: serde_json::Value,
}

/// Why a line has no answer.
#[derive(Debug, Clone, Deserialize)]
pub struct LineError {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

impl OutputLine {
    /// The line's ChatCompletion body if it was answered with 200.
    pub fn answer(&self) -> Option<&serde_json::Value> {
        self.response
            .as_ref()
            .filter(|r| r.status_code == 200)
            .map(|r| &r.body)
    }
}

/// The lines of an output or error file (JSONL), each parsed on its own: a line that is not
/// an output line is an `Err` with its 1-based number, and the others still count.
pub fn read_lines(content: &[u8]) -> impl Iterator<Item = Result<OutputLine, usize>> + '_ {
    content
        .split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .map(|(i, line)| serde_json::from_slice(line).map_err(|_| i + 1))
}

/// The Files and Batches API of one provider (an endpoint's base URL and key).
#[derive(Clone)]
pub struct BatchClient {
    http: reqwest::Client,
    /// Ends before `/files` and `/batches` (as `LLM_BASE_URL`: `…/v1`).
    base_url: String,
    api_key: SecretString,
    /// Timeout of the calls that carry no file.
    call_timeout: Duration,
}

impl BatchClient {
    /// A client for the provider `config` names (its base URL, key and connect timeout). A
    /// call without a file gets `config.call_timeout`; an upload or a download, `transfer`
    /// (files reach 200 MB).
    pub fn new(config: &LlmConfig, transfer: Duration) -> Result<BatchClient, reqwest::Error> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(transfer)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("menus-worker/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(BatchClient {
            http,
            base_url: config.base_url.trim_end_matches('/').to_string(),
            api_key: config.api_key.clone(),
            call_timeout: config.call_timeout,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Sends `request` with the key; the body of a 2xx answer, or the classified failure.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Vec<u8>, LlmError> {
        let response = request
            .bearer_auth(self.api_key.expose_secret())
            .send()
            .await
            .map_err(|e| LlmError::from_transport(&e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body: Vec<u8> = response
            .bytes()
            .await
            .map_err(|e| LlmError::from_transport(&e))?
            .into();
        if !status.is_success() {
            return Err(LlmError::from_status(
                status,
                &headers,
                &String::from_utf8_lossy(&body),
            ));
        }
        Ok(body)
    }

    /// Sends `request` and reads its JSON answer as `T`.
    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, LlmError> {
        let body = self.send(request).await?;
        serde_json::from_slice(&body).map_err(|e| {
            LlmError::new(
                ErrorClass::Transient,
                "llm_malformed_response",
                format!("the provider's answer is not the object expected: {e}"),
            )
        })
    }

    /// `POST /v1/files` (multipart: `purpose=batch`, `file`): uploads an input file of JSONL
    /// lines ([`InputLine`]) named `filename`. The provider refuses (400) a file over its
    /// limits (50,000 lines, 200 MB) or with a malformed line.
    #[tracing::instrument(skip_all, fields(bytes = content.len()), err(level = "warn"))]
    pub async fn upload(&self, filename: &str, content: Vec<u8>) -> Result<FileObject, LlmError> {
        let part = Part::bytes(content)
            .file_name(filename.to_string())
            .mime_str("application/jsonl")
            .map_err(|e| LlmError::from_transport(&e))?;
        let form = Form::new().text("purpose", "batch").part("file", part);
        self.json(self.http.post(self.url("/files")).multipart(form))
            .await
    }

    /// `POST /v1/batches`: a batch of the lines of `input_file_id` to Chat Completions within
    /// the 24-hour window, with `metadata` (at most 16 pairs, keys up to 64 characters, values
    /// up to 512).
    #[tracing::instrument(skip_all, fields(file = input_file_id), err(level = "warn"))]
    pub async fn create(
        &self,
        input_file_id: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Batch, LlmError> {
        let body = serde_json::json!({
            "input_file_id": input_file_id,
            "endpoint": CHAT_COMPLETIONS,
            "completion_window": COMPLETION_WINDOW,
            "metadata": metadata,
        });
        self.json(
            self.http
                .post(self.url("/batches"))
                .timeout(self.call_timeout)
                .json(&body),
        )
        .await
    }

    /// `GET /v1/batches/{id}`.
    #[tracing::instrument(skip_all, fields(provider_batch = id), err(level = "warn"))]
    pub async fn get(&self, id: &str) -> Result<Batch, LlmError> {
        self.json(
            self.http
                .get(self.url(&format!("/batches/{id}")))
                .timeout(self.call_timeout),
        )
        .await
    }

    /// The newest batch whose metadata has `key` = `value`, looked for page by page in
    /// `GET /v1/batches?limit=100&after=…` (newest first) until a batch created before
    /// `not_before` (Unix seconds), the last page, or 50 pages (5,000 batches).
    #[tracing::instrument(skip_all, fields(key = key, value = value), err(level = "warn"))]
    pub async fn find(
        &self,
        key: &str,
        value: &str,
        not_before: i64,
    ) -> Result<Option<Batch>, LlmError> {
        let mut after: Option<String> = None;
        for _ in 0..LIST_PAGES {
            // Batch ids are letters, digits and `_`: nothing to escape.
            let path = match &after {
                Some(after) => format!("/batches?limit={LIST_PAGE}&after={after}"),
                None => format!("/batches?limit={LIST_PAGE}"),
            };
            let page: BatchList = self
                .json(self.http.get(self.url(&path)).timeout(self.call_timeout))
                .await?;
            let mut older = false;
            for batch in page.data.iter() {
                if batch.metadata(key) == Some(value) {
                    return Ok(Some(batch.clone()));
                }
                older |= batch.created_at < not_before;
            }
            after = page
                .last_id
                .or_else(|| page.data.last().map(|b| b.id.clone()));
            if older || !page.has_more || after.is_none() {
                break;
            }
        }
        Ok(None)
    }

    /// `POST /v1/batches/{id}/cancel`: the batch becomes `cancelling`, then `cancelled` (what
    /// ran by then is in its output file).
    #[tracing::instrument(skip_all, fields(provider_batch = id), err(level = "warn"))]
    pub async fn cancel(&self, id: &str) -> Result<Batch, LlmError> {
        self.json(
            self.http
                .post(self.url(&format!("/batches/{id}/cancel")))
                .timeout(self.call_timeout),
        )
        .await
    }

    /// `GET /v1/files/{id}/content`: the file's bytes (an output or error file is JSONL of
    /// [`OutputLine`]s).
    #[tracing::instrument(skip_all, fields(file = id), err(level = "warn"))]
    pub async fn download(&self, id: &str) -> Result<Vec<u8>, LlmError> {
        self.send(self.http.get(self.url(&format!("/files/{id}/content"))))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_and_error_lines_read_in_every_shape() {
        let file = br#"{"id":"batch_req_1","custom_id":"job-a","response":{"status_code":200,"request_id":"r","body":{"choices":[]}},"error":null}
{"id":"batch_req_2","custom_id":"job-b","response":{"status_code":500,"request_id":"r","body":{"error":{"message":"x","type":"server_error"}}},"error":null}
not json

{"id":"batch_req_3","custom_id":"job-c","response":null,"error":{"code":"batch_expired","message":"This request could not be executed before the completion window expired."}}
"#;
        let lines: Vec<Result<OutputLine, usize>> = read_lines(file).collect();
        assert_eq!(lines.len(), 4, "the blank line is skipped");
        let a = lines[0].as_ref().unwrap();
        assert_eq!(a.custom_id, "job-a");
        assert!(a.answer().is_some());
        let b = lines[1].as_ref().unwrap();
        assert!(b.answer().is_none(), "a 500 is no answer");
        assert_eq!(lines[2].as_ref().unwrap_err(), &3);
        let c = lines[3].as_ref().unwrap();
        assert!(c.answer().is_none());
        assert_eq!(
            c.error.as_ref().and_then(|e| e.code.as_deref()),
            Some("batch_expired")
        );
    }

    #[test]
    fn a_batch_object_reads_with_unknown_statuses_and_missing_fields() {
        let batch: Batch = serde_json::from_str(
            r#"{"id":"batch_1","object":"batch","status":"in_progress","metadata":{"menus_batch":"x"},
                "request_counts":{"total":3,"completed":1,"failed":0},"created_at":5}"#,
        )
        .unwrap();
        assert_eq!(batch.status, ProviderStatus::InProgress);
        assert!(!batch.status.is_final());
        assert_eq!(batch.metadata(METADATA_KEY), Some("x"));
        assert_eq!(batch.request_counts.unwrap().completed, 1);
        let newer: Batch = serde_json::from_str(r#"{"id":"b","status":"paused"}"#).unwrap();
        assert_eq!(newer.status, ProviderStatus::Unknown);
        assert!(!newer.status.is_final());
        for status in ["completed", "expired", "cancelled", "failed"] {
            let s: ProviderStatus = serde_json::from_value(status.into()).unwrap();
            assert!(s.is_final(), "{status}");
            assert_eq!(s.as_str(), status);
        }
    }

    #[test]
    fn an_input_line_is_a_chat_completions_request() {
        let body = serde_json::json!({"model": "m"});
        let line = serde_json::to_value(InputLine::chat("job-1", &body)).unwrap();
        assert_eq!(
            line,
            serde_json::json!({"custom_id": "job-1", "method": "POST",
                               "url": "/v1/chat/completions", "body": {"model": "m"}})
        );
    }
}
