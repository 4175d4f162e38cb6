//! One call to the model as the fleet may make it: to the first endpoint of the list whose
//! circuit is closed and whose budget has a slot soon enough (falling back to the next, and
//! returning when the primary's probe succeeds, without using an attempt), and with the
//! provider's waits honoured. Calls, not attempts, absorb
//! the provider's passing faults: a transient error is retried here a few times with backoff, a
//! rate limit waits as the server says (pausing the whole fleet, using no attempt). Everything
//! else the client classified goes back to the caller to decide. A call stops at once, its
//! request dropped, when the attempt is told to stop.

use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::menu::{Day, DaySource};
use domain::prompt::DayBrief;
use domain::vocabulary::ModelTier;
use shared::job::Usage;
use shared::keyspace::Redis;
use shared::lifecycle::lease::unless_stopped;
use shared::llm::budget::{Admission, Budget};
use shared::llm::circuit::{Circuit, CircuitConfig, Gate};
use shared::llm::endpoint::EndpointSettings;
use shared::llm::price::{PriceLane, Prices};
use shared::llm::wait::CallBackoff;
use shared::llm::{CallId, ErrorClass, LlmClient, LlmError, TRUNCATED};
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
    /// The longest wait for an endpoint's budget while a later endpoint could take the call.
    pub fallback_wait: Duration,
}

impl CallPolicy {
    /// The policy of `jobs`, falling back to the next endpoint after `fallback_wait`.
    pub fn new(jobs: &JobConfig, fallback_wait: Duration) -> CallPolicy {
        CallPolicy {
            max_server_wait: jobs.max_server_wait,
            server_wait_cap: jobs.server_wait_cap,
            max_retries: jobs.llm_max_retries,
            backoff: jobs.call_backoff(),
            fallback_wait,
        }
    }
}

/// One endpoint of the list, as this process calls it.
#[derive(Clone)]
pub struct Endpoint {
    pub settings: EndpointSettings,
    pub client: LlmClient,
    /// Its own RPM/TPM budget, fleet-wide.
    pub budget: Budget,
}

impl Endpoint {
    /// The endpoint `settings` describe, its budget kept in `redis`.
    pub fn new(redis: &Redis, settings: EndpointSettings) -> Result<Endpoint, reqwest::Error> {
        Ok(Endpoint {
            client: LlmClient::for_endpoint(&settings)?,
            budget: Budget::new(redis.clone(), settings.budget.clone()),
            settings,
        })
    }

    pub fn name(&self) -> &str {
        &self.settings.name
    }
}

/// Which endpoint a call goes to.
struct Choice {
    index: usize,
    model: String,
    route: String,
    probing: bool,
}

/// Makes calls for the jobs of one worker process.
#[derive(Clone)]
pub struct Caller {
    /// In order of preference; never empty.
    pub endpoints: Vec<Endpoint>,
    pub circuit: Circuit,
    pub policy: CallPolicy,
    pub prices: Prices,
}

impl Caller {
    /// The caller of a worker process configured by `config`.
    pub fn new(redis: &Redis, config: &crate::WorkerConfig) -> Result<Caller, reqwest::Error> {
        let settings = config.endpoints.resolve(&config.llm, &config.budget);
        Caller::with_endpoints(
            redis,
            settings,
            config.circuit.clone(),
            CallPolicy::new(&config.jobs, config.endpoints.fallback_wait),
            config.endpoints.prices.clone(),
        )
    }

    /// A caller over `endpoints` (in order of preference; at least one).
    pub fn with_endpoints(
        redis: &Redis,
        endpoints: Vec<EndpointSettings>,
        circuit: CircuitConfig,
        policy: CallPolicy,
        prices: Prices,
    ) -> Result<Caller, reqwest::Error> {
        assert!(!endpoints.is_empty(), "a caller needs an endpoint");
        let call_timeout = endpoints[0].llm.call_timeout;
        Ok(Caller {
            endpoints: endpoints
                .into_iter()
                .map(|e| Endpoint::new(redis, e))
                .collect::<Result<_, _>>()?,
            circuit: Circuit::new(redis.clone(), circuit, call_timeout),
            policy,
            prices,
        })
    }

    /// The first endpoint: the batch lane's and the admin statistics' budget.
    pub fn primary(&self) -> &Endpoint {
        &self.endpoints[0]
    }

    /// Tells the admin statistics what budget the fleet runs with (the primary's), and
    /// readiness checks which endpoints each tier may call.
    pub async fn publish_limits(&self) {
        let primary = &self.primary().budget;
        primary.publish_limits().await;
        let settings: Vec<EndpointSettings> =
            self.endpoints.iter().map(|e| e.settings.clone()).collect();
        shared::llm::endpoint::publish_routes(primary.redis(), &settings).await;
    }

    /// The first endpoint that may take a call costing `tokens` now: its circuit closed (or
    /// this caller holds its probe) and its budget's slot within the fallback wait (the last
    /// endpoint's within the longest capacity wait). An endpoint passed over is counted in
    /// `llm_fallbacks_total` with the reason. When none may, the job snoozes until the
    /// earliest moment one could.
    async fn choose(
        &self,
        tier: ModelTier,
        tokens: &[u32],
        bounds: &Bounds,
    ) -> Result<Choice, Interrupt> {
        let last = self.endpoints.len() - 1;
        let mut retry: Option<(DateTime<Utc>, bool)> = None;
        let mut passed: Vec<(&str, &'static str)> = Vec::new();
        for (index, endpoint) in self.endpoints.iter().enumerate() {
            let model = endpoint.settings.llm.model_for(tier).to_string();
            let route = endpoint.settings.route(&model);
            let probing = match self.circuit.check(&route).await {
                Gate::Closed => false,
                Gate::Probe => true,
                Gate::Open { retry_at } => {
                    retry = earliest(retry, retry_at, true);
                    passed.push((endpoint.name(), "circuit_open"));
                    continue;
                }
            };
            let longest = if index == last {
                endpoint.budget.config().max_wait
            } else {
                self.policy.fallback_wait
            };
            let admitted = unless_stopped(
                &bounds.stop,
                endpoint
                    .budget
                    .admit_within(&route, tokens[index], bounds.lane, longest),
            )
            .await;
            match admitted.ok_or(Interrupt::Stopped)? {
                Admission::Go { waited } => {
                    metrics::histogram!("llm_capacity_wait_seconds", "model" => route.clone())
                        .record(waited.as_secs_f64());
                }
                // No slot soon enough. A batch job kept waiting for people is not late by its
                // own doing: its deadline moves with the wait, as in an outage.
                Admission::Later { after } => {
                    retry = earliest(retry, Utc::now() + after, bounds.lane == Lane::Batch);
                    passed.push((endpoint.name(), "budget"));
                    continue;
                }
            }
            for (from, reason) in passed {
                metrics::counter!("llm_fallbacks_total", "from" => from.to_string(), "to" => endpoint.name().to_string(), "reason" => reason)
                    .increment(1);
            }
            return Ok(Choice {
                index,
                model,
                route,
                probing,
            });
        }
        let (at, outage) = retry.unwrap_or((Utc::now(), false));
        Err(snooze_until(at, outage))
    }

    /// Asks for the day of `brief`, the model chosen for `tier` at whichever endpoint takes the
    /// call. `id` names the call (its `retry` counts up here), `usage` collects what every call
    /// cost (and `usage.snoozes` the rate-limit waits taken), `bounds` what the job may still
    /// spend. The day comes back with its [`DaySource`] set.
    #[tracing::instrument(skip_all, fields(llm.endpoint, llm.model))]
    pub async fn call(
        &self,
        tier: ModelTier,
        brief: &DayBrief,
        mut id: CallId,
        bounds: &Bounds,
        usage: &mut Usage,
    ) -> Result<Day, Interrupt> {
        let policy = &self.policy;
        let mut transient_retries = 0;
        let mut rate_limited = 0;
        // The cap the day needs, raised to the ceiling once if an answer is cut off at it.
        let mut raised = false;
        // Each endpoint counts the prompt as its own request format bills it.
        let prompts: Vec<_> = self
            .endpoints
            .iter()
            .map(|e| e.client.prompt(brief))
            .collect();
        let cap_of = |index: usize, raised: bool| match raised {
            true => self.endpoints[index].client.config().max_completion_tokens,
            false => prompts[index].completion_cap,
        };
        loop {
            if Utc::now() >= bounds.deadline {
                return Err(Interrupt::Failed(LlmError::new(
                    ErrorClass::PermanentForJob,
                    "deadline_exceeded",
                    "the job ran out of time before its menu was complete",
                )));
            }
            let tokens: Vec<u32> = (0..prompts.len())
                .map(|i| prompts[i].tokens + cap_of(i, raised))
                .collect();
            let choice = self.choose(tier, &tokens, bounds).await?;
            let endpoint = &self.endpoints[choice.index];
            let (model, route) = (choice.model.as_str(), choice.route.as_str());
            let span = tracing::Span::current();
            span.record("llm.endpoint", endpoint.name());
            span.record("llm.model", model);
            let prompt = &prompts[choice.index];
            let cap = cap_of(choice.index, raised);
            let Some(call) = unless_stopped(
                &bounds.stop,
                endpoint.client.plan_day(model, prompt, cap, id),
            )
            .await
            else {
                // The request was dropped in flight: the provider may still bill its prompt.
                let prompt_tokens = i64::from(prompt.tokens);
                usage.add(Usage {
                    calls: 1,
                    prompt_tokens,
                    cost_micros: self.cost(model, prompt_tokens, 0),
                    ..Usage::default()
                });
                return Err(Interrupt::Stopped);
            };
            id.retry += 1;
            usage.add(Usage {
                cost_micros: self.cost(
                    model,
                    call.usage.prompt_tokens,
                    call.usage.completion_tokens,
                ),
                ..call.usage
            });
            let was_rate_limited =
                matches!(&call.result, Err(e) if e.class == ErrorClass::RateLimited);
            shared::llm::stats::record(endpoint.budget.redis(), route, was_rate_limited).await;
            endpoint
                .budget
                .reconcile(route, prompt.tokens, call.usage.prompt_tokens as u32)
                .await;
            let error = match call.result {
                Ok(mut day) => {
                    if choice.probing {
                        self.circuit.close(route).await;
                    }
                    day.source = Some(DaySource {
                        endpoint: endpoint.name().to_string(),
                        model: model.to_string(),
                        lane: PriceLane::Normal.as_str().to_string(),
                    });
                    return Ok(day);
                }
                Err(e) => e,
            };
            if error.class == ErrorClass::PermanentForFleet {
                // The endpoint is out for the whole fleet: the call goes to the next one at
                // once, without using an attempt (or the job snoozes if none is left).
                self.circuit.open(route, error.code, &error.message).await;
                tracing::warn!(
                    llm.endpoint = endpoint.name(),
                    error.code = error.code,
                    "endpoint out for the fleet; calls move to the next endpoint"
                );
                continue;
            }
            if choice.probing {
                // The provider answered with something that is not a fleet error: it is back.
                self.circuit.close(route).await;
            }
            if error.code == TRUNCATED
                && !raised
                && cap < endpoint.client.config().max_completion_tokens
            {
                // Cut off at the cap derived for this day: asked again at once with the
                // ceiling, never with the same cap.
                metrics::counter!("llm_completion_cap_raised_total", "model" => route.to_string())
                    .increment(1);
                raised = true;
                continue;
            }
            let server_wait = error.wait.map(|w| w.min(policy.server_wait_cap));
            let wait = match error.class {
                ErrorClass::Transient if transient_retries < policy.max_retries => {
                    transient_retries += 1;
                    metrics::counter!("llm_call_retries_total", "model" => route.to_string(), "code" => error.code)
                        .increment(1);
                    let wait =
                        server_wait.unwrap_or_else(|| policy.backoff.delay(transient_retries));
                    if wait > policy.max_server_wait {
                        // Too long to sleep in a slot: the attempt ends and is retried then.
                        return Err(Interrupt::Failed(error));
                    }
                    wait
                }
                ErrorClass::Transient if self.endpoints.len() > 1 => {
                    // The endpoint failed this call on every retry: an outage, as far as a
                    // fallback is concerned. Its circuit opens (a probe finds it back) and the
                    // call moves to the next endpoint, using no attempt.
                    self.circuit.open(route, "llm_outage", &error.message).await;
                    tracing::warn!(
                        llm.endpoint = endpoint.name(),
                        error.code = error.code,
                        "endpoint failing on every retry; calls move to the next endpoint"
                    );
                    transient_retries = 0;
                    continue;
                }
                ErrorClass::RateLimited => {
                    rate_limited += 1;
                    usage.snoozes += 1;
                    metrics::counter!("llm_snoozes_total", "model" => route.to_string())
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
                    endpoint.budget.pause(route, wait).await;
                    metrics::counter!("llm_rate_limited_total", "model" => route.to_string())
                        .increment(1);
                    if wait > policy.max_server_wait {
                        if self.endpoints.len() > 1 {
                            // The pause sends the next calls elsewhere; this one too.
                            continue;
                        }
                        return Err(snooze_until(Utc::now() + wait, false));
                    }
                    wait
                }
                _ => return Err(Interrupt::Failed(error)),
            };
            tracing::info!(
                llm.endpoint = endpoint.name(),
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

    /// What a normal-lane call to `model` cost, in micro-dollars; counted in
    /// `llm_cost_usd_micros_total` too.
    fn cost(&self, model: &str, prompt: i64, completion: i64) -> i64 {
        let micros = self
            .prices
            .cost_micros(model, PriceLane::Normal, prompt, completion);
        metrics::counter!("llm_cost_usd_micros_total", "model" => model.to_string(), "lane" => PriceLane::Normal.as_str())
            .increment(micros.max(0) as u64);
        micros
    }
}

/// The earlier of `current` and `at` (with whether that wait is an outage's).
fn earliest(
    current: Option<(DateTime<Utc>, bool)>,
    at: DateTime<Utc>,
    outage: bool,
) -> Option<(DateTime<Utc>, bool)> {
    match current {
        Some((t, o)) if t <= at => Some((t, o)),
        _ => Some((at, outage)),
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
