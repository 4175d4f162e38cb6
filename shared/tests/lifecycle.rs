//! The job's transitions against the real PostgreSQL and Redis, without a worker: fences that a
//! stale attempt cannot pass, the reconciler giving back what Redis lost (several at once, no
//! job pushed twice), a push Redis refused that fails nothing, and the per-owner cap on running
//! jobs under racing claims.

use std::time::Duration;

use domain::menu::MenuPlan;
use domain::request::{GenerationRequest, MenuOptions, default_start_date};
use shared::db::jobs::{self, Claim, ClaimedJob, Inserted, NewJob, Target};
use shared::job::{JobError, Usage};
use shared::lifecycle::reconcile::reconcile;
use shared::lifecycle::{Lifecycle, no_progress};
use shared::queue::Queue;
use shared::queue::ack::Settle;
use testkit::{PrivateRedis, TestDb, TestRedis, rows};
use uuid::Uuid;

const LEASE: Duration = Duration::from_secs(30);
const DEADLINE: Duration = Duration::from_secs(600);

async fn owner(db: &TestDb) -> Uuid {
    rows::user(&db.pool).await
}

async fn job(db: &TestDb, owner: Uuid, days: u8) -> Uuid {
    rows::queued_job(&db.pool, owner, days).await
}

async fn claim(life: &Lifecycle, id: Uuid, lease: Duration) -> ClaimedJob {
    match life
        .claim(id, "test-worker", lease, DEADLINE, 0)
        .await
        .unwrap()
    {
        Claim::Claimed(claimed) => *claimed,
        other => panic!("job {id} not claimable: {other:?}"),
    }
}

/// Requeues one job as an admin does, keeping its attempts; the ids requeued.
async fn requeue_as_admin(life: &Lifecycle, id: Uuid) -> Vec<Uuid> {
    let target = Target::Job { id, viewer: None };
    life.requeue(target, false, None, &no_progress)
        .await
        .unwrap()
}

/// Every id in the ready list, in order.
/// A one-day job of `owner` claimed and failed with `llm_server_error`, to be retried at
/// `retry_at` (`None`: failed for good).
async fn failed_job(
    db: &TestDb,
    life: &Lifecycle,
    owner: Uuid,
    retry_at: Option<chrono::DateTime<chrono::Utc>>,
) -> Uuid {
    let id = job(db, owner, 1).await;
    let claimed = claim(life, id, LEASE).await;
    let error = JobError::new("llm_server_error", "boom");
    life.fail(claimed.attempt(), &error, retry_at, Usage::default())
        .await
        .unwrap();
    id
}

async fn ready(queue: &Queue) -> Vec<Uuid> {
    let ids: Vec<String> = redis::AsyncCommands::lrange(
        &mut queue.redis().connection(),
        queue.redis().keys().ready(),
        0,
        -1,
    )
    .await
    .unwrap();
    ids.iter().map(|id| id.parse().unwrap()).collect()
}

/// Loses everything this test keeps in Redis, as a restart without persistence does.
async fn flush(redis: &TestRedis, queue: &Queue) {
    let keys = redis.keys().await;
    if !keys.is_empty() {
        let _: () = redis::AsyncCommands::del(&mut queue.redis().connection(), keys)
            .await
            .unwrap();
    }
}

/// A valid first day for the job, as the stand-in writes them.
fn day_one(claimed: &ClaimedJob) -> domain::menu::Day {
    let brief = domain::prompt::DayBrief::new(&claimed.job.request.0, 1, &[], Vec::new());
    standin::compose::compose(&brief, 1).day
}

#[tokio::test]
async fn a_stale_attempt_is_fenced_out_after_a_cancel_and_a_requeue_with_reset() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let queue = Queue::connect(&redis.config()).await.unwrap();
    let life = Lifecycle::new(db.pool.clone(), queue);
    let id = job(&db, owner(&db).await, 1).await;

    let stale = claim(&life, id, LEASE).await;
    let cancelled = life
        .cancel(Target::Job { id, viewer: None }, None)
        .await
        .unwrap();
    assert_eq!(cancelled, vec![id]);
    let requeued = life
        .requeue(Target::Job { id, viewer: None }, true, None, &no_progress)
        .await
        .unwrap();
    assert_eq!(requeued, vec![id]);
    let fresh = claim(&life, id, LEASE).await;
    assert_eq!(
        (stale.attempt().number, fresh.attempt().number),
        (1, 1),
        "the reset repeats the attempt number"
    );
    assert_ne!(stale.fence, fresh.fence, "but never the fence");

    let day = day_one(&stale);
    let usage = Usage {
        calls: 1,
        ..Usage::default()
    };
    assert!(
        !life
            .checkpoint(stale.attempt(), &day, usage, LEASE)
            .await
            .unwrap(),
        "the stale attempt saves nothing"
    );
    let plan = MenuPlan {
        days: vec![day.clone()],
    };
    assert_eq!(
        life.complete(stale.attempt(), &plan, usage).await.unwrap(),
        None
    );
    let error = JobError::new("llm_server_error", "late");
    assert_eq!(
        life.fail(stale.attempt(), &error, None, usage)
            .await
            .unwrap(),
        Settle::Done
    );
    let row = jobs::get(&mut db.pool.acquire().await.unwrap(), id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (row.status.as_str(), row.days_done, row.fence),
        ("running", 0, Some(fresh.fence.token)),
        "the new attempt owns the job untouched"
    );

    assert!(
        life.checkpoint(fresh.attempt(), &day, usage, LEASE)
            .await
            .unwrap()
    );
    assert!(
        life.complete(fresh.attempt(), &plan, usage)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn the_reconciler_pushes_each_due_job_redis_lost_once_even_with_two_at_once() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let queue = Queue::connect(&redis.config()).await.unwrap();
    let life = Lifecycle::new(db.pool.clone(), queue.clone());
    let owner = owner(&db).await;
    let mut due = Vec::new();
    let mut not_due = Vec::new();

    // Queued, never pushed (a push lost while Redis was away).
    due.push(job(&db, owner, 1).await);
    // Retrying and due.
    let past = chrono::Utc::now() - chrono::Duration::seconds(1);
    let retrying = failed_job(&db, &life, owner, Some(past)).await;
    due.push(retrying);
    // Snoozed, and the snooze is over.
    let snoozed = job(&db, owner, 1).await;
    let claimed = claim(&life, snoozed, LEASE).await;
    let why = jobs::Release::Snoozed {
        until: past,
        outage: false,
    };
    life.release(claimed.attempt(), why, Usage::default())
        .await
        .unwrap();
    due.push(snoozed);
    // Failed, then requeued by an admin.
    let requeued = failed_job(&db, &life, owner, None).await;
    requeue_as_admin(&life, requeued).await;
    due.push(requeued);
    // Running, its lease lapsed: its worker died.
    let abandoned = job(&db, owner, 1).await;
    claim(&life, abandoned, Duration::ZERO).await;
    due.push(abandoned);
    // Not due: running under a live lease, retrying later, finished.
    let live = job(&db, owner, 1).await;
    claim(&life, live, LEASE).await;
    not_due.push(live);
    let future = chrono::Utc::now() + chrono::Duration::hours(1);
    let later = failed_job(&db, &life, owner, Some(future)).await;
    not_due.push(later);
    let finished = failed_job(&db, &life, owner, None).await;
    not_due.push(finished);

    // Redis restarts without persistence: every id it held is gone.
    flush(&redis, &queue).await;
    let (a, b) = tokio::join!(
        reconcile(&life, Duration::ZERO),
        reconcile(&life, Duration::ZERO)
    );
    assert_eq!(
        a.unwrap() + b.unwrap(),
        due.len(),
        "each due job pushed by one reconciler or the other"
    );
    let mut queued = ready(&queue).await;
    queued.sort();
    due.sort();
    assert_eq!(queued, due, "each due job once");
    assert!(
        not_due.iter().all(|id| !queued.contains(id)),
        "no job that is not due"
    );
    assert_eq!(
        reconcile(&life, Duration::ZERO).await.unwrap(),
        0,
        "a job in the queue is not pushed again"
    );
    // An admin may push a queued job Redis lost too.
    flush(&redis, &queue).await;
    let again = requeue_as_admin(&life, due[0]).await;
    assert_eq!(again, vec![due[0]]);
    assert_eq!(ready(&queue).await, vec![due[0]]);
}

#[tokio::test]
async fn a_grace_leaves_a_lapsed_lease_to_its_worker_for_a_while() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let queue = Queue::connect(&redis.config()).await.unwrap();
    let life = Lifecycle::new(db.pool.clone(), queue.clone());
    let id = job(&db, owner(&db).await, 1).await;
    claim(&life, id, Duration::ZERO).await;
    assert_eq!(
        reconcile(&life, Duration::from_secs(60)).await.unwrap(),
        0,
        "within the grace, the lapsed lease is its worker's to renew"
    );
    assert_eq!(reconcile(&life, Duration::ZERO).await.unwrap(), 1);
}

#[tokio::test]
async fn a_submit_redis_refuses_is_accepted_and_queued_later_by_the_reconciler() {
    let db = TestDb::new().await;
    let mut server = PrivateRedis::start().await;
    let config = server.config();
    let queue = Queue::connect(&config).await.unwrap();
    let life = Lifecycle::new(db.pool.clone(), queue.clone());
    let owner = owner(&db).await;
    server.stop();

    let new = NewJob {
        owner_id: owner,
        requested_by: owner,
        request: GenerationRequest::from_options(&MenuOptions::default(), default_start_date())
            .unwrap(),
        max_attempts: 3,
        idempotency_key: None,
        batch_id: None,
    };
    let Inserted::Created(row) = life.submit(new).await.unwrap() else {
        panic!("created");
    };

    server.resume().await;
    // The connection manager reconnects on its next command.
    let mut pushed = 0;
    for _ in 0..50 {
        match reconcile(&life, Duration::ZERO).await {
            Ok(n) => {
                pushed = n;
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert_eq!(pushed, 1);
    assert_eq!(ready(&queue).await, vec![row.id]);
}

/// Claims all of `ids` at once, from as many tasks, under a cap of two.
async fn race(life: &Lifecycle, ids: &[Uuid]) -> Vec<ClaimedJob> {
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(ids.len()));
    let racers: Vec<_> = ids
        .iter()
        .map(|id| {
            let (life, id, start) = (life.clone(), *id, start.clone());
            tokio::spawn(async move {
                start.wait().await;
                life.claim(id, "racer", LEASE, DEADLINE, 2).await
            })
        })
        .collect();
    let mut claimed = Vec::new();
    for racer in racers {
        match racer.await.unwrap().unwrap() {
            Claim::Claimed(c) => claimed.push(*c),
            Claim::OwnerBusy => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    claimed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_racing_for_one_owners_jobs_start_no_more_than_the_cap() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let queue = Queue::connect(&redis.config()).await.unwrap();
    let life = Lifecycle::new(db.pool.clone(), queue);
    // Several rounds of sixteen claims at once, each round a new owner's sixteen jobs: without
    // the per-owner lock, claims whose snapshots predate each other's commits overshoot.
    for _ in 0..5 {
        let racing = owner(&db).await;
        let mut ids = Vec::new();
        for _ in 0..16 {
            ids.push(job(&db, racing, 1).await);
        }
        assert_eq!(
            race(&life, &ids).await.len(),
            2,
            "the cap holds under a race"
        );
    }

    let busy = owner(&db).await;
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(job(&db, busy, 1).await);
    }
    let someone_else = job(&db, owner(&db).await, 1).await;
    let claimed = race(&life, &ids).await;
    assert_eq!(claimed.len(), 2);
    // Another person is not held up by this one's jobs.
    claim_capped(&life, someone_else)
        .await
        .expect("another owner's job starts");

    // One of the two finishes: one more may start, and only one.
    let done = &claimed[0];
    let plan = MenuPlan {
        days: vec![day_one(done)],
    };
    life.checkpoint(done.attempt(), &plan.days[0], Usage::default(), LEASE)
        .await
        .unwrap();
    life.complete(done.attempt(), &plan, Usage::default())
        .await
        .unwrap();
    let waiting: Vec<Uuid> = ids
        .iter()
        .copied()
        .filter(|id| claimed.iter().all(|c| c.job.id != *id))
        .collect();
    let mut started = 0;
    for id in &waiting {
        if claim_capped(&life, *id).await.is_some() {
            started += 1;
        }
    }
    assert_eq!(started, 1);

    // A running job whose lease lapsed (its worker died) does not count against its owner.
    sqlx::query("UPDATE generation_jobs SET lease_expires_at = now() - interval '1 minute' WHERE owner_id = $1 AND status = 'running'")
        .bind(busy)
        .execute(&db.pool)
        .await
        .unwrap();
    let mut started = 0;
    for id in &waiting {
        if claim_capped(&life, *id).await.is_some() {
            started += 1;
        }
    }
    assert_eq!(started, 2);
}

/// Claims under a cap of two; `None` when the owner is at the cap.
async fn claim_capped(life: &Lifecycle, id: Uuid) -> Option<ClaimedJob> {
    match life
        .claim(id, "test-worker", LEASE, DEADLINE, 2)
        .await
        .unwrap()
    {
        Claim::Claimed(c) => Some(*c),
        Claim::OwnerBusy => None,
        other => panic!("job {id}: unexpected {other:?}"),
    }
}

#[tokio::test]
async fn a_stopped_attempt_leaves_a_taken_over_job_its_place_in_the_queue() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let queue = Queue::connect(&redis.config()).await.unwrap();
    let life = Lifecycle::new(db.pool.clone(), queue);
    let someone = owner(&db).await;

    // Taken over (its lease lapsed, another attempt claimed it): the stale delivery goes, the
    // job keeps its place and lane for the attempt that holds it.
    let id = job(&db, someone, 1).await;
    let stale = claim(&life, id, Duration::from_millis(1)).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let _current = claim(&life, id, LEASE).await;
    assert_eq!(
        life.stop(stale.attempt(), Usage::default()).await.unwrap(),
        Settle::Stale
    );

    // Cancelled: nothing more to do with it in the queue.
    let id = job(&db, someone, 1).await;
    let running = claim(&life, id, LEASE).await;
    life.cancel(Target::Job { id, viewer: None }, None)
        .await
        .unwrap();
    assert_eq!(
        life.stop(running.attempt(), Usage::default())
            .await
            .unwrap(),
        Settle::Done
    );
}
