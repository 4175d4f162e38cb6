//! One job, from delivery to result (DESIGN.md §4): claim it, generate the missing days with no
//! database connection held, checkpoint each valid day, and finish (or fail, retry, snooze, hand
//! back, stop). Every transition goes through `shared::lifecycle`; what it returns tells the
//! queue what becomes of the delivery. While the attempt runs, its lease is renewed on a timer,
//! and it stops at once when told to (cancelled, taken over, shutdown).

use std::sync::Arc;
use std::sync::atomic::AtomicI32;

use chrono::{DateTime, Utc};
use domain::menu::MenuPlan;
use shared::db::jobs::{Claim, ClaimedJob, Release};
use shared::job::{JobError, Usage};
use shared::lifecycle::lease::{Lease, Leases, Stop};
use shared::lifecycle::{Attempt, Lifecycle};
use shared::llm::wait::backoff;
use shared::llm::{ErrorClass, LlmError};
use shared::queue::ack::Settle;
use shared::queue::backend::new_worker_id;
use shared::queue::{Lane, Queue};
use sqlx::PgPool;
use uuid::Uuid;

use crate::call::{Bounds, Caller, Interrupt};
use crate::config::JobConfig;
use crate::generate::Generation;

/// Why a delivery could not be handled at all (the database stayed away longer than a write is
/// retried); the queue delivers it again shortly.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Everything a job needs, shared by all the jobs a worker process runs.
pub struct Pipeline {
    life: Lifecycle,
    leases: Leases,
    caller: Caller,
    config: JobConfig,
    /// This process's worker id ([`new_worker_id`]): written on the attempts it claims, and
    /// the name of its in-flight list and heartbeat in Redis.
    worker_id: String,
}

/// How an attempt ended, short of an infrastructure failure. Each carries what the attempt's
/// calls cost that is not written yet.
enum Ended {
    Succeeded,
    Failed(LlmError, Usage),
    /// Back to the queue until then, without using the attempt.
    Snoozed {
        until: DateTime<Utc>,
        outage: bool,
        usage: Usage,
    },
    /// Told to stop (its lease says why).
    Stopped(Usage),
    /// Cancelled or taken over meanwhile: this attempt's writes were refused.
    FencedOut(Usage),
}

impl Pipeline {
    pub fn new(pool: PgPool, queue: Queue, caller: Caller, config: JobConfig) -> Arc<Self> {
        let life = Lifecycle::new(pool, queue).with_write_retry(config.write_retry());
        Arc::new(Pipeline {
            leases: Leases::new(life.clone(), config.lease()),
            life,
            caller,
            config,
            worker_id: new_worker_id(),
        })
    }

    /// The job's life this pipeline runs jobs through.
    pub fn lifecycle(&self) -> &Lifecycle {
        &self.life
    }

    /// The attempts this process runs (renewed, stopped on cancel or at shutdown).
    pub fn leases(&self) -> &Leases {
        &self.leases
    }

    /// This process's worker id, for its queue backend.
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// The endpoints and prices this process's calls go through (the batch lane's too).
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    pub fn config(&self) -> &JobConfig {
        &self.config
    }

    /// Handles one delivery of a job id; returns what becomes of the delivery.
    #[tracing::instrument(skip_all, fields(job.id = %id, job.attempt), err(level = "warn"))]
    pub async fn process(&self, id: Uuid) -> Result<Settle, PipelineError> {
        let claim = self
            .life
            .claim(
                id,
                &self.worker_id,
                self.config.lease(),
                self.config.deadline(),
                self.config.user_running_cap,
            )
            .await?;
        let claimed = match claim {
            Claim::Gone => return Ok(Settle::Done),
            // Redelivered early (a duplicate push, a live attempt elsewhere): look again then.
            Claim::NotBefore(at) => return Ok(Settle::At(at)),
            // The owner runs their share already: this one waits, other people's jobs go on.
            Claim::OwnerBusy => return Ok(Settle::At(Utc::now() + self.config.user_cap_recheck)),
            Claim::Claimed(c) => *c,
        };
        let attempt = claimed.attempt();
        tracing::Span::current().record("job.attempt", attempt.number);
        metrics::histogram!("job_wait_seconds").record(
            (Utc::now() - claimed.job.queued_at)
                .to_std()
                .unwrap_or_default()
                .as_secs_f64(),
        );
        if attempt.number > claimed.job.max_attempts {
            // Only reachable when attempts keep dying with their process: stop the loop.
            let error = JobError::new(
                "attempts_exhausted",
                "every attempt was interrupted before it could finish",
            );
            return Ok(self
                .life
                .fail(attempt, &error, None, Usage::default())
                .await?);
        }
        let lease = self.leases.hold(attempt.fence);
        let running = std::time::Instant::now();
        let ended = self.run(&claimed, &lease).await?;
        let settle = self.end(&claimed, ended, lease.stop_reason()).await?;
        // Let go of the lease only now: it is renewed while the last write is retried.
        drop(lease);
        metrics::histogram!("job_run_seconds").record(running.elapsed().as_secs_f64());
        Ok(settle)
    }

    /// Generates the missing days and the menu. No connection is held while the model works.
    #[tracing::instrument(skip_all)]
    async fn run(&self, claimed: &ClaimedJob, lease: &Lease) -> Result<Ended, PipelineError> {
        let job = &claimed.job;
        let attempt = claimed.attempt();
        let request = &job.request.0;
        let generation = Generation {
            caller: &self.caller,
            request,
            fence: attempt.fence,
            max_asks: self.config.day_max_asks,
            bounds: Bounds {
                deadline: job
                    .deadline_at
                    .unwrap_or_else(|| Utc::now() + self.config.deadline()),
                snoozes_left: AtomicI32::new(self.config.max_snoozes - job.snoozes),
                stop: lease.token().clone(),
                lane: Lane::of(job.batch_id),
            },
        };
        // The days saved so far: a prefix when generated here, any days the batch lane kept.
        let mut days = claimed.days.clone();
        let missing: Vec<u8> = (1..=request.days)
            .filter(|n| !days.iter().any(|d| d.day_number == *n))
            .collect();
        let mut unsaved = Usage::default();
        for (i, &day_number) in missing.iter().enumerate() {
            let problems = job
                .day_problems
                .0
                .get(&day_number.to_string())
                .cloned()
                .unwrap_or_default();
            let day = match generation
                .day(day_number, &days, problems, &mut unsaved)
                .await
            {
                Ok(day) => day,
                Err(Interrupt::Failed(e)) => return Ok(Ended::Failed(e, unsaved)),
                Err(Interrupt::Snooze { until, outage }) => {
                    return Ok(Ended::Snoozed {
                        until,
                        outage,
                        usage: unsaved,
                    });
                }
                Err(Interrupt::Stopped) => return Ok(Ended::Stopped(unsaved)),
            };
            // The menu's last day, when it is the last generated, is saved with the menu in one
            // statement; every other day at once. Kept in memory and tried again while the
            // database is away: a finished day is never paid for twice because of an outage.
            let saved_with_menu = i + 1 == missing.len() && day_number == request.days;
            if !saved_with_menu {
                let saved = self
                    .life
                    .checkpoint(attempt, &day, unsaved, self.config.lease())
                    .await?;
                if !saved {
                    return Ok(Ended::FencedOut(unsaved));
                }
                unsaved = Usage::default();
            }
            days.push(day);
        }
        days.sort_by_key(|d| d.day_number);
        let plan = MenuPlan { days };
        Ok(match self.life.complete(attempt, &plan, unsaved).await? {
            Some(menu_id) => {
                tracing::info!(menu.id = %menu_id, "menu generated");
                Ended::Succeeded
            }
            None => Ended::FencedOut(Usage::default()),
        })
    }

    /// Writes how the attempt ended; returns what becomes of the delivery.
    #[tracing::instrument(skip_all)]
    async fn end(
        &self,
        claimed: &ClaimedJob,
        ended: Ended,
        stop: Option<Stop>,
    ) -> Result<Settle, PipelineError> {
        let attempt = claimed.attempt();
        let settle = match ended {
            Ended::Succeeded => Settle::Done,
            Ended::Failed(error, usage) => {
                let attempts_left = attempt.number < claimed.job.max_attempts;
                self.fail(attempt, attempts_left, &error, usage).await?
            }
            Ended::Snoozed {
                until,
                outage,
                usage,
            } => {
                tracing::info!(until = %until, outage, "job put back until the provider allows");
                let why = Release::Snoozed { until, outage };
                self.life.release(attempt, why, usage).await?
            }
            Ended::Stopped(usage) if stop == Some(Stop::Shutdown) => {
                tracing::info!("handing the job back unfinished for shutdown");
                self.life
                    .release(attempt, Release::HandedBack, usage)
                    .await?
            }
            Ended::Stopped(usage) | Ended::FencedOut(usage) => {
                tracing::info!("the job was cancelled or taken over; this attempt stopped");
                self.life.stop(attempt, usage).await?
            }
        };
        Ok(settle)
    }

    /// Ends a failed attempt: a permanent error fails the job, anything else retries it later
    /// while attempts remain (not before the server's wait, capped).
    #[tracing::instrument(skip_all)]
    async fn fail(
        &self,
        attempt: Attempt,
        attempts_left: bool,
        error: &LlmError,
        usage: Usage,
    ) -> Result<Settle, PipelineError> {
        let retry_at = match error.class {
            ErrorClass::PermanentForJob => None,
            _ if !attempts_left => None,
            _ => {
                let server_wait = error.wait.unwrap_or_default();
                let wait = backoff(
                    attempt.number as u32,
                    self.config.retry_base_delay,
                    self.config.retry_max_delay,
                )
                .max(server_wait.min(self.config.server_wait_cap));
                Some(Utc::now() + wait)
            }
        };
        tracing::warn!(error.code = error.code, retry_at = ?retry_at, "attempt failed");
        let job_error = JobError::new(error.code, error.message.clone());
        Ok(self.life.fail(attempt, &job_error, retry_at, usage).await?)
    }
}
