//! Many clients waiting on one API process: 10,000 long polls (`GET /v1/jobs/{id}?wait=25`),
//! then 10,000 Server-Sent Event streams (`GET /v1/jobs/{id}/events`), each on a job of its own.
//! While they wait, `--changes` of those jobs change one by one (a row update and the job event
//! a worker publishes); the figure is the time from the event's publication to the answer (or
//! the event) reaching its client, p50/p99, and the API's resident memory with everyone waiting.
//!
//! Run: `cargo build --release --bins && target/release/waiters` (or `bench/run.sh waiters`).
//! Needs an open-file limit above twice `--waiters` (`ulimit -n`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bench::process::{self, Api};
use bench::stats::{Sample, spread};
use bench::stores::Stores;
use clap::Parser;
use shared::queue::Queue;
use sqlx::PgPool;
use testkit::{TestDb, TestRedis};
use tokio::sync::oneshot;
use uuid::Uuid;

#[derive(Debug, Parser)]
struct Cli {
    /// Clients waiting at once, each on a job of its own.
    #[arg(long, default_value_t = 10_000)]
    waiters: usize,
    /// Jobs changed while they wait (the sample of change → answer times).
    #[arg(long, default_value_t = 200)]
    changes: usize,
    /// Runs (the figures are their median, with min and max).
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

/// How the clients wait.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Form {
    LongPoll,
    Events,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let bins = process::prepare()?;
    println!(
        "{} clients waiting on one API process, {} of their jobs changed one by one; median of {} runs (min–max)\n",
        cli.waiters, cli.changes, cli.runs
    );
    println!("| form | change → answer p50 ms | p99 ms | max ms | API RSS with all waiting, MB |");
    println!("|---|---|---|---|---|");
    for form in [Form::LongPoll, Form::Events] {
        let mut runs = Vec::new();
        for _ in 0..cli.runs {
            runs.push(run(&cli, &bins, form).await?);
        }
        let m = |f: fn(&(f64, f64, f64, f64)) -> f64| spread(runs.iter().map(f).collect(), 2);
        let name = match form {
            Form::LongPoll => "long poll `?wait=25`",
            Form::Events => "Server-Sent Events",
        };
        println!(
            "| {name} | {} | {} | {} | {} |",
            m(|r| r.0),
            m(|r| r.1),
            m(|r| r.2),
            m(|r| r.3)
        );
    }
    Ok(())
}

/// One run: p50, p99 and max change → answer in ms, and the API's RSS in MB.
async fn run(
    cli: &Cli,
    bins: &std::path::Path,
    form: Form,
) -> anyhow::Result<(f64, f64, f64, f64)> {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let api = Api::start(bins, &Stores::direct(&db, &redis)).await?;
    let owner: Uuid = sqlx::query_scalar("SELECT id FROM users LIMIT 1")
        .fetch_one(&db.pool)
        .await?;
    let jobs = queued_jobs(&db.pool, owner, cli.waiters).await?;
    // One connection per waiter, as separate clients would have.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(60))
        .build()?;
    let ready = Arc::new(tokio::sync::Semaphore::new(0));
    let mut answered = Vec::with_capacity(jobs.len());
    let mut tasks = tokio::task::JoinSet::new();
    for &job in &jobs {
        let (tx, rx) = oneshot::channel::<Instant>();
        answered.push(rx);
        let (http, base, token, ready) = (
            http.clone(),
            api.base.clone(),
            api.token.clone(),
            ready.clone(),
        );
        tasks.spawn(async move {
            match wait_on(&http, &base, &token, job, form, &ready).await {
                Ok(at) => drop(tx.send(at)),
                Err(e) => eprintln!("job {job}: {e:#}"),
            }
        });
    }
    // Every client is waiting once each has its first answer (events) or has been sent (polls).
    let deadline = Instant::now() + Duration::from_secs(60);
    while ready.available_permits() < jobs.len() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} clients waiting",
            ready.available_permits()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Requests sent are not yet requests waiting in the API: give them a moment to arrive.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_mb = api.process.rss()? as f64 / 1e6;

    let queue = Queue::connect(&redis.config()).await?;
    let mut times = Vec::with_capacity(cli.changes);
    for (i, (&job, rx)) in jobs.iter().zip(answered).take(cli.changes).enumerate() {
        sqlx::query(
            "UPDATE generation_jobs SET status = 'running', attempts = 1, started_at = now(),
                 updated_at = now() WHERE id = $1",
        )
        .bind(job)
        .execute(&db.pool)
        .await?;
        let published = Instant::now();
        shared::events::jobs_changed(queue.redis(), &[job]).await?;
        let at = tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .map_err(|_| anyhow::anyhow!("change {i}: no answer within 10 s"))??;
        times.push(at.saturating_duration_since(published));
    }
    tasks.abort_all();
    let sample = Sample::new(times);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Ok((
        ms(sample.percentile(50.0)),
        ms(sample.percentile(99.0)),
        ms(sample.percentile(100.0)),
        rss_mb,
    ))
}

/// Waits on `job` as `form` says; returns when the change arrived.
async fn wait_on(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    job: Uuid,
    form: Form,
    ready: &tokio::sync::Semaphore,
) -> anyhow::Result<Instant> {
    match form {
        Form::LongPoll => {
            let request = http
                .get(format!("{base}/v1/jobs/{job}?wait=25"))
                .bearer_auth(token)
                .send();
            ready.add_permits(1);
            let response = request.await?;
            anyhow::ensure!(response.status().is_success(), "{}", response.status());
            let at = Instant::now();
            let view: serde_json::Value = response.json().await?;
            anyhow::ensure!(
                view["status"] == "running",
                "answered before the change: {view}"
            );
            Ok(at)
        }
        Form::Events => {
            let mut response = http
                .get(format!("{base}/v1/jobs/{job}/events"))
                .bearer_auth(token)
                .send()
                .await?;
            anyhow::ensure!(response.status().is_success(), "{}", response.status());
            let mut seen = String::new();
            let mut first = true;
            while let Some(chunk) = response.chunk().await? {
                seen.push_str(std::str::from_utf8(&chunk)?);
                while let Some(end) = seen.find("\n\n") {
                    let block: String = seen.drain(..end + 2).collect();
                    if !block.contains("data: ") {
                        continue;
                    }
                    if first {
                        first = false;
                        ready.add_permits(1);
                    } else if block.contains("\"status\":\"running\"") {
                        return Ok(Instant::now());
                    }
                }
            }
            anyhow::bail!("the stream ended")
        }
    }
}

async fn queued_jobs(pool: &PgPool, owner: Uuid, n: usize) -> anyhow::Result<Vec<Uuid>> {
    let ids: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
    let request = domain::request::GenerationRequest::from_options(
        &domain::request::MenuOptions::default(),
        domain::request::default_start_date(),
    )
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    sqlx::query(
        "INSERT INTO generation_jobs (id, owner_id, requested_by, request, max_attempts, days_total)
         SELECT id, $2, $2, $3, 3, 1 FROM unnest($1::uuid[]) AS id",
    )
    .bind(&ids)
    .bind(owner)
    .bind(sqlx::types::Json(&request))
    .execute(pool)
    .await?;
    Ok(ids)
}
