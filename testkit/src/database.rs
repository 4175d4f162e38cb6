//! A migrated PostgreSQL database of the test's own, so tests run in parallel on the machine's
//! server without seeing each other's rows: copied from a template migrated once per set of
//! migrations (a copy takes milliseconds), dropped when the test ends, and swept if a killed
//! run left it behind.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use secrecy::SecretString;
use shared::config::DatabaseConfig;
use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::{ConnectOptions, Connection, PgConnection};

use crate::TcpProxy;

/// Test databases are named with their creation time, so ones left by a killed run are swept.
const DB_PREFIX: &str = "menus_t_";
const STALE_AFTER: Duration = Duration::from_secs(2 * 3600);

fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
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

/// A migrated database of the test's own, dropped when this value is.
pub struct TestDb {
    /// The database's name (`menus_t_<unix seconds>_<uuid>`).
    pub name: String,
    /// How to connect to it.
    pub options: PgConnectOptions,
    /// Five connections to it, for the test's own reads and writes.
    pub pool: PgPool,
}

impl TestDb {
    /// Creates the database from the migrated template (made first if the migrations changed).
    /// Panics when PostgreSQL cannot be reached.
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

    /// Settings that point a component of the system at this database: a pool of at most
    /// `max_connections`, waiting up to `acquire_timeout` for one.
    pub fn config(&self, max_connections: u32, acquire_timeout: Duration) -> DatabaseConfig {
        DatabaseConfig {
            url: SecretString::from(self.url()),
            max_connections,
            acquire_timeout,
        }
    }

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

    /// As [`config`](TestDb::config), through `proxy`, so the test can cut the component off
    /// its database (the proxy must forward to this database's server).
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

    /// `postgres://user@host:port/name`, the URL of this database.
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
