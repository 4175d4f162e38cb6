//! One call to the model as the fleet may make it: only through a closed circuit, only in a slot
//! of the fleet's budget, and with the provider's waits honoured. Calls, not attempts, absorb
//! the provider's passing faults: a transient error is retried here a few times with backoff, a
//! rate limit waits as the server says (pausing the whole fleet, using no attempt). Everything
//! else the client classified goes back to the caller to decide. A call stops at once, its
//! request dropped, when the attempt is told to stop.

use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::menu::Day;
use shared::job::Usage;
use shared::lifecycle::lease::unless_stopped;
use shared::llm::budget::{Admission, Budget};
use shared::llm::circuit::{Circuit, Gate};
use shared::llm::wait::CallBackoff;
use shared::llm::{CallId, ErrorClass, LlmClient, LlmError, Prompt, TRUNCATED};
use shared::queue::Lane;
use tokio_util::sync::CancellationToken;

use crate::config::JobConfig;

/// What stops a call short of an answer to check.
#[derive(Debug)]
pub enum Interrupt {
    /// The attempt (or, if the error is permanent, the job) ends on this.
    Failed(LlmError),
    /// Nothing can be done before `until`: the job goes back to the queue without using an
    /// attempt. `outage` when the provider is down for the whole fleet (an open circuit).
    Snooze { until: DateTime<Utc>, outage: bool },
    /// The attempt was told to stop (cancelled, superseded, shutdown).
    Stopped,
}

/// The bounds a job runs within, across all its calls.
#[derive(Debug)]
pub struct Bounds {
    /// Past this the job fails with `deadline_exceeded`.
    pub deadline: DateTime<Utc>,
    /// Rate-limit waits the job may still take before it fails with `llm_rate_limited`.
    pub snoozes_left: AtomicI32,
    /// Fires when the attempt must stop.
    pub stop: CancellationToken,
    /// The job's lane, for the budget's interactive share.
    pub lane: Lane,
}

/// How calls wait and retry (from the worker's settings).
#[derive(Debug, Clone, Copy)]
pub struct CallPolicy {
    /// The longest server-directed wait slept in a worker slot; longer waits snooze the job.
    pub max_server_wait: Duration,
    /// The longest server-directed wait honoured at all.
    pub server_wait_cap: Duration,
    /// Retries of a transiently failed call within the attempt.
    pub max_retries: u32,
    pub backoff: CallBackoff,
}

impl From<&JobConfig> for CallPolicy {
    fn from(config: &JobConfig) -> CallPolicy {
        CallPolicy {
            max_server_wait: config.max_server_wait,
            server_wait_cap: config.server_wait_cap,
            max_retries: config.llm_max_retries,
            backoff: config.call_backoff(),
        }
    }
}

/// Makes calls for the jobs of one worker process.
#[derive(Clone)]
pub struct Caller {
    pub llm: LlmClient,
    pub budget: Budget,
    pub circuit: Circuit,
    pub policy: CallPolicy,
}

impl Caller {
    /// The caller of a worker process configured by `config`.
    pub fn new(
        llm: LlmClient,
        queue: &shared::queue::Queue,
        config: &crate::WorkerConfig,
    ) -> Caller {
        let call_timeout = config.llm.call_timeout;
        Caller {
            llm,
            budget: Budget::new(queue.redis().clone(), config.budget.clone()),
            circuit: Circuit::new(queue.redis().clone(), config.circuit.clone(), call_timeout),
            policy: CallPolicy::from(&config.jobs),
        }
    }

    /// Asks the model for one day. `id` names the call (its `retry` counts up here), `usage`
    /// collects what every call cost (and `usage.snoozes` the rate-limit waits taken), `bounds`
    /// what the job may still spend.
    #[tracing::instrument(skip_all, fields(llm.model = model))]
    pub async fn call(
        &self,
        model: &str,
        prompt: &Prompt,
        mut id: CallId,
        bounds: &Bounds,
        usage: &mut Usage,
    ) -> Result<Day, Interrupt> {
        let policy = &self.policy;
        let mut transient_retries = 0;
        let mut rate_limited = 0;
        let ceiling = self.llm.config().max_completion_tokens;
        let mut cap = prompt.completion_cap;
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
            let cost = prompt.tokens + cap;
            let admitted =
                unless_stopped(&bounds.stop, self.budget.admit(model, cost, bounds.lane)).await;
            match admitted.ok_or(Interrupt::Stopped)? {
                Admission::Go { waited } => {
                    metrics::histogram!("llm_capacity_wait_seconds", "model" => model.to_string())
                        .record(waited.as_secs_f64());
                }
                // No slot within the longest wait. A batch job kept waiting for people is not
                // late by its own doing: its deadline moves with the wait, as in an outage.
                Admission::Later { after } => {
                    return Err(snooze_until(Utc::now() + after, bounds.lane == Lane::Batch));
                }
            }
            let Some(call) =
                unless_stopped(&bounds.stop, self.llm.plan_day(model, prompt, cap, id)).await
            else {
                // The request was dropped in flight: the provider may still bill its prompt.
                usage.add(Usage {
                    calls: 1,
                    prompt_tokens: i64::from(prompt.tokens),
                    ..Usage::default()
                });
                return Err(Interrupt::Stopped);
            };
            id.retry += 1;
            usage.add(call.usage);
            let was_rate_limited =
                matches!(&call.result, Err(e) if e.class == ErrorClass::RateLimited);
            shared::llm::stats::record(self.budget.redis(), model, was_rate_limited).await;
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
            if error.code == TRUNCATED && cap < ceiling {
                // Cut off at the cap derived for this day: asked again at once with the
                // ceiling, never with the same cap.
                metrics::counter!("llm_completion_cap_raised_total", "model" => model.to_string())
                    .increment(1);
                cap = ceiling;
                continue;
            }
            let server_wait = error.wait.map(|w| w.min(policy.server_wait_cap));
            let wait = match error.class {
                ErrorClass::Transient if transient_retries < policy.max_retries => {
                    transient_retries += 1;
                    metrics::counter!("llm_call_retries_total", "model" => model.to_string(), "code" => error.code)
                        .increment(1);
                    let wait =
                        server_wait.unwrap_or_else(|| policy.backoff.delay(transient_retries));
                    if wait > policy.max_server_wait {
                        // Too long to sleep in a slot: the attempt ends and is retried then.
                        return Err(Interrupt::Failed(error));
                    }
                    wait
                }
                ErrorClass::RateLimited => {
                    rate_limited += 1;
                    usage.snoozes += 1;
                    metrics::counter!("llm_snoozes_total", "model" => model.to_string())
                        .increment(1);
                    if bounds.snoozes_left.fetch_sub(1, Ordering::Relaxed) <= 0 {
                        return Err(Interrupt::Failed(LlmError::new(
                            ErrorClass::PermanentForJob,
                            "llm_rate_limited",
                            format!(
                                "the provider kept rate limiting this job past its limit of waits: {}",
                                error.message
                            ),
                        )));
                    }
                    let wait = server_wait.unwrap_or_else(|| policy.backoff.delay(rate_limited));
                    self.budget.pause(model, wait).await;
                    metrics::counter!("llm_rate_limited_total", "model" => model.to_string())
                        .increment(1);
                    if wait > policy.max_server_wait {
                        return Err(snooze_until(Utc::now() + wait, false));
                    }
                    wait
                }
                _ => return Err(Interrupt::Failed(error)),
            };
            tracing::info!(
                llm.model = model,
                error.code = error.code,
                wait_ms = wait.as_millis() as u64,
                "calling again after a wait"
            );
            unless_stopped(&bounds.stop, tokio::time::sleep(wait))
                .await
                .ok_or(Interrupt::Stopped)?;
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
