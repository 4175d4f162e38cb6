//! The server keeps to its OpenAPI document: each class of disagreement the fuzzer
//! (`scripts/fuzz.sh`, schemathesis) found has a case here. What the document allows is
//! accepted; what it refuses is refused, with a 4xx whose code and field say why; and every
//! status an operation answers is one the document lists for it.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::{Account, TestApi, assert_error, error_of, spawn_api};

/// The document as served.
async fn document(app: &TestApi) -> Value {
    let response = app.get_anonymous("/openapi.json").await;
    response.json().await.unwrap()
}

/// The statuses the document lists for `method path`.
fn statuses(document: &Value, path: &str, method: &str) -> Vec<String> {
    document["paths"][path][method]["responses"]
        .as_object()
        .unwrap_or_else(|| panic!("{method} {path} is not documented"))
        .keys()
        .cloned()
        .collect()
}

async fn put_preferences(app: &TestApi, who: &Account, body: Value) -> reqwest::Response {
    app.request(Method::PUT, "/v1/preferences", Some(&who.token))
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_empty_cursor_is_the_first_page_of_every_paged_list() {
    let app = spawn_api(|_| {}).await;
    let admin = app.admin().await;
    for path in [
        "/v1/jobs",
        "/v1/menus",
        "/v1/admin/jobs",
        "/v1/admin/batches",
        "/v1/admin/actions",
    ] {
        let response = app.get(&format!("{path}?cursor="), &admin.token).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn any_cursor_of_the_documented_shape_is_a_position_and_others_are_named() {
    let app = spawn_api(|_| {}).await;
    let admin = app.admin().await;
    // Never given by the API, but of the documented shape: a page (empty or not), never a 500.
    for cursor in [
        "f".repeat(48),
        "7".repeat(48),
        format!("{}{}", "0".repeat(16), "a".repeat(32)),
    ] {
        let response = app
            .get(&format!("/v1/admin/jobs?cursor={cursor}"), &admin.token)
            .await;
        assert_eq!(response.status(), StatusCode::OK, "{cursor}");
    }
    let response = app
        .get(
            &format!("/v1/admin/actions?cursor={}", "9".repeat(18)),
            &admin.token,
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    for (path, cursor) in [
        ("/v1/jobs", "F".repeat(48)),
        ("/v1/jobs", "0".repeat(47)),
        ("/v1/admin/actions", "-1".to_string()),
        ("/v1/admin/actions", "9".repeat(19)),
    ] {
        let response = app
            .get(&format!("{path}?cursor={cursor}"), &admin.token)
            .await;
        let (status, error) = error_of(response).await;
        assert_eq!(
            (status, error["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("cursor")),
            "{path}?cursor={cursor}"
        );
    }
}

#[tokio::test]
async fn a_query_parameter_given_empty_is_refused_where_its_schema_has_no_empty_value() {
    let app = spawn_api(|_| {}).await;
    let admin = app.admin().await;
    for (path, name) in [
        ("/v1/jobs?status=", "status"),
        ("/v1/admin/jobs?status=", "status"),
        ("/v1/admin/jobs?error_code=", "error_code"),
        ("/v1/admin/jobs?created_after=", "created_after"),
    ] {
        let (status, error) = error_of(app.get(path, &admin.token).await).await;
        assert_eq!(
            (status, error["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(name)),
            "{path}"
        );
    }
}

#[tokio::test]
async fn an_empty_bulk_filter_is_refused_and_documented_so() {
    let app = spawn_api(|_| {}).await;
    let admin = app.admin().await;
    let document = document(&app).await;
    assert_eq!(
        document["components"]["schemas"]["JobFilter"]["minProperties"],
        1
    );
    for path in ["/v1/admin/jobs/requeue", "/v1/admin/jobs/cancel"] {
        for (filter, field) in [
            (json!({}), "filter"),
            (json!({"status": null}), "filter.status"),
            (json!({"error_code": ""}), "filter.error_code"),
            (json!(["failed"]), "filter"),
        ] {
            let response = app
                .post(path, &admin.token, json!({ "filter": filter }))
                .await;
            let (status, error) = error_of(response).await;
            assert_eq!(
                (status, error["field"].as_str()),
                (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
                "{path} {filter}: {error}"
            );
        }
    }
    assert!(
        app.audit().await.is_empty(),
        "a refused bulk action was recorded"
    );
}

#[tokio::test]
async fn a_reused_idempotency_key_is_a_documented_409() {
    let app = spawn_api(|_| {}).await;
    let who = app.user().await;
    let document = document(&app).await;
    assert!(statuses(&document, "/v1/menus", "post").contains(&"409".to_string()));
    let submit = |days: i64| {
        app.request(Method::POST, "/v1/menus", Some(&who.token))
            .header("idempotency-key", "same")
            .json(&json!({ "days": days }))
            .send()
    };
    assert_eq!(submit(2).await.unwrap().status(), StatusCode::ACCEPTED);
    assert_error(
        submit(3).await.unwrap(),
        StatusCode::CONFLICT,
        "idempotency_key_reused",
    )
    .await;
}

#[tokio::test]
async fn a_number_with_a_zero_fraction_is_an_integer() {
    let app = spawn_api(|_| {}).await;
    let who = app.user().await;
    let body = json!({"days": 3.0, "macros": {"protein": 40.0, "carbs": 30, "fat": 30}});
    let response = put_preferences(&app, &who, body).await;
    assert_eq!(response.status(), StatusCode::OK);
    let stored: Value = response.json().await.unwrap();
    assert_eq!(
        (&stored["days"], &stored["macros"]["protein"]),
        (&json!(3), &json!(40))
    );
    // A fraction is still refused, by field.
    let (status, error) = error_of(put_preferences(&app, &who, json!({"days": 2.5})).await).await;
    assert_eq!(
        (status, error["code"].as_str(), error["field"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("invalid_type"),
            Some("days")
        )
    );
}

#[tokio::test]
async fn an_array_where_the_document_says_object_is_refused() {
    let app = spawn_api(|_| {}).await;
    let who = app.user().await;
    for (body, field) in [
        (json!({"time_limits": [30, 45]}), "time_limits"),
        (json!({"macros": [40, 30, 30]}), "macros"),
    ] {
        let (status, error) = error_of(put_preferences(&app, &who, body.clone()).await).await;
        assert_eq!(
            (status, error["code"].as_str(), error["field"].as_str()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Some("invalid_type"),
                Some(field)
            ),
            "{body}"
        );
        let (status, error) = error_of(app.submit(&who, body.clone()).await).await;
        assert_eq!(
            (status, error["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{body}"
        );
    }
    assert_eq!(app.job_rows().await, 0);
}

#[tokio::test]
async fn the_document_states_the_rules_the_fuzzer_found_unstated() {
    let app = spawn_api(|_| {}).await;
    let document = document(&app).await;
    let schemas = &document["components"]["schemas"];
    // The email's shape where an account or an invitation is made (an empty invitation email
    // was refused though allowed), and text without the NUL character at login.
    assert!(schemas["Email"]["pattern"].is_string());
    for body in ["Registration", "Invitation"] {
        assert_eq!(
            schemas[body]["properties"]["email"]["$ref"], "#/components/schemas/Email",
            "{body}"
        );
    }
    assert!(schemas["Credentials"]["properties"]["email"]["pattern"].is_string());
    // Integers are integers.
    assert_eq!(
        schemas["Preferences"]["properties"]["days"]["type"][0],
        "integer"
    );
    // Each event of a job's stream, by its fields.
    let events = &document["paths"]["/v1/jobs/{id}/events"]["get"]["responses"]["200"]["content"]["text/event-stream"]
        ["schema"];
    let event = &schemas[events["$ref"]
        .as_str()
        .unwrap()
        .trim_start_matches("#/components/schemas/")];
    assert_eq!(event["properties"]["event"]["pattern"], "^job$");
    assert!(event["properties"]["data"].is_object());
    // Each query of a page states its cursor's shape.
    for path in [
        "/v1/jobs",
        "/v1/menus",
        "/v1/admin/jobs",
        "/v1/admin/actions",
    ] {
        let parameters = document["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap();
        let cursor = parameters.iter().find(|p| p["name"] == "cursor").unwrap();
        assert!(cursor["schema"]["pattern"].is_string(), "{path}");
    }
}

#[tokio::test]
async fn a_submission_links_to_its_job_and_the_job_to_its_menu() {
    let app = spawn_api(|_| {}).await;
    let document = document(&app).await;
    let links = |path: &str, method: &str, status: &str| {
        document["paths"][path][method]["responses"][status]["links"].clone()
    };
    // The 202 of a new job (a retry's 200 answers the same body).
    let job = &links("/v1/menus", "post", "202")["GetJob"];
    assert_eq!(
        (&job["operationId"], &job["parameters"]["id"]),
        (&json!("get_job"), &json!("$response.body#/job_id")),
    );
    let menu = &links("/v1/jobs/{id}", "get", "200")["GetMenu"];
    assert_eq!(
        (&menu["operationId"], &menu["parameters"]["id"]),
        (&json!("get_menu"), &json!("$response.body#/menu_id"))
    );
}
