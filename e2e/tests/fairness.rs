//! Fairness in the whole system: a person's job starts at once behind a large weekly batch (the
//! slots and the share of the budget kept for people), and one person's many jobs run two at a
//! time without holding up anyone else.

use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::request::MenuOptions;
use serde_json::json;
use standin::Latency;
use testkit::{SystemOptions, TestSystem, spawn_system};
use uuid::Uuid;

fn with_latency(ms: u64) -> SystemOptions {
    SystemOptions {
        standin: standin::Config {
            latency: Latency::fixed(Duration::from_millis(ms)),
            ..Default::default()
        },
        ..SystemOptions::default()
    }
}

/// When the job was created and when its first attempt started.
async fn created_and_started(system: &TestSystem, job: Uuid) -> (DateTime<Utc>, DateTime<Utc>) {
    let (created, started): (DateTime<Utc>, Option<DateTime<Utc>>) =
        sqlx::query_as("SELECT created_at, started_at FROM generation_jobs WHERE id = $1")
            .bind(job)
            .fetch_one(&system.pool)
            .await
            .unwrap();
    (created, started.expect("started"))
}

async fn unfinished_in(system: &TestSystem, batch: Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM generation_jobs WHERE batch_id = $1 AND finished_at IS NULL",
    )
    .bind(batch)
    .fetch_one(&system.pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_persons_job_starts_at_once_behind_a_two_thousand_job_batch() {
    // Sixteen slots, four of them kept for people; each call takes 50 ms.
    let mut options = with_latency(50);
    options.jobs.concurrency = 16;
    let system = spawn_system(options).await;
    let one_day = MenuOptions {
        days: Some(1),
        ..MenuOptions::default()
    };
    let (batch, _) = system.weekly_batch(2_000, &one_day).await;
    // Let the batch fill its twelve slots.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let cook = system.api.user().await;
    let job = system.submit_job(&cook, json!({"days": 1})).await;
    let view = system
        .wait_until_finished(&cook, job, Duration::from_secs(60))
        .await;
    assert_eq!(view["status"], "succeeded", "{view}");
    let (created, started) = created_and_started(&system, job).await;
    let left = unfinished_in(&system, batch).await;
    // Claimed from a kept slot the moment it was queued; 2 s is generous for a loaded machine,
    // while waiting for the batch's 2,000 jobs (12 at a time, 50 ms each) would take 8 s.
    assert!(
        (started - created).to_std().unwrap() < Duration::from_secs(2),
        "the person's job waited {} ms",
        (started - created).num_milliseconds()
    );
    assert!(left > 500, "the batch was still running: {left} jobs left");
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_persons_ten_jobs_run_two_at_a_time_and_hold_up_nobody() {
    // Four slots, so waiting jobs that held slots would lock others out; calls take 300 ms.
    let mut options = with_latency(300);
    options.jobs.concurrency = 4;
    options.jobs.user_running_cap = 2;
    let system = spawn_system(options).await;
    let busy = system.api.user().await;
    let mut jobs = Vec::new();
    for _ in 0..10 {
        jobs.push(system.submit_job(&busy, json!({"days": 1})).await);
    }
    let other = system.api.user().await;
    let theirs = system.submit_job(&other, json!({"days": 1})).await;
    let mine = jobs.iter().map(|job| (&busy, *job));
    for (who, job) in mine.chain([(&other, theirs)]) {
        let view = system
            .wait_until_finished(who, job, Duration::from_secs(60))
            .await;
        assert_eq!(view["status"], "succeeded", "{view}");
    }

    // The most attempts of the busy person's jobs running at any moment.
    let overlap: i64 = sqlx::query_scalar(
        "SELECT max((SELECT count(*) FROM job_attempts b
                     JOIN generation_jobs g ON g.id = b.job_id
                     WHERE g.owner_id = $1 AND b.started_at <= a.started_at
                       AND (b.ended_at IS NULL OR b.ended_at > a.started_at)))
         FROM job_attempts a JOIN generation_jobs g ON g.id = a.job_id WHERE g.owner_id = $1",
    )
    .bind(busy.id)
    .fetch_one(&system.pool)
    .await
    .unwrap();
    assert_eq!(overlap, 2, "the cap holds, and is used");
    // The other person's job was claimed at once: two slots were free all along.
    let (created, started) = created_and_started(&system, theirs).await;
    assert!(
        (started - created).to_std().unwrap() < Duration::from_secs(2),
        "another person's job waited {} ms",
        (started - created).num_milliseconds()
    );
    system.stop().await;
}
