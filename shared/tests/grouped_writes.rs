//! Group commit against the real PostgreSQL and Redis: concurrent submissions, checkpoints and
//! completions share statements, yet each write gets its own answer, fences still hold inside a
//! group, idempotency keys still make one job, and one bad write fails only itself.

use std::collections::HashSet;
use std::time::Duration;

use domain::menu::MenuPlan;
use domain::request::{GenerationRequest, MenuOptions, default_start_date};
use futures::future::join_all;
use shared::db::jobs::{self, Claim, ClaimedJob, Inserted, NewJob, Target};
use shared::job::Usage;
use shared::lifecycle::{Lifecycle, no_progress};
use shared::queue::Queue;
use testkit::{TestDb, TestRedis, rows};
use uuid::Uuid;

const LEASE: Duration = Duration::from_secs(30);
const DEADLINE: Duration = Duration::from_secs(600);

async fn claim(life: &Lifecycle, id: Uuid) -> ClaimedJob {
    match life
        .claim(id, "test-worker", LEASE, DEADLINE, 0)
        .await
        .unwrap()
    {
        Claim::Claimed(claimed) => *claimed,
        other => panic!("job {id} not claimable: {other:?}"),
    }
}

/// Day `number` of a job; `seed` makes each job's days its own.
fn day(
    claimed: &ClaimedJob,
    number: u8,
    earlier: &[domain::menu::Day],
    seed: u64,
) -> domain::menu::Day {
    let brief = domain::prompt::DayBrief::new(&claimed.job.request.0, number, earlier, Vec::new());
    let mut day = standin::compose::compose(&brief, seed * 10 + u64::from(number)).day;
    day.day_number = number;
    day
}

fn new_job(owner: Uuid, key: Option<&str>) -> NewJob {
    NewJob {
        owner_id: owner,
        requested_by: owner,
        request: GenerationRequest::from_options(&MenuOptions::default(), default_start_date())
            .unwrap(),
        max_attempts: 3,
        idempotency_key: key.map(str::to_string),
        batch_id: None,
    }
}

#[tokio::test]
async fn concurrent_checkpoints_and_completions_each_get_their_own_answer_and_fences_hold() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let queue = Queue::connect(&redis.config()).await.unwrap();
    let life = Lifecycle::new(db.pool.clone(), queue);
    let owner = rows::user(&db.pool).await;
    let mut ids = Vec::new();
    for _ in 0..30 {
        ids.push(rows::queued_job(&db.pool, owner, 2).await);
    }
    let mut attempts = Vec::new();
    for id in &ids {
        attempts.push(claim(&life, *id).await);
    }
    // The first job is cancelled and requeued: its first attempt is stale among the others.
    let target = Target::Job {
        id: ids[0],
        viewer: None,
    };
    life.cancel(target, None).await.unwrap();
    life.requeue(target, true, None, &no_progress)
        .await
        .unwrap();
    let fresh = claim(&life, ids[0]).await;
    let stale = attempts[0].clone();
    attempts.push(fresh);

    // Each attempt's usage is its own, so a mixed-up row would show.
    let usage = |i: usize| Usage {
        calls: i as i32 + 1,
        prompt_tokens: 100 * (i as i64 + 1),
        completion_tokens: 10 * (i as i64 + 1),
        snoozes: 0,
        cost_micros: 1_000 * (i as i64 + 1),
        batch_saved_micros: 7 * (i as i64 + 1),
    };
    let firsts: Vec<_> = attempts
        .iter()
        .enumerate()
        .map(|(i, a)| day(a, 1, &[], i as u64))
        .collect();
    let saved = join_all(
        attempts
            .iter()
            .zip(&firsts)
            .enumerate()
            .map(|(i, (a, d))| life.checkpoint(a.attempt(), d, usage(i), LEASE)),
    )
    .await;
    let saved: Vec<bool> = saved.into_iter().map(Result::unwrap).collect();
    assert!(
        !saved[0],
        "the stale attempt saves nothing, even inside a group"
    );
    assert!(
        saved[1..].iter().all(|s| *s),
        "every live attempt saved: {saved:?}"
    );

    let plans: Vec<MenuPlan> = attempts
        .iter()
        .zip(&firsts)
        .enumerate()
        .map(|(i, (a, first))| MenuPlan {
            days: vec![
                first.clone(),
                day(a, 2, std::slice::from_ref(first), i as u64),
            ],
        })
        .collect();
    let distinct_plans: HashSet<String> = plans
        .iter()
        .map(|p| format!("{:?}", p.days[1].meals[0].title))
        .collect();
    assert!(
        distinct_plans.len() > 5,
        "the jobs' plans differ, so a swap would show"
    );
    let menus = join_all(
        attempts
            .iter()
            .zip(&plans)
            .map(|(a, plan)| life.complete(a.attempt(), plan, Usage::default())),
    )
    .await;
    let menus: Vec<Option<Uuid>> = menus.into_iter().map(Result::unwrap).collect();
    assert_eq!(menus[0], None, "the stale attempt stores no menu");
    assert!(menus[1..].iter().all(Option::is_some));
    let distinct: HashSet<_> = menus.iter().flatten().collect();
    assert_eq!(distinct.len(), 30, "one menu per job");

    let mut conn = db.pool.acquire().await.unwrap();
    for (i, (attempt, plan)) in attempts.iter().zip(&plans).enumerate().skip(1) {
        let job = jobs::get(&mut conn, attempt.job.id).await.unwrap().unwrap();
        assert_eq!(
            (job.status.as_str(), job.days_done, job.menu_id),
            ("succeeded", 2, menus[i]),
            "job {i}"
        );
        assert_eq!(
            (
                job.llm_calls,
                job.prompt_tokens,
                job.cost_micros,
                job.batch_saved_micros
            ),
            (
                usage(i).calls,
                usage(i).prompt_tokens,
                usage(i).cost_micros,
                usage(i).batch_saved_micros
            ),
            "job {i} holds its own attempt's usage and cost"
        );
        let attempt_cost: i64 =
            sqlx::query_scalar("SELECT cost_micros FROM job_attempts WHERE id = $1")
                .bind(attempt.fence.token)
                .fetch_one(&mut *conn)
                .await
                .unwrap();
        assert_eq!(attempt_cost, usage(i).cost_micros, "attempt {i}'s cost");
        let stored: (sqlx::types::Json<MenuPlan>, i64) = sqlx::query_as(
            "SELECT m.plan, (SELECT count(*) FROM job_days d WHERE d.job_id = m.job_id)
             FROM menus m WHERE m.job_id = $1",
        )
        .bind(attempt.job.id)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        // Compared by titles: a float's last digit may not survive the JSON round trip.
        let titles = |plan: &MenuPlan| -> Vec<String> {
            plan.days
                .iter()
                .flat_map(|d| {
                    d.meals
                        .iter()
                        .map(|m| format!("{}: {}", d.day_number, m.title))
                })
                .collect()
        };
        assert_eq!(
            titles(&stored.0.0),
            titles(plan),
            "job {i} holds its own plan"
        );
        assert_eq!(
            stored.1, 2,
            "job {i}: both days saved, the last with the menu"
        );
    }
    let stale_row: (Option<String>, i32) =
        sqlx::query_as("SELECT outcome, llm_calls FROM job_attempts WHERE id = $1")
            .bind(stale.fence.token)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert_eq!(stale_row, (Some("cancelled".into()), 0));
}

#[tokio::test]
async fn concurrent_submissions_with_one_idempotency_key_make_one_job() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let queue = Queue::connect(&redis.config()).await.unwrap();
    let life = Lifecycle::new(db.pool.clone(), queue);
    let owner = rows::user(&db.pool).await;

    let submitted = join_all((0..20).map(|i| {
        let key = if i % 2 == 0 { Some("same-key") } else { None };
        life.submit(new_job(owner, key))
    }))
    .await;
    let mut keyed = HashSet::new();
    let mut created_with_key = 0;
    for (i, inserted) in submitted.into_iter().enumerate() {
        match (inserted.unwrap(), i % 2 == 0) {
            (Inserted::Created(row), true) => {
                created_with_key += 1;
                keyed.insert(row.id);
            }
            (Inserted::Existing(row), true) => {
                keyed.insert(row.id);
            }
            (Inserted::Created(_), false) => {}
            (Inserted::Existing(_), false) => panic!("a submission without a key found a job"),
        }
    }
    assert_eq!(
        (created_with_key, keyed.len()),
        (1, 1),
        "one job for the key"
    );
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM generation_jobs")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(jobs, 11);
    let queued: i64 = redis::AsyncCommands::llen(
        &mut life.queue().redis().connection(),
        life.queue().redis().keys().ready(),
    )
    .await
    .unwrap();
    assert_eq!(queued, 11, "each created job pushed once");
}

#[tokio::test]
async fn a_submission_postgresql_refuses_fails_alone_and_its_group_is_created() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let queue = Queue::connect(&redis.config()).await.unwrap();
    let life = Lifecycle::new(db.pool.clone(), queue);
    let owner = rows::user(&db.pool).await;

    // PostgreSQL's text cannot hold NUL: the statement that carries it fails.
    let submitted = join_all((0..10).map(|i| {
        let key = (i == 4).then_some("bad\0key");
        life.submit(new_job(owner, key))
    }))
    .await;
    for (i, inserted) in submitted.into_iter().enumerate() {
        match inserted {
            Err(e) => assert_eq!(i, 4, "only the bad submission fails: {e}"),
            Ok(Inserted::Created(_)) => assert_ne!(i, 4, "the bad submission was stored"),
            Ok(Inserted::Existing(_)) => panic!("no key was reused"),
        }
    }
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM generation_jobs")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(jobs, 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grouped_claims_of_two_processes_over_shared_owners_keep_the_cap_and_never_deadlock() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let queue = Queue::connect(&redis.config()).await.unwrap();
    // Two processes' lifecycles: their groups race each other over the same owners.
    let lives = [
        Lifecycle::new(db.pool.clone(), queue.clone()),
        Lifecycle::new(db.pool.clone(), queue),
    ];
    // Rounds of fresh owners: crossing locks deadlock only some of the time.
    for _ in 0..4 {
        let mut owners = Vec::new();
        for _ in 0..8 {
            owners.push(rows::user(&db.pool).await);
        }
        let mut ids = Vec::new();
        for _ in 0..6 {
            for owner in &owners {
                ids.push(rows::queued_job(&db.pool, *owner, 1).await);
            }
        }
        // Every job asked for by both processes (a duplicate delivery), all at once, owners
        // interleaved: groups that took their owners' locks in arrival order would cross.
        let asks: Vec<_> = ids
            .iter()
            .flat_map(|id| {
                lives.iter().map(move |life| {
                    let (life, id) = (life.clone(), *id);
                    async move {
                        let claim = life.claim(id, "racer", LEASE, DEADLINE, 2).await.unwrap();
                        (id, claim)
                    }
                })
            })
            .collect();
        // A deadlock would cost PostgreSQL's detection a second per cycle and fail groups; well
        // under a minute is the bound even on a loaded machine.
        let answers = tokio::time::timeout(Duration::from_secs(60), join_all(asks))
            .await
            .expect("grouped claims finish");
        let mut claimed_per_owner = std::collections::HashMap::<Uuid, usize>::new();
        let mut claimed_jobs = HashSet::new();
        for (id, claim) in answers {
            match claim {
                Claim::Claimed(c) => {
                    assert!(claimed_jobs.insert(id), "job {id} claimed twice");
                    *claimed_per_owner.entry(c.job.owner_id).or_default() += 1;
                }
                Claim::OwnerBusy | Claim::NotBefore(_) => {}
                Claim::Gone => panic!("job {id} gone"),
            }
        }
        assert_eq!(
            claimed_per_owner.len(),
            owners.len(),
            "every owner got jobs running"
        );
        assert!(
            claimed_per_owner.values().all(|n| *n == 2),
            "each owner runs exactly its cap of two: {claimed_per_owner:?}"
        );
    }
    let deadlocks: i64 = sqlx::query_scalar(
        "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(deadlocks, 0);
}
