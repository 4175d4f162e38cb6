//! Test isolation, so the suite runs in parallel against the real services: every test gets a
//! database of its own (copied from a migrated template, which is fast) and a Redis key prefix
//! of its own, both removed when the test ends; and what tests of outages need (a private
//! Redis and PostgreSQL to restart, a link to cut), and rows to start from (`rows`).
//!
//! `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`) names a database
//! to connect to for creating the others; `TEST_REDIS_URL` (default `redis://127.0.0.1:6379`)
//! the Redis to use.

mod postgres;
mod proxy;
mod redis_cluster;
pub mod rows;

pub use postgres::PrivatePostgres;
pub use proxy::TcpProxy;
pub use redis_cluster::RedisCluster;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use secrecy::SecretString;
use shared::config::{DatabaseConfig, RedisConfig};
use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::{ConnectOptions, Connection, PgConnection};

/// Test databases are named with their creation time, so ones left by a killed run are swept.
const DB_PREFIX: &str = "menus_t_";
const STALE_AFTER: Duration = Duration::from_secs(2 * 3600);

fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Logs to the test's output when `RUST_LOG` is set; call at the top of a test.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// The name of the template: it changes whenever the migrations do.
fn template_name() -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for m in shared::db::MIGRATOR.iter() {
        for b in m.checksum.iter() {
            hash = (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("menus_template_{:012x}", hash & 0xffff_ffff_ffff)
}

async fn admin() -> PgConnection {
    PgConnection::connect(&admin_url())
        .await
        .expect("connect to PostgreSQL (is it running? see README)")
}

/// Creates the migrated template once per machine (serialised by an advisory lock) and sweeps
/// databases left behind by killed runs.
async fn ensure_template(conn: &mut PgConnection) -> String {
    let name = template_name();
    sqlx::query("SELECT pg_advisory_lock(727274)")
        .execute(&mut *conn)
        .await
        .expect("advisory lock");
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut *conn)
            .await
            .expect("look up template");
    if !exists {
        let building = format!("{name}_building");
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {building} WITH (FORCE)"
        )))
        .execute(&mut *conn)
        .await;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {building}")))
            .execute(&mut *conn)
            .await
            .expect("create template");
        let options: PgConnectOptions = admin_url().parse().expect("TEST_DATABASE_URL");
        let mut template = options
            .database(&building)
            .connect()
            .await
            .expect("connect template");
        shared::db::MIGRATOR
            .run(&mut template)
            .await
            .expect("migrate template");
        template.close().await.expect("close template");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE {building} RENAME TO {name}"
        )))
        .execute(&mut *conn)
        .await
        .expect("publish template");
    }
    let stale: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE $1")
            .bind(format!("{DB_PREFIX}%"))
            .fetch_all(&mut *conn)
            .await
            .unwrap_or_default();
    let cutoff = now_secs().saturating_sub(STALE_AFTER.as_secs());
    for db in stale {
        let created = db
            .trim_start_matches(DB_PREFIX)
            .split('_')
            .next()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(u64::MAX);
        if created < cutoff {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
            )))
            .execute(&mut *conn)
            .await;
        }
    }
    sqlx::query("SELECT pg_advisory_unlock(727274)")
        .execute(&mut *conn)
        .await
        .expect("advisory unlock");
    name
}

/// A port free on the loopback interface a moment ago, for a server the test starts.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A migrated database of the test's own, dropped when this value is.
pub struct TestDb {
    pub name: String,
    pub options: PgConnectOptions,
    pub pool: PgPool,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let mut conn = admin().await;
        let template = ensure_template(&mut conn).await;
        let name = format!(
            "{DB_PREFIX}{}_{}",
            now_secs(),
            uuid::Uuid::new_v4().simple()
        );
        // Copies from one template may collide ("being accessed by other users"): retry.
        let mut tries = 0;
        loop {
            let created = sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE {name} TEMPLATE {template}"
            )))
            .execute(&mut conn)
            .await;
            match created {
                Ok(_) => break,
                Err(_) if tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(20 * tries)).await;
                }
                Err(e) => panic!("create test database: {e}"),
            }
        }
        let _ = conn.close().await;
        let options: PgConnectOptions = admin_url().parse().expect("TEST_DATABASE_URL");
        let options = options.database(&name);
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(5)
            .connect_with(options.clone())
            .await
            .expect("connect test database");
        TestDb {
            name,
            options,
            pool,
        }
    }

    /// Settings that point a component of the system at this database.
    pub fn config(&self, max_connections: u32, acquire_timeout: Duration) -> DatabaseConfig {
        DatabaseConfig {
            url: SecretString::from(self.url()),
            max_connections,
            acquire_timeout_ms: acquire_timeout.as_millis() as u64,
        }
    }

    /// As [`config`](TestDb::config), through `proxy`, so the test can cut the component off
    /// its database (the proxy must forward to this database's server).
    /// A cuttable link to this database's server (see [`TcpProxy`]); point a component at it
    /// with [`TestDb::config_via`].
    pub async fn proxy(&self) -> TcpProxy {
        let host = match self.options.get_host() {
            "localhost" => "127.0.0.1",
            host => host,
        };
        let target = tokio::net::lookup_host((host, self.options.get_port()))
            .await
            .ok()
            .and_then(|mut addrs| addrs.next())
            .expect("the test database's server address");
        TcpProxy::start(target).await
    }

    pub fn config_via(
        &self,
        proxy: &TcpProxy,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> DatabaseConfig {
        let url = format!(
            "postgres://{}@{}/{}",
            self.options.get_username(),
            proxy.addr(),
            self.name
        );
        DatabaseConfig {
            url: SecretString::from(url),
            ..self.config(max_connections, acquire_timeout)
        }
    }

    pub fn url(&self) -> String {
        let base = admin_url();
        let (head, _) = base.rsplit_once('/').unwrap_or((base.as_str(), ""));
        format!("{head}/{}", self.name)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop is synchronous and may run inside a runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let mut conn = admin().await;
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await;
            });
        })
        .join();
    }
}

/// A Redis key prefix of the test's own; its keys are deleted when this value is dropped.
pub struct TestRedis {
    pub url: String,
    pub prefix: String,
}

impl TestRedis {
    pub fn new() -> TestRedis {
        TestRedis {
            url: std::env::var("TEST_REDIS_URL")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
            prefix: format!("t-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
        }
    }

    pub fn config(&self) -> RedisConfig {
        RedisConfig {
            url: SecretString::from(self.url.clone()),
            prefix: self.prefix.clone(),
            cluster: false,
        }
    }

    /// Every key under this test's prefix (for "nothing left behind" assertions).
    pub async fn keys(&self) -> Vec<String> {
        let client = redis::Client::open(self.url.as_str()).expect("redis url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect to Redis (is it running? see README)");
        let pattern = shared::queue::Keys::new(&self.prefix).pattern();
        redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut conn)
            .await
            .unwrap_or_default()
    }
}

impl Default for TestRedis {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let url = self.url.clone();
        let pattern = shared::queue::Keys::new(&self.prefix).pattern();
        let _ = std::thread::spawn(move || {
            let Ok(client) = redis::Client::open(url.as_str()) else {
                return;
            };
            let Ok(mut conn) = client.get_connection() else {
                return;
            };
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(&pattern)
                .query(&mut conn)
                .unwrap_or_default();
            for chunk in keys.chunks(500) {
                let _: redis::RedisResult<()> = redis::cmd("DEL").arg(chunk).query(&mut conn);
            }
        })
        .join();
    }
}

/// A Redis server of the test's own, for tests that break connections or stop the server
/// (doing that to the shared one would disturb every other test running in parallel).
pub struct PrivateRedis {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    pub async fn start() -> PrivateRedis {
        let mut server = PrivateRedis {
            port: free_port(),
            child: None,
        };
        server.resume().await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Settings pointing at this server, with a fresh prefix.
    pub fn config(&self) -> RedisConfig {
        RedisConfig {
            url: SecretString::from(self.url()),
            prefix: format!("t-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
            cluster: false,
        }
    }

    /// Kills the server (its connections drop at once).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and waits until it answers.
    pub async fn resume(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--logfile", ""])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start redis-server (is it installed? see README)");
        self.child = Some(child);
        let client = redis::Client::open(self.url()).expect("url");
        for _ in 0..200 {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("private redis-server did not start");
    }

    /// Drops every normal client connection, as a network blip or a failover would.
    pub async fn kill_clients(&self) -> i64 {
        let client = redis::Client::open(self.url()).expect("url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect");
        // Our own connection is of type normal too; ask for everything but it.
        redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("normal")
            .arg("SKIPME")
            .arg("yes")
            .query_async(&mut conn)
            .await
            .unwrap_or_default()
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
