//! The deployment's Redis, apart from what is kept in it: where it is and one connection type
//! for a node or a cluster ([`conn`]), the name of every key ([`keys`]), and [`Redis`], the
//! handle that the queue, the LLM fleet's budget, circuit and statistics, the events and the
//! login throttle all hold.

pub mod conn;
pub mod keys;

pub use conn::{COMMAND_TIMEOUT, RedisConn, RedisTarget};
pub use keys::Keys;

use crate::config::RedisConfig;

/// The deployment's Redis: where it is, a shared connection and the deployment's key names.
/// Cheap to clone.
#[derive(Clone)]
pub struct Redis {
    target: RedisTarget,
    conn: RedisConn,
    keys: Keys,
}

impl Redis {
    /// Connects to the node or cluster `config` names (see [`RedisTarget::open`]); the shared
    /// connection reconnects on its own after a failure. Errors: an unreadable `REDIS_URL`, or
    /// Redis not answering within [`COMMAND_TIMEOUT`].
    #[tracing::instrument(skip_all, fields(prefix = %config.prefix, cluster = config.cluster), err)]
    pub async fn connect(config: &RedisConfig) -> redis::RedisResult<Redis> {
        let target = RedisTarget::open(config)?;
        let conn = target.shared().await?;
        Ok(Redis {
            target,
            conn,
            keys: Keys::new(&config.prefix),
        })
    }

    /// The deployment's key names.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Where Redis is: for a connection of one's own or a subscription.
    pub fn target(&self) -> &RedisTarget {
        &self.target
    }

    /// A clone of the shared, self-reconnecting connection.
    pub fn connection(&self) -> RedisConn {
        self.conn.clone()
    }

    /// Answers if Redis does, for readiness checks.
    #[tracing::instrument(skip_all, err)]
    pub async fn ping(&self) -> redis::RedisResult<()> {
        redis::cmd("PING")
            .query_async::<String>(&mut self.conn.clone())
            .await
            .map(drop)
    }
}
