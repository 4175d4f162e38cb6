//! The batch journal: every batch a stand-in was asked to create, with its requests and what
//! became of each, so a test can check that each piece of work went into exactly one provider
//! batch, that no batch was created twice, and what the batch's requests cost. Read with
//! `StandIn::batches()` or `GET /_standin/batches`. A batch's requests are not in the request
//! journal (`/_standin/requests`): that one lists calls to `/v1/chat/completions` only.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::wire::BatchStatus;

/// One batch, as created and as it stands now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchEntry {
    /// `batch_…`.
    pub id: String,
    pub input_file_id: String,
    pub metadata: Option<BTreeMap<String, String>>,
    pub status: BatchStatus,
    /// Unix seconds.
    pub created_at: i64,
    /// The input file's requests, in its order.
    pub requests: Vec<BatchRequestEntry>,
}

impl BatchEntry {
    /// The `custom_id`s of the batch's requests, in the input file's order.
    pub fn custom_ids(&self) -> Vec<&str> {
        self.requests.iter().map(|r| r.custom_id.as_str()).collect()
    }
}

/// One request of a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRequestEntry {
    pub custom_id: String,
    pub outcome: RequestOutcome,
    /// The status of the request's response once it has one (200, or the error's).
    pub status_code: Option<u16>,
    /// `of_days` when the request asked for a whole menu.
    pub menu_days: Option<u8>,
    pub prompt_tokens: Option<u32>,
    pub completion_tokens: Option<u32>,
}

/// What became of one request of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestOutcome {
    /// No result yet.
    Pending,
    /// Answered 200: a line of the output file.
    Completed,
    /// Answered with an error: a line of the error file.
    Failed,
    /// The batch expired before it ran: a `batch_expired` line of the error file.
    Expired,
    /// The batch was cancelled before it had a result: in neither file.
    Cancelled,
}
