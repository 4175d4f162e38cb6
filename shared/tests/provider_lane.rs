//! A provider-lane batch run against the real PostgreSQL and Redis: its lane is recorded on
//! the run (from the schedule's setting, or a manual start's), its jobs are created waiting
//! for the worker's batch lane, and nothing else runs them early: they are not pushed to
//! Redis, a delivery of one cannot claim it, and the reconciler does not push it. Once the
//! batch lane hands a job over (`provider_lane` false), it is an ordinary job again.

use std::time::Duration;

use chrono::{NaiveDate, Utc};
use domain::request::MenuOptions;
use shared::batch::enqueue::{self, EnqueueConfig, Started};
use shared::batch::schedule::{self, ScheduleConfig, Tz};
use shared::batch::{BatchLaneMode, RunStatus};
use shared::config::AttemptsConfig;
use shared::db::jobs::Claim;
use shared::lifecycle::{Lifecycle, reconcile};
use shared::queue::Queue;
use testkit::{TestDb, TestRedis, rows};
use uuid::Uuid;

fn enqueue_config() -> EnqueueConfig {
    EnqueueConfig {
        chunk: 100,
        lease_secs: 30,
        attempts: AttemptsConfig { max_attempts: 3 },
    }
}

async fn life(db: &TestDb, redis: &TestRedis) -> Lifecycle {
    let queue = Queue::connect(&redis.config()).await.unwrap();
    Lifecycle::new(db.pool.clone(), queue)
}

/// The jobs of `run` and whether each waits for the provider lane.
async fn jobs_of(db: &TestDb, run: Uuid) -> Vec<(Uuid, bool)> {
    sqlx::query_as("SELECT id, provider_lane FROM generation_jobs WHERE batch_id = $1 ORDER BY id")
        .bind(run)
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

async fn claim(life: &Lifecycle, id: Uuid) -> Claim {
    life.claim(
        id,
        "test-worker",
        Duration::from_secs(30),
        Duration::from_secs(600),
        0,
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_provider_lane_runs_jobs_wait_for_the_batch_lane_and_nothing_else_takes_them() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let life = life(&db, &redis).await;
    let admin = rows::user(&db.pool).await;
    rows::opted_in(&db.pool, 5, &MenuOptions::default()).await;
    let period = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
    let Started::Created(run) =
        enqueue::start_manual_in(&db.pool, Tz::UTC, period, admin, BatchLaneMode::Provider)
            .await
            .unwrap()
    else {
        panic!("a new run");
    };
    assert_eq!(run.lane, BatchLaneMode::Provider);
    let run = enqueue::drive(&life, run.id, &enqueue_config())
        .await
        .unwrap()
        .expect("enqueued here");
    assert_eq!((run.status, run.targeted), (RunStatus::Enqueued, 5));

    let jobs = jobs_of(&db, run.id).await;
    assert_eq!(jobs.len(), 5);
    assert!(jobs.iter().all(|(_, provider)| *provider), "{jobs:?}");
    assert_eq!(
        life.queue().ready_lens().await.unwrap(),
        (0, 0),
        "none pushed"
    );
    let ids: Vec<Uuid> = jobs.iter().map(|(id, _)| *id).collect();
    assert!(
        life.queue()
            .lanes_of(&ids)
            .await
            .unwrap()
            .iter()
            .all(Option::is_none)
    );

    // Delivered anyway (an admin's requeue, a stray push): the delivery is dropped.
    assert!(matches!(claim(&life, ids[0]).await, Claim::Gone));
    // The reconciler finds nothing of theirs to push, however due they look.
    assert_eq!(
        reconcile::reconcile(&life, Duration::ZERO).await.unwrap(),
        0
    );
    assert_eq!(life.queue().ready_lens().await.unwrap(), (0, 0));
    let status: String =
        sqlx::query_scalar("SELECT status::text FROM generation_jobs WHERE id = $1")
            .bind(ids[0])
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(status, "queued", "untouched by the refused claim");

    // Handed to the normal lane (as the batch lane's collection does), a job is claimable
    // and reconciled like any other.
    sqlx::query("UPDATE generation_jobs SET provider_lane = false WHERE id = ANY($1)")
        .bind(&ids[1..])
        .execute(&db.pool)
        .await
        .unwrap();
    assert!(matches!(claim(&life, ids[1]).await, Claim::Claimed(_)));
    assert_eq!(
        reconcile::reconcile(&life, Duration::ZERO).await.unwrap(),
        3,
        "the three other handed-over jobs, due and not in Redis"
    );
}

#[tokio::test]
async fn the_schedules_lane_is_recorded_on_each_run_it_fires() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let life = life(&db, &redis).await;
    rows::opted_in(&db.pool, 2, &MenuOptions::default()).await;
    let config = ScheduleConfig {
        cron: "0 0 * * * *".into(),
        timezone: Tz::UTC,
        name: "hourly".into(),
        catch_up_secs: 7_200,
        enabled: true,
        lane: BatchLaneMode::Provider,
    };
    let run = schedule::catch_up(&life, &config, &enqueue_config(), Utc::now())
        .await
        .unwrap()
        .expect("the latest fire time is run");
    assert_eq!(run.lane, BatchLaneMode::Provider);
    let jobs = jobs_of(&db, run.id).await;
    assert_eq!(jobs.len(), 2);
    assert!(jobs.iter().all(|(_, provider)| *provider));
    assert_eq!(life.queue().ready_lens().await.unwrap(), (0, 0));

    // Another schedule on the normal lane records its own.
    let normal = ScheduleConfig {
        name: "hourly-normal".into(),
        lane: BatchLaneMode::Normal,
        ..config
    };
    let run = schedule::catch_up(&life, &normal, &enqueue_config(), Utc::now())
        .await
        .unwrap()
        .expect("run");
    assert_eq!(run.lane, BatchLaneMode::Normal);
}
