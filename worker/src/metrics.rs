//! The worker's `/metrics` endpoint for Prometheus: everything the process records (jobs, LLM
//! calls, budget waits, circuit, connection hold times), with the pool and queue gauges sampled
//! at each scrape.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::routing::get;
use shared::queue::Queue;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
struct Scrape {
    pool: PgPool,
    queue: Queue,
}

async fn render(State(scrape): State<Scrape>) -> ([(header::HeaderName, &'static str); 1], String) {
    shared::db::record_pool_gauges(&scrape.pool, "worker");
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(1),
        scrape.queue.record_depth(),
    )
    .await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        telemetry::metrics().render(),
    )
}

/// Serves `/metrics` on `listener` until `stop`.
pub async fn serve(
    listener: TcpListener,
    pool: PgPool,
    queue: Queue,
    stop: CancellationToken,
) -> std::io::Result<()> {
    tracing::info!(bind = %listener.local_addr()?, "metrics served at /metrics");
    let app = Router::new()
        .route("/metrics", get(render))
        .with_state(Scrape { pool, queue });
    axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
}
