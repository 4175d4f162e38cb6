//! What a chaos run must show, read from PostgreSQL and the stand-in's request log (each call
//! names its job, attempt, day and ask in `X-Client-Request-Id`): every job finished, none lost
//! or stored twice, no day generated again after it was saved, and each fault recovered from
//! within its bound. Prints one line per check; any failed check fails the run.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use shared::llm::CallId;
use uuid::Uuid;

use super::fleet::{Fleet, SHUTDOWN_GRACE};
use super::{Happened, Run};

/// The default lease (README): a killed worker's lease lapses within its 30 s (renewed every
/// 10 s, so 20 to 30 s after the kill).
const LEASE: Duration = Duration::from_secs(30);
/// What a resumption may take beyond the lease: the promoter's tick (250 ms) and the claim.
/// Beyond that, a free slot: the fleet is saturated here (a queue of hundreds) and a killed
/// worker's leases lapse together (renewed in one statement), so its jobs, promoted to the
/// front together, take the next slots that free, one after another: the k-th resumed job is
/// allowed k starts at the pace the fleet started jobs in the 10 s after the lapse.
const CLAIM_SLACK: Duration = Duration::from_secs(1);
/// The window over which the fleet's pace of starts is measured.
const PACE_WINDOW: Duration = Duration::from_secs(10);
/// A killed worker's job whose owner runs `USER_RUNNING_CAP` (2) other jobs when its lease
/// lapses waits for one of them to end (the cap holds through a crash too), then for one
/// recheck (`USER_CAP_RECHECK_MS`, 1 s) and the claim.
const OWNER_ROOM_SLACK: Duration = Duration::from_secs(2);
/// The reconciler's interval is 5 s: what Redis lost is queued again within one pass after.
const REDIS_RECOVERY: Duration = Duration::from_secs(10);
/// Writes retry within 2 s and leases renew each second after an outage.
const POSTGRES_RECOVERY: Duration = Duration::from_secs(10);
/// A cancel reaches the running attempt within a message's latency.
const CANCEL_STOP: Duration = Duration::from_secs(1);

/// One line of the verdict: a check against its bound, or (`ok: None`) a figure reported
/// beside them.
pub struct Check {
    pub what: String,
    pub measured: String,
    pub bound: String,
    pub ok: Option<bool>,
}

fn check(what: impl Into<String>, measured: impl Into<String>, bound: &str, ok: bool) -> Check {
    Check {
        what: what.into(),
        measured: measured.into(),
        bound: bound.to_string(),
        ok: Some(ok),
    }
}

fn figure(what: impl Into<String>, measured: impl Into<String>) -> Check {
    Check {
        what: what.into(),
        measured: measured.into(),
        bound: String::new(),
        ok: None,
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// A stand-in call, as the verdict reads it.
struct Call {
    id: CallId,
    arrived_ms: i64,
    /// `None`: never answered (dropped, reset, or cut by the caller).
    answered_ms: Option<i64>,
}

/// Judges the run; the checks, in the order printed.
pub async fn judge(run: &Run, fleet: &Fleet) -> anyhow::Result<Vec<Check>> {
    let pool = &fleet.pool;
    let mut checks = Vec::new();

    let by_status: HashMap<String, i64> =
        sqlx::query_as("SELECT status::text, count(*) FROM generation_jobs GROUP BY status")
            .fetch_all(pool)
            .await?
            .into_iter()
            .collect();
    let count = |s: &str| by_status.get(s).copied().unwrap_or(0);
    let total: i64 = by_status.values().sum();
    let (succeeded, failed, cancelled) = (count("succeeded"), count("failed"), count("cancelled"));
    let distinct: HashSet<&Uuid> = run.jobs.iter().collect();
    checks.push(check(
        "jobs accepted, each once (idempotency keys through the outages)",
        format!(
            "{} submitted, {} distinct, {total} stored",
            run.jobs.len(),
            distinct.len()
        ),
        &format!("= {}", run.plan.jobs),
        distinct.len() == run.plan.jobs && total == run.plan.jobs as i64,
    ));
    checks.push(check(
        "jobs finished (succeeded + failed + cancelled)",
        format!(
            "{succeeded} + {failed} + {cancelled} = {}",
            succeeded + failed + cancelled
        ),
        &format!("= {}", run.plan.jobs),
        succeeded + failed + cancelled == run.plan.jobs as i64,
    ));
    let uncancelled = (total - cancelled).max(1);
    let share = succeeded as f64 / uncancelled as f64;
    checks.push(check(
        "succeeded, of the uncancelled",
        format!("{:.2} % ({succeeded} of {uncancelled})", share * 100.0),
        "≥ 99.9 %",
        share >= 0.999,
    ));
    let (menus, twice): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM menus),
                (SELECT count(*) FROM (SELECT job_id FROM menus GROUP BY job_id
                                       HAVING count(*) > 1) AS doubled)",
    )
    .fetch_one(pool)
    .await?;
    checks.push(check(
        "jobs with two menus",
        format!("{twice} ({menus} menus for {succeeded} succeeded jobs)"),
        "= 0",
        twice == 0 && menus == succeeded,
    ));
    let (running, open): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM generation_jobs WHERE status = 'running'),
                (SELECT count(*) FROM job_attempts WHERE ended_at IS NULL)",
    )
    .fetch_one(pool)
    .await?;
    checks.push(check(
        "jobs left running, attempts left open",
        format!("{running}, {open}"),
        "= 0, 0",
        running == 0 && open == 0,
    ));

    let calls = calls(fleet);
    checks.push(figure(
        "calls to the provider, each naming its job, attempt, day and ask",
        format!("{}", calls.len()),
    ));
    let saved: HashMap<(Uuid, u8), i64> = sqlx::query_as(
        "SELECT job_id, day_number, (extract(epoch FROM created_at) * 1000)::bigint FROM job_days",
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|(job, day, at): (Uuid, i32, i64)| ((job, day as u8), at))
    .collect();
    let again = calls
        .iter()
        .filter(|c| {
            saved
                .get(&(c.id.job, c.id.day))
                .is_some_and(|at| c.arrived_ms > *at)
        })
        .count();
    checks.push(check(
        "days generated again after they were saved",
        format!("{again} (of {} days saved)", saved.len()),
        "= 0",
        again == 0,
    ));

    let attempts: HashMap<i64, (Option<String>, Option<String>)> =
        sqlx::query_as("SELECT id, worker_id, outcome FROM job_attempts")
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(
                |(id, worker, outcome): (i64, Option<String>, Option<String>)| {
                    (id, (worker, outcome))
                },
            )
            .collect();
    let on_pid = |fence: i64, pid: u32| {
        attempts
            .get(&fence)
            .and_then(|(worker, _)| worker.as_deref())
            .is_some_and(|w| w.contains(&format!("-{pid}-")))
    };
    let mut killed_pids = Vec::new();
    for happened in &run.happened {
        if let Happened::Killed { pid, at, .. } = happened {
            killed_pids.push(*pid);
            let at = at.timestamp_millis();
            let lost = calls
                .iter()
                .filter(|c| on_pid(c.id.fence, *pid) && c.arrived_ms <= at)
                .filter(|c| c.answered_ms.is_none_or(|answered| answered > at))
                .count();
            checks.push(figure(
                format!("calls in flight when worker {pid} was killed (lost with it)"),
                format!("{lost}"),
            ));
        }
    }
    // Days asked for by more than one attempt, by why the earlier one did not save them.
    let mut fences_of_day: HashMap<(Uuid, u8), Vec<i64>> = HashMap::new();
    for c in &calls {
        let fences = fences_of_day.entry((c.id.job, c.id.day)).or_default();
        if !fences.contains(&c.id.fence) {
            fences.push(c.id.fence);
        }
    }
    let mut reasons: HashMap<&str, usize> = HashMap::new();
    for fences in fences_of_day.values().filter(|f| f.len() > 1) {
        for fence in &fences[..fences.len() - 1] {
            let outcome = attempts.get(fence).and_then(|(_, o)| o.as_deref());
            let reason = match outcome {
                _ if killed_pids.iter().any(|pid| on_pid(*fence, *pid)) => "killed",
                Some("handed_back") => "handed back at shutdown",
                Some("retrying" | "failed") => "attempt failed (provider faults)",
                Some("snoozed") => "snoozed",
                Some("cancelled") => "cancelled",
                _ => "other",
            };
            *reasons.entry(reason).or_default() += 1;
        }
    }
    let mut listed: Vec<String> = reasons.iter().map(|(r, n)| format!("{r} {n}")).collect();
    listed.sort();
    let unexplained = reasons.get("other").copied().unwrap_or(0);
    checks.push(check(
        "days asked for again by a later attempt, by why",
        if listed.is_empty() {
            "none".to_string()
        } else {
            listed.join(", ")
        },
        "other = 0",
        unexplained == 0,
    ));

    for happened in &run.happened {
        checks.extend(recovery(happened, fleet, &calls).await?);
    }
    Ok(checks)
}

/// The stand-in's calls that named themselves.
fn calls(fleet: &Fleet) -> Vec<Call> {
    fleet
        .standin
        .requests()
        .into_iter()
        .filter_map(|r| {
            let id = r.client_request_id.as_deref()?.parse().ok()?;
            let arrived_ms = r.arrived_unix_ms as i64;
            let answered_ms = r
                .answered_ms
                .map(|answered| arrived_ms + (answered - r.arrived_ms) as i64);
            Some(Call {
                id,
                arrived_ms,
                answered_ms,
            })
        })
        .collect()
}

/// When each of `jobs` was claimed again after `at` (if it was).
async fn resumed(fleet: &Fleet, jobs: &[Uuid], at: DateTime<Utc>) -> anyhow::Result<Vec<Duration>> {
    let claims: Vec<(Uuid, DateTime<Utc>)> = sqlx::query_as(
        "SELECT job_id, min(started_at) FROM job_attempts
         WHERE job_id = ANY($1) AND started_at > $2 GROUP BY job_id",
    )
    .bind(jobs)
    .bind(at)
    .fetch_all(&fleet.pool)
    .await?;
    Ok(claims
        .into_iter()
        .map(|(_, claimed)| (claimed - at).to_std().unwrap_or_default())
        .collect())
}

/// A killed worker's job, resumed: how long after the kill, and (when its owner was at the
/// cap after the lease could lapse) how long after the cap last gave them room.
struct Resumed {
    after: Duration,
    after_room: Option<Duration>,
}

async fn resumed_after_kill(
    fleet: &Fleet,
    jobs: &[Uuid],
    at: DateTime<Utc>,
) -> anyhow::Result<Vec<Resumed>> {
    // The lease lapses 20 to 30 s after the kill (it was renewed every 10 s).
    let earliest_lapse = at + chrono::Duration::from_std(LEASE - Duration::from_secs(10))?;
    // When the cap last gave the owner room before the claim: the latest end, after the lease
    // could lapse, of one of the owner's other attempts (not the killed worker's own, which end
    // `abandoned` when taken over) that ran beside another until then (two running: the cap).
    let rows: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT c.claimed,
                (SELECT max(e.ended_at) FROM job_attempts e
                 JOIN generation_jobs eo ON eo.id = e.job_id
                 WHERE eo.owner_id = j.owner_id AND e.job_id <> j.id
                   AND e.outcome IS DISTINCT FROM 'abandoned'
                   AND e.ended_at > $3 AND e.ended_at < c.claimed
                   AND (SELECT count(*) FROM job_attempts b
                        JOIN generation_jobs bo ON bo.id = b.job_id
                        WHERE bo.owner_id = j.owner_id AND b.job_id <> j.id
                          AND b.outcome IS DISTINCT FROM 'abandoned'
                          AND b.started_at < e.ended_at
                          AND (b.ended_at IS NULL OR b.ended_at >= e.ended_at)) >= 2) AS room
         FROM generation_jobs j
         CROSS JOIN LATERAL (SELECT min(started_at) AS claimed FROM job_attempts
                             WHERE job_id = j.id AND started_at > $2) c
         WHERE j.id = ANY($1) AND c.claimed IS NOT NULL",
    )
    .bind(jobs)
    .bind(at)
    .bind(earliest_lapse)
    .fetch_all(&fleet.pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(claimed, room)| Resumed {
            after: (claimed - at).to_std().unwrap_or_default(),
            after_room: room.map(|room| (claimed - room).to_std().unwrap_or_default()),
        })
        .collect())
}

/// Jobs the fleet started per second in the window from `from`.
async fn starts_per_second(fleet: &Fleet, from: DateTime<Utc>) -> anyhow::Result<f64> {
    let starts: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM job_attempts WHERE started_at >= $1 AND started_at < $2",
    )
    .bind(from)
    .bind(from + chrono::Duration::from_std(PACE_WINDOW)?)
    .fetch_one(&fleet.pool)
    .await?;
    Ok((starts as f64 / PACE_WINDOW.as_secs_f64()).max(0.1))
}

async fn recovery(
    happened: &Happened,
    fleet: &Fleet,
    calls: &[Call],
) -> anyhow::Result<Vec<Check>> {
    Ok(match happened {
        Happened::Killed { pid, at, running } => {
            let mut resumed = resumed_after_kill(fleet, running, *at).await?;
            resumed.sort_by_key(|r| r.after);
            let pace = starts_per_second(fleet, *at + chrono::Duration::from_std(LEASE)?).await?;
            // Beyond its bound: the k-th job resumed later than the lease, the claim and k
            // starts at the fleet's pace allow, unless its owner had no room then and it was
            // resumed soon after they had.
            let late = resumed.iter().enumerate().filter(|(k, r)| {
                let turn = Duration::from_secs_f64((*k + 1) as f64 / pace);
                r.after > LEASE + CLAIM_SLACK + turn
                    && r.after_room.is_none_or(|after| after > OWNER_ROOM_SLACK)
            });
            let worst = resumed.iter().map(|r| r.after).max().unwrap_or_default();
            let capped: Vec<Duration> = resumed.iter().filter_map(|r| r.after_room).collect();
            let mut measured = format!("at most {} (fleet starting {pace:.1} jobs/s)", secs(worst));
            if let Some(room) = capped.iter().max() {
                measured += &format!(
                    "; {} waited for their owner's cap, ≤ {} after room",
                    capped.len(),
                    secs(*room)
                );
            }
            vec![check(
                format!(
                    "kill -9 worker {pid}: of its {} jobs, {} resumed elsewhere after",
                    running.len(),
                    resumed.len()
                ),
                measured,
                "≤ lease + 1 s + its turn (owner at cap: room + 2 s)",
                late.count() == 0,
            )]
        }
        Happened::Terminated {
            pid,
            at,
            running,
            exited_after,
            clean,
        } => {
            let delays = resumed(fleet, running, *at).await?;
            let worst = delays.iter().max().copied().unwrap_or_default();
            vec![
                check(
                    format!("SIGTERM worker {pid}: exited cleanly after"),
                    format!(
                        "{} ({})",
                        secs(*exited_after),
                        if *clean { "status 0" } else { "not clean" }
                    ),
                    "≤ grace (2 s) + 10 s",
                    *clean && *exited_after <= SHUTDOWN_GRACE + Duration::from_secs(10),
                ),
                check(
                    format!(
                        "SIGTERM worker {pid}: of its {} jobs, {} handed back and resumed after",
                        running.len(),
                        delays.len()
                    ),
                    format!("at most {}", secs(worst)),
                    "≤ grace (2 s) + 5 s",
                    worst <= SHUTDOWN_GRACE + Duration::from_secs(5),
                ),
            ]
        }
        Happened::RedisRestarted {
            lost,
            recovered_after,
            ..
        } => vec![check(
            format!("Redis restarted empty: the {lost} due jobs it lost queued again after"),
            recovered_after.map_or("never (60 s)".to_string(), secs),
            "≤ 10 s",
            recovered_after.is_some_and(|d| d <= REDIS_RECOVERY),
        )],
        Happened::PostgresRestarted { down_at, up_at } => {
            let (day, claim): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) = sqlx::query_as(
                "SELECT (SELECT min(created_at) FROM job_days WHERE created_at > $1),
                        (SELECT min(started_at) FROM job_attempts WHERE started_at > $1)",
            )
            .bind(up_at)
            .fetch_one(&fleet.pool)
            .await?;
            let moving = [day, claim]
                .into_iter()
                .flatten()
                .min()
                .map(|at| (at - *up_at).to_std().unwrap_or_default());
            let down = (*up_at - *down_at).to_std().unwrap_or_default();
            vec![check(
                format!(
                    "PostgreSQL restarted ({} down): jobs moving again after",
                    secs(down)
                ),
                moving.map_or("never".to_string(), secs),
                "≤ 10 s",
                moving.is_some_and(|d| d <= POSTGRES_RECOVERY),
            )]
        }
        Happened::Cancelled { jobs } => {
            let cancelled_at: HashMap<Uuid, i64> = jobs
                .iter()
                .map(|(job, at)| (*job, at.timestamp_millis()))
                .collect();
            let late = calls
                .iter()
                .filter(|c| {
                    cancelled_at
                        .get(&c.id.job)
                        .is_some_and(|at| c.arrived_ms > at + CANCEL_STOP.as_millis() as i64)
                })
                .count();
            vec![check(
                format!(
                    "{} running jobs cancelled: calls starting more than 1 s after their cancel",
                    jobs.len()
                ),
                format!("{late}"),
                "= 0",
                late == 0 && !jobs.is_empty(),
            )]
        }
    })
}
