//! The provider circuit, per model and fleet-wide, in Redis. An error that is the provider's or
//! the account's, not the job's (a rejected key, exhausted quota, a missing model), opens it:
//! no worker calls that model any more, jobs wait in the queue without using attempts, and the
//! API reports itself not ready. When the probe time comes, one worker (whoever takes the probe
//! lock) makes one call; if the provider no longer answers with a fleet error, the circuit
//! closes and the jobs run; otherwise it stays open and the next probe waits twice as long.

use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;

use crate::keyspace::Redis;

#[derive(clap::Args, Debug, Clone)]
pub struct CircuitConfig {
    /// Wait between a circuit opening and the first probe call.
    #[arg(
        long = "llm-circuit-probe-ms",
        env = "LLM_CIRCUIT_PROBE_MS",
        default_value = "30000",
        value_parser = telemetry::millis
    )]
    pub probe: Duration,
    /// Longest wait between probes (the wait doubles after each failed probe).
    #[arg(
        long = "llm-circuit-probe-max-ms",
        env = "LLM_CIRCUIT_PROBE_MAX_MS",
        default_value = "600000",
        value_parser = telemetry::millis
    )]
    pub probe_max: Duration,
}

/// Whether a call to a model may go ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    Closed,
    /// Open: no call before `retry_at` (the next probe, or a look at a running probe's outcome).
    Open {
        retry_at: DateTime<Utc>,
    },
    /// Open, and this caller holds the probe: its call tests the provider.
    Probe,
}

/// An open circuit, as readiness checks report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OpenCircuit {
    pub model: String,
    pub code: String,
    pub message: String,
    pub opened_at: DateTime<Utc>,
    pub probe_at: DateTime<Utc>,
}

/// KEYS: circuit, probe lock. ARGV: probe lock ms. Returns {state, retry_at_ms}: 0 closed,
/// 1 open (ask again at retry_at), 2 this caller probes. While another caller's probe runs,
/// the others ask again every second, so they learn the outcome soon.
static CHECK: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local probe_at = redis.call('HGET', KEYS[1], 'probe_at')
        if not probe_at then return {0, 0} end
        probe_at = tonumber(probe_at)
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        if now < probe_at then return {1, probe_at} end
        if redis.call('SET', KEYS[2], '1', 'NX', 'PX', tonumber(ARGV[1])) then
            return {2, probe_at}
        end
        return {1, now + math.min(redis.call('PTTL', KEYS[2]), 1000)}",
    )
});

/// KEYS: circuit, probe lock, open set. ARGV: model, code, message, first wait ms, max wait ms.
/// Opens the circuit, or after a failed probe keeps it open and doubles the wait. Returns the
/// next probe time (ms) and whether this call changed the circuit (1) or found it open (0).
static OPEN: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local wait = tonumber(ARGV[4])
        local previous = redis.call('HGET', KEYS[1], 'wait')
        if previous then
            local probing = redis.call('EXISTS', KEYS[2]) == 1
            if not probing then return {tonumber(redis.call('HGET', KEYS[1], 'probe_at')), 0} end
            wait = math.min(tonumber(previous) * 2, tonumber(ARGV[5]))
        else
            redis.call('HSET', KEYS[1], 'opened_at', now)
        end
        redis.call('HSET', KEYS[1], 'code', ARGV[2], 'message', ARGV[3], 'wait', wait,
            'probe_at', now + wait)
        redis.call('SADD', KEYS[3], ARGV[1])
        redis.call('DEL', KEYS[2])
        return {now + wait, 1}",
    )
});

fn at_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_else(Utc::now)
}

/// The fleet's circuits. Cheap to clone.
#[derive(Clone)]
pub struct Circuit {
    redis: Redis,
    config: CircuitConfig,
    /// How long one probe may take before another worker may probe instead.
    probe_lock: Duration,
}

impl Circuit {
    pub fn new(redis: Redis, config: CircuitConfig, call_timeout: Duration) -> Circuit {
        Circuit {
            redis,
            config,
            probe_lock: call_timeout + Duration::from_secs(5),
        }
    }

    /// May a call to `model` go ahead? If Redis cannot say, it may: the budget's local share
    /// still bounds the calls, and a fleet error reopens the circuit.
    #[tracing::instrument(skip_all, fields(llm.model = model))]
    pub async fn check(&self, model: &str) -> Gate {
        let keys = self.redis.keys();
        let checked: redis::RedisResult<(i64, i64)> = CHECK
            .key(keys.llm_circuit(model))
            .key(keys.llm_probe(model))
            .arg(self.probe_lock.as_millis() as u64)
            .invoke_async(&mut self.redis.connection())
            .await;
        match checked {
            Ok((1, retry_at)) => Gate::Open {
                retry_at: at_ms(retry_at),
            },
            Ok((2, _)) => Gate::Probe,
            Ok(_) => Gate::Closed,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the circuit; calling anyway");
                Gate::Closed
            }
        }
    }

    /// Opens (or, after a failed probe, keeps open) the circuit for `model`; returns when the
    /// next probe may run.
    #[tracing::instrument(skip_all, fields(llm.model = model, code = code))]
    pub async fn open(&self, model: &str, code: &str, message: &str) -> DateTime<Utc> {
        let keys = self.redis.keys();
        let opened: redis::RedisResult<(i64, i64)> = OPEN
            .key(keys.llm_circuit(model))
            .key(keys.llm_probe(model))
            .key(keys.llm_open_circuits())
            .arg(model)
            .arg(code)
            .arg(message)
            .arg(self.config.probe.as_millis() as u64)
            .arg(self.config.probe_max.as_millis() as u64)
            .invoke_async(&mut self.redis.connection())
            .await;
        match opened {
            Ok((probe_at, changed)) => {
                if changed == 1 {
                    tracing::error!(
                        llm.model = model,
                        error.code = code,
                        "provider circuit open: calls to this model stop until a probe succeeds"
                    );
                    metrics::gauge!("llm_circuit_open", "model" => model.to_string()).set(1.0);
                }
                at_ms(probe_at)
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not open the circuit in redis");
                Utc::now() + self.config.probe
            }
        }
    }

    /// Closes the circuit after a probe got an answer that is not a fleet error.
    #[tracing::instrument(skip_all, fields(llm.model = model))]
    pub async fn close(&self, model: &str) {
        let keys = self.redis.keys();
        let closed: redis::RedisResult<()> = redis::pipe()
            .atomic()
            .del(keys.llm_circuit(model))
            .del(keys.llm_probe(model))
            .srem(keys.llm_open_circuits(), model)
            .query_async(&mut self.redis.connection())
            .await;
        match closed {
            Ok(()) => {
                tracing::info!(llm.model = model, "provider circuit closed: calls resume");
                metrics::gauge!("llm_circuit_open", "model" => model.to_string()).set(0.0);
            }
            Err(e) => tracing::warn!(error = %e, "could not close the circuit in redis"),
        }
    }

    /// Every open circuit, for readiness checks and statistics.
    #[tracing::instrument(skip_all, err)]
    pub async fn open_circuits(redis: &Redis) -> redis::RedisResult<Vec<OpenCircuit>> {
        let keys = redis.keys();
        let mut conn = redis.connection();
        let models: Vec<String> =
            redis::AsyncCommands::smembers(&mut conn, keys.llm_open_circuits()).await?;
        let mut open = Vec::with_capacity(models.len());
        for model in models {
            let fields: std::collections::HashMap<String, String> =
                redis::AsyncCommands::hgetall(&mut conn, keys.llm_circuit(&model)).await?;
            let ms = |k: &str| fields.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
            if fields.is_empty() {
                continue;
            }
            open.push(OpenCircuit {
                code: fields.get("code").cloned().unwrap_or_default(),
                message: fields.get("message").cloned().unwrap_or_default(),
                opened_at: at_ms(ms("opened_at")),
                probe_at: at_ms(ms("probe_at")),
                model,
            });
        }
        Ok(open)
    }
}
