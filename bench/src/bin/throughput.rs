//! LLM-shaped throughput: how close one worker process gets to the ideal a provider allows
//! (`concurrency ÷ (days × latency)` jobs a second), with a pool of 10 connections. The stand-in
//! and the worker run as processes of their own, so the CPU each uses is its own; jobs are
//! written and queued before the worker starts, and throughput is read from the days' save
//! times between the 10th and 90th percentile (the steady state, without ramp-up and tail), in
//! jobs a second (days a second ÷ days a job).
//!
//! Prints, per shape (days × concurrency), the median of `--runs` with min and max: jobs/s and
//! its ratio to the ideal, worker CPU per day, stand-in and PostgreSQL CPU, worker peak RSS,
//! connections in use (max), connection hold p50/p99 per statement, and commits per job.
//!
//! Run: `cargo build --release --bins && target/release/throughput` (or `bench/run.sh`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use bench::process::{self, Process};
use bench::prometheus;
use bench::stats::spread;
use bench::stores::Stores;
use clap::Parser;
use domain::request::{GenerationRequest, MenuOptions, default_start_date};
use shared::config::RedisConfig;
use sqlx::types::Json;
use sqlx::{PgPool, postgres::PgPoolOptions};
use testkit::{TestDb, TestRedis};
use uuid::Uuid;

#[derive(Debug, Parser)]
struct Cli {
    /// Days per job (each shape is run on its own).
    #[arg(long, value_delimiter = ',', default_value = "1,7")]
    days: Vec<u8>,
    /// The worker's concurrency (jobs in flight).
    #[arg(long, value_delimiter = ',', default_value = "200,2000")]
    concurrency: Vec<usize>,
    /// The stand-in's latency per call, in milliseconds.
    #[arg(long, default_value_t = 200)]
    latency_ms: u64,
    /// How long each run lasts at the ideal rate, in seconds (sets the number of jobs).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Runs per shape (the figure is their median).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Jobs per run, instead of `--seconds` at the ideal rate (needed with a 0 ms stand-in).
    #[arg(long)]
    jobs: Option<usize>,
    /// Connections in each worker's pool.
    #[arg(long, default_value_t = 10)]
    pool: u32,
    /// Worker processes, each at `--concurrency` (the ideal grows with them).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    workers: Vec<usize>,
    /// Scaled out: PostgreSQL through PgBouncer in transaction mode, Redis a three-node cluster.
    #[arg(long)]
    scaled_out: bool,
    /// The PgBouncer binary (1.21 or later) for `--scaled-out`.
    #[arg(long, env = "PGBOUNCER", default_value = "pgbouncer")]
    pgbouncer: PathBuf,
}

/// One run's figures.
#[derive(Debug, Clone, Default)]
struct Figures {
    jobs_per_s: f64,
    ratio: f64,
    worker_cpu_per_day_ms: f64,
    worker_cpu_share: f64,
    standin_cpu_share: f64,
    postgres_cpu_share: f64,
    /// PgBouncer and every Redis server (the cluster's nodes when scaled out).
    pgbouncer_cpu_share: f64,
    redis_cpu_share: f64,
    worker_peak_rss_mb: f64,
    connections_max: i64,
    commits_per_job: f64,
    /// Per statement (the pool's `op`): p50 and p99 hold in ms, and holds per job.
    holds: BTreeMap<String, (f64, f64, f64)>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let bins = process::prepare()?;
    println!(
        "LLM-shaped throughput: stand-in {} ms a call, worker pool {}, median of {} runs (min–max)\n",
        cli.latency_ms, cli.pool, cli.runs
    );
    if cli.scaled_out {
        println!(
            "Scaled out: PostgreSQL through PgBouncer (transaction mode), Redis a 3-node Redis Cluster.\n"
        );
    }
    println!(
        "| days | workers × concurrency | ideal jobs/s | jobs/s | ÷ ideal | worker CPU ms/day | CPU share workers / stand-in / PostgreSQL / PgBouncer / Redis | worker peak RSS MB | connections in use (max) | commits/job |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut holds_lines = Vec::new();
    for &workers in &cli.workers {
        for &days in &cli.days {
            for &per_worker in &cli.concurrency {
                let mut runs = Vec::new();
                for _ in 0..cli.runs {
                    runs.push(run(&cli, &bins, days, per_worker, workers).await?);
                }
                let concurrency = per_worker * workers;
                let shape = format!("{workers} × {per_worker}");
                let ideal = concurrency as f64 / (f64::from(days) * cli.latency_ms as f64 / 1000.0);
                let m = |f: fn(&Figures) -> f64, decimals| {
                    spread(runs.iter().map(f).collect(), decimals)
                };
                // With a 0 ms stand-in there is no ideal: the figure is the pipeline's own rate.
                let (ideal, ratio) = match cli.latency_ms {
                    0 => ("n/a".to_string(), "n/a".to_string()),
                    _ => (format!("{ideal:.0}"), m(|f| f.ratio, 3)),
                };
                println!(
                    "| {days} | {shape} | {ideal} | {} | {ratio} | {} | {} / {} / {} / {} / {} | {} | {} | {} |",
                    m(|f| f.jobs_per_s, 0),
                    m(|f| f.worker_cpu_per_day_ms, 3),
                    m(|f| f.worker_cpu_share, 2),
                    m(|f| f.standin_cpu_share, 2),
                    m(|f| f.postgres_cpu_share, 2),
                    m(|f| f.pgbouncer_cpu_share, 2),
                    m(|f| f.redis_cpu_share, 2),
                    m(|f| f.worker_peak_rss_mb, 0),
                    m(|f| f.connections_max as f64, 0),
                    m(|f| f.commits_per_job, 2),
                );
                let ops: Vec<String> = runs[0].holds.keys().cloned().collect();
                for op in ops {
                    let get = |i: usize| {
                        spread(
                            runs.iter()
                                .map(|f| f.holds.get(&op).map_or(0.0, |h| [h.0, h.1, h.2][i]))
                                .collect(),
                            2,
                        )
                    };
                    holds_lines.push(format!(
                        "| {days} | {shape} | {op} | {} | {} | {} |",
                        get(0),
                        get(1),
                        get(2)
                    ));
                }
            }
        }
    }
    println!(
        "\nConnection hold per statement (acquire → release, from the first worker's histogram; per job: that worker's statements ÷ all jobs):\n"
    );
    println!("| days | workers × concurrency | statement | p50 ms | p99 ms | per job |");
    println!("|---|---|---|---|---|---|");
    for line in holds_lines {
        println!("{line}");
    }
    Ok(())
}

async fn run(
    cli: &Cli,
    bins: &std::path::Path,
    days: u8,
    per_worker: usize,
    workers: usize,
) -> anyhow::Result<Figures> {
    let concurrency = per_worker * workers;
    let ideal = concurrency as f64 / (f64::from(days) * cli.latency_ms as f64 / 1000.0);
    let jobs = cli
        .jobs
        .unwrap_or_else(|| ((ideal * cli.seconds) as usize).max(concurrency * 2));
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let stores = match cli.scaled_out {
        true => Stores::scaled_out(&db, &cli.pgbouncer).await?,
        false => Stores::direct(&db, &redis),
    };
    let standin_addr = process::free_addr()?;
    let standin = Process::spawn(
        bins,
        "standin",
        &["--bench-answers"],
        &[
            ("STANDIN_BIND", standin_addr.to_string()),
            ("STANDIN_LATENCY_MS", cli.latency_ms.to_string()),
        ],
    )?;
    // Twice as many owners as jobs in flight, so the per-person cap (2) seldom holds one back.
    let ids = queue_jobs(&db.pool, &stores.redis, days, jobs, concurrency).await?;
    anyhow::ensure!(ids == jobs, "queued {ids} of {jobs}");

    let stats = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(db.options.clone().database("postgres"))
        .await?;
    let commits_before = commits(&stats, &db.name).await?;
    let postgres_before = process::cpu_of_all("postgres");
    let pgbouncer_before = process::cpu_of_all("pgbouncer");
    let redis_before = process::cpu_of_all("redis-server");
    let standin_before = standin.cpu()?;
    let started = Instant::now();
    let mut fleet = Vec::new();
    for _ in 0..workers {
        let metrics_addr = process::free_addr()?;
        let mut env = stores.env();
        env.extend([
            ("DATABASE_MAX_CONNECTIONS", cli.pool.to_string()),
            ("LLM_BASE_URL", format!("http://{standin_addr}/v1")),
            ("WORKER_CONCURRENCY", per_worker.to_string()),
            ("METRICS_BIND", metrics_addr.to_string()),
            ("BATCH_SCHEDULER", "false".to_string()),
        ]);
        fleet.push((Process::spawn(bins, "worker", &[], &env)?, metrics_addr));
    }
    let mut connections_max = 0i64;
    let deadline = started + Duration::from_secs(600);
    loop {
        for (worker, _) in &mut fleet {
            worker.check_alive()?;
        }
        let in_use: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = $1 AND application_name = 'menus' AND state <> 'idle'",
        )
        .bind(&db.name)
        .fetch_one(&stats)
        .await?;
        connections_max = connections_max.max(in_use);
        let done: i64 =
            sqlx::query_scalar("SELECT count(*) FROM generation_jobs WHERE status = 'succeeded'")
                .fetch_one(&db.pool)
                .await?;
        if done as usize == jobs {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {done} of {jobs} jobs finished in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let wall = started.elapsed().as_secs_f64();
    let mut worker_cpu = 0.0;
    let mut worker_peak_rss_mb = 0.0f64;
    for (worker, _) in &fleet {
        worker_cpu += worker.cpu()?.as_secs_f64();
        worker_peak_rss_mb = worker_peak_rss_mb.max(worker.peak_rss()? as f64 / 1e6);
    }
    let standin_cpu = (standin.cpu()? - standin_before).as_secs_f64();
    let postgres_cpu = process::cpu_of_all("postgres")
        .saturating_sub(postgres_before)
        .as_secs_f64();
    let pgbouncer_cpu = process::cpu_of_all("pgbouncer")
        .saturating_sub(pgbouncer_before)
        .as_secs_f64();
    let redis_cpu = process::cpu_of_all("redis-server")
        .saturating_sub(redis_before)
        .as_secs_f64();
    let page = reqwest::get(format!("http://{}/metrics", fleet[0].1))
        .await?
        .text()
        .await?;
    drop(fleet);
    drop(standin);

    // Days saved between the 10th and 90th percentile of their save times: the steady state,
    // for 1-day and 7-day jobs alike (a 7-day job's finish times come in waves).
    let (count, first, last): (i64, f64, f64) = sqlx::query_as(
        "WITH b AS (SELECT percentile_disc(0.1) WITHIN GROUP (ORDER BY created_at) AS lo,
                           percentile_disc(0.9) WITHIN GROUP (ORDER BY created_at) AS hi
                    FROM job_days)
         SELECT (SELECT count(*) FROM job_days, b WHERE created_at > lo AND created_at <= hi),
                extract(epoch FROM lo)::float8, extract(epoch FROM hi)::float8 FROM b",
    )
    .fetch_one(&db.pool)
    .await?;
    let jobs_per_s = count as f64 / (last - first).max(1e-3) / f64::from(days);
    // PostgreSQL's statistics reach pg_stat_database within a second of a transaction's end.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let commits_per_job = (commits(&stats, &db.name).await? - commits_before) as f64 / jobs as f64;
    let holds = prometheus::histograms(&page, "db_connection_held_seconds", "op")
        .into_iter()
        .map(|(op, h)| {
            let per_job = h.count / jobs as f64;
            (op, (h.quantile(0.5) * 1e3, h.quantile(0.99) * 1e3, per_job))
        })
        .collect();
    Ok(Figures {
        jobs_per_s,
        ratio: jobs_per_s / ideal,
        worker_cpu_per_day_ms: worker_cpu * 1e3 / (jobs as f64 * f64::from(days)),
        worker_cpu_share: worker_cpu / wall,
        standin_cpu_share: standin_cpu / wall,
        postgres_cpu_share: postgres_cpu / wall,
        pgbouncer_cpu_share: pgbouncer_cpu / wall,
        redis_cpu_share: redis_cpu / wall,
        worker_peak_rss_mb,
        connections_max,
        commits_per_job,
        holds,
    })
}

async fn commits(stats: &PgPool, database: &str) -> anyhow::Result<i64> {
    sqlx::query_scalar("SELECT xact_commit FROM pg_stat_database WHERE datname = $1")
        .bind(database)
        .fetch_one(stats)
        .await
        .context("read pg_stat_database")
}

/// Writes `jobs` queued jobs of `days` days (owners round-robin) and pushes them to the queue; returns how many were queued.
async fn queue_jobs(
    pool: &PgPool,
    redis: &RedisConfig,
    days: u8,
    jobs: usize,
    concurrency: usize,
) -> anyhow::Result<usize> {
    let owners: Vec<Uuid> = (0..concurrency * 2).map(|_| Uuid::now_v7()).collect();
    sqlx::query(
        "INSERT INTO users (id, email, password_hash)
         SELECT id, 'cook-' || id || '@example.com', 'x' FROM unnest($1::uuid[]) AS id",
    )
    .bind(&owners)
    .execute(pool)
    .await?;
    let options = MenuOptions {
        days: Some(i64::from(days)),
        ..MenuOptions::default()
    };
    let request = GenerationRequest::from_options(&options, default_start_date())
        .map_err(|e| anyhow::anyhow!("bench request: {e:?}"))?;
    let queue = shared::queue::Queue::connect(redis).await?;
    let mut queued = 0;
    for chunk in (0..jobs).collect::<Vec<_>>().chunks(10_000) {
        let ids: Vec<Uuid> = chunk.iter().map(|_| Uuid::now_v7()).collect();
        let job_owners: Vec<Uuid> = chunk.iter().map(|i| owners[i % owners.len()]).collect();
        sqlx::query(
            "INSERT INTO generation_jobs (id, owner_id, requested_by, request, max_attempts, days_total)
             SELECT id, owner_id, owner_id, $3, 3, $4 FROM unnest($1::uuid[], $2::uuid[]) AS p (id, owner_id)",
        )
        .bind(&ids)
        .bind(&job_owners)
        .bind(Json(&request))
        .bind(i32::from(days))
        .execute(pool)
        .await?;
        queued += queue.push(&ids).await?;
    }
    Ok(queued)
}
