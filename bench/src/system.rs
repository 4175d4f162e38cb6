//! The API and a worker on a database and a Redis prefix of their own, calling a stand-in LLM
//! over real HTTP, all in this process. Helpers act as a client would.

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::{Duration, Instant};

use domain::request::MenuOptions;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use shared::batch::enqueue::{self, EnqueueConfig, Started};
use shared::batch::schedule::Tz;
use shared::llm::budget::{Budget, BudgetConfig};
use shared::llm::circuit::{Circuit, CircuitConfig};
use shared::config::{JsonMode, LlmConfig, RedisConfig, TokenParam};
use shared::lifecycle::Lifecycle;
use shared::llm::LlmClient;
use shared::queue::{Queue, QueueConfig};
use sqlx::PgPool;
use standin::StandIn;
use telemetry::LogConfig;
use testkit::{TcpProxy, TestDb, TestRedis};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use worker::{CallPolicy, Caller, JobConfig, Pipeline};

pub const JWT_SECRET: &str = "e2e-secret-0123456789abcdef-0123456789";

/// The password of every account [`System::register`] makes.
pub const PASSWORD: &str = "correct horse battery";

/// What a test may change about the system it starts.
pub struct Options {
    /// Connections in the one pool the API and the worker share.
    pub pool_size: u32,
    pub acquire_timeout: Duration,
    pub standin: standin::Config,
    pub jobs: JobConfig,
    pub budget: BudgetConfig,
    pub circuit: CircuitConfig,
    /// The LLM client's whole-call timeout.
    pub call_timeout: Duration,
    pub max_attempts: i32,
    /// Worker processes to run, each with its own connections, budget view and circuit view
    /// (0 to measure the API alone).
    pub workers: usize,
    /// The Redis to use; a fresh prefix on the shared one when `None`.
    pub redis: Option<RedisConfig>,
    /// How the worker asks for JSON.
    pub json_mode: JsonMode,
    /// Reach PostgreSQL through a link the test can cut ([`System::db_link`]), for outages.
    pub cuttable_database: bool,
    /// A password in the database URL (the test server trusts loopback, so any is accepted):
    /// a secret the logs must never show.
    pub database_password: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pool_size: 10,
            acquire_timeout: Duration::from_secs(3),
            standin: standin::Config::default(),
            jobs: JobConfig {
                concurrency: 64,
                day_max_asks: 3,
                retry_base_delay_ms: 50,
                retry_max_delay_ms: 200,
                lease_secs: 30,
                lease_renew_secs: 10,
                write_retry_secs: 30,
                // Fast, so tests that lose Redis's contents see them back soon.
                reconcile_interval_ms: 500,
                shutdown_grace_secs: 2,
                deadline_secs: 120,
                max_snoozes: 20,
                max_server_wait_ms: 10_000,
                server_wait_cap_ms: 600_000,
                llm_max_retries: 3,
                // Short, so tests of transient faults run fast (the 1 s default is tested alone).
                llm_retry_base_ms: 50,
                llm_retry_max_ms: 200,
                // No cap: most tests submit many jobs from one account (the cap is tested on
                // its own, in `fairness`).
                user_running_cap: 0,
                user_cap_recheck_ms: 200,
                interactive_slots: None,
            },
            budget: BudgetConfig {
                rpm: None,
                tpm: None,
                window_ms: 60_000,
                utilization: 0.99,
                max_wait_ms: 10_000,
                interactive_share: 0.3,
                interactive_idle_ms: 15_000,
                batch_lookahead_ms: 100,
            },
            circuit: CircuitConfig {
                probe_ms: 1_000,
                probe_max_ms: 4_000,
            },
            call_timeout: Duration::from_secs(5),
            max_attempts: 3,
            workers: 1,
            redis: None,
            json_mode: JsonMode::JsonSchema,
            cuttable_database: false,
            database_password: None,
        }
    }
}

pub fn queue_config() -> QueueConfig {
    QueueConfig {
        block_timeout_ms: 1_000,
        heartbeat_interval_ms: 500,
        heartbeat_ttl_ms: 3_000,
        promote_interval_ms: 50,
        reap_interval_ms: 500,
        redelivery_delay_ms: 200,
        batch_claim_every: 10,
    }
}

/// The key the workers send the stand-in (a secret the logs must never show).
pub const LLM_API_KEY: &str = "sk-test-7f3a9c1e5b2d8046";

pub fn llm_config(base_url: String, json_mode: JsonMode, call_timeout: Duration) -> LlmConfig {
    LlmConfig {
        base_url,
        api_key: SecretString::from(LLM_API_KEY),
        model: "gpt-4o-mini".into(),
        model_premium: None,
        json_mode,
        token_param: TokenParam::MaxCompletionTokens,
        max_completion_tokens: 2500,
        temperature: 0.7,
        connect_timeout_ms: 1_000,
        call_timeout_ms: call_timeout.as_millis() as u64,
    }
}

pub struct System {
    pub api: SocketAddr,
    pub http: reqwest::Client,
    pub standin: StandIn,
    pub queue: Queue,
    pub pool: PgPool,
    stop: CancellationToken,
    worker_stop: CancellationToken,
    api_task: JoinHandle<std::io::Result<()>>,
    worker_tasks: Vec<JoinHandle<anyhow::Result<()>>>,
    /// Each worker's budget, to see whether it runs on its local share.
    pub budgets: Vec<Budget>,
    /// The API's and workers' link to PostgreSQL, when `cuttable_database` (tests read the
    /// database past it, through `db.pool`).
    pub db_link: Option<TcpProxy>,
    // Last: dropped after everything that uses them.
    pub db: TestDb,
    _redis: Option<TestRedis>,
}

/// A registered account and its bearer token.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: Uuid,
    pub email: String,
    pub token: String,
}

impl System {
    pub async fn start(options: Options) -> System {
        testkit::init_tracing();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let db = TestDb::new().await;
        let test_redis = options.redis.is_none().then(TestRedis::new);
        let redis_config = options
            .redis
            .clone()
            .or_else(|| test_redis.as_ref().map(TestRedis::config))
            .expect("a redis");
        let standin = standin::spawn(options.standin).await.expect("stand-in");
        let db_link = match options.cuttable_database {
            true => Some(db.proxy().await),
            false => None,
        };
        let mut database = match &db_link {
            Some(link) => db.config_via(link, options.pool_size, options.acquire_timeout),
            None => db.config(options.pool_size, options.acquire_timeout),
        };
        if let Some(password) = &options.database_password {
            let url = database.url.expose_secret().replacen(
                "postgres://postgres@",
                &format!("postgres://postgres:{password}@"),
                1,
            );
            database.url = SecretString::from(url);
        }
        let pool = shared::db::connect(&database).await.expect("pool");
        let queue = Queue::connect(&redis_config).await.expect("redis");
        let stop = CancellationToken::new();

        let api_config = api::Config {
            database,
            redis: redis_config.clone(),
            log: LogConfig {
                filter: "warn".into(),
                json: false,
            },
            bind: "127.0.0.1:0".parse().unwrap(),
            jwt_secret: SecretString::from(JWT_SECRET),
            token_ttl_secs: 3600,
            refresh_ttl_secs: 86_400,
            registration_enabled: true,
            body_limit_bytes: 65_536,
            request_timeout_ms: 30_000,
            login_concurrency: NonZeroUsize::new(4).unwrap(),
            job_max_attempts: options.max_attempts,
            login_rate_per_minute: NonZeroU32::new(10_000).unwrap(),
            login_failures_per_account: NonZeroU32::new(5).unwrap(),
            submit_rate_per_minute: NonZeroU32::new(10_000).unwrap(),
            waiting_jobs_per_user: 10_000,
            admin_cookie_secure: false,
            // The API reads only the zone (a manual batch's default period).
            batch: shared::batch::schedule::ScheduleConfig {
                cron: "0 0 18 * * Fri".into(),
                timezone: "UTC".parse().expect("a time zone"),
                name: "weekly".into(),
                catch_up_secs: 86_400,
                enabled: false,
            },
        };
        let state = api::AppState::with_stores(&api_config, pool.clone(), queue.clone()).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = listener.local_addr().unwrap();
        let api_task = tokio::spawn(api::serve(listener, state, stop.clone().cancelled_owned()));

        let worker_stop = stop.child_token();
        let mut worker_tasks = Vec::new();
        let mut budgets = Vec::new();
        for _ in 0..options.workers {
            // A process of its own would have its own connections: so does each worker here.
            let queue = Queue::connect(&redis_config).await.expect("redis");
            let llm = LlmClient::new(llm_config(
                standin.base_url(),
                options.json_mode,
                options.call_timeout,
            ))
            .expect("llm client");
            let budget = Budget::new(queue.clone(), options.budget.clone());
            budgets.push(budget.clone());
            let caller = Caller {
                llm,
                budget,
                circuit: Circuit::new(queue.clone(), options.circuit.clone(), options.call_timeout),
                policy: CallPolicy::from(&options.jobs),
            };
            let pipeline = Pipeline::new(pool.clone(), queue, caller, options.jobs.clone());
            worker_tasks.push(tokio::spawn(worker::run_pipeline(
                pipeline,
                queue_config(),
                worker::BatchConfig::disabled(),
                worker_stop.clone().cancelled_owned(),
            )));
        }

        System {
            api,
            http: reqwest::Client::new(),
            standin,
            queue,
            pool,
            stop,
            worker_stop,
            api_task,
            worker_tasks,
            budgets,
            db_link,
            db,
            _redis: test_redis,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.api)
    }

    pub async fn register(&self) -> Account {
        let email = format!("cook-{}@example.com", Uuid::new_v4().simple());
        let response = self
            .http
            .post(self.url("/v1/auth/register"))
            .json(&json!({"email": email, "password": PASSWORD}))
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

    /// An admin account and an admin's token. Nobody can sign up as one, so it is registered,
    /// given the role in the database, and logged in again.
    pub async fn admin(&self) -> Account {
        let account = self.register().await;
        sqlx::query("UPDATE users SET role = 'admin' WHERE id = $1")
            .bind(account.id)
            .execute(&self.pool)
            .await
            .unwrap();
        let response = self
            .http
            .post(self.url("/v1/auth/login"))
            .json(&json!({"email": account.email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        Account {
            token: body["token"].as_str().unwrap().to_string(),
            ..account
        }
    }

    /// Submits a menu request; returns the job id.
    pub async fn submit(&self, who: &Account, request: Value) -> Uuid {
        let response = self
            .http
            .post(self.url("/v1/menus"))
            .bearer_auth(&who.token)
            .json(&request)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED, "submit {request}");
        let body: Value = response.json().await.unwrap();
        body["job_id"].as_str().unwrap().parse().unwrap()
    }

    pub async fn get(&self, who: &Account, path: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(&who.token)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Cancels `job` as `who` (`DELETE /v1/jobs/{id}`); the answer's status.
    pub async fn cancel(&self, who: &Account, job: Uuid) -> StatusCode {
        self.http
            .delete(self.url(&format!("/v1/jobs/{job}")))
            .bearer_auth(&who.token)
            .send()
            .await
            .unwrap()
            .status()
    }

    /// Long-polls the job until `done` says so, or panics after `within`.
    pub async fn wait_for(
        &self,
        who: &Account,
        job: Uuid,
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let (status, view) = self.get(who, &format!("/v1/jobs/{job}?wait=2")).await;
            assert_eq!(status, StatusCode::OK, "job status {view}");
            if done(&view) {
                return view;
            }
            assert!(
                Instant::now() < deadline,
                "job still {view} after {within:?}"
            );
        }
    }

    /// Waits until the job is succeeded, failed or cancelled.
    pub async fn wait_until_finished(&self, who: &Account, job: Uuid, within: Duration) -> Value {
        self.wait_for(who, job, within, |v| {
            matches!(
                v["status"].as_str(),
                Some("succeeded" | "failed" | "cancelled")
            )
        })
        .await
    }

    /// Delivers `job` once more, as a lost acknowledgement would (pushed raw: the queue's own
    /// push would see it is queued already).
    pub async fn deliver_again(&self, job: Uuid) {
        let _: () = redis::AsyncCommands::lpush(
            &mut self.queue.connection(),
            self.queue.keys().ready(),
            job.to_string(),
        )
        .await
        .unwrap();
    }

    /// A weekly batch for `people` new people who opted in with `options` stored: started as
    /// an admin would for the week from tomorrow, and enqueued in this process (as
    /// `api admin batch run` does). Returns the run's id and the people.
    pub async fn weekly_batch(&self, people: usize, options: &MenuOptions) -> (Uuid, Vec<Uuid>) {
        let ids = testkit::rows::opted_in(&self.pool, people, options).await;
        let admin = self.admin().await;
        let period = chrono::Utc::now().date_naive() + chrono::Days::new(1);
        let run = match enqueue::start_manual(&self.pool, Tz::UTC, period, admin.id)
            .await
            .expect("start the batch")
        {
            Started::Created(run) | Started::Existing(run) => run,
        };
        let life = Lifecycle::new(self.pool.clone(), self.queue.clone());
        let config = EnqueueConfig {
            chunk: 1_000,
            lease_secs: 30,
            max_attempts: 3,
        };
        enqueue::drive(&life, run.id, &config)
            .await
            .expect("enqueue the batch")
            .expect("the batch was this process's to enqueue");
        (run.id, ids)
    }

    /// Sends the worker the shutdown signal (SIGTERM in production) and waits until it exits.
    pub async fn stop_worker(&mut self) {
        self.worker_stop.cancel();
        for worker in self.worker_tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(30), worker).await;
        }
    }

    pub async fn stop(self) {
        self.stop.cancel();
        for worker in self.worker_tasks {
            let _ = tokio::time::timeout(Duration::from_secs(15), worker).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(15), self.api_task).await;
    }
}
