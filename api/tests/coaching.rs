//! Coaches and clients: the invitation flow, submitting for a client, and who may see what.

mod common;

use common::{TestApp, error_of};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn a_coach_invites_the_client_accepts_and_the_coach_submits_for_them() {
    let app = TestApp::spawn().await;
    let coach = app.coach().await;
    let client = app.user().await;
    let stranger = app.user().await;

    let invited = app
        .post(
            "/v1/coach/invitations",
            &coach.token,
            json!({"email": client.email}),
        )
        .await;
    assert_eq!(invited.status(), StatusCode::CREATED);
    let link: Value = invited.json().await.unwrap();
    assert_eq!(link["client_id"], Value::Null);

    let open: Value = app
        .get("/v1/invitations", &client.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(open["items"][0]["id"], link["id"]);
    let nothing: Value = app
        .get("/v1/invitations", &stranger.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(nothing["items"], json!([]));

    let accept = format!("/v1/invitations/{}/accept", link["id"].as_str().unwrap());
    let accepted = app.post(&accept, &client.token, json!({})).await;
    assert_eq!(accepted.status(), StatusCode::OK);
    let clients: Value = app
        .get("/v1/coach/clients", &coach.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(clients["items"][0]["client_id"], client.id.to_string());

    // The client's preferences are the ones merged, not the coach's.
    app.request(reqwest::Method::PUT, "/v1/preferences", Some(&client.token))
        .json(&json!({"servings": 3}))
        .send()
        .await
        .unwrap();
    let submitted = app
        .submit(&coach, json!({"client_id": client.id, "days": 2}))
        .await;
    assert_eq!(submitted.status(), StatusCode::ACCEPTED);
    let body: Value = submitted.json().await.unwrap();
    assert_eq!(body["job"]["owner_id"], client.id.to_string());
    assert_eq!(body["job"]["requested_by"], coach.id.to_string());
    assert_eq!(body["job"]["request"]["servings"], 3);

    let job_path = body["status_url"].as_str().unwrap();
    assert_eq!(
        app.get(job_path, &client.token).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get(job_path, &coach.token).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get(job_path, &stranger.token).await.status(),
        StatusCode::NOT_FOUND
    );

    // The coach reads the client's menus by naming the client.
    let menu = app.finished_menu(client.id).await;
    let listed: Value = app
        .get(&format!("/v1/menus?client_id={}", client.id), &coach.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"][0]["id"], menu.to_string());
    assert_eq!(
        app.get(&format!("/v1/menus/{menu}"), &coach.token)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get(&format!("/v1/menus/{menu}"), &stranger.token)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn someone_who_is_not_a_coach_may_not_act_for_a_client() {
    let app = TestApp::spawn().await;
    let user = app.user().await;
    let other = app.user().await;
    let (status, error) = error_of(app.submit(&user, json!({"client_id": other.id})).await).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (status, _) = error_of(
        app.get(&format!("/v1/menus?client_id={}", other.id), &user.token)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = error_of(
        app.post(
            "/v1/coach/invitations",
            &user.token,
            json!({"email": other.email}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = error_of(app.get("/v1/coach/clients", &user.token).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(app.job_rows().await, 0);
    assert!(app.ready_ids().await.is_empty());
}

#[tokio::test]
async fn a_coach_acting_for_someone_not_linked_gets_client_not_found() {
    let app = TestApp::spawn().await;
    let coach = app.coach().await;
    let invited_only = app.user().await;
    app.post(
        "/v1/coach/invitations",
        &coach.token,
        json!({"email": invited_only.email}),
    )
    .await;
    for client in [invited_only.id, uuid::Uuid::new_v4()] {
        let (status, error) =
            error_of(app.submit(&coach, json!({"client_id": client})).await).await;
        assert_eq!(
            (status, error["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("client_not_found"))
        );
    }
    assert_eq!(app.job_rows().await, 0);
    assert!(app.ready_ids().await.is_empty());
}

#[tokio::test]
async fn an_invitation_can_only_be_accepted_by_the_person_it_was_sent_to() {
    let app = TestApp::spawn().await;
    let coach = app.coach().await;
    let client = app.user().await;
    let intruder = app.user().await;
    let link: Value = app
        .post(
            "/v1/coach/invitations",
            &coach.token,
            json!({"email": client.email}),
        )
        .await
        .json()
        .await
        .unwrap();
    let accept = format!("/v1/invitations/{}/accept", link["id"].as_str().unwrap());
    let (status, error) = error_of(app.post(&accept, &intruder.token, json!({})).await).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, error) = error_of(
        app.post(
            "/v1/coach/invitations",
            &coach.token,
            json!({"email": "nope"}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, error["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("email"))
    );
}
