//! The admin API: only admins get in; requeue one job or every job a filter matches, refused
//! where it makes no sense; cancel; every action in the audit log; attempt history; statistics.

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use shared::db::jobs;
use shared::job::Usage;
use testkit::{Account, TestApi, error_of, spawn_api};
use uuid::Uuid;

const ADMIN_ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/admin/jobs"),
    ("GET", "/v1/admin/jobs/00000000-0000-0000-0000-000000000000"),
    (
        "POST",
        "/v1/admin/jobs/00000000-0000-0000-0000-000000000000/requeue",
    ),
    (
        "POST",
        "/v1/admin/jobs/00000000-0000-0000-0000-000000000000/cancel",
    ),
    ("POST", "/v1/admin/jobs/requeue"),
    ("POST", "/v1/admin/jobs/cancel"),
    ("GET", "/v1/admin/actions"),
    ("GET", "/v1/admin/stats"),
    (
        "GET",
        "/v1/admin/users/00000000-0000-0000-0000-000000000000",
    ),
    ("POST", "/v1/admin/batches"),
    ("GET", "/v1/admin/batches"),
    (
        "GET",
        "/v1/admin/batches/00000000-0000-0000-0000-000000000000",
    ),
    (
        "POST",
        "/v1/admin/batches/00000000-0000-0000-0000-000000000000/requeue-failed",
    ),
];

#[tokio::test]
async fn every_admin_route_refuses_non_admins_with_403_and_strangers_with_401() {
    let app = spawn_api(|_| {}).await;
    let coach = app.coach().await;
    let user = app.user().await;
    for (method, path) in ADMIN_ROUTES {
        let method: reqwest::Method = method.parse().unwrap();
        for who in [&user, &coach] {
            let response = app
                .request(method.clone(), path, Some(&who.token))
                .json(&json!({"filter": {"status": "failed"}}))
                .send()
                .await
                .unwrap();
            let (status, error) = error_of(response).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
            assert_eq!(error["code"], "forbidden");
        }
        let anonymous = app
            .request(method.clone(), path, None)
            .send()
            .await
            .unwrap();
        assert_eq!(
            anonymous.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path}"
        );
    }
}

/// An admin's requeue of `job` (`POST /v1/admin/jobs/{job}/requeue`, no options).
async fn requeue(app: &TestApi, admin: &Account, job: Uuid) -> Response {
    app.post(
        &format!("/v1/admin/jobs/{job}/requeue"),
        &admin.token,
        json!({}),
    )
    .await
}

/// The admin actions audited, newest first, as `GET /v1/admin/actions` lists them.
async fn actions(app: &TestApi, admin: &Account) -> Value {
    app.get_json("/v1/admin/actions", &admin.token).await
}

#[tokio::test]
async fn a_failed_job_is_requeued_keeping_its_days_and_the_action_is_audited() {
    let app = spawn_api(|_| {}).await;
    let admin = app.admin().await;
    let owner = app.user().await;
    let job = app.failed_job(owner.id, "llm_server_error").await;
    // A finished day stays: the requeued job resumes after it.
    sqlx::query("INSERT INTO job_days (job_id, day_number, day, attempt) VALUES ($1, 1, '{}', 1)")
        .bind(job)
        .execute(&app.db.pool)
        .await
        .unwrap();

    let response = requeue(&app, &admin, job).await;
    assert_eq!(response.status(), StatusCode::OK);
    let view: Value = response.json().await.unwrap();
    assert_eq!(view["status"], "retrying");
    assert!(view["error"].is_null());
    assert_eq!(app.status_of(job).await, ("retrying".into(), 1, 3));
    assert_eq!(app.ready_ids().await, vec![job.to_string()]);
    let days: i64 = sqlx::query_scalar("SELECT count(*) FROM job_days WHERE job_id = $1")
        .bind(job)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(days, 1, "no day is paid for twice");

    let actions: Value = actions(&app, &admin).await;
    let action = &actions["items"][0];
    assert_eq!(action["action"], "requeue");
    assert_eq!(action["job_id"], job.to_string());
    assert_eq!(action["admin_email"], admin.email);
    assert_eq!(action["affected"], 1);
}

#[tokio::test]
async fn requeueing_without_reset_gives_one_more_attempt_and_with_reset_all_of_them() {
    let app = spawn_api(|_| {}).await;
    let admin = app.admin().await;
    let owner = app.user().await;
    let spent = app.failed_job(owner.id, "llm_timeout").await;
    sqlx::query("UPDATE generation_jobs SET attempts = 3 WHERE id = $1")
        .bind(spent)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let path = format!("/v1/admin/jobs/{spent}/requeue");
    assert_eq!(
        app.post(&path, &admin.token, json!({})).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.status_of(spent).await,
        ("retrying".into(), 3, 4),
        "one more attempt"
    );

    let other = app.failed_job(owner.id, "llm_timeout").await;
    let reset = format!("/v1/admin/jobs/{other}/requeue?reset_attempts=true");
    assert_eq!(
        app.post(&reset, &admin.token, json!({})).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.status_of(other).await,
        ("queued".into(), 0, 3),
        "every attempt again"
    );
}

#[tokio::test]
async fn a_running_or_succeeded_job_is_not_requeued_and_an_unknown_one_is_404() {
    let app = spawn_api(|_| {}).await;
    let admin = app.admin().await;
    let owner = app.user().await;
    let running = app.queued_job(owner.id).await;
    app.claim(running).await;
    let menu = app.finished_menu(owner.id).await;
    let succeeded: Uuid = sqlx::query_scalar("SELECT job_id FROM menus WHERE id = $1")
        .bind(menu)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    for (job, status) in [(running, "running"), (succeeded, "succeeded")] {
        let (code, error) = error_of(requeue(&app, &admin, job).await).await;
        assert_eq!(code, StatusCode::CONFLICT);
        assert_eq!(error["code"], "not_requeueable");
        assert!(error["message"].as_str().unwrap().contains(status));
        assert_eq!(app.status_of(job).await.0, status, "unchanged");
    }
    let unknown = Uuid::new_v4();
    let (code, _) = error_of(requeue(&app, &admin, unknown).await).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert!(app.ready_ids().await.is_empty(), "nothing was queued");
    let actions: Value = actions(&app, &admin).await;
    assert_eq!(
        actions["items"],
        json!([]),
        "refused actions are not recorded"
    );
}

#[tokio::test]
async fn a_queued_job_redis_lost_is_pushed_again_by_an_admins_requeue() {
    let app = spawn_api(|_| {}).await;
    let admin = app.admin().await;
    let owner = app.user().await;
    // Written but never pushed: what a Redis restart leaves behind.
    let job = app.queued_job(owner.id).await;
    assert!(app.ready_ids().await.is_empty());
    let response = requeue(&app, &admin, job).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.ready_ids().await, vec![job.to_string()], "queued again");
    assert_eq!(app.status_of(job).await.0, "queued");
    // A second requeue finds it queued in Redis already, and does not queue it twice.
    let again = requeue(&app, &admin, job).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(app.ready_ids().await, vec![job.to_string()], "once");
}

#[tokio::test]
async fn every_job_matching_a_filter_is_requeued_in_one_call() {
    let app = spawn_api(|_| {}).await;
    let admin = app.admin().await;
    let owner = app.user().await;
    let timeouts: Vec<Uuid> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(app.failed_job(owner.id, "llm_timeout").await);
        }
        v
    };
    let other_error = app.failed_job(owner.id, "llm_refusal").await;
    let still_queued = app.queued_job(owner.id).await;

    let response = app
        .post(
            "/v1/admin/jobs/requeue",
            &admin.token,
            json!({"filter": {"status": "failed", "error_code": "llm_timeout"}, "reset_attempts": true}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap()["requeued"], 3);
    for job in &timeouts {
        assert_eq!(app.status_of(*job).await.0, "queued");
    }
    assert_eq!(
        app.status_of(other_error).await.0,
        "failed",
        "another error is left alone"
    );
    assert_eq!(app.status_of(still_queued).await.0, "queued");
    let mut ready = app.ready_ids().await;
    ready.sort();
    let mut expected: Vec<String> = timeouts.iter().map(Uuid::to_string).collect();
    expected.sort();
    assert_eq!(ready, expected);

    let actions: Value = actions(&app, &admin).await;
    let action = &actions["items"][0];
    assert_eq!(action["action"], "requeue_matching");
    assert_eq!(action["affected"], 3);
    assert_eq!(action["filter"]["error_code"], "llm_timeout");

    let (code, error) = error_of(
        app.post(
            "/v1/admin/jobs/requeue",
            &admin.token,
            json!({"filter": {}}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (code, error["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("filter"))
    );
    let (code, error) = error_of(
        app.post(
            "/v1/admin/jobs/requeue",
            &admin.token,
            json!({"filter": {"colour": "red"}}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (code, error["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown_field"))
    );
}

#[tokio::test]
async fn admins_cancel_one_job_or_every_job_a_filter_matches() {
    let app = spawn_api(|_| {}).await;
    let admin = app.admin().await;
    let owner = app.user().await;
    let other = app.user().await;
    let mine: Vec<Uuid> = vec![
        app.queued_job(owner.id).await,
        app.queued_job(owner.id).await,
    ];
    let theirs = app.queued_job(other.id).await;
    let running = app.queued_job(other.id).await;
    app.claim(running).await;

    let response = app
        .post(
            &format!("/v1/admin/jobs/{running}/cancel"),
            &admin.token,
            json!({}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.status_of(running).await.0, "cancelled");
    let (code, _) = error_of(
        app.post(
            &format!("/v1/admin/jobs/{running}/cancel"),
            &admin.token,
            json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(code, StatusCode::CONFLICT, "already finished");

    // An empty filter would cancel every job there is: refused, and nothing changes.
    let (code, error) = error_of(
        app.post("/v1/admin/jobs/cancel", &admin.token, json!({"filter": {}}))
            .await,
    )
    .await;
    assert_eq!(
        (code, error["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("filter"))
    );
    assert_eq!(app.status_of(theirs).await.0, "queued");

    let response = app
        .post(
            "/v1/admin/jobs/cancel",
            &admin.token,
            json!({"filter": {"user_id": owner.id}}),
        )
        .await;
    assert_eq!(response.json::<Value>().await.unwrap()["cancelled"], 2);
    for job in &mine {
        assert_eq!(app.status_of(*job).await.0, "cancelled");
    }
    assert_eq!(app.status_of(theirs).await.0, "queued");
    // The running job's attempt was closed by the cancellation.
    let outcome: Option<String> =
        sqlx::query_scalar("SELECT outcome FROM job_attempts WHERE job_id = $1")
            .bind(running)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(outcome.as_deref(), Some("cancelled"));
}

#[tokio::test]
async fn the_job_view_lists_every_attempt_with_its_outcome_and_cost() {
    let app = spawn_api(|_| {}).await;
    let admin = app.admin().await;
    let owner = app.user().await;
    let job = app.failed_job(owner.id, "llm_server_error").await;
    let requeue = format!("/v1/admin/jobs/{job}/requeue");
    assert_eq!(
        app.post(&requeue, &admin.token, json!({})).await.status(),
        StatusCode::OK
    );
    // The second attempt succeeds.
    let mut conn = app.db.pool.acquire().await.unwrap();
    let request = jobs::ClaimRequest {
        id: job,
        worker_id: "second-worker".into(),
        lease: std::time::Duration::from_secs(60),
        deadline: std::time::Duration::from_secs(600),
        owner_cap: 0,
    };
    let claim = jobs::claim(&mut conn, &request).await.unwrap();
    let jobs::Claim::Claimed(claimed) = claim else {
        panic!("the requeued job is claimable");
    };
    let fence = claimed.fence;
    let usage = Usage {
        calls: 7,
        prompt_tokens: 5_000,
        completion_tokens: 4_000,
        snoozes: 0,
        cost_micros: 3_000_000,
        batch_saved_micros: 1_000_000,
    };
    jobs::complete(
        &mut conn,
        fence,
        claimed.job.attempts,
        &testkit::plan(),
        usage,
    )
    .await
    .unwrap()
    .unwrap();

    let body: Value = app
        .get_json(&format!("/v1/admin/jobs/{job}"), &admin.token)
        .await;
    assert_eq!(body["job"]["status"], "succeeded");
    let attempts = body["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["number"], 1);
    assert_eq!(attempts[0]["outcome"], "failed");
    assert_eq!(attempts[0]["error_code"], "llm_server_error");
    assert_eq!(attempts[0]["worker_id"], "test-worker");
    assert_eq!(attempts[0]["llm_calls"], 2);
    assert_eq!(attempts[1]["number"], 2);
    assert_eq!(attempts[1]["outcome"], "succeeded");
    assert_eq!(attempts[1]["worker_id"], "second-worker");
    assert_eq!(attempts[1]["prompt_tokens"], 5_000);
    assert!(attempts[1]["ended_at"].is_string());
    assert_eq!(
        body["job"]["usage"]["llm_calls"], 9,
        "the job's total is every attempt's"
    );
    // The fixture's failed attempt cost 1,800 micro-dollars; the second $3.
    assert_eq!(attempts[0]["cost_usd"], 0.0018);
    assert_eq!(attempts[1]["cost_usd"], 3.0);
    assert_eq!(
        body["job"]["cost_usd"], 3.0018,
        "the job's cost is every attempt's"
    );
    assert_eq!(body["job"]["batch_saved_usd"], 1.0);
}

#[tokio::test]
async fn an_account_shows_what_the_jobs_for_it_cost_and_the_statistics_what_finished_jobs_cost() {
    let app = spawn_api(|_| {}).await;
    let admin = app.admin().await;
    let owner = app.user().await;
    let other = app.user().await;
    // Each failed job of the fixture cost 1,800 micro-dollars over 2 calls.
    app.failed_job(owner.id, "llm_timeout").await;
    app.failed_job(owner.id, "llm_timeout").await;
    app.failed_job(other.id, "llm_timeout").await;
    app.queued_job(owner.id).await;

    let shown: Value = app
        .get_json(&format!("/v1/admin/users/{}", owner.id), &admin.token)
        .await;
    assert_eq!(shown["id"], owner.id.to_string());
    assert_eq!(shown["email"], owner.email);
    assert_eq!(shown["role"], "user");
    assert_eq!(
        (&shown["jobs"], &shown["llm_calls"], &shown["total_tokens"]),
        (&json!(3), &json!(4), &json!(4_800)),
        "the owner's jobs only"
    );
    assert_eq!(shown["cost_usd"], 0.0036, "two failed jobs at $0.0018");
    assert_eq!(shown["batch_saved_usd"], 0.0);

    let mine: Value = app.get_json("/v1/me/usage", &owner.token).await;
    assert_eq!(
        (&mine["jobs"], &mine["cost_usd"]),
        (&json!(3), &json!(0.0036)),
        "what the caller submitted, in dollars too"
    );
    assert!(
        mine.get("cost_micros").is_none(),
        "the cost is shown in dollars only: {mine}"
    );

    let listed: Value = app
        .get_json(
            &format!("/v1/admin/jobs?status=failed&user_id={}", other.id),
            &admin.token,
        )
        .await;
    assert_eq!(listed["items"][0]["cost_usd"], 0.0018);

    let stats: Value = app.get_json("/v1/admin/stats", &admin.token).await;
    for span in ["last_5_minutes", "last_60_minutes"] {
        assert_eq!(
            stats["jobs"][span]["cost_usd"], 0.0054,
            "{span}: the three failed jobs"
        );
        assert_eq!(stats["jobs"][span]["batch_saved_usd"], 0.0);
    }

    let (status, error) = error_of(
        app.get(&format!("/v1/admin/users/{}", Uuid::new_v4()), &admin.token)
            .await,
    )
    .await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
}

#[tokio::test]
async fn jobs_are_listed_by_filter_in_keyset_pages() {
    let app = spawn_api(|_| {}).await;
    let admin = app.admin().await;
    let owner = app.user().await;
    let mut failed = Vec::new();
    for _ in 0..5 {
        failed.push(app.failed_job(owner.id, "llm_timeout").await);
    }
    app.queued_job(owner.id).await;

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/admin/jobs?status=failed&limit=2&cursor={c}"),
            None => "/v1/admin/jobs?status=failed&limit=2".to_string(),
        };
        let page: Value = app.get_json(&path, &admin.token).await;
        for item in page["items"].as_array().unwrap() {
            assert_eq!(item["status"], "failed");
            seen.push(item["id"].as_str().unwrap().parse::<Uuid>().unwrap());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    failed.reverse();
    assert_eq!(seen, failed, "every failed job once, newest first");

    let (code, error) = error_of(
        app.get("/v1/admin/jobs?status=exploded", &admin.token)
            .await,
    )
    .await;
    assert_eq!(
        (code, error["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("status"))
    );
    let (code, _) = error_of(
        app.get("/v1/admin/jobs?created_after=yesterday", &admin.token)
            .await,
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn statistics_count_jobs_by_status_and_report_the_queue() {
    let app = spawn_api(|_| {}).await;
    let admin = app.admin().await;
    let owner = app.user().await;
    app.failed_job(owner.id, "llm_timeout").await;
    app.queued_job(owner.id).await;
    app.queue.push(&[Uuid::new_v4()]).await.unwrap();
    let stats: Value = app.get_json("/v1/admin/stats", &admin.token).await;
    assert_eq!(stats["jobs"]["by_status"]["failed"], 1);
    assert_eq!(stats["jobs"]["by_status"]["queued"], 1);
    assert_eq!(stats["jobs"]["last_5_minutes"]["failed"], 1);
    assert_eq!(stats["jobs"]["last_5_minutes"]["failure_rate"], 1.0);
    assert!(stats["jobs"]["oldest_waiting_secs"].as_f64().unwrap() >= 0.0);
    assert_eq!(stats["queue"]["ready"], 1);
    assert_eq!(stats["open_circuits"], json!([]));
    assert!(stats["database"]["pool_size"].as_u64().unwrap() >= 1);
}
