//! The `worker` binary as an operator starts it: configured only by environment variables, it
//! runs a queued job against the stand-in LLM, serves `/metrics` where `METRICS_BIND` says, and
//! stops cleanly on SIGTERM.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use shared::queue::Queue;
use testkit::{TestDb, TestRedis, rows};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// `GET /metrics` over plain HTTP/1.1; `None` while nothing listens yet.
fn scrape(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_runs_a_job_serves_metrics_and_stops_on_sigterm() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let standin = standin::spawn(standin::Config::default()).await.unwrap();
    let queue = Queue::connect(&redis.config()).await.unwrap();

    let owner = rows::user(&db.pool).await;
    let job = rows::queued_job(&db.pool, owner, 7).await;
    queue.push(&[job]).await.unwrap();

    let metrics_port = free_port();
    let mut worker = Command::new(env!("CARGO_BIN_EXE_worker"))
        .env_clear()
        .env("DATABASE_URL", db.url())
        .env("REDIS_URL", redis.config().url.expose_secret())
        .env("REDIS_PREFIX", &redis.prefix)
        .env("LLM_BASE_URL", standin.base_url())
        .env("METRICS_BIND", format!("127.0.0.1:{metrics_port}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the worker binary");

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status,): (String,) =
            sqlx::query_as("SELECT status::text FROM generation_jobs WHERE id = $1")
                .bind(job)
                .fetch_one(&db.pool)
                .await
                .unwrap();
        if status == "succeeded" {
            break;
        }
        if let Some(exit) = worker.try_wait().unwrap() {
            let output = worker.wait_with_output().unwrap();
            panic!(
                "the worker exited ({exit}) with the job {status}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        assert!(Instant::now() < deadline, "the job is still {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let menus: i64 = sqlx::query_scalar("SELECT count(*) FROM menus WHERE job_id = $1")
        .bind(job)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(menus, 1);

    let metrics = tokio::task::spawn_blocking(move || scrape(metrics_port))
        .await
        .unwrap()
        .expect("the worker serves /metrics on METRICS_BIND");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(
        metrics.lines().any(|l| l == "jobs_succeeded_total 1"),
        "{metrics}"
    );

    let terminated = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    assert!(terminated.success());
    let stopped = tokio::task::spawn_blocking(move || worker.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        stopped.status.success(),
        "SIGTERM is a clean stop, not {}: {}",
        stopped.status,
        String::from_utf8_lossy(&stopped.stderr)
    );
    assert_eq!(queue.ready_len().await.unwrap(), 0);
    assert_eq!(queue.delayed_len().await.unwrap(), 0);
}
