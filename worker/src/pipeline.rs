//! One job, from delivery to result (DESIGN.md §4): claim it, generate the missing days with
//! no database connection held, checkpoint each valid day, and finish (or fail, retry, or
//! snooze). Each of those writes is one atomic statement holding a connection for one round
//! trip, and every write is fenced by the attempt.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use shared::db::{
    self,
    jobs::{self, Claim, ClaimedJob, Release},
};
use shared::job::{JobError, JobStatus, Usage};
use shared::llm::wait::backoff;
use shared::llm::{ErrorClass, LlmError};
use shared::menu::MenuPlan;
use shared::queue::Queue;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::call::{Bounds, Caller, Interrupt};
use crate::config::JobConfig;
use crate::generate::Generation;

/// Why a delivery could not be handled at all; the queue delivers it again shortly.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Everything a job needs, shared by all the jobs a worker process runs.
pub struct Pipeline {
    pool: PgPool,
    queue: Queue,
    caller: Caller,
    config: JobConfig,
    /// Written on the job row, to tell which process ran an attempt.
    worker_label: String,
    /// Fires when shutdown can wait no longer: running jobs are handed back unfinished.
    hand_back: CancellationToken,
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
    /// Cancelled or taken over meanwhile: this attempt's writes were refused.
    FencedOut(Usage),
}

impl Pipeline {
    pub fn new(pool: PgPool, queue: Queue, caller: Caller, config: JobConfig) -> Arc<Self> {
        Arc::new(Pipeline {
            pool,
            queue,
            caller,
            config,
            worker_label: shared::queue::backend::new_worker_id(),
            hand_back: CancellationToken::new(),
        })
    }

    pub fn hand_back_token(&self) -> CancellationToken {
        self.hand_back.clone()
    }

    /// Handles one delivery of a job id.
    #[tracing::instrument(skip_all, fields(job.id = %id, job.attempt))]
    pub async fn process(&self, id: Uuid) -> Result<(), PipelineError> {
        let claim = jobs::claim(
            &mut *db::hold(&self.pool, "claim").await?,
            id,
            &self.worker_label,
            self.config.lease(),
            self.config.deadline(),
        )
        .await?;
        let claimed = match claim {
            Claim::Gone => return Ok(()),
            Claim::NotBefore(at) => {
                // Redelivered early (a duplicate push, a live attempt elsewhere): look again then.
                self.queue.schedule(id, at).await?;
                return Ok(());
            }
            Claim::Claimed(c) => *c,
        };
        let attempt = claimed.job.attempts;
        tracing::Span::current().record("job.attempt", attempt);
        metrics::counter!("jobs_claimed_total").increment(1);
        metrics::histogram!("job_wait_seconds").record(
            (Utc::now() - claimed.job.queued_at)
                .to_std()
                .unwrap_or_default()
                .as_secs_f64(),
        );
        let running = std::time::Instant::now();
        if attempt > claimed.job.max_attempts {
            // Only reachable when attempts keep dying with their process: stop the loop.
            let error = JobError::new(
                "attempts_exhausted",
                "every attempt was interrupted before it could finish",
            );
            metrics::counter!("jobs_failed_total", "code" => "attempts_exhausted").increment(1);
            jobs::fail_attempt(
                &mut *db::hold(&self.pool, "fail").await?,
                id,
                attempt,
                &error,
                None,
                Usage::default(),
            )
            .await?;
            self.publish(id).await;
            return Ok(());
        }
        self.publish(id).await;

        let ended = tokio::select! {
            ended = self.run(&claimed) => ended?,
            () = self.hand_back.cancelled() => {
                let released = jobs::release(
                &mut *db::hold(&self.pool, "release").await?,
                    id,
                    attempt,
                    Release::HandedBack,
                    Usage::default(),
                )
                .await?;
                if released {
                    self.queue.enqueue(id).await?;
                    tracing::info!("handed the job back unfinished for shutdown");
                }
                return Ok(());
            }
        };
        metrics::histogram!("job_run_seconds").record(running.elapsed().as_secs_f64());
        match ended {
            Ended::Succeeded => metrics::counter!("jobs_succeeded_total").increment(1),
            Ended::Failed(error, usage) => {
                let attempts_left = attempt < claimed.job.max_attempts;
                self.fail(id, attempt, attempts_left, &error, usage).await?;
            }
            Ended::Snoozed {
                until,
                outage,
                usage,
            } => {
                let released = jobs::release(
                    &mut *db::hold(&self.pool, "release").await?,
                    id,
                    attempt,
                    Release::Snoozed { until, outage },
                    usage,
                )
                .await?;
                if released {
                    metrics::counter!("jobs_snoozed_total").increment(1);
                    self.queue.schedule(id, until).await?;
                    tracing::info!(until = %until, outage, "job put back until the provider allows");
                }
            }
            Ended::FencedOut(usage) => {
                tracing::info!("the job was cancelled or taken over; stopping this attempt");
                jobs::add_usage(
                    &mut *db::hold(&self.pool, "fenced").await?,
                    id,
                    attempt,
                    usage,
                )
                .await?;
            }
        }
        self.publish(id).await;
        Ok(())
    }

    /// Generates the missing days and the menu. No connection is held while the model works.
    async fn run(&self, claimed: &ClaimedJob) -> Result<Ended, PipelineError> {
        let job = &claimed.job;
        let request = &job.request.0;
        let model = self
            .caller
            .llm
            .config()
            .model_for(request.model)
            .to_string();
        let generation = Generation {
            caller: &self.caller,
            model: &model,
            request,
            max_asks: self.config.day_max_asks,
            bounds: Bounds {
                deadline: job
                    .deadline_at
                    .unwrap_or_else(|| Utc::now() + self.config.deadline()),
                snoozes_left: self.config.max_snoozes - job.snoozes,
            },
        };
        let mut days = claimed.days.clone();
        let mut unsaved = Usage::default();
        while days.len() < usize::from(request.days) {
            let day_number = days.len() as u8 + 1;
            let day = match generation.day(day_number, &days, &mut unsaved).await {
                Ok(day) => day,
                Err(Interrupt::Failed(e)) => return Ok(Ended::Failed(e, unsaved)),
                Err(Interrupt::Snooze { until, outage }) => {
                    return Ok(Ended::Snoozed {
                        until,
                        outage,
                        usage: unsaved,
                    });
                }
            };
            let saved = jobs::save_day(
                &mut *db::hold(&self.pool, "checkpoint").await?,
                job.id,
                job.attempts,
                &day,
                unsaved,
                self.config.lease(),
            )
            .await?;
            if !saved {
                return Ok(Ended::FencedOut(unsaved));
            }
            unsaved = Usage::default();
            days.push(day);
            self.publish(job.id).await;
        }
        let plan = MenuPlan { days };
        let menu = jobs::complete(
            &mut *db::hold(&self.pool, "complete").await?,
            job.id,
            job.attempts,
            &plan,
            unsaved,
        )
        .await?;
        Ok(match menu {
            Some(menu_id) => {
                tracing::info!(menu.id = %menu_id, "menu generated");
                Ended::Succeeded
            }
            None => Ended::FencedOut(Usage::default()),
        })
    }

    /// Ends a failed attempt: a permanent error fails the job, anything else retries it later
    /// while attempts remain.
    async fn fail(
        &self,
        id: Uuid,
        attempt: i32,
        attempts_left: bool,
        error: &LlmError,
        usage: Usage,
    ) -> Result<(), PipelineError> {
        let retry_at = match error.class {
            ErrorClass::PermanentForJob => None,
            _ if !attempts_left => None,
            _ => {
                let wait = backoff(
                    attempt as u32,
                    self.config.retry_base_delay(),
                    self.config.retry_max_delay(),
                )
                .max(error.wait.unwrap_or_default());
                Some(Utc::now() + wait)
            }
        };
        let job_error = JobError::new(error.code, error.message.clone());
        let status = jobs::fail_attempt(
            &mut *db::hold(&self.pool, "fail").await?,
            id,
            attempt,
            &job_error,
            retry_at,
            usage,
        )
        .await?;
        tracing::warn!(error.code = error.code, job.status = ?status, "attempt failed");
        match status {
            Some(JobStatus::Failed) => {
                metrics::counter!("jobs_failed_total", "code" => error.code).increment(1)
            }
            Some(JobStatus::Retrying) => {
                metrics::counter!("jobs_retried_total", "code" => error.code).increment(1)
            }
            _ => {}
        }
        if let (Some(JobStatus::Retrying), Some(at)) = (status, retry_at) {
            self.queue.schedule(id, at).await?;
        }
        Ok(())
    }

    /// Tells long-pollers the job changed; losing one such message only delays a poller.
    async fn publish(&self, id: Uuid) {
        if let Err(e) = self.queue.publish_job_event(id).await {
            tracing::debug!(error = %e, "could not publish a job event");
        }
    }
}
