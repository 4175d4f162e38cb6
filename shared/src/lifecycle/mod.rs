//! A job's life in one place (DESIGN.md §3, §4): every transition (submit, claim, checkpoint,
//! complete, retry or fail, snooze, hand back, cancel, requeue) is one verb here that runs its
//! statement (`db::jobs`), then its queue side effect and its event, and counts it. Beside them:
//! the leases that keep running attempts alive (`lease`) and the reconciler that gives Redis back
//! what it lost (`reconcile`).
//!
//! One failure policy for all of them:
//! 1. **PostgreSQL decides.** A transition is one statement (or one short transaction with its
//!    audit record); an attempt's writes are fenced, so a stale attempt changes nothing. Submits,
//!    claims, checkpoints and completions that arrive together share one statement and one
//!    commit (`group`), each still answered on its own.
//! 2. **A statement that failed for a reason of the moment** (`db::is_transient`: the database
//!    restarting or unreachable, a lost connection) is tried again with backoff for up to
//!    `write_retry`, holding what it would write in memory (a finished day is never thrown away
//!    because of an outage). The API runs with no retry and answers 503 at once instead.
//! 3. **The queue follows the database and never fails a transition.** A push that fails is
//!    logged and counted (`queue_push_failures_total`); the reconciler pushes every due job that
//!    Redis does not hold within its interval. A worker's own transitions reach the queue through
//!    the delivery's settlement ([`Settle`]), atomically with its acknowledgement.
//! 4. **Events are hints** (`events`): a lost one delays a long poll until its timeout, or a
//!    cancelled attempt until its next lease renewal.

pub mod group;
pub mod lease;
pub mod reconcile;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use crate::db::admin::{self, JobFilter};
use crate::db::jobs::{
    self, Cancelled, Claim, ClaimRequest, ClaimedJob, Completion, DayWrite, Fence, Inserted,
    NewJob, Release, Target,
};
use crate::db::{self, Held};
use crate::events;
use crate::job::{JobError, JobStatus, Usage};
use crate::queue::ack::Settle;
use crate::queue::{Lane, Queue};
use domain::menu::{Day, MenuPlan};
use group::{Group, Writes};

/// Ids pushed to Redis per round trip when many jobs change at once.
const PUSH_CHUNK: usize = 1_000;

/// Groups of one kind of write that run at once: one commits while the next one forms. More
/// would split the writes waiting into smaller groups and take more of the pool.
const GROUPS_AT_ONCE: usize = 2;

/// Writes per group at most: a group's statement stays a few milliseconds long.
const GROUP_MAX: usize = 64;

/// The job's life over the two stores. Cheap to clone.
#[derive(Clone)]
pub struct Lifecycle {
    writer: Writer,
    queue: Queue,
    /// Concurrent writes of the busiest transitions, each kind sharing one statement and one
    /// commit (`group`).
    submits: Group<NewJob, Inserted>,
    claims: Group<ClaimRequest, (Claim, bool)>,
    checkpoints: Group<DayWrite, (bool, bool)>,
    completions: Group<Completion, (Option<Uuid>, bool)>,
}

/// Runs statements on pooled connections, with the failure policy's retry.
#[derive(Clone)]
struct Writer {
    pool: PgPool,
    /// How long a statement that failed for a reason of the moment is tried again; zero tries
    /// once (the API, which answers 503 instead).
    write_retry: Duration,
}

/// An admin action to record with the transition, in its transaction.
#[derive(Debug, Clone, Copy)]
pub struct Audit<'a> {
    pub admin_id: Uuid,
    /// `requeue`, `requeue_matching`, `cancel`, `cancel_matching`.
    pub action: &'static str,
    pub filter: Option<&'a JobFilter>,
}

/// Told how many requeued jobs have been pushed to the queue so far, out of how many.
pub type Progress<'a> = &'a (dyn Fn(usize, usize) + Sync);

/// For callers that do not show progress.
pub fn no_progress(_: usize, _: usize) {}

/// A running attempt, as its writes name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    pub fence: Fence,
    /// The job's attempt count at the claim (its budget; it may repeat after a requeue with
    /// reset, unlike the fence).
    pub number: i32,
}

impl ClaimedJob {
    pub fn attempt(&self) -> Attempt {
        Attempt {
            fence: self.fence,
            number: self.job.attempts,
        }
    }
}

impl Lifecycle {
    /// The job's life over `pool` and `queue`, each statement tried once.
    pub fn new(pool: PgPool, queue: Queue) -> Lifecycle {
        Lifecycle::with(
            Writer {
                pool,
                write_retry: Duration::ZERO,
            },
            queue,
        )
    }

    /// Tries statements that fail for a reason of the moment again for up to `retry`.
    pub fn with_write_retry(self, retry: Duration) -> Lifecycle {
        Lifecycle::with(
            Writer {
                pool: self.writer.pool,
                write_retry: retry,
            },
            self.queue,
        )
    }

    fn with(writer: Writer, queue: Queue) -> Lifecycle {
        let (w, q) = (writer.clone(), queue.clone());
        let submits = Group::new(
            "submit",
            GROUPS_AT_ONCE,
            GROUP_MAX,
            move |new: Writes<NewJob>| {
                let (w, q) = (w.clone(), q.clone());
                async move {
                    let (inserted, _) = w
                        .write("submit", |mut conn| {
                            let new = &new;
                            async move { jobs::insert_many(&mut conn, new).await }
                        })
                        .await?;
                    // The connection is back in the pool before Redis is waited on.
                    let created = |lane: Lane| -> Vec<Uuid> {
                        inserted
                            .iter()
                            .filter_map(|i| match i {
                                Inserted::Created(row) if Lane::of(row.batch_id) == lane => {
                                    Some(row.id)
                                }
                                _ => None,
                            })
                            .collect()
                    };
                    for lane in [Lane::Interactive, Lane::Batch] {
                        let ids = created(lane);
                        if !ids.is_empty() {
                            metrics::counter!("jobs_enqueued_total").increment(ids.len() as u64);
                            push(&q, lane, &ids, &no_progress).await;
                        }
                    }
                    Ok(inserted)
                }
            },
        );
        let claims = writer.group("claim", |conn, asked| {
            Box::pin(jobs::claim_many(conn, asked))
        });
        let checkpoints = writer.group("checkpoint", |conn, days| {
            Box::pin(jobs::save_days(conn, days))
        });
        let completions = writer.group("complete", |conn, done| {
            Box::pin(jobs::complete_many(conn, done))
        });
        Lifecycle {
            writer,
            queue,
            submits,
            claims,
            checkpoints,
            completions,
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.writer.pool
    }

    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    // ---- Transitions people make (the API, the dashboard, the admin command) ----

    /// Creates a queued job and pushes it, or finds the job created earlier with the same
    /// idempotency key. Submissions arriving together are inserted in one statement and one
    /// commit, then pushed in one round trip; no connection waits on Redis.
    #[tracing::instrument(skip_all, fields(user_id = %job.owner_id), err(level = "warn"))]
    pub async fn submit(&self, job: NewJob) -> Result<Inserted, sqlx::Error> {
        self.submits.run(job).await
    }

    /// Cancels the unfinished jobs of `target` (recording `audit` in the same transaction), then
    /// tells the workers running them to stop and long polls that they changed. Returns the
    /// cancelled ids; empty when a one-job target was not cancellable (then nothing is
    /// recorded).
    pub async fn cancel(
        &self,
        target: Target<'_>,
        audit: Option<Audit<'_>>,
    ) -> Result<Vec<Uuid>, sqlx::Error> {
        let mut held = db::hold(self.pool(), "cancel").await?;
        let mut tx = held.begin().await?;
        let cancelled = jobs::cancel(&mut tx, target).await?;
        if !record(&mut tx, target, audit, cancelled.len()).await? {
            return Ok(Vec::new());
        }
        tx.commit().await?;
        drop(held);
        metrics::counter!("jobs_cancelled_total").increment(cancelled.len() as u64);
        let fences: Vec<Fence> = cancelled
            .iter()
            .filter_map(|c| c.fence.map(|token| Fence { job: c.id, token }))
            .collect();
        for chunk in fences.chunks(PUSH_CHUNK) {
            if let Err(e) = events::attempts_cancelled(self.queue.redis(), chunk).await {
                tracing::warn!(error = %e, "could not tell workers about cancellations; their lease renewal will");
                break;
            }
        }
        let ids: Vec<Uuid> = cancelled.iter().map(|Cancelled { id, .. }| *id).collect();
        self.changed(&ids).await;
        Ok(ids)
    }

    /// Makes the jobs of `target` due now (see `db::admin::requeue`), recording `audit` in the
    /// same transaction, then pushes them. Returns the requeued ids; empty when a one-job target
    /// was not requeueable (then nothing is recorded).
    #[tracing::instrument(skip_all, fields(reset_attempts = reset_attempts), err(level = "warn"))]
    pub async fn requeue(
        &self,
        target: Target<'_>,
        reset_attempts: bool,
        audit: Option<Audit<'_>>,
        progress: Progress<'_>,
    ) -> Result<Vec<Uuid>, sqlx::Error> {
        let mut held = db::hold(self.pool(), "requeue").await?;
        let mut tx = held.begin().await?;
        let requeued = admin::requeue(&mut tx, target, reset_attempts).await?;
        if !record(&mut tx, target, audit, requeued.len()).await? {
            return Ok(Vec::new());
        }
        tx.commit().await?;
        drop(held);
        metrics::counter!("jobs_requeued_total").increment(requeued.len() as u64);
        let total = requeued.len();
        let mut done = 0;
        for lane in [Lane::Interactive, Lane::Batch] {
            let ids = lane.ids_in(&requeued);
            let offset = done;
            self.push(lane, &ids, &|pushed, _| progress(offset + pushed, total))
                .await;
            done += ids.len();
        }
        let ids: Vec<Uuid> = requeued.into_iter().map(|(id, _)| id).collect();
        self.changed(&ids).await;
        Ok(ids)
    }

    // ---- Transitions of an attempt (the worker) ----

    /// Takes the job for a new attempt if it is due, or if the attempt running it lost its
    /// lease, unless its owner runs `owner_cap` jobs already (see `db::jobs::claim`). Claims
    /// arriving together share one statement.
    #[tracing::instrument(skip_all, fields(job_id = %id), err(level = "warn"))]
    pub async fn claim(
        &self,
        id: Uuid,
        worker_id: &str,
        lease: Duration,
        deadline: Duration,
        owner_cap: u32,
    ) -> Result<Claim, sqlx::Error> {
        let request = ClaimRequest {
            id,
            worker_id: worker_id.to_string(),
            lease,
            deadline,
            owner_cap,
        };
        let (claim, _) = self.claims.run(request).await?;
        match claim {
            Claim::Claimed(_) => {
                metrics::counter!("jobs_claimed_total").increment(1);
                self.changed(&[id]).await;
            }
            Claim::OwnerBusy => metrics::counter!("jobs_owner_capped_total").increment(1),
            Claim::NotBefore(_) | Claim::Gone => {}
        }
        Ok(claim)
    }

    /// Saves a finished day and renews the lease (with the other days being saved at the same
    /// moment, in one statement). `false`: the attempt was fenced out.
    #[tracing::instrument(skip_all, fields(job_id = %attempt.fence.job, attempt = attempt.number), err(level = "warn"))]
    pub async fn checkpoint(
        &self,
        attempt: Attempt,
        day: &Day,
        usage: Usage,
        lease: Duration,
    ) -> Result<bool, sqlx::Error> {
        let write = DayWrite {
            fence: attempt.fence,
            attempt_number: attempt.number,
            day_number: i32::from(day.day_number),
            day: jobs::to_json(day)?,
            usage,
            lease,
        };
        let (saved, _) = self.checkpoints.run(write).await?;
        if saved {
            self.changed(&[attempt.fence.job]).await;
        }
        Ok(saved)
    }

    /// Saves the last day, stores the menu and marks the job succeeded (the last day needs no
    /// [`Lifecycle::checkpoint`]; completions arriving together share one statement). `None`:
    /// fenced out, nothing written.
    #[tracing::instrument(skip_all, fields(job_id = %attempt.fence.job, attempt = attempt.number), err(level = "warn"))]
    pub async fn complete(
        &self,
        attempt: Attempt,
        plan: &MenuPlan,
        usage: Usage,
    ) -> Result<Option<Uuid>, sqlx::Error> {
        let completion = Completion::new(attempt.fence, attempt.number, plan, usage)?;
        let (menu, retried) = self.completions.run(completion).await?;
        let menu = match menu {
            Some(menu) => Some(menu),
            // A retry fenced out by its own first try, whose reply was lost.
            None if retried && self.ended_as(attempt, &["succeeded"]).await? => jobs::get(
                &mut *db::hold(self.pool(), "complete").await?,
                attempt.fence.job,
            )
            .await?
            .and_then(|job| job.menu_id),
            None => None,
        };
        if menu.is_some() {
            metrics::counter!("jobs_succeeded_total").increment(1);
            self.changed(&[attempt.fence.job]).await;
        }
        Ok(menu)
    }

    /// Ends a failed attempt: `retry_at` schedules another, `None` fails the job. Returns what
    /// the queue does with the delivery.
    #[tracing::instrument(skip_all, fields(job_id = %attempt.fence.job, attempt = attempt.number, error_code = error.code), err(level = "warn"))]
    pub async fn fail(
        &self,
        attempt: Attempt,
        error: &JobError,
        retry_at: Option<DateTime<Utc>>,
        usage: Usage,
    ) -> Result<Settle, sqlx::Error> {
        let (status, retried) = self
            .writer
            .write("fail", |mut conn| async move {
                jobs::fail_attempt(&mut conn, attempt.fence, error, retry_at, usage).await
            })
            .await?;
        let status = match status {
            None if retried && self.ended_as(attempt, &["retrying", "failed"]).await? => {
                Some(retry_at.map_or(JobStatus::Failed, |_| JobStatus::Retrying))
            }
            status => status,
        };
        let code = error.code.clone();
        match status {
            Some(JobStatus::Failed) => {
                metrics::counter!("jobs_failed_total", "code" => code).increment(1)
            }
            Some(JobStatus::Retrying) => {
                metrics::counter!("jobs_retried_total", "code" => code).increment(1)
            }
            _ => {}
        }
        if status.is_some() {
            self.changed(&[attempt.fence.job]).await;
        }
        Ok(match (status, retry_at) {
            (Some(JobStatus::Retrying), Some(at)) => Settle::At(at),
            _ => Settle::Done,
        })
    }

    /// Gives an unfinished attempt back uncounted: snoozed until a time, or handed back at
    /// shutdown. Returns what the queue does with the delivery.
    #[tracing::instrument(skip_all, fields(job_id = %attempt.fence.job, why = ?why), err(level = "warn"))]
    pub async fn release(
        &self,
        attempt: Attempt,
        why: Release,
        usage: Usage,
    ) -> Result<Settle, sqlx::Error> {
        let (released, retried) = self
            .writer
            .write("release", |mut conn| async move {
                jobs::release(&mut conn, attempt.fence, why, usage).await
            })
            .await?;
        let released = released || (retried && self.ended_as(attempt, &[why.outcome()]).await?);
        if !released {
            return Ok(Settle::Done);
        }
        self.changed(&[attempt.fence.job]).await;
        Ok(match why {
            Release::Snoozed { until, .. } => {
                metrics::counter!("jobs_snoozed_total").increment(1);
                Settle::At(until)
            }
            Release::HandedBack => {
                metrics::counter!("jobs_handed_back_total").increment(1);
                Settle::Now
            }
        })
    }

    /// Extends the leases of running attempts, tried once (the lease keeper tries again soon);
    /// returns the jobs renewed (see `db::jobs::renew_leases`).
    #[tracing::instrument(skip_all, fields(jobs = held.len()), err(level = "warn"))]
    pub async fn renew(&self, held: &[Fence], lease: Duration) -> Result<Vec<Uuid>, sqlx::Error> {
        let mut conn = db::hold(self.pool(), "renew").await?;
        jobs::renew_leases(&mut conn, held, lease).await
    }

    /// Records what an attempt that stopped without a transition of its own cost (its job was
    /// cancelled or taken over) and ends its row.
    #[tracing::instrument(skip_all, fields(job_id = %attempt.fence.job, attempt = attempt.number), err(level = "warn"))]
    pub async fn stop(&self, attempt: Attempt, usage: Usage) -> Result<Settle, sqlx::Error> {
        let (status, _) = self
            .writer
            .write("stop", |mut conn| async move {
                jobs::stop_attempt(&mut conn, attempt.fence, usage).await
            })
            .await?;
        // Taken over: the job is another attempt's, and so is its place in the queue.
        Ok(match status {
            Some(status) if !status.is_terminal() => Settle::Stale,
            _ => Settle::Done,
        })
    }

    // ---- The failure policy's parts ----

    /// Pushes jobs whose rows are committed into `lane`. Never fails: what Redis does not
    /// take, the reconciler pushes later.
    #[tracing::instrument(skip_all, fields(lane = ?lane, jobs = ids.len()))]
    pub async fn push(&self, lane: Lane, ids: &[Uuid], progress: Progress<'_>) {
        push(&self.queue, lane, ids, progress).await
    }

    /// Tells long polls and dashboards that jobs changed; losing the message only delays them.
    #[tracing::instrument(skip_all, fields(jobs = ids.len()))]
    pub async fn changed(&self, ids: &[Uuid]) {
        for chunk in ids.chunks(PUSH_CHUNK) {
            if let Err(e) = events::jobs_changed(self.queue.redis(), chunk).await {
                tracing::debug!(error = %e, "could not publish job events");
                return;
            }
        }
    }

    /// Whether the attempt's row records one of `outcomes`.
    async fn ended_as(&self, attempt: Attempt, outcomes: &[&str]) -> Result<bool, sqlx::Error> {
        let mut conn = db::hold(self.pool(), "outcome").await?;
        let outcome = jobs::attempt_outcome(&mut conn, attempt.fence).await?;
        Ok(outcome.is_some_and(|o| outcomes.contains(&o.as_str())))
    }
}

/// A grouped statement: the writes of a group in, one output per write out.
type Grouped<I, O> =
    for<'c> fn(&'c mut PgConnection, &'c [I]) -> BoxFuture<'c, Result<Vec<O>, sqlx::Error>>;

impl Writer {
    /// A group of `op` writes run by `statement` under the failure policy's retry; each write
    /// gets its output and whether the statement was tried more than once.
    fn group<I, O>(&self, op: &'static str, statement: Grouped<I, O>) -> Group<I, (O, bool)>
    where
        I: Send + Sync + 'static,
        O: Send + 'static,
    {
        let writer = self.clone();
        Group::new(op, GROUPS_AT_ONCE, GROUP_MAX, move |writes: Writes<I>| {
            let writer = writer.clone();
            async move {
                let (outputs, retried) = writer
                    .write(op, |mut conn| {
                        let writes = &writes;
                        async move { statement(&mut conn, writes).await }
                    })
                    .await?;
                Ok(outputs.into_iter().map(|o| (o, retried)).collect())
            }
        })
    }

    /// Runs `statement` on a pooled connection held for it alone; one that fails for a reason
    /// of the moment is tried again (on a new connection) with backoff for up to
    /// `write_retry`. Returns its result and whether it was tried more than once (then a
    /// fenced-out result may be the first try's success, whose reply was lost).
    async fn write<T, Fut>(
        &self,
        op: &'static str,
        statement: impl Fn(Held) -> Fut,
    ) -> Result<(T, bool), sqlx::Error>
    where
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let tries = AtomicU32::new(0);
        let once = || async {
            tries.fetch_add(1, Ordering::Relaxed);
            statement(db::hold(&self.pool, op).await?).await
        };
        let result = if self.write_retry.is_zero() {
            once().await
        } else {
            once.retry(write_backoff(self.write_retry))
                .when(db::is_transient)
                .notify(|e, wait| {
                    metrics::counter!("db_write_retries_total", "op" => op).increment(1);
                    tracing::warn!(
                        db.op = op,
                        error = %e,
                        retry_in_ms = wait.as_millis() as u64,
                        "database unavailable; keeping the write and trying again"
                    );
                })
                .await
        };
        Ok((result?, tries.load(Ordering::Relaxed) > 1))
    }
}

/// Pushes jobs whose rows are committed into `lane`. Never fails: what Redis does not take, the
/// reconciler pushes later.
async fn push(queue: &Queue, lane: Lane, ids: &[Uuid], progress: Progress<'_>) {
    let mut pushed = 0;
    for chunk in ids.chunks(PUSH_CHUNK) {
        if let Err(e) = queue.push_in(lane, chunk).await {
            metrics::counter!("queue_push_failures_total").increment(1);
            tracing::error!(
                error = %e,
                jobs = ids.len() - pushed,
                "jobs saved but not queued; the reconciler will queue them"
            );
            return;
        }
        pushed += chunk.len();
        progress(pushed, ids.len());
    }
}

/// 100 ms doubling to 2 s with jitter, for at most `total`: a restarting database is back
/// within a second or two of accepting connections, and many workers must not retry in step.
fn write_backoff(total: Duration) -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(2))
        .without_max_times()
        .with_total_delay(Some(total))
        .with_jitter()
}

/// Records `audit` (if any) in the transition's transaction. `false`: a one-job target matched
/// nothing, so there is nothing to record or commit.
async fn record(
    tx: &mut PgConnection,
    target: Target<'_>,
    audit: Option<Audit<'_>>,
    affected: usize,
) -> Result<bool, sqlx::Error> {
    if affected == 0 && matches!(target, Target::Job { .. }) {
        return Ok(false);
    }
    if let Some(audit) = audit {
        let job = match target {
            Target::Job { id, .. } => Some(id),
            Target::Matching(_) => None,
        };
        admin::record(
            tx,
            audit.admin_id,
            audit.action,
            job,
            audit.filter,
            affected,
        )
        .await?;
    }
    Ok(true)
}
