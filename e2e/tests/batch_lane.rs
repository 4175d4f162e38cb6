//! The batch lane end to end: weekly batches on the provider lane go through the stand-in's
//! Batch API (one whole-menu request per person), and every person still gets a menu whose
//! every day passes the rules. What the batch answered well is kept; what it got wrong, did
//! not finish or failed is generated on the normal lane; each person's request is in exactly
//! one provider batch; and the limits cut the work into several batches.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use domain::menu::MenuPlan;
use domain::prompt::DayBrief;
use domain::request::{GenerationRequest, MenuOptions};
use domain::rules;
use shared::batch::BatchLaneMode;
use shared::db::admin::JobFilter;
use shared::db::jobs::Target;
use shared::lifecycle::{Lifecycle, no_progress};
use shared::llm::CallId;
use sqlx::types::Json;
use standin::BatchBehaviour;
use testkit::{SystemOptions, TestSystem, spawn_system};
use uuid::Uuid;

/// A system whose workers' batch lane looks every 200 ms, over a stand-in whose batches
/// behave as `batches` says; `tune` changes the rest.
async fn system(
    workers: usize,
    batches: BatchBehaviour,
    tune: impl FnOnce(&mut SystemOptions),
) -> TestSystem {
    let mut options = SystemOptions {
        standin: standin::Config {
            batches,
            ..Default::default()
        },
        workers,
        ..SystemOptions::default()
    };
    options.batch_lane.poll = Duration::from_millis(200);
    tune(&mut options);
    spawn_system(options).await
}

/// Each batch ends a second after it was created.
fn behaviour() -> BatchBehaviour {
    BatchBehaviour {
        completion_delay_ms: 1_000,
        ..BatchBehaviour::default()
    }
}

/// Waits (generously) until every job of the batch run is finished; panics on a job that
/// did not succeed.
async fn wait_for_menus(system: &TestSystem, run: Uuid, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let statuses: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status::text, count(*) FROM generation_jobs WHERE batch_id = $1 GROUP BY 1",
        )
        .bind(run)
        .fetch_all(&system.pool)
        .await
        .unwrap();
        let unfinished: i64 = statuses
            .iter()
            .filter(|(s, _)| ["queued", "running", "retrying"].contains(&s.as_str()))
            .map(|(_, n)| n)
            .sum();
        if unfinished == 0 {
            assert!(
                statuses.iter().all(|(s, _)| s == "succeeded"),
                "every job succeeds: {statuses:?}"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still unfinished after {within:?}: {statuses:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A job of the run with its menu and the problems the batch lane found per day.
struct Menu {
    job: Uuid,
    request: GenerationRequest,
    plan: MenuPlan,
    day_problems: BTreeMap<String, Vec<String>>,
}

impl Menu {
    /// The numbers of the days `lane` produced (`batch` or `normal`).
    fn days_from(&self, lane: &str) -> Vec<u8> {
        self.plan
            .days
            .iter()
            .filter(|d| d.source.as_ref().is_some_and(|s| s.lane == lane))
            .map(|d| d.day_number)
            .collect()
    }
}

async fn menus(system: &TestSystem, run: Uuid) -> Vec<Menu> {
    type Row = (
        Uuid,
        Json<GenerationRequest>,
        Json<MenuPlan>,
        Json<BTreeMap<String, Vec<String>>>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT j.id, j.request, m.plan, j.day_problems
         FROM generation_jobs j JOIN menus m ON m.job_id = j.id
         WHERE j.batch_id = $1 ORDER BY j.id",
    )
    .bind(run)
    .fetch_all(&system.pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(job, request, plan, problems)| Menu {
            job,
            request: request.0,
            plan: plan.0,
            day_problems: problems.0,
        })
        .collect()
}

/// The provider batches as recorded: (requests, status, provider status).
async fn provider_batches(system: &TestSystem) -> Vec<(i32, String, Option<String>)> {
    sqlx::query_as(
        "SELECT requests, status, provider_status FROM provider_batches ORDER BY created_at",
    )
    .fetch_all(&system.pool)
    .await
    .unwrap()
}

/// How many times each job's request went into a provider batch at the stand-in.
fn submitted_requests(system: &TestSystem) -> HashMap<Uuid, usize> {
    let mut counts = HashMap::new();
    for batch in system.standin.batches() {
        for id in batch.custom_ids() {
            let job = id.strip_prefix("job-").and_then(|j| j.parse().ok());
            *counts.entry(job.expect("a job's custom id")).or_default() += 1;
        }
    }
    counts
}

/// The jobs the normal lane called the model for, with how many calls each.
fn chat_calls(system: &TestSystem) -> HashMap<Uuid, usize> {
    let mut calls = HashMap::new();
    for request in system.standin.requests() {
        let id: CallId = request
            .client_request_id
            .as_deref()
            .and_then(|id| id.parse().ok())
            .expect("a call names its job");
        *calls.entry(id.job).or_default() += 1;
    }
    calls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_people_get_their_week_through_the_batch_lane_and_refused_days_are_asked_again()
{
    // One whole-menu answer in ten breaks a rule on one of its days.
    let system = system(
        2,
        BatchBehaviour {
            broken_day_every: Some(10),
            ..behaviour()
        },
        |_| {},
    )
    .await;
    let (run, people) = system
        .weekly_batch_in(BatchLaneMode::Provider, 200, &MenuOptions::default())
        .await;
    assert_eq!(people.len(), 200);
    wait_for_menus(&system, run, Duration::from_secs(300)).await;

    let menus = menus(&system, run).await;
    assert_eq!(menus.len(), 200);
    let mut asked_again = 0;
    for menu in &menus {
        assert_eq!(menu.plan.days.len(), usize::from(menu.request.days));
        for day in &menu.plan.days {
            let brief = DayBrief::new(&menu.request, day.day_number, &menu.plan.days, vec![]);
            let broken = rules::check_day(&brief, day);
            assert!(
                broken.is_empty(),
                "job {} day {}: {broken:?}",
                menu.job,
                day.day_number
            );
            assert!(day.source.is_some(), "every day says where it came from");
        }
        // Exactly the days the batch's answer got wrong were generated on the normal lane.
        let refused: Vec<u8> = menu
            .day_problems
            .keys()
            .map(|k| k.parse().unwrap())
            .collect();
        assert_eq!(menu.days_from("normal"), refused, "job {}", menu.job);
        asked_again += refused.len();
    }
    println!(
        "{asked_again} days asked again on the normal lane, in {} provider batches",
        system.standin.batches().len()
    );
    assert!(
        (10..=40).contains(&asked_again),
        "about one menu in ten had a day asked again: {asked_again}"
    );

    // The normal lane called the model only for those jobs.
    let calls = chat_calls(&system);
    let with_problems: HashSet<Uuid> = menus
        .iter()
        .filter(|m| !m.day_problems.is_empty())
        .map(|m| m.job)
        .collect();
    assert_eq!(calls.keys().copied().collect::<HashSet<_>>(), with_problems);
    assert!(calls.values().sum::<usize>() >= asked_again);

    // Each person's request went into exactly one provider batch, and no batch was created
    // twice.
    let submitted = submitted_requests(&system);
    assert_eq!(submitted.len(), 200);
    assert!(submitted.values().all(|n| *n == 1), "{submitted:?}");
    let recorded = provider_batches(&system).await;
    assert_eq!(recorded.len(), system.standin.batches().len());
    assert!(
        recorded
            .iter()
            .all(|(_, status, provider)| status == "collected"
                && provider.as_deref() == Some("completed"))
    );

    // What the batch lane saved is on the jobs and the batches.
    let (cost, saved, cheaper): (i64, i64, i64) = sqlx::query_as(
        "SELECT sum(cost_micros)::bigint, sum(saved_micros)::bigint,
                (SELECT count(*) FROM generation_jobs WHERE batch_id = $1 AND batch_saved_micros > 0)
         FROM provider_batches",
    )
    .bind(run)
    .fetch_one(&system.pool)
    .await
    .unwrap();
    assert!(cost > 0 && saved > 0, "cost {cost}, saved {saved}");
    assert_eq!(cheaper, 200);
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_provider_batch_expiring_half_done_keeps_that_half_and_the_normal_lane_does_the_rest() {
    let system = system(
        1,
        BatchBehaviour {
            expire_after_fraction: Some(0.5),
            ..behaviour()
        },
        |_| {},
    )
    .await;
    let (run, _) = system
        .weekly_batch_in(BatchLaneMode::Provider, 10, &MenuOptions::default())
        .await;
    wait_for_menus(&system, run, Duration::from_secs(120)).await;

    let (status, completed, expired): (Option<String>, i32, i32) =
        sqlx::query_as("SELECT provider_status, completed, expired FROM provider_batches")
            .fetch_one(&system.pool)
            .await
            .unwrap();
    assert_eq!(
        (status.as_deref(), completed, expired),
        (Some("expired"), 5, 5)
    );
    let menus = menus(&system, run).await;
    let calls = chat_calls(&system);
    let (kept, redone): (Vec<&Menu>, Vec<&Menu>) = menus
        .iter()
        .partition(|m| m.days_from("batch").len() == m.plan.days.len());
    assert_eq!((kept.len(), redone.len()), (5, 5));
    // The done half cost no call of the normal lane; the other half was generated there,
    // every day of it.
    assert!(kept.iter().all(|m| !calls.contains_key(&m.job)));
    for menu in redone {
        assert_eq!(menu.days_from("normal").len(), menu.plan.days.len());
        assert!(calls[&menu.job] >= menu.plan.days.len());
    }
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_request_limit_splits_the_work_into_several_provider_batches() {
    let system = system(2, behaviour(), |o| o.batch_lane.max_requests = 4).await;
    let (run, _) = system
        .weekly_batch_in(BatchLaneMode::Provider, 10, &MenuOptions::default())
        .await;
    wait_for_menus(&system, run, Duration::from_secs(120)).await;

    let mut sizes: Vec<i32> = provider_batches(&system)
        .await
        .iter()
        .map(|b| b.0)
        .collect();
    sizes.sort_unstable();
    assert_eq!(sizes, [2, 4, 4]);
    let submitted = submitted_requests(&system);
    assert_eq!(submitted.len(), 10);
    assert!(submitted.values().all(|n| *n == 1));
    assert!(chat_calls(&system).is_empty(), "every answer was kept");
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_enqueued_token_limit_holds_a_batch_back_until_the_one_before_finished() {
    // Room for one request's tokens at a time: each batch is one request, and the next is
    // gathered only once the provider holds nothing.
    let system = system(2, behaviour(), |o| o.batch_lane.max_enqueued_tokens = 1).await;
    let (run, _) = system
        .weekly_batch_in(BatchLaneMode::Provider, 3, &MenuOptions::default())
        .await;
    wait_for_menus(&system, run, Duration::from_secs(120)).await;

    type Span = (
        chrono::DateTime<chrono::Utc>,
        Option<chrono::DateTime<chrono::Utc>>,
    );
    let spans: Vec<Span> =
        sqlx::query_as("SELECT created_at, finished_at FROM provider_batches ORDER BY created_at")
            .fetch_all(&system.pool)
            .await
            .unwrap();
    assert_eq!(spans.len(), 3);
    for pair in spans.windows(2) {
        let finished = pair[0].1.expect("finished");
        assert!(
            pair[1].0 >= finished,
            "a batch was gathered while another was open: {spans:?}"
        );
    }
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_provider_batch_whose_jobs_were_all_cancelled_is_cancelled_at_the_provider() {
    // The provider would take a minute: long enough to cancel everything first.
    let system = system(
        1,
        BatchBehaviour {
            completion_delay_ms: 60_000,
            ..behaviour()
        },
        |_| {},
    )
    .await;
    let (run, _) = system
        .weekly_batch_in(BatchLaneMode::Provider, 3, &MenuOptions::default())
        .await;
    let life = Lifecycle::new(system.pool.clone(), system.api.queue.clone());
    wait_until("the provider batch submitted", async || {
        provider_batches(&system)
            .await
            .first()
            .is_some_and(|b| b.1 == "submitted")
    })
    .await;
    let filter = JobFilter {
        batch_id: Some(run),
        ..JobFilter::default()
    };
    let cancelled = life.cancel(Target::Matching(&filter), None).await.unwrap();
    assert_eq!(cancelled.len(), 3);

    wait_until("the provider batch collected", async || {
        provider_batches(&system)
            .await
            .first()
            .is_some_and(|b| b.1 == "collected")
    })
    .await;
    let batches = provider_batches(&system).await;
    assert_eq!(batches[0].2.as_deref(), Some("cancelled"));
    assert_eq!(
        system.standin.batches()[0].status.as_str(),
        "cancelled",
        "cancelled at the provider, not run to the end"
    );
    assert!(chat_calls(&system).is_empty());

    // Off the provider lane: a requeued job runs on the normal lane.
    let job = cancelled[0];
    life.requeue(
        Target::Job {
            id: job,
            viewer: None,
        },
        false,
        None,
        &no_progress,
    )
    .await
    .unwrap();
    wait_until("the requeued job's menu", async || {
        let status: String =
            sqlx::query_scalar("SELECT status::text FROM generation_jobs WHERE id = $1")
                .bind(job)
                .fetch_one(&system.pool)
                .await
                .unwrap();
        status == "succeeded"
    })
    .await;
    assert_eq!(chat_calls(&system).keys().collect::<Vec<_>>(), [&job]);
    system.stop().await;
}

/// Waits (generously: 60 s) until `done`.
async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done().await {
        assert!(Instant::now() < deadline, "{what}: not within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn work_the_provider_refuses_is_generated_on_the_normal_lane() {
    // The provider takes two requests per file; the lane is set for more.
    let system = system(
        1,
        BatchBehaviour {
            max_requests: 2,
            ..behaviour()
        },
        |_| {},
    )
    .await;
    let (run, _) = system
        .weekly_batch_in(BatchLaneMode::Provider, 3, &MenuOptions::default())
        .await;
    wait_for_menus(&system, run, Duration::from_secs(120)).await;

    let batches = provider_batches(&system).await;
    assert_eq!(batches.len(), 1);
    assert_eq!(
        (batches[0].1.as_str(), batches[0].2.as_deref()),
        ("collected", Some("refused"))
    );
    assert!(system.standin.batches().is_empty(), "no batch was created");
    for menu in menus(&system, run).await {
        assert_eq!(menu.days_from("normal").len(), menu.plan.days.len());
    }
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_shutting_down_lets_go_of_its_provider_batches_at_once() {
    let mut system = system(
        1,
        BatchBehaviour {
            completion_delay_ms: 60_000,
            ..behaviour()
        },
        |_| {},
    )
    .await;
    system
        .weekly_batch_in(BatchLaneMode::Provider, 2, &MenuOptions::default())
        .await;
    let pool = system.pool.clone();
    let leased = async || -> Option<(String, Option<chrono::DateTime<chrono::Utc>>)> {
        sqlx::query_as("SELECT status, lease_expires_at FROM provider_batches")
            .fetch_optional(&pool)
            .await
            .unwrap()
    };
    wait_until("the provider batch submitted", async || {
        leased()
            .await
            .is_some_and(|(status, _)| status == "submitted")
    })
    .await;
    assert!(
        leased().await.unwrap().1.is_some(),
        "held while the worker runs"
    );
    system.stop_worker().await;
    let (status, lease) = leased().await.unwrap();
    assert_eq!((status.as_str(), lease), ("submitted", None));
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_provider_batch_the_provider_lost_past_its_window_is_given_up_to_the_normal_lane() {
    // The batch would take a minute; once submitted, the provider "loses" it (its id answers
    // 404) and it is made 31 hours old: past the window, its jobs must not wait any longer.
    let system = system(
        1,
        BatchBehaviour {
            completion_delay_ms: 60_000,
            ..behaviour()
        },
        |_| {},
    )
    .await;
    let (run, _) = system
        .weekly_batch_in(BatchLaneMode::Provider, 3, &MenuOptions::default())
        .await;
    wait_until("the provider batch is submitted", async || {
        provider_batches(&system)
            .await
            .first()
            .is_some_and(|b| b.1 == "submitted")
    })
    .await;
    sqlx::query(
        "UPDATE provider_batches SET provider_batch_id = 'batch_lost',
             submitted_at = now() - interval '31 hours'",
    )
    .execute(&system.pool)
    .await
    .unwrap();
    wait_for_menus(&system, run, Duration::from_secs(120)).await;

    let batches = provider_batches(&system).await;
    assert_eq!(
        (batches[0].1.as_str(), batches[0].2.as_deref()),
        ("collected", Some("lost"))
    );
    for menu in menus(&system, run).await {
        assert_eq!(menu.days_from("normal").len(), menu.plan.days.len());
    }
    assert_eq!(system.standin.batches().len(), 1, "nothing submitted again");
    system.stop().await;
}
