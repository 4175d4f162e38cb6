//! What every handler shares: the pool, the queue, token keys, sessions, the hashing bound, the
//! rate limits and the job event fan-out. Cheap to clone.

use std::net::IpAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use shared::lifecycle::Lifecycle;
use shared::queue::Queue;
use sqlx::PgPool;
use tokio_util::sync::{CancellationToken, DropGuard};
use uuid::Uuid;

use crate::auth::Tokens;
use crate::config::Config;
use crate::events::JobEvents;
use crate::hashing::Hasher;
use crate::login_throttle::LoginThrottle;
use crate::rate_limit::KeyedLimit;
use crate::sessions::Sessions;

/// How often rate-limit state of idle keys, and lapsed session states, are dropped.
const FORGET_IDLE_EVERY: Duration = Duration::from_secs(60);
/// How long startup waits for each first subscription (job and account events) before serving
/// without it.
const FIRST_SUBSCRIPTION_WAIT: Duration = Duration::from_secs(2);

/// The application state handed to every handler.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The shared parts, reached through `AppState`'s `Deref`.
pub struct Inner {
    pub(crate) db: PgPool,
    pub(crate) queue: Queue,
    /// The job's transitions; each statement tried once (an outage answers 503).
    pub(crate) life: Lifecycle,
    pub(crate) tokens: Tokens,
    pub(crate) sessions: Sessions,
    /// How long a session lasts (its refresh token, the dashboard's cookie).
    pub(crate) session_lifetime: Duration,
    pub(crate) hasher: Hasher,
    pub(crate) login_limit: Arc<KeyedLimit<IpAddr>>,
    pub(crate) login_throttle: LoginThrottle,
    pub(crate) submit_limit: Arc<KeyedLimit<Uuid>>,
    /// Jobs one person may have waiting or running; `None`: no limit.
    pub(crate) waiting_jobs_per_user: Option<std::num::NonZeroU32>,
    pub(crate) events: JobEvents,
    pub(crate) metrics: metrics_exporter_prometheus::PrometheusHandle,
    pub(crate) registration_enabled: bool,
    pub(crate) job_max_attempts: i32,
    pub(crate) body_limit_bytes: usize,
    pub(crate) request_timeout: Duration,
    /// Whether the dashboard's session cookie is marked `Secure`.
    pub(crate) admin_cookie_secure: bool,
    /// The weekly batch schedule's zone: a manual batch's default period is tomorrow there.
    pub(crate) batch_timezone: chrono_tz::Tz,
    /// Cancelled when the server begins to shut down: long polls answer at once and the
    /// background tasks end.
    pub(crate) stopping: CancellationToken,
    /// Ends the background tasks when the last handle on the state is dropped without a
    /// shutdown (a library user, a test).
    _stop_on_drop: DropGuard,
}

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Connects to PostgreSQL and Redis, subscribes to job events and starts the background
    /// upkeep. Fails if either store cannot be reached.
    pub async fn new(config: &Config) -> anyhow::Result<AppState> {
        let db = shared::db::connect(&config.database)
            .await
            .context("connect to PostgreSQL")?;
        let queue = Queue::connect(&config.redis)
            .await
            .context("connect to Redis")?;
        Ok(AppState::with_stores(config, db, queue).await)
    }

    /// The state over stores already connected: a process that also runs a worker (a test, a
    /// benchmark) shares one pool between both.
    pub async fn with_stores(config: &Config, db: PgPool, queue: Queue) -> AppState {
        let stopping = CancellationToken::new();
        let events = JobEvents::start(
            queue.redis().target().clone(),
            queue.redis().keys().job_events(),
            stopping.clone(),
            FIRST_SUBSCRIPTION_WAIT,
        )
        .await;
        let sessions = Sessions::start(
            queue.redis().target().clone(),
            queue.redis().keys().account_events(),
            stopping.clone(),
            FIRST_SUBSCRIPTION_WAIT,
        )
        .await;
        let login_throttle =
            LoginThrottle::new(queue.clone(), config.login_failures_per_account.get());
        let login_limit = Arc::new(KeyedLimit::per_minute(config.login_rate_per_minute));
        let submit_limit = Arc::new(KeyedLimit::per_minute(config.submit_rate_per_minute));
        tokio::spawn(forget_idle_keys(
            login_limit.clone(),
            submit_limit.clone(),
            sessions.clone(),
            stopping.clone(),
        ));
        AppState(Arc::new(Inner {
            life: Lifecycle::new(db.clone(), queue.clone()),
            db,
            queue,
            tokens: Tokens::new(&config.jwt_secret, config.token_ttl()),
            sessions,
            session_lifetime: config.refresh_ttl(),
            hasher: Hasher::new(config.login_concurrency.get()),
            login_limit,
            login_throttle,
            submit_limit,
            waiting_jobs_per_user: std::num::NonZeroU32::new(config.waiting_jobs_per_user),
            events,
            metrics: telemetry::metrics(),
            registration_enabled: config.registration_enabled,
            job_max_attempts: config.attempts.max_attempts,
            body_limit_bytes: config.body_limit_bytes,
            request_timeout: config.request_timeout,
            admin_cookie_secure: config.admin_cookie_secure,
            batch_timezone: config.batch.timezone,
            _stop_on_drop: stopping.clone().drop_guard(),
            stopping,
        }))
    }
}

impl AppState {
    /// The stores, for admin operations.
    pub fn stores(&self) -> crate::admin::ops::Stores<'_> {
        crate::admin::ops::Stores {
            db: &self.db,
            queue: &self.queue,
        }
    }
}

async fn forget_idle_keys(
    login: Arc<KeyedLimit<IpAddr>>,
    submit: Arc<KeyedLimit<Uuid>>,
    sessions: Sessions,
    stop: CancellationToken,
) {
    let mut every = tokio::time::interval(FORGET_IDLE_EVERY);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => {
                login.forget_idle();
                submit.forget_idle();
                sessions.forget_lapsed();
            }
        }
    }
}
