//! The accounts a test acts as, made as people make them: registered through the API (an
//! admin is then given the role in the database, since nobody can sign up as one), linked to a
//! coach by invitation, opted in to the weekly batch.

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::TestApi;

/// The password of every account the tests register (12 characters or more, as the API
/// requires).
pub const PASSWORD: &str = "correct horse battery";

/// A registered account and its bearer token.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: Uuid,
    /// `<uuid>@example.com`.
    pub email: String,
    /// The access token the registration (or, for an admin, a login) answered with.
    pub token: String,
}

impl TestApi {
    /// Registers a new account with `role` (`user` or `coach`) and [`PASSWORD`]; panics unless
    /// the API answers 201.
    pub async fn register_as(&self, role: &str) -> Account {
        let email = format!("{}@example.com", Uuid::new_v4().simple());
        let response = self
            .request(Method::POST, "/v1/auth/register", None)
            .json(&json!({"email": email, "password": PASSWORD, "role": role}))
            .send()
            .await
            .expect("an answer");
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.expect("a JSON body");
        Account {
            id: body["user"]["id"]
                .as_str()
                .and_then(|id| id.parse().ok())
                .expect("the new user's id"),
            email,
            token: body["token"].as_str().expect("a token").to_string(),
        }
    }

    /// A new account with the role `user`.
    pub async fn user(&self) -> Account {
        self.register_as("user").await
    }

    /// A new account with the role `coach`.
    pub async fn coach(&self) -> Account {
        self.register_as("coach").await
    }

    /// A new admin account and its token. There is no way to register as one: it is made in
    /// the database, as `api admin create-user` does, then logged in again.
    pub async fn admin(&self) -> Account {
        let account = self.user().await;
        sqlx::query("UPDATE users SET role = 'admin' WHERE id = $1")
            .bind(account.id)
            .execute(&self.db.pool)
            .await
            .expect("make the account an admin");
        let response = self.login(&account.email, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.expect("a JSON body");
        Account {
            token: body["token"].as_str().expect("a token").to_string(),
            ..account
        }
    }

    /// Logs in with `email` and `password` (`POST /v1/auth/login`).
    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.request(Method::POST, "/v1/auth/login", None)
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .expect("an answer")
    }

    /// Links `client` to `coach` through the API, as they would: the coach invites the
    /// client's email, the client accepts.
    pub async fn link(&self, coach: &Account, client: &Account) {
        let link: Value = self
            .invite(coach, &client.email)
            .await
            .json()
            .await
            .expect("a JSON invitation");
        let accepted = self.accept(&link, client).await;
        assert_eq!(accepted.status(), StatusCode::OK);
    }

    /// `coach` invites `email` to be their client (`POST /v1/coach/invitations`).
    pub async fn invite(&self, coach: &Account, email: &str) -> Response {
        self.post(
            "/v1/coach/invitations",
            &coach.token,
            json!({"email": email}),
        )
        .await
    }

    /// `who` accepts the invitation `link` (the JSON an invitation is answered with).
    pub async fn accept(&self, link: &Value, who: &Account) -> Response {
        let accept = format!(
            "/v1/invitations/{}/accept",
            link["id"].as_str().expect("the invitation's id")
        );
        self.post(&accept, &who.token, json!({})).await
    }

    /// Opts `who` in to the weekly batch through the API, their menu starting on `weekday`
    /// (`monday`...`sunday`).
    pub async fn opt_in(&self, who: &Account, weekday: &str) {
        let response = self
            .put(
                "/v1/preferences",
                &who.token,
                json!({"auto_generate_weekly": true, "weekly_start_day": weekday}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }

    /// A user opted in to the weekly batch (Monday) whose stored preferences are invalid
    /// (99 days), so that their menu cannot be requested.
    pub async fn opted_in_with_broken_preferences(&self) -> Account {
        let broken = self.user().await;
        self.opt_in(&broken, "monday").await;
        sqlx::query("UPDATE preferences SET options = '{\"days\": 99}' WHERE user_id = $1")
            .bind(broken.id)
            .execute(&self.db.pool)
            .await
            .expect("break the preferences");
        broken
    }
}
