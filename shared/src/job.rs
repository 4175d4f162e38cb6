//! A generation job's life as the rest of the system sees it: its status and why it failed.

use serde::{Deserialize, Serialize};

/// Where a job is in its life (DESIGN.md §4).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    sqlx::Type,
    schemars::JsonSchema,
    utoipa::ToSchema,
)]
#[sqlx(type_name = "job_status", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Running,
    Retrying,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobStatus {
    /// Every status, in the order of a job's life.
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Retrying,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    /// Finished for good: nothing will change it but an admin's requeue.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        )
    }

    /// Whether an admin may requeue a job in this status: one that failed or was cancelled, or
    /// one waiting (queued or retrying: pushed again, due at once, in case Redis lost it). Not a
    /// running job (its attempt owns it) nor a succeeded one.
    pub fn is_requeueable(self) -> bool {
        !matches!(self, JobStatus::Running | JobStatus::Succeeded)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Retrying => "retrying",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }
}

/// Why an attempt or a job failed: a stable code for programs and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobError {
    pub code: String,
    pub message: String,
}

impl JobError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        JobError {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// What the LLM calls of an attempt cost, and how often the provider made it wait (a rate
/// limit: a snooze, capped per job), added to the job's totals with each write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub calls: i32,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub snoozes: i32,
    /// What the calls cost, in micro-US-dollars (1e-6 USD), as priced where they were made
    /// (`shared::llm::price::Prices::cost_micros`, at the lane's price).
    pub cost_micros: i64,
    /// What the Batch API's discount saved on these calls against the normal lane's price, in
    /// micro-US-dollars (`Prices::saved_micros`); 0 for calls on the normal lane.
    pub batch_saved_micros: i64,
}

impl Usage {
    pub fn add(&mut self, other: Usage) {
        self.calls += other.calls;
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.snoozes += other.snoozes;
        self.cost_micros += other.cost_micros;
        self.batch_saved_micros += other.batch_saved_micros;
    }
}

/// Micro-US-dollars (the unit costs are stored in) as US dollars, for showing: 1_234_567 →
/// 1.234567.
pub fn usd(micros: i64) -> f64 {
    micros as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_usage_sums_every_counter_the_cost_included() {
        let mut total = Usage {
            calls: 1,
            prompt_tokens: 100,
            completion_tokens: 10,
            snoozes: 0,
            cost_micros: 250,
            batch_saved_micros: 0,
        };
        total.add(Usage {
            calls: 2,
            prompt_tokens: 200,
            completion_tokens: 20,
            snoozes: 1,
            cost_micros: 125,
            batch_saved_micros: 125,
        });
        assert_eq!(
            total,
            Usage {
                calls: 3,
                prompt_tokens: 300,
                completion_tokens: 30,
                snoozes: 1,
                cost_micros: 375,
                batch_saved_micros: 125,
            }
        );
    }

    #[test]
    fn micro_dollars_are_shown_as_dollars() {
        assert_eq!(usd(1_234_567), 1.234567);
        assert_eq!(usd(0), 0.0);
    }
}
