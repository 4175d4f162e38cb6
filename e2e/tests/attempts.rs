//! A running attempt's life in the whole system: its lease outlives a slow day, a cancel stops
//! its calls within a second (by message, or by its next lease renewal when the message is
//! lost), and a shutdown leaves no job running without a worker.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use shared::db::jobs::{self, Target};
use standin::Latency;
use testkit::{SystemOptions, TestSystem, spawn_system};
use uuid::Uuid;

fn slow(latency_ms: u64) -> SystemOptions {
    SystemOptions {
        standin: standin::Config {
            latency: Latency::fixed(Duration::from_millis(latency_ms)),
            ..Default::default()
        },
        ..SystemOptions::default()
    }
}

/// Waits until the stand-in has seen `n` calls.
async fn calls_arrived(system: &TestSystem, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while system.standin.requests().len() < n {
        assert!(Instant::now() < deadline, "no call {n} within 30 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// The outcome and cost recorded for the job's attempts, first first.
async fn attempts(system: &TestSystem, job: Uuid) -> Vec<(Option<String>, i32)> {
    sqlx::query_as("SELECT outcome, llm_calls FROM job_attempts WHERE job_id = $1 ORDER BY id")
        .bind(job)
        .fetch_all(&system.api.db.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_stops_the_running_attempts_calls_within_a_second_and_frees_its_slot() {
    let mut options = slow(2_000);
    options.jobs.concurrency = 1;
    let system = spawn_system(options).await;
    let cook = system.api.user().await;
    let job = system.submit_job(&cook, json!({"days": 5})).await;
    calls_arrived(&system, 1).await;

    assert_eq!(system.cancel(&cook, job).await, 200);
    let cancelled_ms = unix_ms(SystemTime::now());
    // Past a call's own 2 s: had the call in flight not been dropped, it would be answered and
    // the next day's call out by now.
    tokio::time::sleep(Duration::from_millis(2_500)).await;

    let calls = system.standin.requests();
    let late: Vec<_> = calls
        .iter()
        .filter(|c| c.arrived_unix_ms > cancelled_ms + 1_000)
        .collect();
    assert!(
        late.is_empty(),
        "calls started a second after the cancel: {late:?}"
    );
    let answered_after: Vec<_> = calls
        .iter()
        .filter(|c| {
            c.answered_ms.is_some_and(|answered| {
                c.arrived_unix_ms as f64 + (answered - c.arrived_ms) > cancelled_ms as f64
            })
        })
        .collect();
    assert!(
        answered_after.is_empty(),
        "the call in flight at the cancel was dropped, not answered: {answered_after:?}"
    );
    let (view_status, view) = system.get_json(&cook, &format!("/v1/jobs/{job}")).await;
    assert_eq!(view_status, 200);
    assert_eq!(view["status"], "cancelled");
    assert_eq!(
        attempts(&system, job).await,
        vec![(Some("cancelled".to_string()), calls.len() as i32)],
        "the dropped call is counted against the attempt"
    );
    assert_eq!(view["usage"]["llm_calls"], calls.len());

    // Its one slot is free: the next job runs.
    let next = system.submit_job(&cook, json!({"days": 1})).await;
    let view: Value = system
        .wait_until_finished(&cook, next, Duration::from_secs(30))
        .await;
    assert_eq!(view["status"], "succeeded");
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_whose_message_is_lost_stops_the_attempt_at_its_next_lease_renewal() {
    let mut options = slow(1_000);
    options.jobs.lease_secs = 3;
    options.jobs.lease_renew_secs = 1;
    let system = spawn_system(options).await;
    let cook = system.api.user().await;
    let job = system.submit_job(&cook, json!({"days": 7})).await;
    calls_arrived(&system, 1).await;
    // Cancelled in the database alone: no message reaches the worker.
    let mut conn = system.api.db.pool.acquire().await.unwrap();
    let cancelled = jobs::cancel(
        &mut conn,
        Target::Job {
            id: job,
            viewer: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(cancelled.len(), 1);
    let at = system.standin.requests().len();
    // One renewal (1 s) and the call in flight (1 s), and slack for a loaded machine.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = system.standin.requests().len();
    assert!(
        after <= at + 1,
        "{} calls started after the cancel",
        after - at
    );
    let (outcome, _) = attempts(&system, job).await.remove(0);
    assert_eq!(outcome.as_deref(), Some("cancelled"));
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_day_slower_than_the_lease_keeps_its_lease_and_is_not_taken_over() {
    let mut options = slow(6_000);
    options.call_timeout = Duration::from_secs(20);
    options.workers = 2;
    // Renewed every second: a renewal could run 3 s late on a loaded machine and still hold it.
    options.jobs.lease_secs = 4;
    options.jobs.lease_renew_secs = 1;
    let system = spawn_system(options).await;
    let cook = system.api.user().await;
    let job = system.submit_job(&cook, json!({"days": 1})).await;
    calls_arrived(&system, 1).await;
    // Deliver it again to the other worker while the call runs, past the first lease, as a lost
    // acknowledgement or a reconciler would: the renewed lease turns it away.
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    system.deliver_again(job).await;
    let view = system
        .wait_until_finished(&cook, job, Duration::from_secs(30))
        .await;
    assert_eq!(view["status"], "succeeded");
    assert_eq!(view["attempts"], 1, "one attempt, never taken over");
    assert_eq!(system.standin.requests().len(), 1, "the day paid once");
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shutdown_leaves_no_job_running_without_a_worker() {
    let mut options = slow(1_500);
    options.jobs.shutdown_grace_secs = 1;
    let mut system = spawn_system(options).await;
    let cook = system.api.user().await;
    let mut ids = Vec::new();
    for _ in 0..8 {
        ids.push(system.submit_job(&cook, json!({"days": 4})).await);
    }
    calls_arrived(&system, 8).await;
    system.stop_worker().await;

    let running: i64 =
        sqlx::query_scalar("SELECT count(*) FROM generation_jobs WHERE status = 'running'")
            .fetch_one(&system.api.db.pool)
            .await
            .unwrap();
    assert_eq!(running, 0, "every running job was handed back");
    let open: i64 = sqlx::query_scalar("SELECT count(*) FROM job_attempts WHERE ended_at IS NULL")
        .fetch_one(&system.api.db.pool)
        .await
        .unwrap();
    assert_eq!(open, 0, "every attempt ended");
    let mut ready: Vec<String> = redis::AsyncCommands::lrange(
        &mut system.api.queue.redis().connection(),
        system.api.queue.redis().keys().ready(),
        0,
        -1,
    )
    .await
    .unwrap();
    ready.sort();
    let mut expected: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    expected.sort();
    assert_eq!(ready, expected, "each job back in the queue once");
    system.stop().await;
}
