//! A stand-in for an OpenAI-compatible Chat Completions server, for the demo, the tests and the
//! benchmarks: it answers the worker's day briefs with realistic days built from a bundled
//! recipe catalogue (and whole-menu briefs with whole menus), serves OpenAI's Batch API over
//! the same answers, and can be made slow, rate-limited or faulty in every way the real
//! provider is, per run or by a scripted sequence of calls.
//!
//! In tests: [`spawn`] a server on a free port, point the client at [`StandIn::base_url`], script
//! faults with [`StandIn::script`] and read what happened with [`StandIn::requests`] (and, for
//! batches, [`StandIn::batches`]).

mod answers;
pub mod batches;
pub mod catalogue;
mod chat;
pub mod compose;
pub mod config;
mod connection;
pub mod faults;
pub mod limits;
pub mod log;
pub mod openai;
mod reply;
mod server;
pub mod tokens;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use batches::{BatchBehaviour, BatchEntry, BatchRequestEntry, RequestOutcome};
pub use config::{Config, Latency};
pub use faults::{BodyStyle, BrokenRule, Fault, RandomFaults, RateLimitFault, Step};
pub use limits::{LimitKind, RateLimits};
pub use log::{LoggedMessage, LoggedRequest};

use server::AppState;

/// A running stand-in, owned by a test. Dropping it stops the server too.
pub struct StandIn {
    addr: SocketAddr,
    state: Arc<AppState>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

/// Starts a stand-in on 127.0.0.1 on a free port.
pub async fn spawn(config: Config) -> anyhow::Result<StandIn> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the stand-in to 127.0.0.1")?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let state = AppState::new(config, shutdown.clone());
    let task = tokio::spawn(server::run(listener, state.clone(), shutdown.clone()));
    Ok(StandIn {
        addr,
        state,
        shutdown,
        task: Some(task),
    })
}

/// Serves on `listener` until `shutdown` completes, then finishes the requests in flight
/// (a hang fault ends at once). What the binary runs.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let token = CancellationToken::new();
    let state = AppState::new(config, token.clone());
    let trigger = token.clone();
    tokio::spawn(async move {
        shutdown.await;
        trigger.cancel();
    });
    server::run(listener, state, token).await;
    Ok(())
}

impl StandIn {
    /// The base URL a client is configured with, like `https://api.openai.com/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Appends steps to the script: the next calls are answered by them, in order.
    pub fn script(&self, steps: impl IntoIterator<Item = Step>) {
        self.state.script.push(steps);
    }

    /// Drops the steps not yet used; calls are answered per the run's config again.
    pub fn clear_script(&self) {
        self.state.script.clear();
    }

    /// Every chat-completion call since the start (or the last clear), in arrival order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.state.log.entries()
    }

    pub fn clear_requests(&self) {
        self.state.log.clear();
    }

    /// Every batch created through the Batch API since the start, oldest first, with its
    /// requests' `custom_id`s and outcomes. Their requests are not in [`StandIn::requests`].
    pub fn batches(&self) -> Vec<BatchEntry> {
        self.state.batches.journal()
    }

    /// The Batch API's behaviour now in force.
    pub fn batch_behaviour(&self) -> BatchBehaviour {
        self.state.batches.behaviour()
    }

    /// Changes how the Batch API behaves for uploads and batches from now on (batches already
    /// created keep the behaviour they were created under).
    pub fn set_batch_behaviour(&self, behaviour: BatchBehaviour) {
        self.state.batches.set_behaviour(behaviour);
    }

    /// Stops accepting, lets requests in flight finish, and waits until the server is gone.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
