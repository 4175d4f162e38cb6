//! What every binary sets up at start, the stand-in LLM's included (which is why it is a crate
//! apart from `shared`): logging, the Prometheus recorder, the shutdown signal, and the one
//! parser of the `*_MS` duration settings.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Bucket bounds (seconds) of every duration histogram: from a connection held for a
/// millisecond to an LLM call of two minutes.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0,
];

/// The process's Prometheus recorder, installed on first use: every metric recorded in the
/// process (API, worker, shared code) is rendered by [`PrometheusHandle::render`].
pub fn metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(SECONDS_BUCKETS)
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!(
                    "a metrics recorder was already installed; /metrics shows only ours"
                );
            }
            handle
        })
        .clone()
}

/// Installs the global tracing subscriber: human-readable text, or JSON lines for collectors.
pub fn init(config: &LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let installed = if config.json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    if let Err(e) = installed {
        eprintln!("logging was already set up: {e}");
    }
}

/// Completes on SIGTERM (what orchestrators send) or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops this process");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

#[derive(clap::Args, Debug, Clone)]
pub struct LogConfig {
    /// Log filter, in `tracing_subscriber::EnvFilter` syntax.
    #[arg(long = "log", env = "RUST_LOG", default_value = "info")]
    pub filter: String,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long = "log-json", env = "LOG_JSON", default_value_t = false)]
    pub json: bool,
}

/// Parses a duration setting given in whole milliseconds (`2000` is two seconds), for clap's
/// `value_parser = telemetry::millis` on every `*_MS` flag and variable.
///
/// # Errors
/// A value that is not a whole number from 0 to `u64::MAX`; clap names the flag and the value.
pub fn millis(value: &str) -> Result<Duration, String> {
    value
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|e| format!("{e} (a whole number of milliseconds)"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Settings {
        #[arg(long = "wait-ms", env = "TELEMETRY_TEST_WAIT_MS", default_value = "2000", value_parser = super::millis)]
        wait: Duration,
    }

    #[test]
    fn milliseconds_become_a_duration_with_the_default_when_unset() {
        let unset = Settings::try_parse_from(["test"]).unwrap();
        assert_eq!(unset.wait, Duration::from_secs(2));
        let set = Settings::try_parse_from(["test", "--wait-ms", "250"]).unwrap();
        assert_eq!(set.wait, Duration::from_millis(250));
    }

    #[test]
    fn a_bad_value_is_clap_error_naming_it() {
        for bad in ["2s", "-1", "1.5", ""] {
            let flag = format!("--wait-ms={bad}");
            let error = Settings::try_parse_from(["test", &flag]).unwrap_err();
            assert_eq!(
                error.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{bad:?}"
            );
            let shown = error.to_string();
            assert!(shown.contains(&format!("'{bad}'")), "{shown}");
            assert!(shown.contains("--wait-ms"), "{shown}");
            assert!(shown.contains("milliseconds"), "{shown}");
        }
    }
}
