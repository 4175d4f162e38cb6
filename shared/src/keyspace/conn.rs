//! One Redis connection type for a single node or a Redis Cluster, so the queue, the fleet's
//! LLM budget and circuit, and the job events run unchanged on either.
//!
//! On a cluster every key of a deployment carries its prefix as one hash tag (see
//! [`crate::keyspace::Keys`]), so all of them live in one slot and each Lua script's keys are on
//! one node: the cluster client routes each command and script by its first key and follows
//! `MOVED`/`ASK` redirections. Two things are not routed by a key and are handled here: a
//! connection that blocks (`BLMOVE`) must not share its socket, and `CLIENT ID`/`CLIENT KILL`
//! of that connection must reach the node that holds the slot. Classic pub/sub is broadcast to
//! every node of a cluster, so a subscriber connects to any one of them.

use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{AsyncConnectionConfig, Cmd, ErrorKind, FromRedisValue, Pipeline, RedisFuture, Value};
use secrecy::ExposeSecret;

use crate::config::RedisConfig;

/// Time allowed for any non-blocking Redis command, and to connect.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// Where Redis is: one node, or a cluster reached through its seed nodes. Cheap to clone.
#[derive(Clone)]
pub enum RedisTarget {
    Node(redis::Client),
    Cluster {
        /// Boxed: it is far larger than a node's client.
        client: Box<ClusterClient>,
        /// The seed nodes, each as a client of its own: where a subscription connects.
        nodes: Vec<redis::Client>,
    },
}

impl RedisTarget {
    /// Reads `REDIS_URL`: one URL, or with `REDIS_CLUSTER=true` the cluster's seed nodes as
    /// URLs separated by commas. Errors: an unreadable URL, or several URLs without the cluster
    /// flag (`InvalidClientConfig`). Connects to nothing yet.
    pub fn open(config: &RedisConfig) -> redis::RedisResult<RedisTarget> {
        let urls: Vec<&str> = config
            .url
            .expose_secret()
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .collect();
        if !config.cluster {
            return match urls[..] {
                [url] => Ok(RedisTarget::Node(redis::Client::open(url)?)),
                _ => Err((
                    ErrorKind::InvalidClientConfig,
                    "REDIS_URL must name one node, or set REDIS_CLUSTER=true for a cluster",
                )
                    .into()),
            };
        }
        let nodes = urls
            .iter()
            .map(|url| redis::Client::open(*url))
            .collect::<redis::RedisResult<Vec<_>>>()?;
        if nodes.is_empty() {
            return Err((ErrorKind::InvalidClientConfig, "REDIS_URL names no node").into());
        }
        let client = ClusterClient::builder(nodes.iter().map(|n| n.get_connection_info().clone()))
            .connection_timeout(COMMAND_TIMEOUT)
            .response_timeout(COMMAND_TIMEOUT)
            .retries(2)
            .build()?;
        Ok(RedisTarget::Cluster {
            client: Box::new(client),
            nodes,
        })
    }

    /// The connection every command shares: multiplexed, and reconnecting on its own after a
    /// failure (a node's connection manager, or the cluster client, which also refreshes its
    /// slot map).
    pub async fn shared(&self) -> redis::RedisResult<RedisConn> {
        match self {
            RedisTarget::Node(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(COMMAND_TIMEOUT))
                    .set_response_timeout(Some(COMMAND_TIMEOUT))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_millis(500));
                let conn = client.get_connection_manager_with_config(config).await?;
                Ok(RedisConn::Managed(conn))
            }
            RedisTarget::Cluster { client, .. } => {
                Ok(RedisConn::Cluster(client.get_async_connection().await?))
            }
        }
    }

    /// A connection of its own, for a command that blocks: nothing else waits behind it.
    /// `response_timeout` must outlast the block.
    pub async fn dedicated(&self, response_timeout: Duration) -> redis::RedisResult<RedisConn> {
        match self {
            RedisTarget::Node(client) => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(COMMAND_TIMEOUT))
                    .set_response_timeout(Some(response_timeout));
                let conn = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                Ok(RedisConn::Dedicated(conn))
            }
            RedisTarget::Cluster { client, .. } => {
                let config = ClusterConfig::new()
                    .set_connection_timeout(COMMAND_TIMEOUT)
                    .set_response_timeout(response_timeout);
                Ok(RedisConn::Cluster(
                    client.get_async_connection_with_config(config).await?,
                ))
            }
        }
    }

    /// The nodes a subscription may connect to, in the order to try them.
    pub fn subscription_nodes(&self) -> Vec<redis::Client> {
        match self {
            RedisTarget::Node(client) => vec![client.clone()],
            RedisTarget::Cluster { nodes, .. } => nodes.clone(),
        }
    }
}

/// A connection to a node or a cluster; commands go through [`ConnectionLike`] as on any redis
/// connection. Cheap to clone (the clones share the socket).
#[derive(Clone)]
pub enum RedisConn {
    /// A node's shared, self-reconnecting connection.
    Managed(ConnectionManager),
    /// A node's connection kept for one blocking command at a time.
    Dedicated(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl RedisConn {
    /// Runs `cmd`, which names no key, on the node that holds `key` (on a single node, simply
    /// runs it): for `CLIENT ID` and `CLIENT KILL` of a connection blocked on `key`.
    pub async fn query_at<T: FromRedisValue>(
        &mut self,
        key: &str,
        cmd: Cmd,
    ) -> redis::RedisResult<T> {
        match self {
            RedisConn::Cluster(conn) => {
                let route =
                    SingleNodeRoutingInfo::SpecificNode(Route::with_key(key, SlotAddr::Master));
                let value = conn
                    .route_command(cmd, RoutingInfo::SingleNode(route))
                    .await?;
                Ok(redis::from_redis_value(value)?)
            }
            other => cmd.query_async(other).await,
        }
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Managed(conn) => conn.req_packed_command(cmd),
            RedisConn::Dedicated(conn) => conn.req_packed_command(cmd),
            RedisConn::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Managed(conn) => conn.req_packed_commands(pipeline, offset, count),
            RedisConn::Dedicated(conn) => conn.req_packed_commands(pipeline, offset, count),
            RedisConn::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Managed(conn) => conn.get_db(),
            RedisConn::Dedicated(conn) => conn.get_db(),
            RedisConn::Cluster(conn) => conn.get_db(),
        }
    }
}
