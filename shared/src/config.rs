//! Settings every process reads from flags or the environment. Each binary flattens the groups
//! it needs into its own clap command, so `--help` lists every variable with its default.
//! Secrets are `SecretString`: they print as `[REDACTED]` and never reach a log.

use std::time::Duration;

use secrecy::SecretString;

/// Parses a secret from a flag or variable without ever holding it in a printable type.
pub fn secret(value: &str) -> Result<SecretString, String> {
    Ok(SecretString::from(value.to_string()))
}

#[derive(clap::Args, Debug, Clone)]
pub struct DatabaseConfig {
    /// PostgreSQL connection URL.
    #[arg(
        id = "database_url",
        long = "database-url",
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/menus",
        value_parser = secret,
        hide_default_value = false
    )]
    pub url: SecretString,
    /// Connections in this process's pool.
    #[arg(
        long = "database-max-connections",
        env = "DATABASE_MAX_CONNECTIONS",
        default_value_t = 10
    )]
    pub max_connections: u32,
    /// How long a caller waits for a pooled connection before giving up.
    #[arg(
        long = "database-acquire-timeout-ms",
        env = "DATABASE_ACQUIRE_TIMEOUT_MS",
        default_value = "3000",
        value_parser = telemetry::millis
    )]
    pub acquire_timeout: Duration,
}

#[derive(clap::Args, Debug, Clone)]
pub struct RedisConfig {
    /// Redis connection URL; with `REDIS_CLUSTER=true`, the cluster's seed nodes as URLs
    /// separated by commas.
    #[arg(
        id = "redis_url",
        long = "redis-url",
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        value_parser = secret
    )]
    pub url: SecretString,
    /// Prefix of every key and channel this deployment uses, so several can share a Redis.
    #[arg(long = "redis-prefix", env = "REDIS_PREFIX", default_value = "menus")]
    pub prefix: String,
    /// Redis is a Redis Cluster: every key carries the prefix as one hash tag, so the queue's
    /// keys share a slot and its scripts run on one node.
    #[arg(
        long = "redis-cluster",
        env = "REDIS_CLUSTER",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub cluster: bool,
}

/// How structured output is requested from the provider.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonMode {
    /// Structured Outputs: `response_format: json_schema` with `strict: true` (OpenAI, vLLM,
    /// llama.cpp, Ollama, LM Studio).
    JsonSchema,
    /// JSON mode: `response_format: json_object`, the schema described in the prompt.
    JsonObject,
}

/// Which request field caps the answer's length.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenParam {
    /// OpenAI's current name.
    MaxCompletionTokens,
    /// The older name, the only one Ollama reads.
    MaxTokens,
}

#[derive(clap::Args, Debug, Clone)]
pub struct LlmConfig {
    /// Base URL of an OpenAI-compatible API (ends before `/chat/completions`).
    #[arg(
        long = "llm-base-url",
        env = "LLM_BASE_URL",
        default_value = "http://127.0.0.1:8090/v1"
    )]
    pub base_url: String,
    /// API key sent as a bearer token.
    #[arg(long = "llm-api-key", env = "LLM_API_KEY", default_value = "sk-local-standin", value_parser = secret)]
    pub api_key: SecretString,
    /// Model for the standard tier.
    #[arg(long = "llm-model", env = "LLM_MODEL", default_value = "gpt-4o-mini")]
    pub model: String,
    /// Model for the premium tier (defaults to the standard model).
    #[arg(long = "llm-model-premium", env = "LLM_MODEL_PREMIUM")]
    pub model_premium: Option<String>,
    /// How to ask for JSON.
    #[arg(
        long = "llm-json-mode",
        env = "LLM_JSON_MODE",
        value_enum,
        default_value = "json-schema"
    )]
    pub json_mode: JsonMode,
    /// Name of the length cap field.
    #[arg(
        long = "llm-token-param",
        env = "LLM_TOKEN_PARAM",
        value_enum,
        default_value = "max-completion-tokens"
    )]
    pub token_param: TokenParam,
    /// Cap on the answer for one day; a day needs about 1,500 tokens.
    #[arg(
        long = "llm-max-completion-tokens",
        env = "LLM_MAX_COMPLETION_TOKENS",
        default_value_t = 2500
    )]
    pub max_completion_tokens: u32,
    /// Sampling temperature.
    #[arg(
        long = "llm-temperature",
        env = "LLM_TEMPERATURE",
        default_value_t = 0.7
    )]
    pub temperature: f32,
    /// Time allowed to open a connection to the provider.
    #[arg(
        long = "llm-connect-timeout-ms",
        env = "LLM_CONNECT_TIMEOUT_MS",
        default_value = "5000",
        value_parser = telemetry::millis
    )]
    pub connect_timeout: Duration,
    /// Time allowed for one call, from sending to the last byte of the answer.
    #[arg(
        long = "llm-call-timeout-ms",
        env = "LLM_CALL_TIMEOUT_MS",
        default_value = "120000",
        value_parser = telemetry::millis
    )]
    pub call_timeout: Duration,
}

impl LlmConfig {
    pub fn model_for(&self, tier: domain::vocabulary::ModelTier) -> &str {
        match tier {
            domain::vocabulary::ModelTier::Standard => &self.model,
            domain::vocabulary::ModelTier::Premium => {
                self.model_premium.as_deref().unwrap_or(&self.model)
            }
        }
    }
}

/// How many attempts a new job gets, read alike by every process that creates jobs: the API
/// (submitted jobs), and the worker's batch scheduler and `api admin batch` (the weekly batch's).
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct AttemptsConfig {
    /// Attempts a new job gets before it fails.
    #[arg(
        long = "job-max-attempts",
        env = "JOB_MAX_ATTEMPTS",
        default_value_t = 3,
        value_parser = clap::value_parser!(i32).range(1..=100)
    )]
    pub max_attempts: i32,
}
