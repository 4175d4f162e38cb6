//! `api serve [--migrate]` (the default) and `api migrate`: see `api --help`.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let command = api::Cli::parse()
        .into_command()
        .unwrap_or_else(|e| e.exit());
    api::run(command).await
}
