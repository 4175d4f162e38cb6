//! Throughput of the Redis queue under apalis with a handler that does nothing: how fast one
//! worker (concurrency 50) drains 100,000 queued ids, and that each ran exactly once.
//!
//! Run: `cargo run --release -p bench --bin queue [-- <jobs> <workers>]` (Redis must be up).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apalis::prelude::{Data, Monitor, WorkerBuilder, WorkerBuilderExt};
use shared::queue::Queue;
use shared::queue::ack::Settle;
use shared::queue::backend::{RedisBackend, new_worker_id};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

type Seen = Arc<Mutex<HashMap<Uuid, u32>>>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let jobs: usize = args.next().map_or(Ok(100_000), |a| a.parse())?;
    let workers: usize = args.next().map_or(Ok(1), |a| a.parse())?;
    let redis = testkit::TestRedis::new();
    let queue = Queue::connect(&redis.config()).await?;
    let ids: Vec<Uuid> = (0..jobs).map(|_| Uuid::new_v4()).collect();
    for chunk in ids.chunks(10_000) {
        queue.push(chunk).await?;
    }

    let seen: Seen = Arc::default();
    let stop = CancellationToken::new();
    let started = Instant::now();
    let monitor = {
        let (queue, seen, stop) = (queue.clone(), seen.clone(), stop.clone());
        let mut monitor = Monitor::new();
        for _ in 0..workers {
            let (queue, seen) = (queue.clone(), seen.clone());
            monitor = monitor.register(move |_| {
                let backend =
                    RedisBackend::new(queue.clone(), testkit::queue_config(), new_worker_id());
                WorkerBuilder::new(backend.worker_id().to_string())
                    .backend(backend)
                    .data(seen.clone())
                    .concurrency(50)
                    .build(count)
            });
        }
        tokio::spawn(monitor.run_with_signal(async move {
            stop.cancelled().await;
            Ok(())
        }))
    };
    while seen.lock().unwrap().len() < jobs {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "drain stalled"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    stop.cancel();
    monitor.await??;
    let duplicates = seen.lock().unwrap().values().filter(|n| **n > 1).count();
    let left = redis.keys().await;
    println!(
        "drained {jobs} ids with {workers} worker(s) × 50 in {:.2} s: {:.0} jobs/s, {duplicates} duplicates, {} keys left",
        took.as_secs_f64(),
        jobs as f64 / took.as_secs_f64(),
        left.len()
    );
    Ok(())
}

async fn count(id: Uuid, seen: Data<Seen>) -> Result<Settle, std::io::Error> {
    *seen.lock().unwrap().entry(id).or_default() += 1;
    Ok(Settle::Done)
}
