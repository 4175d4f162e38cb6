//! `worker`: runs menu generation jobs from the queue until SIGTERM or SIGINT.

use clap::Parser;

#[derive(Parser, Debug)]
#[command(version, about = "Runs menu generation jobs from the Redis queue")]
struct Cli {
    #[command(flatten)]
    config: worker::WorkerConfig,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init(&cli.config.log);
    worker::run(cli.config, telemetry::shutdown_signal()).await
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    #[test]
    fn the_flags_parse_with_their_defaults() {
        let cli = Cli::try_parse_from(["worker"]).unwrap();
        let addr: SocketAddr = "127.0.0.1:9091".parse().unwrap();
        assert_eq!(cli.config.metrics_bind.0, Some(addr));
        assert_eq!(cli.config.jobs.concurrency, 16);
        assert_eq!(cli.config.jobs.day_max_asks, 3);
    }

    #[test]
    fn metrics_can_be_moved_or_switched_off_and_a_bad_address_is_refused() {
        let off = Cli::try_parse_from(["worker", "--metrics-bind", "off"]).unwrap();
        assert_eq!(off.config.metrics_bind.0, None);
        let moved = Cli::try_parse_from(["worker", "--metrics-bind", "0.0.0.0:9100"]).unwrap();
        assert_eq!(
            moved.config.metrics_bind.0,
            Some("0.0.0.0:9100".parse().unwrap())
        );
        let bad = Cli::try_parse_from(["worker", "--metrics-bind", "nine"]).unwrap_err();
        assert!(bad.to_string().contains("neither an address"), "{bad}");
    }
}
