//! The settings a test starts each kind of process with, in one place: the API's, and the
//! worker's (its jobs, queue, fleet budget, circuit and LLM client). Tests change a field or
//! two of these rather than writing settings of their own.

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use secrecy::SecretString;
use shared::batch::BatchLaneMode;
use shared::batch::schedule::{ScheduleConfig, Tz};
use shared::config::{
    AttemptsConfig, DatabaseConfig, JsonMode, LlmConfig, RedisConfig, TokenParam,
};
use shared::llm::budget::BudgetConfig;
use shared::llm::circuit::CircuitConfig;
use shared::queue::QueueConfig;
use telemetry::LogConfig;
use worker::JobConfig;

/// The key the test APIs sign tokens with (tests forge tokens with it; a secret the logs must
/// never show).
pub const JWT_SECRET: &str = "test-secret-0123456789abcdef-0123456789";

/// The key the test workers send the stand-in LLM (a secret the logs must never show).
pub const LLM_API_KEY: &str = "sk-test-7f3a9c1e5b2d8046";

/// An API on `database` and `redis`, bound to a free loopback port, logging warnings. Limits
/// on logins, submissions and waiting jobs are lifted (10,000): a test is one client with many
/// accounts, and the tests of those limits set their own; the weekly scheduler is off (the API
/// reads only its time zone, UTC).
pub fn api_config(database: DatabaseConfig, redis: RedisConfig) -> api::Config {
    api::Config {
        database,
        redis,
        log: LogConfig {
            filter: "warn".into(),
            json: false,
        },
        bind: "127.0.0.1:0".parse().expect("a socket address"),
        jwt_secret: SecretString::from(JWT_SECRET),
        token_ttl_secs: 3600,
        refresh_ttl_secs: 86_400,
        registration_enabled: true,
        body_limit_bytes: 65_536,
        request_timeout: Duration::from_secs(30),
        login_concurrency: NonZeroUsize::new(4).expect("not zero"),
        attempts: AttemptsConfig { max_attempts: 3 },
        login_rate_per_minute: NonZeroU32::new(10_000).expect("not zero"),
        login_failures_per_account: NonZeroU32::new(5).expect("not zero"),
        submit_rate_per_minute: NonZeroU32::new(10_000).expect("not zero"),
        waiting_jobs_per_user: 10_000,
        admin_cookie_secure: false,
        batch: ScheduleConfig {
            cron: "0 0 18 * * Fri".into(),
            timezone: Tz::UTC,
            name: "weekly".into(),
            catch_up_secs: 86_400,
            enabled: false,
            lane: BatchLaneMode::Normal,
        },
    }
}

/// How a test worker runs jobs: 64 at once, three asks per day, retries after 50–200 ms (the
/// production defaults are seconds), Redis's losses reconciled every 500 ms, 2 s of grace at
/// shutdown, and no cap on one person's running jobs (most tests submit from one account; the
/// cap is tested on its own).
pub fn job_config() -> JobConfig {
    JobConfig {
        concurrency: 64,
        day_max_asks: 3,
        retry_base_delay: Duration::from_millis(50),
        retry_max_delay: Duration::from_millis(200),
        lease_secs: 30,
        lease_renew_secs: 10,
        write_retry_secs: 30,
        reconcile_interval: Duration::from_millis(500),
        shutdown_grace_secs: 2,
        deadline_secs: 120,
        max_snoozes: 20,
        max_server_wait: Duration::from_secs(10),
        server_wait_cap: Duration::from_secs(600),
        llm_max_retries: 3,
        llm_retry_base: Duration::from_millis(50),
        llm_retry_max: Duration::from_millis(200),
        user_running_cap: 0,
        user_cap_recheck: Duration::from_millis(200),
        interactive_slots: None,
    }
}

/// A test worker's queue: blocking fetches of 1 s, heartbeats every 500 ms that live 3 s,
/// delayed jobs promoted every 50 ms, dead workers reaped every 500 ms, a failed delivery
/// redelivered after 200 ms.
pub fn queue_config() -> QueueConfig {
    QueueConfig {
        block_timeout: Duration::from_secs(1),
        heartbeat_interval: Duration::from_millis(500),
        heartbeat_ttl: Duration::from_secs(3),
        promote_interval: Duration::from_millis(50),
        reap_interval: Duration::from_millis(500),
        redelivery_delay: Duration::from_millis(200),
        batch_claim_every: 10,
    }
}

/// A test worker's fleet budget: no provider limits (tests of the budget set theirs), a
/// one-minute window.
pub fn budget_config() -> BudgetConfig {
    BudgetConfig {
        rpm: None,
        tpm: None,
        window: Duration::from_secs(60),
        utilization: 0.99,
        max_wait: Duration::from_secs(10),
        interactive_share: 0.3,
        interactive_idle: Duration::from_secs(15),
        batch_lookahead: Duration::from_millis(100),
    }
}

/// A test worker's circuit: the first probe 1 s after it opens, at most 4 s apart after.
pub fn circuit_config() -> CircuitConfig {
    CircuitConfig {
        probe: Duration::from_secs(1),
        probe_max: Duration::from_secs(4),
    }
}

/// A test worker's LLM client for the provider at `base_url` (`http://host:port/v1`), asking
/// for JSON as `json_mode` says, each call given `call_timeout` in all.
pub fn llm_config(base_url: String, json_mode: JsonMode, call_timeout: Duration) -> LlmConfig {
    LlmConfig {
        base_url,
        api_key: SecretString::from(LLM_API_KEY),
        model: "gpt-4o-mini".into(),
        model_premium: None,
        json_mode,
        token_param: TokenParam::MaxCompletionTokens,
        max_completion_tokens: 2500,
        temperature: 0.7,
        connect_timeout: Duration::from_secs(1),
        call_timeout,
    }
}
