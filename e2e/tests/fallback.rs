//! A second provider takes the calls when the first is out: jobs finish on the fallback
//! endpoint without using an attempt, every day records where it came from, calls return to
//! the primary once its probe succeeds, and neither provider's limits are ever exceeded.

use std::time::{Duration, Instant};

use serde_json::json;
use shared::llm::budget::BudgetConfig;
use standin::{Fault, RateLimits, Step};
use testkit::{Secondary, SystemOptions, TestSystem, budget_config, spawn_system};
use uuid::Uuid;

/// Each provider enforces this many requests a minute, and each endpoint's budget is told the
/// same: the budgets must keep both from ever answering 429.
const RPM: u32 = 600;

fn limits() -> standin::Config {
    standin::Config {
        limits: RateLimits {
            requests_per_minute: Some(RPM),
            ..RateLimits::default()
        },
        ..standin::Config::default()
    }
}

fn budget() -> BudgetConfig {
    BudgetConfig {
        rpm: Some(RPM),
        ..budget_config()
    }
}

fn two_providers() -> SystemOptions {
    SystemOptions {
        workers: 2,
        standin: limits(),
        budget: budget(),
        secondary: Some(Secondary {
            standin: limits(),
            budget: budget(),
            model: "fallback-model".into(),
        }),
        ..SystemOptions::default()
    }
}

/// Each saved day's (endpoint, model, lane), in day order.
async fn sources(system: &TestSystem, job: Uuid) -> Vec<(String, String, String)> {
    sqlx::query_as(
        "SELECT d->'source'->>'endpoint', d->'source'->>'model', d->'source'->>'lane'
         FROM menus m, jsonb_array_elements(m.plan->'days') d
         WHERE m.job_id = $1 ORDER BY (d->>'day_number')::int",
    )
    .bind(job)
    .fetch_all(&system.pool)
    .await
    .unwrap()
}

async fn attempts_of(system: &TestSystem, job: Uuid) -> i32 {
    sqlx::query_scalar("SELECT attempts FROM generation_jobs WHERE id = $1")
        .bind(job)
        .fetch_one(&system.pool)
        .await
        .unwrap()
}

fn rate_limited(standin: &standin::StandIn) -> usize {
    standin
        .requests()
        .iter()
        .filter(|r| r.status == Some(429) && r.fault.is_none())
        .count()
}

/// `fault` on every call to the primary: the jobs complete on the secondary, one attempt
/// each; then the primary recovers and, after its probe, takes the calls again. The primary
/// sees at most `primary_calls_before` calls per call under way when it failed (retries
/// included), and the probes.
async fn fall_back_and_return(fault: Fault, primary_calls_before: usize) {
    let system = spawn_system(two_providers()).await;
    let secondary = system.secondary.as_ref().unwrap();
    system.standin.script(vec![Step::always(fault.clone())]);
    let cook = system.api.user().await;
    let mut jobs = Vec::new();
    for _ in 0..6 {
        jobs.push(system.submit_job(&cook, json!({"days": 2})).await);
    }
    for &job in &jobs {
        let view = system
            .wait_until_finished(&cook, job, Duration::from_secs(60))
            .await;
        assert_eq!(view["status"], "succeeded", "{fault:?}: {view}");
        assert_eq!(
            attempts_of(&system, job).await,
            1,
            "{fault:?}: falling back uses no attempt"
        );
        // The job's view says where each day came from.
        let days = view["days"].as_array().unwrap();
        assert_eq!(days.len(), 2, "{view}");
        for (i, day) in days.iter().enumerate() {
            assert_eq!(
                *day,
                json!({"day": i + 1, "endpoint": "secondary", "model": "fallback-model", "lane": "normal"})
            );
        }
        for (endpoint, model, lane) in sources(&system, job).await {
            assert_eq!(
                (endpoint.as_str(), model.as_str(), lane.as_str()),
                ("secondary", "fallback-model", "normal"),
                "{fault:?}"
            );
        }
    }
    // The API stays ready: a fallback serves every tier.
    let ready = system.api.get_anonymous("/readyz").await;
    assert_eq!(ready.status(), reqwest::StatusCode::OK, "{fault:?}");
    let body: serde_json::Value = ready.json().await.unwrap();
    if body["checks"]["llm"] != "ok" {
        // The circuit may have closed already on a lucky probe; if not, it says fallback.
        assert_eq!(body["checks"]["llm"], "fallback", "{body}");
        assert_eq!(
            body["checks"]["open_circuits"][0]["model"],
            "primary/gpt-4o-mini"
        );
    }
    // The primary was asked once or a few times (calls under way when it failed), then left
    // alone while its circuit was open.
    let primary_calls = system.standin.requests().len();
    // Up to 12 days asked at once by the two workers, then a few probes.
    assert!(
        (1..=12 * primary_calls_before + 4).contains(&primary_calls),
        "{fault:?}: {primary_calls} calls to the primary"
    );
    assert!(secondary.requests().len() >= 12, "{fault:?}: every day");

    // The primary is back: once a probe finds it (the first at most 1 s after it opened, at
    // most 4 s apart), calls go to it again.
    system.standin.clear_script();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = system.submit_job(&cook, json!({"days": 1})).await;
        let view = system
            .wait_until_finished(&cook, job, Duration::from_secs(30))
            .await;
        assert_eq!(view["status"], "succeeded", "{view}");
        let from = sources(&system, job).await;
        if from[0].0 == "primary" {
            assert_eq!(from[0].1, "gpt-4o-mini");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{fault:?}: calls never returned to the primary"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let circuits = system
        .get_json(&system.api.admin().await, "/v1/admin/stats")
        .await;
    assert_eq!(
        circuits.1["open_circuits"],
        json!([]),
        "{fault:?}: the primary's circuit closed"
    );
    assert_eq!(rate_limited(&system.standin), 0, "no 429 from the primary");
    assert_eq!(rate_limited(secondary), 0, "no 429 from the secondary");
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_exhausted_quota_sends_calls_to_the_secondary_until_the_primary_is_back() {
    fall_back_and_return(Fault::InsufficientQuota, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_key_sends_calls_to_the_secondary_until_the_primary_is_back() {
    fall_back_and_return(Fault::InvalidApiKey, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_primary_failing_on_every_retry_sends_calls_to_the_secondary_until_it_is_back() {
    // A 503 on every call: each call retries (3 times) before the outage opens the circuit.
    fall_back_and_return(
        Fault::ServerError {
            status: 503,
            body: Default::default(),
        },
        4,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_primary_budget_used_up_past_the_fallback_wait_sends_calls_to_the_secondary() {
    // The primary allows 20 calls a minute; 12 days asked at once cannot all wait 200 ms for
    // it. The secondary takes the rest, and neither answers 429.
    let mut options = two_providers();
    options.standin = standin::Config {
        limits: RateLimits {
            requests_per_minute: Some(20),
            ..RateLimits::default()
        },
        ..standin::Config::default()
    };
    options.budget = BudgetConfig {
        rpm: Some(20),
        ..budget_config()
    };
    options.fallback_wait = Duration::from_millis(200);
    let system = spawn_system(options).await;
    let secondary = system.secondary.as_ref().unwrap();
    let cook = system.api.user().await;
    let mut jobs = Vec::new();
    for _ in 0..6 {
        jobs.push(system.submit_job(&cook, json!({"days": 2})).await);
    }
    let mut endpoints = Vec::new();
    for &job in &jobs {
        let view = system
            .wait_until_finished(&cook, job, Duration::from_secs(60))
            .await;
        assert_eq!(view["status"], "succeeded", "{view}");
        assert_eq!(attempts_of(&system, job).await, 1);
        endpoints.extend(sources(&system, job).await.into_iter().map(|s| s.0));
    }
    assert!(endpoints.iter().any(|e| e == "primary"), "{endpoints:?}");
    assert!(endpoints.iter().any(|e| e == "secondary"), "{endpoints:?}");
    assert_eq!(rate_limited(&system.standin), 0, "no 429 from the primary");
    assert_eq!(rate_limited(secondary), 0, "no 429 from the secondary");
    system.stop().await;
}
