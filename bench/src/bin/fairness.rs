//! Fairness while the weekly batch drains: how long a person's job waits to be claimed and for
//! its first day, with no batch (the baseline, measured first in the same run) and while a
//! batch of one-day menus drains at full budget; and how much of the budget the drain uses,
//! while people call (their share kept for them) and after they stop (the batch takes it back).
//!
//! The API and one worker run in this process against a stand-in that answers in 200 ms and
//! enforces the same requests-per-minute limit the worker's budget is set to (so a 429 would
//! show an overshoot). People submit one-day menus at a steady rate from 20 accounts.
//!
//! Run (PostgreSQL and Redis up):
//!   cargo run --release -p bench --bin fairness -- [--people 10000] [--rpm 12000]
//!     [--concurrency 64] [--probes-per-sec 4] [--baseline-secs 15] [--probe-secs 30]

use std::time::{Duration, Instant};

use bench::stats::Sample;
use chrono::{DateTime, Utc};
use clap::Parser;
use domain::request::MenuOptions;
use serde_json::json;
use standin::{Latency, RateLimits};
use testkit::{Account, SystemOptions, TestSystem, spawn_system};
use uuid::Uuid;

#[derive(Debug, Parser)]
struct Args {
    /// People in the batch (one one-day menu each).
    #[arg(long, default_value_t = 10_000)]
    people: usize,
    /// Requests per minute the budget and the stand-in allow.
    #[arg(long, default_value_t = 12_000)]
    rpm: u32,
    /// Jobs the worker runs at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// People's submissions per second.
    #[arg(long, default_value_t = 4.0)]
    probes_per_sec: f64,
    /// How long people submit alone (the baseline).
    #[arg(long, default_value_t = 15)]
    baseline_secs: u64,
    /// How long people keep submitting while the batch drains.
    #[arg(long, default_value_t = 30)]
    probe_secs: u64,
}

/// What one person's job waited for.
struct Probe {
    claimed: Duration,
    first_day: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut options = SystemOptions {
        standin: standin::Config {
            latency: Latency::fixed(Duration::from_millis(200)),
            limits: RateLimits {
                requests_per_minute: Some(args.rpm),
                tokens_per_minute: None,
                window: Duration::from_secs(60),
            },
            ..Default::default()
        },
        ..SystemOptions::default()
    };
    options.jobs.concurrency = args.concurrency;
    // Production's defaults for fairness: a cap of two running jobs per person, 30 % of the
    // slots and of the budget kept for people.
    options.jobs.user_running_cap = 2;
    options.jobs.user_cap_recheck = Duration::from_secs(1);
    options.budget.rpm = Some(args.rpm);
    options.budget.max_wait = Duration::from_secs(60);
    options.jobs.deadline_secs = 3_600;
    let idle = options.budget.interactive_idle;
    let system = spawn_system(options).await;
    let mut people = Vec::new();
    for _ in 0..20 {
        people.push(system.api.user().await);
    }
    println!(
        "fairness: {} one-day batch menus, budget {} RPM (stand-in enforcing it), stand-in 200 ms, concurrency {}, people submitting {}/s",
        args.people, args.rpm, args.concurrency, args.probes_per_sec
    );

    // Baseline: people alone.
    let baseline = probe(
        &system,
        &people,
        args.probes_per_sec,
        Duration::from_secs(args.baseline_secs),
    )
    .await?;

    // The batch: enqueued, then drained while people keep submitting for a while.
    system.standin.clear_requests();
    let enqueue_started = Instant::now();
    let one_day = MenuOptions {
        days: Some(1),
        ..MenuOptions::default()
    };
    let (batch, _) = system.weekly_batch(args.people, &one_day).await;
    let enqueued_in = enqueue_started.elapsed();
    let drain_started = Instant::now();
    let during = probe(
        &system,
        &people,
        args.probes_per_sec,
        Duration::from_secs(args.probe_secs),
    )
    .await?;
    let people_stopped = drain_started.elapsed();
    loop {
        let left: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM generation_jobs WHERE batch_id = $1 AND finished_at IS NULL",
        )
        .bind(batch)
        .fetch_one(&system.pool)
        .await?;
        if left == 0 {
            break;
        }
        anyhow::ensure!(
            drain_started.elapsed() < Duration::from_secs(3_600),
            "{left} batch jobs left after an hour"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let drained_in = drain_started.elapsed();
    let (succeeded, failed): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status = 'failed')
         FROM generation_jobs WHERE batch_id = $1",
    )
    .bind(batch)
    .fetch_one(&system.pool)
    .await?;

    // Budget use from the stand-in's log, in two windows of the drain: while people called
    // (after the first seconds), and once they had been gone longer than the idle time.
    let calls = system.standin.requests();
    let start_ms = calls.first().map_or(0.0, |c| c.arrived_ms);
    let per_ms = f64::from(args.rpm) / 60_000.0;
    let use_between = |from: Duration, to: Duration| {
        let (a, b) = (
            start_ms + from.as_secs_f64() * 1000.0,
            start_ms + to.as_secs_f64() * 1000.0,
        );
        let n = calls
            .iter()
            .filter(|c| c.status == Some(200) && c.arrived_ms >= a && c.arrived_ms < b)
            .count();
        (n as f64 / ((b - a) * per_ms), b - a)
    };
    let (with_people, with_ms) = use_between(Duration::from_secs(5), people_stopped);
    let after_from = people_stopped + idle + Duration::from_secs(2);
    let after_to = drained_in.saturating_sub(Duration::from_secs(2));
    let (alone, alone_ms) = if after_to > after_from + Duration::from_secs(5) {
        use_between(after_from, after_to)
    } else {
        (f64::NAN, 0.0)
    };
    let refused = calls.iter().filter(|c| c.status == Some(429)).count();

    println!();
    println!(
        "batch: {} people enqueued in {:.2} s; drained in {:.1} s ({succeeded} succeeded, {failed} failed)",
        args.people,
        enqueued_in.as_secs_f64(),
        drained_in.as_secs_f64()
    );
    report("baseline (no batch)", &baseline);
    report("during the batch", &during);
    println!(
        "budget use (calls ÷ budget): {with_people:.3} while people called ({:.0} s window, their 30 % kept), {alone:.3} after they left ({:.0} s window); 429s: {refused}",
        with_ms / 1000.0,
        alone_ms / 1000.0
    );
    system.stop().await;
    Ok(())
}

fn report(name: &str, probes: &[Probe]) {
    let claimed = Sample::new(probes.iter().map(|p| p.claimed).collect());
    let first = Sample::new(probes.iter().map(|p| p.first_day).collect());
    println!("{}", claimed.line(&format!("{name}: claim wait")));
    println!("{}", first.line(&format!("{name}: first day done")));
}

/// Submits one-day menus at `rate` a second for `length`, round-robin over `people`, then
/// waits for them and reads what each waited for from the database.
async fn probe(
    system: &TestSystem,
    people: &[Account],
    rate: f64,
    length: Duration,
) -> anyhow::Result<Vec<Probe>> {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    let started = Instant::now();
    let mut jobs: Vec<(usize, Uuid)> = Vec::new();
    while started.elapsed() < length {
        tick.tick().await;
        let who = jobs.len() % people.len();
        jobs.push((
            who,
            system.submit_job(&people[who], json!({"days": 1})).await,
        ));
    }
    let mut probes = Vec::new();
    for (who, job) in jobs {
        system
            .wait_until_finished(&people[who], job, Duration::from_secs(600))
            .await;
        let (created, started, day_one): (DateTime<Utc>, DateTime<Utc>, DateTime<Utc>) =
            sqlx::query_as(
                "SELECT g.created_at, g.started_at, d.created_at FROM generation_jobs g
                 JOIN job_days d ON d.job_id = g.id AND d.day_number = 1 WHERE g.id = $1",
            )
            .bind(job)
            .fetch_one(&system.pool)
            .await?;
        probes.push(Probe {
            claimed: (started - created).to_std().unwrap_or_default(),
            first_day: (day_one - created).to_std().unwrap_or_default(),
        });
    }
    Ok(probes)
}
