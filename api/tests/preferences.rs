//! Stored preferences: reading and replacing them (the weekly batch's start day included), and
//! how a menu request is merged with them.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shared::db::jobs;
use testkit::{TestApi, error_of, spawn_api};

async fn put(app: &TestApi, token: &str, body: Value) -> reqwest::Response {
    app.request(Method::PUT, "/v1/preferences", Some(token))
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn preferences_are_empty_until_saved_and_read_back_as_saved() {
    let app = spawn_api(|_| {}).await;
    let who = app.user().await;
    let empty: Value = app.get_json("/v1/preferences", &who.token).await;
    assert_eq!(empty["days"], Value::Null);
    assert_eq!(empty["auto_generate_weekly"], false);

    let saved = json!({
        "days": 5, "servings": 2, "diet_type": "vegetarian", "cuisines": ["thai", "italian"],
        "macros": {"protein": 30, "carbs": 40, "fat": 30}, "disliked_foods": ["olives"],
        "time_limits": {"weekday_minutes": 30, "weekend_minutes": null},
        "auto_generate_weekly": true
    });
    let response = put(&app, &who.token, saved.clone()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let read: Value = app.get_json("/v1/preferences", &who.token).await;
    for (key, value) in saved.as_object().unwrap() {
        assert_eq!(&read[key], value, "{key}");
    }
    assert_eq!(
        read["calorie_goal"],
        Value::Null,
        "what was not saved stays unset"
    );
}

#[tokio::test]
async fn free_text_is_stored_as_a_request_would_use_it() {
    let app = spawn_api(|_| {}).await;
    let who = app.user().await;
    let body = json!({"disliked_foods": ["  cafe\u{301} ", "Olives", "olives"]});
    let answer = put(&app, &who.token, body).await;
    assert_eq!(answer.status(), StatusCode::OK);
    let answered: Value = answer.json().await.unwrap();
    let read: Value = app.get_json("/v1/preferences", &who.token).await;
    // Trimmed, composed (NFC: 4 characters) and without case-insensitive repeats.
    for shown in [&answered, &read] {
        assert_eq!(
            shown["disliked_foods"],
            json!(["caf\u{e9}", "Olives"]),
            "{shown}"
        );
    }
}

#[tokio::test]
async fn an_invalid_preference_is_422_and_the_saved_ones_are_kept() {
    let app = spawn_api(|_| {}).await;
    let who = app.user().await;
    put(&app, &who.token, json!({"days": 4})).await;
    for (body, code, field) in [
        (json!({"days": 9}), "validation_failed", "days"),
        (
            json!({"auto_generate_weekly": "yes"}),
            "invalid_type",
            "auto_generate_weekly",
        ),
        (
            json!({"client_id": uuid::Uuid::new_v4()}),
            "unknown_field",
            "client_id",
        ),
    ] {
        let (status, error) = error_of(put(&app, &who.token, body).await).await;
        assert_eq!(
            (status, error["code"].as_str(), error["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(code), Some(field))
        );
    }
    let read: Value = app.get_json("/v1/preferences", &who.token).await;
    assert_eq!(read["days"], 4);
}

#[tokio::test]
async fn an_explicit_field_wins_then_the_stored_preference_then_the_default() {
    let app = spawn_api(|_| {}).await;
    let who = app.user().await;
    put(&app, &who.token, json!({"days": 5, "servings": 4})).await;

    let response = app
        .submit(&who, json!({"days": 3, "start_date": "2030-01-07"}))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: Value = response.json().await.unwrap();
    let request = &body["job"]["request"];
    assert_eq!(request["days"], 3, "the explicit value wins");
    assert_eq!(
        request["servings"], 4,
        "the stored preference fills a missing field"
    );
    assert_eq!(request["calorie_goal"], 2000, "the default fills the rest");
    assert_eq!(request["start_date"], "2030-01-07");

    // The row the worker will read says the same.
    let id = body["job_id"].as_str().unwrap().parse().unwrap();
    let mut conn = app.db.pool.acquire().await.unwrap();
    let row = jobs::get(&mut conn, id).await.unwrap().unwrap();
    assert_eq!(
        (
            row.request.days,
            row.request.servings,
            row.request.calorie_goal
        ),
        (3, 4, 2000)
    );
    assert_eq!(row.days_total, 3);
}

#[tokio::test]
async fn the_weekly_start_day_is_saved_and_read_back_monday_when_absent_and_checked() {
    let app = spawn_api(|_| {}).await;
    let who = app.user().await;
    let read = || async { app.get_json("/v1/preferences", &who.token).await };
    assert_eq!(read().await["weekly_start_day"], "monday", "never saved");

    let response = put(
        &app,
        &who.token,
        json!({"auto_generate_weekly": true, "weekly_start_day": "saturday"}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let answered: Value = response.json().await.unwrap();
    assert_eq!(answered["weekly_start_day"], "saturday");
    assert_eq!(read().await["weekly_start_day"], "saturday");
    let stored: i16 =
        sqlx::query_scalar("SELECT weekly_start_day FROM preferences WHERE user_id = $1")
            .bind(who.id)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(stored, 6, "ISO: Saturday is the sixth day");

    for (value, code) in [
        (json!("funday"), "validation_failed"),
        (json!("Sat"), "validation_failed"),
        (json!("SATURDAY"), "validation_failed"),
        (json!(6), "invalid_type"),
    ] {
        let body = json!({"weekly_start_day": value});
        let (status, error) = error_of(put(&app, &who.token, body).await).await;
        assert_eq!(
            (status, error["code"].as_str(), error["field"].as_str()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(code),
                Some("weekly_start_day")
            ),
            "{value}"
        );
    }
    assert_eq!(read().await["weekly_start_day"], "saturday", "kept");

    // The whole profile is replaced: left out, the day is Monday again.
    put(&app, &who.token, json!({"auto_generate_weekly": true})).await;
    assert_eq!(read().await["weekly_start_day"], "monday");
}
