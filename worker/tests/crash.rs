//! A worker process killed with SIGKILL in the middle of a job: its lease is no longer renewed,
//! and another worker resumes the job within the lease, from its last checkpointed day, without
//! paying for a saved day again. And killed while its batch lane waits on a provider batch:
//! another worker takes the batch over when its lease lapses (by the stored id, or by the
//! batch's metadata when the id was never stored), collects it, and never submits the work a
//! second time.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use domain::request::MenuOptions;
use secrecy::ExposeSecret;
use shared::batch::BatchLaneMode;
use shared::batch::enqueue::{self, EnqueueConfig, Started};
use shared::batch::schedule::Tz;
use shared::config::AttemptsConfig;
use shared::lifecycle::Lifecycle;
use shared::queue::Queue;
use standin::{Latency, StandIn};
use testkit::{TestDb, TestRedis, rows};
use uuid::Uuid;

const LEASE_SECS: u64 = 4;

/// The worker binary on this test's stores, with a short lease renewed every second, and
/// `env` set besides.
fn worker(db: &TestDb, redis: &TestRedis, standin: &StandIn, env: &[(&str, &str)]) -> Child {
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
        .envs(env.iter().copied())
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

    let mut first = worker(&db, &redis, &standin, &[]);
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

    let mut second = worker(&db, &redis, &standin, &[]);
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

/// The batch lane of the binary: it looks every 200 ms and holds a provider batch 2 s without
/// a word; no scheduler (the test starts its batch itself).
const BATCH_LANE: &[(&str, &str)] = &[
    ("BATCH_LANE_POLL_MS", "200"),
    ("BATCH_LANE_LEASE_SECS", "2"),
    ("BATCH_SCHEDULER", "false"),
];

/// Four people's two-day menus on the provider lane, enqueued (not pushed: they wait for a
/// batch lane); returns the batch run's id.
async fn provider_lane_run(db: &TestDb, redis: &TestRedis) -> Uuid {
    let queue = Queue::connect(&redis.config()).await.unwrap();
    let life = Lifecycle::new(db.pool.clone(), queue);
    let options = MenuOptions {
        days: Some(2),
        ..MenuOptions::default()
    };
    rows::opted_in(&db.pool, 4, &options).await;
    let admin = rows::user(&db.pool).await;
    let period = chrono::Utc::now().date_naive() + chrono::Days::new(1);
    let started =
        enqueue::start_manual_in(&db.pool, Tz::UTC, period, admin, BatchLaneMode::Provider)
            .await
            .unwrap();
    let (Started::Created(run) | Started::Existing(run)) = started;
    let config = EnqueueConfig {
        chunk: 100,
        lease_secs: 30,
        attempts: AttemptsConfig { max_attempts: 3 },
    };
    enqueue::drive(&life, run.id, &config)
        .await
        .unwrap()
        .expect("enqueued here");
    run.id
}

/// The provider batch as the database has it: its status, the worker holding it, and the
/// provider's id.
async fn provider_batch(db: &TestDb) -> Option<(String, Option<String>, Option<String>)> {
    sqlx::query_as("SELECT status, lease_owner, provider_batch_id FROM provider_batches")
        .fetch_optional(&db.pool)
        .await
        .unwrap()
}

/// Kills `worker` once its batch lane submitted the run's provider batch (which the stand-in
/// keeps running 8 s); returns the killed worker's id.
async fn kill_once_submitted(db: &TestDb, mut worker: Child) -> String {
    let owner = poll(
        "the provider batch submitted",
        Duration::from_secs(30),
        async || match provider_batch(db).await {
            Some((status, owner, _)) if status == "submitted" => owner,
            _ => None,
        },
    )
    .await;
    worker.kill().expect("SIGKILL");
    worker.wait().unwrap();
    owner
}

/// Runs `worker` until every job of `run` succeeded, then stops it.
async fn finish(db: &TestDb, run: Uuid, mut worker: Child) {
    poll(
        "every menu generated",
        Duration::from_secs(120),
        async || {
            let unfinished: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM generation_jobs WHERE batch_id = $1 AND status <> 'succeeded'",
        )
        .bind(run)
        .fetch_one(&db.pool)
        .await
        .unwrap();
            (unfinished == 0).then_some(())
        },
    )
    .await;
    worker.kill().unwrap();
    worker.wait().unwrap();
}

/// What a worker killed mid-batch must leave: one provider batch at the provider (one
/// `POST /v1/batches`) holding each job's request once, recorded under its id, collected by
/// a worker other than `killed`, and every day of every menu from it.
async fn assert_submitted_once_and_collected_elsewhere(
    db: &TestDb,
    standin: &StandIn,
    run: Uuid,
    killed: &str,
) {
    let batches = standin.batches();
    assert_eq!(batches.len(), 1, "the work was submitted once");
    let jobs: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM generation_jobs WHERE batch_id = $1 ORDER BY id")
            .bind(run)
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let expected: Vec<String> = jobs.iter().map(|j| format!("job-{j}")).collect();
    assert_eq!(batches[0].custom_ids(), expected);
    let (status, owner, remote) = provider_batch(db).await.expect("the provider batch");
    assert_eq!(status, "collected");
    assert_ne!(
        owner.as_deref(),
        Some(killed),
        "collected by the other worker"
    );
    assert_eq!(remote.as_deref(), Some(batches[0].id.as_str()));
    let normal_days: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM menus m, jsonb_array_elements(m.plan->'days') AS d
         WHERE d->'source'->>'lane' IS DISTINCT FROM 'batch'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(normal_days, 0, "every day came from the provider batch");
    assert!(
        standin.requests().is_empty(),
        "no day was asked on the normal lane"
    );
}

fn slow_batches() -> standin::Config {
    standin::Config {
        batches: standin::BatchBehaviour {
            completion_delay_ms: 8_000,
            ..standin::BatchBehaviour::default()
        },
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_provider_batch_is_taken_over_and_collected_without_a_second_submit() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let standin = standin::spawn(slow_batches()).await.unwrap();
    let run = provider_lane_run(&db, &redis).await;

    let first = worker(&db, &redis, &standin, BATCH_LANE);
    let killed = kill_once_submitted(&db, first).await;
    let second = worker(&db, &redis, &standin, BATCH_LANE);
    finish(&db, run, second).await;
    assert_submitted_once_and_collected_elsewhere(&db, &standin, run, &killed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_batch_whose_id_was_never_stored_is_found_by_its_metadata_not_created_again() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let standin = standin::spawn(slow_batches()).await.unwrap();
    let run = provider_lane_run(&db, &redis).await;

    let first = worker(&db, &redis, &standin, BATCH_LANE);
    let killed = kill_once_submitted(&db, first).await;
    // As if the worker had died between `POST /v1/batches` and storing the batch's id.
    sqlx::query(
        "UPDATE provider_batches
         SET status = 'preparing', provider_batch_id = NULL, provider_status = NULL,
             submitted_at = NULL",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let second = worker(&db, &redis, &standin, BATCH_LANE);
    finish(&db, run, second).await;
    assert_submitted_once_and_collected_elsewhere(&db, &standin, run, &killed).await;
}
