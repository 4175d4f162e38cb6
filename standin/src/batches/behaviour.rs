//! How the stand-in's Batch API behaves: how long a batch takes, whether it expires part-done,
//! which of its requests fail or answer a menu with a broken day, and the limits of an input
//! file. Set per run (`Config::batches`, the binary's `STANDIN_BATCH_*` flags) and changed at
//! runtime (`POST /_standin/batches/behaviour`); each batch keeps the behaviour it was created
//! under.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The knobs. In JSON, these field names; every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchBehaviour {
    /// Milliseconds from a batch's creation to its end at the earliest. The first tenth is
    /// `validating`, up to nine tenths `in_progress` (each request's result shows in
    /// `request_counts` at its share of that span), then `finalizing` until the end. Default
    /// 2000.
    pub completion_delay_ms: u64,
    /// When set (0 to 1), a batch ends `expired` after this share of its requests ran: the
    /// first `ceil(share × total)` requests have results, the rest `batch_expired` lines in the
    /// error file.
    pub expire_after_fraction: Option<f64>,
    /// When set, every Nth request of a batch (the Nth, 2Nth, … line) fails with a 500
    /// `server_error` line in the error file. 0 never fails one.
    pub error_every: Option<u32>,
    /// When set, the whole-menu answer of every Nth request of a batch (the Nth, 2Nth, … line,
    /// when it asks for a menu) breaks a rule on one day, so the worker must ask that day again.
    /// 0 breaks none.
    pub broken_day_every: Option<u32>,
    /// Most requests an input file may hold (OpenAI: 50,000).
    pub max_requests: usize,
    /// Most bytes an input file may hold (OpenAI: 200 MB).
    pub max_file_bytes: u64,
}

impl Default for BatchBehaviour {
    fn default() -> Self {
        BatchBehaviour {
            completion_delay_ms: 2_000,
            expire_after_fraction: None,
            error_every: None,
            broken_day_every: None,
            max_requests: 50_000,
            max_file_bytes: 200 * 1024 * 1024,
        }
    }
}

impl BatchBehaviour {
    /// This behaviour with the fields `changes` (a JSON object) names replaced; `null` unsets
    /// an optional knob. Errors name an unknown field, a wrong type or a share outside 0–1.
    pub fn changed(&self, changes: &Value) -> Result<BatchBehaviour, String> {
        let Value::Object(changes) = changes else {
            return Err("the behaviour must be a JSON object".to_string());
        };
        let mut merged = serde_json::to_value(self).map_err(|e| e.to_string())?;
        if let Value::Object(fields) = &mut merged {
            for (name, value) in changes {
                fields.insert(name.clone(), value.clone());
            }
        }
        let changed: BatchBehaviour = serde_json::from_value(merged).map_err(|e| e.to_string())?;
        if let Some(share) = changed.expire_after_fraction
            && !(0.0..=1.0).contains(&share)
        {
            return Err(format!(
                "expire_after_fraction must be between 0 and 1, not {share}"
            ));
        }
        Ok(changed)
    }

    pub(crate) fn completion_delay(&self) -> Duration {
        Duration::from_millis(self.completion_delay_ms)
    }

    /// How many of `total` requests run before the batch ends: all, or the share before expiry.
    pub(crate) fn runs(&self, total: usize) -> usize {
        match self.expire_after_fraction {
            Some(share) => ((share.clamp(0.0, 1.0) * total as f64).ceil() as usize).min(total),
            None => total,
        }
    }

    /// Whether the request at 1-based `position` fails with a 500.
    pub(crate) fn fails(&self, position: usize) -> bool {
        every(self.error_every, position)
    }

    /// Whether the request at 1-based `position` gets a menu with a broken day.
    pub(crate) fn breaks(&self, position: usize) -> bool {
        every(self.broken_day_every, position)
    }
}

fn every(n: Option<u32>, position: usize) -> bool {
    n.is_some_and(|n| n > 0 && position.is_multiple_of(n as usize))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_replace_only_the_fields_they_name() {
        let base = BatchBehaviour {
            error_every: Some(4),
            ..BatchBehaviour::default()
        };
        let changed = base
            .changed(&json!({"completion_delay_ms": 10, "expire_after_fraction": 0.5}))
            .unwrap();
        assert_eq!(changed.completion_delay_ms, 10);
        assert_eq!(changed.expire_after_fraction, Some(0.5));
        assert_eq!(changed.error_every, Some(4));
        let unset = changed.changed(&json!({"error_every": null})).unwrap();
        assert_eq!(unset.error_every, None);
        assert!(base.changed(&json!({"error_evry": 3})).is_err());
        assert!(
            base.changed(&json!({"expire_after_fraction": 1.5}))
                .is_err()
        );
        assert!(base.changed(&json!([1])).is_err());
    }

    #[test]
    fn expiry_runs_the_first_share_rounded_up_and_every_nth_position_counts() {
        let half = BatchBehaviour {
            expire_after_fraction: Some(0.5),
            error_every: Some(3),
            broken_day_every: Some(0),
            ..BatchBehaviour::default()
        };
        assert_eq!(half.runs(5), 3);
        assert_eq!(half.runs(0), 0);
        assert_eq!(BatchBehaviour::default().runs(5), 5);
        let failing: Vec<usize> = (1..=7).filter(|p| half.fails(*p)).collect();
        assert_eq!(failing, vec![3, 6]);
        assert!(!(1..=7).any(|p| half.breaks(p)));
    }
}
