//! What LLM calls cost, in money, against the real PostgreSQL: every write of an attempt adds
//! its usage's cost to the job and to the attempt's row, and its Batch API saving to the job,
//! exactly as it adds tokens, so the totals are the sum of every attempt whatever way each ended
//! (a day saved, the menu completed, a retry, a snooze, a cancelled attempt's stop).

use std::time::Duration;

use shared::db::jobs::{self, Claim, ClaimRequest, DayWrite, Fence, Release, Target};
use shared::job::{JobError, Usage};
use sqlx::PgConnection;
use testkit::{TestDb, rows};
use uuid::Uuid;

const LEASE: Duration = Duration::from_secs(30);

/// A new attempt at `job`, its fence.
async fn claim(conn: &mut PgConnection, job: Uuid) -> (Fence, i32) {
    let request = ClaimRequest {
        id: job,
        worker_id: "test-worker".into(),
        lease: LEASE,
        deadline: Duration::from_secs(600),
        owner_cap: 0,
    };
    match jobs::claim(conn, &request).await.unwrap() {
        Claim::Claimed(claimed) => (claimed.fence, claimed.job.attempts),
        other => panic!("job {job} not claimable: {other:?}"),
    }
}

/// A usage of one call costing `cost` micro-dollars, `saved` of them saved by the Batch API.
fn costing(cost: i64, saved: i64) -> Usage {
    Usage {
        calls: 1,
        prompt_tokens: 10,
        completion_tokens: 5,
        cost_micros: cost,
        batch_saved_micros: saved,
        ..Usage::default()
    }
}

/// The job's cost and saving, and each attempt's cost, first first.
async fn costs(conn: &mut PgConnection, job: Uuid) -> ((i64, i64), Vec<i64>) {
    let row = jobs::get(conn, job).await.unwrap().unwrap();
    let attempts: Vec<i64> =
        sqlx::query_scalar("SELECT cost_micros FROM job_attempts WHERE job_id = $1 ORDER BY id")
            .bind(job)
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    ((row.cost_micros, row.batch_saved_micros), attempts)
}

#[tokio::test]
async fn a_snooze_a_saved_day_and_the_completion_each_add_their_cost() {
    let db = TestDb::new().await;
    let owner = rows::user(&db.pool).await;
    let job = rows::queued_job(&db.pool, owner, 1).await;
    let mut conn = db.pool.acquire().await.unwrap();

    let (first, _) = claim(&mut conn, job).await;
    let snoozed = Release::Snoozed {
        until: chrono::Utc::now(),
        outage: false,
    };
    assert!(
        jobs::release(&mut conn, first, snoozed, costing(100, 10))
            .await
            .unwrap()
    );
    assert_eq!(costs(&mut conn, job).await, ((100, 10), vec![100]));

    let (second, number) = claim(&mut conn, job).await;
    let plan = testkit::plan();
    let day = DayWrite {
        fence: second,
        attempt_number: number,
        day_number: 1,
        day: jobs::to_json(&plan.days[0]).unwrap(),
        usage: costing(200, 20),
        lease: LEASE,
    };
    assert_eq!(
        jobs::save_days(&mut conn, std::slice::from_ref(&day))
            .await
            .unwrap(),
        [true]
    );
    assert_eq!(costs(&mut conn, job).await, ((300, 30), vec![100, 200]));
    // A retry of the same day after a lost reply saves nothing, and costs nothing twice.
    jobs::save_days(&mut conn, std::slice::from_ref(&day))
        .await
        .unwrap();
    assert_eq!(costs(&mut conn, job).await, ((300, 30), vec![100, 200]));

    jobs::complete(&mut conn, second, number, &plan, costing(400, 0))
        .await
        .unwrap()
        .expect("the attempt completes the job");
    assert_eq!(
        costs(&mut conn, job).await,
        ((700, 30), vec![100, 600]),
        "the job's cost is every attempt's; each attempt's is its own"
    );
}

#[tokio::test]
async fn a_failed_attempt_and_a_cancelled_one_add_their_cost_and_a_fenced_out_write_adds_none() {
    let db = TestDb::new().await;
    let owner = rows::user(&db.pool).await;
    let job = rows::queued_job(&db.pool, owner, 1).await;
    let mut conn = db.pool.acquire().await.unwrap();

    let (first, _) = claim(&mut conn, job).await;
    let error = JobError::new("llm_timeout", "the model did not answer in time");
    let retry_at = Some(chrono::Utc::now());
    jobs::fail_attempt(&mut conn, first, &error, retry_at, costing(50, 0))
        .await
        .unwrap()
        .expect("the attempt fails");
    assert_eq!(costs(&mut conn, job).await, ((50, 0), vec![50]));
    // The first attempt is over: a late write of it is fenced out and costs the job nothing.
    jobs::fail_attempt(&mut conn, first, &error, retry_at, costing(1_000, 0))
        .await
        .unwrap();
    assert_eq!(costs(&mut conn, job).await, ((50, 0), vec![50]));

    let (second, _) = claim(&mut conn, job).await;
    jobs::cancel(
        &mut conn,
        Target::Job {
            id: job,
            viewer: None,
        },
    )
    .await
    .unwrap();
    // The cancelled attempt's calls were made and billed: its stop records them.
    jobs::stop_attempt(&mut conn, second, costing(25, 5))
        .await
        .unwrap();
    assert_eq!(costs(&mut conn, job).await, ((75, 5), vec![50, 25]));

    let totals = jobs::usage_owned(&mut conn, owner).await.unwrap();
    assert_eq!(
        (totals.jobs, totals.cost_micros, totals.batch_saved_micros),
        (1, 75, 5)
    );
    assert_eq!(
        jobs::usage_of(&mut conn, owner).await.unwrap(),
        totals,
        "the owner submitted it too"
    );
}
