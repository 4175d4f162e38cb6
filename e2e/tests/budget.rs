//! The fleet-wide budget against a provider that enforces the same limit: workers together use
//! nearly all of it and are never refused; without Redis each keeps to its share and calls on.
//! (A reduced form of the two-minute runs in `bench/src/bin/budget.rs`: the provider's window is
//! compressed from a minute to a few seconds, at the same kind of rate.)

use std::time::Duration;

use serde_json::json;
use shared::llm::budget::BudgetConfig;
use standin::{LoggedRequest, RateLimits};
use testkit::{SystemOptions, spawn_system};

/// Calls the provider answered with `status` that arrived within `span` of the first call.
fn answered(calls: &[LoggedRequest], status: u16, span: Duration) -> usize {
    let first = calls.first().map_or(0.0, |c| c.arrived_ms);
    calls
        .iter()
        .filter(|c| c.status == Some(status) && c.arrived_ms < first + span.as_secs_f64() * 1000.0)
        .count()
}

fn options(limit: u32, window: Duration, workers: usize) -> SystemOptions {
    let mut options = SystemOptions {
        workers,
        standin: standin::Config {
            limits: RateLimits {
                requests_per_minute: Some(limit),
                tokens_per_minute: None,
                window,
            },
            latency: standin::Latency::fixed(Duration::from_millis(20)),
            ..Default::default()
        },
        budget: BudgetConfig {
            rpm: Some(limit),
            tpm: None,
            window,
            // 3 % of a 5-second window leaves 150 ms for the slot-to-arrival delay.
            utilization: 0.97,
            max_wait: Duration::from_secs(30),
            ..SystemOptions::default().budget
        },
        ..SystemOptions::default()
    };
    options.jobs.deadline_secs = 600;
    options
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_sharing_the_budget_use_it_fully_without_a_single_429() {
    let (limit, window, run) = (30, Duration::from_secs(5), Duration::from_secs(15));
    let system = spawn_system(options(limit, window, 2)).await;
    let cook = system.api.user().await;
    // More work than the budget allows in the run.
    for _ in 0..40 {
        system.submit_job(&cook, json!({"days": 3})).await;
    }
    tokio::time::sleep(run + Duration::from_millis(500)).await;
    let calls = system.standin.requests();
    let budget = limit as usize * (run.as_secs() / window.as_secs()) as usize;
    let admitted = answered(&calls, 200, run);
    let refused = calls.iter().filter(|c| c.status == Some(429)).count();
    println!("{admitted} calls of a budget of {budget} in {run:?}, {refused} refused");
    assert_eq!(refused, 0, "the fleet caused a 429");
    assert!(
        admitted * 10 >= budget * 9,
        "only {admitted} calls of a budget of {budget}"
    );
    assert!(admitted <= budget, "more calls than the budget: {admitted}");
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_redis_each_worker_keeps_calling_within_its_share_and_rejoins_the_fleet_after() {
    let mut redis = testkit::PrivateRedis::start().await;
    let (limit, window) = (20, Duration::from_secs(2));
    let system = spawn_system(SystemOptions {
        redis: Some(redis.config()),
        ..options(limit, window, 2)
    })
    .await;
    let cook = system.api.user().await;
    for _ in 0..8 {
        system.submit_job(&cook, json!({"days": 7})).await;
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    redis.stop();
    let outage_starts = system.standin.requests().len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = system.standin.requests().len() - outage_starts;
    assert!(
        system.budgets.iter().any(|b| b.is_local()),
        "the workers noticed and use their local share"
    );
    redis.resume().await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    let calls = system.standin.requests();
    let refused = calls.iter().filter(|c| c.status == Some(429)).count();
    println!(
        "{during} calls in the 3 s without Redis (budget {limit} per {window:?}); {refused} refused"
    );
    assert!(during > 0, "calls went on without Redis");
    // Each of two workers paces at half the budget: at most the budget per window, plus one.
    assert!(
        during <= (limit as usize * 3 / 2) + 2,
        "{during} calls in 3 s"
    );
    assert_eq!(refused, 0);
    assert!(
        system.budgets.iter().all(|b| !b.is_local()),
        "back on the shared budget once Redis answers"
    );
    system.stop().await;
}
