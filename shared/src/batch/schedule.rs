//! The batch scheduler, run in every worker process: it waits for the next fire time of the
//! cron expression in its time zone and records a run for it; the `batch_runs` row, unique on
//! (schedule, fire time), makes the process whose insert won the only one that enqueues it,
//! however many schedulers run. A scheduler that starts after fire times went by with nobody
//! running (a deploy, an outage) catches up: the latest missed fire time, if recent enough, is
//! run once; the older ones are recorded as skipped, so nobody gets several weeks of menus at
//! once. Beside that it resumes, every few seconds, any run still enqueuing that nobody holds:
//! a manual run the API recorded, or one whose enqueuer died (its lease lapsed).

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
/// The time zone type of [`ScheduleConfig::timezone`] (IANA zones, compiled in).
pub use chrono_tz::Tz;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Error;
use super::enqueue::{self, EnqueueConfig, MANUAL};
use super::{BatchLaneMode, BatchRun, RunStatus, Trigger};
use crate::db;
use crate::db::batch_runs::{self, Holder, Leased, NewRun};
use crate::lifecycle::Lifecycle;

/// How often runs that nobody holds are looked for (and taken over).
const RESUME_EVERY: Duration = Duration::from_secs(2);
/// Unheld runs taken per look (the rest wait for the next).
const RESUME_LIMIT: i64 = 10;
/// A fire time the scheduler reaches this late (a loaded machine, a long enqueue before it) is
/// still run as scheduled, whatever the catch-up window.
const ON_TIME: Duration = Duration::from_secs(60);
/// Missed fire times recorded as skipped in one catch-up (the most recent ones; older misses
/// are only counted in the log).
const SKIPPED_RECORDED: usize = 1_000;
/// Older misses counted beyond those, at most (a long-dead per-second schedule would
/// otherwise take a while to count).
const SKIPPED_COUNTED: usize = 100_000;

fn time_zone(value: &str) -> Result<Tz, String> {
    Tz::from_str(value)
        .map_err(|_| format!("{value:?} is not an IANA time zone (such as Europe/Berlin or UTC)"))
}

/// When weekly batches run.
#[derive(clap::Args, Debug, Clone)]
pub struct ScheduleConfig {
    /// Cron expression in the `cron` crate's format (sec min hour day-of-month month
    /// day-of-week [year]); the default is Fridays at 18:00.
    #[arg(
        id = "batch_schedule",
        long = "batch-schedule",
        env = "BATCH_SCHEDULE",
        default_value = "0 0 18 * * Fri"
    )]
    pub cron: String,
    /// IANA zone the expression is read in (daylight saving time included).
    #[arg(
        id = "batch_timezone",
        long = "batch-timezone",
        env = "BATCH_TIMEZONE",
        default_value = "UTC",
        value_parser = time_zone
    )]
    pub timezone: Tz,
    /// The schedule's name: runs are unique per name and fire time (`manual` is taken).
    #[arg(
        id = "batch_schedule_name",
        long = "batch-schedule-name",
        env = "BATCH_SCHEDULE_NAME",
        default_value = "weekly"
    )]
    pub name: String,
    /// A fire time missed by at most this long (seconds) is run once when a scheduler starts;
    /// older misses are recorded as skipped.
    #[arg(
        id = "batch_catch_up_secs",
        long = "batch-catch-up-secs",
        env = "BATCH_CATCH_UP_SECS",
        default_value_t = 86_400
    )]
    pub catch_up_secs: u64,
    /// Whether this process fires the schedule; either way it finishes runs nobody holds
    /// (batches started by hand, or cut short by a crash).
    #[arg(
        id = "batch_scheduler",
        long = "batch-scheduler",
        env = "BATCH_SCHEDULER",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub enabled: bool,
    /// How the schedule's runs reach the model: `normal` (one Chat Completions call per day)
    /// or `provider` (first as one whole-menu request per person through the provider's Batch
    /// API, at half the price, answered within 24 hours). Recorded on each run when it is
    /// created. `api admin batch run` takes it as `--lane` too.
    #[arg(
        id = "batch_lane",
        long = "batch-lane",
        visible_alias = "lane",
        env = "BATCH_LANE",
        value_enum,
        default_value = "normal"
    )]
    pub lane: BatchLaneMode,
}

impl ScheduleConfig {
    /// The parsed expression.
    pub fn schedule(&self) -> Result<cron::Schedule, String> {
        cron::Schedule::from_str(&self.cron).map_err(|e| {
            format!(
                "BATCH_SCHEDULE {:?} is not a cron expression (sec min hour day-of-month month \
                 day-of-week [year], e.g. \"0 0 18 * * Fri\"): {e}",
                self.cron
            )
        })
    }

    pub fn catch_up(&self) -> Duration {
        Duration::from_secs(self.catch_up_secs)
    }

    /// Settings that cannot work: an expression that does not parse or never fires again, a
    /// name that is empty or `manual`.
    pub fn check(&self) -> Result<(), String> {
        let schedule = self.schedule()?;
        if schedule.upcoming(self.timezone).next().is_none() {
            return Err(format!("BATCH_SCHEDULE {:?} never fires again", self.cron));
        }
        if self.name.trim().is_empty() || self.name == MANUAL {
            return Err(format!(
                "BATCH_SCHEDULE_NAME {:?} must be a name other than {MANUAL:?}",
                self.name
            ));
        }
        Ok(())
    }
}

/// The period a fire time starts: the day after it, in the schedule's zone.
fn period_of(fire: &DateTime<Tz>) -> NaiveDate {
    fire.date_naive() + Days::new(1)
}

/// Whether `fire` is the second of two instants with the same local time (clocks turned back):
/// a schedule fires once per local time, at the first.
fn repeats_local_time(fire: &DateTime<Tz>) -> bool {
    matches!(
        fire.timezone().from_local_datetime(&fire.naive_local()),
        chrono::LocalResult::Ambiguous(_, later) if later == *fire
    )
}

/// The fire times in (`after`, `now`], newest first.
fn fired_between<'a>(
    schedule: &'a cron::Schedule,
    after: DateTime<Utc>,
    now: DateTime<Tz>,
) -> impl Iterator<Item = DateTime<Tz>> + 'a {
    // Iterating back from just past `now` includes `now` itself.
    let from = now + chrono::Duration::nanoseconds(1);
    schedule
        .after(&from)
        .rev()
        .take_while(move |fire| fire.to_utc() > after)
        .filter(|fire| !repeats_local_time(fire))
}

/// The first fire time after `after`.
fn next_fire(schedule: &cron::Schedule, after: DateTime<Tz>) -> Option<DateTime<Tz>> {
    schedule
        .after(&after)
        .find(|fire| !repeats_local_time(fire))
}

/// Records the fire times in (`after`, `now`] that have no run yet: the latest is run once if
/// it is `on_time` (the fire time the loop waited for, reached within a minute) or within the
/// catch-up window; every other one is recorded as skipped (the most recent 1,000; older ones
/// are counted in the log). Returns the run this call enqueued, if it recorded one.
#[tracing::instrument(skip_all, fields(schedule = %config.name, after = %after))]
async fn settle(
    life: &Lifecycle,
    config: &ScheduleConfig,
    schedule: &cron::Schedule,
    enqueue: &EnqueueConfig,
    after: DateTime<Utc>,
    now: DateTime<Utc>,
    on_time: Option<DateTime<Tz>>,
) -> Result<Option<BatchRun>, Error> {
    let now_local = now.with_timezone(&config.timezone);
    let mut fired = fired_between(schedule, after, now_local);
    let Some(latest) = fired.next() else {
        return Ok(None);
    };
    let late = (now - latest.to_utc()).to_std().unwrap_or_default();
    let trigger = if on_time == Some(latest) && late <= ON_TIME {
        Some(Trigger::Schedule)
    } else if late <= config.catch_up().max(ON_TIME) {
        // Within a minute a live scheduler may still be on its way to this fire time: never
        // record it as skipped under it, whatever the window.
        Some(Trigger::CatchUp)
    } else {
        None
    };
    let mut skipped: Vec<(DateTime<Utc>, NaiveDate)> = Vec::new();
    if trigger.is_none() {
        skipped.push((latest.to_utc(), period_of(&latest)));
    }
    skipped.extend(
        fired
            .by_ref()
            .take(SKIPPED_RECORDED - skipped.len())
            .map(|fire| (fire.to_utc(), period_of(&fire))),
    );
    if !skipped.is_empty() {
        let unrecorded = fired.take(SKIPPED_COUNTED).count();
        let recorded = {
            let mut conn = db::hold(life.pool(), "batch_skip").await?;
            batch_runs::insert_skipped(&mut conn, &config.name, &skipped).await?
        };
        if recorded > 0 || unrecorded > 0 {
            tracing::warn!(
                schedule = %config.name,
                recorded,
                unrecorded,
                unrecorded_capped = unrecorded == SKIPPED_COUNTED,
                newest = %skipped[0].0,
                "missed batch fire times recorded as skipped"
            );
        }
    }
    let Some(trigger) = trigger else {
        return Ok(None);
    };
    let fence = Uuid::new_v4();
    let new = NewRun {
        schedule: &config.name,
        fire_at: latest.to_utc(),
        period_start: period_of(&latest),
        trigger,
        triggered_by: None,
        status: RunStatus::Enqueuing,
        lane: config.lane,
        holder: Some(Holder {
            fence,
            lease: enqueue.lease(),
        }),
    };
    let inserted = {
        let mut conn = db::hold(life.pool(), "batch_fire").await?;
        batch_runs::insert(&mut conn, &new).await?
    };
    // Another scheduler recorded this fire time first: the run is its to enqueue.
    let Some(run) = inserted else {
        return Ok(None);
    };
    tracing::info!(
        batch = %run.id,
        schedule = %config.name,
        fire_at = %run.fire_at,
        trigger = trigger.as_str(),
        "batch fired"
    );
    enqueue::enqueue(life, Leased { run, cursor: None }, fence, enqueue).await
}

/// Runs the catch-up a scheduler makes when it starts, as of `now`: over the fire times after
/// the latest one recorded for this schedule (or, when none is, within the catch-up window)
/// that have no run, the latest is run once (trigger `catch_up`) if it was missed by at most
/// `catch_up_secs`, and the others are recorded as skipped. Returns the run it enqueued.
pub async fn catch_up(
    life: &Lifecycle,
    config: &ScheduleConfig,
    enqueue: &EnqueueConfig,
    now: DateTime<Utc>,
) -> Result<Option<BatchRun>, Error> {
    let schedule = config.schedule().map_err(Error::Schedule)?;
    let latest = {
        let mut conn = db::hold(life.pool(), "batch_catch_up").await?;
        batch_runs::latest_fire_at(&mut conn, &config.name).await?
    };
    let window = chrono::Duration::from_std(config.catch_up()).unwrap_or(chrono::Duration::MAX);
    let after = latest.unwrap_or_else(|| {
        now.checked_sub_signed(window)
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    });
    settle(life, config, &schedule, enqueue, after, now, None).await
}

/// Takes over and enqueues the runs still enqueuing that nobody holds (see
/// `batch_runs::unleased`), a few per call. Returns how many this call finished.
#[tracing::instrument(skip_all)]
pub async fn resume(life: &Lifecycle, enqueue: &EnqueueConfig) -> Result<usize, Error> {
    let ids = {
        let mut conn = db::hold(life.pool(), "batch_resume").await?;
        batch_runs::unleased(&mut conn, RESUME_LIMIT).await?
    };
    let mut finished = 0;
    for id in ids {
        if enqueue::drive(life, id, enqueue).await?.is_some() {
            finished += 1;
        }
    }
    Ok(finished)
}

/// The scheduler, until `stop`: catch-up at start, then each fire time as it comes, and every
/// two seconds the runs nobody holds. With `schedule.enabled` false it only finishes runs
/// nobody holds (batches started by hand). Errors
/// (the database away) are logged and the loop goes on; a run cut short is resumed by
/// whichever scheduler sees its lease lapse.
pub async fn run(
    life: Lifecycle,
    schedule: ScheduleConfig,
    enqueue: EnqueueConfig,
    stop: CancellationToken,
) {
    if !schedule.enabled {
        tracing::info!(
            "batch schedule off in this process (BATCH_SCHEDULER=false); it still finishes batches started by hand"
        );
        loop {
            let result = tokio::select! {
                _ = stop.cancelled() => return,
                result = resume(&life, &enqueue) => result,
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "batch resume failed; trying again shortly");
            }
            if pause(&stop).await {
                return;
            }
        }
    }
    let cron = match schedule.schedule() {
        Ok(cron) => cron,
        Err(e) => {
            tracing::error!(error = %e, "batch scheduler not started");
            return;
        }
    };
    let zone = schedule.timezone;
    tracing::info!(
        schedule = %schedule.name,
        cron = %schedule.cron,
        timezone = %zone,
        "batch scheduler started"
    );
    // Fire times up to `settled` are settled: first by the catch-up, then one wake at a time.
    let mut settled = loop {
        let now = Utc::now();
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            result = catch_up(&life, &schedule, &enqueue, now) => result,
        };
        match result {
            Ok(_) => break now.with_timezone(&zone),
            Err(e) => {
                tracing::warn!(error = %e, "batch catch-up failed; trying again");
                if pause(&stop).await {
                    return;
                }
            }
        }
    };
    let mut resume_tick = tokio::time::interval(RESUME_EVERY);
    resume_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let next = next_fire(&cron, settled);
        let wait = next.map_or(Duration::MAX, |next| {
            (next.to_utc() - Utc::now()).to_std().unwrap_or_default()
        });
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {
                let now = Utc::now();
                let after = settled.to_utc();
                let result = tokio::select! {
                    _ = stop.cancelled() => return,
                    result = settle(&life, &schedule, &cron, &enqueue, after, now, next) => result,
                };
                if result.is_ok() {
                    settled = now.with_timezone(&zone);
                }
                result.map(drop)
            }
            _ = resume_tick.tick() => tokio::select! {
                _ = stop.cancelled() => return,
                result = resume(&life, &enqueue) => result.map(drop),
            },
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "batch scheduler: trying again shortly");
            if pause(&stop).await {
                return;
            }
        }
    }
}

/// Waits a moment before trying again after an error; `true` if `stop` came first.
async fn pause(stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = stop.cancelled() => true,
        _ = tokio::time::sleep(RESUME_EVERY) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(cron: &str, timezone: Tz) -> ScheduleConfig {
        ScheduleConfig {
            cron: cron.into(),
            timezone,
            name: "weekly".into(),
            catch_up_secs: 86_400,
            enabled: true,
            lane: BatchLaneMode::Normal,
        }
    }

    #[test]
    fn a_bad_expression_or_name_is_refused_with_the_format_named() {
        assert_eq!(config("0 0 18 * * Fri", Tz::UTC).check(), Ok(()));
        let bad = config("0 18 * * Fri", Tz::UTC).check().unwrap_err();
        assert!(bad.contains("sec min hour"), "{bad}");
        let past = config("0 0 0 1 1 * 2001", Tz::UTC).check().unwrap_err();
        assert!(past.contains("never fires again"), "{past}");
        let manual = ScheduleConfig {
            name: MANUAL.into(),
            ..config("0 0 18 * * Fri", Tz::UTC)
        };
        assert!(manual.check().is_err());
    }

    #[test]
    fn the_expression_is_read_in_its_zone_across_daylight_saving_time() {
        let berlin = chrono_tz::Europe::Berlin;
        let schedule = config("0 30 2 * * *", berlin).schedule().unwrap();
        // 2026-10-25: clocks go back from 03:00 CEST to 02:00 CET; 02:30 happens twice and
        // the schedule fires once, at the first. 2026-03-29: 02:30 does not exist.
        let start = berlin.with_ymd_and_hms(2026, 10, 24, 12, 0, 0).unwrap();
        let fires: Vec<String> =
            std::iter::successors(next_fire(&schedule, start), |f| next_fire(&schedule, *f))
                .take(3)
                .map(|f| f.to_utc().to_rfc3339())
                .collect();
        assert_eq!(
            fires,
            [
                "2026-10-25T00:30:00+00:00",
                "2026-10-26T01:30:00+00:00",
                "2026-10-27T01:30:00+00:00"
            ]
        );
        let spring = berlin.with_ymd_and_hms(2026, 3, 28, 12, 0, 0).unwrap();
        let after_gap = next_fire(&schedule, spring).unwrap();
        assert_eq!(after_gap.date_naive().to_string(), "2026-03-30");

        // The default fires Fridays at 18:00 local; its period starts on Saturday.
        let weekly = config("0 0 18 * * Fri", berlin).schedule().unwrap();
        let fire = next_fire(&weekly, start).unwrap();
        assert_eq!(fire.to_utc().to_rfc3339(), "2026-10-30T17:00:00+00:00");
        assert_eq!(period_of(&fire).to_string(), "2026-10-31");
    }

    #[test]
    fn fire_times_between_two_instants_come_newest_first_and_include_now() {
        let schedule = config("0 0 * * * *", Tz::UTC).schedule().unwrap();
        let after = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let now = Tz::UTC.with_ymd_and_hms(2026, 1, 1, 3, 0, 0).unwrap();
        let fired: Vec<u32> = fired_between(&schedule, after, now)
            .map(|f| chrono::Timelike::hour(&f))
            .collect();
        assert_eq!(fired, [3, 2, 1]);
    }
}
