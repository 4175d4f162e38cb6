//! The fleet's LLM budget: requests and tokens per minute per model, shared by every worker
//! process through Redis, so that the provider's limit is used fully and our own fleet never
//! causes a 429.
//!
//! Each call reserves a slot with one Lua script: a GCRA without burst (the virtual-scheduling
//! form), so successive calls are spaced evenly and any window of the provider's length holds
//! at most the budget. A caller learns its slot at once and sleeps until it: no polling, no herd,
//! first come first served. Two margins keep the provider's sliding window safe: `utilization`
//! (below 1, it absorbs the jitter between our slot and the call's arrival) and the cost of one
//! call (a call's tokens arrive at once, not spread out). A 429 sets a fleet-wide pause that
//! pushes every slot past it.
//!
//! Lanes: a batch call (the weekly batch: nobody is waiting for it) reserves only a slot at
//! most `LLM_BATCH_LOOKAHEAD_MS` away, so it never books the budget far ahead of a person's
//! call; and while interactive calls were made in the last `LLM_INTERACTIVE_IDLE_MS`, batch
//! calls are also spaced on their own track at `1 − LLM_INTERACTIVE_SHARE` of the budget, which
//! keeps that share free for people. With no interactive call for that long the batch has the
//! whole budget back. Batch callers of one process take turns asking (a FIFO gate), so a batch
//! waiting for room is one caller per process asking again, not a herd.
//!
//! When Redis cannot be reached, each process falls back to its share of the budget (the budget
//! divided by the workers it last knew of), paced locally by `governor`, and says so in its logs
//! and metrics; it returns to the shared budget as soon as Redis answers again.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::Mutex as AsyncMutex;

use crate::keyspace::Redis;
use crate::queue::Lane;

#[derive(clap::Args, Debug, Clone)]
pub struct BudgetConfig {
    /// Requests per minute the provider allows for each model; unlimited when unset.
    #[arg(long = "llm-rpm", env = "LLM_RPM")]
    pub rpm: Option<u32>,
    /// Tokens per minute the provider allows for each model (prompt plus the completion cap, as
    /// the provider reserves them); unlimited when unset.
    #[arg(long = "llm-tpm", env = "LLM_TPM")]
    pub tpm: Option<u32>,
    /// The provider's rate-limit window.
    #[arg(
        long = "llm-budget-window-ms",
        env = "LLM_BUDGET_WINDOW_MS",
        default_value = "60000",
        value_parser = telemetry::millis
    )]
    pub window: Duration,
    /// Share of the budget used; the rest absorbs the delay between a slot and the call's
    /// arrival (1 % of a minute is 0.6 s).
    #[arg(
        long = "llm-budget-utilization",
        env = "LLM_BUDGET_UTILIZATION",
        default_value_t = 0.99
    )]
    pub utilization: f64,
    /// Longest wait for a slot that a job sleeps through; a later slot is not reserved and the
    /// job is put back in the queue until then instead.
    #[arg(
        long = "llm-max-capacity-wait-ms",
        env = "LLM_MAX_CAPACITY_WAIT_MS",
        default_value = "60000",
        value_parser = telemetry::millis
    )]
    pub max_wait: Duration,
    /// Share of the budget kept for interactive calls while people are using the service and
    /// a batch runs (0 to 0.9).
    #[arg(
        long = "llm-interactive-share",
        env = "LLM_INTERACTIVE_SHARE",
        default_value_t = 0.3
    )]
    pub interactive_share: f64,
    /// How long after the last interactive call the batch may use the whole budget again.
    #[arg(
        long = "llm-interactive-idle-ms",
        env = "LLM_INTERACTIVE_IDLE_MS",
        default_value = "15000",
        value_parser = telemetry::millis
    )]
    pub interactive_idle: Duration,
    /// Furthest ahead a batch call reserves its slot; an interactive call waits at most this
    /// long behind the batch's reservations.
    #[arg(
        long = "llm-batch-lookahead-ms",
        env = "LLM_BATCH_LOOKAHEAD_MS",
        default_value = "100",
        value_parser = telemetry::millis
    )]
    pub batch_lookahead: Duration,
}

impl BudgetConfig {
    /// Settings out of range.
    pub fn check(&self) -> Result<(), String> {
        if !(0.0..=0.9).contains(&self.interactive_share) {
            return Err(format!(
                "LLM_INTERACTIVE_SHARE ({}) must be between 0 and 0.9",
                self.interactive_share
            ));
        }
        if !(self.utilization > 0.0 && self.utilization <= 1.0) {
            return Err(format!(
                "LLM_BUDGET_UTILIZATION ({}) must be above 0 and at most 1",
                self.utilization
            ));
        }
        Ok(())
    }

    /// Microseconds of the window one unit of `limit` (a request, a token) takes, for calls
    /// costing `cost` units: in any window at most `utilization × limit − cost` units are
    /// reserved before a call, and the call adds its `cost`.
    fn spacing_us(&self, limit: Option<u32>, cost: u32) -> f64 {
        match limit {
            None => 0.0,
            Some(limit) => {
                let usable = (f64::from(limit) * self.utilization - f64::from(cost)).max(1.0);
                self.window.as_micros() as f64 / usable
            }
        }
    }
}

/// What a call got from the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go now; the slot was this long away (and has been waited for).
    Go { waited: Duration },
    /// No slot within the longest wait: try again after this long (nothing was reserved).
    Later { after: Duration },
}

/// Times are whole microseconds, written with `%.0f`: Lua's `tostring` keeps 14 significant
/// digits, which would round them to 100 µs (and pace calls up to 50 µs early).
///
/// Reserves the next slot of both budgets for a call of a lane.
/// KEYS: requests TAT, tokens TAT, pause, workers, batch TAT, interactive-active flag.
/// ARGV: µs per request, µs per token, tokens, horizon µs, TAT lifetime ms, lane code, batch
/// spacing factor (1 / (1 − interactive share)), interactive idle ms.
/// An interactive call marks interactive work active. A batch call while it is active also
/// waits for the batch TAT, and moves it by its cost times the factor.
/// Returns {reserved (1/0), µs until the slot, live workers}.
static RESERVE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
        local per_request, per_token = tonumber(ARGV[1]), tonumber(ARGV[2])
        local tokens, horizon, life = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
        local batch, factor = ARGV[6] == 'b', tonumber(ARGV[7])
        local slot = now
        local pause = redis.call('PTTL', KEYS[3])
        if pause > 0 then slot = now + pause * 1000 end
        local req_tat = tonumber(redis.call('GET', KEYS[1]) or '0')
        local tok_tat = tonumber(redis.call('GET', KEYS[2]) or '0')
        if per_request > 0 and req_tat > slot then slot = req_tat end
        if per_token > 0 and tok_tat > slot then slot = tok_tat end
        local shared = false
        if batch then
            shared = redis.call('EXISTS', KEYS[6]) == 1
            if shared then
                local batch_tat = tonumber(redis.call('GET', KEYS[5]) or '0')
                if batch_tat > slot then slot = batch_tat end
            end
        else
            redis.call('SET', KEYS[6], '1', 'PX', tonumber(ARGV[8]))
        end
        local workers = redis.call('SCARD', KEYS[4])
        if slot - now > horizon then return {0, slot - now, workers} end
        if per_request > 0 then
            redis.call('SET', KEYS[1], string.format('%.0f', slot + per_request), 'PX', life)
        end
        if per_token > 0 then
            redis.call('SET', KEYS[2], string.format('%.0f', slot + math.floor(tokens * per_token)), 'PX', life)
        end
        if shared then
            local cost = math.max(per_request, tokens * per_token) * factor
            redis.call('SET', KEYS[5], string.format('%.0f', slot + math.floor(cost)), 'PX', life)
        end
        return {1, slot - now, workers}",
    )
});

/// Moves the tokens TAT by ARGV[1] µs (positive: the call cost more than reserved).
static ADJUST: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local tat = redis.call('GET', KEYS[1])
        if not tat then return 0 end
        redis.call('SET', KEYS[1], string.format('%.0f', tonumber(tat) + tonumber(ARGV[1])), 'KEEPTTL')
        return 1",
    )
});

/// A process's local share of the budget, used while Redis is unreachable.
struct Fallback {
    requests: Option<DefaultDirectRateLimiter>,
    tokens: Option<DefaultDirectRateLimiter>,
    /// The tokens limiter's burst: the cost of the call that created it.
    token_burst: NonZeroU32,
}

/// The fleet's budget as one worker process sees it. Cheap to clone.
#[derive(Clone)]
pub struct Budget {
    redis: Redis,
    config: BudgetConfig,
    /// Worker processes sharing the budget, as last read from Redis (for the fallback share).
    workers: Arc<Mutex<u64>>,
    fallback: Arc<AsyncMutex<HashMap<String, Arc<Fallback>>>>,
    /// Whether the last reservation went through Redis, to log each switch once.
    shared: Arc<Mutex<bool>>,
    /// Batch callers of this process ask the shared budget one at a time, in turn.
    batch_gate: Arc<AsyncMutex<()>>,
}

impl Budget {
    pub fn new(redis: Redis, config: BudgetConfig) -> Budget {
        Budget {
            redis,
            config,
            workers: Arc::new(Mutex::new(1)),
            fallback: Arc::default(),
            shared: Arc::new(Mutex::new(true)),
            batch_gate: Arc::default(),
        }
    }

    pub fn config(&self) -> &BudgetConfig {
        &self.config
    }

    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    /// Tells the admin statistics what budget the fleet runs with.
    #[tracing::instrument(skip_all)]
    pub async fn publish_limits(&self) {
        let limits = serde_json::json!({
            "rpm": self.config.rpm,
            "tpm": self.config.tpm,
            "window_ms": self.config.window.as_millis() as u64,
        });
        let set: redis::RedisResult<()> = redis::AsyncCommands::set(
            &mut self.redis.connection(),
            self.redis.keys().llm_limits(),
            limits.to_string(),
        )
        .await;
        if let Err(e) = set {
            tracing::debug!(error = %e, "could not publish the budget's limits");
        }
    }

    fn is_limited(&self) -> bool {
        self.config.rpm.is_some() || self.config.tpm.is_some()
    }

    /// Waits for a slot for one call of `lane` to `model` costing `tokens`, unless the slot is
    /// further away than the longest wait (`LLM_MAX_CAPACITY_WAIT_MS`).
    pub async fn admit(&self, model: &str, tokens: u32, lane: Lane) -> Admission {
        self.admit_within(model, tokens, lane, self.config.max_wait)
            .await
    }

    /// [`admit`](Budget::admit) with another longest wait: a caller with somewhere else to go
    /// (a fallback endpoint) waits only `longest` for this budget.
    #[tracing::instrument(skip_all, fields(llm.model = model, tokens = tokens, lane = ?lane))]
    pub async fn admit_within(
        &self,
        model: &str,
        tokens: u32,
        lane: Lane,
        longest: Duration,
    ) -> Admission {
        if !self.is_limited() {
            return self.admit_when_unpaused(model, longest).await;
        }
        if lane == Lane::Batch {
            return self.admit_batch(model, tokens, longest).await;
        }
        let horizon = longest;
        match self.reserve(model, tokens, lane, horizon).await {
            Ok((true, wait)) => {
                self.note_shared(true, model);
                tokio::time::sleep(wait).await;
                Admission::Go { waited: wait }
            }
            Ok((false, wait)) => {
                self.note_shared(true, model);
                Admission::Later { after: wait }
            }
            Err(e) => self.admit_locally_after(e, model, tokens).await,
        }
    }

    /// A batch call: through the process's gate, reserving only a slot within the lookahead;
    /// the gate's holder sleeps until the budget has room that near (or gives up past the
    /// longest wait).
    async fn admit_batch(&self, model: &str, tokens: u32, longest: Duration) -> Admission {
        let started = Instant::now();
        let lookahead = self.config.batch_lookahead;
        let gate = self.batch_gate.lock().await;
        loop {
            match self.reserve(model, tokens, Lane::Batch, lookahead).await {
                Ok((true, wait)) => {
                    self.note_shared(true, model);
                    drop(gate);
                    tokio::time::sleep(wait).await;
                    return Admission::Go {
                        waited: started.elapsed(),
                    };
                }
                Ok((false, wait)) => {
                    self.note_shared(true, model);
                    let until_room = wait.saturating_sub(lookahead);
                    if started.elapsed() + until_room > longest {
                        return Admission::Later { after: wait };
                    }
                    tokio::time::sleep(until_room.max(Duration::from_millis(1))).await;
                }
                Err(e) => {
                    drop(gate);
                    return self.admit_locally_after(e, model, tokens).await;
                }
            }
        }
    }

    async fn admit_locally_after(
        &self,
        e: redis::RedisError,
        model: &str,
        tokens: u32,
    ) -> Admission {
        if self.note_shared(false, model) {
            tracing::warn!(error = %e, llm.model = model, "redis unreachable: using this process's share of the LLM budget");
        }
        self.admit_locally(model, tokens).await
    }

    /// Without limits there is nothing to reserve, but a fleet-wide pause still holds.
    async fn admit_when_unpaused(&self, model: &str, longest: Duration) -> Admission {
        let pause: redis::RedisResult<i64> = redis::cmd("PTTL")
            .arg(self.redis.keys().llm_pause(model))
            .query_async(&mut self.redis.connection())
            .await;
        let wait = Duration::from_millis(pause.unwrap_or(0).max(0) as u64);
        if wait > longest {
            return Admission::Later { after: wait };
        }
        tokio::time::sleep(wait).await;
        Admission::Go { waited: wait }
    }

    async fn reserve(
        &self,
        model: &str,
        tokens: u32,
        lane: Lane,
        horizon: Duration,
    ) -> redis::RedisResult<(bool, Duration)> {
        let keys = self.redis.keys();
        let life_ms = (self.config.window.as_millis() as u64)
            .saturating_mul(2)
            .max(1000);
        let factor = 1.0 / (1.0 - self.config.interactive_share.clamp(0.0, 0.9));
        let (reserved, wait_us, workers): (i64, i64, u64) = RESERVE
            .key(keys.llm_budget(model, "requests"))
            .key(keys.llm_budget(model, "tokens"))
            .key(keys.llm_pause(model))
            .key(keys.workers())
            .key(keys.llm_budget(model, "batch"))
            .key(keys.llm_interactive_active(model))
            .arg(self.config.spacing_us(self.config.rpm, 1))
            .arg(self.config.spacing_us(self.config.tpm, tokens))
            .arg(tokens)
            .arg(horizon.as_micros() as u64)
            .arg(life_ms)
            .arg(lane.code())
            .arg(factor)
            .arg((self.config.interactive_idle.as_millis() as u64).max(1))
            .invoke_async(&mut self.redis.connection())
            .await?;
        *self.workers.lock().unwrap_or_else(|e| e.into_inner()) = workers.max(1);
        Ok((reserved == 1, Duration::from_micros(wait_us.max(0) as u64)))
    }

    /// Paces calls at this process's share while Redis is away.
    async fn admit_locally(&self, model: &str, tokens: u32) -> Admission {
        let fallback = self.fallback_for(model, tokens).await;
        let started = Instant::now();
        if let Some(requests) = &fallback.requests {
            requests.until_ready().await;
        }
        if let Some(limiter) = &fallback.tokens {
            // The limiter's burst is one typical call; a larger call takes its tokens in
            // burst-sized parts, so it waits for all of them and is paced like any other.
            let burst = fallback.token_burst.get();
            let mut left = tokens.max(1);
            while left > 0 {
                let part = left.min(burst);
                let n = NonZeroU32::new(part).unwrap_or(NonZeroU32::MIN);
                if limiter.until_n_ready(n).await.is_err() {
                    // Only when a part exceeds the burst, which it never does.
                    break;
                }
                left -= part;
            }
        }
        Admission::Go {
            waited: started.elapsed(),
        }
    }

    async fn fallback_for(&self, model: &str, tokens: u32) -> Arc<Fallback> {
        let mut all = self.fallback.lock().await;
        if let Some(f) = all.get(model) {
            return f.clone();
        }
        let workers = *self.workers.lock().unwrap_or_else(|e| e.into_inner());
        let share = |limit: Option<u32>, cost: u32| -> Option<DefaultDirectRateLimiter> {
            let spacing = self.config.spacing_us(limit, cost);
            if spacing <= 0.0 {
                return None;
            }
            let period = Duration::from_secs_f64(spacing * workers as f64 / 1e6);
            let burst = NonZeroU32::new(cost.max(1)).unwrap_or(NonZeroU32::MIN);
            Quota::with_period(period).map(|q| RateLimiter::direct(q.allow_burst(burst)))
        };
        let fallback = Arc::new(Fallback {
            requests: share(self.config.rpm, 1),
            tokens: share(self.config.tpm, tokens),
            token_burst: NonZeroU32::new(tokens.max(1)).unwrap_or(NonZeroU32::MIN),
        });
        all.insert(model.to_string(), fallback.clone());
        fallback
    }

    /// Records which way reservations go; true when that changed (so it is logged once).
    fn note_shared(&self, shared: bool, model: &str) -> bool {
        let mut current = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        let changed = *current != shared;
        *current = shared;
        metrics::gauge!("llm_budget_local_fallback", "model" => model.to_string()).set(if shared {
            0.0
        } else {
            1.0
        });
        if changed && shared {
            tracing::info!(
                llm.model = model,
                "redis is back: using the fleet's shared LLM budget"
            );
        }
        changed
    }

    /// Whether the last reservation used this process's local share.
    pub fn is_local(&self) -> bool {
        !*self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Corrects the token reservation once the provider reports the prompt's real size.
    #[tracing::instrument(skip_all, fields(llm.model = model, estimated_prompt = estimated_prompt, actual_prompt = actual_prompt))]
    pub async fn reconcile(&self, model: &str, estimated_prompt: u32, actual_prompt: u32) {
        if self.config.tpm.is_none() || actual_prompt == 0 || actual_prompt == estimated_prompt {
            return;
        }
        let delta = (f64::from(actual_prompt) - f64::from(estimated_prompt))
            * self.config.spacing_us(self.config.tpm, estimated_prompt);
        let adjusted: redis::RedisResult<i64> = ADJUST
            .key(self.redis.keys().llm_budget(model, "tokens"))
            .arg(delta as i64)
            .invoke_async(&mut self.redis.connection())
            .await;
        if let Err(e) = adjusted {
            tracing::debug!(error = %e, "could not reconcile the token budget");
        }
    }

    /// Stops the whole fleet's calls to `model` for `wait` (after a 429). A pause already longer
    /// is kept.
    #[tracing::instrument(skip_all, fields(llm.model = model, wait_ms = wait.as_millis() as u64))]
    pub async fn pause(&self, model: &str, wait: Duration) {
        let paused: redis::RedisResult<()> = PAUSE
            .key(self.redis.keys().llm_pause(model))
            .arg(wait.as_millis().max(1) as u64)
            .invoke_async(&mut self.redis.connection())
            .await;
        if let Err(e) = paused {
            tracing::warn!(error = %e, "could not pause the fleet's calls");
        }
    }
}

/// Sets the pause to ARGV[1] ms unless it already lasts longer. KEYS: pause.
static PAUSE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
            redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
        end
        return 1",
    )
});

#[cfg(test)]
mod tests {
    use super::*;

    fn config(rpm: Option<u32>, tpm: Option<u32>) -> BudgetConfig {
        BudgetConfig {
            rpm,
            tpm,
            window: Duration::from_secs(60),
            utilization: 0.99,
            max_wait: Duration::from_secs(60),
            interactive_share: 0.3,
            interactive_idle: Duration::from_secs(15),
            batch_lookahead: Duration::from_millis(100),
        }
    }

    #[test]
    fn spacing_leaves_room_for_one_call_and_the_utilization_margin() {
        let c = config(Some(600), Some(200_000));
        // 600 × 0.99 − 1 = 593 requests a minute.
        assert!((c.spacing_us(c.rpm, 1) - 60e6 / 593.0).abs() < 1e-6);
        // 200,000 × 0.99 − 3,000 tokens a minute.
        assert!((c.spacing_us(c.tpm, 3_000) - 60e6 / 195_000.0).abs() < 1e-6);
        assert_eq!(c.spacing_us(None, 1), 0.0);
    }
}
