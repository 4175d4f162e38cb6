//! The worker's settings: the shared groups plus how jobs are run.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use shared::batch::BatchLaneMode;
use shared::batch::enqueue::EnqueueConfig;
use shared::batch::schedule::{ScheduleConfig, Tz};
use shared::config::{AttemptsConfig, DatabaseConfig, LlmConfig, RedisConfig};
use shared::llm::budget::BudgetConfig;
use shared::llm::circuit::CircuitConfig;
use shared::llm::endpoint::EndpointsConfig;
use shared::llm::wait::CallBackoff;
use shared::queue::QueueConfig;
use telemetry::LogConfig;

#[derive(clap::Args, Debug, Clone)]
pub struct WorkerConfig {
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub redis: RedisConfig,
    #[command(flatten)]
    pub llm: LlmConfig,
    #[command(flatten)]
    pub endpoints: EndpointsConfig,
    #[command(flatten)]
    pub budget: BudgetConfig,
    #[command(flatten)]
    pub circuit: CircuitConfig,
    #[command(flatten)]
    pub queue: QueueConfig,
    #[command(flatten)]
    pub jobs: JobConfig,
    #[command(flatten)]
    pub batch: BatchConfig,
    #[command(flatten)]
    pub log: LogConfig,
    /// Where `/metrics` is served for Prometheus; `off` to serve nothing.
    #[arg(
        long = "metrics-bind",
        env = "METRICS_BIND",
        default_value = "127.0.0.1:9091"
    )]
    pub metrics_bind: MetricsBind,
}

/// The weekly batch: when its scheduler fires, how its runs are enqueued, and how the batch
/// lane submits provider-lane runs to the Batch API.
#[derive(clap::Args, Debug, Clone)]
pub struct BatchConfig {
    #[command(flatten)]
    pub schedule: ScheduleConfig,
    #[command(flatten)]
    pub enqueue: EnqueueConfig,
    #[command(flatten)]
    pub lane: BatchLaneConfig,
}

impl BatchConfig {
    /// No scheduler in this process (tests and benchmarks that start batches themselves);
    /// otherwise the defaults.
    pub fn disabled() -> BatchConfig {
        BatchConfig {
            schedule: ScheduleConfig {
                cron: "0 0 18 * * Fri".into(),
                timezone: Tz::UTC,
                name: "weekly".into(),
                catch_up_secs: 86_400,
                enabled: false,
                lane: BatchLaneMode::Normal,
            },
            enqueue: EnqueueConfig {
                chunk: 1_000,
                lease_secs: 30,
                attempts: AttemptsConfig { max_attempts: 3 },
            },
            lane: BatchLaneConfig::defaults(),
        }
    }
}

/// The batch lane (`worker::batch_lane`): how provider-lane jobs are gathered into provider
/// batches and how those are followed. The limits are the Batch API's
/// (<https://platform.openai.com/docs/guides/batch>, "Rate limits" and "Batch limits"): 50,000
/// requests and 200 MB per input file, and a per-model cap on the prompt tokens enqueued at
/// once (2,000,000 for gpt-4o-mini at usage tier 1).
#[derive(clap::Args, Debug, Clone)]
pub struct BatchLaneConfig {
    /// How often the batch lane gathers waiting provider-lane jobs into provider batches and
    /// looks at the progress of those not collected yet.
    #[arg(
        id = "batch_lane_poll_ms",
        long = "batch-lane-poll-ms",
        env = "BATCH_LANE_POLL_MS",
        default_value = BatchLaneConfig::POLL_MS,
        value_parser = telemetry::millis
    )]
    pub poll: Duration,
    /// The endpoint (a name of `LLM_ENDPOINTS`) provider batches go to; the first endpoint
    /// when unset.
    #[arg(
        id = "batch_lane_endpoint",
        long = "batch-lane-endpoint",
        env = "BATCH_LANE_ENDPOINT"
    )]
    pub endpoint: Option<String>,
    /// Requests (jobs) per provider batch at most.
    #[arg(
        id = "batch_max_requests",
        long = "batch-max-requests",
        env = "BATCH_MAX_REQUESTS",
        default_value_t = BatchLaneConfig::MAX_REQUESTS,
        value_parser = clap::value_parser!(u32).range(1..=50_000)
    )]
    pub max_requests: u32,
    /// Bytes of a provider batch's input file at most.
    #[arg(
        id = "batch_max_file_bytes",
        long = "batch-max-file-bytes",
        env = "BATCH_MAX_FILE_BYTES",
        default_value_t = BatchLaneConfig::MAX_FILE_BYTES,
        value_parser = clap::value_parser!(u64).range(1..=200_000_000)
    )]
    pub max_file_bytes: u64,
    /// Prompt tokens the provider may hold at once for the lane's endpoint and model, over
    /// every provider batch not finished yet: a batch that would pass it waits.
    #[arg(
        id = "batch_max_enqueued_tokens",
        long = "batch-max-enqueued-tokens",
        env = "BATCH_MAX_ENQUEUED_TOKENS",
        default_value_t = BatchLaneConfig::MAX_ENQUEUED_TOKENS,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub max_enqueued_tokens: u64,
    /// How long a provider batch is this worker's to drive without a word from it: a dead
    /// worker's batches are taken over (found again at the provider, never submitted twice)
    /// this long after its last step. Above the poll interval, and above the longest upload or
    /// download.
    #[arg(
        id = "batch_lane_lease_secs",
        long = "batch-lane-lease-secs",
        env = "BATCH_LANE_LEASE_SECS",
        default_value_t = BatchLaneConfig::LEASE_SECS,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub lease_secs: u64,
    /// Time allowed to upload an input file or download an output file (up to 200 MB).
    #[arg(
        id = "batch_lane_transfer_timeout_ms",
        long = "batch-lane-transfer-timeout-ms",
        env = "BATCH_LANE_TRANSFER_TIMEOUT_MS",
        default_value = BatchLaneConfig::TRANSFER_TIMEOUT_MS,
        value_parser = telemetry::millis
    )]
    pub transfer_timeout: Duration,
}

impl BatchLaneConfig {
    const POLL_MS: &str = "30000";
    const TRANSFER_TIMEOUT_MS: &str = "300000";
    const MAX_REQUESTS: u32 = 50_000;
    const MAX_FILE_BYTES: u64 = 200_000_000;
    const MAX_ENQUEUED_TOKENS: u64 = 2_000_000;
    const LEASE_SECS: u64 = 600;

    /// The defaults of every setting.
    pub fn defaults() -> BatchLaneConfig {
        BatchLaneConfig {
            poll: telemetry::millis(Self::POLL_MS).expect("a whole number"),
            endpoint: None,
            max_requests: Self::MAX_REQUESTS,
            max_file_bytes: Self::MAX_FILE_BYTES,
            max_enqueued_tokens: Self::MAX_ENQUEUED_TOKENS,
            lease_secs: Self::LEASE_SECS,
            transfer_timeout: telemetry::millis(Self::TRANSFER_TIMEOUT_MS).expect("a whole number"),
        }
    }

    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }

    /// Settings that contradict each other: a lease that lapses between two polls would hand
    /// the batches from worker to worker.
    pub fn check(&self) -> Result<(), String> {
        if self.poll.is_zero() || self.lease() <= self.poll {
            return Err(format!(
                "BATCH_LANE_LEASE_SECS ({}) must be longer than BATCH_LANE_POLL_MS ({} ms), which must be above 0",
                self.lease_secs,
                self.poll.as_millis()
            ));
        }
        Ok(())
    }
}

/// Where the worker serves `/metrics`: an address, or nowhere (`off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsBind(pub Option<SocketAddr>);

impl FromStr for MetricsBind {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        if value == "off" {
            return Ok(MetricsBind(None));
        }
        value
            .parse()
            .map(|addr| MetricsBind(Some(addr)))
            .map_err(|_| format!("{value:?} is neither an address such as 127.0.0.1:9091 nor off"))
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct JobConfig {
    /// Jobs one worker process runs at once (each mostly waits on the LLM).
    #[arg(
        long = "worker-concurrency",
        env = "WORKER_CONCURRENCY",
        default_value_t = 16
    )]
    pub concurrency: usize,
    /// Times one day may be asked for within an attempt when the answer breaks the rules.
    #[arg(long = "day-max-asks", env = "DAY_MAX_ASKS", default_value_t = 3)]
    pub day_max_asks: u32,
    /// First retry delay of a failed attempt; doubles each attempt, with full jitter.
    #[arg(
        long = "retry-base-delay-ms",
        env = "RETRY_BASE_DELAY_MS",
        default_value = "2000",
        value_parser = telemetry::millis
    )]
    pub retry_base_delay: Duration,
    /// Longest retry delay.
    #[arg(
        long = "retry-max-delay-ms",
        env = "RETRY_MAX_DELAY_MS",
        default_value = "60000",
        value_parser = telemetry::millis
    )]
    pub retry_max_delay: Duration,
    /// How long a claimed job is this worker's before another may take it over: a killed
    /// worker's jobs resume elsewhere within this time. Renewed on a timer while the attempt
    /// works, whatever its progress.
    #[arg(long = "job-lease-secs", env = "JOB_LEASE_SECS", default_value_t = 30)]
    pub lease_secs: u64,
    /// How often the leases of the running attempts are renewed (one statement for all of
    /// them); well under the lease, so one missed renewal loses nothing.
    #[arg(
        long = "job-lease-renew-secs",
        env = "JOB_LEASE_RENEW_SECS",
        default_value_t = 10
    )]
    pub lease_renew_secs: u64,
    /// How long a job's write (a finished day, the menu, a retry) is tried again while the
    /// database is unreachable, kept in memory, before the attempt gives up on it.
    #[arg(
        long = "job-write-retry-secs",
        env = "JOB_WRITE_RETRY_SECS",
        default_value_t = 120
    )]
    pub write_retry_secs: u64,
    /// How often the reconciler looks for due jobs that Redis does not hold (lost pushes, a
    /// Redis restart) and pushes them again; one replica's pass serves the whole fleet.
    #[arg(
        long = "reconcile-interval-ms",
        env = "RECONCILE_INTERVAL_MS",
        default_value = "5000",
        value_parser = telemetry::millis
    )]
    pub reconcile_interval: Duration,
    /// On SIGTERM: time for running jobs to finish before they are handed back unfinished.
    #[arg(
        long = "shutdown-grace-secs",
        env = "SHUTDOWN_GRACE_SECS",
        default_value_t = 20
    )]
    pub shutdown_grace_secs: u64,
    /// Time a job may take from its first attempt; waits for a provider outage do not count.
    #[arg(
        long = "job-deadline-secs",
        env = "JOB_DEADLINE_SECS",
        default_value_t = 1_800
    )]
    pub deadline_secs: u64,
    /// Rate-limit waits a job may take (they use no attempt) before it fails.
    #[arg(
        long = "job-max-snoozes",
        env = "JOB_MAX_SNOOZES",
        default_value_t = 20
    )]
    pub max_snoozes: i32,
    /// The longest server-directed wait slept in a worker slot; a longer one puts the job back
    /// in the queue until then.
    #[arg(
        long = "llm-max-server-wait-ms",
        env = "LLM_MAX_SERVER_WAIT_MS",
        default_value = "120000",
        value_parser = telemetry::millis
    )]
    pub max_server_wait: Duration,
    /// The longest server-directed wait honoured at all: a longer one (a misconfigured proxy,
    /// a date far ahead) is cut to this, for the job's reschedule and the fleet's pause alike.
    #[arg(
        long = "llm-server-wait-cap-ms",
        env = "LLM_SERVER_WAIT_CAP_MS",
        default_value = "600000",
        value_parser = telemetry::millis
    )]
    pub server_wait_cap: Duration,
    /// Retries of a call that failed transiently (5xx, 408, 409, a reset, a timeout, a cut or
    /// malformed answer), within the attempt, before the attempt fails.
    #[arg(long = "llm-max-retries", env = "LLM_MAX_RETRIES", default_value_t = 3)]
    pub llm_max_retries: u32,
    /// First wait before a call is retried (and the least any retry waits, a server's wait of
    /// zero or in the past included); doubles per retry, with full jitter.
    #[arg(
        long = "llm-retry-base-ms",
        env = "LLM_RETRY_BASE_MS",
        default_value = "1000",
        value_parser = telemetry::millis
    )]
    pub llm_retry_base: Duration,
    /// Longest wait before a call is retried.
    #[arg(
        long = "llm-retry-max-ms",
        env = "LLM_RETRY_MAX_MS",
        default_value = "8000",
        value_parser = telemetry::millis
    )]
    pub llm_retry_max: Duration,
    /// Jobs one person may have running at once across the fleet (0: no cap); their other
    /// jobs wait without holding a slot, and other people's jobs go first.
    #[arg(
        long = "user-running-cap",
        env = "USER_RUNNING_CAP",
        default_value_t = 2
    )]
    pub user_running_cap: u32,
    /// How long a job whose owner is at the cap waits before it is tried again.
    #[arg(
        long = "user-cap-recheck-ms",
        env = "USER_CAP_RECHECK_MS",
        default_value = "1000",
        value_parser = telemetry::millis
    )]
    pub user_cap_recheck: Duration,
    /// Slots of `WORKER_CONCURRENCY` that batch jobs never take, so a person's job starts at
    /// once while the weekly batch runs; default 30 % of the concurrency, rounded down.
    #[arg(long = "worker-interactive-slots", env = "WORKER_INTERACTIVE_SLOTS")]
    pub interactive_slots: Option<usize>,
}

impl JobConfig {
    /// Most batch jobs a worker runs at once: its concurrency less the interactive slots, and
    /// at least one.
    pub fn batch_slots(&self) -> usize {
        let kept = self.interactive_slots.unwrap_or(self.concurrency * 3 / 10);
        self.concurrency.saturating_sub(kept).max(1)
    }
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }
    pub fn lease_renew(&self) -> Duration {
        Duration::from_secs(self.lease_renew_secs)
    }
    pub fn write_retry(&self) -> Duration {
        Duration::from_secs(self.write_retry_secs)
    }
    pub fn call_backoff(&self) -> CallBackoff {
        CallBackoff {
            base: self.llm_retry_base,
            cap: self.llm_retry_max,
        }
    }

    /// Settings that contradict each other.
    pub fn check(&self) -> Result<(), String> {
        if self.lease_renew_secs == 0 || self.lease_renew_secs >= self.lease_secs {
            return Err(format!(
                "JOB_LEASE_RENEW_SECS ({}) must be at least 1 and below JOB_LEASE_SECS ({})",
                self.lease_renew_secs, self.lease_secs
            ));
        }
        if self.reconcile_interval.is_zero() {
            return Err("RECONCILE_INTERVAL_MS must be above 0".into());
        }
        Ok(())
    }
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
    pub fn deadline(&self) -> Duration {
        Duration::from_secs(self.deadline_secs)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Lane {
        #[command(flatten)]
        lane: BatchLaneConfig,
    }

    fn parse(args: &[&str]) -> Result<BatchLaneConfig, clap::Error> {
        Lane::try_parse_from(std::iter::once("worker").chain(args.iter().copied())).map(|l| l.lane)
    }

    #[test]
    fn the_batch_lanes_defaults_are_the_flags_defaults_and_the_batch_apis_limits() {
        let parsed = parse(&[]).unwrap();
        let defaults = BatchLaneConfig::defaults();
        assert_eq!(format!("{parsed:?}"), format!("{defaults:?}"));
        assert_eq!(defaults.max_requests, 50_000);
        assert_eq!(defaults.poll, Duration::from_secs(30));
        assert_eq!(defaults.check(), Ok(()));
        assert!(parse(&["--batch-max-requests", "50001"]).is_err());
        assert!(parse(&["--batch-max-file-bytes", "200000001"]).is_err());
    }

    #[test]
    fn a_lease_no_longer_than_the_poll_is_refused() {
        let lane = parse(&[
            "--batch-lane-poll-ms",
            "5000",
            "--batch-lane-lease-secs",
            "5",
        ])
        .unwrap();
        assert!(lane.check().unwrap_err().contains("BATCH_LANE_LEASE_SECS"));
        let lane = parse(&["--batch-lane-poll-ms", "0"]).unwrap();
        assert!(lane.check().is_err());
    }
}
