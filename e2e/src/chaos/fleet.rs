//! The system under chaos, as an operator runs it: the API and the workers as separate
//! processes (so they can be killed), over a PostgreSQL and a Redis of the run's own (so they
//! can be restarted without touching anything else on the machine), calling the stand-in LLM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use secrecy::ExposeSecret;
use shared::config::RedisConfig;
use shared::queue::Queue;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use standin::StandIn;
use testkit::{PrivatePostgres, PrivateRedis};

use super::Plan;

/// A worker process and what identifies its attempts (the pid in their `worker_id`).
pub struct WorkerProcess {
    pub child: Child,
    pub pid: u32,
}

pub struct Fleet {
    pub postgres: PrivatePostgres,
    pub redis: PrivateRedis,
    pub standin: StandIn,
    /// The run's own view of the database (not the system's), for observing it.
    pub pool: PgPool,
    /// The run's own view of the queue.
    pub queue: Queue,
    api: Child,
    pub api_addr: SocketAddr,
    pub workers: Vec<WorkerProcess>,
    env: Env,
    started_workers: usize,
    concurrency: usize,
}

const DATABASE: &str = "menus";

/// The workers' grace period at SIGTERM (the default is 20 s, longer than a job here takes).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// What every process of the system is started with.
struct Env {
    bins: PathBuf,
    logs: PathBuf,
    database_url: String,
    redis: RedisConfig,
}

impl Env {
    /// `binary` configured with the run's stores, its log in `log`.
    fn command(&self, binary: &str, log: &str) -> anyhow::Result<Command> {
        let mut command = Command::new(self.bins.join(binary));
        command
            .env_clear()
            .env("DATABASE_URL", &self.database_url)
            .env("REDIS_URL", self.redis.url.expose_secret())
            .env("REDIS_PREFIX", &self.redis.prefix)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.logs.join(log))?);
        Ok(command)
    }

    fn spawn_api(&self, addr: SocketAddr) -> anyhow::Result<Child> {
        let secret: String = (0..64)
            .map(|_| char::from_digit(rand::random::<u32>() % 16, 16).unwrap_or('0'))
            .collect();
        let mut api = self.command("api", "api.log")?;
        api.args(["serve", "--migrate"])
            .env("API_BIND", addr.to_string())
            .env("JWT_SECRET", secret)
            .env("LOGIN_RATE_PER_MINUTE", "100000")
            .env("SUBMIT_RATE_PER_MINUTE", "100000")
            .env("WAITING_JOBS_PER_USER", "0");
        api.spawn()
            .context("start the api binary (built? see scripts/chaos.sh)")
    }
}

impl Fleet {
    /// Starts the stores, the stand-in, the API (which migrates) and `plan.workers` workers.
    pub async fn start(plan: &Plan, bins: &Path) -> anyhow::Result<Fleet> {
        let logs = std::env::temp_dir().join(format!("menus-chaos-{}", std::process::id()));
        std::fs::create_dir_all(&logs).context("create the log directory")?;
        let postgres = PrivatePostgres::start().await;
        postgres.create_database(DATABASE).await;
        let redis = PrivateRedis::start().await;
        let redis_config = redis.config();
        let standin = standin::spawn(plan.standin()).await?;
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect(&postgres.url(DATABASE))
            .await?;
        let queue = Queue::connect(&redis_config).await?;
        let env = Env {
            bins: bins.to_path_buf(),
            logs,
            database_url: postgres.url(DATABASE),
            redis: redis_config,
        };
        let api_addr: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let api = env.spawn_api(api_addr)?;
        let mut fleet = Fleet {
            api,
            postgres,
            redis,
            standin,
            pool,
            queue,
            api_addr,
            workers: Vec::new(),
            env,
            started_workers: 0,
            concurrency: plan.concurrency,
        };
        fleet.wait_for_api().await?;
        for _ in 0..plan.workers {
            let worker = fleet.spawn_worker()?;
            fleet.workers.push(worker);
        }
        Ok(fleet)
    }

    pub fn api_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.api_addr)
    }

    /// Where the processes' logs are.
    pub fn logs(&self) -> &Path {
        &self.env.logs
    }

    async fn wait_for_api(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let http = reqwest::Client::new();
        loop {
            if let Ok(r) = http.get(self.api_url("/healthz")).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if let Some(status) = self.api.try_wait()? {
                anyhow::bail!("the api exited ({status}); see {}", self.env.logs.display());
            }
            anyhow::ensure!(Instant::now() < deadline, "the api did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts one more worker process, with the default lease and grace.
    pub fn spawn_worker(&mut self) -> anyhow::Result<WorkerProcess> {
        self.started_workers += 1;
        let log = format!("worker-{}.log", self.started_workers);
        let mut worker = self.env.command("worker", &log)?;
        worker
            .env("LLM_BASE_URL", self.standin.base_url())
            .env("METRICS_BIND", "off")
            .env("WORKER_CONCURRENCY", self.concurrency.to_string())
            // The stand-in's hangs are cut here: a timeout is one of the transient faults.
            .env("LLM_CALL_TIMEOUT_MS", "3000")
            // Short, so a stopped worker really hands jobs back (they take seconds).
            .env("SHUTDOWN_GRACE_SECS", SHUTDOWN_GRACE.as_secs().to_string());
        let child = worker
            .spawn()
            .context("start the worker binary (built? see scripts/chaos.sh)")?;
        Ok(WorkerProcess {
            pid: child.id(),
            child,
        })
    }

    /// `kill -9` worker `index`; returns its pid.
    pub fn kill_worker(&mut self, index: usize) -> anyhow::Result<u32> {
        let worker = &mut self.workers[index];
        worker.child.kill()?;
        worker.child.wait()?;
        Ok(worker.pid)
    }

    /// Sends worker `index` SIGTERM; returns its pid. It hands its jobs back and exits.
    pub fn terminate_worker(&mut self, index: usize) -> anyhow::Result<u32> {
        let pid = self.workers[index].pid;
        let sent = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
        anyhow::ensure!(sent.success(), "kill -TERM {pid} failed");
        Ok(pid)
    }

    /// Waits for worker `index` to exit; its exit status.
    pub async fn wait_worker(
        &mut self,
        index: usize,
        within: Duration,
    ) -> anyhow::Result<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.workers[index].child.try_wait()? {
                return Ok(status);
            }
            anyhow::ensure!(Instant::now() < deadline, "the worker did not exit");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Replaces worker `index` (after it died or exited) with a new process.
    pub fn replace_worker(&mut self, index: usize) -> anyhow::Result<()> {
        self.workers[index] = self.spawn_worker()?;
        Ok(())
    }

    /// Stops the workers and the API (SIGTERM, then SIGKILL after a while), then the stores.
    pub async fn stop(self) {
        let mut children: Vec<Child> = self.workers.into_iter().map(|w| w.child).collect();
        children.push(self.api);
        for child in &children {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for mut child in children {
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
