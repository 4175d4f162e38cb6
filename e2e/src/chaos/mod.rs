//! The chaos suite: the whole system as separate processes, a thousand jobs, and the failures
//! production brings, during the run (workers killed and stopped, Redis restarted empty,
//! PostgreSQL restarted, jobs cancelled while they run, transient provider faults throughout);
//! then what must hold: every job finished, nothing lost, nothing stored or paid twice, and
//! each fault recovered from within its bound (`verdict`).

pub mod client;
pub mod fleet;
pub mod verdict;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde_json::json;
use standin::{BodyStyle, Fault as StandInFault, Latency, RandomFaults};
use uuid::Uuid;

use client::{Client, Retries, User};
use fleet::Fleet;

/// What a run does.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: &'static str,
    pub jobs: usize,
    pub users: usize,
    pub workers: usize,
    /// Jobs each worker runs at once.
    pub concurrency: usize,
    /// The stand-in's time per call.
    pub latency: Duration,
    /// Share of calls that fail transiently (5xx, reset, timeout).
    pub fault_rate: f64,
    /// Submissions are spread over this long.
    pub submit_over: Duration,
    /// The faults, each at its time after the run starts (in order).
    pub faults: Vec<(Duration, Fault)>,
    /// The longest the run may take before it is called stuck.
    pub finish_within: Duration,
    pub seed: u64,
}

/// A failure the run causes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `kill -9` worker `n`, then start a new one in its place.
    Kill(usize),
    /// SIGTERM worker `n` (it hands its jobs back after its grace period), then start a new one.
    Terminate(usize),
    /// Stop Redis and start it again: it keeps nothing on disk, so it comes back empty.
    RestartRedis,
    /// Stop PostgreSQL (fast shutdown: every connection dropped) and start it again.
    RestartPostgres,
    /// Cancel this many running jobs, as their owners.
    Cancel(usize),
}

impl Plan {
    /// The form the issue asks for: 1,000 jobs of 1–7 days from 50 users, three workers, the
    /// stand-in at 200 ms with 10 % transient faults; two kills, a Redis restart, a PostgreSQL
    /// restart, a SIGTERM and 20 cancels during the run.
    pub fn full() -> Plan {
        let s = Duration::from_secs;
        Plan {
            name: "full",
            jobs: 1_000,
            users: 50,
            workers: 3,
            concurrency: 8,
            latency: Duration::from_millis(200),
            fault_rate: 0.10,
            submit_over: s(50),
            // Redis first: a restart without persistence also loses a dead worker's in-flight
            // list, and its jobs then wait for the reconciler past the lease (see README).
            faults: vec![
                (s(5), Fault::RestartRedis),
                (s(10), Fault::Kill(0)),
                (s(16), Fault::Cancel(20)),
                (s(22), Fault::RestartPostgres),
                (s(45), Fault::Kill(1)),
                (s(52), Fault::Terminate(2)),
            ],
            finish_within: s(600),
            seed: 7,
        }
    }

    /// What CI runs: every kind of fault once, on 200 jobs.
    pub fn reduced() -> Plan {
        let s = Duration::from_secs;
        Plan {
            name: "reduced",
            jobs: 200,
            users: 20,
            concurrency: 4,
            submit_over: s(12),
            faults: vec![
                (s(3), Fault::RestartRedis),
                (s(6), Fault::Kill(0)),
                (s(9), Fault::Cancel(5)),
                (s(12), Fault::RestartPostgres),
                (s(16), Fault::Terminate(2)),
            ],
            finish_within: s(300),
            ..Plan::full()
        }
    }

    /// The stand-in: `latency` per call and `fault_rate` transient faults, spread evenly over
    /// a 500 and a 503, a reset connection, and a hang the worker's call timeout cuts.
    pub fn standin(&self) -> standin::Config {
        let server_error = |status| StandInFault::ServerError {
            status,
            body: BodyStyle::Json,
        };
        standin::Config {
            latency: Latency::fixed(self.latency),
            faults: RandomFaults {
                rate: self.fault_rate,
                kinds: vec![
                    server_error(500),
                    server_error(503),
                    StandInFault::Reset,
                    StandInFault::Hang { ms: 60_000 },
                ],
            },
            seed: self.seed,
            ..standin::Config::default()
        }
    }
}

/// A fault as it happened, with what its recovery is measured against.
#[derive(Debug, Clone)]
pub enum Happened {
    Killed {
        pid: u32,
        at: DateTime<Utc>,
        /// The jobs it was running.
        running: Vec<Uuid>,
    },
    Terminated {
        pid: u32,
        at: DateTime<Utc>,
        running: Vec<Uuid>,
        /// How long it took to exit, and whether it exited cleanly.
        exited_after: Duration,
        clean: bool,
    },
    RedisRestarted {
        up_at: DateTime<Utc>,
        /// Due jobs Redis lost, and how long after it was back they were all queued again (or
        /// claimed); `None` if never within a minute.
        lost: usize,
        recovered_after: Option<Duration>,
    },
    PostgresRestarted {
        down_at: DateTime<Utc>,
        up_at: DateTime<Utc>,
    },
    Cancelled {
        /// Each job cancelled, and when its cancel was answered.
        jobs: Vec<(Uuid, DateTime<Utc>)>,
    },
}

/// What a run leaves to judge.
pub struct Run {
    pub plan: Plan,
    pub started: DateTime<Utc>,
    pub took: Duration,
    pub jobs: Vec<Uuid>,
    pub happened: Vec<Happened>,
    /// What the submissions went through (summed).
    pub submit_retries: Retries,
}

/// Runs `plan` with the binaries in `bins`; prints its progress; returns the run and the fleet,
/// still up, for the verdict.
pub async fn run(plan: Plan, bins: &Path) -> anyhow::Result<(Run, Fleet)> {
    let mut fleet = Fleet::start(&plan, bins).await?;
    println!("chaos ({}): logs in {}", plan.name, fleet.logs().display());
    let client = Client::new(fleet.api_url(""));
    let mut users = Vec::with_capacity(plan.users);
    for i in 0..plan.users {
        users.push(client.register(&format!("chaos-{i}@example.com")).await?);
    }

    let started_at = Utc::now();
    let started = Instant::now();
    let submissions = tokio::spawn(submit_all(client.clone(), users.clone(), plan.clone()));
    let mut happened = Vec::new();
    for (offset, fault) in plan.faults.clone() {
        tokio::time::sleep_until((started + offset).into()).await;
        println!("{:>6.1} s  {fault:?}", started.elapsed().as_secs_f64());
        happened.push(cause(&mut fleet, &client, &users, fault).await?);
    }
    let (jobs, submit_retries) = submissions.await??;
    println!(
        "{:>6.1} s  all {} jobs submitted ({} answers 503, {} unanswered, retried)",
        started.elapsed().as_secs_f64(),
        jobs.len(),
        submit_retries.unavailable,
        submit_retries.unanswered
    );
    wait_until_finished(&fleet, &plan, started).await?;
    let run = Run {
        plan,
        started: started_at,
        took: started.elapsed(),
        jobs,
        happened,
        submit_retries,
    };
    Ok((run, fleet))
}

/// Submits the plan's jobs, spread evenly over `submit_over`, each with its own idempotency
/// key; returns their ids in order.
async fn submit_all(
    client: Client,
    users: Vec<User>,
    plan: Plan,
) -> anyhow::Result<(Vec<Uuid>, Retries)> {
    let started = Instant::now();
    let spacing = plan.submit_over / plan.jobs.max(1) as u32;
    let mut tasks = Vec::with_capacity(plan.jobs);
    for i in 0..plan.jobs {
        tokio::time::sleep_until((started + spacing * i as u32).into()).await;
        let (client, user) = (client.clone(), users[i % users.len()].clone());
        // 1 to 7 days, the same for the same seed.
        let days = 1 + (i as u64 * 7_919 + plan.seed) % 7;
        tasks.push(tokio::spawn(async move {
            let key = format!("chaos-{i}");
            client.submit(&user, &json!({"days": days}), &key).await
        }));
    }
    let mut ids = Vec::with_capacity(tasks.len());
    let mut retries = Retries::default();
    for task in tasks {
        let (id, r) = task.await??;
        ids.push(id);
        retries.unavailable += r.unavailable;
        retries.unanswered += r.unanswered;
    }
    Ok((ids, retries))
}

/// The running jobs whose attempt is worker process `pid`'s (its id is in their `worker_id`).
async fn running_on(fleet: &Fleet, pid: u32) -> anyhow::Result<Vec<Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM generation_jobs WHERE status = 'running' AND worker_id LIKE $1",
    )
    .bind(format!("%-{pid}-%"))
    .fetch_all(&fleet.pool)
    .await?)
}

async fn cause(
    fleet: &mut Fleet,
    client: &Client,
    users: &[User],
    fault: Fault,
) -> anyhow::Result<Happened> {
    Ok(match fault {
        Fault::Kill(n) => {
            let pid = fleet.workers[n].pid;
            let running = running_on(fleet, pid).await?;
            fleet.kill_worker(n)?;
            let at = Utc::now();
            fleet.replace_worker(n)?;
            Happened::Killed { pid, at, running }
        }
        Fault::Terminate(n) => {
            let pid = fleet.workers[n].pid;
            let running = running_on(fleet, pid).await?;
            fleet.terminate_worker(n)?;
            let (at, since) = (Utc::now(), Instant::now());
            let status = fleet.wait_worker(n, Duration::from_secs(60)).await?;
            let exited_after = since.elapsed();
            fleet.replace_worker(n)?;
            Happened::Terminated {
                pid,
                at,
                running,
                exited_after,
                clean: status.success(),
            }
        }
        Fault::RestartRedis => {
            fleet.redis.stop();
            tokio::time::sleep(Duration::from_secs(1)).await;
            fleet.redis.resume().await;
            let up_at = Utc::now();
            let (lost, recovered_after) = redis_recovery(fleet).await?;
            Happened::RedisRestarted {
                up_at,
                lost,
                recovered_after,
            }
        }
        Fault::RestartPostgres => {
            let down_at = Utc::now();
            fleet.postgres.stop();
            tokio::time::sleep(Duration::from_secs(2)).await;
            fleet.postgres.resume().await;
            Happened::PostgresRestarted {
                down_at,
                up_at: Utc::now(),
            }
        }
        Fault::Cancel(count) => {
            // Jobs live workers run (not a killed one's, whose recovery is measured).
            let live: Vec<String> = fleet
                .workers
                .iter()
                .map(|w| format!("%-{}-%", w.pid))
                .collect();
            let running: Vec<(Uuid, Uuid)> = sqlx::query_as(
                "SELECT id, owner_id FROM generation_jobs
                 WHERE status = 'running' AND worker_id LIKE ANY($2)
                 ORDER BY random() LIMIT $1",
            )
            .bind(count as i64)
            .bind(&live)
            .fetch_all(&fleet.pool)
            .await?;
            let mut jobs = Vec::new();
            for (job, owner) in running {
                let user = users
                    .iter()
                    .find(|u| u.id == owner)
                    .context("a job of an unknown user")?;
                if client.cancel(user, job).await? {
                    jobs.push((job, Utc::now()));
                }
            }
            Happened::Cancelled { jobs }
        }
    })
}

/// After Redis came back empty: how many due jobs it lost, and how long until each of them was
/// in the queue again (or claimed meanwhile).
async fn redis_recovery(fleet: &Fleet) -> anyhow::Result<(usize, Option<Duration>)> {
    let since = Instant::now();
    // The jobs that should be in the queue now; Redis holds none of them.
    let lost: Vec<(Uuid, i32)> = sqlx::query_as(
        "SELECT id, attempts FROM generation_jobs
         WHERE status IN ('queued', 'retrying') AND coalesce(next_attempt_at, '-infinity') <= now()",
    )
    .fetch_all(&fleet.pool)
    .await?;
    if lost.is_empty() {
        return Ok((0, Some(Duration::ZERO)));
    }
    let ids: Vec<Uuid> = lost.iter().map(|(id, _)| *id).collect();
    while since.elapsed() < Duration::from_secs(60) {
        // Queued again, or moved on (claimed since).
        let queued: Vec<bool> = fleet
            .queue
            .lanes_of(&ids)
            .await
            .map(|lanes| lanes.iter().map(Option::is_some).collect())
            .unwrap_or_default();
        let moved: Vec<(Uuid, i32)> =
            sqlx::query_as("SELECT id, attempts FROM generation_jobs WHERE id = ANY($1)")
                .bind(&ids)
                .fetch_all(&fleet.pool)
                .await?;
        let all = lost.iter().enumerate().all(|(i, (id, attempts))| {
            queued.get(i).copied().unwrap_or(false)
                || moved.iter().any(|(m, a)| m == id && a != attempts)
        });
        if all {
            return Ok((lost.len(), Some(since.elapsed())));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((lost.len(), None))
}

/// Waits until every job is succeeded, failed or cancelled, printing progress.
async fn wait_until_finished(fleet: &Fleet, plan: &Plan, started: Instant) -> anyhow::Result<()> {
    let mut last_print = Instant::now();
    loop {
        let unfinished: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM generation_jobs
             WHERE status NOT IN ('succeeded', 'failed', 'cancelled')",
        )
        .fetch_one(&fleet.pool)
        .await?;
        if unfinished == 0 {
            println!(
                "{:>6.1} s  every job finished",
                started.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        if last_print.elapsed() > Duration::from_secs(10) {
            println!(
                "{:>6.1} s  {unfinished} jobs unfinished",
                started.elapsed().as_secs_f64()
            );
            last_print = Instant::now();
        }
        anyhow::ensure!(
            started.elapsed() < plan.finish_within,
            "{unfinished} jobs still unfinished after {:?}",
            plan.finish_within
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
