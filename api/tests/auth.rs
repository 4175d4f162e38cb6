//! Accounts and tokens: registration, login, and what a missing, expired or forged token gets.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::{JWT_SECRET, PASSWORD, TestApi, assert_error, error_of, spawn_api};

async fn register(app: &TestApi, body: Value) -> reqwest::Response {
    app.request(Method::POST, "/v1/auth/register", None)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn login(app: &TestApi, email: &str, password: &str) -> reqwest::Response {
    app.login(email, password).await
}

fn sign(claims: Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

#[tokio::test]
async fn registering_answers_the_account_and_a_token_that_works() {
    let app = spawn_api(|_| {}).await;
    let response = register(
        &app,
        json!({"email": "Ann@Example.com", "password": "long enough, really"}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["email"], "Ann@Example.com");
    assert_eq!(body["user"]["role"], "user");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);

    let me: Value = app
        .get_json("/v1/me", body["token"].as_str().unwrap())
        .await;
    assert_eq!(me, body["user"]);
}

#[tokio::test]
async fn a_coach_can_sign_up_as_a_coach_but_nobody_as_an_admin() {
    let app = spawn_api(|_| {}).await;
    let coach = register(
        &app,
        json!({"email": "c@example.com", "password": "long enough, really", "role": "coach"}),
    )
    .await;
    let body: Value = coach.json().await.unwrap();
    assert_eq!(body["user"]["role"], "coach");

    let admin = register(
        &app,
        json!({"email": "a@example.com", "password": "long enough, really", "role": "admin"}),
    )
    .await;
    let (status, error) = error_of(admin).await;
    assert_eq!(
        (status, error["code"].as_str(), error["field"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("validation_failed"),
            Some("role")
        )
    );
}

#[tokio::test]
async fn registering_a_taken_email_is_a_409_whatever_its_case() {
    let app = spawn_api(|_| {}).await;
    let first = register(
        &app,
        json!({"email": "bo@example.com", "password": "long enough, really"}),
    )
    .await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let again = register(
        &app,
        json!({"email": "BO@example.com", "password": "another password"}),
    )
    .await;
    assert_error(again, StatusCode::CONFLICT, "email_taken").await;
}

#[tokio::test]
async fn registration_checks_the_email_shape_and_the_password_length() {
    let app = spawn_api(|_| {}).await;
    let error = assert_error(
        register(
            &app,
            json!({"email": "not-an-email", "password": "eleven char"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(error["field"], "email");
    assert_eq!(error["details"][1]["field"], "password");

    let too_long = "p".repeat(1025);
    let (_, error) = error_of(
        register(
            &app,
            json!({"email": "ok@example.com", "password": too_long}),
        )
        .await,
    )
    .await;
    assert_eq!(error["field"], "password");
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(users, 0);
}

#[tokio::test]
async fn registration_can_be_disabled() {
    let app = spawn_api(|c| c.registration_enabled = false).await;
    assert_error(
        register(
            &app,
            json!({"email": "d@example.com", "password": "long enough, really"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "registration_disabled",
    )
    .await;
}

#[tokio::test]
async fn a_missing_required_field_is_named() {
    let app = spawn_api(|_| {}).await;
    let response = app
        .request(Method::POST, "/v1/auth/login", None)
        .json(&json!({"email": "x@example.com"}))
        .send()
        .await
        .unwrap();
    let (status, error) = error_of(response).await;
    assert_eq!(
        (status, error["code"].as_str(), error["field"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("missing_field"),
            Some("password")
        )
    );
}

#[tokio::test]
async fn logging_in_with_the_right_password_answers_a_working_token() {
    let app = spawn_api(|_| {}).await;
    let account = app.user().await;
    let response = login(&app, &account.email.to_uppercase(), PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["id"], account.id.to_string());
    let me = app.get("/v1/me", body["token"].as_str().unwrap()).await;
    assert_eq!(me.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_wrong_password_gets_the_same_401_as_an_unknown_email() {
    let app = spawn_api(|_| {}).await;
    let account = app.user().await;
    let wrong_password = login(&app, &account.email, "not the password").await;
    let unknown_email = login(&app, "nobody@example.com", PASSWORD).await;
    assert_eq!(wrong_password.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(unknown_email.status(), StatusCode::UNAUTHORIZED);
    let (a, b): (Value, Value) = (
        wrong_password.json().await.unwrap(),
        unknown_email.json().await.unwrap(),
    );
    assert_eq!(a, b);
    assert_eq!(a["error"]["code"], "invalid_credentials");
    assert_eq!(a["error"]["message"], "email or password is incorrect");
}

#[tokio::test]
async fn a_request_without_a_token_is_401_and_says_how_to_authenticate() {
    let app = spawn_api(|_| {}).await;
    for path in ["/v1/me", "/v1/preferences", "/v1/menus", "/v1/invitations"] {
        let response = app.get_anonymous(path).await;
        assert_eq!(response.headers()["www-authenticate"], "Bearer", "{path}");
        let (status, error) = error_of(response).await;
        assert_eq!(
            (status, error["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("unauthenticated")),
            "{path}"
        );
    }
    let jobs = app
        .http
        .get(app.url(&format!("/v1/jobs/{}", uuid::Uuid::new_v4())))
        .send()
        .await
        .unwrap();
    assert_eq!(jobs.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_expired_token_is_401_invalid_token() {
    let app = spawn_api(|_| {}).await;
    let account = app.user().await;
    let expired = sign(
        json!({
            "sub": account.id,
            "role": "user",
            "sid": uuid::Uuid::now_v7(),
            "iat": now() - 7200,
            "exp": now() - 3600,
        }),
        JWT_SECRET,
    );
    let response = app.get("/v1/me", &expired).await;
    let error = assert_error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
    assert!(error["message"].as_str().unwrap().contains("expired"));
}

#[tokio::test]
async fn a_forged_or_malformed_token_is_401_invalid_token() {
    let app = spawn_api(|_| {}).await;
    let account = app.user().await;
    let forged = sign(
        json!({"sub": account.id, "role": "coach", "iat": now(), "exp": now() + 3600}),
        "some-other-secret-0123456789abcdef-0123",
    );
    let without_exp = sign(
        json!({"sub": account.id, "role": "user", "iat": now()}),
        JWT_SECRET,
    );
    for token in [forged.as_str(), without_exp.as_str(), "abc", "a.b.c"] {
        let response = app.get("/v1/me", token).await;
        let (status, error) = error_of(response).await;
        assert_eq!(
            (status, error["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_token")),
            "{token}"
        );
    }
}

#[tokio::test]
async fn logins_over_the_per_address_budget_are_429_with_retry_after() {
    let app = spawn_api(|c| c.login_rate_per_minute = std::num::NonZeroU32::new(3).unwrap()).await;
    for _ in 0..3 {
        assert_eq!(
            login(&app, "x@example.com", "whatever1").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let response = login(&app, "x@example.com", "whatever1").await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_error(response, StatusCode::TOO_MANY_REQUESTS, "too_many_requests").await;
}
