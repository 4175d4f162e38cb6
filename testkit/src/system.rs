//! The whole system in the test's process: the API and workers on a database and a Redis
//! prefix of their own, calling a stand-in LLM over real HTTP, each on a port of its own; and
//! what a test does with it as a client would (submit, wait for a job, cancel), with the few
//! things only a test does (deliver a job again, stop the workers).

use std::time::{Duration, Instant};

use domain::request::MenuOptions;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use shared::batch::BatchLaneMode;
use shared::batch::enqueue::{self, EnqueueConfig, Started};
use shared::batch::schedule::Tz;
use shared::config::{AttemptsConfig, JsonMode, RedisConfig};
use shared::lifecycle::Lifecycle;
use shared::llm::budget::{Budget, BudgetConfig};
use shared::llm::circuit::CircuitConfig;
use shared::llm::endpoint::{DEFAULT_ENDPOINT, EndpointSettings};
use shared::llm::price::Prices;
use shared::queue::Queue;
use sqlx::PgPool;
use standin::StandIn;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use worker::{CallPolicy, Caller, JobConfig, Pipeline};

use crate::{
    Account, TcpProxy, TestApi, TestDb, TestRedis, api_config, budget_config, circuit_config,
    job_config, llm_config, queue_config,
};

/// What a test may change about the system it starts; the defaults are one worker with the
/// settings of [`job_config`], [`budget_config`] and [`circuit_config`], and a stand-in that
/// answers every call at once.
pub struct SystemOptions {
    /// Connections in the one pool the API and the workers share.
    pub pool_size: u32,
    /// How long a component waits for one of them.
    pub acquire_timeout: Duration,
    /// The stand-in LLM: latency, faults, rate limits.
    pub standin: standin::Config,
    pub jobs: JobConfig,
    pub budget: BudgetConfig,
    pub circuit: CircuitConfig,
    /// The LLM client's whole-call timeout.
    pub call_timeout: Duration,
    /// Attempts a new job gets.
    pub max_attempts: i32,
    /// Worker processes to run, each with its own Redis connections, budget view and circuit
    /// view (0 to measure the API alone).
    pub workers: usize,
    /// The Redis to use; a fresh prefix on the shared one when `None`.
    pub redis: Option<RedisConfig>,
    /// How the worker asks for JSON.
    pub json_mode: JsonMode,
    /// Reach PostgreSQL through a link the test can cut ([`TestSystem::db_link`]), for outages.
    pub cuttable_database: bool,
    /// A password in the database URL (the test server trusts loopback, so any is accepted):
    /// a secret the logs must never show.
    pub database_password: Option<String>,
    /// A second provider, the fallback: the stand-in above is then the endpoint `primary`
    /// and this one `secondary`; without it, the stand-in is the single `default` endpoint.
    pub secondary: Option<Secondary>,
    /// How long a call waits for an endpoint's budget before it falls back.
    pub fallback_wait: Duration,
    /// The workers' batch lane (provider-lane runs through the stand-in's Batch API).
    pub batch_lane: worker::BatchLaneConfig,
}

/// The fallback provider of [`SystemOptions::secondary`]: a stand-in of its own (own port,
/// key, faults and limits), its own budget and model.
pub struct Secondary {
    pub standin: standin::Config,
    pub budget: BudgetConfig,
    pub model: String,
}

impl Default for SystemOptions {
    fn default() -> Self {
        SystemOptions {
            pool_size: 10,
            acquire_timeout: Duration::from_secs(3),
            standin: standin::Config::default(),
            jobs: job_config(),
            budget: budget_config(),
            circuit: circuit_config(),
            call_timeout: Duration::from_secs(5),
            max_attempts: 3,
            workers: 1,
            redis: None,
            json_mode: JsonMode::JsonSchema,
            cuttable_database: false,
            database_password: None,
            secondary: None,
            fallback_wait: Duration::from_secs(2),
            batch_lane: worker::BatchLaneConfig::defaults(),
        }
    }
}

/// A running system; [`TestSystem::stop`] shuts it down as SIGTERM would.
pub struct TestSystem {
    /// The stand-in LLM the workers call: its request log, scripts and faults.
    pub standin: StandIn,
    /// The fallback provider, when [`SystemOptions::secondary`] was given.
    pub secondary: Option<StandIn>,
    /// The pool the API and the workers share (through [`db_link`](TestSystem::db_link) when
    /// there is one).
    pub pool: PgPool,
    worker_stop: CancellationToken,
    worker_tasks: Vec<JoinHandle<anyhow::Result<()>>>,
    /// Each worker's budget, to see whether it runs on its local share.
    pub budgets: Vec<Budget>,
    /// The API's and workers' link to PostgreSQL, when `cuttable_database` (tests read the
    /// database past it, through `api.db.pool`).
    pub db_link: Option<TcpProxy>,
    /// The API, and the stores the system runs on. Last: dropped after everything that uses
    /// them.
    pub api: TestApi,
}

/// Starts the stand-in LLM, the API and `options.workers` workers on a fresh database and a
/// fresh Redis prefix (or `options.redis`). Panics when a store cannot be reached.
pub async fn spawn_system(options: SystemOptions) -> TestSystem {
    crate::init_tracing();
    let db = TestDb::new().await;
    let test_redis = TestRedis::new();
    let redis_config = options.redis.clone().unwrap_or_else(|| test_redis.config());
    let standin = standin::spawn(options.standin).await.expect("stand-in");
    let mut endpoints = vec![EndpointSettings {
        name: DEFAULT_ENDPOINT.into(),
        llm: llm_config(standin.base_url(), options.json_mode, options.call_timeout),
        budget: options.budget.clone(),
    }];
    let secondary = match options.secondary {
        None => None,
        Some(second) => {
            let server = standin::spawn(second.standin).await.expect("stand-in");
            let mut llm = llm_config(server.base_url(), options.json_mode, options.call_timeout);
            llm.model = second.model;
            endpoints[0].name = "primary".into();
            endpoints.push(EndpointSettings {
                name: "secondary".into(),
                llm,
                budget: second.budget,
            });
            Some(server)
        }
    };
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

    let mut config = api_config(database, redis_config.clone());
    config.attempts.max_attempts = options.max_attempts;
    let state = api::AppState::with_stores(&config, pool.clone(), queue).await;
    let api = TestApi::serve(state, &redis_config, db, test_redis).await;

    let worker_stop = api.stopping().child_token();
    let mut worker_tasks = Vec::new();
    let mut budgets = Vec::new();
    for _ in 0..options.workers {
        // A process of its own would have its own connections: so does each worker here.
        let queue = Queue::connect(&redis_config).await.expect("redis");
        let caller = Caller::with_endpoints(
            queue.redis(),
            endpoints.clone(),
            options.circuit.clone(),
            CallPolicy::new(&options.jobs, options.fallback_wait),
            Prices::default(),
        )
        .expect("llm clients");
        caller.publish_limits().await;
        budgets.push(caller.primary().budget.clone());
        let pipeline = Pipeline::new(pool.clone(), queue, caller, options.jobs.clone());
        worker_tasks.push(tokio::spawn(worker::run_pipeline(
            pipeline,
            queue_config(),
            worker::BatchConfig {
                lane: options.batch_lane.clone(),
                ..worker::BatchConfig::disabled()
            },
            worker_stop.clone().cancelled_owned(),
        )));
    }

    TestSystem {
        standin,
        secondary,
        pool,
        worker_stop,
        worker_tasks,
        budgets,
        db_link,
        api,
    }
}

impl TestSystem {
    /// Submits a menu request as `who`; panics unless it is accepted (202). The job's id.
    pub async fn submit_job(&self, who: &Account, request: Value) -> Uuid {
        let response = self.api.submit(who, request.clone()).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "submit {request}");
        let body: Value = response.json().await.expect("a JSON body");
        body["job_id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .expect("the job's id")
    }

    /// `GET path` as `who`: the status and the JSON body (`null` when there is none).
    pub async fn get_json(&self, who: &Account, path: &str) -> (StatusCode, Value) {
        let response = self.api.get(path, &who.token).await;
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Cancels `job` as `who` (`DELETE /v1/jobs/{id}`); the answer's status.
    pub async fn cancel(&self, who: &Account, job: Uuid) -> StatusCode {
        self.api
            .request(
                reqwest::Method::DELETE,
                &format!("/v1/jobs/{job}"),
                Some(&who.token),
            )
            .send()
            .await
            .expect("an answer")
            .status()
    }

    /// Long-polls the job (2 s at a time) until `done` says so; its view then. Panics after
    /// `within`.
    pub async fn wait_for(
        &self,
        who: &Account,
        job: Uuid,
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let (status, view) = self.get_json(who, &format!("/v1/jobs/{job}?wait=2")).await;
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

    /// Waits until the job is succeeded, failed or cancelled; its view then.
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
            &mut self.api.queue.redis().connection(),
            self.api.queue.redis().keys().ready(),
            job.to_string(),
        )
        .await
        .expect("push the id");
    }

    /// A weekly batch for `people` new people who opted in with `options` stored: started as
    /// an admin would for the week from tomorrow, and enqueued in this process (as
    /// `api admin batch run` does). Returns the run's id and the people.
    pub async fn weekly_batch(&self, people: usize, options: &MenuOptions) -> (Uuid, Vec<Uuid>) {
        self.weekly_batch_in(BatchLaneMode::Normal, people, options)
            .await
    }

    /// [`weekly_batch`](TestSystem::weekly_batch) with its jobs on `lane` (`Provider`: they
    /// wait for the workers' batch lane).
    pub async fn weekly_batch_in(
        &self,
        lane: BatchLaneMode,
        people: usize,
        options: &MenuOptions,
    ) -> (Uuid, Vec<Uuid>) {
        let ids = crate::rows::opted_in(&self.pool, people, options).await;
        let admin = self.api.admin().await;
        let period = chrono::Utc::now().date_naive() + chrono::Days::new(1);
        let run = match enqueue::start_manual_in(&self.pool, Tz::UTC, period, admin.id, lane)
            .await
            .expect("start the batch")
        {
            Started::Created(run) | Started::Existing(run) => run,
        };
        let life = Lifecycle::new(self.pool.clone(), self.api.queue.clone());
        let config = EnqueueConfig {
            chunk: 1_000,
            lease_secs: 30,
            attempts: AttemptsConfig { max_attempts: 3 },
        };
        enqueue::drive(&life, run.id, &config)
            .await
            .expect("enqueue the batch")
            .expect("the batch was this process's to enqueue");
        (run.id, ids)
    }

    /// Sends the workers the shutdown signal (SIGTERM in production) and waits until they
    /// exit (30 s at most).
    pub async fn stop_worker(&mut self) {
        self.worker_stop.cancel();
        for worker in self.worker_tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(30), worker).await;
        }
    }

    /// Shuts down the API and the workers and waits until they are done (15 s each at most).
    pub async fn stop(self) {
        self.api.shut_down();
        for worker in self.worker_tasks {
            let _ = tokio::time::timeout(Duration::from_secs(15), worker).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(15), self.api.server).await;
    }
}
