//! The API served in the test's process on a port of its own, against a database and a Redis
//! prefix of the test's own, and what a test does with it over HTTP: requests as a signed-in
//! client, a second API process on the same stores, a graceful shutdown.

use std::net::SocketAddr;
use std::num::NonZeroU32;

use api::AppState;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use shared::config::RedisConfig;
use shared::queue::Queue;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::{Account, TestDb, TestRedis, api_config};

/// An API serving on a loopback port until the test ends, or until [`TestApi::shut_down`].
pub struct TestApi {
    /// Where it listens (`127.0.0.1`, a port of its own).
    pub addr: SocketAddr,
    /// A client for it.
    pub http: reqwest::Client,
    /// The test's own handle on the API's queue, to push jobs as the API does; its `redis()`
    /// has the key names and a connection, to read what the API left in Redis or publish what a
    /// worker would.
    pub queue: Queue,
    /// The Redis settings the API runs with.
    pub redis_config: RedisConfig,
    /// Cancelled to shut the API down gracefully.
    stop: CancellationToken,
    /// Shuts it down when the handle is dropped, as the end of its process would.
    _stop_on_drop: DropGuard,
    /// The server; it returns once shut down and its requests are answered.
    pub server: JoinHandle<std::io::Result<()>>,
    /// The API's database; the test's own reads and writes go through `db.pool`. Last but for
    /// `_redis`: dropped after the server's pool is done with it.
    pub db: TestDb,
    _redis: TestRedis,
}

/// Starts an API with [`api_config`] changed by `tune`, on a fresh database and a fresh Redis
/// prefix (or on the Redis `tune` sets, such as a private server the test stops). Panics when
/// PostgreSQL or Redis cannot be reached.
pub async fn spawn_api(tune: impl FnOnce(&mut api::Config)) -> TestApi {
    crate::init_tracing();
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let mut config = api_config(
        db.config(5, std::time::Duration::from_secs(3)),
        redis.config(),
    );
    tune(&mut config);
    let state = AppState::new(&config).await.expect("start the API");
    TestApi::serve(state, &config.redis, db, redis).await
}

impl TestApi {
    /// Serves `state` on a free loopback port; `db` and `redis` are the stores it runs on, kept
    /// until the handle is dropped.
    pub(crate) async fn serve(
        state: AppState,
        redis_config: &RedisConfig,
        db: TestDb,
        redis: TestRedis,
    ) -> TestApi {
        // reqwest is built without a TLS provider of its own; these tests speak plain HTTP but
        // a client still needs one installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("the port's address");
        let stop = CancellationToken::new();
        let server = tokio::spawn(api::serve(listener, state, stop.clone().cancelled_owned()));
        TestApi {
            addr,
            http: reqwest::Client::new(),
            queue: Queue::connect(redis_config)
                .await
                .expect("connect to Redis"),
            redis_config: redis_config.clone(),
            _stop_on_drop: stop.clone().drop_guard(),
            stop,
            server,
            db,
            _redis: redis,
        }
    }

    /// A second API process on this one's database and Redis (as a replica behind a load
    /// balancer would be), with [`api_config`] changed by `tune`, serving until the test ends.
    /// Its login throttle allows 1,000 wrong passwords per account, so that it can be used to
    /// log in while this one's throttle is under test.
    pub async fn another_process(&self, tune: impl FnOnce(&mut api::Config)) -> Replica {
        let mut config = api_config(
            self.db.config(5, std::time::Duration::from_secs(3)),
            self.redis_config.clone(),
        );
        config.login_failures_per_account = NonZeroU32::new(1_000).expect("not zero");
        tune(&mut config);
        let state = AppState::new(&config).await.expect("start the API");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("the port's address");
        let server = tokio::spawn(api::serve(listener, state, std::future::pending()));
        Replica {
            addr,
            http: reqwest::Client::new(),
            server,
        }
    }

    /// Begins a graceful shutdown, as SIGTERM would; [`server`](TestApi::server) returns once
    /// it is done.
    pub fn shut_down(&self) {
        self.stop.cancel();
    }

    /// A token cancelled when the API begins shutting down (a worker of the same system stops
    /// with it).
    pub(crate) fn stopping(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// `http://127.0.0.1:port{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A request to `path`, with `token` as its bearer token when there is one.
    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let request = self.http.request(method, self.url(path));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// `GET path` without a token.
    pub async fn get_anonymous(&self, path: &str) -> Response {
        self.request(Method::GET, path, None)
            .send()
            .await
            .expect("an answer")
    }

    /// `GET path` with `token`.
    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.request(Method::GET, path, Some(token))
            .send()
            .await
            .expect("an answer")
    }

    /// `GET path` with `token`, its body read as JSON whatever the status.
    pub async fn get_json(&self, path: &str, token: &str) -> Value {
        self.get(path, token)
            .await
            .json()
            .await
            .expect("a JSON body")
    }

    /// The `items` of the listing `GET path` answers `token` with.
    pub async fn items(&self, path: &str, token: &str) -> Vec<Value> {
        match self.get_json(path, token).await {
            Value::Object(mut listing) => match listing.remove("items") {
                Some(Value::Array(items)) => items,
                other => panic!("{path}: no items array but {other:?}"),
            },
            other => panic!("{path}: not a listing: {other}"),
        }
    }

    /// `POST path` with `token` and the JSON `body`.
    pub async fn post(&self, path: &str, token: &str, body: Value) -> Response {
        self.request(Method::POST, path, Some(token))
            .json(&body)
            .send()
            .await
            .expect("an answer")
    }

    /// `PUT path` with `token` and the JSON `body`.
    pub async fn put(&self, path: &str, token: &str, body: Value) -> Response {
        self.request(Method::PUT, path, Some(token))
            .json(&body)
            .send()
            .await
            .expect("an answer")
    }

    /// `DELETE path` with `token`.
    pub async fn delete(&self, path: &str, token: &str) -> Response {
        self.request(Method::DELETE, path, Some(token))
            .send()
            .await
            .expect("an answer")
    }

    /// Cancels `job` as `who` would (`DELETE /v1/jobs/{job}`).
    pub async fn cancel(&self, job: impl std::fmt::Display, who: &Account) -> Response {
        self.delete(&format!("/v1/jobs/{job}"), &who.token).await
    }

    /// Submits a menu request (`POST /v1/menus` with `body`) as `who`.
    pub async fn submit(&self, who: &Account, body: Value) -> Response {
        self.post("/v1/menus", &who.token, body).await
    }

    /// Ends every login lock of the login throttle, as their expiry would.
    pub async fn expire_login_locks(&self) {
        let pattern = format!("{}*", self.queue.redis().keys().login_lock(""));
        let locks: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut self.queue.redis().connection())
            .await
            .expect("list the login locks");
        for lock in locks {
            let _: i64 = redis::cmd("DEL")
                .arg(lock)
                .query_async(&mut self.queue.redis().connection())
                .await
                .expect("delete a login lock");
        }
    }
}

/// The status and the `error` object of an error response (`{"error": {"code", "message",
/// ...}}`); panics when the body is not JSON or its message is empty.
pub async fn error_of(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("(not text)").to_string());
    let body: Value = response
        .json()
        .await
        .unwrap_or_else(|e| panic!("error body of a {status} is not JSON ({content_type:?}): {e}"));
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    (status, body["error"].clone())
}

/// Asserts that `response` is an error answered with `status` and the error `code`, as
/// [`error_of`] reads it; the `error` object.
pub async fn assert_error(response: Response, status: StatusCode, code: &str) -> Value {
    let (got, error) = error_of(response).await;
    assert_eq!(
        (got, error["code"].as_str()),
        (status, Some(code)),
        "{error}"
    );
    error
}

/// Another API process of a [`TestApi`]; it stops when dropped.
pub struct Replica {
    /// Where it listens.
    pub addr: SocketAddr,
    /// A client for it.
    pub http: reqwest::Client,
    server: JoinHandle<std::io::Result<()>>,
}

impl Replica {
    /// `http://127.0.0.1:port{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `GET path` with `token`.
    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("an answer")
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.server.abort();
    }
}
