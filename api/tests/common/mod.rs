//! The API spawned in-process on a port of its own, against a database and a Redis prefix of
//! the test's own, with helpers to act as users and to look behind the API.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use api::{AppState, Config};
use domain::menu::{Day, Ingredient, Meal, MenuPlan, Nutrition, Unit};
use domain::vocabulary::{Complexity, MealTime};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use secrecy::SecretString;
use serde_json::{Value, json};
use shared::batch::BatchRun;
use shared::batch::enqueue::{self, EnqueueConfig};
use shared::batch::schedule::ScheduleConfig;
use shared::config::RedisConfig;
use shared::db::jobs::{self, Claim, ClaimRequest, Fence};
use shared::job::{JobError, Usage};
use shared::lifecycle::Lifecycle;
use shared::queue::Queue;
use telemetry::LogConfig;
use testkit::{TestDb, TestRedis};
use tokio::sync::oneshot;
use uuid::Uuid;

/// The secret the test servers sign tokens with (tests forge tokens with it).
pub const SECRET: &str = "test-secret-0123456789abcdef-0123456789";

/// The password of every account the tests register.
pub const PASSWORD: &str = "correct horse battery";

/// Settings for a test server; tests change what they exercise.
pub fn config(db: &TestDb, redis: RedisConfig) -> Config {
    Config {
        database: db.config(5, Duration::from_secs(3)),
        redis,
        log: LogConfig {
            filter: "warn".into(),
            json: false,
        },
        bind: "127.0.0.1:0".parse().unwrap(),
        jwt_secret: SecretString::from(SECRET),
        token_ttl_secs: 3600,
        refresh_ttl_secs: 86_400,
        registration_enabled: true,
        body_limit_bytes: 65_536,
        request_timeout_ms: 30_000,
        login_concurrency: NonZeroUsize::new(4).unwrap(),
        job_max_attempts: 3,
        login_rate_per_minute: NonZeroU32::new(1_000).unwrap(),
        login_failures_per_account: NonZeroU32::new(5).unwrap(),
        submit_rate_per_minute: NonZeroU32::new(1_000).unwrap(),
        waiting_jobs_per_user: 1_000,
        admin_cookie_secure: false,
        batch: ScheduleConfig {
            cron: "0 0 18 * * Fri".into(),
            timezone: chrono_tz::UTC,
            name: "weekly".into(),
            catch_up_secs: 86_400,
            enabled: false,
        },
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub queue: Queue,
    pub redis_config: RedisConfig,
    stop: std::sync::Mutex<Option<oneshot::Sender<()>>>,
    pub server: tokio::task::JoinHandle<std::io::Result<()>>,
    // Last: dropped after the server's pool is done with it.
    pub db: TestDb,
    _redis: Option<TestRedis>,
}

/// A registered account.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: Uuid,
    pub email: String,
    pub token: String,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(|_| {}).await
    }

    /// Spawns with the defaults of [`config`] changed by `tune`.
    pub async fn spawn_with(tune: impl FnOnce(&mut Config)) -> TestApp {
        let redis = TestRedis::new();
        let redis_config = redis.config();
        TestApp::spawn_on(redis_config, Some(redis), tune).await
    }

    /// Spawns against a Redis of the caller's (a private server the test can stop).
    pub async fn spawn_on(
        redis_config: RedisConfig,
        redis: Option<TestRedis>,
        tune: impl FnOnce(&mut Config),
    ) -> TestApp {
        testkit::init_tracing();
        // reqwest is built without a TLS provider of its own; these tests speak plain HTTP but
        // a client still needs one installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let db = TestDb::new().await;
        let mut config = config(&db, redis_config.clone());
        tune(&mut config);
        let state = AppState::new(&config).await.expect("start the API");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(api::serve(listener, state, async {
            let _ = stopped.await;
        }));
        TestApp {
            addr,
            http: reqwest::Client::new(),
            queue: Queue::connect(&redis_config)
                .await
                .expect("connect to Redis"),
            redis_config,
            stop: std::sync::Mutex::new(Some(stop)),
            server,
            db,
            _redis: redis,
        }
    }

    /// A second API process on this one's database and Redis (as a replica behind a load
    /// balancer would be), with [`config`] changed by `tune`, serving until the test ends.
    pub async fn another_process(&self, tune: impl FnOnce(&mut Config)) -> Replica {
        let mut config = config(&self.db, self.redis_config.clone());
        config.login_failures_per_account = NonZeroU32::new(1_000).unwrap();
        tune(&mut config);
        let state = AppState::new(&config).await.expect("start the API");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(api::serve(listener, state, std::future::pending()));
        Replica {
            addr,
            http: reqwest::Client::new(),
            server,
        }
    }

    /// Ends every login lock of the login throttle, as their expiry would.
    pub async fn expire_login_locks(&self) {
        let pattern = format!("{}*", self.queue.keys().login_lock(""));
        let locks: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut self.queue.connection())
            .await
            .unwrap();
        for lock in locks {
            let _: i64 = redis::cmd("DEL")
                .arg(lock)
                .query_async(&mut self.queue.connection())
                .await
                .unwrap();
        }
    }

    /// Begins a graceful shutdown, as SIGTERM would.
    pub fn shut_down(&self) {
        if let Some(stop) = self.stop.lock().unwrap().take() {
            let _ = stop.send(());
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let request = self.http.request(method, self.url(path));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.request(Method::GET, path, Some(token))
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Response {
        self.request(Method::POST, path, Some(token))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn register_as(&self, role: &str) -> Account {
        let email = format!("{}@example.com", Uuid::new_v4().simple());
        let response = self
            .request(Method::POST, "/v1/auth/register", None)
            .json(&json!({"email": email, "password": PASSWORD, "role": role}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        Account {
            id: body["user"]["id"].as_str().unwrap().parse().unwrap(),
            email,
            token: body["token"].as_str().unwrap().to_string(),
        }
    }

    pub async fn user(&self) -> Account {
        self.register_as("user").await
    }

    pub async fn coach(&self) -> Account {
        self.register_as("coach").await
    }

    /// An admin account (there is no way to register as one: it is made in the database, as
    /// `api admin create-user` does) and its token.
    pub async fn admin(&self) -> Account {
        let account = self.user().await;
        sqlx::query("UPDATE users SET role = 'admin' WHERE id = $1")
            .bind(account.id)
            .execute(&self.db.pool)
            .await
            .unwrap();
        let response = self
            .request(Method::POST, "/v1/auth/login", None)
            .json(&json!({"email": account.email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        Account {
            token: body["token"].as_str().unwrap().to_string(),
            ..account
        }
    }

    /// Submits a menu request as `who`.
    pub async fn submit(&self, who: &Account, body: Value) -> Response {
        self.post("/v1/menus", &who.token, body).await
    }

    /// Links `client` to `coach` through the API, as they would.
    pub async fn link(&self, coach: &Account, client: &Account) {
        let link: Value = self
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
        let accepted = self.post(&accept, &client.token, json!({})).await;
        assert_eq!(accepted.status(), StatusCode::OK);
    }

    pub async fn job_rows(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM generation_jobs")
            .fetch_one(&self.db.pool)
            .await
            .unwrap()
    }

    /// Job ids waiting in the ready list, oldest first.
    pub async fn ready_ids(&self) -> Vec<String> {
        let mut conn = self.queue.connection();
        redis::cmd("LRANGE")
            .arg(self.queue.keys().ready())
            .arg(0)
            .arg(-1)
            .query_async::<Vec<String>>(&mut conn)
            .await
            .unwrap()
            .into_iter()
            .rev()
            .collect()
    }

    /// A queued 7-day job for `owner`, written straight to the database (nothing is pushed).
    pub async fn queued_job(&self, owner: Uuid) -> Uuid {
        testkit::rows::queued_job(&self.db.pool, owner, 7).await
    }

    /// Claims a job as a worker would: it is running afterwards, under the fence returned.
    pub async fn claim(&self, job: Uuid) -> Fence {
        let mut conn = self.db.pool.acquire().await.unwrap();
        let request = ClaimRequest {
            id: job,
            worker_id: "test-worker".into(),
            lease: Duration::from_secs(60),
            deadline: Duration::from_secs(600),
            owner_cap: 0,
        };
        let claim = jobs::claim(&mut conn, &request).await.unwrap();
        match claim {
            Claim::Claimed(claimed) => claimed.fence,
            _ => panic!("job {job} not claimable"),
        }
    }

    /// A finished job with its menu, for `owner`; returns the menu id.
    pub async fn finished_menu(&self, owner: Uuid) -> Uuid {
        let job = self.queued_job(owner).await;
        let fence = self.claim(job).await;
        let mut conn = self.db.pool.acquire().await.unwrap();
        jobs::complete(&mut conn, fence, 1, &plan(), Usage::default())
            .await
            .unwrap()
            .expect("the claimed attempt completes")
    }

    /// A job of `owner` that failed its one attempt with `code`.
    pub async fn failed_job(&self, owner: Uuid, code: &str) -> Uuid {
        let job = self.queued_job(owner).await;
        let fence = self.claim(job).await;
        let mut conn = self.db.pool.acquire().await.unwrap();
        let usage = Usage {
            calls: 2,
            prompt_tokens: 1_500,
            completion_tokens: 900,
            snoozes: 0,
        };
        jobs::fail_attempt(
            &mut conn,
            fence,
            &JobError::new(code, "it broke"),
            None,
            usage,
        )
        .await
        .unwrap();
        job
    }

    /// A job's status, attempts and attempt limit, read from the database.
    pub async fn status_of(&self, job: Uuid) -> (String, i32, i32) {
        sqlx::query_as(
            "SELECT status::text, attempts, max_attempts FROM generation_jobs WHERE id = $1",
        )
        .bind(job)
        .fetch_one(&self.db.pool)
        .await
        .unwrap()
    }

    /// Opts `who` in to the weekly batch through the API, their menu starting on `weekday`.
    pub async fn opt_in(&self, who: &Account, weekday: &str) {
        let response = self
            .request(Method::PUT, "/v1/preferences", Some(&who.token))
            .json(&json!({"auto_generate_weekly": true, "weekly_start_day": weekday}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    /// Creates a batch's jobs here, to the end, as a worker's scheduler would (no worker runs
    /// in these tests); the run as it is left.
    pub async fn enqueue_batch(&self, id: Uuid) -> BatchRun {
        let life = Lifecycle::new(self.db.pool.clone(), self.queue.clone());
        let config = EnqueueConfig {
            chunk: 100,
            lease_secs: 30,
            max_attempts: 3,
        };
        enqueue::drive(&life, id, &config)
            .await
            .unwrap()
            .expect("nobody else enqueues the batch")
    }

    /// The ids of a batch's jobs, oldest first.
    pub async fn batch_jobs(&self, batch: Uuid) -> Vec<Uuid> {
        sqlx::query_scalar("SELECT id FROM generation_jobs WHERE batch_id = $1 ORDER BY id")
            .bind(batch)
            .fetch_all(&self.db.pool)
            .await
            .unwrap()
    }

    /// Marks jobs failed (their one attempt spent), straight in the database.
    pub async fn fail_in_sql(&self, jobs: &[Uuid]) {
        sqlx::query(
            "UPDATE generation_jobs
             SET status = 'failed', attempts = 1, last_error_code = 'llm_timeout',
                 last_error_message = 'it broke', finished_at = now()
             WHERE id = ANY($1)",
        )
        .bind(jobs)
        .execute(&self.db.pool)
        .await
        .unwrap();
    }

    /// The admin actions recorded, oldest first: what, on which job, how many.
    pub async fn audit(&self) -> Vec<(String, Option<Uuid>, i32)> {
        sqlx::query_as("SELECT action, job_id, affected FROM admin_actions ORDER BY id")
            .fetch_all(&self.db.pool)
            .await
            .unwrap()
    }
}

/// A one-day plan with one dinner of 400 g of chickpeas.
pub fn plan() -> MenuPlan {
    let meal = Meal {
        meal_time: MealTime::Dinner,
        title: "Chickpea stew".into(),
        cuisine: "moroccan".into(),
        main_ingredient: "chickpeas".into(),
        servings: 1,
        prep_minutes: 10,
        cook_minutes: 20,
        complexity: Complexity::Easy,
        ingredients: vec![Ingredient {
            name: "chickpeas".into(),
            quantity: 400.0,
            unit: Unit::G,
        }],
        steps: vec!["Simmer.".into()],
        per_serving: Nutrition {
            kcal: 600.0,
            protein_g: 30.0,
            carbs_g: 80.0,
            fat_g: 15.0,
        },
    };
    let mut day = Day {
        day_number: 1,
        date: None,
        meals: vec![meal],
        snacks: vec![],
        totals: Nutrition::default(),
    };
    day.finish(1, None, 1);
    MenuPlan { days: vec![day] }
}

/// The status and the `error` object of an error response.
pub async fn error_of(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let body: Value = response
        .json()
        .await
        .unwrap_or_else(|e| panic!("error body of a {status} is not JSON ({content_type:?}): {e}"));
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    (status, body["error"].clone())
}

/// Another API process of a [`TestApp`]; it stops when dropped.
pub struct Replica {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Replica {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.http
            .get(format!("http://{}{path}", self.addr))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.server.abort();
    }
}
