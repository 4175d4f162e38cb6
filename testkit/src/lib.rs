//! What the workspace's tests start the system with, so that they run in parallel against the
//! real services and read alike.
//!
//! - Isolation: every test gets a database of its own ([`TestDb`], copied from a migrated
//!   template, which is fast) and a Redis key prefix of its own ([`TestRedis`]), both removed
//!   when the test ends.
//! - The system: [`spawn_api`] serves the API in the test's process on a port of its own;
//!   [`spawn_system`] adds workers and a stand-in LLM. Both take their settings from [`config`]
//!   builders, one per kind of process, and act as the [`Account`]s they register.
//! - Outages: a private Redis and PostgreSQL to stop and restart ([`PrivateRedis`],
//!   [`PrivatePostgres`]), a Redis Cluster ([`RedisCluster`]), a link to cut ([`TcpProxy`]).
//! - Rows to start from, written straight to the database ([`rows`]).
//!
//! `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`) names a database
//! to connect to for creating the others; `TEST_REDIS_URL` (default `redis://127.0.0.1:6379`)
//! the Redis to use.

mod accounts;
mod api_server;
pub mod config;
mod database;
mod fixtures;
mod postgres;
mod proxy;
mod redis_cluster;
pub mod rows;
mod system;
mod test_redis;

pub use accounts::{Account, PASSWORD};
pub use api_server::{Replica, TestApi, assert_error, error_of, spawn_api};
pub use config::{
    JWT_SECRET, LLM_API_KEY, api_config, budget_config, circuit_config, job_config, llm_config,
    queue_config,
};
pub use database::TestDb;
pub use fixtures::plan;
pub use postgres::PrivatePostgres;
pub use proxy::TcpProxy;
pub use redis_cluster::RedisCluster;
pub use system::{Secondary, SystemOptions, TestSystem, spawn_system};
pub use test_redis::{PrivateRedis, TestRedis};

/// Logs to the test's output when `RUST_LOG` is set (warnings otherwise); the harness calls it,
/// and a test that starts nothing through it may too.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

/// A port free on the loopback interface a moment ago, for a server the test starts.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
