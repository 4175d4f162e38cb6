//! Job status: cancelling, long polls that wake on job events or end at their deadline, and
//! the list of one's own jobs.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use shared::db::jobs;
use shared::job::{JobError, Usage};
use testkit::{assert_error, error_of, spawn_api};

#[tokio::test]
async fn a_queued_job_can_be_cancelled_once_and_then_is_finished() {
    let app = spawn_api(|_| {}).await;
    let owner = app.user().await;
    let job = app.queued_job(owner.id).await;
    let path = format!("/v1/jobs/{job}");
    let cancelled = app.delete(&path, &owner.token).await;
    assert_eq!(cancelled.status(), StatusCode::OK);
    let view: Value = cancelled.json().await.unwrap();
    assert_eq!(view["status"], "cancelled");
    assert!(view["finished_at"].is_string());

    let again = app.delete(&path, &owner.token).await;
    assert_error(again, StatusCode::CONFLICT, "job_finished").await;
}

#[tokio::test]
async fn a_long_poll_answers_as_soon_as_its_job_changes() {
    let app = spawn_api(|_| {}).await;
    let owner = app.user().await;
    let job = app.queued_job(owner.id).await;
    let path = format!("/v1/jobs/{job}?wait=20");
    let poll = app.get(&path, &owner.token);
    let change = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let fence = app.claim(job).await;
        let mut conn = app.db.pool.acquire().await.unwrap();
        let error = JobError::new("llm_timeout", "the model did not answer in time");
        let usage = Usage {
            calls: 1,
            prompt_tokens: 1_000,
            completion_tokens: 200,
            snoozes: 0,
            cost_micros: 1_250,
            batch_saved_micros: 0,
        };
        let retry_at = chrono::Utc::now() + chrono::Duration::seconds(30);
        jobs::fail_attempt(&mut conn, fence, &error, Some(retry_at), usage)
            .await
            .unwrap();
        app.announce(job).await;
    };
    let started = Instant::now();
    let (response, ()) = tokio::join!(poll, change);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let view: Value = response.json().await.unwrap();
    assert_eq!(view["status"], "retrying");
    assert_eq!(view["attempts"], 1);
    assert_eq!(view["error"]["code"], "llm_timeout");
    assert!(view["next_attempt_at"].is_string());
    assert_eq!(view["usage"]["total_tokens"], 1_200);
    assert_eq!(view["usage"]["llm_calls"], 1);
    assert_eq!(view["cost_usd"], 0.00125, "the attempt's cost, in dollars");
    assert_eq!(view["batch_saved_usd"], 0.0);
}

#[tokio::test]
async fn a_long_poll_without_a_change_answers_at_its_deadline() {
    let app = spawn_api(|_| {}).await;
    let owner = app.user().await;
    let job = app.queued_job(owner.id).await;
    // An event for another job must not end the wait.
    let other = app.queued_job(owner.id).await;
    let noise = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        app.announce(other).await;
    };
    let started = Instant::now();
    let path = format!("/v1/jobs/{job}?wait=2");
    let (response, ()) = tokio::join!(app.get(&path, &owner.token), noise);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(4),
        "took {waited:?}"
    );
    let view: Value = response.json().await.unwrap();
    assert_eq!(view["status"], "queued");
}

#[tokio::test]
async fn a_long_poll_holds_no_database_connection_while_it_waits() {
    let app = spawn_api(|c| {
        c.database.max_connections = 1;
        c.database.acquire_timeout = Duration::from_secs(5);
    })
    .await;
    let owner = app.user().await;
    let job = app.queued_job(owner.id).await;
    let path = format!("/v1/jobs/{job}?wait=3");
    let meanwhile = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let response = app.get("/v1/preferences", &owner.token).await;
        (response.status(), started.elapsed())
    };
    let (poll, (status, took)) = tokio::join!(app.get(&path, &owner.token), meanwhile);
    assert_eq!(poll.status(), StatusCode::OK);
    assert_eq!(status, StatusCode::OK);
    assert!(
        took < Duration::from_secs(1),
        "waited {took:?} for the pool's only connection"
    );
}

#[tokio::test]
async fn a_long_poll_on_a_finished_job_answers_at_once() {
    let app = spawn_api(|_| {}).await;
    let owner = app.user().await;
    let job = app.queued_job(owner.id).await;
    app.cancel(job, &owner).await;
    let started = Instant::now();
    let view: Value = app
        .get_json(&format!("/v1/jobs/{job}?wait=20"), &owner.token)
        .await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(view["status"], "cancelled");
}

#[tokio::test]
async fn a_wait_out_of_range_or_not_a_number_is_refused() {
    let app = spawn_api(|_| {}).await;
    let owner = app.user().await;
    let job = app.queued_job(owner.id).await;
    for (wait, code) in [
        ("26", "validation_failed"),
        ("-1", "validation_failed"),
        ("soon", "invalid_type"),
    ] {
        let (status, error) = error_of(
            app.get(&format!("/v1/jobs/{job}?wait={wait}"), &owner.token)
                .await,
        )
        .await;
        assert_eq!(
            (status, error["code"].as_str(), error["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(code), Some("wait")),
            "{wait}"
        );
    }
}

#[tokio::test]
async fn a_long_poll_answers_at_once_when_the_server_shuts_down() {
    let mut app = spawn_api(|_| {}).await;
    let owner = app.user().await;
    let job = app.queued_job(owner.id).await;
    let path = format!("/v1/jobs/{job}?wait=20");
    let poll = app.get(&path, &owner.token);
    let started = Instant::now();
    let (response, ()) = tokio::join!(poll, async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.shut_down();
    });
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let served = tokio::time::timeout(Duration::from_secs(5), &mut app.server).await;
    assert!(
        matches!(served, Ok(Ok(Ok(())))),
        "the server stopped cleanly: {served:?}"
    );
}

#[tokio::test]
async fn the_job_list_holds_the_callers_jobs_newest_first_in_pages() {
    let app = spawn_api(|_| {}).await;
    let owner = app.user().await;
    let other = app.user().await;
    let mut mine = Vec::new();
    for _ in 0..3 {
        mine.push(app.queued_job(owner.id).await);
    }
    let failed = app.failed_job(owner.id, "llm_timeout").await;
    mine.push(failed);
    let theirs = app.queued_job(other.id).await;
    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|job| job["id"].as_str().unwrap().to_string())
            .collect()
    };

    let first: Value = app.get_json("/v1/jobs?limit=3", &owner.token).await;
    assert_eq!(
        ids(&first),
        [mine[3], mine[2], mine[1]].map(|id| id.to_string()),
        "newest first"
    );
    assert!(first["items"][0]["batch_id"].is_null(), "not a batch job");
    let cursor = first["next_cursor"].as_str().expect("another page");
    let second: Value = app
        .get_json(&format!("/v1/jobs?limit=3&cursor={cursor}"), &owner.token)
        .await;
    assert_eq!(ids(&second), [mine[0].to_string()]);
    assert!(second["next_cursor"].is_null());
    let other_page: Value = app.get_json("/v1/jobs", &other.token).await;
    assert_eq!(ids(&other_page), [theirs.to_string()], "only their own");

    let failed_only: Value = app.get_json("/v1/jobs?status=failed", &owner.token).await;
    assert_eq!(ids(&failed_only), [failed.to_string()]);
    assert_eq!(failed_only["items"][0]["error"]["code"], "llm_timeout");

    for (query, field) in [
        ("status=exploded", "status"),
        ("limit=0", "limit"),
        ("cursor=x", "cursor"),
    ] {
        let (status, error) =
            error_of(app.get(&format!("/v1/jobs?{query}"), &owner.token).await).await;
        assert_eq!(
            (status, error["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{query}"
        );
    }
    let anonymous = app.get_anonymous("/v1/jobs").await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}
