//! The HTTP API: validates menu generation requests and enqueues them as jobs, and serves jobs,
//! menus, preferences and coaching links (DESIGN.md §6). Generation itself happens in workers.
//! Operating the service (the admin API, the dashboard and `api admin`) is one wing, [`admin`].
//!
//! [`AppState::new`] connects, [`router`] builds the routes, [`serve`] runs them on a listener
//! until a shutdown future completes; [`run`] is the binary's whole life.

pub mod admin;
pub mod auth;
pub mod config;
pub mod email;
pub mod error;
pub mod events;
pub mod extract;
pub mod hashing;
pub mod login_throttle;
pub mod middleware;
pub mod openapi;
pub mod pagination;
pub mod rate_limit;
pub mod routes;
pub mod sessions;
pub mod state;
pub mod views;

use std::net::SocketAddr;

use anyhow::Context;
use shared::config::DatabaseConfig;
use tokio::net::TcpListener;

pub use config::{Cli, Command, Config, ServeArgs};
pub use error::ApiError;
pub use routes::router;
pub use state::AppState;

/// Serves `state` on `listener` until `shutdown` completes, then stops accepting, ends long
/// polls at once and waits for requests in flight (each bounded by the request timeout).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stopping = state.stopping.clone();
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            stopping.cancel();
        })
        .await
}

/// Applies the migrations that have not run yet.
pub async fn migrate(database: &DatabaseConfig) -> anyhow::Result<()> {
    let pool = shared::db::connect(database)
        .await
        .context("connect to PostgreSQL")?;
    shared::db::migrate(&pool)
        .await
        .context("apply migrations")?;
    pool.close().await;
    Ok(())
}

/// Runs a command of the binary to its end.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Migrate { database, log } => {
            telemetry::init(&log);
            migrate(&database).await?;
            tracing::info!("migrations applied");
        }
        Command::Admin(args) => admin::cli::run(args).await?,
        Command::Serve(args) => {
            let config = args.config;
            config.check()?;
            telemetry::init(&config.log);
            if args.migrate {
                migrate(&config.database).await?;
            }
            let state = AppState::new(&config).await?;
            let listener = TcpListener::bind(config.bind)
                .await
                .with_context(|| format!("listen on {}", config.bind))?;
            tracing::info!(bind = %config.bind, "serving");
            serve(listener, state, telemetry::shutdown_signal()).await?;
            tracing::info!("stopped");
        }
    }
    Ok(())
}
