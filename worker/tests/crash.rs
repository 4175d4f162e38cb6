//! A worker process killed with SIGKILL in the middle of a job: its lease is no longer renewed,
//! and another worker resumes the job within the lease, from its last checkpointed day, without
//! paying for a saved day again.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use shared::queue::Queue;
use standin::{Latency, StandIn};
use testkit::{TestDb, TestRedis, rows};
use uuid::Uuid;

const LEASE_SECS: u64 = 4;

/// The worker binary on this test's stores, with a short lease renewed every second.
fn worker(db: &TestDb, redis: &TestRedis, standin: &StandIn) -> Child {
    Command::new(env!("CARGO_BIN_EXE_worker"))
        .env_clear()
        .env("DATABASE_URL", db.url())
        .env("REDIS_URL", redis.config().url.expose_secret())
        .env("REDIS_PREFIX", &redis.prefix)
        .env("LLM_BASE_URL", standin.base_url())
        .env("METRICS_BIND", "off")
        .env("JOB_LEASE_SECS", LEASE_SECS.to_string())
        .env("JOB_LEASE_RENEW_SECS", "1")
        .env("QUEUE_HEARTBEAT_INTERVAL_MS", "200")
        .env("QUEUE_HEARTBEAT_TTL_MS", "1000")
        .env("QUEUE_REAP_INTERVAL_MS", "200")
        .env("QUEUE_PROMOTE_INTERVAL_MS", "50")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the worker binary")
}

async fn poll<T>(what: &str, within: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_job_resumes_elsewhere_within_the_lease_from_its_last_saved_day() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let standin = standin::spawn(standin::Config {
        latency: Latency::fixed(Duration::from_millis(700)),
        ..Default::default()
    })
    .await
    .unwrap();
    let queue = Queue::connect(&redis.config()).await.unwrap();
    let owner = rows::user(&db.pool).await;
    let job = rows::queued_job(&db.pool, owner, 5).await;
    queue.push(&[job]).await.unwrap();

    let mut first = worker(&db, &redis, &standin);
    let days_done = |job: Uuid| {
        let pool = db.pool.clone();
        async move {
            let days: i32 =
                sqlx::query_scalar("SELECT days_done FROM generation_jobs WHERE id = $1")
                    .bind(job)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            days
        }
    };
    poll("two days saved", Duration::from_secs(30), async || {
        (days_done(job).await >= 2).then_some(())
    })
    .await;
    first.kill().expect("SIGKILL");
    let killed = Instant::now();
    first.wait().unwrap();
    let saved_at_kill = days_done(job).await;
    let calls_at_kill = standin.requests().len();

    let mut second = worker(&db, &redis, &standin);
    let resumed_after = poll("a second attempt", Duration::from_secs(60), async || {
        let attempts: i64 =
            sqlx::query_scalar("SELECT count(*) FROM job_attempts WHERE job_id = $1")
                .bind(job)
                .fetch_one(&db.pool)
                .await
                .unwrap();
        (attempts >= 2).then(|| killed.elapsed())
    })
    .await;
    println!("resumed {resumed_after:?} after the kill (lease {LEASE_SECS} s)");
    // The lease bounds it; the rest is slack for a loaded machine.
    assert!(
        resumed_after < Duration::from_secs(LEASE_SECS + 5),
        "resumed only after {resumed_after:?}"
    );

    poll("the job succeeds", Duration::from_secs(60), async || {
        let status: String =
            sqlx::query_scalar("SELECT status::text FROM generation_jobs WHERE id = $1")
                .bind(job)
                .fetch_one(&db.pool)
                .await
                .unwrap();
        (status == "succeeded").then_some(())
    })
    .await;
    second.kill().unwrap();
    second.wait().unwrap();

    let after_kill: Vec<u8> = standin.requests()[calls_at_kill..]
        .iter()
        .filter_map(|c| c.day)
        .collect();
    assert!(
        after_kill.iter().all(|day| i32::from(*day) > saved_at_kill),
        "days saved before the kill ({saved_at_kill}) were asked for again: {after_kill:?}"
    );
    let outcomes: Vec<Option<String>> =
        sqlx::query_scalar("SELECT outcome FROM job_attempts WHERE job_id = $1 ORDER BY id")
            .bind(job)
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        outcomes,
        vec![Some("abandoned".into()), Some("succeeded".into())]
    );
}
