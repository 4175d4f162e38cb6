//! PostgreSQL access: the pool, the migrations and one module of queries per table.
//!
//! Query functions take a `&mut PgConnection` (or an executor) and never begin a transaction of
//! their own: the caller owns the transaction and keeps it short. Nothing here awaits anything
//! but the database.
//!
//! Each query function runs in a span named after it, with the ids at hand as fields and no
//! argument recorded (`skip_all`: no password hash, token digest or email reaches a log). Its
//! error is recorded at WARN: the caller decides whether it is fatal, retried or an answer.

pub mod admin;
pub mod batch_runs;
pub mod coaching;
pub mod jobs;
pub mod menus;
pub mod preferences;
pub mod provider_batches;
pub mod sessions;
pub mod users;

use std::ops::{Deref, DerefMut};
use std::time::Instant;

use secrecy::ExposeSecret;
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Postgres};

use crate::config::DatabaseConfig;

/// The schema, embedded in every binary so `migrate` needs no files on disk.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// Opens the pool and checks one connection works.
pub async fn connect(config: &DatabaseConfig) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = config.url.expose_secret().parse()?;
    connect_with(config, options).await
}

/// As [`connect`], with connect options already built (tests point them at their own database).
#[tracing::instrument(skip_all, fields(max_connections = config.max_connections), err(level = "warn"))]
pub async fn connect_with(
    config: &DatabaseConfig,
    options: PgConnectOptions,
) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(config.acquire_timeout)
        .connect_with(options.application_name("menus"))
        .await
}

/// Applies every migration that has not run yet.
#[tracing::instrument(skip_all, err(level = "warn"))]
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

/// A pooled connection whose hold time (acquire to release) is recorded, per operation, in the
/// `db_connection_held_seconds` histogram: the measure of how short our transactions are.
pub struct Held {
    conn: PoolConnection<Postgres>,
    op: &'static str,
    since: Instant,
}

/// Takes a connection from the pool for `op` (a short name: `claim`, `submit`, …).
#[tracing::instrument(skip_all, fields(op = op), err(level = "warn"))]
pub async fn hold(pool: &PgPool, op: &'static str) -> Result<Held, sqlx::Error> {
    let conn = pool.acquire().await?;
    Ok(Held {
        conn,
        op,
        since: Instant::now(),
    })
}

impl Deref for Held {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.conn
    }
}

impl DerefMut for Held {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.conn
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        metrics::histogram!("db_connection_held_seconds", "op" => self.op)
            .record(self.since.elapsed().as_secs_f64());
    }
}

/// Reports the pool's connections in use and idle (sampled when metrics are rendered).
pub fn record_pool_gauges(pool: &PgPool, process: &'static str) {
    let idle = pool.num_idle() as f64;
    let size = f64::from(pool.size());
    metrics::gauge!("db_pool_connections", "process" => process, "state" => "in_use")
        .set(size - idle);
    metrics::gauge!("db_pool_connections", "process" => process, "state" => "idle").set(idle);
}

/// Where a page of a newest-first list starts: the last item of the previous page (keyset
/// pagination, so a page costs the same however deep it is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub id: uuid::Uuid,
}

impl Cursor {
    /// Ends a query over rows with `created_at` and `id` whose conditions so far follow a
    /// `WHERE`: ` AND (created_at, id) < (…)` past `after`, newest first, `limit` rows.
    pub(crate) fn push_page(
        after: Option<Cursor>,
        query: &mut sqlx::QueryBuilder<sqlx::Postgres>,
        limit: i64,
    ) {
        if let Some(c) = after {
            query
                .push(" AND (created_at, id) < (")
                .push_bind(c.created_at)
                .push(", ")
                .push_bind(c.id)
                .push(")");
        }
        query
            .push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(limit);
    }
}

/// Whether a failed statement failed for a reason of the moment, not of the statement: the
/// database unreachable or restarting, the connection lost, no connection free within the
/// acquire timeout, a serialization failure or deadlock. Such a statement may be tried again
/// unchanged (SQLSTATE classes and codes from PostgreSQL's "Error Codes" appendix: 08
/// connection exception, 53300 too many connections, 57P01-57P03 shutdown and startup, 40001
/// and 40P01).
pub fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08")
                || matches!(
                    code.as_ref(),
                    "53300" | "57P01" | "57P02" | "57P03" | "40001" | "40P01"
                )
        }),
        _ => false,
    }
}

/// The name of the unique constraint or index a failed statement violated, if that is why.
pub fn unique_violation(error: &sqlx::Error) -> Option<String> {
    match error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            Some(db.constraint().unwrap_or_default().to_string())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    /// Everything that reaches PostgreSQL must work through a pooler in transaction mode, where
    /// each transaction may run on another server connection: no statement may leave state on
    /// the session (session advisory locks, `SET` without `LOCAL`, `LISTEN`, temporary tables).
    /// Scans the queries (`src/`) and the migrations.
    #[test]
    fn no_statement_relies_on_session_state() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let forbidden = [
            "pg_advisory_lock(",
            "pg_try_advisory_lock(",
            "set session",
            "set search_path",
            "set role",
            "\"listen ",
            "create temp",
            "create temporary",
        ];
        let mut found = Vec::new();
        let mut dirs = vec![root.join("src"), root.join("../migrations")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("read a source directory") {
                let path = entry.expect("a directory entry").path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let is_source = path
                    .extension()
                    .is_some_and(|ext| ext == "rs" || ext == "sql");
                // This file names the forbidden words itself.
                if !is_source || path.ends_with("db/mod.rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).expect("read a source file");
                for (n, line) in text.lines().enumerate() {
                    let code = line.trim_start();
                    if code.starts_with("//") || code.starts_with("--") {
                        continue;
                    }
                    let lower = code.to_lowercase();
                    // A statement may also start a line of a multi-line string.
                    if lower.starts_with("listen ") || forbidden.iter().any(|w| lower.contains(w)) {
                        found.push(format!("{}:{}: {code}", path.display(), n + 1));
                    }
                }
            }
        }
        assert!(found.is_empty(), "session state: {found:#?}");
    }
}
