//! How fast the weekly batch's enqueue (`shared::batch::enqueue::drive`) fills a run for
//! 100,000 opted-in people, and whether its memory stays flat, against the floor: the same
//! 100,000 job rows written by one plain `INSERT … SELECT` (no Rust, no chunks, no Redis).
//! Peak RSS is this process's (VmHWM, reset before each step through /proc/self/clear_refs).
//! With `menus`, everyone also has a menu (titles only) in the week before, as after a first
//! weekly batch, so each job carries 28 titles to avoid.
//!
//! Run: `cargo run --release -p bench --bin batch_enqueue [-- <people> <chunk> [menus]]`
//! (PostgreSQL and Redis must be up; a fresh database and key prefix are made and removed).

use std::time::{Duration, Instant};

use chrono::NaiveDate;
use shared::batch::RunStatus;
use shared::batch::enqueue::{self, EnqueueConfig, Started};
use shared::batch::schedule::Tz;
use shared::config::AttemptsConfig;
use shared::lifecycle::Lifecycle;
use shared::queue::{Lane, Queue};
use testkit::{TestDb, TestRedis, rows};

/// What one step took.
struct Step {
    name: &'static str,
    rows: i64,
    took: Duration,
    /// Peak resident memory during the step, in KiB.
    peak_kib: u64,
    /// Resident memory after the step less before it, in KiB.
    growth_kib: i64,
}

/// A field of /proc/self/status, in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse().ok())
        .unwrap_or(0)
}

/// Runs `step`, measuring its time and this process's memory.
async fn measure<F: Future<Output = anyhow::Result<i64>>>(
    name: &'static str,
    step: F,
) -> anyhow::Result<Step> {
    // "5" resets the peak resident set size (Linux 4.0+), so VmHWM is this step's peak.
    std::fs::write("/proc/self/clear_refs", "5")?;
    let before = status_kib("VmRSS:");
    let started = Instant::now();
    let rows = step.await?;
    let took = started.elapsed();
    Ok(Step {
        name,
        rows,
        took,
        peak_kib: status_kib("VmHWM:"),
        growth_kib: status_kib("VmRSS:") as i64 - before as i64,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let people: i32 = args.next().map_or(Ok(100_000), |a| a.parse())?;
    let chunk: u32 = args.next().map_or(Ok(1_000), |a| a.parse())?;
    let with_menus = args.next().as_deref() == Some("menus");
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let queue = Queue::connect(&redis.config()).await?;
    let life = Lifecycle::new(db.pool.clone(), queue);
    let period = NaiveDate::from_ymd_opt(2026, 11, 30).expect("a date");

    let setup = Instant::now();
    sqlx::query(
        "WITH u AS (
             INSERT INTO users (id, email, password_hash)
             SELECT gen_random_uuid(), 'p-' || g || '@example.com', 'x'
             FROM generate_series(1, $1) AS g
             RETURNING id)
         INSERT INTO preferences (user_id, options, auto_generate_weekly, weekly_start_day)
         SELECT id, '{\"days\": 7, \"snacks_per_day\": 1, \"cuisines\": [\"thai\", \"greek\"]}',
                true, 1 + abs(hashtext(id::text)) % 7
         FROM u",
    )
    .bind(people)
    .execute(&db.pool)
    .await?;
    if with_menus {
        // A finished job and its menu per person, starting a week before the period (within
        // the week before every person's start): four dishes a day for seven days.
        sqlx::query(
            "WITH plan AS (
                 SELECT jsonb_build_object('days', jsonb_agg(jsonb_build_object(
                     'meals', jsonb_build_array(
                         jsonb_build_object('title', 'Porridge ' || d),
                         jsonb_build_object('title', 'Salad ' || d),
                         jsonb_build_object('title', 'Curry ' || d)),
                     'snacks', jsonb_build_array(jsonb_build_object('title', 'Nuts ' || d)))))
                     AS plan
                 FROM generate_series(1, 7) AS d),
             job AS (
                 INSERT INTO generation_jobs (id, owner_id, requested_by, request, status,
                                              max_attempts, days_total, days_done)
                 SELECT gen_random_uuid(), user_id, user_id,
                        jsonb_build_object('start_date', $1::date - 7), 'succeeded', 3, 7, 7
                 FROM preferences
                 RETURNING id, owner_id, request)
             INSERT INTO menus (id, job_id, owner_id, requested_by, request, plan)
             SELECT gen_random_uuid(), job.id, owner_id, owner_id, request, plan.plan
             FROM job CROSS JOIN plan",
        )
        .bind(period)
        .execute(&db.pool)
        .await?;
    }
    sqlx::query("ANALYZE").execute(&db.pool).await?;
    println!(
        "{people} opted-in people{} created in {:.1} s",
        if with_menus {
            " with last week's menus"
        } else {
            ""
        },
        setup.elapsed().as_secs_f64()
    );
    let admin = rows::user(&db.pool).await;
    let config = EnqueueConfig {
        chunk,
        lease_secs: 30,
        attempts: AttemptsConfig { max_attempts: 3 },
    };

    let Started::Created(run) = enqueue::start_manual(&db.pool, Tz::UTC, period, admin).await?
    else {
        anyhow::bail!("the database is fresh: the run must be new");
    };
    let drive = measure("drive (ours)", async {
        let done = enqueue::drive(&life, run.id, &config)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the run was not ours to enqueue"))?;
        anyhow::ensure!(done.status == RunStatus::Enqueued, "{done:?}");
        Ok(done.targeted)
    })
    .await?;
    anyhow::ensure!(
        drive.rows == i64::from(people),
        "{} jobs for {people} people",
        drive.rows
    );

    // The floor: the same rows (one request, as the drive wrote it, for everyone) into a
    // second run, by one statement.
    let Started::Created(floor_run) =
        enqueue::start_manual(&db.pool, Tz::UTC, period + chrono::Days::new(7), admin).await?
    else {
        anyhow::bail!("the second run must be new");
    };
    let floor = measure("INSERT … SELECT (floor)", async {
        let done = sqlx::query(
            "INSERT INTO generation_jobs
                 (id, owner_id, requested_by, request, max_attempts, days_total, batch_id)
             SELECT gen_random_uuid(), user_id, user_id,
                    (SELECT request FROM generation_jobs WHERE batch_id = $1 LIMIT 1),
                    3, 7, $2
             FROM preferences WHERE auto_generate_weekly",
        )
        .bind(run.id)
        .bind(floor_run.id)
        .execute(&db.pool)
        .await?;
        Ok(done.rows_affected() as i64)
    })
    .await?;
    let pushed: u64 = redis::AsyncCommands::llen(
        &mut life.queue().redis().connection(),
        life.queue().redis().keys().ready_of(Lane::Batch),
    )
    .await?;

    println!(
        "\nbatch enqueue of {people} people, chunks of {chunk}{}:",
        if with_menus {
            ", last week's titles"
        } else {
            ""
        }
    );
    println!(
        "{:<26} {:>8} {:>8} {:>10} {:>14} {:>15}",
        "step", "rows", "time s", "rows/s", "peak RSS MiB", "RSS growth MiB"
    );
    for step in [&drive, &floor] {
        println!(
            "{:<26} {:>8} {:>8.2} {:>10.0} {:>14.1} {:>15.1}",
            step.name,
            step.rows,
            step.took.as_secs_f64(),
            step.rows as f64 / step.took.as_secs_f64(),
            step.peak_kib as f64 / 1024.0,
            step.growth_kib as f64 / 1024.0,
        );
    }
    println!(
        "ours / floor: {:.2}×; job ids in the batch lane: {pushed}",
        drive.took.as_secs_f64() / floor.took.as_secs_f64(),
    );
    Ok(())
}
