//! The apalis `Backend` over the Redis reliable queue: a demand-driven fetch loop on a
//! dedicated connection, a heartbeat on its own task, and a clean hand-back on shutdown.
//!
//! apalis polls `poll_next` only when a concurrency slot is free, so a worker holds at most as
//! many ids as it runs jobs. Redis errors never reach apalis (an error from `poll_next` would
//! stop the worker): the fetch loop logs them, backs off and reconnects.
//!
//! Lanes: a fetch takes an interactive id first and a batch id only when none waits, except
//! that one claim in `QUEUE_BATCH_CLAIM_EVERY` tries the batch first (so interactive work never
//! starves the batch), and never while the worker already runs its `batch_slots` batch jobs (the
//! slots left stay free for people). With nothing to take, it blocks on the interactive list
//! only: a person's job starts at once, a batch job within the block timeout.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use apalis_core::backend::finalize::Ephemeral;
use apalis_core::backend::{Backend, BackendConfig};
use apalis_core::task::Task;
use apalis_core::task::builder::TaskBuilder;
use apalis_core::task::task_id::TaskId;
use apalis_core::worker::context::WorkerContext;
use redis::{AsyncCommands, Direction};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::ack::AckLayer;
use super::{Lane, Queue, QueueConfig};
use crate::keyspace::COMMAND_TIMEOUT;
use crate::keyspace::RedisConn;

/// Ids this worker delivered and has not acknowledged yet, counted (the same id may be queued
/// twice), with their lane. Shared by the fetch loop and the acknowledging layer.
#[derive(Debug, Default)]
pub struct InProgress(Mutex<Delivered>);

#[derive(Debug, Default)]
struct Delivered {
    ids: HashMap<Uuid, (usize, Lane)>,
    /// Deliveries of batch ids among them.
    batch: usize,
}

impl InProgress {
    fn lock(&self) -> std::sync::MutexGuard<'_, Delivered> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a delivery of `id`. An id delivered again (from either list) keeps the lane of
    /// its first delivery, for the count and the settlement alike.
    fn add(&self, id: Uuid, lane: Lane) {
        let mut delivered = self.lock();
        let entry = delivered.ids.entry(id).or_insert((0, lane));
        entry.0 += 1;
        if entry.1 == Lane::Batch {
            delivered.batch += 1;
        }
    }

    /// Forgets one delivery of `id`; returns its lane (interactive for an unknown id).
    pub(crate) fn remove(&self, id: Uuid) -> Lane {
        let mut delivered = self.lock();
        let Some((n, lane)) = delivered.ids.get_mut(&id) else {
            return Lane::Interactive;
        };
        let lane = *lane;
        *n -= 1;
        if *n == 0 {
            delivered.ids.remove(&id);
        }
        if lane == Lane::Batch {
            delivered.batch -= 1;
        }
        lane
    }

    /// Batch deliveries in progress.
    fn batch(&self) -> usize {
        self.lock().batch
    }

    fn snapshot(&self) -> HashMap<Uuid, (usize, Lane)> {
        self.lock().ids.clone()
    }
}

/// A worker process's id, `{hostname}-{pid}-{8 hex digits}`: made once per process, it names the
/// process's in-flight list and heartbeat and is written on the attempts it claims, so an
/// attempt row leads to the list holding its job. Unique per start: a restarted process never
/// inherits a dead one's lists.
pub fn new_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    let nonce = Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &nonce[..8])
}

/// What the fetch loop needs, cheap to clone into each fetch future.
#[derive(Clone)]
struct Fetcher {
    queue: Queue,
    config: QueueConfig,
    worker_id: String,
    in_progress: Arc<InProgress>,
    /// `CLIENT ID` of the blocking connection, so shutdown can kill a parked `BLMOVE`.
    blocking_client_id: Arc<AtomicI64>,
    /// Most batch jobs run at once; the other slots are kept for interactive jobs.
    batch_slots: usize,
    /// Claims made, for the batch's share of them.
    claims: Arc<AtomicU64>,
}

/// The dedicated connection a `BLMOVE` blocks on. Never shared: a command queued behind a
/// blocking one would wait out the block.
struct Blocking {
    conn: RedisConn,
}

type FetchFuture = Pin<Box<dyn Future<Output = (Option<Blocking>, Vec<(Uuid, Lane)>)> + Send>>;

/// How long a fetch blocks on the interactive list while batch jobs wait but this worker runs
/// its share of them already: a batch slot freed meanwhile is filled this soon.
const CAPPED_BLOCK: Duration = Duration::from_millis(250);

impl Fetcher {
    async fn open_blocking(&self) -> redis::RedisResult<Blocking> {
        // The response timeout must outlast the block, or the client gives up on a BLMOVE the
        // server still runs, and the id it moves later reaches nobody.
        let mut conn = self
            .queue
            .redis()
            .target()
            .dedicated(self.config.block_timeout + COMMAND_TIMEOUT)
            .await?;
        let mut client_id = redis::cmd("CLIENT");
        client_id.arg("ID");
        let id: i64 = conn
            .query_at(&self.queue.redis().keys().ready(), client_id)
            .await?;
        self.blocking_client_id.store(id, Ordering::SeqCst);
        Ok(Blocking { conn })
    }

    /// Makes this worker known to the reaper (before it takes anything, and on a timer). A beat
    /// that finds the heartbeat gone (Redis restarted empty, or this worker was taken for dead)
    /// puts the ids it is running back in its in-flight list, so that should it die later, the
    /// reaper still hands them back.
    async fn heartbeat(&self) -> redis::RedisResult<()> {
        let keys = self.queue.redis().keys();
        let mut beat = BEAT.key(keys.heartbeat(&self.worker_id));
        beat.key(keys.workers())
            .key(keys.inflight(&self.worker_id))
            .key(keys.members())
            .arg(&self.worker_id)
            .arg(self.config.heartbeat_ttl.as_millis() as u64);
        for (id, (_, lane)) in self.in_progress.snapshot() {
            beat.arg(id.to_string()).arg(lane.code());
        }
        let restored: i64 = beat
            .invoke_async(&mut self.queue.redis().connection())
            .await?;
        if restored > 0 {
            tracing::warn!(
                queue.restored = restored,
                "redis had lost this worker's in-flight ids; put them back"
            );
        }
        Ok(())
    }

    /// Ids in our in-flight list that nobody here is working on: a `BLMOVE` whose reply was
    /// lost with its connection moved them. They are ours to run.
    async fn orphans(&self) -> redis::RedisResult<Vec<(Uuid, Lane)>> {
        let known = self.in_progress.snapshot();
        let listed: Vec<String> = self
            .queue
            .redis()
            .connection()
            .lrange(self.queue.redis().keys().inflight(&self.worker_id), 0, -1)
            .await?;
        let mut seen: HashMap<Uuid, usize> = HashMap::new();
        let mut orphans = Vec::new();
        for id in listed.iter().filter_map(|s| Uuid::parse_str(s).ok()) {
            let n = seen.entry(id).or_default();
            *n += 1;
            if *n > known.get(&id).map_or(0, |(n, _)| *n) {
                orphans.push(id);
            }
        }
        let lanes = self.queue.lanes_of(&orphans).await?;
        Ok(orphans
            .into_iter()
            .zip(lanes)
            .map(|(id, lane)| (id, lane.unwrap_or(Lane::Interactive)))
            .collect())
    }

    /// The lanes to take from, in order, for the next claim; `None` when the batch lane is
    /// closed to this worker for now (it runs its share of batch jobs).
    fn lanes(&self) -> Option<&'static [Lane]> {
        if self.in_progress.batch() >= self.batch_slots {
            return None;
        }
        let every = u64::from(self.config.batch_claim_every.max(1));
        Some(
            if self.claims.load(Ordering::Relaxed) % every == every - 1 {
                &[Lane::Batch, Lane::Interactive]
            } else {
                &[Lane::Interactive, Lane::Batch]
            },
        )
    }

    /// Moves the next id of the first lane that has one into this worker's in-flight list,
    /// without blocking.
    async fn take(&self, lanes: &[Lane]) -> redis::RedisResult<Option<(String, Lane)>> {
        let keys = self.queue.redis().keys();
        let mut claim = CLAIM.key(keys.ready());
        claim
            .key(keys.ready_batch())
            .key(keys.inflight(&self.worker_id));
        for lane in lanes {
            claim.arg(lane.code());
        }
        let taken: Option<(String, String)> = claim
            .invoke_async(&mut self.queue.redis().connection())
            .await?;
        Ok(taken.map(|(id, code)| (id, Lane::from_code(&code))))
    }

    /// Waits for the next job id, riding out Redis failures. Returns the connection to reuse.
    async fn next(self, mut blocking: Option<Blocking>) -> (Option<Blocking>, Vec<(Uuid, Lane)>) {
        let keys = self.queue.redis().keys().clone();
        let inflight = keys.inflight(&self.worker_id);
        let mut failures: u32 = 0;
        loop {
            if failures > 0 {
                tokio::time::sleep(backoff(failures)).await;
            }
            let Some(conn) = blocking.as_mut() else {
                let opened = match self.heartbeat().await {
                    Ok(()) => self.open_blocking().await,
                    Err(e) => Err(e),
                };
                match opened {
                    Ok(b) => {
                        blocking = Some(b);
                        if failures > 0 {
                            match self.orphans().await {
                                Ok(ids) if !ids.is_empty() => {
                                    tracing::info!(
                                        queue.recovered = ids.len(),
                                        "redelivering ids stranded by a lost connection"
                                    );
                                    return (blocking, ids);
                                }
                                Ok(_) => {}
                                Err(e) => {
                                    tracing::warn!(error = %e, "could not check in-flight list")
                                }
                            }
                            tracing::info!("queue connection restored");
                        }
                        failures = 0;
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(error = %e, queue.failures = failures, "cannot reach redis to fetch jobs");
                    }
                }
                continue;
            };
            let lanes = self.lanes();
            let taken = match lanes {
                Some(lanes) => self.take(lanes).await,
                None => Ok(None),
            };
            let fetched = match taken {
                Ok(Some(taken)) => Ok(Some(taken)),
                // Nothing to take: wait for a person's job (a batch job is looked for again
                // when the block ends).
                Ok(None) => {
                    let block = if lanes.is_some() {
                        self.config.block_timeout
                    } else {
                        CAPPED_BLOCK.min(self.config.block_timeout)
                    };
                    conn.conn
                        .blmove::<_, _, Option<String>>(
                            keys.ready(),
                            &inflight,
                            Direction::Right,
                            Direction::Left,
                            block.as_secs_f64(),
                        )
                        .await
                        .map(|id| id.map(|id| (id, Lane::Interactive)))
                }
                Err(e) => Err(e),
            };
            match fetched {
                Ok(Some((raw, lane))) => match Uuid::parse_str(&raw) {
                    Ok(id) => {
                        self.claims.fetch_add(1, Ordering::Relaxed);
                        return (blocking, vec![(id, lane)]);
                    }
                    Err(_) => {
                        tracing::warn!(queue.item = %raw, "dropping a malformed id from the queue");
                        let _: redis::RedisResult<()> = self
                            .queue
                            .redis()
                            .connection()
                            .lrem(&inflight, 1, &raw)
                            .await;
                    }
                },
                Ok(None) => {}
                Err(e) => {
                    failures += 1;
                    blocking = None;
                    self.blocking_client_id.store(0, Ordering::SeqCst);
                    tracing::warn!(error = %e, queue.failures = failures, "fetch from redis failed");
                }
            }
        }
    }

    /// Gives back what this worker still holds: kill a parked `BLMOVE` first so it cannot
    /// take another id after the hand-back.
    async fn close(self) {
        let keys = self.queue.redis().keys().clone();
        let mut conn = self.queue.redis().connection();
        let client_id = self.blocking_client_id.swap(0, Ordering::SeqCst);
        if client_id != 0 {
            let mut kill = redis::cmd("CLIENT");
            kill.arg("KILL").arg("ID").arg(client_id);
            let killed: redis::RedisResult<i64> = conn.query_at(&keys.ready(), kill).await;
            if let Err(e) = killed {
                // Without the CLIENT permission, wait the block out instead.
                tracing::warn!(error = %e, "cannot kill the blocking connection; waiting it out");
                tokio::time::sleep(self.config.block_timeout + Duration::from_millis(100)).await;
            }
        }
        let handed_back: redis::RedisResult<i64> = HAND_BACK
            .key(keys.inflight(&self.worker_id))
            .key(keys.ready())
            .key(keys.ready_batch())
            .key(keys.members())
            .key(keys.heartbeat(&self.worker_id))
            .key(keys.workers())
            .arg(&self.worker_id)
            .invoke_async(&mut conn)
            .await;
        match handed_back {
            Ok(n) => {
                tracing::info!(queue.handed_back = n, worker.id = %self.worker_id, "queue closed")
            }
            // The heartbeat lapses and the reaper hands the ids back instead.
            Err(e) => {
                tracing::warn!(error = %e, "could not hand back in-flight jobs; the reaper will")
            }
        }
    }
}

/// Moves every id of a worker's in-flight list to the consuming end of its lane's ready list
/// (so they run next), then forgets the worker.
/// KEYS: inflight, ready, ready:batch, members, heartbeat, workers. ARGV: worker id.
static HAND_BACK: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
        local n = 0
        local id = redis.call('LPOP', KEYS[1])
        while id do
            local batch = redis.call('HGET', KEYS[4], id) == 'b'
            redis.call('RPUSH', batch and KEYS[3] or KEYS[2], id)
            n = n + 1
            id = redis.call('LPOP', KEYS[1])
        end
        redis.call('DEL', KEYS[5])
        redis.call('SREM', KEYS[6], ARGV[1])
        return n",
    )
});

/// Moves the next id of the first lane in ARGV (lane codes, in order) that has one into the
/// in-flight list. KEYS: ready, ready:batch, inflight. Returns {id, lane code} or nil.
static CLAIM: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
        for i = 1, #ARGV do
            local id = redis.call('LMOVE', ARGV[i] == 'b' and KEYS[2] or KEYS[1], KEYS[3], 'RIGHT', 'LEFT')
            if id then return {id, ARGV[i]} end
        end
        return false",
    )
});

/// Renews a worker's heartbeat and registration; if the heartbeat was gone, puts the ids of
/// ARGV[3..] (the jobs it runs, each followed by its lane's code) back in its in-flight list
/// and the queue's members. Returns how many it put back.
/// KEYS: heartbeat, workers, inflight, members. ARGV: worker id, ttl ms, then id, lane pairs.
static BEAT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
        local alive = redis.call('EXISTS', KEYS[1]) == 1
        redis.call('SET', KEYS[1], '1', 'PX', tonumber(ARGV[2]))
        redis.call('SADD', KEYS[2], ARGV[1])
        if alive then return 0 end
        local restored = 0
        for i = 3, #ARGV, 2 do
            if not redis.call('LPOS', KEYS[3], ARGV[i]) then
                redis.call('RPUSH', KEYS[3], ARGV[i])
                restored = restored + 1
            end
            redis.call('HSETNX', KEYS[4], ARGV[i], ARGV[i + 1])
        end
        return restored",
    )
});

/// 100 ms doubling to 5 s: fast recovery from a blip, no storm against a Redis that is down.
fn backoff(failures: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << failures.min(6)).min(5_000))
}

/// A worker's source of jobs. One per apalis worker; build a new one for every start.
pub struct RedisBackend {
    fetcher: Fetcher,
    fetch: Option<FetchFuture>,
    blocking: Option<Blocking>,
    backlog: VecDeque<(Uuid, Lane)>,
    heartbeat: Option<JoinHandle<()>>,
    stop: CancellationToken,
    closing: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl RedisBackend {
    /// A backend whose worker may fill every slot with batch jobs (see `with_batch_slots`).
    /// `worker_id` ([`new_worker_id`]) names its in-flight list and heartbeat: the id the
    /// process records its attempts under.
    pub fn new(queue: Queue, config: QueueConfig, worker_id: String) -> Self {
        RedisBackend {
            fetcher: Fetcher {
                queue,
                config,
                worker_id,
                in_progress: Arc::default(),
                blocking_client_id: Arc::default(),
                batch_slots: usize::MAX,
                claims: Arc::default(),
            },
            fetch: None,
            blocking: None,
            backlog: VecDeque::new(),
            heartbeat: None,
            stop: CancellationToken::new(),
            closing: None,
        }
    }

    /// Runs at most `slots` batch jobs at once, keeping the worker's other slots for
    /// interactive jobs.
    pub fn with_batch_slots(mut self, slots: usize) -> Self {
        self.fetcher.batch_slots = slots;
        self
    }

    pub fn worker_id(&self) -> &str {
        &self.fetcher.worker_id
    }

    fn start_heartbeat(&mut self) {
        let fetcher = self.fetcher.clone();
        let stop = self.stop.clone();
        self.heartbeat = Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(fetcher.config.heartbeat_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {
                        if let Err(e) = fetcher.heartbeat().await {
                            tracing::warn!(error = %e, "heartbeat failed");
                        }
                    }
                }
            }
        }));
    }
}

impl Drop for RedisBackend {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Backend for RedisBackend {
    type Task = Task<Uuid>;
    type Error = redis::RedisError;

    fn poll_ready(
        &mut self,
        _: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        if self.heartbeat.is_none() {
            self.start_heartbeat();
        }
        Poll::Ready(Ok(()))
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Option<Result<Self::Task, Self::Error>>> {
        loop {
            if let Some((id, lane)) = self.backlog.pop_front() {
                self.fetcher.in_progress.add(id, lane);
                let task = TaskBuilder::new(id)
                    .task_id(TaskId::from_string(id.to_string()))
                    .build();
                return Poll::Ready(Some(Ok(task)));
            }
            let fetch = match self.fetch.as_mut() {
                Some(f) => f,
                None => {
                    let next = self.fetcher.clone().next(self.blocking.take());
                    self.fetch.insert(Box::pin(next))
                }
            };
            match fetch.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready((blocking, ids)) => {
                    self.fetch = None;
                    self.blocking = blocking;
                    self.backlog.extend(ids);
                }
            }
        }
    }

    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        let closing = self.closing.get_or_insert_with(|| {
            self.stop.cancel();
            let fetcher = self.fetcher.clone();
            // Ids fetched but never handed to a job stay in the in-flight list and go back
            // with the rest.
            self.backlog.clear();
            Box::pin(fetcher.close())
        });
        match closing.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                self.fetch = None;
                self.blocking = None;
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl BackendConfig for RedisBackend {
    type Args = Uuid;
    type Id = Uuid;
    type Kind = Ephemeral;
    type Config = QueueConfig;
    type Layer = AckLayer;

    fn config(&self) -> &Self::Config {
        &self.fetcher.config
    }

    fn middleware(&mut self, _: &mut WorkerContext) -> Self::Layer {
        AckLayer::new(
            self.fetcher.queue.clone(),
            &self.fetcher.worker_id,
            self.fetcher.in_progress.clone(),
            self.fetcher.config.redelivery_delay,
        )
    }
}
