//! Bad input to the menu endpoint: every kind is a 4xx with a stable code and the field named,
//! and changes nothing (no job row, nothing in the Redis ready list).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::{Account, PASSWORD, TestApi, assert_error, error_of, spawn_api};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends `body` as a menu request and checks the refusal.
async fn assert_refused(
    app: &TestApi,
    who: &Account,
    body: Value,
    status: StatusCode,
    code: &str,
    field: &str,
) {
    let (got_status, error) = error_of(app.submit(who, body.clone()).await).await;
    assert_eq!(
        (got_status, error["code"].as_str(), error["field"].as_str()),
        (status, Some(code), Some(field)),
        "for {body}: {error}"
    );
}

/// Sends each `(body, field)` as a menu request and checks it is refused with 422 and `code`,
/// naming `field`.
async fn assert_each_unprocessable<'a>(
    app: &TestApi,
    who: &Account,
    code: &str,
    cases: impl IntoIterator<Item = (Value, &'a str)>,
) {
    for (body, field) in cases {
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        assert_refused(app, who, body, status, code, field).await;
    }
}

/// Sends `raw` as a JSON menu request, as it is (not re-encoded); the refusal.
async fn submit_raw(app: &TestApi, who: &Account, raw: &'static str) -> (StatusCode, Value) {
    let response = app
        .request(Method::POST, "/v1/menus", Some(&who.token))
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    error_of(response).await
}

async fn assert_nothing_queued(app: &TestApi) {
    assert_eq!(app.job_rows().await, 0, "a refused request left a job row");
    assert!(
        app.ready_ids().await.is_empty(),
        "a refused request pushed a job"
    );
}

#[tokio::test]
async fn every_out_of_range_menu_field_is_refused_with_its_name() {
    let app = spawn_api(|_| {}).await;
    let who = app.user().await;
    let cases = [
        (json!({"days": 0}), "days"),
        (json!({"days": 8}), "days"),
        (json!({"meal_times": []}), "meal_times"),
        (json!({"meal_times": ["snack"]}), "meal_times"),
        (json!({"snacks_per_day": 4}), "snacks_per_day"),
        (json!({"servings": 0}), "servings"),
        (json!({"servings": 11}), "servings"),
        (json!({"calorie_goal": 499}), "calorie_goal"),
        (json!({"calorie_goal": 5001}), "calorie_goal"),
        (
            json!({"macros": {"protein": 70, "carbs": 20, "fat": 10}}),
            "macros.protein",
        ),
        (
            json!({"macros": {"protein": 30, "carbs": 30, "fat": 30}}),
            "macros",
        ),
        (
            json!({"disliked_foods": vec!["kale"; 31]}),
            "disliked_foods",
        ),
        (
            json!({"disliked_foods": ["x".repeat(41)]}),
            "disliked_foods[0]",
        ),
        (json!({"other_restrictions": [""]}), "other_restrictions[0]"),
        (
            json!({"cuisines": ["american", "british", "caribbean", "chinese", "french", "greek",
                                "indian", "italian", "japanese", "korean", "mexican"]}),
            "cuisines",
        ),
        (json!({"prep_complexity": 101}), "prep_complexity"),
        (json!({"prep_complexity": -1}), "prep_complexity"),
        (
            json!({"time_limits": {"weekday_minutes": 4}}),
            "time_limits.weekday_minutes",
        ),
        (
            json!({"time_limits": {"weekend_minutes": 601}}),
            "time_limits.weekend_minutes",
        ),
    ];
    assert_each_unprocessable(&app, &who, "validation_failed", cases).await;
    assert_nothing_queued(&app).await;
}

#[tokio::test]
async fn every_problem_of_a_request_is_listed_in_details() {
    let app = spawn_api(|_| {}).await;
    let who = app.user().await;
    let (_, error) = error_of(app.submit(&who, json!({"days": 9, "servings": 0})).await).await;
    let fields: Vec<&str> = error["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["days", "servings"]);
    assert_eq!(error["details"][0]["code"], "out_of_range");
    assert_nothing_queued(&app).await;
}

#[tokio::test]
async fn a_menu_field_of_the_wrong_type_is_refused_with_its_path() {
    let app = spawn_api(|_| {}).await;
    let who = app.user().await;
    let cases = [
        (json!({"days": "7"}), "days"),
        (json!({"days": 2.5}), "days"),
        (json!({"days": 1e30}), "days"),
        (json!({"meal_times": "lunch"}), "meal_times"),
        (json!({"meal_times": ["lunch", 3]}), "meal_times[1]"),
        (
            json!({"macros": {"protein": "40", "carbs": 30, "fat": 30}}),
            "macros.protein",
        ),
        (json!({"macros": 40}), "macros"),
        (json!({"diet_type": 3}), "diet_type"),
        (json!({"disliked_foods": "kale"}), "disliked_foods"),
        (
            json!({"time_limits": {"weekday_minutes": "30"}}),
            "time_limits.weekday_minutes",
        ),
        (json!({"client_id": 12}), "client_id"),
        (json!({"start_date": 20261201}), "start_date"),
    ];
    assert_each_unprocessable(&app, &who, "invalid_type", cases).await;
    assert_nothing_queued(&app).await;
}

#[tokio::test]
async fn a_value_outside_a_closed_set_is_refused_with_its_field() {
    let app = spawn_api(|_| {}).await;
    let who = app.user().await;
    let cases = [
        (json!({"diet_type": "carnivore"}), "diet_type"),
        (json!({"meal_times": ["brunch"]}), "meal_times[0]"),
        (json!({"model": "ultra"}), "model"),
        (json!({"start_date": "2026-13-01"}), "start_date"),
        (json!({"client_id": "not-a-uuid"}), "client_id"),
    ];
    assert_each_unprocessable(&app, &who, "validation_failed", cases).await;
    assert_nothing_queued(&app).await;
}

#[tokio::test]
async fn an_unknown_field_is_refused_by_name_including_for_client_id() {
    let app = spawn_api(|_| {}).await;
    let who = app.user().await;
    let client = uuid::Uuid::new_v4();
    assert_each_unprocessable(
        &app,
        &who,
        "unknown_field",
        [
            (json!({"for_client_id": client}), "for_client_id"),
            (json!({"days": 3, "colour": "blue"}), "colour"),
            (
                json!({"macros": {"protein": 40, "carbs": 30, "fat": 30, "fibre": 5}}),
                "macros.fibre",
            ),
        ],
    )
    .await;
    assert_refused(
        &app,
        &who,
        json!({"macros": {"protein": 40, "carbs": 60}}),
        StatusCode::UNPROCESSABLE_ENTITY,
        "missing_field",
        "macros.fat",
    )
    .await;
    assert_nothing_queued(&app).await;
}

#[tokio::test]
async fn malformed_json_is_a_400_and_a_body_that_is_not_an_object_a_422() {
    let app = spawn_api(|_| {}).await;
    let who = app.user().await;
    for raw in [r#"{"days": 3,"#, "", "{days: 3}", r#"{"days": 3} trailing"#] {
        let (status, error) = submit_raw(&app, &who, raw).await;
        assert_eq!(
            (status, error["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("malformed_json")),
            "{raw}"
        );
    }
    assert_error(
        app.submit(&who, json!([1, 2])).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_type",
    )
    .await;
    assert_nothing_queued(&app).await;
}

/// The NUL character is the one text PostgreSQL cannot store (nor take in a query): wherever
/// a client sends it, in a body's value or key or in a query parameter, the answer is a 422
/// naming the field, never a 500, and nothing changes.
#[tokio::test]
async fn text_holding_the_nul_character_is_refused_by_field_wherever_it_is_sent() {
    let app = spawn_api(|_| {}).await;
    let who = app.user().await;
    let admin = app.admin().await;
    let bodies = [
        (
            "/v1/auth/login",
            None,
            json!({"email": "a\u{0}b@example.com", "password": "x"}),
            "email",
        ),
        (
            "/v1/auth/register",
            None,
            json!({"email": "a\u{0}b@example.com", "password": PASSWORD}),
            "email",
        ),
        (
            "/v1/menus",
            Some(&who.token),
            json!({"disliked_foods": ["kale", "o\u{0}kra"]}),
            "disliked_foods[1]",
        ),
        (
            "/v1/menus",
            Some(&who.token),
            json!({"macros": {"prot\u{0}ein": 30}}),
            "macros.prot\\0ein",
        ),
    ];
    for (path, token, body, field) in bodies {
        let mut request = app.request(Method::POST, path, token.map(String::as_str));
        request = request.json(&body);
        let (status, error) = error_of(request.send().await.unwrap()).await;
        assert_eq!(
            (status, error["code"].as_str(), error["field"].as_str()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Some("validation_failed"),
                Some(field)
            ),
            "{path} {body}: {error}"
        );
        assert_eq!(error["details"][0]["code"], "invalid_text", "{error}");
    }
    for (path, token, field) in [
        ("/v1/admin/jobs?error_code=%00", &admin.token, "error_code"),
        (
            "/v1/admin/jobs?status=failed&q%00=1",
            &admin.token,
            "q\u{0}",
        ),
        ("/v1/jobs?cursor=ab%00cd", &who.token, "cursor"),
        ("/v1/menus?limit=%00", &who.token, "limit"),
    ] {
        let (status, error) = error_of(app.get(path, token).await).await;
        assert_eq!(
            (status, error["field"].as_str()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(field.replace('\u{0}', "\\0").as_str())
            ),
            "{path}: {error}"
        );
    }
    assert_nothing_queued(&app).await;
}

/// `{"days": 1, "days": 2}`: parsers disagree on which one counts (serde_json keeps the last,
/// others the first), so a body that repeats a key anywhere is refused, naming it.
#[tokio::test]
async fn a_key_repeated_in_an_object_is_a_400_naming_it() {
    let app = spawn_api(|_| {}).await;
    let who = app.user().await;
    for (raw, path) in [
        (r#"{"days": 1, "days": 2}"#, "days"),
        (
            r#"{"days": 2, "macros": {"protein": 30, "carbs": 40, "protein": 30}}"#,
            "macros.protein",
        ),
        (
            r#"{"disliked_foods": [], "cuisines": [{"a": 1, "a": 1}]}"#,
            "cuisines[0].a",
        ),
    ] {
        let (status, error) = submit_raw(&app, &who, raw).await;
        assert_eq!(
            (status, error["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("malformed_json")),
            "{raw}: {error}"
        );
        let message = error["message"].as_str().unwrap_or_default();
        assert!(message.contains(path), "{raw}: names {path}: {error}");
    }
    assert_nothing_queued(&app).await;
}

#[tokio::test]
async fn a_body_not_declared_as_json_is_a_415() {
    let app = spawn_api(|_| {}).await;
    let who = app.user().await;
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut request = app
            .request(Method::POST, "/v1/menus", Some(&who.token))
            .body(r#"{"days": 3}"#);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let (status, error) = error_of(request.send().await.unwrap()).await;
        assert_eq!(
            (status, error["code"].as_str()),
            (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Some("unsupported_media_type")
            ),
            "{content_type:?}"
        );
    }
    assert_nothing_queued(&app).await;
}

#[tokio::test]
async fn an_oversized_body_is_a_413_whether_its_length_is_declared_or_not() {
    let app = spawn_api(|c| c.body_limit_bytes = 1_024).await;
    let who = app.user().await;
    let big = json!({"disliked_foods": vec!["kale"; 400]});
    assert_error(
        app.submit(&who, big.clone()).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
    )
    .await;

    // Chunked, so the limit is only found while the body is read.
    let body = big.to_string();
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /v1/menus HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        who.token
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.as_bytes().chunks(256) {
        stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .unwrap();
        stream.write_all(chunk).await.unwrap();
        stream.write_all(b"\r\n").await.unwrap();
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(r#""code":"body_too_large""#), "{answer}");
    assert_nothing_queued(&app).await;
}

#[tokio::test]
async fn an_idempotency_key_that_is_too_long_or_not_printable_is_a_400() {
    let app = spawn_api(|_| {}).await;
    let who = app.user().await;
    for key in ["k".repeat(201), "tab\there".to_string()] {
        let response = app
            .request(Method::POST, "/v1/menus", Some(&who.token))
            .header("idempotency-key", key)
            .json(&json!({"days": 1}))
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::BAD_REQUEST, "invalid_idempotency_key").await;
    }
    assert_nothing_queued(&app).await;
}

#[tokio::test]
async fn an_unknown_route_and_a_wrong_method_answer_in_json() {
    let app = spawn_api(|_| {}).await;
    assert_error(
        app.get_anonymous("/v1/nothing-here").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    let response = app.http.patch(app.url("/v1/menus")).send().await.unwrap();
    let allow = response
        .headers()
        .get("allow")
        .map(|v| v.to_str().unwrap().to_string());
    assert_error(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
    let allow = allow.expect("a 405 lists the allowed methods");
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_keeps_the_one_sent() {
    let app = spawn_api(|_| {}).await;
    let generated = app.get_anonymous("/healthz").await;
    let id = generated.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");

    let kept = app
        .http
        .get(app.url("/v1/nothing-here"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(kept.headers()["x-request-id"], "trace-me-42");
}
