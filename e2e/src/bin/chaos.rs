//! The chaos suite (see `e2e::chaos`): runs the system as separate processes through every
//! failure production brings, then prints what held and exits non-zero when anything did not.
//!
//! Run: `scripts/chaos.sh` (the full form: release build, 1,000 jobs) or
//! `scripts/chaos.sh --reduced` (what CI runs); the script builds the binaries first.

use std::path::PathBuf;

use clap::Parser;
use e2e::chaos::{self, Plan, verdict};

#[derive(Parser)]
#[command(
    about = "Runs the system through kills, restarts and cancels, and checks nothing is lost"
)]
struct Cli {
    /// CI's form: every kind of fault once, on 200 jobs.
    #[arg(long)]
    reduced: bool,
    /// Where the `api` and `worker` binaries are (`target/release`, `target/debug`).
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let plan = if cli.reduced {
        Plan::reduced()
    } else {
        Plan::full()
    };
    println!(
        "chaos ({}): {} jobs of 1–7 days from {} users; {} workers × {}; stand-in {} ms with {:.0} % transient faults (500, 503, reset, timeout)",
        plan.name,
        plan.jobs,
        plan.users,
        plan.workers,
        plan.concurrency,
        plan.latency.as_millis(),
        plan.fault_rate * 100.0
    );
    let (run, fleet) = chaos::run(plan, &cli.bin_dir).await?;
    let checks = verdict::judge(&run, &fleet).await?;
    fleet.stop().await;
    println!("\nran {:.1} s", run.took.as_secs_f64());
    let width = checks
        .iter()
        .map(|c| c.what.chars().count())
        .max()
        .unwrap_or(0);
    let mut failed = 0;
    for c in &checks {
        failed += usize::from(c.ok == Some(false));
        println!(
            "{} {:<width$}  {:<28} {}",
            match c.ok {
                Some(true) => "ok  ",
                Some(false) => "FAIL",
                None => "    ",
            },
            c.what,
            c.measured,
            c.bound
        );
    }
    anyhow::ensure!(failed == 0, "{failed} check(s) failed");
    let held = checks.iter().filter(|c| c.ok.is_some()).count();
    println!("\nall {held} checks held");
    Ok(())
}
