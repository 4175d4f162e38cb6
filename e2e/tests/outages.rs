//! PostgreSQL goes away and comes back (through a link the test cuts, so the shared server keeps
//! serving the other tests): the API answers 503 and creates nothing, a worker keeps a finished
//! day in memory until it can save it, and claiming resumes on its own.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use standin::Latency;
use testkit::{SystemOptions, TestSystem, rows, spawn_system};

fn cuttable(latency_ms: u64) -> SystemOptions {
    SystemOptions {
        cuttable_database: true,
        acquire_timeout: Duration::from_secs(1),
        standin: standin::Config {
            latency: Latency::fixed(Duration::from_millis(latency_ms)),
            ..Default::default()
        },
        ..SystemOptions::default()
    }
}

async fn jobs_in_database(system: &TestSystem) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM generation_jobs")
        .fetch_one(&system.api.db.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_api_answers_503_with_retry_after_while_the_database_is_down_and_creates_nothing() {
    let system = spawn_system(SystemOptions {
        workers: 0,
        ..cuttable(0)
    })
    .await;
    let cook = system.api.user().await;
    let link = system.db_link.as_ref().unwrap();
    link.cut();

    let started = Instant::now();
    let response = system
        .api
        .http
        .post(system.api.url("/v1/menus"))
        .bearer_auth(&cook.token)
        .header("idempotency-key", "outage-1")
        .json(&json!({"days": 2}))
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    let body: Value = response.json().await.unwrap();
    let code = body["error"]["code"].as_str().unwrap().to_string();
    assert!(
        code == "busy" || code == "database_unavailable",
        "a stable code: {body}"
    );
    // The acquire timeout is 1 s; the rest is slack for a loaded machine, not a speed target.
    assert!(took < Duration::from_secs(10), "answered after {took:?}");
    let (status, body) = system.get_json(&cook, "/v1/menus").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let login = system
        .api
        .http
        .post(system.api.url("/v1/auth/login"))
        .json(&json!({"email": cook.email, "password": testkit::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::SERVICE_UNAVAILABLE);

    link.restore();
    assert_eq!(
        jobs_in_database(&system).await,
        0,
        "the 503 created nothing"
    );
    let job = system.submit_job(&cook, json!({"days": 2})).await;
    let (status, _) = system.get_json(&cook, &format!("/v1/jobs/{job}")).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "served again once the database is back"
    );
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_day_finished_while_the_database_is_down_is_kept_and_saved_when_it_returns() {
    let system = spawn_system(cuttable(1_500)).await;
    let cook = system.api.user().await;
    let job = system.submit_job(&cook, json!({"days": 2})).await;
    // Cut while the first day's call is out: its answer comes back to a worker that cannot
    // write it.
    while system.standin.requests().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let link = system.db_link.as_ref().unwrap();
    link.cut();
    while system.standin.requests()[0].answered_ms.is_none() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        system.standin.requests().len(),
        1,
        "no next day is asked for before the finished one is saved"
    );
    link.restore();

    let view = system
        .wait_until_finished(&cook, job, Duration::from_secs(60))
        .await;
    assert_eq!(view["status"], "succeeded", "{view}");
    assert_eq!(view["attempts"], 1, "the attempt outlived the outage");
    let days: Vec<Option<u8>> = system.standin.requests().iter().map(|c| c.day).collect();
    assert_eq!(days, vec![Some(1), Some(2)], "each day paid once");
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claiming_pauses_while_the_database_is_down_and_resumes_by_itself() {
    let system = spawn_system(cuttable(0)).await;
    let cook = system.api.user().await;
    system.db_link.as_ref().unwrap().cut();
    // Jobs written past the cut link and queued, as another API replica would while this
    // worker's database link is down.
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(rows::queued_job(&system.api.db.pool, cook.id, 2).await);
    }
    system.api.queue.push(&ids).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        system.standin.requests().is_empty(),
        "nothing runs without the database"
    );

    system.db_link.as_ref().unwrap().restore();
    for id in &ids {
        let view = system
            .wait_until_finished(&cook, *id, Duration::from_secs(60))
            .await;
        assert_eq!(view["status"], "succeeded", "{view}");
        assert_eq!(view["attempts"], 1);
    }
    let failed_attempts: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM job_attempts WHERE job_id = ANY($1) AND outcome <> 'succeeded'",
    )
    .bind(&ids)
    .fetch_one(&system.api.db.pool)
    .await
    .unwrap();
    assert_eq!(failed_attempts, 0, "the outage cost no attempt");
    system.stop().await;
}
