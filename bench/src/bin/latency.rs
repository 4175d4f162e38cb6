//! Latency of the paths a client feels, in a release build, on this machine:
//! - idle pick-up: a job pushed to an idle worker until its handler starts;
//! - `POST /v1/menus` and `GET /v1/jobs/{id}`, 2,000 requests each, the API alone;
//! - the admin dashboard's pages and `GET /v1/admin/stats` with those 2,000 jobs in the database
//!   (time and size of each page);
//! - submit → succeeded for a 3-day menu with an instant stand-in LLM.
//!
//! Run: `cargo run --release -p bench --bin latency` (PostgreSQL and Redis must be up).

use std::sync::Arc;
use std::time::{Duration, Instant};

use apalis::prelude::{Data, Monitor, WorkerBuilder, WorkerBuilderExt};
use bench::stats::Sample;
use serde_json::json;
use shared::queue::Queue;
use shared::queue::ack::Settle;
use shared::queue::backend::{RedisBackend, new_worker_id};
use testkit::{SystemOptions, TestSystem, spawn_system};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const REQUESTS: usize = 2_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    println!(
        "{}",
        idle_pick_up(1_000)
            .await?
            .line("idle pick-up (push → handler)")
    );

    let api_only = spawn_system(SystemOptions {
        workers: 0,
        ..SystemOptions::default()
    })
    .await;
    let cook = api_only.api.user().await;
    let mut submits = Vec::with_capacity(REQUESTS);
    let mut jobs = Vec::with_capacity(REQUESTS);
    for _ in 0..REQUESTS {
        let started = Instant::now();
        jobs.push(api_only.submit_job(&cook, json!({"days": 3})).await);
        submits.push(started.elapsed());
    }
    println!(
        "{}",
        Sample::new(submits).line("POST /v1/menus (API alone)")
    );
    let mut polls = Vec::with_capacity(REQUESTS);
    for job in &jobs {
        let started = Instant::now();
        let (status, _) = api_only.get_json(&cook, &format!("/v1/jobs/{job}")).await;
        polls.push(started.elapsed());
        anyhow::ensure!(status.is_success(), "poll answered {status}");
    }
    println!(
        "{}",
        Sample::new(polls).line("GET /v1/jobs/{id} (API alone)")
    );
    dashboard(&api_only, jobs[0]).await?;
    api_only.stop().await;

    let system = spawn_system(SystemOptions::default()).await;
    let cook = system.api.user().await;
    let mut runs = Vec::new();
    for _ in 0..50 {
        let started = Instant::now();
        let job = system.submit_job(&cook, json!({"days": 3})).await;
        let view = system
            .wait_until_finished(&cook, job, Duration::from_secs(30))
            .await;
        runs.push(started.elapsed());
        anyhow::ensure!(view["status"] == "succeeded", "job ended {view}");
    }
    println!(
        "{}",
        Sample::new(runs).line("submit → succeeded, 3 days, 0 ms LLM")
    );
    system.stop().await;
    Ok(())
}

/// Times the dashboard's pages (and the JSON statistics they are built from) as an admin's
/// browser fetches them: 200 requests each, with the session cookie.
async fn dashboard(system: &TestSystem, job: Uuid) -> anyhow::Result<()> {
    const PAGES: usize = 200;
    let admin = system.api.admin().await;
    let cookie = format!("menus_admin_session={}", admin.token);
    for (name, path) in [
        ("/admin", "/admin".to_string()),
        (
            "/admin/jobs?status=queued",
            "/admin/jobs?status=queued".to_string(),
        ),
        ("/admin/jobs/{id}", format!("/admin/jobs/{job}")),
        ("/v1/admin/stats", "/v1/admin/stats".to_string()),
    ] {
        let mut times = Vec::with_capacity(PAGES);
        let mut bytes = 0;
        for _ in 0..PAGES {
            let started = Instant::now();
            let response = system
                .api
                .http
                .get(system.api.url(&path))
                .header("cookie", &cookie)
                .bearer_auth(&admin.token)
                .send()
                .await?;
            anyhow::ensure!(
                response.status().is_success(),
                "{path}: {}",
                response.status()
            );
            bytes = response.bytes().await?.len();
            times.push(started.elapsed());
        }
        let label = format!("GET {name} ({:.1} KiB)", bytes as f64 / 1024.0);
        println!("{}", Sample::new(times).line(&label));
    }
    Ok(())
}

/// Pushes `samples` ids one at a time to an idle worker and times each until its handler runs.
async fn idle_pick_up(samples: usize) -> anyhow::Result<Sample> {
    let redis = testkit::TestRedis::new();
    let queue = Queue::connect(&redis.config()).await?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Instant>();
    let stop = CancellationToken::new();
    let monitor = {
        let (queue, stop) = (queue.clone(), stop.clone());
        let tx = Arc::new(tx);
        tokio::spawn(async move {
            Monitor::new()
                .register(move |_| {
                    let backend =
                        RedisBackend::new(queue.clone(), testkit::queue_config(), new_worker_id());
                    WorkerBuilder::new(backend.worker_id().to_string())
                        .backend(backend)
                        .data(tx.clone())
                        .concurrency(4)
                        .build(started)
                })
                .run_with_signal(async move {
                    stop.cancelled().await;
                    Ok(())
                })
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut latencies = Vec::with_capacity(samples);
    for _ in 0..samples {
        let pushed = Instant::now();
        queue.push(&[Uuid::new_v4()]).await?;
        let ran = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await?
            .ok_or_else(|| anyhow::anyhow!("the worker stopped"))?;
        latencies.push(ran - pushed);
        // Let the worker go idle again (its fetch parks in BLMOVE).
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.cancel();
    monitor.await??;
    Ok(Sample::new(latencies))
}

async fn started(
    _: Uuid,
    tx: Data<Arc<mpsc::UnboundedSender<Instant>>>,
) -> Result<Settle, std::io::Error> {
    let _ = tx.send(Instant::now());
    Ok(Settle::Done)
}
