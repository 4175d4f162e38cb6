//! Operations: `/healthz` says the process answers, `/readyz` that it can reach what it needs to
//! serve (PostgreSQL and Redis) and that the LLM provider's circuit is closed (with it open,
//! submissions are accepted but nothing is generated until it closes), `/metrics` is for
//! Prometheus.

use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use shared::circuit::{Circuit, OpenCircuit};

use crate::state::AppState;

/// Each check's bound: a probe must answer before the orchestrator's own timeout.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// Prometheus text exposition of every metric this process records, with the pool and queue
/// gauges sampled now.
async fn metrics(
    State(state): State<AppState>,
) -> ([(header::HeaderName, &'static str); 1], String) {
    shared::db::record_pool_gauges(&state.db, "api");
    // A scrape while Redis is away still answers, with the last depth seen.
    let _ = tokio::time::timeout(CHECK_TIMEOUT, state.queue.record_depth()).await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
}

/// Depends on nothing: a process that answers is alive.
async fn healthz() -> Json<Health> {
    Json(Health { status: "alive" })
}

#[derive(Serialize)]
struct Readiness {
    status: &'static str,
    checks: Checks,
}

#[derive(Serialize)]
struct Checks {
    postgres: &'static str,
    redis: &'static str,
    /// `ok`, or `open` when calls to a model are stopped (see `open_circuits`).
    llm: &'static str,
    open_circuits: Vec<OpenCircuit>,
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let (postgres, redis, circuits) = tokio::join!(
        check("postgres", async {
            sqlx::query("SELECT 1").execute(&state.db).await.map(drop)
        }),
        check("redis", state.queue.ping()),
        tokio::time::timeout(CHECK_TIMEOUT, Circuit::open_circuits(&state.queue)),
    );
    // Unknown when Redis is down: the redis check already says so.
    let open_circuits = match circuits {
        Ok(Ok(open)) => open,
        _ => Vec::new(),
    };
    let llm = if open_circuits.is_empty() {
        "ok"
    } else {
        "open"
    };
    let ready = postgres == "ok" && redis == "ok" && llm == "ok";
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        checks: Checks {
            postgres,
            redis,
            llm,
            open_circuits,
        },
    };
    (status, Json(body))
}

/// `ok`, `error` or `timeout`; a failure is logged with its cause.
async fn check<E: std::fmt::Display>(
    name: &'static str,
    probe: impl Future<Output = Result<(), E>>,
) -> &'static str {
    match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
        Ok(Ok(())) => "ok",
        Ok(Err(e)) => {
            tracing::warn!(check = name, error = %e, "readiness check failed");
            "error"
        }
        Err(_) => {
            tracing::warn!(check = name, "readiness check timed out");
            "timeout"
        }
    }
}
