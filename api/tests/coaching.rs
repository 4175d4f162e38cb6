//! Coaches and clients: the invitation flow, submitting for a client, who may see what, and
//! ending a link from either side (the coach removes the client, the client leaves the coach).

use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::{Account, TestApi, assert_error, error_of, spawn_api};

#[tokio::test]
async fn a_coach_invites_the_client_accepts_and_the_coach_submits_for_them() {
    let app = spawn_api(|_| {}).await;
    let coach = app.coach().await;
    let client = app.user().await;
    let stranger = app.user().await;

    let invited = app.invite(&coach, &client.email).await;
    assert_eq!(invited.status(), StatusCode::CREATED);
    let link: Value = invited.json().await.unwrap();
    assert_eq!(link["client_id"], Value::Null);

    let open: Value = app.get_json("/v1/invitations", &client.token).await;
    assert_eq!(open["items"][0]["id"], link["id"]);
    let nothing: Value = app.get_json("/v1/invitations", &stranger.token).await;
    assert_eq!(nothing["items"], json!([]));

    let accepted = app.accept(&link, &client).await;
    assert_eq!(accepted.status(), StatusCode::OK);
    let clients: Value = app.get_json("/v1/coach/clients", &coach.token).await;
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
        .get_json(&format!("/v1/menus?client_id={}", client.id), &coach.token)
        .await;
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
    let app = spawn_api(|_| {}).await;
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
    let (status, _) = error_of(app.invite(&user, &other.email).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = error_of(app.get("/v1/coach/clients", &user.token).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(app.job_rows().await, 0);
    assert!(app.ready_ids().await.is_empty());
}

#[tokio::test]
async fn a_coach_acting_for_someone_not_linked_gets_client_not_found() {
    let app = spawn_api(|_| {}).await;
    let coach = app.coach().await;
    let invited_only = app.user().await;
    app.invite(&coach, &invited_only.email).await;
    for client in [invited_only.id, uuid::Uuid::new_v4()] {
        assert_error(
            app.submit(&coach, json!({"client_id": client})).await,
            StatusCode::NOT_FOUND,
            "client_not_found",
        )
        .await;
    }
    assert_eq!(app.job_rows().await, 0);
    assert!(app.ready_ids().await.is_empty());
}

#[tokio::test]
async fn an_invitation_can_only_be_accepted_by_the_person_it_was_sent_to() {
    let app = spawn_api(|_| {}).await;
    let coach = app.coach().await;
    let client = app.user().await;
    let intruder = app.user().await;
    let link: Value = app
        .invite(&coach, &client.email)
        .await
        .json()
        .await
        .unwrap();
    assert_error(
        app.accept(&link, &intruder).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let (status, error) = error_of(app.invite(&coach, "nope").await).await;
    assert_eq!(
        (status, error["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("email"))
    );
}

/// The `client_id`s of a coach's links (`null` for an open invitation).
async fn client_ids(app: &TestApi, coach: &Account) -> Vec<Value> {
    let links = app.items("/v1/coach/clients", &coach.token).await;
    links.iter().map(|l| l["client_id"].clone()).collect()
}

/// The `coach_id`s of a client's links.
async fn coach_ids(app: &TestApi, client: &Account) -> Vec<String> {
    let links = app.items("/v1/me/coaches", &client.token).await;
    links
        .iter()
        .map(|l| l["coach_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_coach_removes_a_client_once_and_must_be_accepted_again_to_act_for_them() {
    let app = spawn_api(|_| {}).await;
    let coach = app.coach().await;
    let client = app.user().await;
    let other = app.user().await;
    app.link(&coach, &client).await;
    app.link(&coach, &other).await;
    assert_eq!(coach_ids(&app, &client).await, [coach.id.to_string()]);
    let remove = format!("/v1/coach/clients/{}", client.id);

    let removed = app.delete(&remove, &coach.token).await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    assert_eq!(client_ids(&app, &coach).await, [json!(other.id)]);
    assert!(coach_ids(&app, &client).await.is_empty());
    let (status, error) = error_of(app.submit(&coach, json!({"client_id": client.id})).await).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("client_not_found"))
    );
    // The other client is untouched.
    let for_other = app.submit(&coach, json!({"client_id": other.id})).await;
    assert_eq!(for_other.status(), StatusCode::ACCEPTED);

    // Removing again: the link is gone, as for someone never linked (the state is the same).
    let (status, error) = error_of(app.delete(&remove, &coach.token).await).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("client_not_found"))
    );

    // A new invitation is a new link, which the client must accept before the coach acts.
    let again: Value = app
        .invite(&coach, &client.email)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["client_id"], Value::Null);
    let (status, _) = error_of(app.submit(&coach, json!({"client_id": client.id})).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(app.accept(&again, &client).await.status(), StatusCode::OK);
    let resumed = app.submit(&coach, json!({"client_id": client.id})).await;
    assert_eq!(resumed.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_client_leaves_one_coach_and_keeps_the_others() {
    let app = spawn_api(|_| {}).await;
    let left = app.coach().await;
    let kept = app.coach().await;
    let client = app.user().await;
    app.link(&left, &client).await;
    app.link(&kept, &client).await;
    let mut both = vec![left.id.to_string(), kept.id.to_string()];
    both.sort();
    let mut listed = coach_ids(&app, &client).await;
    listed.sort();
    assert_eq!(listed, both);
    let job = app.queued_job(client.id).await;
    let leave = format!("/v1/me/coaches/{}", left.id);

    let response = app.delete(&leave, &client.token).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(coach_ids(&app, &client).await, [kept.id.to_string()]);
    assert!(client_ids(&app, &left).await.is_empty());
    let path = format!("/v1/jobs/{job}");
    assert_eq!(
        app.get(&path, &left.token).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.get(&path, &kept.token).await.status(), StatusCode::OK);
    assert_eq!(app.get(&path, &client.token).await.status(), StatusCode::OK);

    // Leaving again: nothing to leave.
    assert_error(
        app.delete(&leave, &client.token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn only_a_coach_removes_clients_and_nobody_ends_a_link_that_is_not_theirs() {
    let app = spawn_api(|_| {}).await;
    let coach = app.coach().await;
    let rival = app.coach().await;
    let client = app.user().await;
    let admin = app.admin().await;
    app.link(&coach, &client).await;
    let remove = format!("/v1/coach/clients/{}", client.id);

    // Not a coach: 403, whatever the id (one that is not a UUID included).
    for (who, path) in [
        (&client, remove.clone()),
        (&admin, remove.clone()),
        (&client, format!("/v1/coach/clients/{}", coach.id)),
        (&client, "/v1/coach/clients/not-a-uuid".to_string()),
    ] {
        let (status, error) = error_of(app.delete(&path, &who.token).await).await;
        assert_eq!(
            (status, error["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden")),
            "{path}"
        );
    }
    // Another coach's client, and an id that is not a UUID: not a client of this coach.
    for path in [remove.clone(), "/v1/coach/clients/not-a-uuid".to_string()] {
        let (status, error) = error_of(app.delete(&path, &rival.token).await).await;
        assert_eq!(
            (status, error["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("client_not_found")),
            "{path}"
        );
    }
    // The client "leaving" someone who is not their coach, or the coach "leaving" their client
    // (the link goes from coach to client): nothing.
    for (who, path) in [
        (&client, format!("/v1/me/coaches/{}", rival.id)),
        (&client, format!("/v1/me/coaches/{}", client.id)),
        (&client, "/v1/me/coaches/not-a-uuid".to_string()),
        (&coach, format!("/v1/me/coaches/{}", client.id)),
        (&admin, format!("/v1/me/coaches/{}", coach.id)),
    ] {
        let (status, error) = error_of(app.delete(&path, &who.token).await).await;
        assert_eq!(
            (status, error["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{path}"
        );
    }
    // Without a token: 401.
    for path in [remove.clone(), format!("/v1/me/coaches/{}", coach.id)] {
        let response = app
            .request(reqwest::Method::DELETE, &path, None)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
    }

    // After all of it the link stands.
    assert_eq!(client_ids(&app, &coach).await, [json!(client.id)]);
    let submitted = app.submit(&coach, json!({"client_id": client.id})).await;
    assert_eq!(submitted.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn an_open_invitation_is_not_a_link_to_end() {
    let app = spawn_api(|_| {}).await;
    let coach = app.coach().await;
    let invited = app.user().await;
    let link: Value = app
        .invite(&coach, &invited.email)
        .await
        .json()
        .await
        .unwrap();

    let (status, error) = error_of(
        app.delete(&format!("/v1/coach/clients/{}", invited.id), &coach.token)
            .await,
    )
    .await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("client_not_found"))
    );
    let (status, _) = error_of(
        app.delete(&format!("/v1/me/coaches/{}", coach.id), &invited.token)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The invitation is still open, and accepting it still links them.
    assert_eq!(client_ids(&app, &coach).await, [Value::Null]);
    assert_eq!(app.accept(&link, &invited).await.status(), StatusCode::OK);
    assert_eq!(coach_ids(&app, &invited).await, [coach.id.to_string()]);
}

/// What a stream sends until it ends (or `within` passes: then the test fails).
async fn rest_of(stream: &mut reqwest::Response, within: std::time::Duration) -> String {
    let mut text = String::new();
    tokio::time::timeout(within, async {
        while let Some(chunk) = stream.chunk().await.unwrap() {
            text.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the stream did not end; it sent {text:?}"));
    text
}

#[tokio::test]
async fn a_coach_watching_a_job_stops_seeing_it_when_the_client_leaves() {
    let app = spawn_api(|_| {}).await;
    let coach = app.coach().await;
    let client = app.user().await;
    app.link(&coach, &client).await;
    let job = app.queued_job(client.id).await;
    let events = format!("/v1/jobs/{job}/events");

    let mut watching = app.get(&events, &coach.token).await;
    assert_eq!(watching.status(), StatusCode::OK);
    let mut first = String::new();
    while !first.contains("\n\n") {
        let chunk = watching.chunk().await.unwrap().expect("the job now");
        first.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(first.contains(r#""status":"queued""#), "{first}");
    let polling = {
        let app = &app;
        let token = coach.token.clone();
        async move {
            app.get(&format!("/v1/jobs/{job}?wait=20"), &token)
                .await
                .status()
        }
    };
    let leave = async {
        // The long poll is waiting by now.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let left = app
            .delete(&format!("/v1/me/coaches/{}", coach.id), &client.token)
            .await;
        assert_eq!(left.status(), StatusCode::NO_CONTENT);
        app.claim(job).await;
        app.announce(job).await;
    };
    let (polled, ()) = tokio::join!(polling, leave);

    // The change is not the former coach's to see: the long poll answers 404, the stream ends.
    assert_eq!(polled, StatusCode::NOT_FOUND);
    let rest = rest_of(&mut watching, std::time::Duration::from_secs(10)).await;
    assert!(!rest.contains("data:"), "{rest}");
    let now: Value = app
        .get_json(&format!("/v1/jobs/{job}"), &client.token)
        .await;
    assert_eq!(now["status"], "running");
}
