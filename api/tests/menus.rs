//! Submitting menu requests (idempotency, rate limits, visibility) and reading menus.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::{TestApi, assert_error, error_of, spawn_api};

async fn submit_with_key(app: &TestApi, token: &str, key: &str, body: Value) -> reqwest::Response {
    app.request(Method::POST, "/v1/menus", Some(token))
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_valid_request_creates_one_queued_job_and_pushes_it_once() {
    let app = spawn_api(|_| {}).await;
    let who = app.user().await;
    let response = app
        .submit(&who, json!({"days": 2, "diet_type": "vegan"}))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let body: Value = response.json().await.unwrap();
    let id = body["job_id"].as_str().unwrap();
    assert_eq!(location, format!("/v1/jobs/{id}"));
    assert_eq!(body["status_url"], location);
    assert_eq!(body["status"], "queued");
    let job = &body["job"];
    assert_eq!(job["owner_id"], who.id.to_string());
    assert_eq!(job["requested_by"], who.id.to_string());
    assert_eq!(job["progress"], json!({"days_done": 0, "days_total": 2}));
    assert_eq!(
        (job["attempts"].as_i64(), job["max_attempts"].as_i64()),
        (Some(0), Some(3))
    );
    assert_eq!(job["error"], Value::Null);
    assert_eq!(job["menu_url"], Value::Null);
    assert_eq!(job["usage"]["total_tokens"], 0);

    assert_eq!(app.job_rows().await, 1);
    assert_eq!(app.ready_ids().await, vec![id.to_string()]);
    let read: Value = app.get_json(&location, &who.token).await;
    assert_eq!(read["id"], id);
}

#[tokio::test]
async fn the_same_idempotency_key_twice_gives_one_job_and_one_push() {
    let app = spawn_api(|_| {}).await;
    let who = app.user().await;
    let body = json!({"days": 2, "start_date": "2030-01-07"});
    let first = submit_with_key(&app, &who.token, "key-1", body.clone()).await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first: Value = first.json().await.unwrap();
    let again = submit_with_key(&app, &who.token, "key-1", body).await;
    assert_eq!(again.status(), StatusCode::OK);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["job_id"], first["job_id"]);
    assert_eq!(app.job_rows().await, 1);
    assert_eq!(app.ready_ids().await.len(), 1);

    // Keys are per requester: another user's same key is another job.
    let other = app.user().await;
    let theirs = submit_with_key(&app, &other.token, "key-1", json!({"days": 2})).await;
    assert_eq!(theirs.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn an_idempotency_key_reused_for_a_different_request_is_a_409_conflict() {
    let app = spawn_api(|_| {}).await;
    let who = app.user().await;
    let first = submit_with_key(&app, &who.token, "key-2", json!({"days": 2})).await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let other = submit_with_key(&app, &who.token, "key-2", json!({"days": 3})).await;
    assert_error(other, StatusCode::CONFLICT, "idempotency_key_reused").await;
    assert_eq!(app.job_rows().await, 1);
    assert_eq!(app.ready_ids().await.len(), 1);
}

#[tokio::test]
async fn submissions_over_the_per_user_budget_are_429() {
    let app = spawn_api(|c| c.submit_rate_per_minute = std::num::NonZeroU32::new(2).unwrap()).await;
    let who = app.user().await;
    for _ in 0..2 {
        assert_eq!(
            app.submit(&who, json!({"days": 1})).await.status(),
            StatusCode::ACCEPTED
        );
    }
    let response = app.submit(&who, json!({"days": 1})).await;
    assert!(response.headers().contains_key("retry-after"));
    let (status, error) = error_of(response).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("too_many_requests"))
    );
    // The budget is the user's, not everyone's.
    let other = app.user().await;
    assert_eq!(
        app.submit(&other, json!({"days": 1})).await.status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(app.job_rows().await, 3);
}

#[tokio::test]
async fn a_person_with_too_many_jobs_waiting_is_told_to_wait_for_one() {
    let app = spawn_api(|c| c.waiting_jobs_per_user = 2).await;
    let who = app.user().await;
    let keyed = |key: &str| {
        app.request(Method::POST, "/v1/menus", Some(&who.token))
            .header("idempotency-key", key)
            .json(&json!({"days": 1}))
    };
    let first = keyed("first").send().await.unwrap();
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first: Value = first.json().await.unwrap();
    assert_eq!(
        app.submit(&who, json!({"days": 2})).await.status(),
        StatusCode::ACCEPTED
    );
    // No worker runs here: both jobs are still waiting.
    let response = app.submit(&who, json!({"days": 3})).await;
    let retry_after = response.headers().get("retry-after").cloned();
    let (status, error) = error_of(response).await;
    assert!(retry_after.is_some(), "{status} {error}");
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("too_many_jobs_waiting"))
    );
    // A retry of an accepted submission still finds its job.
    let retry = keyed("first").send().await.unwrap();
    assert_eq!(retry.status(), StatusCode::OK);
    // Others are not affected; and once a job ends, there is room again.
    let other = app.user().await;
    assert_eq!(
        app.submit(&other, json!({"days": 1})).await.status(),
        StatusCode::ACCEPTED
    );
    let job = first["job_id"].as_str().unwrap();
    let cancel = app.cancel(job, &who).await;
    assert!(cancel.status().is_success(), "{}", cancel.status());
    assert_eq!(
        app.submit(&who, json!({"days": 3})).await.status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(app.job_rows().await, 4);
}

#[tokio::test]
async fn another_users_job_and_menu_are_404_like_ones_that_do_not_exist() {
    let app = spawn_api(|_| {}).await;
    let owner = app.user().await;
    let stranger = app.user().await;
    let job = app.queued_job(owner.id).await;
    let menu = app.finished_menu(owner.id).await;
    for path in [
        format!("/v1/jobs/{job}"),
        format!("/v1/menus/{menu}"),
        format!("/v1/menus/{menu}/grocery-list"),
        format!("/v1/jobs/{}", uuid::Uuid::new_v4()),
        "/v1/jobs/not-a-uuid".to_string(),
    ] {
        let (status, error) = error_of(app.get(&path, &stranger.token).await).await;
        assert_eq!(
            (status, error["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{path}"
        );
    }
    let cancel = app.cancel(job, &stranger).await;
    assert_eq!(cancel.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        app.get(&format!("/v1/jobs/{job}"), &owner.token)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get(&format!("/v1/menus/{menu}"), &owner.token)
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_menu_shows_its_days_and_request_and_its_grocery_list_sums_ingredients() {
    let app = spawn_api(|_| {}).await;
    let owner = app.user().await;
    let menu_id = app.finished_menu(owner.id).await;
    let menu: Value = app
        .get_json(&format!("/v1/menus/{menu_id}"), &owner.token)
        .await;
    assert_eq!(menu["id"], menu_id.to_string());
    assert_eq!(menu["owner_id"], owner.id.to_string());
    assert_eq!(menu["days"][0]["meals"][0]["title"], "Chickpea stew");
    assert_eq!(menu["request"]["days"], 7);

    let list: Value = app
        .get_json(&format!("/v1/menus/{menu_id}/grocery-list"), &owner.token)
        .await;
    let items: Vec<&Value> = list["aisles"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| a["items"].as_array().unwrap())
        .collect();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["quantity"], 400.0);
    assert_eq!(items[0]["unit"], "g");

    // The job view links to the menu once it is done.
    let job: Value = app
        .get_json(
            &format!("/v1/jobs/{}", menu["job_id"].as_str().unwrap()),
            &owner.token,
        )
        .await;
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["menu_url"], format!("/v1/menus/{menu_id}"));
}

#[tokio::test]
async fn menus_are_listed_newest_first_a_page_at_a_time() {
    let app = spawn_api(|_| {}).await;
    let owner = app.user().await;
    let mut made = Vec::new();
    for _ in 0..5 {
        made.push(app.finished_menu(owner.id).await.to_string());
    }
    let someone_else = app.user().await;
    app.finished_menu(someone_else.id).await;

    let mut seen = Vec::new();
    let mut path = "/v1/menus?limit=2".to_string();
    loop {
        let page: Value = app.get_json(&path, &owner.token).await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|m| m["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/menus?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    made.reverse();
    assert_eq!(
        seen, made,
        "every menu once, newest first, and only the caller's"
    );

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("cursor=garbage", "cursor"),
    ] {
        let (status, error) =
            error_of(app.get(&format!("/v1/menus?{query}"), &owner.token).await).await;
        assert_eq!(
            (status, error["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{query}"
        );
    }
}
