//! Probes, the hashing bound under a burst of logins, and job events across a Redis restart.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::ConnectOptions;
use testkit::{PASSWORD, PrivateRedis, spawn_api};

#[tokio::test]
async fn healthz_answers_alive() {
    let app = spawn_api(|_| {}).await;
    let response = app.get_anonymous("/healthz").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "alive");
}

#[tokio::test]
async fn readyz_is_ready_when_postgres_and_redis_answer() {
    let app = spawn_api(|_| {}).await;
    let response = app.get_anonymous("/readyz").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"status": "ready", "checks": {"postgres": "ok", "redis": "ok", "llm": "ok", "open_circuits": []}})
    );
}

#[tokio::test]
async fn readyz_names_redis_when_redis_is_down() {
    let mut redis = PrivateRedis::start().await;
    let app = spawn_api(|c| c.redis = redis.config()).await;
    redis.stop();
    let response = app.get_anonymous("/readyz").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["checks"]["postgres"], "ok");
    assert_ne!(body["checks"]["redis"], "ok");
    // Alive all the same: restarting the process would not bring Redis back.
    assert_eq!(app.get_anonymous("/healthz").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn readyz_names_postgres_when_its_database_refuses_connections() {
    let app = spawn_api(|_| {}).await;
    // From another database: a database cannot lock itself out.
    let mut admin = app
        .db
        .options
        .clone()
        .database("postgres")
        .connect()
        .await
        .unwrap();
    let name = &app.db.name;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {name} ALLOW_CONNECTIONS false"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(name)
        .execute(&mut admin)
        .await
        .unwrap();
    let response = app.get_anonymous("/readyz").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert_ne!(body["checks"]["postgres"], "ok");
    assert_eq!(body["checks"]["redis"], "ok");
}

// One async thread, shared with the client: a hash computed on it would stall everything.
#[tokio::test]
async fn a_burst_of_logins_does_not_stall_other_requests() {
    let app = spawn_api(|c| {
        c.login_concurrency = std::num::NonZeroUsize::MIN;
        // Logins must not keep the one connection while they hash.
        c.database.max_connections = 1;
    })
    .await;
    let account = app.user().await;
    let burst = Instant::now();
    let logins: Vec<_> = (0..40)
        .map(|_| {
            let request = app
                .request(Method::POST, "/v1/auth/login", None)
                .json(&json!({"email": account.email, "password": PASSWORD}));
            tokio::spawn(async move { request.send().await.map(|r| r.status()) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    let health = app.get_anonymous("/healthz").await;
    let preferences = app.get("/v1/preferences", &account.token).await;
    let took = started.elapsed();
    let still_queued = logins.iter().filter(|l| !l.is_finished()).count();
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(preferences.status(), StatusCode::OK);
    assert!(
        still_queued > 0,
        "the logins were done before the probes answered: the test proves nothing"
    );
    for login in logins {
        let status = login.await.unwrap().unwrap();
        assert!(
            status == StatusCode::OK || status == StatusCode::SERVICE_UNAVAILABLE,
            "a login answered {status}"
        );
    }
    // Relative, not absolute, so a loaded machine slows both sides alike: probes stalled behind
    // the hashing would take as long as the burst's remaining logins.
    let burst_took = burst.elapsed();
    assert!(
        took * 3 < burst_took,
        "the probes took {took:?} of the burst's {burst_took:?}, behind {still_queued} logins"
    );
}

#[tokio::test]
async fn a_long_poll_wakes_when_the_event_subscription_returns_after_a_redis_restart() {
    let mut redis = PrivateRedis::start().await;
    let app = spawn_api(|c| c.redis = redis.config()).await;
    let owner = app.user().await;
    let job = app.queued_job(owner.id).await;
    let started = Instant::now();
    let path = format!("/v1/jobs/{job}?wait=20");
    let poll = app.get(&path, &owner.token);
    let restart = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        redis.stop();
        tokio::time::sleep(Duration::from_millis(500)).await;
        redis.resume().await;
    };
    let (response, ()) = tokio::join!(poll, restart);
    // Events published while the subscription was down are lost, so waiters re-read their job
    // once it is back instead of sleeping out their wait.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_request_over_the_time_limit_is_answered_503_timeout_in_json() {
    let app = spawn_api(|_| {}).await;
    // Registered through a process without the short limit: a loaded machine may take longer
    // than it to register.
    let account = app.user().await;
    let strict = app
        .another_process(|c| {
            c.login_concurrency = std::num::NonZeroUsize::MIN;
            c.request_timeout = Duration::from_millis(200);
        })
        .await;
    // Queued behind one another for the single hashing permit, the last logins run out of time.
    let logins: Vec<_> = (0..30)
        .map(|_| {
            let request = strict
                .http
                .post(strict.url("/v1/auth/login"))
                .json(&json!({"email": account.email, "password": PASSWORD}));
            tokio::spawn(async move {
                let response = request.send().await.unwrap();
                (response.status(), response.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut timed_out = 0;
    for login in logins {
        let (status, body) = login.await.unwrap();
        if body["error"]["code"] == "timeout" {
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            timed_out += 1;
        }
    }
    assert!(timed_out > 0, "no login ran out of time");
}

#[tokio::test]
async fn a_handler_that_panics_is_answered_500_internal_in_json() {
    use axum::routing::get;
    use tower::ServiceExt;

    let db = testkit::TestDb::new().await;
    let redis = testkit::TestRedis::new();
    let state = api::AppState::new(&testkit::api_config(
        db.config(5, Duration::from_secs(3)),
        redis.config(),
    ))
    .await
    .unwrap();
    async fn boom() -> &'static str {
        let secret = "hunter2";
        panic!("lost {secret}")
    }
    let routes = axum::Router::new().route("/boom", get(boom));
    let app = api::middleware::apply(routes, &state).with_state(state);
    let request = axum::http::Request::get("/boom")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(response.headers().contains_key("x-request-id"));
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["error"]["code"], "internal");
    assert!(!body.to_string().contains("hunter2"), "{body}");
}
