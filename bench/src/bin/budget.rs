//! How much of the provider's budget a fleet of worker processes uses, against a stand-in that
//! enforces the same limit over a sliding minute: calls made ÷ budget, 429s received, and the
//! p99 wait for a budget slot, for 1, 3 and 6 worker processes.
//!
//! Run (PostgreSQL and Redis up; the worker binary built first):
//!   cargo build --release -p worker -p bench
//!   target/release/budget [--rpm 600] [--seconds 120] [--workers 1,3,6] [--concurrency 32]
//!
//! The run saturates the budget on purpose, so calls queue for slots: the capacity wait is
//! about (jobs in flight across the fleet) ÷ (budget per second).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use bench::stats::Sample;
use clap::Parser;
use domain::request::{GenerationRequest, MenuOptions, default_start_date};
use secrecy::ExposeSecret;
use shared::db::jobs::{self, Inserted, NewJob};
use shared::db::users::{self, Role};
use shared::queue::Queue;
use standin::{Latency, RateLimits};

#[derive(Debug, Parser)]
struct Args {
    /// Requests per minute the budget and the stand-in allow.
    #[arg(long, default_value_t = 600)]
    rpm: u32,
    /// How long each fleet runs.
    #[arg(long, default_value_t = 120)]
    seconds: u64,
    /// Fleet sizes (worker processes), each run on its own.
    #[arg(long, value_delimiter = ',', default_value = "1,3,6")]
    workers: Vec<usize>,
    /// Jobs each worker process runs at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let worker_bin = std::env::current_exe()?.with_file_name("worker");
    anyhow::ensure!(
        worker_bin.exists(),
        "{} is missing: cargo build --release -p worker first",
        worker_bin.display()
    );
    println!(
        "budget {} RPM over {} s, stand-in enforcing the same over a sliding minute; {} jobs at once per worker",
        args.rpm, args.seconds, args.concurrency
    );
    for &workers in &args.workers {
        run(&args, workers, &worker_bin).await?;
    }
    Ok(())
}

async fn run(args: &Args, workers: usize, worker_bin: &std::path::Path) -> anyhow::Result<()> {
    let db = testkit::TestDb::new().await;
    let redis = testkit::TestRedis::new();
    let standin = standin::spawn(standin::Config {
        limits: RateLimits {
            requests_per_minute: Some(args.rpm),
            tokens_per_minute: None,
            window: Duration::from_secs(60),
        },
        latency: Latency {
            base: Duration::from_millis(300),
            jitter: Duration::from_millis(200),
        },
        ..Default::default()
    })
    .await?;

    // More one-day jobs than the run can use, queued before any worker starts.
    let budget = u64::from(args.rpm) * args.seconds / 60;
    let queue = Queue::connect(&redis.config()).await?;
    let mut conn = db.pool.acquire().await?;
    let user = users::insert(&mut conn, "bench@example.com", "x", Role::User).await?;
    let request = GenerationRequest::from_options(
        &MenuOptions {
            days: Some(1),
            ..Default::default()
        },
        default_start_date(),
    )
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    for _ in 0..budget + budget / 4 {
        let job = NewJob {
            owner_id: user.id,
            requested_by: user.id,
            request: request.clone(),
            max_attempts: 3,
            idempotency_key: None,
            batch_id: None,
        };
        if let Inserted::Created(row) = jobs::insert(&mut conn, &job).await? {
            queue.push(&[row.id]).await?;
        }
    }
    drop(conn);

    let mut children = Vec::new();
    for _ in 0..workers {
        let mut child = spawn_worker(worker_bin, &db, &redis, &standin.base_url(), args)?;
        // Read the log as it comes, or a full pipe would stall the worker.
        let stdout = child.stdout.take().context("worker stdout")?;
        let reader = std::thread::spawn(move || {
            let mut log = String::new();
            let _ = std::io::Read::read_to_string(&mut std::io::BufReader::new(stdout), &mut log);
            log
        });
        children.push((child, reader));
    }
    let started = Instant::now();
    while standin.requests().is_empty() && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(args.seconds) + Duration::from_millis(500)).await;
    for (child, _) in &children {
        // SIGTERM: the workers drain and hand back what they hold.
        let _ = Command::new("kill").arg(child.id().to_string()).status();
    }
    let mut waits = Vec::new();
    for (mut child, reader) in children {
        child.wait()?;
        let log = reader.join().unwrap_or_default();
        waits.extend(capacity_waits(&log));
    }

    let calls = standin.requests();
    let first = calls.first().map_or(0.0, |c| c.arrived_ms);
    let window_end = first + args.seconds as f64 * 1000.0;
    let in_run = |status: u16| {
        calls
            .iter()
            .filter(|c| c.status == Some(status) && c.arrived_ms < window_end)
            .count()
    };
    let (admitted, refused) = (in_run(200), in_run(429));
    let waits = Sample::new(waits);
    println!(
        "{workers} worker process(es): {admitted} calls / budget {budget} = {:.3}, {refused} × 429, capacity wait p50 {:.0} ms p99 {:.0} ms",
        admitted as f64 / budget as f64,
        waits.percentile(50.0).as_secs_f64() * 1000.0,
        waits.percentile(99.0).as_secs_f64() * 1000.0,
    );
    standin.shutdown().await;
    Ok(())
}

fn spawn_worker(
    bin: &std::path::Path,
    db: &testkit::TestDb,
    redis: &testkit::TestRedis,
    llm: &str,
    args: &Args,
) -> std::io::Result<Child> {
    let redis_config = redis.config();
    Command::new(bin)
        .env("DATABASE_URL", db.url())
        .env("DATABASE_MAX_CONNECTIONS", "4")
        .env("REDIS_URL", redis_config.url.expose_secret())
        .env("REDIS_PREFIX", &redis_config.prefix)
        .env("LLM_BASE_URL", llm)
        .env("LLM_RPM", args.rpm.to_string())
        .env("WORKER_CONCURRENCY", args.concurrency.to_string())
        .env("SHUTDOWN_GRACE_SECS", "2")
        .env("METRICS_BIND", "off")
        .env("LOG_JSON", "true")
        .env("RUST_LOG", "warn,worker::call=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
}

/// The capacity waits a worker logged, one JSON line per call.
fn capacity_waits(log: &str) -> Vec<Duration> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|v| v.get("llm.capacity_wait_ms").and_then(|w| w.as_f64()))
        .map(|ms| Duration::from_secs_f64(ms / 1000.0))
        .collect()
}
