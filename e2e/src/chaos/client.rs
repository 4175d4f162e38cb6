//! The chaos run's users, as a well-behaved app is: each submission carries an
//! `Idempotency-Key`, and a 503 or a lost connection is retried after the server's
//! `Retry-After`, so an outage delays a submission but never loses or doubles it.

use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

/// How long a request keeps being retried through an outage before the run gives up.
const GIVE_UP_AFTER: Duration = Duration::from_secs(180);

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

/// A registered user and their token.
#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub token: String,
}

/// What a request went through before it was answered.
#[derive(Debug, Clone, Copy, Default)]
pub struct Retries {
    /// 503 answers (the database or the pool unavailable).
    pub unavailable: u32,
    /// Requests that got no answer at all.
    pub unanswered: u32,
}

impl Client {
    pub fn new(base: String) -> Client {
        Client {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
            base,
        }
    }

    /// Sends what `request` builds until the answer is not a 503 (nor no answer), waiting as
    /// `Retry-After` says; returns the answer and what it took.
    async fn send(
        &self,
        request: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> anyhow::Result<(StatusCode, Value, Retries)> {
        let started = Instant::now();
        let mut retries = Retries::default();
        loop {
            let wait = match request(&self.http).send().await {
                Ok(response) if response.status() == StatusCode::SERVICE_UNAVAILABLE => {
                    retries.unavailable += 1;
                    let secs = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(1);
                    Duration::from_secs(secs)
                }
                Ok(response) => {
                    let status = response.status();
                    let body = response.json().await.unwrap_or(Value::Null);
                    return Ok((status, body, retries));
                }
                Err(_) => {
                    retries.unanswered += 1;
                    Duration::from_secs(1)
                }
            };
            anyhow::ensure!(
                started.elapsed() < GIVE_UP_AFTER,
                "no answer but 503 for {GIVE_UP_AFTER:?}"
            );
            tokio::time::sleep(wait).await;
        }
    }

    pub async fn register(&self, email: &str) -> anyhow::Result<User> {
        let url = format!("{}/v1/auth/register", self.base);
        let body = json!({"email": email, "password": testkit::PASSWORD});
        let (status, body, _) = self.send(|http| http.post(&url).json(&body)).await?;
        anyhow::ensure!(status == StatusCode::CREATED, "register: {status} {body}");
        Ok(User {
            id: body["user"]["id"].as_str().context("user id")?.parse()?,
            token: body["token"].as_str().context("token")?.to_string(),
        })
    }

    /// Submits a menu request under `key`; returns the job's id.
    pub async fn submit(
        &self,
        user: &User,
        request: &Value,
        key: &str,
    ) -> anyhow::Result<(Uuid, Retries)> {
        let url = format!("{}/v1/menus", self.base);
        let (status, body, retries) = self
            .send(|http| {
                http.post(&url)
                    .bearer_auth(&user.token)
                    .header("idempotency-key", key)
                    .json(request)
            })
            .await?;
        anyhow::ensure!(
            status == StatusCode::ACCEPTED || status == StatusCode::OK,
            "submit: {status} {body}"
        );
        Ok((body["job_id"].as_str().context("job id")?.parse()?, retries))
    }

    /// Cancels a job as its owner; `true` if it was cancelled (not finished first).
    pub async fn cancel(&self, user: &User, job: Uuid) -> anyhow::Result<bool> {
        let url = format!("{}/v1/jobs/{job}", self.base);
        let (status, body, _) = self
            .send(|http| http.delete(&url).bearer_auth(&user.token))
            .await?;
        match status {
            StatusCode::OK => Ok(true),
            StatusCode::CONFLICT => Ok(false),
            _ => anyhow::bail!("cancel: {status} {body}"),
        }
    }
}
