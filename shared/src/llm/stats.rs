//! Per-model LLM call counts by minute, kept in Redis by every worker so the admin statistics
//! can show the fleet's calls and 429s over the last 5 and 60 minutes (Prometheus has the same
//! per process; this is the fleet's sum, readable without a metrics server).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::keyspace::Redis;

/// How long a minute's counts are kept.
const KEEP_SECS: i64 = 2 * 3600;

fn minute_of(unix_secs: i64) -> i64 {
    unix_secs / 60
}

/// Counts one call to `model` (and whether it was rate limited) in the current minute.
#[tracing::instrument(skip_all, fields(llm.model = model, rate_limited = rate_limited))]
pub async fn record(redis: &Redis, model: &str, rate_limited: bool) {
    let key = redis
        .keys()
        .llm_minute(minute_of(chrono::Utc::now().timestamp()));
    let mut pipe = redis::pipe();
    pipe.hincr(&key, format!("{model}|calls"), 1).ignore();
    if rate_limited {
        pipe.hincr(&key, format!("{model}|rate_limited"), 1)
            .ignore();
    }
    pipe.expire(&key, KEEP_SECS).ignore();
    if let Err(e) = pipe.query_async::<()>(&mut redis.connection()).await {
        tracing::debug!(error = %e, "could not count an LLM call");
    }
}

/// One model's calls and 429s over the last 5 and 60 minutes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ModelCalls {
    pub calls_5m: i64,
    pub calls_60m: i64,
    pub rate_limited_5m: i64,
    pub rate_limited_60m: i64,
}

/// Every model's counts, summed over the last hour's minutes.
#[tracing::instrument(skip_all, err)]
pub async fn read(redis: &Redis) -> redis::RedisResult<BTreeMap<String, ModelCalls>> {
    let now = minute_of(chrono::Utc::now().timestamp());
    let mut pipe = redis::pipe();
    for minute in (now - 59)..=now {
        pipe.hgetall(redis.keys().llm_minute(minute));
    }
    let minutes: Vec<BTreeMap<String, i64>> = pipe.query_async(&mut redis.connection()).await?;
    let mut models: BTreeMap<String, ModelCalls> = BTreeMap::new();
    for (age, counts) in minutes.iter().rev().enumerate() {
        for (field, n) in counts {
            let Some((model, what)) = field.rsplit_once('|') else {
                continue;
            };
            let m = models.entry(model.to_string()).or_default();
            let recent = age < 5;
            match what {
                "calls" => {
                    m.calls_60m += n;
                    if recent {
                        m.calls_5m += n;
                    }
                }
                "rate_limited" => {
                    m.rate_limited_60m += n;
                    if recent {
                        m.rate_limited_5m += n;
                    }
                }
                _ => {}
            }
        }
    }
    Ok(models)
}
