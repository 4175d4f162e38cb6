//! Where the benchmarks' processes find PostgreSQL and Redis: the machine's own servers (a
//! database and a key prefix of the run's own), or scaled out as production would be, through
//! PgBouncer in transaction mode and on a three-node Redis Cluster.

use std::path::Path;

use shared::config::RedisConfig;
use testkit::{RedisCluster, TestDb, TestRedis};

use crate::pgbouncer::PgBouncer;

/// Server connections PgBouncer keeps to the database: as many as one process's pool, however
/// many processes share them.
const PGBOUNCER_SERVER_CONNECTIONS: u32 = 10;

/// The settings a process gets for its stores, and what must live as long as it runs.
pub struct Stores {
    /// `DATABASE_URL`, with `sslmode=disable` (loopback: TLS would only add CPU on both ends).
    pub database_url: String,
    pub redis: RedisConfig,
    _cluster: Option<RedisCluster>,
    _bouncer: Option<PgBouncer>,
}

impl Stores {
    /// The machine's PostgreSQL and Redis, directly.
    pub fn direct(db: &TestDb, redis: &TestRedis) -> Stores {
        Stores {
            database_url: format!("{}?sslmode=disable", db.url()),
            redis: redis.config(),
            _cluster: None,
            _bouncer: None,
        }
    }

    /// `db` through a PgBouncer (the binary at `pgbouncer`, 1.21 or later) in transaction
    /// mode, and a fresh three-node Redis Cluster.
    pub async fn scaled_out(db: &TestDb, pgbouncer: &Path) -> anyhow::Result<Stores> {
        let server = format!("{}:{}", db.options.get_host(), db.options.get_port());
        let bouncer = PgBouncer::start(pgbouncer, &server, PGBOUNCER_SERVER_CONNECTIONS).await?;
        let cluster = RedisCluster::start().await;
        Ok(Stores {
            database_url: format!("{}?sslmode=disable", bouncer.url(&db.name)),
            redis: cluster.config(),
            _cluster: Some(cluster),
            _bouncer: Some(bouncer),
        })
    }

    /// The environment that points a process of this workspace at these stores.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        use secrecy::ExposeSecret;
        vec![
            ("DATABASE_URL", self.database_url.clone()),
            ("REDIS_URL", self.redis.url.expose_secret().to_string()),
            ("REDIS_PREFIX", self.redis.prefix.clone()),
            ("REDIS_CLUSTER", self.redis.cluster.to_string()),
        ]
    }
}
