//! `worker`: runs menu generation jobs from the queue until SIGTERM or SIGINT.

use clap::Parser;

#[derive(Parser)]
#[command(version, about = "Runs menu generation jobs from the Redis queue")]
struct Cli {
    #[command(flatten)]
    config: worker::WorkerConfig,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    shared::telemetry::init(&cli.config.log);
    worker::run(cli.config, shared::telemetry::shutdown_signal()).await
}
