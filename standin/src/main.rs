//! The `standin` binary: parses flags, then serves the stand-in until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use secrecy::SecretString;
use standin::{BatchBehaviour, Config, Fault, Latency, RandomFaults, RateLimits};
use telemetry::LogConfig;
use tokio::net::TcpListener;

/// A stand-in for an OpenAI-compatible Chat Completions server: realistic menu days from a
/// bundled recipe catalogue, with configurable latency, faults and rate limits.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Address to listen on.
    #[arg(long, env = "STANDIN_BIND", default_value = "127.0.0.1:8090")]
    bind: SocketAddr,
    /// The only API key accepted; any non-empty key when unset.
    #[arg(long, env = "STANDIN_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Comma-separated model names to serve; any model when empty.
    #[arg(
        long,
        env = "STANDIN_MODELS",
        value_delimiter = ',',
        default_value = ""
    )]
    models: Vec<String>,
    /// Latency of each generated answer, in milliseconds.
    #[arg(long = "latency-ms", env = "STANDIN_LATENCY_MS", default_value = "0", value_parser = telemetry::millis)]
    latency: Duration,
    /// Up to this much more or less latency, drawn uniformly, in milliseconds.
    #[arg(long = "latency-jitter-ms", env = "STANDIN_LATENCY_JITTER_MS", default_value = "0", value_parser = telemetry::millis)]
    latency_jitter: Duration,
    /// Share of calls (0–1) that get a random fault from --fault-kinds.
    #[arg(long, env = "STANDIN_FAULT_RATE", default_value_t = 0.0)]
    fault_rate: f64,
    /// Comma-separated faults to draw from: kind names (rate_limited, server_error, hang,
    /// reset, malformed_json, truncated, refusal, ...) or JSON objects ({"kind":"hang","ms":5000}).
    #[arg(long, env = "STANDIN_FAULT_KINDS", default_value = "", value_parser = parse_faults)]
    fault_kinds: FaultList,
    /// Requests per minute allowed; unlimited when unset.
    #[arg(long, env = "STANDIN_RPM")]
    rpm: Option<u32>,
    /// Tokens per minute allowed (prompt plus max completion tokens); unlimited when unset.
    #[arg(long, env = "STANDIN_TPM")]
    tpm: Option<u32>,
    /// Length of the rate-limit window, in milliseconds.
    #[arg(long = "rate-window-ms", env = "STANDIN_RATE_WINDOW_MS", default_value = "60000", value_parser = telemetry::millis)]
    rate_window: Duration,
    /// Seed of the run's randomness (latency jitter, random faults).
    #[arg(long, env = "STANDIN_SEED", default_value_t = 0)]
    seed: u64,
    /// Benchmark mode: a request body seen before gets the answer composed for it then (the
    /// same day a fresh compose gives) without composing or counting tokens again.
    #[arg(long, env = "STANDIN_BENCH_ANSWERS")]
    bench_answers: bool,
    /// Keep each call's messages in the request log (`GET /_standin/requests`), to see what a
    /// prompt carried.
    #[arg(long, env = "STANDIN_RECORD_MESSAGES")]
    record_messages: bool,
    #[command(flatten)]
    batches: BatchFlags,
    #[command(flatten)]
    log: LogConfig,
}

/// How the Batch API behaves (`standin::BatchBehaviour`); changeable at runtime with
/// `POST /_standin/batches/behaviour`.
#[derive(Debug, clap::Args)]
struct BatchFlags {
    /// Time from a batch's creation to its end at the earliest, in milliseconds.
    #[arg(long = "batch-completion-delay-ms", env = "STANDIN_BATCH_COMPLETION_DELAY_MS", default_value = "2000", value_parser = telemetry::millis)]
    completion_delay: Duration,
    /// When set (0 to 1), every batch ends `expired` after this share of its requests ran;
    /// the rest are `batch_expired` lines in its error file.
    #[arg(long = "batch-expire-after-fraction", env = "STANDIN_BATCH_EXPIRE_AFTER_FRACTION", value_parser = fraction)]
    expire_after_fraction: Option<f64>,
    /// Every Nth request of a batch fails with a 500 line in the error file.
    #[arg(long = "batch-error-every", env = "STANDIN_BATCH_ERROR_EVERY")]
    error_every: Option<u32>,
    /// Every Nth request of a batch that asks for a whole menu gets one day breaking a rule.
    #[arg(
        long = "batch-broken-day-every",
        env = "STANDIN_BATCH_BROKEN_DAY_EVERY"
    )]
    broken_day_every: Option<u32>,
    /// Most requests a batch input file may hold.
    #[arg(long = "batch-max-requests", env = "STANDIN_BATCH_MAX_REQUESTS", default_value_t = BatchBehaviour::default().max_requests)]
    max_requests: usize,
    /// Most bytes a batch input file may hold.
    #[arg(long = "batch-max-file-bytes", env = "STANDIN_BATCH_MAX_FILE_BYTES", default_value_t = BatchBehaviour::default().max_file_bytes)]
    max_file_bytes: u64,
}

impl BatchFlags {
    fn behaviour(self) -> BatchBehaviour {
        BatchBehaviour {
            completion_delay_ms: self.completion_delay.as_millis() as u64,
            expire_after_fraction: self.expire_after_fraction,
            error_every: self.error_every,
            broken_day_every: self.broken_day_every,
            max_requests: self.max_requests,
            max_file_bytes: self.max_file_bytes,
        }
    }
}

/// A share from 0 to 1.
fn fraction(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(share) if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err(format!("{value} is not a share from 0 to 1")),
    }
}

/// The parsed `--fault-kinds` list.
#[derive(Debug, Clone)]
struct FaultList(Vec<Fault>);

/// Splits on commas outside JSON objects, so `hang,{"kind":"latency","ms":50}` is two faults.
fn parse_faults(text: &str) -> Result<FaultList, String> {
    let mut faults = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in text.char_indices().chain([(text.len(), ',')]) {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                let item = text[start..i].trim();
                if !item.is_empty() {
                    faults.push(item.parse::<Fault>()?);
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    Ok(FaultList(faults))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init(&cli.log);
    let config = Config {
        api_key: cli.api_key.map(SecretString::from),
        models: cli.models.into_iter().filter(|m| !m.is_empty()).collect(),
        latency: Latency {
            base: cli.latency,
            jitter: cli.latency_jitter,
        },
        faults: RandomFaults {
            rate: cli.fault_rate,
            kinds: cli.fault_kinds.0,
        },
        limits: RateLimits {
            requests_per_minute: cli.rpm,
            tokens_per_minute: cli.tpm,
            window: cli.rate_window,
        },
        seed: cli.seed,
        reuse_answers: cli.bench_answers,
        record_messages: cli.record_messages,
        batches: cli.batches.behaviour(),
    };
    let listener = TcpListener::bind(cli.bind)
        .await
        .with_context(|| format!("binding {}", cli.bind))?;
    tracing::info!(
        address = %cli.bind,
        key_required = config.api_key.is_some(),
        models = ?config.models,
        latency_ms = cli.latency.as_millis() as u64,
        fault_rate = config.faults.rate,
        rpm = ?cli.rpm,
        tpm = ?cli.tpm,
        batch_completion_delay_ms = config.batches.completion_delay_ms,
        "stand-in LLM listening"
    );
    standin::serve(listener, config, telemetry::shutdown_signal()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_lists_mix_names_and_json_objects() {
        let FaultList(faults) =
            parse_faults("hang, {\"kind\":\"latency\",\"ms\":50},reset").unwrap();
        assert_eq!(
            faults,
            vec![
                Fault::Hang { ms: 600_000 },
                Fault::Latency { ms: 50 },
                Fault::Reset
            ]
        );
        assert!(parse_faults("").unwrap().0.is_empty());
        assert!(parse_faults("nonsense").is_err());
    }

    #[test]
    fn the_flags_parse_with_their_defaults() {
        let cli = Cli::try_parse_from(["standin", "--rpm", "60", "--models", "a,b"]).unwrap();
        assert_eq!(cli.bind.to_string(), "127.0.0.1:8090");
        assert_eq!(cli.rpm, Some(60));
        assert_eq!(cli.models, vec!["a", "b"]);
        assert_eq!(cli.rate_window, Duration::from_secs(60));
        assert_eq!(cli.batches.behaviour(), BatchBehaviour::default());
    }

    #[test]
    fn the_batch_flags_set_the_batch_behaviour() {
        let cli = Cli::try_parse_from([
            "standin",
            "--batch-completion-delay-ms",
            "50",
            "--batch-expire-after-fraction",
            "0.5",
            "--batch-error-every",
            "3",
            "--batch-max-requests",
            "10",
        ])
        .unwrap();
        let behaviour = cli.batches.behaviour();
        assert_eq!(behaviour.completion_delay_ms, 50);
        assert_eq!(behaviour.expire_after_fraction, Some(0.5));
        assert_eq!(behaviour.error_every, Some(3));
        assert_eq!(behaviour.broken_day_every, None);
        assert_eq!(behaviour.max_requests, 10);
        assert!(Cli::try_parse_from(["standin", "--batch-expire-after-fraction", "2"]).is_err());
    }
}
