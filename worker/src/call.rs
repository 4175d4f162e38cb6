//! One call to the model as the fleet may make it: only through a closed circuit, only in a slot
//! of the fleet's budget, and with the provider's rate-limit waits honoured (they pause the
//! whole fleet and do not use up an attempt). Everything else the client classified goes back to
//! the caller to decide.

use std::time::Duration;

use chrono::{DateTime, Utc};
use shared::budget::{Admission, Budget};
use shared::circuit::{Circuit, Gate};
use shared::job::Usage;
use shared::llm::{ErrorClass, LlmClient, LlmError, Prompt};
use shared::menu::Day;

/// What stops a call short of an answer to check.
#[derive(Debug)]
pub enum Interrupt {
    /// The attempt (or, if the error is permanent, the job) ends on this.
    Failed(LlmError),
    /// Nothing can be done before `until`: the job goes back to the queue without using an
    /// attempt. `outage` when the provider is down for the whole fleet (an open circuit).
    Snooze { until: DateTime<Utc>, outage: bool },
}

/// The bounds a job runs within, across all its calls.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Past this the job fails with `deadline_exceeded`.
    pub deadline: DateTime<Utc>,
    /// Rate-limit waits the job may still take before it fails with `llm_rate_limited`.
    pub snoozes_left: i32,
}

/// Makes calls for the jobs of one worker process.
#[derive(Clone)]
pub struct Caller {
    pub llm: LlmClient,
    pub budget: Budget,
    pub circuit: Circuit,
    /// The longest server-directed wait slept in a worker slot; longer waits snooze the job.
    pub max_server_wait: Duration,
}

/// A fixed, short wait when a 429 names none: the provider's window moves on quickly.
const RATE_LIMIT_FALLBACK_WAIT: Duration = Duration::from_secs(1);

impl Caller {
    /// The caller of a worker process configured by `config`.
    pub fn new(
        llm: LlmClient,
        queue: &shared::queue::Queue,
        config: &crate::WorkerConfig,
    ) -> Caller {
        let call_timeout = Duration::from_millis(config.llm.call_timeout_ms);
        Caller {
            llm,
            budget: Budget::new(queue.clone(), config.budget.clone()),
            circuit: Circuit::new(queue.clone(), config.circuit.clone(), call_timeout),
            max_server_wait: config.jobs.max_server_wait(),
        }
    }

    /// Asks the model for one day. `usage` collects what every call cost, `bounds` what the job
    /// may still spend; `usage.snoozes` counts the rate-limit waits taken here.
    pub async fn call(
        &self,
        model: &str,
        prompt: &Prompt,
        bounds: &Bounds,
        usage: &mut Usage,
    ) -> Result<Day, Interrupt> {
        loop {
            if Utc::now() >= bounds.deadline {
                return Err(Interrupt::Failed(LlmError::new(
                    ErrorClass::PermanentForJob,
                    "deadline_exceeded",
                    "the job ran out of time before its menu was complete",
                )));
            }
            let probing = match self.circuit.check(model).await {
                Gate::Closed => false,
                Gate::Probe => true,
                Gate::Open { retry_at } => return Err(snooze_until(retry_at, true)),
            };
            let cost = prompt.tokens + self.llm.config().max_completion_tokens;
            match self.budget.admit(model, cost).await {
                Admission::Go { waited } => {
                    metrics::histogram!("llm_capacity_wait_seconds", "model" => model.to_string())
                        .record(waited.as_secs_f64());
                    tracing::debug!(
                        llm.model = model,
                        llm.capacity_wait_ms = waited.as_secs_f64() * 1000.0,
                        "budget slot reached"
                    );
                }
                Admission::Later { after } => {
                    return Err(snooze_until(Utc::now() + after, false));
                }
            }
            let call = self.llm.plan_day(model, prompt).await;
            usage.add(call.usage);
            let rate_limited = matches!(&call.result, Err(e) if e.class == ErrorClass::RateLimited);
            shared::llm::stats::record(self.budget.queue(), model, rate_limited).await;
            self.budget
                .reconcile(model, prompt.tokens, call.usage.prompt_tokens as u32)
                .await;
            let error = match call.result {
                Ok(day) => {
                    if probing {
                        self.circuit.close(model).await;
                    }
                    return Ok(day);
                }
                Err(e) => e,
            };
            if error.class == ErrorClass::PermanentForFleet {
                let probe_at = self.circuit.open(model, error.code, &error.message).await;
                return Err(snooze_until(probe_at, true));
            }
            if probing {
                // The provider answered with something that is not a fleet error: it is back.
                self.circuit.close(model).await;
            }
            if error.class != ErrorClass::RateLimited {
                return Err(Interrupt::Failed(error));
            }
            usage.snoozes += 1;
            metrics::counter!("llm_snoozes_total", "model" => model.to_string()).increment(1);
            if usage.snoozes > bounds.snoozes_left {
                return Err(Interrupt::Failed(LlmError::new(
                    ErrorClass::PermanentForJob,
                    "llm_rate_limited",
                    format!(
                        "the provider kept rate limiting this job past its limit of waits: {}",
                        error.message
                    ),
                )));
            }
            let wait = error.wait.unwrap_or(RATE_LIMIT_FALLBACK_WAIT);
            self.budget.pause(model, wait).await;
            metrics::counter!("llm_rate_limited_total", "model" => model.to_string()).increment(1);
            if wait > self.max_server_wait {
                return Err(snooze_until(Utc::now() + wait, false));
            }
            tracing::info!(
                llm.model = model,
                wait_ms = wait.as_millis() as u64,
                "rate limited: waiting as the provider said"
            );
            tokio::time::sleep(wait).await;
        }
    }
}

/// Puts the job back until `at`, a little later for each job so they do not all return at once.
fn snooze_until(at: DateTime<Utc>, outage: bool) -> Interrupt {
    let spread = Duration::from_millis(rand::random::<u64>() % 250);
    Interrupt::Snooze {
        until: at + spread,
        outage,
    }
}
