//! Redis for tests: a key prefix of the test's own on the machine's server (every key of the
//! system carries the prefix, so parallel tests never meet), and a server of the test's own for
//! tests that stop Redis or drop its connections.

use std::time::Duration;

use secrecy::SecretString;
use shared::config::RedisConfig;

/// A Redis key prefix of the test's own; its keys are deleted when this value is dropped.
pub struct TestRedis {
    /// The server's URL (`TEST_REDIS_URL`, by default `redis://127.0.0.1:6379`).
    pub url: String,
    /// `t-` and 12 hex digits, fresh for each value.
    pub prefix: String,
}

impl TestRedis {
    /// A fresh prefix on the machine's server (nothing is connected yet).
    pub fn new() -> TestRedis {
        TestRedis {
            url: std::env::var("TEST_REDIS_URL")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
            prefix: format!("t-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
        }
    }

    /// Settings that point a component of the system at this prefix.
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
        let pattern = shared::keyspace::Keys::new(&self.prefix).pattern();
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
        let pattern = shared::keyspace::Keys::new(&self.prefix).pattern();
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
    /// The loopback port it serves on, the same after a restart.
    pub port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    /// Starts `redis-server` (no persistence) on a free loopback port and waits until it
    /// answers; panics if it is not installed or does not start within 5 s.
    pub async fn start() -> PrivateRedis {
        let mut server = PrivateRedis {
            port: crate::free_port(),
            child: None,
        };
        server.resume().await;
        server
    }

    /// `redis://127.0.0.1:port`.
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

    /// Drops every normal client connection, as a network blip or a failover would; how many
    /// were dropped.
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
