//! Errors that are the provider's or the account's, not the job's: the circuit opens for the
//! whole fleet, no more calls are made, the API says it is not ready, jobs wait in the queue
//! without using attempts, and a probe closes the circuit once the provider recovers.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use standin::{Fault, Step};
use testkit::{SystemOptions, TestSystem, spawn_system};
use uuid::Uuid;

async fn readyz(system: &TestSystem) -> (StatusCode, Value) {
    let response = system.api.get_anonymous("/readyz").await;
    (response.status(), response.json().await.unwrap())
}

async fn statuses(system: &TestSystem, jobs: &[Uuid]) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    for job in jobs {
        out.push(
            sqlx::query_as("SELECT status::text, attempts FROM generation_jobs WHERE id = $1")
                .bind(job)
                .fetch_one(&system.pool)
                .await
                .unwrap(),
        );
    }
    out
}

async fn answered_calls(system: &TestSystem) -> usize {
    system
        .standin
        .requests()
        .iter()
        .filter(|c| c.status.is_some())
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_fleet_error_opens_the_circuit_and_leaves_the_job_queued() {
    let fleet_errors = [
        ("invalid key", Fault::InvalidApiKey, "llm_invalid_api_key"),
        ("forbidden", Fault::PermissionDenied, "llm_forbidden"),
        ("no such model", Fault::ModelNotFound, "llm_model_not_found"),
        ("quota", Fault::InsufficientQuota, "llm_quota_exceeded"),
        (
            "too large",
            Fault::RequestTooLarge { limit: 1_000 },
            "llm_request_too_large",
        ),
    ];
    for (what, fault, code) in fleet_errors {
        let system = spawn_system(SystemOptions::default()).await;
        system.standin.script(vec![Step::always(fault)]);
        let cook = system.api.user().await;
        let job = system.submit_job(&cook, json!({"days": 1})).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        let body = loop {
            let (status, body) = readyz(&system).await;
            if status == StatusCode::SERVICE_UNAVAILABLE {
                break body;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: the circuit never opened"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(body["checks"]["llm"], "open", "{what}");
        assert_eq!(body["checks"]["open_circuits"][0]["code"], code, "{what}");
        assert_eq!(body["checks"]["open_circuits"][0]["model"], "gpt-4o-mini");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            statuses(&system, &[job]).await,
            [("queued".into(), 0)],
            "{what}"
        );
        assert_eq!(
            system.standin.requests().len(),
            1,
            "{what}: no call after the first"
        );
        system.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_exhausted_quota_stops_every_call_until_a_probe_finds_the_provider_back() {
    let system = spawn_system(SystemOptions {
        workers: 2,
        ..SystemOptions::default()
    })
    .await;
    system
        .standin
        .script(vec![Step::always(Fault::InsufficientQuota)]);
    let cook = system.api.user().await;
    let mut jobs = Vec::new();
    for _ in 0..4 {
        jobs.push(system.submit_job(&cook, json!({"days": 2})).await);
    }
    // The first answer opens the circuit; calls already under way may still land.
    while answered_calls(&system).await == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before_probe = system.standin.requests().len();
    assert!(
        before_probe <= 4,
        "{before_probe} calls: at most the ones already under way"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        system.standin.requests().len(),
        before_probe,
        "no call while the circuit is open"
    );
    let (status, body) = readyz(&system).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body["checks"]["open_circuits"][0]["code"],
        "llm_quota_exceeded"
    );
    for (status, attempts) in statuses(&system, &jobs).await {
        assert_eq!(
            (status.as_str(), attempts),
            ("queued", 0),
            "waiting, not failing"
        );
    }

    // The first probe (1 s after opening) still meets the quota error: exactly one call.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(
        system.standin.requests().len(),
        before_probe + 1,
        "one probe for the fleet"
    );
    assert_eq!(readyz(&system).await.0, StatusCode::SERVICE_UNAVAILABLE);

    // The account is topped up: the next probe (2 s later) succeeds and the jobs all run.
    system.standin.clear_script();
    for job in &jobs {
        let view = system
            .wait_until_finished(&cook, *job, Duration::from_secs(20))
            .await;
        assert_eq!(view["status"], "succeeded", "{view}");
        assert_eq!(view["attempts"], 1, "the outage cost no attempt");
    }
    assert_eq!(readyz(&system).await.0, StatusCode::OK);
    system.stop().await;
}
