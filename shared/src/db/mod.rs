//! PostgreSQL access: the pool, the migrations and one module of queries per table.
//!
//! Query functions take a `&mut PgConnection` (or an executor) and never begin a transaction of
//! their own: the caller owns the transaction and keeps it short. Nothing here awaits anything
//! but the database.

pub mod coaching;
pub mod jobs;
pub mod menus;
pub mod preferences;
pub mod users;

use secrecy::ExposeSecret;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::DatabaseConfig;

/// The schema, embedded in every binary so `migrate` needs no files on disk.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// Opens the pool and checks one connection works.
pub async fn connect(config: &DatabaseConfig) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = config.url.expose_secret().parse()?;
    connect_with(config, options).await
}

/// As [`connect`], with connect options already built (tests point them at their own database).
pub async fn connect_with(
    config: &DatabaseConfig,
    options: PgConnectOptions,
) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(config.acquire_timeout())
        .connect_with(options.application_name("menus"))
        .await
}

/// Applies every migration that has not run yet.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
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
