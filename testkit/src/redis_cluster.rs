//! A Redis Cluster of the test's own (three primaries on loopback ports), for tests that show
//! the queue's scripts, blocking fetch and events work when keys are spread over nodes.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use shared::config::RedisConfig;

const NODES: usize = 3;
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Three `redis-server --cluster-enabled yes` nodes joined by `redis-cli --cluster create`, each
/// slot served. Dropping it stops the nodes and deletes their files.
pub struct RedisCluster {
    pub ports: Vec<u16>,
    dir: PathBuf,
    children: Vec<Child>,
}

impl RedisCluster {
    pub async fn start() -> RedisCluster {
        let dir = std::env::temp_dir().join(format!("menus-rc-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&dir).expect("create the cluster's directory");
        let mut cluster = RedisCluster {
            ports: Vec::new(),
            dir,
            children: Vec::new(),
        };
        for _ in 0..NODES {
            let port = crate::free_port();
            // The bus port is chosen too: the default (port + 10,000) may be past 65,535.
            let bus = crate::free_port();
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args([
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus.to_string(),
                ])
                .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
                .arg("--dir")
                .arg(&cluster.dir)
                .args(["--save", "", "--appendonly", "no", "--logfile", ""])
                .stdout(Stdio::null())
                .spawn()
                .expect("start redis-server (is it installed? see README)");
            cluster.ports.push(port);
            cluster.children.push(child);
        }
        for port in &cluster.ports {
            wait_for(*port, "PING", "PONG").await;
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for port in &cluster.ports {
            create.arg(format!("127.0.0.1:{port}"));
        }
        create.args(["--cluster-replicas", "0", "--cluster-yes"]);
        crate::postgres::run(create).await;
        for port in &cluster.ports {
            wait_for(*port, "CLUSTER INFO", "cluster_state:ok").await;
        }
        cluster
    }

    /// Settings for the cluster (its nodes as seeds), with a fresh prefix.
    pub fn config(&self) -> RedisConfig {
        let urls: Vec<String> = self
            .ports
            .iter()
            .map(|port| format!("redis://127.0.0.1:{port}"))
            .collect();
        RedisConfig {
            url: SecretString::from(urls.join(",")),
            prefix: format!("t-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
            cluster: true,
        }
    }
}

/// Waits until the node on `port` answers `command` with text containing `expected`.
async fn wait_for(port: u16, command: &str, expected: &str) {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).expect("url");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
            let mut cmd = redis::Cmd::new();
            for word in command.split(' ') {
                cmd.arg(word);
            }
            if let Ok(answer) = cmd.query_async::<String>(&mut conn).await
                && answer.contains(expected)
            {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "redis cluster node {port} did not answer {command} with {expected}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
