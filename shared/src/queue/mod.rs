//! The job queue in Redis: a reliable queue of job ids under apalis's worker runtime.
//!
//! PostgreSQL holds every job; Redis carries only ids. The API pushes an id onto its lane's ready
//! list (`ready` for interactive jobs, `ready:batch` for the weekly batch) after the job row is
//! committed. A worker moves ids one at a time from a ready list into its own `inflight:{worker}`
//! list (interactive first; an idle worker blocks on `ready` with `BLMOVE`, so a person's job
//! starts within a millisecond), and settles the delivery once the job was handled (see `ack`).
//! A worker's heartbeat key lapses when it dies; the reaper then returns its in-flight ids to
//! their ready lists. Retries that must wait sit in the `delayed` sorted set until the promoter
//! moves them back. The `members` hash holds every id that is in one of those places, with its
//! lane, so a push never queues an id twice however many pushers (the API, admins, reconcilers,
//! the batch) race, and every script that moves an id knows which ready list it goes to.
//! Delivery is at-least-once: the worker's claim in PostgreSQL makes a second delivery harmless.

pub mod ack;
pub mod backend;
pub mod maintenance;

use std::time::Duration;

use std::sync::LazyLock;

use redis::AsyncCommands;
use uuid::Uuid;

use crate::config::RedisConfig;
use crate::keyspace::{Keys, Redis};

/// Which ready list a job waits in. Workers claim interactive jobs first (a person is
/// waiting); batch jobs (the weekly batch) take what is left, with a share of the claims so a
/// stream of interactive work never starves them (see `backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    Interactive,
    Batch,
}

impl Lane {
    /// The ids of those `jobs` that are in this lane, in their order.
    pub fn ids_in(self, jobs: &[(Uuid, Lane)]) -> Vec<Uuid> {
        jobs.iter()
            .filter(|(_, lane)| *lane == self)
            .map(|(id, _)| *id)
            .collect()
    }

    /// The lane of a job: batch jobs are those of a batch run.
    pub fn of(batch_id: Option<Uuid>) -> Lane {
        if batch_id.is_some() {
            Lane::Batch
        } else {
            Lane::Interactive
        }
    }

    /// How the lane is written in Redis (the `members` hash's values).
    pub fn code(self) -> &'static str {
        match self {
            Lane::Interactive => "i",
            Lane::Batch => "b",
        }
    }

    /// The lane a `code` names; interactive for anything else.
    pub fn from_code(code: &str) -> Lane {
        if code == "b" {
            Lane::Batch
        } else {
            Lane::Interactive
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct QueueConfig {
    /// How long one blocking fetch waits for a job before asking again.
    #[arg(
        long = "queue-block-timeout-ms",
        env = "QUEUE_BLOCK_TIMEOUT_MS",
        default_value = "2000",
        value_parser = telemetry::millis
    )]
    pub block_timeout: Duration,
    /// How often a worker renews its heartbeat.
    #[arg(
        long = "queue-heartbeat-interval-ms",
        env = "QUEUE_HEARTBEAT_INTERVAL_MS",
        default_value = "2000",
        value_parser = telemetry::millis
    )]
    pub heartbeat_interval: Duration,
    /// A worker whose heartbeat is older than this is dead and its jobs are handed back.
    #[arg(
        long = "queue-heartbeat-ttl-ms",
        env = "QUEUE_HEARTBEAT_TTL_MS",
        default_value = "10000",
        value_parser = telemetry::millis
    )]
    pub heartbeat_ttl: Duration,
    /// How often due delayed jobs are moved to the ready list.
    #[arg(
        long = "queue-promote-interval-ms",
        env = "QUEUE_PROMOTE_INTERVAL_MS",
        default_value = "250",
        value_parser = telemetry::millis
    )]
    pub promote_interval: Duration,
    /// How often dead workers' in-flight jobs are looked for.
    #[arg(
        long = "queue-reap-interval-ms",
        env = "QUEUE_REAP_INTERVAL_MS",
        default_value = "5000",
        value_parser = telemetry::millis
    )]
    pub reap_interval: Duration,
    /// One claim in this many takes a batch job first when both lanes have work, so a steady
    /// stream of interactive jobs cannot starve the batch.
    #[arg(
        long = "queue-batch-claim-every",
        env = "QUEUE_BATCH_CLAIM_EVERY",
        default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub batch_claim_every: u32,
    /// How long a delivery that could not be handled at all (database down, a panic) waits
    /// before it is delivered again.
    #[arg(
        long = "queue-redelivery-delay-ms",
        env = "QUEUE_REDELIVERY_DELAY_MS",
        default_value = "5000",
        value_parser = telemetry::millis
    )]
    pub redelivery_delay: Duration,
}

/// Pushes each id of ARGV[3..] unless it is already queued; one waiting in `delayed` is made
/// ready (in the lane it was pushed with first). ARGV[1]: `back` (the producing end, behind the
/// jobs waiting) or `front` (the consuming end, taken next); ARGV[2]: the lane's code.
/// KEYS: members, delayed, ready, ready:batch. Returns how many ids were pushed or moved.
static PUSH: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local push = ARGV[1] == 'front' and 'RPUSH' or 'LPUSH'
        local pushed = 0
        for i = 3, #ARGV do
            local id = ARGV[i]
            local waiting = redis.call('ZREM', KEYS[2], id) == 1
            if redis.call('HSETNX', KEYS[1], id, ARGV[2]) == 1 or waiting then
                local lane = redis.call('HGET', KEYS[1], id)
                redis.call(push, lane == 'b' and KEYS[4] or KEYS[3], id)
                pushed = pushed + 1
            end
        end
        return pushed",
    )
});

/// Copies the old members set (KEYS[1]) into the lanes hash (KEYS[2]) as interactive ids, then
/// deletes the set. Returns how many ids it copied.
static UPGRADE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        if redis.call('TYPE', KEYS[1]).ok ~= 'set' then return 0 end
        local ids = redis.call('SMEMBERS', KEYS[1])
        for _, id in ipairs(ids) do redis.call('HSETNX', KEYS[2], id, 'i') end
        redis.call('DEL', KEYS[1])
        return #ids",
    )
});

/// A handle on the queue for producers and for maintenance: cheap to clone.
#[derive(Clone)]
pub struct Queue {
    redis: Redis,
}

impl Queue {
    /// The queue in the deployment's Redis.
    pub fn new(redis: Redis) -> Queue {
        Queue { redis }
    }

    /// Connects to the deployment's Redis ([`Redis::connect`], with its errors) for the queue in it.
    pub async fn connect(config: &RedisConfig) -> redis::RedisResult<Queue> {
        Ok(Queue::new(Redis::connect(config).await?))
    }

    /// The Redis the queue lives in, with its keys and shared connection.
    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    fn keys(&self) -> &Keys {
        self.redis.keys()
    }

    /// Makes interactive jobs available to workers now, behind those waiting, in one round
    /// trip: each id not in the queue yet is pushed, one waiting in `delayed` is moved to its
    /// ready list, and one already ready or in flight is left alone. Returns how many were
    /// pushed or moved. Call only after the rows are committed.
    pub async fn push(&self, job_ids: &[Uuid]) -> redis::RedisResult<usize> {
        self.push_in(Lane::Interactive, job_ids).await
    }

    /// As [`Queue::push`], into `lane`.
    pub async fn push_in(&self, lane: Lane, job_ids: &[Uuid]) -> redis::RedisResult<usize> {
        self.push_at("back", lane, job_ids).await
    }

    /// As [`Queue::push_in`], but ahead of the jobs waiting, the last id first: for jobs that
    /// are overdue (Redis lost them), which should not wait behind a backlog again.
    pub async fn push_first(&self, lane: Lane, job_ids: &[Uuid]) -> redis::RedisResult<usize> {
        self.push_at("front", lane, job_ids).await
    }

    #[tracing::instrument(skip_all, fields(end = end, lane = ?lane, jobs = job_ids.len()), err)]
    async fn push_at(&self, end: &str, lane: Lane, job_ids: &[Uuid]) -> redis::RedisResult<usize> {
        if job_ids.is_empty() {
            return Ok(0);
        }
        let keys = self.keys();
        let mut script = PUSH.key(keys.members());
        script
            .key(keys.delayed())
            .key(keys.ready())
            .key(keys.ready_batch())
            .arg(end)
            .arg(lane.code());
        for id in job_ids {
            script.arg(id.to_string());
        }
        script.invoke_async(&mut self.redis.connection()).await
    }

    /// The lane each id is queued in (ready, delayed or in flight); `None`: Redis does not
    /// hold it.
    #[tracing::instrument(skip_all, fields(jobs = job_ids.len()), err)]
    pub async fn lanes_of(&self, job_ids: &[Uuid]) -> redis::RedisResult<Vec<Option<Lane>>> {
        if job_ids.is_empty() {
            return Ok(Vec::new());
        }
        let codes: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.keys().members())
            .arg(job_ids.iter().map(Uuid::to_string).collect::<Vec<_>>())
            .query_async(&mut self.redis.connection())
            .await?;
        Ok(codes
            .into_iter()
            .map(|c| c.map(|c| Lane::from_code(&c)))
            .collect())
    }

    /// Jobs waiting in both ready lists.
    pub async fn ready_len(&self) -> redis::RedisResult<u64> {
        let (interactive, batch) = self.ready_lens().await?;
        Ok(interactive + batch)
    }

    /// Jobs waiting in the interactive and the batch ready list.
    #[tracing::instrument(skip_all, err)]
    pub async fn ready_lens(&self) -> redis::RedisResult<(u64, u64)> {
        redis::pipe()
            .llen(self.keys().ready())
            .llen(self.keys().ready_batch())
            .query_async(&mut self.redis.connection())
            .await
    }

    /// Jobs waiting for a time.
    #[tracing::instrument(skip_all, err)]
    pub async fn delayed_len(&self) -> redis::RedisResult<u64> {
        self.redis.connection().zcard(self.keys().delayed()).await
    }

    /// Sets the `queue_depth` gauges (ready jobs by lane, delayed jobs), for a metrics scrape.
    pub async fn record_depth(&self) -> redis::RedisResult<()> {
        let ((interactive, batch), delayed) = (self.ready_lens().await?, self.delayed_len().await?);
        metrics::gauge!("queue_depth", "list" => "ready").set(interactive as f64);
        metrics::gauge!("queue_depth", "list" => "ready_batch").set(batch as f64);
        metrics::gauge!("queue_depth", "list" => "delayed").set(delayed as f64);
        Ok(())
    }

    /// Moves the ids of the `members` set that versions before lanes kept (all interactive
    /// then) into the `lanes` hash, once; a no-op when there is none. Without it, the first
    /// reconciler pass after an upgrade would queue a second copy of every waiting job.
    #[tracing::instrument(skip_all, err)]
    pub async fn upgrade(&self) -> redis::RedisResult<usize> {
        UPGRADE
            .key(self.keys().legacy_members())
            .key(self.keys().members())
            .invoke_async(&mut self.redis.connection())
            .await
    }
}
