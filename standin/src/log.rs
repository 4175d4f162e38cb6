//! The request journal: one entry per chat-completion call, written on arrival and completed
//! when the answer goes out, so tests can assert how many calls a client made, when, and what
//! each got (backoff gaps, honoured `retry-after`, no call after a fatal error).

use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// What the stand-in saw and did for one call.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LoggedRequest {
    /// 1 for the first call since the server started; never reused, even after a clear.
    pub seq: u64,
    /// The `x-request-id` the answer carried.
    pub request_id: String,
    /// The `X-Client-Request-Id` the call carried, if any: the client's own name for the call.
    pub client_request_id: Option<String>,
    /// Wall-clock arrival, milliseconds since the Unix epoch.
    pub arrived_unix_ms: u64,
    /// Arrival on a monotonic clock, milliseconds since the server started: use these to
    /// measure gaps between calls.
    pub arrived_ms: f64,
    /// When the answer was sent (or the connection dropped), same clock; `None` while in flight.
    pub answered_ms: Option<f64>,
    pub model: Option<String>,
    /// `day` of the brief, when the last user message was one.
    pub day: Option<u8>,
    /// `of_days` of a whole-menu brief, when the last user message was one.
    pub menu_days: Option<u8>,
    /// How many problems the brief listed (a re-ask when above zero).
    pub problems: Option<usize>,
    pub prompt_tokens: Option<u32>,
    /// `max_completion_tokens` (or `max_tokens`) as sent.
    pub max_completion_tokens: Option<i64>,
    /// `response_format.type` as sent (`json_schema`, `json_object`, `text`), if any.
    pub response_format: Option<String>,
    /// HTTP status; `None` when no response was sent (in flight, reset or dropped).
    pub status: Option<u16>,
    /// The injected fault's kind, if one was applied (`rate_limited`, `reset`, ...).
    pub fault: Option<String>,
    pub finish_reason: Option<String>,
    pub completion_tokens: Option<u32>,
    /// The messages as sent, in order, when the stand-in records them
    /// ([`Config::record_messages`](crate::Config::record_messages)).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<LoggedMessage>,
}

/// One message of a call, its text parts joined.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LoggedMessage {
    pub role: String,
    pub content: String,
}

/// The journal shared by the server's handlers.
#[derive(Debug)]
pub struct RequestLog {
    started: Instant,
    inner: Mutex<Journal>,
}

#[derive(Debug, Default)]
struct Journal {
    next_seq: u64,
    entries: Vec<LoggedRequest>,
}

impl RequestLog {
    pub fn new() -> RequestLog {
        RequestLog {
            started: Instant::now(),
            inner: Mutex::new(Journal::default()),
        }
    }

    fn now_ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1000.0
    }

    /// Records an arrival, under the client's id for the call if it sent one, and returns its
    /// sequence number.
    pub fn arrive(&self, request_id: &str, client_request_id: Option<&str>) -> u64 {
        let arrived_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let arrived_ms = self.now_ms();
        let mut journal = self.lock();
        journal.next_seq += 1;
        let seq = journal.next_seq;
        journal.entries.push(LoggedRequest {
            seq,
            request_id: request_id.to_string(),
            client_request_id: client_request_id.map(str::to_string),
            arrived_unix_ms,
            arrived_ms,
            ..LoggedRequest::default()
        });
        seq
    }

    /// Changes the entry `seq`, if it has not been cleared meanwhile.
    pub fn update(&self, seq: u64, change: impl FnOnce(&mut LoggedRequest)) {
        let mut journal = self.lock();
        if let Some(entry) = journal.entries.iter_mut().rev().find(|e| e.seq == seq) {
            change(entry);
        }
    }

    /// Marks the entry answered now, with the given status (`None`: no response was sent).
    pub fn answer(&self, seq: u64, status: Option<u16>) {
        let now = self.now_ms();
        self.update(seq, |e| {
            e.status = status;
            e.answered_ms = Some(now);
        });
    }

    /// The entry `seq`, unless it was cleared.
    pub fn get(&self, seq: u64) -> Option<LoggedRequest> {
        self.lock()
            .entries
            .iter()
            .rev()
            .find(|e| e.seq == seq)
            .cloned()
    }

    pub fn entries(&self) -> Vec<LoggedRequest> {
        self.lock().entries.clone()
    }

    pub fn clear(&self) {
        self.lock().entries.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Journal> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for RequestLog {
    fn default() -> Self {
        RequestLog::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_numbered_and_completed_in_place() {
        let log = RequestLog::new();
        let a = log.arrive("req_a", Some("job-1.d1"));
        let b = log.arrive("req_b", None);
        log.answer(b, Some(429));
        let entries = log.entries();
        assert_eq!((entries[0].seq, entries[1].seq), (a, b));
        assert_eq!(entries[0].client_request_id.as_deref(), Some("job-1.d1"));
        assert_eq!(entries[1].client_request_id, None);
        assert_eq!(entries[0].status, None);
        assert_eq!(entries[1].status, Some(429));
        assert!(entries[1].answered_ms.unwrap() >= entries[1].arrived_ms);
        log.clear();
        assert!(log.entries().is_empty());
        assert_eq!(
            log.arrive("req_c", None),
            b + 1,
            "numbers are not reused after a clear"
        );
    }
}
