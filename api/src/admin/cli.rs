//! `api admin …`: what an operator does from a shell, on the stores directly (no running API
//! needed): create an account (an admin, usually), requeue or cancel jobs by filter with a
//! progress bar, print the statistics, and run the weekly batch from an external scheduler (a
//! Kubernetes CronJob) or read its runs.

use std::io::BufRead;
use std::time::Duration;

use anyhow::Context;
use chrono::NaiveDate;
use shared::batch::RunStatus;
use shared::batch::enqueue::{self, EnqueueConfig, Started};
use shared::batch::schedule::ScheduleConfig;
use shared::config::{DatabaseConfig, RedisConfig};
use shared::db::users::{self, Role};
use shared::lifecycle::Lifecycle;
use shared::queue::Queue;
use telemetry::LogConfig;
use uuid::Uuid;

use super::filter::FilterArgs;
use super::ops::{self, Stores};
use crate::pagination;

/// How often `batch run` looks again at a batch another process is enqueuing.
const ENQUEUE_POLL: Duration = Duration::from_secs(1);

#[derive(clap::Args, Debug)]
pub struct AdminArgs {
    #[command(subcommand)]
    pub command: AdminCommand,
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub redis: RedisConfig,
    #[command(flatten)]
    pub log: LogConfig,
}

#[derive(clap::Subcommand, Debug)]
pub enum AdminCommand {
    /// Create an account. The password is read from $ADMIN_PASSWORD, or else from the first line
    /// of standard input.
    CreateUser {
        #[arg(long)]
        email: String,
        #[arg(long, value_enum, default_value = "admin")]
        role: RoleArg,
    },
    /// Requeue every job the filter matches that is not running or succeeded (failed,
    /// cancelled, or waiting: queued again at once).
    Requeue {
        /// The admin the action is recorded for.
        #[arg(long = "as")]
        admin: String,
        #[command(flatten)]
        filter: FilterArgs,
        /// Give each job all its attempts again (default: one more attempt).
        #[arg(long)]
        reset_attempts: bool,
    },
    /// Cancel every unfinished job the filter matches.
    Cancel {
        #[arg(long = "as")]
        admin: String,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Print the statistics of the admin overview, as JSON.
    Stats,
    /// Run the weekly batch by hand, or read its runs.
    Batch {
        #[command(subcommand)]
        command: BatchCommand,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum BatchCommand {
    /// Start the batch for a period and create its jobs before exiting (a worker's scheduler
    /// need not be up), then print the batch as JSON. A batch already started for the period is
    /// finished if it is still being enqueued, and printed; nothing runs twice.
    Run {
        /// The admin the start is recorded for.
        #[arg(long = "as")]
        admin: String,
        /// The period's first day (YYYY-MM-DD): each person's menu starts on their weekday
        /// within the seven days from it. Tomorrow in BATCH_TIMEZONE when absent.
        #[arg(long)]
        period_start: Option<NaiveDate>,
        /// Print, as JSON, whom the batch would generate for and whom it would skip, and
        /// change nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        schedule: ScheduleConfig,
        #[command(flatten)]
        enqueue: EnqueueConfig,
    },
    /// Print batch runs, newest first, as JSON (`items` and the `next_cursor` for `--cursor`).
    List {
        /// Runs per page.
        #[arg(
            long,
            default_value_t = pagination::DEFAULT_PAGE_SIZE,
            value_parser = clap::value_parser!(i64).range(pagination::PAGE_SIZE.0..=pagination::PAGE_SIZE.1)
        )]
        limit: i64,
        /// The `next_cursor` of the page before.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Print one batch run, with its jobs by status and their cost, as JSON.
    Show { id: Uuid },
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum RoleArg {
    User,
    Coach,
    Admin,
}

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    telemetry::init(&args.log);
    let db = shared::db::connect(&args.database)
        .await
        .context("connect to PostgreSQL")?;
    if let AdminCommand::CreateUser { email, role } = &args.command {
        return create_user(&db, email, *role).await;
    }
    let queue = Queue::connect(&args.redis)
        .await
        .context("connect to Redis")?;
    let stores = Stores {
        db: &db,
        queue: &queue,
    };
    match args.command {
        AdminCommand::CreateUser { .. } => unreachable!("handled above"),
        AdminCommand::Requeue {
            admin,
            filter,
            reset_attempts,
        } => {
            let admin_id = admin_id(&db, &admin).await?;
            let bar = indicatif::ProgressBar::new(0).with_message("requeued");
            bar.set_style(
                indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg} ({eta})")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let progress = |done: usize, total: usize| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            };
            let n =
                ops::requeue_matching(stores, admin_id, &filter.into(), reset_attempts, &progress)
                    .await?;
            bar.finish_and_clear();
            println!("requeued {n} job(s)");
        }
        AdminCommand::Cancel { admin, filter } => {
            let admin_id = admin_id(&db, &admin).await?;
            let n = ops::cancel_matching(stores, admin_id, &filter.into()).await?;
            println!("cancelled {n} job(s)");
        }
        AdminCommand::Stats => {
            let stats = ops::stats(stores).await?;
            println!("{}", serde_json::to_string_pretty(&stats)?);
        }
        AdminCommand::Batch { command } => batch(stores, command).await?,
    }
    Ok(())
}

async fn batch(stores: Stores<'_>, command: BatchCommand) -> anyhow::Result<()> {
    match command {
        BatchCommand::Run {
            admin,
            period_start,
            dry_run,
            schedule,
            enqueue,
        } => {
            let admin_id = admin_id(stores.db, &admin).await?;
            let tz = schedule.timezone;
            let period_start = ops::batch_period(tz, period_start)?;
            if dry_run {
                let plan = enqueue::dry_run(stores.db, period_start).await?;
                println!("{}", serde_json::to_string_pretty(&plan)?);
                return Ok(());
            }
            let id =
                match ops::start_batch(stores, admin_id, tz, period_start, schedule.lane).await? {
                    Started::Created(run) => {
                        eprintln!("started batch {} for {period_start}", run.id);
                        run.id
                    }
                    Started::Existing(run) => {
                        eprintln!(
                            "a batch for {period_start} was started before: {} ({})",
                            run.id,
                            run.status.as_str()
                        );
                        run.id
                    }
                };
            let life = Lifecycle::new(stores.db.clone(), stores.queue.clone());
            enqueue_to_the_end(&life, id, &enqueue).await?;
            let summary = ops::batch(stores, id).await?;
            println!("{}", serde_json::to_string_pretty(&summary)?);
        }
        BatchCommand::List { limit, cursor } => {
            let cursor = cursor
                .as_deref()
                .map(pagination::decode)
                .transpose()
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let (items, next_cursor) = ops::batches_page(stores, cursor, limit).await?;
            let page = serde_json::json!({ "items": items, "next_cursor": next_cursor });
            println!("{}", serde_json::to_string_pretty(&page)?);
        }
        BatchCommand::Show { id } => {
            let summary = ops::batch(stores, id).await?;
            println!("{}", serde_json::to_string_pretty(&summary)?);
        }
    }
    Ok(())
}

/// Enqueues the batch here until it is `enqueued`. While another process holds its enqueue (a
/// worker's scheduler took it first), waits for that one to finish, or takes over where it
/// stopped if its lease lapses.
async fn enqueue_to_the_end(
    life: &Lifecycle,
    id: Uuid,
    config: &EnqueueConfig,
) -> anyhow::Result<()> {
    let mut told = false;
    loop {
        if enqueue::drive(life, id, config).await?.is_some() {
            return Ok(());
        }
        let run =
            shared::db::batch_runs::get(&mut *shared::db::hold(life.pool(), "cli").await?, id)
                .await?
                .with_context(|| format!("batch {id} is gone"))?;
        if run.status != RunStatus::Enqueuing {
            return Ok(());
        }
        if !told {
            eprintln!("another process is enqueuing batch {id}; waiting for it");
            told = true;
        }
        tokio::time::sleep(ENQUEUE_POLL).await;
    }
}

async fn create_user(db: &sqlx::PgPool, email: &str, role: RoleArg) -> anyhow::Result<()> {
    let password = match std::env::var("ADMIN_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    if let Some(problem) = shared::password::problem("the password", &password, email) {
        anyhow::bail!(problem.message);
    }
    let hash = tokio::task::spawn_blocking(move || shared::password::hash(&password))
        .await?
        .map_err(|e| anyhow::anyhow!("hash the password: {e}"))?;
    let role = match role {
        RoleArg::User => Role::User,
        RoleArg::Coach => Role::Coach,
        RoleArg::Admin => Role::Admin,
    };
    let user = users::insert(
        &mut *shared::db::hold(db, "cli").await?,
        email.trim(),
        &hash,
        role,
    )
    .await
    .map_err(|e| match shared::db::unique_violation(&e) {
        Some(_) => anyhow::anyhow!("an account with this email already exists"),
        None => e.into(),
    })?;
    println!("created {} ({:?}) {}", user.email, user.role, user.id);
    Ok(())
}

async fn admin_id(db: &sqlx::PgPool, email: &str) -> anyhow::Result<Uuid> {
    let user = users::find_by_email(&mut *shared::db::hold(db, "cli").await?, email)
        .await?
        .with_context(|| format!("no account {email}"))?;
    anyhow::ensure!(user.role == Role::Admin, "{email} is not an admin");
    Ok(user.id)
}
