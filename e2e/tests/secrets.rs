//! Secrets stay secret: the LLM key, the JWT secret, the database and Redis passwords, and
//! every bearer and refresh token appear in no log line (every component's, captured at DEBUG),
//! no answer body and no metric, while the system goes through a wrong LLM key, malformed and
//! failing provider answers, a database outage, forged tokens and wrong passwords.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};
use shared::config::RedisConfig;
use standin::{Fault, Step};
use testkit::{JWT_SECRET, LLM_API_KEY, PASSWORD, SystemOptions, TestSystem, spawn_system};

const DATABASE_PASSWORD: &str = "pg-pass-5e8b2f71c9a4";
const REDIS_PASSWORD: &str = "redis-pass-a13f6d09e7c2";

/// Everything logged, by every component of this process.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// A Redis user of this test's own with a password (the shared server has none for its
/// default user), removed when dropped.
struct RedisUser {
    name: String,
    prefix: String,
}

impl RedisUser {
    async fn create() -> RedisUser {
        let id = &uuid::Uuid::new_v4().simple().to_string()[..12];
        let user = RedisUser {
            name: format!("secrets-{id}"),
            prefix: format!("t-{id}"),
        };
        let _: () = redis::cmd("ACL")
            .arg(&["SETUSER", &user.name, "on", &format!(">{REDIS_PASSWORD}")])
            .arg(&["~*", "&*", "+@all"])
            .query_async(&mut user.admin().await)
            .await
            .unwrap();
        user
    }

    async fn admin(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open("redis://127.0.0.1:6379")
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    fn config(&self) -> RedisConfig {
        RedisConfig {
            url: SecretString::from(format!(
                "redis://{}:{REDIS_PASSWORD}@127.0.0.1:6379",
                self.name
            )),
            prefix: self.prefix.clone(),
            cluster: false,
        }
    }

    async fn remove(self) {
        let mut admin = self.admin().await;
        let _: i64 = redis::cmd("ACL")
            .arg(&["DELUSER", &self.name])
            .query_async(&mut admin)
            .await
            .unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{{{}}}*", self.prefix))
            .query_async(&mut admin)
            .await
            .unwrap();
        for key in keys {
            let _: i64 = redis::cmd("DEL")
                .arg(key)
                .query_async(&mut admin)
                .await
                .unwrap();
        }
    }
}

/// What the clients saw: every answer body, and the metrics.
#[derive(Default)]
struct Seen {
    bodies: Vec<String>,
    tokens: Vec<String>,
}

impl Seen {
    async fn keep(&mut self, response: reqwest::Response) -> (StatusCode, Value) {
        let status = response.status();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        for key in ["token", "refresh_token"] {
            if let Some(token) = body[key].as_str() {
                self.tokens.push(token.to_string());
            }
        }
        self.bodies.push(text);
        (status, body)
    }
}

/// Drives `system` through logins gone wrong, forged and ended tokens, a submission, the
/// metrics and readiness; returns the submitted job and its owner's token.
async fn exercise(system: &TestSystem, seen: &mut Seen) -> (uuid::Uuid, String) {
    let http = &system.api.http;
    let cook = system.api.user().await;
    seen.tokens.push(cook.token.clone());
    let login = |password: &str| {
        http.post(system.api.url("/v1/auth/login"))
            .json(&json!({"email": cook.email, "password": password}))
            .send()
    };
    let (_, session) = seen.keep(login(PASSWORD).await.unwrap()).await;
    seen.keep(login("a wrong password").await.unwrap()).await;
    let refresh = session["refresh_token"].as_str().unwrap().to_string();
    for _ in 0..2 {
        // The second use of one refresh token ends the session (and is logged as such).
        let response = http
            .post(system.api.url("/v1/auth/refresh"))
            .json(&json!({"refresh_token": refresh}))
            .send()
            .await
            .unwrap();
        seen.keep(response).await;
    }
    let almost = format!("{}x", &cook.token[..cook.token.len() - 1]);
    for token in [
        almost.as_str(),
        session["token"].as_str().unwrap(),
        "garbage",
    ] {
        let response = http
            .get(system.api.url("/v1/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        seen.keep(response).await;
    }
    let response = http
        .post(system.api.url("/v1/menus"))
        .bearer_auth(&cook.token)
        .json(&json!({"days": 2}))
        .send()
        .await
        .unwrap();
    let (status, body) = seen.keep(response).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    for path in ["/metrics", "/readyz", "/healthz"] {
        let response = http.get(system.api.url(path)).send().await.unwrap();
        seen.keep(response).await;
    }
    (
        body["job_id"].as_str().unwrap().parse().unwrap(),
        cook.token,
    )
}

/// Waits until `job` has finished (succeeded or failed) and keeps its view.
async fn finished(system: &TestSystem, token: &str, job: uuid::Uuid, seen: &mut Seen) -> Value {
    let started = Instant::now();
    loop {
        let response = system
            .api
            .http
            .get(system.api.url(&format!("/v1/jobs/{job}?wait=5")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let (status, view) = seen.keep(response).await;
        if status == StatusCode::OK
            && ["succeeded", "failed"].contains(&view["status"].as_str().unwrap_or(""))
        {
            return view;
        }
        // Generous: a few retries with backoff on a loaded machine.
        assert!(started.elapsed() < Duration::from_secs(90), "{view}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_secret_reaches_a_log_an_answer_or_a_metric_through_failures() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("debug")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();
    let mut seen = Seen::default();

    // A provider that refuses the workers' key.
    let redis = RedisUser::create().await;
    let system = spawn_system(SystemOptions {
        redis: Some(redis.config()),
        database_password: Some(DATABASE_PASSWORD.into()),
        standin: standin::Config {
            api_key: Some(SecretString::from("sk-the-provider-wants-another-key")),
            ..Default::default()
        },
        ..SystemOptions::default()
    })
    .await;
    let (job, owner) = exercise(&system, &mut seen).await;
    let admin = system.api.admin().await;
    seen.tokens.push(admin.token.clone());
    // The call is refused: the circuit opens and the job waits for a key that works.
    let started = Instant::now();
    loop {
        let response = system
            .api
            .http
            .get(system.api.url(&format!("/v1/jobs/{job}")))
            .bearer_auth(&owner)
            .send()
            .await
            .unwrap();
        let (_, view) = seen.keep(response).await;
        // Snoozed while the circuit is open, or failed.
        let refused = !view["error"].is_null() || !view["next_attempt_at"].is_null();
        if refused && view["id"] == job.to_string() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no error: {view}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let response = system
        .api
        .http
        .get(system.api.url("/v1/admin/jobs?status=queued"))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    seen.keep(response).await;
    drop(system);
    redis.remove().await;

    // A provider that answers malformed, cut, failing and rule-breaking days, and a database
    // that goes away meanwhile.
    let redis = RedisUser::create().await;
    let system = spawn_system(SystemOptions {
        redis: Some(redis.config()),
        database_password: Some(DATABASE_PASSWORD.into()),
        cuttable_database: true,
        acquire_timeout: Duration::from_secs(1),
        ..SystemOptions::default()
    })
    .await;
    // The first calls are answered malformed, cut, dropped and failed, then well.
    let faults = [
        Fault::MalformedJson,
        Fault::Truncated,
        Fault::Reset,
        Fault::ServerError {
            status: 500,
            body: standin::BodyStyle::Json,
        },
    ];
    system.standin.script(faults.map(Step::once));
    let (job, owner) = exercise(&system, &mut seen).await;
    let link = system.db_link.as_ref().unwrap();
    link.cut();
    // While it is down: a login and a submission are answered 503, saying nothing more.
    let login = system
        .api
        .http
        .post(system.api.url("/v1/auth/login"))
        .json(&json!({"email": "cook@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let (status, body) = seen.keep(login).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let readiness = system.api.get_anonymous("/readyz").await;
    seen.keep(readiness).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    link.restore();
    let admin = system.api.admin().await;
    seen.tokens.push(admin.token.clone());
    let second = finished(&system, &owner, job, &mut seen).await;
    let system_calls = system.standin.requests().len();
    drop(system);
    redis.remove().await;
    assert_eq!(second["status"], "succeeded", "{second}");
    assert!(
        system_calls >= 6,
        "{system_calls} calls: the faults were not all served"
    );

    let logs = captured.text();
    for sign in ["llm_invalid_api_key", "database"] {
        assert!(
            logs.to_lowercase().contains(sign),
            "nothing logged of {sign}: the failures did not happen, and the search means nothing"
        );
    }
    let secrets = [
        ("the LLM API key", LLM_API_KEY.to_string()),
        ("the JWT secret", JWT_SECRET.to_string()),
        ("the database password", DATABASE_PASSWORD.to_string()),
        ("the Redis password", REDIS_PASSWORD.to_string()),
        ("the account password", PASSWORD.to_string()),
    ];
    let tokens = seen
        .tokens
        .iter()
        .map(|t| ("a bearer or refresh token", t.clone()));
    for (what, secret) in secrets.into_iter().chain(tokens) {
        assert!(!logs.contains(&secret), "{what} is in the logs");
        for body in &seen.bodies {
            // A token is in the answer that issues it, and only there.
            if body.contains("\"refresh_token\"") && what.ends_with("token") {
                continue;
            }
            assert!(!body.contains(&secret), "{what} is in an answer: {body}");
        }
    }
    assert!(seen.bodies.len() > 20, "{} answers", seen.bodies.len());
}
