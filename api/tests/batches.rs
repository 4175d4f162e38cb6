//! The weekly batch through the admin API and as the people it serves see it: a dry run counts
//! and writes nothing; a start records one run per period however often it is asked, and is
//! audited; bad bodies are refused naming the field; runs are listed and read with their jobs;
//! a batch's failed jobs are requeued, and no others; a person lists and cancels their batch job.

use chrono::{Days, NaiveDate, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::{Account, TestApi, assert_error, error_of, spawn_api};
use uuid::Uuid;

const BATCHES: &str = "/v1/admin/batches";

/// Today in the tests' schedule zone (UTC), `days` ahead (negative: back).
fn today_plus(days: i64) -> NaiveDate {
    let today = Utc::now().date_naive();
    match u64::try_from(days) {
        Ok(ahead) => today + Days::new(ahead),
        Err(_) => today - Days::new(days.unsigned_abs()),
    }
}

async fn batch_rows(app: &TestApi) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM batch_runs")
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

/// Starts the batch for `period` as `admin`; the status and the body.
async fn start(app: &TestApi, admin: &Account, period: NaiveDate) -> (StatusCode, Value) {
    let response = app
        .post(BATCHES, &admin.token, json!({"period_start": period}))
        .await;
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// Two people opted in, one not, and one opted in whose stored options no longer validate.
async fn people(app: &TestApi) -> (Vec<Account>, Account) {
    let opted_in = vec![app.user().await, app.user().await];
    app.opt_in(&opted_in[0], "monday").await;
    app.opt_in(&opted_in[1], "thursday").await;
    app.user().await;
    let broken = app.opted_in_with_broken_preferences().await;
    (opted_in, broken)
}

#[tokio::test]
async fn a_dry_run_counts_the_people_a_batch_would_serve_and_skip_and_writes_nothing() {
    let app = spawn_api(|_| {}).await;
    let admin = app.admin().await;
    people(&app).await;

    for body in [
        json!({"dry_run": true}),
        json!({"dry_run": true, "period_start": today_plus(5)}),
    ] {
        let response = app.post(BATCHES, &admin.token, body.clone()).await;
        assert_eq!(response.status(), StatusCode::OK, "{body}");
        assert!(response.headers().get("location").is_none());
        let plan: Value = response.json().await.unwrap();
        assert_eq!(
            plan,
            json!({"targeted": 2, "skipped": 1, "skip_reasons": {"invalid_preferences": 1}}),
            "{body}"
        );
    }
    assert_eq!(batch_rows(&app).await, 0, "no run");
    assert_eq!(app.job_rows().await, 0, "no job");
    assert!(app.audit().await.is_empty(), "nothing to audit");
}

#[tokio::test]
async fn a_period_is_started_once_however_often_it_is_asked_for_and_the_start_audited() {
    let app = spawn_api(|_| {}).await;
    let admin = app.admin().await;
    people(&app).await;
    let period = today_plus(3);

    let response = app
        .post(BATCHES, &admin.token, json!({"period_start": period}))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let created: Value = response.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(location, format!("{BATCHES}/{id}"));
    assert_eq!(created["period_start"], period.to_string());
    assert_eq!(created["trigger"], "manual");
    assert_eq!(created["schedule"], "manual");
    assert_eq!(created["triggered_by"], admin.id.to_string());
    assert_eq!(
        created["status"], "enqueuing",
        "a worker's scheduler creates the jobs"
    );
    assert_eq!(created["jobs"]["queued"], 0);
    assert!(created["finished_at"].is_null());
    assert_eq!(created["lane"], "normal", "the normal lane unless asked");

    let (again, existing) = start(&app, &admin, period).await;
    assert_eq!(again, StatusCode::OK, "the same period: the same batch");
    assert_eq!(existing["id"], id.as_str());
    let other_admin = app.admin().await;
    let (status, theirs) = start(&app, &other_admin, period).await;
    assert_eq!((status, &theirs["id"]), (StatusCode::OK, &existing["id"]));
    assert_eq!(batch_rows(&app).await, 1);
    let audit = app.audit().await;
    assert_eq!(audit, vec![("batch_start".to_string(), None, 0)]);
    let filter: Value = sqlx::query_scalar("SELECT filter FROM admin_actions")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(filter, json!({"batch_id": id}), "the audit names the batch");

    // Without a period: tomorrow, in the schedule's zone.
    let before = today_plus(1);
    let response = app.post(BATCHES, &admin.token, json!({})).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let tomorrow: Value = response.json().await.unwrap();
    let period: NaiveDate = tomorrow["period_start"].as_str().unwrap().parse().unwrap();
    assert!((before..=today_plus(1)).contains(&period), "{period}");
    assert_eq!(batch_rows(&app).await, 2);

    // On the provider lane (the Batch API), when asked.
    let body = json!({"period_start": today_plus(10), "lane": "provider"});
    let response = app.post(BATCHES, &admin.token, body).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let provider: Value = response.json().await.unwrap();
    assert_eq!(provider["lane"], "provider");
}

#[tokio::test]
async fn a_bad_body_is_refused_naming_the_field_and_changes_nothing() {
    let app = spawn_api(|_| {}).await;
    let admin = app.admin().await;
    people(&app).await;
    for (body, code, field) in [
        (
            json!({"period_start": "2026-13-01"}),
            "validation_failed",
            "period_start",
        ),
        (
            json!({"period_start": "next week"}),
            "validation_failed",
            "period_start",
        ),
        (
            json!({"period_start": today_plus(-29)}),
            "validation_failed",
            "period_start",
        ),
        (
            json!({"period_start": today_plus(367)}),
            "validation_failed",
            "period_start",
        ),
        (
            json!({"period_start": 20261201}),
            "invalid_type",
            "period_start",
        ),
        (json!({"dry_run": "yes"}), "invalid_type", "dry_run"),
        (json!({"lane": "fast"}), "validation_failed", "lane"),
        (json!({"period": today_plus(3)}), "unknown_field", "period"),
    ] {
        let (status, error) = error_of(app.post(BATCHES, &admin.token, body.clone()).await).await;
        assert_eq!(
            (status, error["code"].as_str(), error["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(code), Some(field)),
            "{body}: {error}"
        );
    }
    let not_json = app
        .request(Method::POST, BATCHES, Some(&admin.token))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let malformed = app
        .request(Method::POST, BATCHES, Some(&admin.token))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(batch_rows(&app).await, 0);
    assert!(app.audit().await.is_empty());

    // The edges of the range are inside it.
    for edge in [today_plus(-28), today_plus(366)] {
        let body = json!({"period_start": edge, "dry_run": true});
        let response = app.post(BATCHES, &admin.token, body).await;
        assert_eq!(response.status(), StatusCode::OK, "{edge}");
    }
}

#[tokio::test]
async fn a_non_admin_cannot_start_a_batch_or_see_one() {
    let app = spawn_api(|_| {}).await;
    let admin = app.admin().await;
    people(&app).await;
    let (_, batch) = start(&app, &admin, today_plus(2)).await;
    let id = batch["id"].as_str().unwrap();
    let user = app.user().await;
    let coach = app.coach().await;
    for who in [&user, &coach] {
        for (method, path) in [
            (Method::POST, BATCHES.to_string()),
            (Method::GET, BATCHES.to_string()),
            (Method::GET, format!("{BATCHES}/{id}")),
            (Method::POST, format!("{BATCHES}/{id}/requeue-failed")),
        ] {
            let response = app
                .request(method.clone(), &path, Some(&who.token))
                .json(&json!({"period_start": today_plus(4)}))
                .send()
                .await
                .unwrap();
            let (status, error) = error_of(response).await;
            assert_eq!(
                (status, error["code"].as_str()),
                (StatusCode::FORBIDDEN, Some("forbidden")),
                "{method} {path}"
            );
        }
    }
    assert_eq!(batch_rows(&app).await, 1, "only the admin's");
}

#[tokio::test]
async fn batches_are_listed_newest_first_in_pages_and_read_with_their_jobs() {
    let app = spawn_api(|_| {}).await;
    let admin = app.admin().await;
    let (opted_in, _) = people(&app).await;
    let mut ids = Vec::new();
    for days in [1, 8, 15] {
        let (status, batch) = start(&app, &admin, today_plus(days)).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        ids.push(batch["id"].as_str().unwrap().to_string());
    }
    let first: Uuid = ids[0].parse().unwrap();
    app.enqueue_batch(first).await;
    let jobs = app.batch_jobs(first).await;
    assert_eq!(jobs.len(), opted_in.len());
    app.fail_in_sql(&jobs[..1]).await;
    sqlx::query(
        "UPDATE generation_jobs SET prompt_tokens = 100, completion_tokens = 20, llm_calls = 1,
             cost_micros = 125000, batch_saved_micros = 62500
         WHERE batch_id = $1",
    )
    .bind(first)
    .execute(&app.db.pool)
    .await
    .unwrap();

    let page: Value = app
        .get_json(&format!("{BATCHES}?limit=2"), &admin.token)
        .await;
    let listed: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [ids[2].as_str(), ids[1].as_str()], "newest first");
    let cursor = page["next_cursor"].as_str().expect("another page");
    let last: Value = app
        .get_json(&format!("{BATCHES}?limit=2&cursor={cursor}"), &admin.token)
        .await;
    assert_eq!(last["items"].as_array().unwrap().len(), 1);
    assert_eq!(last["items"][0]["id"], ids[0].as_str());
    assert!(last["next_cursor"].is_null());

    let shown: Value = app
        .get_json(&format!("{BATCHES}/{first}"), &admin.token)
        .await;
    assert_eq!(shown["status"], "enqueued");
    assert_eq!(shown["targeted"], 2);
    assert_eq!(shown["skipped"], 1);
    assert_eq!(shown["skip_reasons"], json!({"invalid_preferences": 1}));
    assert_eq!(
        shown["jobs"],
        json!({"queued": 1, "running": 0, "retrying": 0, "succeeded": 0, "failed": 1, "cancelled": 0})
    );
    assert_eq!(
        (
            &shown["llm_calls"],
            &shown["prompt_tokens"],
            &shown["completion_tokens"]
        ),
        (&json!(2), &json!(200), &json!(40))
    );
    assert_eq!(
        (&shown["cost_usd"], &shown["saved_usd"]),
        (&json!(0.25), &json!(0.125)),
        "the two jobs' cost and what the Batch API saved on them, in dollars"
    );
    assert_eq!(
        last["items"][0]["cost_usd"], 0.25,
        "the list shows each run's cost"
    );
    assert!(shown["finished_at"].is_null(), "a job is still queued");

    for path in [
        format!("{BATCHES}/{}", Uuid::new_v4()),
        format!("{BATCHES}/not-a-uuid"),
    ] {
        assert_error(
            app.get(&path, &admin.token).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    let (status, error) =
        error_of(app.get(&format!("{BATCHES}?cursor=x"), &admin.token).await).await;
    assert_eq!(
        (status, error["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("cursor"))
    );
}

#[tokio::test]
async fn requeue_failed_requeues_the_failed_jobs_of_that_batch_and_no_others() {
    let app = spawn_api(|_| {}).await;
    let admin = app.admin().await;
    let mut people = vec![app.user().await, app.user().await, app.user().await];
    for who in &people {
        app.opt_in(who, "monday").await;
    }
    let mut batches = Vec::new();
    for days in [2, 9] {
        let (_, batch) = start(&app, &admin, today_plus(days)).await;
        let id: Uuid = batch["id"].as_str().unwrap().parse().unwrap();
        app.enqueue_batch(id).await;
        batches.push(id);
    }
    let (ours, theirs) = (
        app.batch_jobs(batches[0]).await,
        app.batch_jobs(batches[1]).await,
    );
    app.fail_in_sql(&ours[..2]).await;
    app.fail_in_sql(&theirs[..1]).await;
    let outsider = people.pop().unwrap();
    let unbatched = app.failed_job(outsider.id, "llm_timeout").await;
    // An empty queue, so what the requeue pushes shows.
    let keys = app.queue.redis().keys();
    let _: () = redis::cmd("DEL")
        .arg(keys.ready())
        .arg(keys.ready_batch())
        .arg(keys.members())
        .query_async(&mut app.queue.redis().connection())
        .await
        .unwrap();

    let path = format!("{BATCHES}/{}/requeue-failed", batches[0]);
    let response = app.post(&path, &admin.token, json!({})).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"requeued": 2}));

    for job in &ours[..2] {
        assert_eq!(app.status_of(*job).await, ("retrying".into(), 1, 3));
    }
    assert_eq!(
        app.status_of(ours[2]).await.0,
        "queued",
        "not failed: untouched"
    );
    assert_eq!(
        app.status_of(theirs[0]).await.0,
        "failed",
        "another batch's"
    );
    assert_eq!(app.status_of(unbatched).await.0, "failed", "no batch's");
    let mut queued: Vec<String> = redis::cmd("LRANGE")
        .arg(keys.ready_batch())
        .arg(0)
        .arg(-1)
        .query_async(&mut app.queue.redis().connection())
        .await
        .unwrap();
    queued.sort();
    let mut expected: Vec<String> = ours[..2].iter().map(Uuid::to_string).collect();
    expected.sort();
    assert_eq!(queued, expected, "pushed to the batch lane");
    let audit = app.audit().await;
    assert_eq!(
        audit.last().unwrap(),
        &("requeue_matching".to_string(), None, 2)
    );
    let filter: Value =
        sqlx::query_scalar("SELECT filter FROM admin_actions ORDER BY id DESC LIMIT 1")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(filter, json!({"status": "failed", "batch_id": batches[0]}));

    let again: Value = app
        .post(&path, &admin.token, json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again, json!({"requeued": 0}), "none failed any more");
    let missing = format!("{BATCHES}/{}/requeue-failed", Uuid::new_v4());
    assert_error(
        app.post(&missing, &admin.token, json!({})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn a_person_sees_their_batch_job_and_cancels_it_and_nobody_else_can() {
    let app = spawn_api(|_| {}).await;
    let admin = app.admin().await;
    let person = app.user().await;
    let stranger = app.user().await;
    app.opt_in(&person, "wednesday").await;
    let (_, batch) = start(&app, &admin, today_plus(1)).await;
    let batch_id: Uuid = batch["id"].as_str().unwrap().parse().unwrap();
    app.enqueue_batch(batch_id).await;

    let mine: Value = app.get_json("/v1/jobs", &person.token).await;
    let items = mine["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    let job = items[0]["id"].as_str().unwrap().to_string();
    assert_eq!(items[0]["batch_id"], batch_id.to_string());
    assert_eq!(items[0]["status"], "queued");
    let start: NaiveDate = items[0]["request"]["start_date"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(start.format("%A").to_string(), "Wednesday", "their weekday");
    let shown: Value = app
        .get_json(&format!("/v1/jobs/{job}"), &person.token)
        .await;
    assert_eq!(shown["batch_id"], batch_id.to_string());
    let theirs: Value = app.get_json("/v1/jobs", &stranger.token).await;
    assert_eq!(theirs["items"], json!([]), "not the stranger's");

    let path = format!("/v1/jobs/{job}");
    let refused = app.delete(&path, &stranger.token).await;
    assert_eq!(refused.status(), StatusCode::NOT_FOUND);
    let cancelled = app.delete(&path, &person.token).await;
    assert_eq!(cancelled.status(), StatusCode::OK);
    let view: Value = cancelled.json().await.unwrap();
    assert_eq!(
        (&view["status"], &view["batch_id"]),
        (&json!("cancelled"), &json!(batch_id))
    );
    let summary: Value = app
        .get_json(&format!("{BATCHES}/{batch_id}"), &admin.token)
        .await;
    assert_eq!(summary["jobs"]["cancelled"], 1);
    assert_eq!(summary["jobs"]["queued"], 0);
    assert!(
        summary["finished_at"].is_string(),
        "its one job is finished"
    );
}

#[tokio::test]
async fn a_provider_lane_run_shows_its_provider_batches_with_what_each_cost_and_saved() {
    let app = spawn_api(|_| {}).await;
    let admin = app.admin().await;
    people(&app).await;
    let mut runs = Vec::new();
    for days in [1, 8] {
        let (status, run) = start(&app, &admin, today_plus(days)).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let run: Uuid = run["id"].as_str().unwrap().parse().unwrap();
        app.enqueue_batch(run).await;
        runs.push(run);
    }
    let (normal, provider) = (runs[0], runs[1]);
    let gathered = app.collected_through_the_batch_api(provider, 300_000).await;

    let shown: Value = app
        .get_json(&format!("{BATCHES}/{provider}"), &admin.token)
        .await;
    assert_eq!(
        (&shown["cost_usd"], &shown["saved_usd"]),
        (&json!(0.3), &json!(0.3)),
        "the run's two jobs, $0.15 each"
    );
    assert_eq!(
        shown["provider_batches"],
        json!([{
            "id": gathered,
            "provider_batch_id": "batch_abc",
            "endpoint": "default",
            "model": "gpt-4o-mini",
            "status": "collected",
            "provider_status": "completed",
            "requests": 2,
            "completed": 2,
            "failed": 0,
            "expired": 0,
            "cost_usd": 0.3,
            "saved_usd": 0.3,
        }])
    );

    let other: Value = app
        .get_json(&format!("{BATCHES}/{normal}"), &admin.token)
        .await;
    assert_eq!(other["provider_batches"], json!([]), "the normal lane's");
    assert_eq!(other["saved_usd"], 0.0);
    let page: Value = app.get_json(BATCHES, &admin.token).await;
    let listed: Vec<usize> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["provider_batches"].as_array().unwrap().len())
        .collect();
    assert_eq!(listed, [1, 0], "newest first, each with its own");
}
