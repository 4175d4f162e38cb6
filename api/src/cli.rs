//! `api admin …`: what an operator does from a shell, on the stores directly (no running API
//! needed): create an account (an admin, usually), requeue or cancel jobs by filter with a
//! progress bar, and print the statistics.

use std::io::BufRead;

use anyhow::Context;
use chrono::{DateTime, Utc};
use shared::config::{DatabaseConfig, LogConfig, RedisConfig};
use shared::db::admin::JobFilter;
use shared::db::users::{self, Role};
use shared::job::JobStatus;
use shared::queue::Queue;
use uuid::Uuid;

use crate::admin::{self, Stores};

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
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum RoleArg {
    User,
    Coach,
    Admin,
}

#[derive(clap::Args, Debug)]
pub struct FilterArgs {
    /// Jobs in this state: queued, running, retrying, succeeded, failed or cancelled.
    #[arg(long, value_parser = status)]
    status: Option<JobStatus>,
    /// Jobs whose last error has this code, such as llm_server_error.
    #[arg(long)]
    error_code: Option<String>,
    /// The person the jobs are for.
    #[arg(long)]
    user_id: Option<Uuid>,
    /// Jobs of one scheduled batch.
    #[arg(long)]
    batch_id: Option<Uuid>,
    /// Jobs created at or after this time (RFC 3339, such as 2026-11-26T09:00:00Z).
    #[arg(long)]
    created_after: Option<DateTime<Utc>>,
    /// Jobs created before this time (RFC 3339).
    #[arg(long)]
    created_before: Option<DateTime<Utc>>,
}

fn status(raw: &str) -> Result<JobStatus, String> {
    serde_json::from_value(serde_json::Value::String(raw.to_string()))
        .map_err(|_| "one of queued, running, retrying, succeeded, failed, cancelled".to_string())
}

impl FilterArgs {
    fn filter(self) -> JobFilter {
        JobFilter {
            status: self.status,
            error_code: self.error_code,
            user_id: self.user_id,
            batch_id: self.batch_id,
            created_after: self.created_after,
            created_before: self.created_before,
        }
    }
}

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    shared::telemetry::init(&args.log);
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
            let n = admin::requeue_matching(
                stores,
                admin_id,
                &filter.filter(),
                reset_attempts,
                &progress,
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            bar.finish_and_clear();
            println!("requeued {n} job(s)");
        }
        AdminCommand::Cancel { admin, filter } => {
            let admin_id = admin_id(&db, &admin).await?;
            let n = admin::cancel_matching(stores, admin_id, &filter.filter())
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("cancelled {n} job(s)");
        }
        AdminCommand::Stats => {
            let stats = admin::stats(stores)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", serde_json::to_string_pretty(&stats)?);
        }
    }
    Ok(())
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
    anyhow::ensure!(
        (8..=128).contains(&password.chars().count()),
        "the password must be 8 to 128 characters"
    );
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
