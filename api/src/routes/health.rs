//! Operations: `/healthz` says the process answers, `/readyz` that it can reach what it needs to
//! serve (PostgreSQL and Redis) and that the LLM provider's circuit is closed (with it open,
//! submissions are accepted but nothing is generated until it closes), `/metrics` is for
//! Prometheus.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use serde::Serialize;
use shared::llm::circuit::{Circuit, OpenCircuit};
use shared::llm::endpoint;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Each check's bound: a probe must answer before the orchestrator's own timeout.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

/// Prometheus metrics.
///
/// The text exposition of every metric this process records, with the pool and queue gauges
/// sampled now.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    responses(
        (
            status = 200,
            description = "Prometheus text exposition format 0.0.4; it answers even while Redis \
                is away, with the last queue depth seen",
            body = String,
            content_type = "text/plain; version=0.0.4",
        ),
    )
)]
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

#[derive(Serialize, ToSchema)]
struct Health {
    /// Always `alive`.
    #[schema(example = "alive")]
    status: &'static str,
}

/// Liveness.
///
/// Depends on nothing: a process that answers is alive.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "operations",
    responses((status = 200, description = "The process answers", body = Health))
)]
async fn healthz() -> Json<Health> {
    Json(Health { status: "alive" })
}

#[derive(Serialize, ToSchema)]
struct Readiness {
    /// `ready` or `not_ready`.
    #[schema(example = "ready")]
    status: &'static str,
    checks: Checks,
}

#[derive(Serialize, ToSchema)]
struct Checks {
    /// `ok`, `error` or `timeout`.
    #[schema(example = "ok")]
    postgres: &'static str,
    /// `ok`, `error` or `timeout`.
    #[schema(example = "ok")]
    redis: &'static str,
    /// `ok`; `fallback` when an endpoint's circuit is open but every model tier still has an
    /// endpoint to call (still ready); `open` when a tier has none (see `open_circuits`).
    #[schema(example = "ok")]
    llm: &'static str,
    open_circuits: Vec<OpenCircuit>,
}

/// Readiness.
///
/// Whether this process can serve: PostgreSQL and Redis answer within a second each, and every
/// model tier has an LLM endpoint whose circuit is closed (the first may be out while a fallback
/// serves).
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (
            status = 503,
            description = "Not ready: `checks` says what failed (this body, not `ApiError`)",
            body = Readiness,
        ),
    )
)]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let store = state.queue.redis();
    let (postgres, redis, circuits) = tokio::join!(
        check("postgres", async {
            sqlx::query("SELECT 1").execute(&state.db).await.map(drop)
        }),
        check("redis", store.ping()),
        tokio::time::timeout(CHECK_TIMEOUT, Circuit::open_circuits(store)),
    );
    // Unknown when Redis is down: the redis check already says so.
    let open_circuits = match circuits {
        Ok(Ok(open)) => open,
        _ => Vec::new(),
    };
    let llm = if open_circuits.is_empty() {
        "ok"
    } else {
        let routes = tokio::time::timeout(CHECK_TIMEOUT, endpoint::published_routes(store))
            .await
            .ok()
            .and_then(Result::ok)
            .flatten();
        let open: Vec<String> = open_circuits.iter().map(|c| c.model.clone()).collect();
        endpoint::readiness(&open, routes.as_deref())
    };
    let ready = postgres == "ok" && redis == "ok" && llm != "open";
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
