//! Where calls may go: an ordered list of OpenAI-compatible endpoints (a primary and its
//! fallbacks), each with its own base URL, key, models, request options and RPM/TPM budget.
//! The worker tries them in order (see `worker::call`); each has its own circuit and fleet
//! budget in Redis, named by its [`route`](EndpointSettings::route).
//!
//! `LLM_ENDPOINTS` is a JSON list; without it the single-endpoint settings (`LLM_BASE_URL`,
//! `LLM_API_KEY`, `LLM_MODEL`, …, `LLM_RPM`, `LLM_TPM`) are one endpoint named `default`, whose
//! Redis keys and metric labels are those of before the list existed. Keys never appear in the
//! list itself: each entry names the environment variable holding its key (`api_key_env`), so
//! the setting can be printed and logged.

use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use domain::vocabulary::ModelTier;

use super::budget::BudgetConfig;
use super::price::Prices;
use crate::config::{JsonMode, LlmConfig, TokenParam};
use crate::keyspace::Redis;

/// The name of the endpoint the single-endpoint settings describe.
pub const DEFAULT_ENDPOINT: &str = "default";

/// How calls are spread over endpoints, and what tokens cost.
#[derive(clap::Args, Debug, Clone)]
pub struct EndpointsConfig {
    /// The endpoints calls may go to, in order of preference: a JSON list of
    /// `{"name", "base_url", "api_key_env", "model", "model_premium"?, "json_mode"?,
    /// "token_param"?, "rpm"?, "tpm"?}` (`json_mode`: `json-schema` or `json-object`;
    /// `token_param`: `max-completion-tokens` or `max-tokens`; both default to the `LLM_*`
    /// settings; `rpm`/`tpm` unset: unlimited). Unset: the single endpoint of the `LLM_*`
    /// settings, named `default`.
    #[arg(long = "llm-endpoints", env = "LLM_ENDPOINTS")]
    pub endpoints: Option<EndpointList>,
    /// Longest wait for an endpoint's budget before a call goes to the next endpoint instead
    /// (the last endpoint waits up to `LLM_MAX_CAPACITY_WAIT_MS`, as a single endpoint does).
    #[arg(
        long = "llm-fallback-wait-ms",
        env = "LLM_FALLBACK_WAIT_MS",
        default_value = "2000",
        value_parser = telemetry::millis
    )]
    pub fallback_wait: Duration,
    /// Prices per model and lane (see `shared::llm::price`): a JSON object of
    /// `{"model": {"input": 0.15, "output": 0.6, "batch_input"?: …, "batch_output"?: …}}`, US
    /// dollars per million tokens, added to the defaults (gpt-4o-mini, gpt-4o at OpenAI's list
    /// prices; the batch lane at half).
    #[arg(long = "llm-prices", env = "LLM_PRICES", default_value = "{}")]
    pub prices: Prices,
}

impl EndpointsConfig {
    /// One endpoint, the single-endpoint settings', and the default prices.
    pub fn single() -> EndpointsConfig {
        EndpointsConfig {
            endpoints: None,
            fallback_wait: Duration::from_secs(2),
            prices: Prices::default(),
        }
    }

    /// Every endpoint's full settings, in order: an entry takes what it does not say (timeouts,
    /// temperature, the completion ceiling, the budget's window and shares) from `llm` and
    /// `budget`.
    pub fn resolve(&self, llm: &LlmConfig, budget: &BudgetConfig) -> Vec<EndpointSettings> {
        let Some(list) = &self.endpoints else {
            return vec![EndpointSettings {
                name: DEFAULT_ENDPOINT.to_string(),
                llm: llm.clone(),
                budget: budget.clone(),
            }];
        };
        list.0
            .iter()
            .map(|entry| EndpointSettings {
                name: entry.name.clone(),
                llm: LlmConfig {
                    base_url: entry.base_url.clone(),
                    api_key: entry.api_key.clone(),
                    model: entry.model.clone(),
                    model_premium: entry.model_premium.clone(),
                    json_mode: entry.json_mode.unwrap_or(llm.json_mode),
                    token_param: entry.token_param.unwrap_or(llm.token_param),
                    ..llm.clone()
                },
                budget: BudgetConfig {
                    rpm: entry.rpm,
                    tpm: entry.tpm,
                    ..budget.clone()
                },
            })
            .collect()
    }
}

/// One endpoint as the worker uses it.
#[derive(Debug, Clone)]
pub struct EndpointSettings {
    pub name: String,
    pub llm: LlmConfig,
    pub budget: BudgetConfig,
}

impl EndpointSettings {
    /// The name of `model` at this endpoint in Redis (its circuit and budget) and in the fleet's
    /// statistics: `{endpoint}/{model}`, or just the model for the `default` endpoint.
    pub fn route(&self, model: &str) -> String {
        route(&self.name, model)
    }
}

/// See [`EndpointSettings::route`].
pub fn route(endpoint: &str, model: &str) -> String {
    if endpoint == DEFAULT_ENDPOINT {
        model.to_string()
    } else {
        format!("{endpoint}/{model}")
    }
}

/// Each model tier's routes, in the order calls try them: what the workers publish so that
/// readiness can tell an endpoint that is out while another serves from an outage.
pub fn routes(endpoints: &[EndpointSettings]) -> Vec<Vec<String>> {
    [ModelTier::Standard, ModelTier::Premium]
        .into_iter()
        .map(|tier| {
            endpoints
                .iter()
                .map(|e| e.route(e.llm.model_for(tier)))
                .collect()
        })
        .collect()
}

/// Publishes [`routes`] for readiness checks (best effort: readiness then counts any open
/// circuit as an outage).
#[tracing::instrument(skip_all)]
pub async fn publish_routes(redis: &Redis, endpoints: &[EndpointSettings]) {
    let text = serde_json::to_string(&routes(endpoints)).unwrap_or_default();
    let set: redis::RedisResult<()> =
        redis::AsyncCommands::set(&mut redis.connection(), redis.keys().llm_routes(), text).await;
    if let Err(e) = set {
        tracing::debug!(error = %e, "could not publish the endpoints' routes");
    }
}

/// The LLM's state for readiness given the circuits open now (`open`, by route) and the
/// routes the workers published (`None`: not known): `ok` when none is open; `fallback` when
/// some are but every tier still has an endpoint to call; `open` when a tier has none (or,
/// routes unknown, any circuit is open).
pub fn readiness(open: &[String], routes: Option<&[Vec<String>]>) -> &'static str {
    if open.is_empty() {
        return "ok";
    }
    match routes {
        Some(tiers) if !tiers.is_empty() => {
            let served = tiers
                .iter()
                .all(|tier| tier.iter().any(|route| !open.contains(route)));
            if served { "fallback" } else { "open" }
        }
        _ => "open",
    }
}

/// Reads what [`publish_routes`] wrote; `None` when nothing (or nothing readable) is there.
pub async fn published_routes(redis: &Redis) -> redis::RedisResult<Option<Vec<Vec<String>>>> {
    let text: Option<String> =
        redis::AsyncCommands::get(&mut redis.connection(), redis.keys().llm_routes()).await?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
}

/// `LLM_ENDPOINTS`, parsed: at least one entry, names unique.
#[derive(Debug, Clone)]
pub struct EndpointList(pub Vec<EndpointEntry>);

/// One entry of `LLM_ENDPOINTS`, its key read from the variable it names.
#[derive(Debug, Clone)]
pub struct EndpointEntry {
    pub name: String,
    pub base_url: String,
    pub api_key: SecretString,
    pub model: String,
    pub model_premium: Option<String>,
    pub json_mode: Option<JsonMode>,
    pub token_param: Option<TokenParam>,
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
}

/// An entry as written in the setting.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WrittenEntry {
    name: String,
    base_url: String,
    api_key_env: String,
    model: String,
    #[serde(default)]
    model_premium: Option<String>,
    #[serde(default)]
    json_mode: Option<String>,
    #[serde(default)]
    token_param: Option<String>,
    #[serde(default)]
    rpm: Option<u32>,
    #[serde(default)]
    tpm: Option<u32>,
}

impl EndpointList {
    /// Reads the list, taking each key from the environment through `env` (the process's
    /// environment in [`FromStr`]).
    pub fn parse_with(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<EndpointList, String> {
        let written: Vec<WrittenEntry> = serde_json::from_str(text)
            .map_err(|e| format!("LLM_ENDPOINTS must be a JSON list of endpoints: {e}"))?;
        if written.is_empty() {
            return Err("LLM_ENDPOINTS must name at least one endpoint".into());
        }
        let mut entries: Vec<EndpointEntry> = Vec::with_capacity(written.len());
        for w in written {
            let valid_name = !w.name.is_empty()
                && w.name.len() <= 32
                && w.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid_name {
                return Err(format!(
                    "LLM_ENDPOINTS: {:?} is not a name (1 to 32 letters, digits, - or _)",
                    w.name
                ));
            }
            if entries.iter().any(|e| e.name == w.name) {
                return Err(format!("LLM_ENDPOINTS names {:?} twice", w.name));
            }
            let key = env(&w.api_key_env)
                .filter(|k| !k.is_empty())
                .ok_or_else(|| {
                    format!(
                        "LLM_ENDPOINTS: endpoint {:?} reads its key from {}, which is not set",
                        w.name, w.api_key_env
                    )
                })?;
            let json_mode = w
                .json_mode
                .map(|v| {
                    <JsonMode as clap::ValueEnum>::from_str(&v, false)
                        .map_err(|_| format!("LLM_ENDPOINTS: json_mode {v:?} is not known"))
                })
                .transpose()?;
            let token_param = w
                .token_param
                .map(|v| {
                    <TokenParam as clap::ValueEnum>::from_str(&v, false)
                        .map_err(|_| format!("LLM_ENDPOINTS: token_param {v:?} is not known"))
                })
                .transpose()?;
            entries.push(EndpointEntry {
                name: w.name,
                base_url: w.base_url,
                api_key: SecretString::from(key),
                model: w.model,
                model_premium: w.model_premium,
                json_mode,
                token_param,
                rpm: w.rpm,
                tpm: w.tpm,
            });
        }
        Ok(EndpointList(entries))
    }
}

impl FromStr for EndpointList {
    type Err = String;

    fn from_str(text: &str) -> Result<EndpointList, String> {
        EndpointList::parse_with(text, |name| std::env::var(name).ok())
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PRIMARY_KEY" => Some("sk-primary".into()),
            "SECONDARY_KEY" => Some("sk-secondary".into()),
            _ => None,
        }
    }

    const TWO: &str = r#"[
        {"name": "primary", "base_url": "http://127.0.0.1:1/v1", "api_key_env": "PRIMARY_KEY",
         "model": "gpt-4o-mini", "rpm": 500, "tpm": 200000},
        {"name": "secondary", "base_url": "http://127.0.0.1:2/v1", "api_key_env": "SECONDARY_KEY",
         "model": "llama-3.1-8b", "json_mode": "json-object", "token_param": "max-tokens"}
    ]"#;

    #[test]
    fn a_list_reads_its_keys_from_the_variables_it_names() {
        let list = EndpointList::parse_with(TWO, env).unwrap();
        assert_eq!(list.0.len(), 2);
        assert_eq!(list.0[0].api_key.expose_secret(), "sk-primary");
        assert_eq!(list.0[1].json_mode, Some(JsonMode::JsonObject));
        assert_eq!(list.0[1].token_param, Some(TokenParam::MaxTokens));
        assert_eq!(list.0[0].rpm, Some(500));
        // The key is never in what the list prints.
        assert!(!format!("{list:?}").contains("sk-primary"));
    }

    #[test]
    fn a_bad_list_is_refused_with_the_reason() {
        let refused = |text: &str| EndpointList::parse_with(text, env).unwrap_err();
        assert!(refused("[]").contains("at least one"));
        assert!(refused("{}").contains("JSON list"));
        let unset = r#"[{"name": "a", "base_url": "u", "api_key_env": "NOPE", "model": "m"}]"#;
        assert!(refused(unset).contains("NOPE, which is not set"));
        let twice = r#"[{"name": "a", "base_url": "u", "api_key_env": "PRIMARY_KEY", "model": "m"},
                        {"name": "a", "base_url": "v", "api_key_env": "PRIMARY_KEY", "model": "m"}]"#;
        assert!(refused(twice).contains("twice"));
        let bad_name =
            r#"[{"name": "a/b", "base_url": "u", "api_key_env": "PRIMARY_KEY", "model": "m"}]"#;
        assert!(refused(bad_name).contains("not a name"));
        let key_inline = r#"[{"name": "a", "base_url": "u", "api_key": "sk-x", "model": "m"}]"#;
        let inline = refused(key_inline);
        assert!(
            inline.contains("api_key") && !inline.contains("sk-x"),
            "{inline}"
        );
        let bad_mode = r#"[{"name": "a", "base_url": "u", "api_key_env": "PRIMARY_KEY", "model": "m", "json_mode": "xml"}]"#;
        assert!(refused(bad_mode).contains("json_mode"));
    }

    #[test]
    fn readiness_is_lost_only_when_a_tier_has_no_endpoint_left() {
        let tiers = vec![
            vec!["primary/a".to_string(), "secondary/b".to_string()],
            vec!["primary/c".to_string(), "secondary/b".to_string()],
        ];
        let open = |routes: &[&str]| routes.iter().map(|r| r.to_string()).collect::<Vec<_>>();
        assert_eq!(readiness(&[], Some(&tiers)), "ok");
        assert_eq!(readiness(&open(&["primary/a"]), Some(&tiers)), "fallback");
        assert_eq!(
            readiness(&open(&["primary/a", "primary/c"]), Some(&tiers)),
            "fallback"
        );
        assert_eq!(
            readiness(&open(&["primary/a", "secondary/b"]), Some(&tiers)),
            "open"
        );
        // Routes unknown (no worker published them yet): any open circuit is an outage.
        assert_eq!(readiness(&open(&["primary/a"]), None), "open");
    }

    #[test]
    fn the_default_endpoint_keeps_the_model_as_its_route() {
        assert_eq!(route(DEFAULT_ENDPOINT, "gpt-4o-mini"), "gpt-4o-mini");
        assert_eq!(route("secondary", "gpt-4o-mini"), "secondary/gpt-4o-mini");
    }
}
