//! Filling a batch run with jobs: one job per opted-in person, created chunk by chunk so memory
//! stays flat however many people there are, under a lease so one process enqueues a run at a
//! time, and resumable: each chunk's jobs, the run's counters and its cursor (the last person
//! passed) commit together, so an enqueue that dies is taken over after its lease lapses and
//! goes on after the cursor, creating and counting nobody twice. Jobs are pushed to the batch
//! lane after their chunk commits; a push Redis refuses is left to the reconciler. A run on the
//! provider lane pushes nothing: its jobs wait in PostgreSQL for a worker's batch lane.
//!
//! Also the two ways a batch starts besides the schedule: a manual run for a period, and a dry
//! run that says what a batch would do without writing anything.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{NaiveDate, Offset, TimeZone};
use serde::Serialize;
use sqlx::{Connection, PgPool};
use uuid::Uuid;

pub use super::Error;
use super::{BatchLaneMode, BatchRun, RunStatus, Trigger};
use crate::config::AttemptsConfig;
use crate::db::batch_runs::{self, Leased, NewRun, Person, Progress};
use crate::db::{self, jobs};
use crate::lifecycle::Lifecycle;
use crate::queue::Lane;
use domain::request::{GenerationRequest, MenuOptions, limits};

/// The schedule name of manual runs.
pub const MANUAL: &str = "manual";

/// Why an opted-in person got no job: their stored options are not JSON a current
/// `MenuOptions` reads (an older shape, a hand edit).
pub const UNREADABLE_PREFERENCES: &str = "unreadable_preferences";
/// Why an opted-in person got no job: their stored options read but do not validate (a limit
/// tightened since they were saved).
pub const INVALID_PREFERENCES: &str = "invalid_preferences";
/// Skip reason: a batch already created this person's menu for the same start date (a manual
/// batch and the schedule's for one week, say).
pub const ALREADY_GENERATED: &str = "already_generated";

/// People a dry run reads per statement.
const DRY_RUN_PAGE: i64 = 1_000;

/// How a batch is enqueued.
#[derive(clap::Args, Debug, Clone)]
pub struct EnqueueConfig {
    /// People read, and jobs created, per transaction of a batch's enqueue.
    #[arg(
        id = "batch_chunk",
        long = "batch-chunk",
        env = "BATCH_CHUNK",
        default_value_t = 1_000,
        value_parser = clap::value_parser!(u32).range(1..=10_000)
    )]
    pub chunk: u32,
    /// How long a batch's enqueue is its process's without a word from it: a process that
    /// died mid-enqueue is taken over (where it stopped) this long after its last chunk.
    #[arg(
        id = "batch_lease_secs",
        long = "batch-lease-secs",
        env = "BATCH_LEASE_SECS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub lease_secs: u64,
    /// Attempts a batch job may use: the API's setting for the jobs it creates.
    #[command(flatten)]
    pub attempts: AttemptsConfig,
}

impl EnqueueConfig {
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }
}

/// What a batch would do (a dry run), or did: people it creates a job for, and people it
/// skips, by reason (`unreadable_preferences`, `invalid_preferences`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Plan {
    pub targeted: i64,
    pub skipped: i64,
    pub skip_reasons: BTreeMap<String, i64>,
}

impl Plan {
    fn skip(&mut self, reason: &str) {
        self.skipped += 1;
        *self.skip_reasons.entry(reason.to_string()).or_default() += 1;
    }
}

/// What [`start_manual`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Started {
    /// A new run, waiting for its enqueue.
    Created(BatchRun),
    /// The run started earlier for the same period.
    Existing(BatchRun),
}

/// The first instant of `date` in `tz` (local midnight; in the rare zone whose clocks jump over
/// midnight, the midnight the zone's offset of that moment gives).
pub fn start_of_day<Tz: TimeZone>(tz: &Tz, date: NaiveDate) -> chrono::DateTime<chrono::Utc> {
    let midnight = date.and_time(chrono::NaiveTime::MIN);
    match tz.from_local_datetime(&midnight).earliest() {
        Some(at) => at.to_utc(),
        None => {
            let offset = tz.offset_from_utc_datetime(&midnight).fix();
            (midnight - offset).and_utc()
        }
    }
}

/// Manual batch for the seven days from `period_start` on the normal lane (see
/// [`start_manual_in`]).
pub async fn start_manual(
    pool: &PgPool,
    tz: chrono_tz::Tz,
    period_start: NaiveDate,
    by: Uuid,
) -> Result<Started, sqlx::Error> {
    start_manual_in(pool, tz, period_start, by, BatchLaneMode::Normal).await
}

/// Manual batch for the seven days from `period_start`, its jobs on `lane`: key (schedule
/// `manual`, fire time = `period_start` 00:00 in `tz`). Inserts the run unleased (status
/// enqueuing) so a worker's scheduler (or the caller, via [`drive`]) enqueues it; the same
/// period again returns the existing run, whatever its lane. `by`: the admin (a user id).
#[tracing::instrument(skip_all, fields(period_start = %period_start, by = %by, lane = lane.as_str()), err(level = "warn"))]
pub async fn start_manual_in(
    pool: &PgPool,
    tz: chrono_tz::Tz,
    period_start: NaiveDate,
    by: Uuid,
    lane: BatchLaneMode,
) -> Result<Started, sqlx::Error> {
    let fire_at = start_of_day(&tz, period_start);
    let mut conn = db::hold(pool, "batch_start").await?;
    let run = NewRun {
        schedule: MANUAL,
        fire_at,
        period_start,
        trigger: Trigger::Manual,
        triggered_by: Some(by),
        status: RunStatus::Enqueuing,
        lane,
        holder: None,
    };
    if let Some(created) = batch_runs::insert(&mut conn, &run).await? {
        tracing::info!(batch = %created.id, %period_start, admin = %by, "manual batch started");
        return Ok(Started::Created(created));
    }
    let existing = batch_runs::get_by_key(&mut conn, MANUAL, fire_at)
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    Ok(Started::Existing(existing))
}

/// What a batch for that period would do now, without writing anything: every opted-in
/// person is read (a page at a time) and their stored options checked as the enqueue checks
/// them. It does not look at runs already made for the period.
#[tracing::instrument(skip_all, fields(period_start = %period_start), err(level = "warn"))]
pub async fn dry_run(pool: &PgPool, period_start: NaiveDate) -> Result<Plan, sqlx::Error> {
    let mut plan = Plan::default();
    let mut after = None;
    loop {
        let page = {
            let mut conn = db::hold(pool, "batch_dry_run").await?;
            batch_runs::people_after(&mut conn, after, period_start, DRY_RUN_PAGE).await?
        };
        for person in &page {
            match request_for(person) {
                Ok(_) => plan.targeted += 1,
                Err(reason) => plan.skip(reason),
            }
        }
        match page.last() {
            Some(last) if page.len() as i64 == DRY_RUN_PAGE => after = Some(last.user_id),
            _ => return Ok(plan),
        }
    }
}

/// The person's request for their week, or why they get none.
fn request_for(person: &Person) -> Result<GenerationRequest, &'static str> {
    if person.already_generated {
        return Err(ALREADY_GENERATED);
    }
    let options: MenuOptions =
        serde_json::from_str(&person.options).map_err(|_| UNREADABLE_PREFERENCES)?;
    let mut request = GenerationRequest::from_options(&options, person.start_date)
        .map_err(|_| INVALID_PREFERENCES)?;
    request.avoid_titles = avoid_titles(&person.previous_titles);
    Ok(request)
}

/// Up to [`limits::AVOID_TITLES`] of `titles`, trimmed, each once (ignoring case), in order.
fn avoid_titles(titles: &[String]) -> Vec<String> {
    let mut seen = HashSet::new();
    titles
        .iter()
        .map(|title| title.trim())
        .filter(|title| !title.is_empty() && seen.insert(title.to_lowercase()))
        .take(limits::AVOID_TITLES)
        .map(str::to_string)
        .collect()
}

/// Takes the run's lease if it is free or lapsed and enqueues to the end (resuming after
/// `cursor`); Ok(None) when another process holds a live lease or the run is not enqueuing,
/// or when another process takes the run over while this one enqueues (after this one's lease
/// lapsed). Returns the run as this enqueue left it (`enqueued`).
///
/// Per chunk: one read of the people (each with their menu's start and previous-week titles),
/// then one short transaction (lock the run under the fence, insert the jobs, advance the counters, cursor
/// and lease); the connection goes back to the pool before the jobs are pushed to Redis.
#[tracing::instrument(skip_all, fields(batch_id = %id))]
pub async fn drive(
    life: &Lifecycle,
    id: Uuid,
    config: &EnqueueConfig,
) -> Result<Option<BatchRun>, Error> {
    let fence = Uuid::new_v4();
    let leased = {
        let mut conn = db::hold(life.pool(), "batch_lease").await?;
        batch_runs::take_lease(&mut conn, id, fence, config.lease()).await?
    };
    let Some(leased) = leased else {
        return Ok(None);
    };
    enqueue(life, leased, fence, config).await
}

/// Enqueues the run `fence` holds to the end, from its cursor on (see [`drive`]).
#[tracing::instrument(skip_all, fields(batch_id = %leased.run.id), err(level = "warn"))]
pub(crate) async fn enqueue(
    life: &Lifecycle,
    leased: Leased,
    fence: Uuid,
    config: &EnqueueConfig,
) -> Result<Option<BatchRun>, Error> {
    let id = leased.run.id;
    let period_start = leased.run.period_start;
    let mut cursor = leased.cursor;
    let started = Instant::now();
    tracing::info!(
        batch = %id,
        schedule = %leased.run.schedule,
        %period_start,
        resumed = cursor.is_some(),
        "enqueuing batch"
    );
    let chunk = i64::from(config.chunk);
    loop {
        let mut conn = db::hold(life.pool(), "batch_enqueue").await?;
        let people = batch_runs::people_after(&mut conn, cursor, period_start, chunk).await?;
        let mut progress = Progress {
            cursor: people.last().map(|p| p.user_id),
            last: (people.len() as i64) < chunk,
            ..Progress::default()
        };
        let mut requests = Vec::with_capacity(people.len());
        for person in people {
            match request_for(&person) {
                Ok(request) => requests.push((person.user_id, request)),
                Err(reason) => *progress.skip_reasons.entry(reason.into()).or_default() += 1,
            }
        }

        let mut tx = conn.begin().await?;
        if !batch_runs::hold(&mut tx, id, fence).await? {
            tracing::warn!(batch = %id, "batch enqueue taken over by another process; stopping");
            return Ok(None);
        }
        // A provider-lane run's jobs wait for the worker's batch lane, not in Redis.
        let provider = leased.run.lane == BatchLaneMode::Provider;
        let ids = jobs::insert_batch(
            &mut tx,
            id,
            config.attempts.max_attempts,
            provider,
            &requests,
        )
        .await?;
        progress.targeted = ids.len() as i64;
        // A concurrent batch for the same week created some of these since the read.
        let raced = requests.len() - ids.len();
        if raced > 0 {
            *progress
                .skip_reasons
                .entry(ALREADY_GENERATED.into())
                .or_default() += raced as i64;
        }
        let Some(run) = batch_runs::advance(&mut tx, id, fence, &progress, config.lease()).await?
        else {
            return Ok(None);
        };
        tx.commit().await?;
        drop(conn);

        metrics::counter!("batch_jobs_enqueued_total").increment(ids.len() as u64);
        for (reason, count) in &progress.skip_reasons {
            metrics::counter!("batch_people_skipped_total", "reason" => reason.clone())
                .increment(*count as u64);
        }
        // A provider-lane run's jobs are not pushed: a worker's batch lane gathers them into a
        // provider batch once the run is enqueued.
        if !provider && let Err(e) = life.queue().push_in(Lane::Batch, &ids).await {
            metrics::counter!("queue_push_failures_total").increment(1);
            tracing::error!(
                error = %e,
                batch = %id,
                jobs = ids.len(),
                "batch jobs saved but not queued; the reconciler will queue them"
            );
        }
        tracing::debug!(batch = %id, jobs = ids.len(), targeted = run.targeted, "batch chunk enqueued");
        if progress.last {
            tracing::info!(
                batch = %id,
                targeted = run.targeted,
                skipped = run.skipped,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "batch enqueued"
            );
            return Ok(Some(run));
        }
        cursor = progress.cursor;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avoided_titles_are_trimmed_unique_and_capped() {
        let titles: Vec<String> = ["Soup ", "soup", "", "Stew"]
            .into_iter()
            .map(String::from)
            .chain((0..100).map(|i| format!("Dish {i}")))
            .collect();
        let kept = avoid_titles(&titles);
        assert_eq!(kept.len(), limits::AVOID_TITLES);
        assert_eq!(&kept[..3], ["Soup", "Stew", "Dish 0"]);
    }

    #[test]
    fn a_manual_period_starts_at_local_midnight() {
        let date = NaiveDate::from_ymd_opt(2026, 7, 6).unwrap();
        let at = start_of_day(&chrono_tz::Europe::Berlin, date);
        assert_eq!(at.to_rfc3339(), "2026-07-05T22:00:00+00:00");
        // Clocks in America/Havana jump from 00:00 to 01:00 on 2026-03-08.
        let gap = NaiveDate::from_ymd_opt(2026, 3, 8).unwrap();
        let at = start_of_day(&chrono_tz::America::Havana, gap);
        assert_eq!(
            at.with_timezone(&chrono_tz::America::Havana).date_naive(),
            gap
        );
    }
}
