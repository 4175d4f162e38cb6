//! `api admin …` as an operator (or an external scheduler, for the weekly batch) runs it: the
//! real binary, against a database and a Redis prefix of the test's own.

use std::process::{Command, Output};

use chrono::Weekday;
use domain::request::{GenerationRequest, MenuOptions, default_start_date};
use secrecy::ExposeSecret;
use shared::batch::enqueue::{self, Started};
use shared::db::jobs::{self, Claim, Inserted, NewJob};
use shared::db::preferences::{self, Preferences};
use shared::db::users::{self, Role};
use shared::job::{JobError, Usage};
use shared::queue::Queue;
use testkit::{TestDb, TestRedis};
use uuid::Uuid;

fn api(db: &TestDb, redis: &TestRedis, args: &[&str], password: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_api"));
    command
        .arg("admin")
        .args(args)
        .env("DATABASE_URL", db.url())
        .env("REDIS_URL", redis.config().url.expose_secret())
        .env("REDIS_PREFIX", &redis.prefix)
        .env("RUST_LOG", "warn")
        .env_remove("ADMIN_PASSWORD");
    if let Some(p) = password {
        command.env("ADMIN_PASSWORD", p);
    }
    command.output().expect("run api admin")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn failed_job(db: &TestDb, owner: Uuid, code: &str) -> Uuid {
    let mut conn = db.pool.acquire().await.unwrap();
    let request =
        GenerationRequest::from_options(&MenuOptions::default(), default_start_date()).unwrap();
    let job = NewJob {
        owner_id: owner,
        requested_by: owner,
        request,
        max_attempts: 3,
        idempotency_key: None,
        batch_id: None,
    };
    let Inserted::Created(row) = jobs::insert(&mut conn, &job).await.unwrap() else {
        unreachable!("no idempotency key")
    };
    let ten_minutes = std::time::Duration::from_secs(600);
    let request = jobs::ClaimRequest {
        id: row.id,
        worker_id: "w".into(),
        lease: ten_minutes,
        deadline: ten_minutes,
        owner_cap: 0,
    };
    let Claim::Claimed(claimed) = jobs::claim(&mut conn, &request).await.unwrap() else {
        panic!("claimable");
    };
    jobs::fail_attempt(
        &mut conn,
        claimed.fence,
        &JobError::new(code, "broke"),
        None,
        Usage::default(),
    )
    .await
    .unwrap();
    row.id
}

#[tokio::test]
async fn an_operator_creates_an_admin_requeues_by_filter_and_reads_the_statistics() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();

    let created = api(
        &db,
        &redis,
        &["create-user", "--email", "ops@example.com"],
        Some("long enough secret"),
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let admin = users::find_by_email(&mut db.pool.acquire().await.unwrap(), "ops@example.com")
        .await
        .unwrap()
        .expect("the account exists");
    assert_eq!(admin.role, Role::Admin);
    assert!(shared::password::verify(
        "long enough secret",
        &admin.password_hash
    ));
    assert!(
        !stdout(&created).contains("long enough secret"),
        "the password is never printed"
    );

    let owner = users::insert(
        &mut db.pool.acquire().await.unwrap(),
        "cook@example.com",
        "x",
        Role::User,
    )
    .await
    .unwrap();
    let timeouts = [
        failed_job(&db, owner.id, "llm_timeout").await,
        failed_job(&db, owner.id, "llm_timeout").await,
    ];
    let refusal = failed_job(&db, owner.id, "llm_refusal").await;

    let requeued = api(
        &db,
        &redis,
        &[
            "requeue",
            "--as",
            "ops@example.com",
            "--status",
            "failed",
            "--error-code",
            "llm_timeout",
        ],
        None,
    );
    assert!(
        requeued.status.success(),
        "{}",
        String::from_utf8_lossy(&requeued.stderr)
    );
    assert!(
        stdout(&requeued).contains("requeued 2 job(s)"),
        "{}",
        stdout(&requeued)
    );
    let queue = Queue::connect(&redis.config()).await.unwrap();
    assert_eq!(queue.ready_len().await.unwrap(), 2);
    for job in timeouts {
        let status: String =
            sqlx::query_scalar("SELECT status::text FROM generation_jobs WHERE id = $1")
                .bind(job)
                .fetch_one(&db.pool)
                .await
                .unwrap();
        assert_eq!(status, "retrying");
    }
    let untouched: String =
        sqlx::query_scalar("SELECT status::text FROM generation_jobs WHERE id = $1")
            .bind(refusal)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(untouched, "failed");
    let recorded: (String, i32) =
        sqlx::query_as("SELECT action, affected FROM admin_actions WHERE admin_id = $1")
            .bind(admin.id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(recorded, ("requeue_matching".into(), 2));

    let stats = api(&db, &redis, &["stats"], None);
    assert!(stats.status.success());
    let stats: serde_json::Value = serde_json::from_str(&stdout(&stats)).expect("stats are JSON");
    assert_eq!(stats["jobs"]["by_status"]["retrying"], 2);
    assert_eq!(stats["jobs"]["by_status"]["failed"], 1);
    assert_eq!(stats["queue"]["ready"], 2);
}

#[tokio::test]
async fn the_command_refuses_what_it_should() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let short = api(
        &db,
        &redis,
        &["create-user", "--email", "a@example.com"],
        Some("short"),
    );
    assert!(!short.status.success(), "a short password is refused");
    let created = api(
        &db,
        &redis,
        &["create-user", "--email", "a@example.com"],
        Some("a long enough passphrase"),
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let no_filter = api(&db, &redis, &["requeue", "--as", "a@example.com"], None);
    assert!(!no_filter.status.success(), "a requeue needs a filter");
    assert!(String::from_utf8_lossy(&no_filter.stderr).contains("filter"));
    let plain = api(
        &db,
        &redis,
        &["create-user", "--email", "u@example.com", "--role", "user"],
        Some("a long enough passphrase"),
    );
    assert!(
        plain.status.success(),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
    for (who, why) in [
        ("nobody@example.com", "no account"),
        ("u@example.com", "not an admin"),
    ] {
        let refused = api(
            &db,
            &redis,
            &["requeue", "--as", who, "--status", "failed"],
            None,
        );
        assert!(!refused.status.success(), "only an admin account may act");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains(why), "{who}: {stderr}");
    }
}

/// An account of `role`, straight in the database.
async fn account(db: &TestDb, email: &str, role: Role) -> Uuid {
    users::insert(&mut db.pool.acquire().await.unwrap(), email, "x", role)
        .await
        .unwrap()
        .id
}

/// `n` people opted in to the weekly batch, their menus starting on Tuesdays.
async fn opted_in(db: &TestDb, n: usize) {
    for _ in 0..n {
        let id = testkit::rows::user(&db.pool).await;
        let stored = Preferences {
            auto_generate_weekly: true,
            weekly_start_day: Weekday::Tue,
            ..Preferences::default()
        };
        preferences::put(&mut db.pool.acquire().await.unwrap(), id, &stored)
            .await
            .unwrap();
    }
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

fn json_of(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout(output)).expect("JSON on standard output")
}

#[tokio::test]
async fn an_external_scheduler_runs_the_weekly_batch_to_the_end_once_per_period() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    account(&db, "ops@example.com", Role::Admin).await;
    account(&db, "cook@example.com", Role::User).await;
    opted_in(&db, 3).await;
    let period = (chrono::Utc::now() + chrono::Duration::days(6))
        .date_naive()
        .to_string();
    let run = [
        "batch",
        "run",
        "--as",
        "ops@example.com",
        "--period-start",
        &period,
    ];

    let plan = json_of(&api(
        &db,
        &redis,
        &[&run[..], &["--dry-run"]].concat(),
        None,
    ));
    assert_eq!(plan["targeted"], 3);
    assert_eq!(
        count(&db, "SELECT count(*) FROM batch_runs").await,
        0,
        "a dry run writes nothing"
    );

    let batch = json_of(&api(&db, &redis, &run, None));
    let id = batch["id"].as_str().unwrap().to_string();
    assert_eq!(
        batch["status"], "enqueued",
        "the command finished the enqueue"
    );
    assert_eq!(batch["period_start"], period.as_str());
    assert_eq!(
        (&batch["targeted"], &batch["jobs"]["queued"]),
        (&3.into(), &3.into())
    );
    let jobs = format!("SELECT count(*) FROM generation_jobs WHERE batch_id = '{id}'");
    assert_eq!(count(&db, &jobs).await, 3);
    let queue = Queue::connect(&redis.config()).await.unwrap();
    assert_eq!(
        queue.ready_len().await.unwrap(),
        3,
        "queued for the workers"
    );
    let recorded = "SELECT count(*) FROM admin_actions WHERE action = 'batch_start'";
    assert_eq!(count(&db, recorded).await, 1);

    let again = api(&db, &redis, &run, None);
    assert_eq!(json_of(&again)["id"], id.as_str(), "the same batch");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("started before"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(count(&db, &jobs).await, 3, "nobody got a second job");
    assert_eq!(count(&db, recorded).await, 1);

    let listed = json_of(&api(&db, &redis, &["batch", "list"], None));
    assert_eq!(listed["items"][0]["id"], id.as_str());
    assert!(listed["next_cursor"].is_null());
    let shown = json_of(&api(&db, &redis, &["batch", "show", &id], None));
    assert_eq!(
        (&shown["id"], &shown["jobs"]["queued"]),
        (&id.as_str().into(), &3.into())
    );

    let missing = api(
        &db,
        &redis,
        &["batch", "show", &Uuid::new_v4().to_string()],
        None,
    );
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no such batch"));
    for (args, why) in [
        (
            vec!["batch", "run", "--as", "cook@example.com"],
            "not an admin",
        ),
        (
            vec![
                "batch",
                "run",
                "--as",
                "ops@example.com",
                "--period-start",
                "2000-01-03",
            ],
            "period_start must be between",
        ),
        (vec!["batch", "list", "--limit", "0"], "--limit"),
    ] {
        let refused = api(&db, &redis, &args, None);
        assert!(!refused.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains(why), "{args:?}: {stderr}");
    }
    assert_eq!(count(&db, "SELECT count(*) FROM batch_runs").await, 1);
}

#[tokio::test]
async fn a_batch_started_elsewhere_and_not_enqueued_yet_is_enqueued_by_the_command() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let admin = account(&db, "ops@example.com", Role::Admin).await;
    opted_in(&db, 2).await;
    let period = (chrono::Utc::now() + chrono::Duration::days(1)).date_naive();
    // As the API starts one: recorded, and left for a worker's scheduler, of which none runs.
    let Started::Created(run) = enqueue::start_manual(&db.pool, chrono_tz::UTC, period, admin)
        .await
        .unwrap()
    else {
        panic!("a new batch");
    };

    // No --period-start: tomorrow, the same period.
    let batch = json_of(&api(
        &db,
        &redis,
        &["batch", "run", "--as", "ops@example.com"],
        None,
    ));
    assert_eq!(batch["id"], run.id.to_string());
    assert_eq!(batch["status"], "enqueued");
    assert_eq!(batch["jobs"]["queued"], 2);
}

#[tokio::test]
async fn a_batch_run_on_the_provider_lane_leaves_its_jobs_to_the_workers_batch_lane() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    account(&db, "ops@example.com", Role::Admin).await;
    opted_in(&db, 2).await;
    let batch = json_of(&api(
        &db,
        &redis,
        &[
            "batch",
            "run",
            "--as",
            "ops@example.com",
            "--lane",
            "provider",
        ],
        None,
    ));
    assert_eq!(batch["lane"], "provider");
    assert_eq!(batch["status"], "enqueued");
    assert_eq!(batch["jobs"]["queued"], 2);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM generation_jobs WHERE provider_lane"
        )
        .await,
        2,
        "both wait for the batch lane"
    );
    let queue = shared::queue::Queue::connect(&redis.config())
        .await
        .unwrap();
    assert_eq!(queue.ready_lens().await.unwrap(), (0, 0), "nothing pushed");
}

#[test]
fn the_server_refuses_to_start_with_a_guessable_jwt_secret_and_does_not_print_it() {
    for weak in ["too-short", "changeme-changeme-changeme-changeme"] {
        let output = Command::new(env!("CARGO_BIN_EXE_api"))
            .arg("serve")
            .env("JWT_SECRET", weak)
            .env("API_BIND", "127.0.0.1:0")
            // Refused before any connection is tried: nothing listens here.
            .env("DATABASE_URL", "postgres://postgres@127.0.0.1:9/none")
            .env("RUST_LOG", "warn")
            .output()
            .expect("run api serve");
        assert!(!output.status.success(), "{weak}");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(said.contains("JWT_SECRET"), "{said}");
        assert!(!said.contains(weak), "{said}");
    }
}
