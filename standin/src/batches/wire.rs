//! The Files and Batches wire format as OpenAI speaks it
//! (<https://platform.openai.com/docs/api-reference/files>,
//! <https://platform.openai.com/docs/api-reference/batch>): the File object, the Batch object
//! and its list, and the lines of a batch's output and error files. Kept apart from the handlers
//! so the shapes can be compared with the API reference in one place. Times are Unix seconds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A stored file (`object: "file"`): a batch's input (`purpose: "batch"`) or one of its results
/// (`purpose: "batch_output"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileObject {
    /// `file-…`.
    pub id: String,
    pub object: String,
    /// Size of the content in bytes.
    pub bytes: u64,
    pub created_at: i64,
    pub filename: String,
    pub purpose: String,
}

/// Where a batch is in its life. `failed`, `completed`, `expired` and `cancelled` are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchStatus {
    /// The input file is being checked (briefly, from creation).
    Validating,
    /// The input file could not be used; `errors` says why.
    Failed,
    /// Requests are running; `request_counts` grows.
    InProgress,
    /// Every request ran; the result files are being written.
    Finalizing,
    /// Done: `output_file_id` and `error_file_id` hold the results.
    Completed,
    /// The completion window ended first: the requests that ran have results, the others
    /// `batch_expired` lines in the error file.
    Expired,
    /// Cancel was asked; requests in flight finish.
    Cancelling,
    /// Cancelled: the requests done before the cancel have results.
    Cancelled,
}

impl BatchStatus {
    /// Whether the batch has ended (no status follows this one).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            BatchStatus::Failed
                | BatchStatus::Completed
                | BatchStatus::Expired
                | BatchStatus::Cancelled
        )
    }

    /// The status as it is spelled on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            BatchStatus::Validating => "validating",
            BatchStatus::Failed => "failed",
            BatchStatus::InProgress => "in_progress",
            BatchStatus::Finalizing => "finalizing",
            BatchStatus::Completed => "completed",
            BatchStatus::Expired => "expired",
            BatchStatus::Cancelling => "cancelling",
            BatchStatus::Cancelled => "cancelled",
        }
    }
}

/// The Batch object (`object: "batch"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchObject {
    /// `batch_…`.
    pub id: String,
    pub object: String,
    /// `/v1/chat/completions`: the only endpoint the stand-in runs.
    pub endpoint: String,
    /// Why the batch failed, when it did.
    pub errors: Option<BatchErrors>,
    pub input_file_id: String,
    /// `24h`.
    pub completion_window: String,
    pub status: BatchStatus,
    /// The successful requests' results, once the batch ended (`null` when there are none).
    pub output_file_id: Option<String>,
    /// The failed and expired requests' lines, once the batch ended (`null` when there are none).
    pub error_file_id: Option<String>,
    pub created_at: i64,
    pub in_progress_at: Option<i64>,
    /// `created_at` plus the completion window.
    pub expires_at: Option<i64>,
    pub finalizing_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub failed_at: Option<i64>,
    pub expired_at: Option<i64>,
    pub cancelling_at: Option<i64>,
    pub cancelled_at: Option<i64>,
    pub request_counts: RequestCounts,
    /// Up to 16 string pairs set at creation (`null` when none were).
    pub metadata: Option<BTreeMap<String, String>>,
}

/// How many requests the batch has, and how many have a result so far. Requests that expired
/// or were cancelled before they ran are neither completed nor failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    pub total: u32,
    pub completed: u32,
    pub failed: u32,
}

/// `errors` of a failed batch: `{"object": "list", "data": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchErrors {
    pub object: String,
    pub data: Vec<BatchError>,
}

/// One reason a batch failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchError {
    pub code: String,
    pub message: String,
    pub param: Option<String>,
    /// The input file's line, 1-based, when one is at fault.
    pub line: Option<u32>,
}

/// `GET /v1/batches`: a page of batches, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchList {
    pub object: String,
    pub data: Vec<BatchObject>,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
    /// Whether older batches follow; ask again with `after` = `last_id`.
    pub has_more: bool,
}

/// One line of an output or error file: the request's response, or (for a request that never
/// ran) an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputLine {
    /// `batch_req_…`.
    pub id: String,
    pub custom_id: String,
    pub response: Option<LineResponse>,
    pub error: Option<LineError>,
}

/// The HTTP answer a request of the batch got: a `chat.completion` (200) or an error body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineResponse {
    pub status_code: u16,
    /// `req_…`, as the `x-request-id` of a call.
    pub request_id: String,
    pub body: Value,
}

/// Why a request has no response, such as `batch_expired`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineError {
    pub code: String,
    pub message: String,
}
