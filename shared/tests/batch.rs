//! The weekly batch against the real PostgreSQL and Redis: schedulers in several processes
//! fire each time once, a scheduler started late catches up the latest miss once and records
//! the rest as skipped, and an enqueue of thousands of people creates one job each, once,
//! across a crash and a resume, with exact counters, skipping unusable preferences by reason,
//! starting each menu on the person's weekday and carrying their previous week's titles.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use domain::request::{GenerationRequest, MenuOptions};
use shared::batch::enqueue::{self, EnqueueConfig, Plan, Started};
use shared::batch::schedule::{self, ScheduleConfig, Tz};
use shared::batch::{BatchLaneMode, BatchRun, RunStatus, Trigger};
use shared::config::AttemptsConfig;
use shared::db::batch_runs;
use shared::lifecycle::Lifecycle;
use shared::queue::{Lane, Queue};
use sqlx::PgPool;
use testkit::{TestDb, TestRedis, rows};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A Monday: the first day of the manual batches here.
fn period() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 30).unwrap()
}

fn enqueue_config(chunk: u32) -> EnqueueConfig {
    EnqueueConfig {
        chunk,
        lease_secs: 30,
        attempts: AttemptsConfig { max_attempts: 4 },
    }
}

fn schedule_config(name: &str, cron: &str, catch_up_secs: u64) -> ScheduleConfig {
    ScheduleConfig {
        cron: cron.into(),
        timezone: Tz::UTC,
        name: name.into(),
        catch_up_secs,
        enabled: true,
        lane: BatchLaneMode::Normal,
    }
}

async fn life(db: &TestDb, redis: &TestRedis) -> Lifecycle {
    let queue = Queue::connect(&redis.config()).await.unwrap();
    Lifecycle::new(db.pool.clone(), queue)
}

/// `n` opted-in people with `options`, in one statement; each one's weekday is spread over
/// the week by their id.
async fn people(pool: &PgPool, n: i32, options: &str, opted_in: bool) {
    sqlx::query(
        "WITH u AS (
             INSERT INTO users (id, email, password_hash)
             SELECT gen_random_uuid(), 'p-' || gen_random_uuid() || '@example.com', 'x'
             FROM generate_series(1, $1)
             RETURNING id)
         INSERT INTO preferences (user_id, options, auto_generate_weekly, weekly_start_day)
         SELECT id, $2::jsonb, $3, 1 + abs(hashtext(id::text)) % 7 FROM u",
    )
    .bind(n)
    .bind(options)
    .bind(opted_in)
    .execute(pool)
    .await
    .unwrap();
}

/// Rows of one schedule, oldest fire time first.
async fn runs(pool: &PgPool, schedule: &str) -> Vec<BatchRun> {
    let ids: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM batch_runs WHERE schedule = $1 ORDER BY fire_at")
            .bind(schedule)
            .fetch_all(pool)
            .await
            .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let mut out = Vec::new();
    for id in ids {
        out.push(batch_runs::get(&mut conn, id).await.unwrap().unwrap());
    }
    out
}

async fn jobs_of(pool: &PgPool, batch: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM generation_jobs WHERE batch_id = $1")
        .bind(batch)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Every id in the batch lane's ready list.
async fn batch_lane(queue: &Queue) -> Vec<Uuid> {
    let ids: Vec<String> = redis::AsyncCommands::lrange(
        &mut queue.redis().connection(),
        queue.redis().keys().ready_of(Lane::Batch),
        0,
        -1,
    )
    .await
    .unwrap();
    ids.iter().map(|id| id.parse().unwrap()).collect()
}

/// Records a run of `schedule` at `fire_at` as done, as an earlier scheduler would have.
async fn recorded(pool: &PgPool, schedule: &str, fire_at: DateTime<Utc>) {
    sqlx::query(
        "INSERT INTO batch_runs (id, schedule, fire_at, period_start, trigger, status)
         VALUES (gen_random_uuid(), $1, $2, $3, 'schedule', 'enqueued')",
    )
    .bind(schedule)
    .bind(fire_at)
    .bind(fire_at.date_naive())
    .execute(pool)
    .await
    .unwrap();
}

/// Polls `check` every 100 ms until it holds or `within` passes.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let until = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < until, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn two_schedulers_fire_each_time_once() {
    testkit::init_tracing();
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    people(&db.pool, 20, "{}", true).await;
    // Every second; no catch-up, so only the fire times while they run count.
    let config = schedule_config("every-second", "* * * * * *", 0);
    let stop = CancellationToken::new();
    let mut schedulers = Vec::new();
    for _ in 0..2 {
        schedulers.push(tokio::spawn(schedule::run(
            life(&db, &redis).await,
            config.clone(),
            enqueue_config(1_000),
            stop.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_millis(4_300)).await;
    stop.cancel();
    for scheduler in schedulers {
        scheduler.await.unwrap();
    }
    // A run the stop cut short is finished by whoever resumes it once its lease lapses.
    sqlx::query("UPDATE batch_runs SET lease_expires_at = now() WHERE status = 'enqueuing'")
        .execute(&db.pool)
        .await
        .unwrap();
    let checker = life(&db, &redis).await;
    schedule::resume(&checker, &enqueue_config(1_000))
        .await
        .unwrap();

    let runs = runs(&db.pool, "every-second").await;
    let fired: Vec<&BatchRun> = runs
        .iter()
        .filter(|r| r.status == RunStatus::Enqueued)
        .collect();
    // 4.3 s of a per-second schedule: 4 or 5 fire times; a loaded machine may make one late
    // (then recorded, as skipped or caught up), never lose one.
    assert!(fired.len() >= 3, "fired: {runs:#?}");
    assert!(
        fired.iter().any(|r| r.trigger == Trigger::Schedule),
        "{runs:#?}"
    );
    for pair in runs.windows(2) {
        assert_eq!(
            (pair[1].fire_at - pair[0].fire_at).num_seconds(),
            1,
            "one row per fire time, none missing: {runs:#?}"
        );
    }
    assert!(
        runs.iter().all(|r| r.status != RunStatus::Enqueuing),
        "{runs:#?}"
    );
    // Each fire time's batch went over the 20 people once. Its period is the same week as the
    // others' (fire times a second apart), so the first made everyone's menu and the later
    // ones found it made: jobs = people, never people × batches.
    let mut targeted = 0;
    for run in &fired {
        assert_eq!(
            run.period_start,
            run.fire_at.date_naive().succ_opt().unwrap()
        );
        assert_eq!(run.targeted + run.skipped, 20, "{run:?}");
        assert_eq!(
            run.skip_reasons.keys().collect::<Vec<_>>(),
            if run.skipped > 0 {
                vec![enqueue::ALREADY_GENERATED]
            } else {
                vec![]
            },
            "{run:?}"
        );
        assert_eq!(jobs_of(&db.pool, run.id).await, run.targeted, "{run:?}");
        targeted += run.targeted;
    }
    let total: i64 =
        sqlx::query_scalar("SELECT count(*) FROM generation_jobs WHERE batch_id IS NOT NULL")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!((total, targeted), (20, 20), "each person's week made once");
    let lane = batch_lane(checker.queue()).await;
    let unique: HashSet<Uuid> = lane.iter().copied().collect();
    assert_eq!(unique.len(), lane.len(), "no job pushed twice");
    assert_eq!(
        lane.len() as i64,
        total,
        "every job pushed to the batch lane"
    );
}

#[tokio::test]
async fn a_late_scheduler_runs_the_latest_missed_fire_time_once_and_skips_the_rest() {
    testkit::init_tracing();
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    people(&db.pool, 5, "{}", true).await;
    // Every minute; the last run recorded was ten minutes ago.
    let now = Utc::now();
    let minute = now.timestamp() - now.timestamp() % 60;
    let old = Utc.timestamp_opt(minute - 600, 0).unwrap();
    recorded(&db.pool, "minutely", old).await;
    let config = schedule_config("minutely", "0 * * * * *", 3_600);
    let stop = CancellationToken::new();
    let scheduler = tokio::spawn(schedule::run(
        life(&db, &redis).await,
        config,
        enqueue_config(1_000),
        stop.clone(),
    ));
    eventually(
        Duration::from_secs(30),
        "a catch-up run enqueued",
        || async {
            runs(&db.pool, "minutely")
                .await
                .iter()
                .any(|r| r.trigger == Trigger::CatchUp && r.status == RunStatus::Enqueued)
        },
    )
    .await;
    stop.cancel();
    scheduler.await.unwrap();

    let runs = runs(&db.pool, "minutely").await;
    let caught: Vec<&BatchRun> = runs
        .iter()
        .filter(|r| r.trigger == Trigger::CatchUp)
        .collect();
    assert_eq!(caught.len(), 1, "{runs:#?}");
    let caught = caught[0];
    assert_eq!(caught.targeted, 5);
    assert_eq!(jobs_of(&db.pool, caught.id).await, 5);
    // Every minute from the old run to the catch-up has a row; those between are skipped
    // and have no jobs.
    let before: Vec<&BatchRun> = runs
        .iter()
        .filter(|r| r.fire_at <= caught.fire_at)
        .collect();
    for pair in before.windows(2) {
        assert_eq!(
            (pair[1].fire_at - pair[0].fire_at).num_seconds(),
            60,
            "{runs:#?}"
        );
    }
    assert_eq!(before.first().unwrap().fire_at, old);
    let between = &before[1..before.len() - 1];
    assert!(between.len() >= 9, "{runs:#?}");
    for run in between {
        assert_eq!(run.status, RunStatus::Skipped, "{run:?}");
        assert_eq!(jobs_of(&db.pool, run.id).await, 0);
    }
    // The catch-up is the latest fire time the scheduler had missed when it started.
    assert!(caught.fire_at <= Utc::now() && caught.fire_at >= old + chrono::Duration::minutes(10));
}

#[tokio::test]
async fn catch_up_runs_only_a_miss_within_its_window() {
    testkit::init_tracing();
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let life = life(&db, &redis).await;
    people(&db.pool, 3, "{}", true).await;
    let hourly = "0 0 * * * *";
    let at = |h: u32, m: u32| Utc.with_ymd_and_hms(2026, 1, 1, h, m, 0).unwrap();
    let enqueue = enqueue_config(1_000);

    // Nothing recorded: the fire times within the window count (03:00, 04:00, 05:00).
    let fresh = schedule_config("fresh", hourly, 3 * 3_600);
    let run = schedule::catch_up(&life, &fresh, &enqueue, at(5, 30))
        .await
        .unwrap()
        .expect("a catch-up run");
    assert_eq!((run.fire_at, run.trigger), (at(5, 0), Trigger::CatchUp));
    assert_eq!((run.status, run.targeted), (RunStatus::Enqueued, 3));
    assert_eq!(
        run.period_start,
        NaiveDate::from_ymd_opt(2026, 1, 2).unwrap()
    );
    let rows = runs(&db.pool, "fresh").await;
    let statuses: Vec<(u32, RunStatus)> = rows
        .iter()
        .map(|r| (chrono::Timelike::hour(&r.fire_at), r.status))
        .collect();
    assert_eq!(
        statuses,
        [
            (3, RunStatus::Skipped),
            (4, RunStatus::Skipped),
            (5, RunStatus::Enqueued)
        ]
    );
    // Once caught up, the same moment again does nothing.
    assert_eq!(
        schedule::catch_up(&life, &fresh, &enqueue, at(5, 30))
            .await
            .unwrap(),
        None
    );
    assert_eq!(runs(&db.pool, "fresh").await.len(), 3);

    // Recorded up to 00:00 and the latest miss (05:00) is 30 minutes old, past a 20-minute
    // window: no catch-up, every miss skipped.
    let late = schedule_config("late", hourly, 20 * 60);
    recorded(&db.pool, "late", at(0, 0)).await;
    assert_eq!(
        schedule::catch_up(&life, &late, &enqueue, at(5, 30))
            .await
            .unwrap(),
        None
    );
    let rows = runs(&db.pool, "late").await;
    assert_eq!(rows.len(), 6, "00:00 plus five misses");
    assert!(rows[1..].iter().all(|r| r.status == RunStatus::Skipped));
    let jobs: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM generation_jobs j JOIN batch_runs b ON b.id = j.batch_id
         WHERE b.schedule = 'late'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(jobs, 0);

    // Two hours of a per-second schedule missed, the latest half a second ago, with no
    // window: that latest one runs all the same (a live scheduler may be on its way to it:
    // within a minute a fire time is never recorded skipped), and the 1,000 before it are
    // recorded as skipped.
    let flood = schedule_config("flood", "* * * * * *", 0);
    recorded(&db.pool, "flood", at(3, 30)).await;
    let now = at(5, 30) + chrono::Duration::milliseconds(500);
    let caught = schedule::catch_up(&life, &flood, &enqueue, now)
        .await
        .unwrap()
        .expect("the latest fire time runs");
    assert_eq!(
        (caught.fire_at, caught.trigger),
        (at(5, 30), Trigger::CatchUp)
    );
    let rows = runs(&db.pool, "flood").await;
    assert_eq!(rows.len(), 1 + 1_000 + 1);
    let skipped: Vec<&BatchRun> = rows
        .iter()
        .filter(|r| r.status == RunStatus::Skipped)
        .collect();
    assert_eq!(skipped.len(), 1_000);
    assert_eq!(
        skipped.last().unwrap().fire_at,
        at(5, 29) + chrono::Duration::seconds(59)
    );
}

#[tokio::test]
async fn a_manual_run_is_enqueued_by_a_worker_even_with_the_schedule_off() {
    testkit::init_tracing();
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    people(&db.pool, 30, "{}", true).await;
    let admin = rows::user(&db.pool).await;
    let stop = CancellationToken::new();
    // BATCH_SCHEDULER=false (an external scheduler fires the batch): the worker still
    // finishes batches started by hand.
    let scheduler = tokio::spawn(schedule::run(
        life(&db, &redis).await,
        ScheduleConfig {
            enabled: false,
            ..schedule_config("weekly", "0 0 18 * * Fri", 0)
        },
        enqueue_config(7),
        stop.clone(),
    ));
    let Started::Created(run) = enqueue::start_manual(&db.pool, Tz::UTC, period(), admin)
        .await
        .unwrap()
    else {
        panic!("a new run")
    };
    assert_eq!(
        (run.status, run.trigger),
        (RunStatus::Enqueuing, Trigger::Manual)
    );
    assert_eq!(run.triggered_by, Some(admin));
    // The scheduler looks every 2 s; a loaded machine may take a few more.
    eventually(
        Duration::from_secs(20),
        "the manual run enqueued",
        || async {
            let mut conn = db.pool.acquire().await.unwrap();
            let run = batch_runs::get(&mut conn, run.id).await.unwrap().unwrap();
            run.status == RunStatus::Enqueued
        },
    )
    .await;
    stop.cancel();
    scheduler.await.unwrap();
    assert_eq!(jobs_of(&db.pool, run.id).await, 30);
}

#[tokio::test]
async fn overlapping_batches_never_generate_a_persons_week_twice() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    people(&db.pool, 200, "{}", true).await;
    let admin = rows::user(&db.pool).await;
    let life = life(&db, &redis).await;
    let start = |period: NaiveDate| {
        let (pool, life) = (db.pool.clone(), life.clone());
        async move {
            let Started::Created(run) = enqueue::start_manual(&pool, Tz::UTC, period, admin)
                .await
                .unwrap()
            else {
                panic!("a new run")
            };
            enqueue::drive(&life, run.id, &enqueue_config(50))
                .await
                .unwrap()
                .expect("enqueued here")
        }
    };
    let first = start(period()).await;
    assert_eq!((first.targeted, first.skipped), (200, 0));

    // A run for the period from the next day: everyone but the Monday people would start on
    // the same day as in the first run.
    let mondays: i64 =
        sqlx::query_scalar("SELECT count(*) FROM preferences WHERE weekly_start_day = 1")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(mondays > 0 && mondays < 200, "weekdays spread: {mondays}");
    let tuesday = period() + chrono::Days::new(1);
    let planned = enqueue::dry_run(&db.pool, tuesday).await.unwrap();
    let second = start(tuesday).await;
    assert_eq!(
        second.targeted, mondays,
        "only the Monday people get a new week"
    );
    assert_eq!(
        second.skip_reasons,
        BTreeMap::from([(enqueue::ALREADY_GENERATED.to_string(), 200 - mondays)])
    );
    assert_eq!(
        (planned.targeted, planned.skip_reasons),
        (second.targeted, second.skip_reasons.clone()),
        "the dry run said so"
    );
    let weeks: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT owner_id, request->>'start_date' FROM generation_jobs
                               GROUP BY 1, 2 HAVING count(*) > 1) twice",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(weeks, 0, "no person has two menus starting the same day");
}

/// A menu of `owner` starting on `start` (two days, three meals and a snack each), its dishes
/// titled by `tag`; returns its titles (every day's meals, then every day's snacks).
async fn previous_menu(pool: &PgPool, owner: Uuid, start: NaiveDate, tag: &str) -> Vec<String> {
    let options = MenuOptions {
        days: Some(2),
        snacks_per_day: Some(1),
        ..MenuOptions::default()
    };
    let request = GenerationRequest::from_options(&options, start).unwrap();
    let mut days = Vec::new();
    for n in 1..=2 {
        let brief = domain::prompt::DayBrief::new(&request, n, &days, Vec::new());
        let mut day = standin::compose::compose(&brief, u64::from(n)).day;
        for (i, dish) in day
            .meals
            .iter_mut()
            .chain(day.snacks.iter_mut())
            .enumerate()
        {
            dish.title = format!("{tag} {n}.{i}");
        }
        days.push(day);
    }
    let meals = days.iter().flat_map(|d| d.meals.iter());
    let snacks = days.iter().flat_map(|d| d.snacks.iter());
    let titles = meals.chain(snacks).map(|m| m.title.clone()).collect();
    let job = rows::queued_job(pool, owner, 2).await;
    sqlx::query(
        "INSERT INTO menus (id, job_id, owner_id, requested_by, request, plan)
         VALUES (gen_random_uuid(), $1, $2, $2, $3, $4)",
    )
    .bind(job)
    .bind(owner)
    .bind(sqlx::types::Json(&request))
    .bind(sqlx::types::Json(domain::menu::MenuPlan { days }))
    .execute(pool)
    .await
    .unwrap();
    titles
}

async fn avoid_titles_of(pool: &PgPool, batch: Uuid, owner: Uuid) -> Vec<String> {
    let request: sqlx::types::Json<GenerationRequest> = sqlx::query_scalar(
        "SELECT request FROM generation_jobs WHERE batch_id = $1 AND owner_id = $2",
    )
    .bind(batch)
    .bind(owner)
    .fetch_one(pool)
    .await
    .unwrap();
    request.0.avoid_titles
}

#[tokio::test]
async fn five_thousand_people_get_one_job_each_once_across_a_crash() {
    testkit::init_tracing();
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let life = life(&db, &redis).await;
    let pool = &db.pool;
    let valid = r#"{"days": 7, "snacks_per_day": 1}"#;
    people(pool, 5_000, valid, true).await;
    people(pool, 2, r#"{"days": "seven"}"#, true).await;
    people(pool, 1, r#"{"no_such_field": 1}"#, true).await;
    people(pool, 2, r#"{"days": 9}"#, true).await;
    people(pool, 4, "{}", false).await;
    let admin = rows::user(pool).await;

    // Three people with menus before: one in the week before their start, one older, and one
    // with two in the week (the later created wins).
    let opted: Vec<(Uuid, i16)> = sqlx::query_as(
        "SELECT user_id, weekly_start_day FROM preferences
         WHERE auto_generate_weekly AND options = $1::jsonb
         ORDER BY user_id LIMIT 3",
    )
    .bind(valid)
    .fetch_all(pool)
    .await
    .unwrap();
    // The period starts on a Monday: ISO weekday n starts n - 1 days in.
    let start_of = |iso: i16| period() + chrono::Days::new(iso as u64 - 1);
    let days = chrono::Days::new;
    let (recent, old, twice) = (opted[0], opted[1], opted[2]);
    let recent_titles = previous_menu(pool, recent.0, start_of(recent.1) - days(7), "Stew").await;
    previous_menu(pool, old.0, start_of(old.1) - days(8), "Old").await;
    previous_menu(pool, twice.0, start_of(twice.1) - days(6), "First").await;
    let twice_titles = previous_menu(pool, twice.0, start_of(twice.1) - days(3), "Second").await;

    // The dry run counts and writes nothing.
    let plan = enqueue::dry_run(pool, period()).await.unwrap();
    let reasons = BTreeMap::from([
        ("invalid_preferences".to_string(), 2),
        ("unreadable_preferences".to_string(), 3),
    ]);
    assert_eq!(
        plan,
        Plan {
            targeted: 5_000,
            skipped: 5,
            skip_reasons: reasons.clone()
        }
    );
    let written: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM batch_runs),
                (SELECT count(*) FROM generation_jobs WHERE batch_id IS NOT NULL)",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(written, (0, 0));

    let Started::Created(run) = enqueue::start_manual(pool, Tz::UTC, period(), admin)
        .await
        .unwrap()
    else {
        panic!("a new run")
    };
    assert_eq!(
        run.fire_at,
        Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 0).unwrap()
    );
    assert_eq!(
        enqueue::start_manual(pool, Tz::UTC, period(), admin)
            .await
            .unwrap(),
        Started::Existing(run.clone())
    );

    // An enqueue in chunks of 100 that dies in its 16th chunk: a lock the test holds on one
    // person of that chunk stops its insert (the foreign key's check waits for it), then the
    // task is killed. 15 chunks (1,500 people) committed.
    let valid = r#"{"days": 7, "snacks_per_day": 1}"#;
    let (blocker, targeted_before): (Uuid, i64) = sqlx::query_as(
        "WITH p AS (SELECT user_id, options, row_number() OVER (ORDER BY user_id) AS n
                    FROM preferences WHERE auto_generate_weekly)
         SELECT (SELECT user_id FROM p WHERE n > 1500 AND options = $1::jsonb
                 ORDER BY n LIMIT 1),
                (SELECT count(*) FROM p WHERE n <= 1500 AND options = $1::jsonb)",
    )
    .bind(valid)
    .fetch_one(pool)
    .await
    .unwrap();
    let mut lock = pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR UPDATE")
        .bind(blocker)
        .execute(&mut *lock)
        .await
        .unwrap();
    let crashing = {
        let life = life.clone();
        tokio::spawn(async move { enqueue::drive(&life, run.id, &enqueue_config(100)).await })
    };
    let targeted = || async {
        let mut conn = pool.acquire().await.unwrap();
        batch_runs::get(&mut conn, run.id)
            .await
            .unwrap()
            .unwrap()
            .targeted
    };
    eventually(Duration::from_secs(60), "15 chunks committed", || async {
        targeted().await == targeted_before
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(targeted().await, targeted_before, "stopped at the lock");
    crashing.abort();
    assert!(crashing.await.unwrap_err().is_cancelled());
    lock.commit().await.unwrap();

    // Its lease is live: nobody else enqueues until it lapses.
    assert_eq!(
        enqueue::drive(&life, run.id, &enqueue_config(1_000))
            .await
            .unwrap(),
        None
    );
    let mut conn = pool.acquire().await.unwrap();
    let cut = batch_runs::get(&mut conn, run.id).await.unwrap().unwrap();
    assert_eq!(cut.status, RunStatus::Enqueuing);
    assert_eq!(
        (cut.targeted, cut.skipped),
        (targeted_before, 1_500 - targeted_before)
    );
    assert_eq!(
        jobs_of(pool, run.id).await,
        targeted_before,
        "counted as committed"
    );
    sqlx::query(
        "UPDATE batch_runs SET lease_expires_at = now() - interval '1 second' WHERE id = $1",
    )
    .bind(run.id)
    .execute(pool)
    .await
    .unwrap();
    let started = Instant::now();
    let done = enqueue::drive(&life, run.id, &enqueue_config(1_000))
        .await
        .unwrap()
        .expect("the resume takes the lapsed lease");
    let resumed_in = started.elapsed();
    assert_eq!(done.status, RunStatus::Enqueued);
    assert!(done.enqueued_at.is_some());
    assert_eq!((done.targeted, done.skipped), (5_000, 5));
    assert_eq!(done.skip_reasons, reasons);
    // Generous: about a second of work, on a loaded two-core machine.
    assert!(resumed_in < Duration::from_secs(60), "{resumed_in:?}");

    let (jobs, owners, attempts, days_total): (i64, i64, i32, i32) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT owner_id), min(max_attempts), min(days_total)
         FROM generation_jobs WHERE batch_id = $1",
    )
    .bind(run.id)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!((jobs, owners, attempts, days_total), (5_000, 5_000, 4, 7));
    // Only opted-in people with usable options; each menu on their weekday, in the period.
    let misplaced: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM generation_jobs j JOIN preferences p ON p.user_id = j.owner_id
         WHERE j.batch_id = $1
           AND (NOT p.auto_generate_weekly
                OR p.options <> $3::jsonb
                OR j.owner_id <> j.requested_by
                OR extract(isodow FROM (j.request->>'start_date')::date) <> p.weekly_start_day
                OR (j.request->>'start_date')::date NOT BETWEEN $2 AND $2 + 6)",
    )
    .bind(run.id)
    .bind(period())
    .bind(valid)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(misplaced, 0);
    let weekdays: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT (request->>'start_date')::date) FROM generation_jobs
         WHERE batch_id = $1",
    )
    .bind(run.id)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(weekdays, 7, "people's weekdays spread over the week");
    assert_eq!(period().weekday(), chrono::Weekday::Mon);

    // Titles of the week before the person's start, from their latest such menu.
    assert_eq!(avoid_titles_of(pool, run.id, recent.0).await, recent_titles);
    assert!(recent_titles.len() == 8, "{recent_titles:?}");
    assert_eq!(avoid_titles_of(pool, run.id, twice.0).await, twice_titles);
    assert_eq!(
        avoid_titles_of(pool, run.id, old.0).await,
        Vec::<String>::new()
    );

    // Every job reached the batch lane, once (the crashed enqueue pushed each chunk it
    // committed).
    let lane = batch_lane(life.queue()).await;
    let unique: HashSet<Uuid> = lane.iter().copied().collect();
    assert_eq!((lane.len(), unique.len()), (5_000, 5_000));

    // Driving again, or starting the same period again, adds nothing.
    assert_eq!(
        enqueue::drive(&life, run.id, &enqueue_config(1_000))
            .await
            .unwrap(),
        None
    );
    assert!(matches!(
        enqueue::start_manual(pool, Tz::UTC, period(), admin).await.unwrap(),
        Started::Existing(existing) if existing.id == run.id
    ));
    assert_eq!(jobs_of(pool, run.id).await, 5_000);
    let summary = batch_runs::summary(&mut conn, run.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(summary.jobs.queued, 5_000);
    assert_eq!(summary.finished_at, None);
    let page = batch_runs::list(&mut conn, None, 10).await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].run.id, run.id);
}
