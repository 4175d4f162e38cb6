//! The API under load from a separate process on loopback (`oha`, installed with
//! `cargo install oha`): `POST /v1/menus` and `GET /v1/jobs/{id}` at saturation and at a fixed
//! offered rate, with one API process on a database and Redis prefix of its own. Beside them, in
//! the same run: PostgreSQL's own commit rate for the same insert (`pgbench`, same clients), and
//! BullMQ's `add` where Node is available (`bench/bullmq/`), the anchor the issue sets.
//!
//! Prints the median of `--runs` with min and max for each figure.
//!
//! Run: `cargo build --release --bins && target/release/api_load` (or `bench/run.sh`).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::Context;
use bench::process::{self, Api};
use bench::stats::spread;
use bench::stores::Stores;
use clap::Parser;
use serde_json::{Value, json};
use testkit::{TestDb, TestRedis};

#[derive(Debug, Parser)]
struct Cli {
    /// Seconds of load per measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Connections the load generator keeps open.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Runs per figure (the figure is their median).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// The offered rate of the fixed-rate submit runs, requests a second.
    #[arg(long, default_value_t = 1_000)]
    submit_rate: u32,
    /// The offered rate of the fixed-rate poll runs, requests a second.
    #[arg(long, default_value_t = 2_000)]
    poll_rate: u32,
    /// API processes, the load split evenly over them (one `oha` each).
    #[arg(long, default_value_t = 1)]
    apis: usize,
    /// Scaled out: PostgreSQL through PgBouncer in transaction mode, Redis a three-node cluster.
    #[arg(long)]
    scaled_out: bool,
    /// The PgBouncer binary (1.21 or later) for `--scaled-out`.
    #[arg(long, env = "PGBOUNCER", default_value = "pgbouncer")]
    pgbouncer: PathBuf,
}

/// One measurement, run as often as `--runs` says.
type Measure<'a> = Box<dyn Fn() -> anyhow::Result<Load> + 'a>;

/// One load run's figures.
#[derive(Debug, Clone, Copy, Default)]
struct Load {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    errors: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let bins = process::prepare()?;
    anyhow::ensure!(
        Command::new("oha").arg("--version").output().is_ok(),
        "oha is missing: `cargo install oha` (bench/run.sh does)"
    );
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let stores = match cli.scaled_out {
        true => Stores::scaled_out(&db, &cli.pgbouncer).await?,
        false => Stores::direct(&db, &redis),
    };
    let mut apis = Vec::new();
    for _ in 0..cli.apis.max(1) {
        apis.push(Api::start(&bins, &stores).await?);
    }
    // One account's token for every process: they share the JWT secret and the database.
    let (base, token) = (apis[0].base.clone(), apis[0].token.clone());
    let bases: Vec<String> = apis.iter().map(|api| api.base.clone()).collect();
    let http = reqwest::Client::new();
    let job: Value = http
        .post(format!("{base}/v1/menus"))
        .bearer_auth(&token)
        .json(&json!({"days": 1}))
        .send()
        .await?
        .json()
        .await?;
    let job_id = job["job_id"]
        .as_str()
        .with_context(|| format!("a job id in {job}"))?
        .to_string();
    let auth = format!("Authorization: Bearer {token}");
    let submit = |rate: Option<u32>| {
        oha(
            &cli,
            &[
                "-m",
                "POST",
                "-T",
                "application/json",
                "-d",
                r#"{"days":1}"#,
                "-H",
                &auth,
            ],
            rate,
            &bases
                .iter()
                .map(|base| format!("{base}/v1/menus"))
                .collect::<Vec<_>>(),
        )
    };
    let poll = |rate: Option<u32>| {
        oha(
            &cli,
            &["-H", &auth],
            rate,
            &bases
                .iter()
                .map(|base| format!("{base}/v1/jobs/{job_id}"))
                .collect::<Vec<_>>(),
        )
    };

    let stores_text = match cli.scaled_out {
        true => "PgBouncer (transaction mode) and a 3-node Redis Cluster",
        false => "PostgreSQL and Redis directly",
    };
    println!(
        "API load: oha, {} connections, {} s a run, median of {} runs (min–max); {} API process(es), {stores_text}\n",
        cli.connections,
        cli.seconds,
        cli.runs,
        apis.len()
    );
    println!("| measurement | req/s | p50 ms | p99 ms | p99.9 ms | errors |");
    println!("|---|---|---|---|---|---|");
    let rows: Vec<(String, Measure)> = vec![
        (
            "POST /v1/menus, saturation".into(),
            Box::new(|| submit(None)),
        ),
        (
            format!("POST /v1/menus, {} req/s offered", cli.submit_rate),
            Box::new(|| submit(Some(cli.submit_rate))),
        ),
        (
            "GET /v1/jobs/{id}, saturation".into(),
            Box::new(|| poll(None)),
        ),
        (
            format!("GET /v1/jobs/{{id}}, {} req/s offered", cli.poll_rate),
            Box::new(|| poll(Some(cli.poll_rate))),
        ),
    ];
    for (name, measure) in rows {
        let runs = (0..cli.runs)
            .map(|_| measure())
            .collect::<anyhow::Result<Vec<_>>>()?;
        println!(
            "| {name} | {} | {} | {} | {} | {} |",
            spread_of_runs(&runs, |l| l.rps, 0),
            spread_of_runs(&runs, |l| l.p50_ms, 2),
            spread_of_runs(&runs, |l| l.p99_ms, 2),
            spread_of_runs(&runs, |l| l.p999_ms, 2),
            spread_of_runs(&runs, |l| l.errors, 0),
        );
    }
    drop(apis);

    let pgbench = (0..cli.runs)
        .map(|_| pgbench(&cli, &db))
        .collect::<anyhow::Result<Vec<f64>>>()?;
    println!(
        "| baseline: pgbench, the submit's INSERT, {} clients | {} | | | | |",
        cli.connections,
        spread(pgbench, 0)
    );
    match bullmq(&cli, &redis) {
        Ok(runs) => println!(
            "| baseline: BullMQ `add`, {} concurrent | {} | | | | |",
            cli.connections,
            spread(runs, 0)
        ),
        Err(e) => println!("| baseline: BullMQ `add` | not measured: {e} | | | | |"),
    }
    Ok(())
}

/// One load run: an `oha` for each of `urls` at once, the connections and the offered rate
/// split evenly between them (`rate`: requests a second in all; `None` saturates). Requests a
/// second and errors are summed; each latency is the worst of the `oha`s (each sees only its
/// own requests).
fn oha(cli: &Cli, args: &[&str], rate: Option<u32>, urls: &[String]) -> anyhow::Result<Load> {
    let n = urls.len().max(1);
    let children = urls
        .iter()
        .map(|url| {
            let mut command = Command::new("oha");
            command
                // -w: requests in flight at the end are waited for, not counted as errors.
                .args(["--no-tui", "-w", "--output-format", "json", "-z"])
                .arg(format!("{}s", cli.seconds))
                .arg("-c")
                .arg((cli.connections / n).max(1).to_string())
                .args(args);
            if let Some(rate) = rate {
                command
                    .arg("-q")
                    .arg((rate as usize / n).max(1).to_string());
            }
            command
                .arg(url)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .context("run oha")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut total = Load::default();
    for child in children {
        let load = one_report(child.wait_with_output()?)?;
        total = Load {
            rps: total.rps + load.rps,
            p50_ms: total.p50_ms.max(load.p50_ms),
            p99_ms: total.p99_ms.max(load.p99_ms),
            p999_ms: total.p999_ms.max(load.p999_ms),
            errors: total.errors + load.errors,
        };
    }
    Ok(total)
}

/// The figures of one `oha`'s JSON report.
fn one_report(output: std::process::Output) -> anyhow::Result<Load> {
    anyhow::ensure!(
        output.status.success(),
        "oha failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).context("oha's JSON")?;
    let ms = |key: &str| {
        report["latencyPercentiles"][key]
            .as_f64()
            .unwrap_or(f64::NAN)
            * 1e3
    };
    let statuses = report["statusCodeDistribution"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let not_2xx: u64 = statuses
        .iter()
        .filter(|(code, _)| !code.starts_with('2'))
        .filter_map(|(_, n)| n.as_u64())
        .sum();
    let failed: u64 = report["errorDistribution"]
        .as_object()
        .map(|e| e.values().filter_map(Value::as_u64).sum())
        .unwrap_or_default();
    Ok(Load {
        rps: report["summary"]["requestsPerSec"]
            .as_f64()
            .unwrap_or_default(),
        p50_ms: ms("p50"),
        p99_ms: ms("p99"),
        p999_ms: ms("p99.9"),
        errors: (not_2xx + failed) as f64,
    })
}

/// PostgreSQL alone: the submit's INSERT (same columns, a request of the same size) from
/// `connections` pgbench clients, one commit each; transactions a second.
fn pgbench(cli: &Cli, db: &TestDb) -> anyhow::Result<f64> {
    let script = std::env::temp_dir().join(format!("menus-pgbench-{}.sql", std::process::id()));
    let request = serde_json::to_string(
        &domain::request::GenerationRequest::from_options(
            &domain::request::MenuOptions {
                days: Some(1),
                ..Default::default()
            },
            domain::request::default_start_date(),
        )
        .map_err(|e| anyhow::anyhow!("{e:?}"))?,
    )?;
    std::fs::write(
        &script,
        format!(
            "INSERT INTO generation_jobs (id, owner_id, requested_by, request, max_attempts, days_total)
             SELECT gen_random_uuid(), id, id, convert_from('\\x{}'::bytea, 'UTF8')::jsonb, 3, 1
             FROM users LIMIT 1 RETURNING *;\n",
            // Hex, because pgbench reads `:name` in a script as a variable (JSON has many).
            request.bytes().map(|b| format!("{b:02x}")).collect::<String>()
        ),
    )?;
    let output = Command::new("pgbench")
        .args(["-n", "-M", "prepared", "-f"])
        .arg(&script)
        .arg("-c")
        .arg(cli.connections.to_string())
        .arg("-j")
        .arg("2")
        .arg("-T")
        .arg(cli.seconds.to_string())
        .arg(db.url())
        .output()
        .context("run pgbench")?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| {
            format!(
                "no tps from pgbench: {text} {}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
}

/// BullMQ's `add` from `bench/bullmq/add.mjs` (its packages installed there by `npm ci`), jobs
/// a second.
fn bullmq(cli: &Cli, redis: &TestRedis) -> anyhow::Result<Vec<f64>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bullmq");
    anyhow::ensure!(
        dir.join("node_modules").exists(),
        "run `npm ci` in bench/bullmq (bench/run.sh does)"
    );
    (0..cli.runs)
        .map(|_| {
            let output = Command::new("node")
                .arg(dir.join("add.mjs"))
                .env("REDIS_URL", &redis.url)
                .env("QUEUE", format!("{}-bullmq", redis.prefix))
                .env("CONCURRENCY", cli.connections.to_string())
                .env("SECONDS", cli.seconds.to_string())
                .output()
                .context("run node")?;
            let text = String::from_utf8_lossy(&output.stdout);
            text.trim().parse().with_context(|| {
                format!("bullmq: {text} {}", String::from_utf8_lossy(&output.stderr))
            })
        })
        .collect()
}

fn spread_of_runs(runs: &[Load], f: impl Fn(&Load) -> f64, decimals: usize) -> String {
    spread(runs.iter().map(f).collect(), decimals)
}
