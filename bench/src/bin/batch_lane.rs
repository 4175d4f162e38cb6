//! The weekly batch through the normal lane and through the batch lane, on the same requests:
//! what each costs (tokens at the price table's normal and batch prices), how many calls and
//! provider batches it takes, how long it runs, how many days are asked again on the normal
//! lane, and whether every stored menu passes the rules. The normal lane is the baseline,
//! measured in the same run.
//!
//! Both runs get the same share of broken days from the stand-in: about one day in 70 breaks a
//! rule (the normal lane: a broken day on 1 call in 70; the batch lane: one broken day in every
//! 10th whole menu of 7 days), so both lanes ask days again.
//!
//! Run: `cargo run --release -p bench --bin batch_lane [-- --people 1000 --latency-ms 0
//! --completion-delay-ms 2000]` (PostgreSQL and Redis must be up; each run gets a fresh database
//! and key prefix). A real provider's batch completes within 24 hours, not the stand-in's
//! seconds: the wall time of the batch lane here is the system's own, not the provider's.

use std::time::{Duration, Instant};

use clap::Parser;
use domain::menu::MenuPlan;
use domain::prompt::DayBrief;
use domain::request::{GenerationRequest, MenuOptions};
use domain::rules;
use shared::batch::BatchLaneMode;
use sqlx::types::Json;
use standin::{BatchBehaviour, Fault, Latency, RandomFaults};
use testkit::{SystemOptions, TestSystem, spawn_system};

#[derive(Parser)]
struct Args {
    /// People opted in to the weekly batch (one 7-day menu each).
    #[arg(long, default_value_t = 1_000)]
    people: usize,
    /// The stand-in's latency per chat call.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// From a provider batch's creation to its completion at the stand-in.
    #[arg(long, default_value_t = 2_000)]
    completion_delay_ms: u64,
    /// Worker processes (each with its own connections), each running this many jobs at once.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
}

/// What one run of the weekly batch came to.
struct Run {
    lane: &'static str,
    wall: Duration,
    menus: i64,
    chat_calls: i64,
    batch_requests: usize,
    provider_batches: usize,
    prompt_tokens: i64,
    completion_tokens: i64,
    cost_micros: i64,
    saved_micros: i64,
    /// Days asked on the normal lane with problems listed (a re-ask).
    reasked: usize,
    /// Days of the stored menus that came from the batch lane and from the normal lane.
    days_from_batch: i64,
    days_from_normal: i64,
    /// Days of the stored menus that break a rule (must be 0).
    invalid_days: usize,
}

async fn run(args: &Args, lane: BatchLaneMode) -> anyhow::Result<Run> {
    let mut options = SystemOptions {
        workers: args.workers,
        standin: standin::Config {
            latency: Latency::fixed(Duration::from_millis(args.latency_ms)),
            faults: RandomFaults {
                rate: 1.0 / 70.0,
                kinds: vec![Fault::BrokenRule {
                    rule: Default::default(),
                }],
            },
            batches: BatchBehaviour {
                completion_delay_ms: args.completion_delay_ms,
                broken_day_every: Some(10),
                ..BatchBehaviour::default()
            },
            seed: 7,
            ..standin::Config::default()
        },
        ..SystemOptions::default()
    };
    options.jobs.concurrency = args.concurrency;
    options.jobs.interactive_slots = Some(0);
    options.jobs.deadline_secs = 3_600;
    options.batch_lane.poll = Duration::from_millis(250);
    let system = spawn_system(options).await;
    let week = MenuOptions {
        days: Some(7),
        ..MenuOptions::default()
    };
    let started = Instant::now();
    let (batch, _people) = system.weekly_batch_in(lane, args.people, &week).await;
    wait_until_done(&system, batch).await?;
    let wall = started.elapsed();

    let (menus, chat_calls, prompt_tokens, completion_tokens, cost_micros, saved_micros): (
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
    ) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'succeeded'),
                coalesce(sum(llm_calls), 0)::bigint, coalesce(sum(prompt_tokens), 0)::bigint,
                coalesce(sum(completion_tokens), 0)::bigint, coalesce(sum(cost_micros), 0)::bigint,
                coalesce(sum(batch_saved_micros), 0)::bigint
         FROM generation_jobs WHERE batch_id = $1",
    )
    .bind(batch)
    .fetch_one(&system.pool)
    .await?;
    let batches = system.standin.batches();
    let batch_requests: usize = batches.iter().map(|b| b.requests.len()).sum();
    let asked = system.standin.requests();
    let reasked = asked.iter().filter(|r| r.problems.unwrap_or(0) > 0).count();
    let (days_from_batch, days_from_normal): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE d->'source'->>'lane' = 'batch'),
                count(*) FILTER (WHERE d->'source'->>'lane' = 'normal')
         FROM menus m JOIN generation_jobs g ON g.id = m.job_id,
              jsonb_array_elements(m.plan->'days') d
         WHERE g.batch_id = $1",
    )
    .bind(batch)
    .fetch_one(&system.pool)
    .await?;
    let stored: Vec<(Json<GenerationRequest>, Json<MenuPlan>)> = sqlx::query_as(
        "SELECT m.request, m.plan FROM menus m JOIN generation_jobs g ON g.id = m.job_id
         WHERE g.batch_id = $1",
    )
    .bind(batch)
    .fetch_all(&system.pool)
    .await?;
    let mut invalid_days = 0;
    for (request, plan) in &stored {
        for (i, day) in plan.days.iter().enumerate() {
            let brief = DayBrief::new(request, day.day_number, &plan.days[..i], vec![]);
            if !rules::check_day(&brief, day).is_empty() {
                invalid_days += 1;
            }
        }
    }
    system.stop().await;
    Ok(Run {
        lane: match lane {
            BatchLaneMode::Normal => "normal lane",
            BatchLaneMode::Provider => "batch lane",
        },
        wall,
        menus,
        chat_calls: chat_calls - batch_requests as i64,
        batch_requests,
        provider_batches: batches.len(),
        prompt_tokens,
        completion_tokens,
        cost_micros,
        saved_micros,
        reasked,
        days_from_batch,
        days_from_normal,
        invalid_days,
    })
}

/// Until every job of the run is finished (an hour at most).
async fn wait_until_done(system: &TestSystem, batch: uuid::Uuid) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(3_600);
    loop {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM generation_jobs
             WHERE batch_id = $1 AND status NOT IN ('succeeded', 'failed', 'cancelled')",
        )
        .bind(batch)
        .fetch_one(&system.pool)
        .await?;
        if open == 0 {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{open} jobs still open after an hour"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn usd(micros: i64) -> String {
    format!("${:.4}", micros as f64 / 1e6)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let normal = run(&args, BatchLaneMode::Normal).await?;
    let batch = run(&args, BatchLaneMode::Provider).await?;
    println!(
        "{} people, one 7-day menu each (3 meals, gpt-4o-mini at the default prices); stand-in \
         latency {} ms per call, provider batches complete {} ms after creation; {} workers × {} \
         jobs at once.",
        args.people, args.latency_ms, args.completion_delay_ms, args.workers, args.concurrency
    );
    println!();
    println!(
        "| lane | menus | cost | chat calls | batch requests (provider batches) | prompt tokens | completion tokens | days re-asked | days from the batch / normal lane | days breaking a rule | wall time |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in [&normal, &batch] {
        println!(
            "| {} | {} | {} | {} | {} ({}) | {} | {} | {} | {} / {} | {} | {:.1} s |",
            r.lane,
            r.menus,
            usd(r.cost_micros),
            r.chat_calls,
            r.batch_requests,
            r.provider_batches,
            r.prompt_tokens,
            r.completion_tokens,
            r.reasked,
            r.days_from_batch,
            r.days_from_normal,
            r.invalid_days,
            r.wall.as_secs_f64()
        );
    }
    let cheaper = 1.0 - batch.cost_micros as f64 / normal.cost_micros.max(1) as f64;
    println!();
    println!(
        "The batch lane cost {:.1} % less than the normal lane (target: at least 45 %); its \
         Batch API discount alone saved {} on its batch requests.",
        cheaper * 100.0,
        usd(batch.saved_micros)
    );
    anyhow::ensure!(
        normal.invalid_days == 0 && batch.invalid_days == 0,
        "a stored day breaks a rule"
    );
    anyhow::ensure!(
        normal.menus == args.people as i64 && batch.menus == args.people as i64,
        "not every person got a menu"
    );
    Ok(())
}
