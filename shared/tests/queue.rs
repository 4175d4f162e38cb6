//! The Redis queue backend under apalis, with a handler that only records what it was given:
//! pick-up latency, a large drain, dropped connections, a Redis restart, dead workers,
//! settlements for later, redelivery after a failure, deduplicating pushes and a clean
//! shutdown.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apalis::prelude::{Data, Monitor, WorkerBuilder, WorkerBuilderExt};
use redis::AsyncCommands;
use shared::config::RedisConfig;
use shared::queue::ack::Settle;
use shared::queue::backend::{RedisBackend, new_worker_id};
use shared::queue::{Lane, Queue, QueueConfig, maintenance};
use testkit::{PrivateRedis, TestRedis};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A test worker's queue with dead workers found faster: a heartbeat every 200 ms that lives
/// 1 s, reaped every 200 ms.
fn fast_config() -> QueueConfig {
    QueueConfig {
        heartbeat_interval: Duration::from_millis(200),
        heartbeat_ttl: Duration::from_secs(1),
        reap_interval: Duration::from_millis(200),
        ..testkit::queue_config()
    }
}

/// What the handler saw: how often each id came, and each delivery as it happened.
#[derive(Clone)]
struct Recorder {
    seen: Arc<Mutex<HashMap<Uuid, usize>>>,
    deliveries: mpsc::UnboundedSender<(Uuid, Instant)>,
    /// Ids whose first delivery must fail (to exercise redelivery).
    fail_first: Arc<Mutex<Vec<Uuid>>>,
    /// Ids whose first delivery is settled for later, and when.
    later: Arc<Mutex<HashMap<Uuid, chrono::DateTime<chrono::Utc>>>>,
    /// How long the handler takes (none by default).
    takes: Arc<Mutex<Duration>>,
}

impl Recorder {
    fn total(&self) -> usize {
        self.seen.lock().unwrap().values().sum()
    }
    fn distinct(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
    fn duplicates(&self) -> usize {
        self.seen
            .lock()
            .unwrap()
            .values()
            .filter(|n| **n > 1)
            .count()
    }
}

async fn record(id: Uuid, recorder: Data<Recorder>) -> Result<Settle, std::io::Error> {
    *recorder.seen.lock().unwrap().entry(id).or_default() += 1;
    let _ = recorder.deliveries.send((id, Instant::now()));
    {
        let mut fail_first = recorder.fail_first.lock().unwrap();
        if let Some(i) = fail_first.iter().position(|f| *f == id) {
            fail_first.remove(i);
            return Err(std::io::Error::other(
                "the first delivery of this job fails",
            ));
        }
    }
    if let Some(at) = recorder.later.lock().unwrap().remove(&id) {
        return Ok(Settle::At(at));
    }
    let takes = *recorder.takes.lock().unwrap();
    tokio::time::sleep(takes).await;
    Ok(Settle::Done)
}

struct Running {
    recorder: Recorder,
    deliveries: mpsc::UnboundedReceiver<(Uuid, Instant)>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("worker stops within 10 s")
            .expect("worker task");
    }

    async fn wait_for_total(&self, total: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.recorder.total() < total {
            assert!(
                Instant::now() < deadline,
                "only {} of {total} deliveries within {within:?}",
                self.recorder.total()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Starts one worker (and the queue upkeep) on `redis`, handling with the recorder.
async fn start(redis: &RedisConfig, config: QueueConfig, concurrency: usize) -> Running {
    start_with(redis, config, concurrency, usize::MAX).await
}

/// As [`start`], running at most `batch_slots` batch jobs at once.
async fn start_with(
    redis: &RedisConfig,
    config: QueueConfig,
    concurrency: usize,
    batch_slots: usize,
) -> Running {
    let queue = Queue::connect(redis).await.expect("connect");
    let (tx, rx) = mpsc::unbounded_channel();
    let recorder = Recorder {
        seen: Arc::default(),
        deliveries: tx,
        fail_first: Arc::default(),
        later: Arc::default(),
        takes: Arc::default(),
    };
    let stop = CancellationToken::new();
    let task = {
        let recorder = recorder.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let upkeep = tokio::spawn(maintenance::run(
                queue.clone(),
                config.clone(),
                stop.clone(),
            ));
            let signal = {
                let stop = stop.clone();
                async move {
                    stop.cancelled().await;
                    Ok(())
                }
            };
            Monitor::new()
                .register(move |_| {
                    let backend = RedisBackend::new(queue.clone(), config.clone(), new_worker_id())
                        .with_batch_slots(batch_slots);
                    WorkerBuilder::new(backend.worker_id().to_string())
                        .backend(backend)
                        .data(recorder.clone())
                        .concurrency(concurrency)
                        .catch_panic()
                        .build(record)
                })
                .shutdown_timeout(Duration::from_secs(5))
                .run_with_signal(signal)
                .await
                .expect("monitor");
            let _ = upkeep.await;
        })
    };
    Running {
        recorder,
        deliveries: rx,
        stop,
        task,
    }
}

async fn push_many(queue: &Queue, ids: &[Uuid]) {
    for chunk in ids.chunks(5_000) {
        queue.push(chunk).await.expect("push");
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::test]
async fn an_idle_worker_picks_up_a_new_job_within_milliseconds() {
    testkit::init_tracing();
    let redis = TestRedis::new();
    // A long block: the pick-up must not depend on the block timing out.
    let config = QueueConfig {
        block_timeout: Duration::from_secs(5),
        ..fast_config()
    };
    let mut running = start(&redis.config(), config, 4).await;
    let queue = Queue::connect(&redis.config()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut latencies = Vec::new();
    for _ in 0..30 {
        let id = Uuid::new_v4();
        let pushed = Instant::now();
        queue.push(&[id]).await.unwrap();
        let (got, at) = tokio::time::timeout(Duration::from_secs(5), running.deliveries.recv())
            .await
            .expect("delivered")
            .unwrap();
        assert_eq!(got, id);
        latencies.push(at - pushed);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    latencies.sort();
    println!(
        "idle pick-up: p50 {:?} p99 {:?} max {:?}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().unwrap()
    );
    assert!(
        *latencies.last().unwrap() < Duration::from_millis(250),
        "an idle worker took {:?} to see a job",
        latencies.last().unwrap()
    );
    running.stop().await;
}

#[tokio::test]
async fn a_hundred_thousand_queued_ids_drain_once_each_and_leave_nothing_behind() {
    testkit::init_tracing();
    let redis = TestRedis::new();
    let queue = Queue::connect(&redis.config()).await.unwrap();
    let ids: Vec<Uuid> = (0..100_000).map(|_| Uuid::new_v4()).collect();
    push_many(&queue, &ids).await;
    assert_eq!(queue.ready_len().await.unwrap(), 100_000);

    let started = Instant::now();
    let running = start(&redis.config(), fast_config(), 50).await;
    running
        .wait_for_total(ids.len(), Duration::from_secs(240))
        .await;
    println!("drained 100,000 ids in {:?}", started.elapsed());
    assert_eq!(running.recorder.distinct(), ids.len(), "every id delivered");
    assert_eq!(running.recorder.duplicates(), 0, "no id delivered twice");
    running.stop().await;
    assert_eq!(
        redis.keys().await,
        Vec::<String>::new(),
        "nothing left in Redis"
    );
}

#[tokio::test]
async fn dropped_connections_during_a_drain_lose_and_duplicate_nothing() {
    testkit::init_tracing();
    let server = PrivateRedis::start().await;
    let redis = server.config();
    let queue = Queue::connect(&redis).await.unwrap();
    let ids: Vec<Uuid> = (0..20_000).map(|_| Uuid::new_v4()).collect();
    push_many(&queue, &ids).await;

    let running = start(&redis, fast_config(), 50).await;
    let mut kills = 0;
    while running.recorder.total() < ids.len() && kills < 3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        kills += usize::from(server.kill_clients().await > 0);
    }
    assert!(
        kills >= 1,
        "the drain finished before any connection could be dropped"
    );
    running
        .wait_for_total(ids.len(), Duration::from_secs(120))
        .await;
    // Give any redelivery a chance to show up before judging duplicates.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(running.recorder.distinct(), ids.len(), "nothing lost");
    assert_eq!(running.recorder.duplicates(), 0, "nothing duplicated");
    running.stop().await;
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let left: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, Vec::<String>::new(), "nothing left in Redis");
}

#[tokio::test]
async fn the_worker_rides_out_a_redis_restart() {
    testkit::init_tracing();
    let mut server = PrivateRedis::start().await;
    let redis = server.config();
    let running = start(&redis, fast_config(), 4).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    server.stop();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    server.resume().await;

    let queue = Queue::connect(&redis).await.unwrap();
    let ids: Vec<Uuid> = (0..10).map(|_| Uuid::new_v4()).collect();
    push_many(&queue, &ids).await;
    running
        .wait_for_total(ids.len(), Duration::from_secs(20))
        .await;
    assert_eq!(running.recorder.distinct(), ids.len());
    assert!(!running.task.is_finished(), "the worker is still running");
    running.stop().await;
}

#[tokio::test]
async fn a_dead_workers_jobs_are_handed_back_and_run() {
    testkit::init_tracing();
    let redis = TestRedis::new();
    let queue = Queue::connect(&redis.config()).await.unwrap();
    let keys = queue.redis().keys().clone();
    let ids: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    // A worker that took five jobs and died: listed, in flight, no heartbeat.
    let mut conn = queue.redis().connection();
    let _: () = conn.sadd(keys.workers(), "dead-worker").await.unwrap();
    let members: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    let _: () = conn
        .rpush(keys.inflight("dead-worker"), members)
        .await
        .unwrap();

    let running = start(&redis.config(), fast_config(), 4).await;
    running
        .wait_for_total(ids.len(), Duration::from_secs(10))
        .await;
    assert_eq!(running.recorder.distinct(), ids.len());
    let still_listed: bool = conn.sismember(keys.workers(), "dead-worker").await.unwrap();
    assert!(!still_listed, "the dead worker is forgotten");
    running.stop().await;
}

#[tokio::test]
async fn a_delivery_settled_for_later_runs_again_then_and_not_before() {
    testkit::init_tracing();
    let redis = TestRedis::new();
    let queue = Queue::connect(&redis.config()).await.unwrap();
    let mut running = start(&redis.config(), fast_config(), 4).await;
    let id = Uuid::new_v4();
    let due = chrono::Utc::now() + chrono::Duration::milliseconds(800);
    running.recorder.later.lock().unwrap().insert(id, due);
    queue.push(&[id]).await.unwrap();
    let (_, first) = tokio::time::timeout(Duration::from_secs(5), running.deliveries.recv())
        .await
        .expect("delivered")
        .unwrap();
    let (got, again) = tokio::time::timeout(Duration::from_secs(5), running.deliveries.recv())
        .await
        .expect("delivered again")
        .unwrap();
    assert_eq!(got, id);
    let waited = again - first;
    assert!(
        waited >= Duration::from_millis(600),
        "ran again after {waited:?}, before it was due"
    );
    running.stop().await;
    assert_eq!(
        redis.keys().await,
        Vec::<String>::new(),
        "settled as done: nothing left, not even its membership"
    );
}

#[tokio::test]
async fn a_push_queues_an_id_once_however_often_it_comes_and_makes_a_waiting_one_ready() {
    let redis = TestRedis::new();
    let queue = Queue::connect(&redis.config()).await.unwrap();
    let keys = queue.redis().keys().clone();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    assert_eq!(queue.push(&[a, a, b]).await.unwrap(), 2);
    assert_eq!(
        queue.push(&[a, b]).await.unwrap(),
        0,
        "both are queued already"
    );
    assert_eq!(queue.ready_len().await.unwrap(), 2);
    // An id waiting in `delayed` (a retry not due yet) that is pushed is made ready now.
    let waiting = Uuid::new_v4();
    let mut conn = queue.redis().connection();
    let _: () = conn
        .zadd(keys.delayed(), waiting.to_string(), i64::MAX)
        .await
        .unwrap();
    let _: () = conn
        .hset(
            keys.members(),
            waiting.to_string(),
            Lane::Interactive.code(),
        )
        .await
        .unwrap();
    assert_eq!(queue.push(&[waiting]).await.unwrap(), 1);
    assert_eq!(queue.delayed_len().await.unwrap(), 0);
    assert_eq!(queue.ready_len().await.unwrap(), 3);
}

#[tokio::test]
async fn a_delivery_that_fails_is_delivered_again() {
    testkit::init_tracing();
    let redis = TestRedis::new();
    let queue = Queue::connect(&redis.config()).await.unwrap();
    let running = start(&redis.config(), fast_config(), 4).await;
    let id = Uuid::new_v4();
    running.recorder.fail_first.lock().unwrap().push(id);
    queue.push(&[id]).await.unwrap();
    running.wait_for_total(2, Duration::from_secs(5)).await;
    assert_eq!(running.recorder.seen.lock().unwrap()[&id], 2);
    running.stop().await;
    assert_eq!(
        redis.keys().await,
        Vec::<String>::new(),
        "settled: nothing left"
    );
}

#[tokio::test]
async fn a_stopped_worker_takes_nothing_more_and_leaves_no_trace() {
    testkit::init_tracing();
    let redis = TestRedis::new();
    let queue = Queue::connect(&redis.config()).await.unwrap();
    let running = start(&redis.config(), fast_config(), 4).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let recorder = running.recorder.clone();
    let stopping = Instant::now();
    running.stop().await;
    println!("idle shutdown took {:?}", stopping.elapsed());

    let id = Uuid::new_v4();
    queue.push(&[id]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(recorder.total(), 0, "nothing was taken after the stop");
    assert_eq!(
        queue.ready_len().await.unwrap(),
        1,
        "the job waits for another worker"
    );
    let mut keys = redis.keys().await;
    keys.sort();
    assert_eq!(
        keys,
        vec![queue.redis().keys().members(), queue.redis().keys().ready()],
        "no in-flight list or heartbeat remains"
    );
}

#[tokio::test]
async fn ids_held_but_not_run_at_shutdown_go_back_to_the_queue() {
    testkit::init_tracing();
    let redis = TestRedis::new();
    let queue = Queue::connect(&redis.config()).await.unwrap();
    let keys = queue.redis().keys().clone();
    let running = start(&redis.config(), fast_config(), 4).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut conn = queue.redis().connection();
    let workers: Vec<String> = conn.smembers(keys.workers()).await.unwrap();
    assert_eq!(workers.len(), 1, "the worker registered itself");
    // An id in the worker's in-flight list that it never ran, as when the reply of its last
    // BLMOVE was cut off by the shutdown.
    let held = Uuid::new_v4();
    let _: () = conn
        .rpush(keys.inflight(&workers[0]), held.to_string())
        .await
        .unwrap();
    running.stop().await;
    let ready: Vec<String> = conn.lrange(keys.ready(), 0, -1).await.unwrap();
    assert_eq!(
        ready,
        vec![held.to_string()],
        "the held id is back in the ready list"
    );
    assert_eq!(
        redis.keys().await,
        vec![keys.ready()],
        "and nothing else remains"
    );
}

#[tokio::test]
async fn a_worker_puts_back_the_in_flight_ids_redis_lost_so_its_death_still_hands_them_back() {
    testkit::init_tracing();
    let redis = TestRedis::new();
    let queue = Queue::connect(&redis.config()).await.unwrap();
    let keys = queue.redis().keys().clone();
    let mut running = start(&redis.config(), fast_config(), 4).await;
    *running.recorder.takes.lock().unwrap() = Duration::from_secs(3);
    let id = Uuid::new_v4();
    queue.push(&[id]).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), running.deliveries.recv())
        .await
        .expect("delivered");

    // Redis restarts empty while the job runs.
    let lost = redis.keys().await;
    let _: () = queue.redis().connection().del(lost).await.unwrap();
    // The next beat (every 200 ms here) finds its heartbeat gone and puts the id back.
    let mut conn = queue.redis().connection();
    let workers: Vec<String> = loop {
        let workers: Vec<String> = conn.smembers(keys.workers()).await.unwrap();
        if !workers.is_empty() {
            break workers;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let inflight: Vec<String> = conn
        .lrange(keys.inflight(&workers[0]), 0, -1)
        .await
        .unwrap();
    assert_eq!(inflight, vec![id.to_string()], "in flight again");
    assert_eq!(
        queue.lanes_of(&[id]).await.unwrap(),
        vec![Some(Lane::Interactive)],
        "and known to the queue, in its lane, so nobody pushes it twice"
    );
    running.stop().await;
}

/// Deliveries in order until `n` came (or the bound passed).
async fn first_deliveries(
    running: &mut Running,
    n: usize,
    within: Duration,
) -> Vec<(Uuid, Instant)> {
    let mut got = Vec::new();
    while got.len() < n {
        let next = tokio::time::timeout(within, running.deliveries.recv())
            .await
            .expect("deliveries keep coming")
            .expect("recorder alive");
        got.push(next);
    }
    got
}

#[tokio::test]
async fn people_go_first_and_the_batch_still_gets_one_claim_in_ten() {
    testkit::init_tracing();
    let redis = TestRedis::new();
    let queue = Queue::connect(&redis.config()).await.unwrap();
    let batch: Vec<Uuid> = (0..40).map(|_| Uuid::new_v4()).collect();
    let people: Vec<Uuid> = (0..40).map(|_| Uuid::new_v4()).collect();
    // The batch was queued first; people's jobs came after it.
    queue.push_in(Lane::Batch, &batch).await.unwrap();
    queue.push(&people).await.unwrap();
    assert_eq!(queue.ready_lens().await.unwrap(), (40, 40));

    let mut running = start(&redis.config(), fast_config(), 1).await;
    let order = first_deliveries(&mut running, 80, Duration::from_secs(10)).await;
    let lanes: Vec<Lane> = order
        .iter()
        .map(|(id, _)| {
            if batch.contains(id) {
                Lane::Batch
            } else {
                Lane::Interactive
            }
        })
        .collect();
    // With one slot and QUEUE_BATCH_CLAIM_EVERY = 10: claims 10, 20, 30, 40 take the batch
    // first, every other claim a person's job while any waits.
    let batch_in_first_44 = lanes[..44].iter().filter(|l| **l == Lane::Batch).count();
    assert_eq!(batch_in_first_44, 4, "order: {lanes:?}");
    let last_person = lanes.iter().rposition(|l| *l == Lane::Interactive).unwrap();
    assert_eq!(
        last_person, 43,
        "every person's job within the first 44: {lanes:?}"
    );
    running.stop().await;
    assert_eq!(queue.ready_len().await.unwrap(), 0);
}

#[tokio::test]
async fn batch_jobs_never_take_the_slots_kept_for_people() {
    testkit::init_tracing();
    let redis = TestRedis::new();
    let queue = Queue::connect(&redis.config()).await.unwrap();
    // Four slots, two of them for batch jobs; each job takes 2 s.
    let mut running = start_with(&redis.config(), fast_config(), 4, 2).await;
    *running.recorder.takes.lock().unwrap() = Duration::from_secs(2);
    let batch: Vec<Uuid> = (0..6).map(|_| Uuid::new_v4()).collect();
    queue.push_in(Lane::Batch, &batch).await.unwrap();
    let early = first_deliveries(&mut running, 2, Duration::from_secs(10)).await;
    assert!(early.iter().all(|(id, _)| batch.contains(id)));

    // A person's job, pushed while the batch fills its two slots, starts at once.
    let person = Uuid::new_v4();
    let pushed = Instant::now();
    queue.push(&[person]).await.unwrap();
    let mut rest = first_deliveries(&mut running, 5, Duration::from_secs(20)).await;
    let (_, started) = rest
        .iter()
        .find(|(id, _)| *id == person)
        .expect("delivered");
    // A slot was free and the worker was blocked on the interactive list: milliseconds. The
    // bound is generous for a loaded machine; waiting for a batch slot would take 2 s.
    assert!(
        started.duration_since(pushed) < Duration::from_secs(1),
        "a person's job waited {:?}",
        started.duration_since(pushed)
    );

    // Never more than two batch jobs at once: a slot's next start is ≥ 2 s after its previous
    // one, so any 1.5 s holds at most two batch starts.
    let mut starts: Vec<Instant> = early.iter().map(|(_, t)| *t).collect();
    rest.retain(|(id, _)| batch.contains(id));
    starts.extend(rest.iter().map(|(_, t)| *t));
    assert_eq!(starts.len(), 6, "every batch job ran");
    for (i, t) in starts.iter().enumerate() {
        let within = starts[..=i]
            .iter()
            .filter(|s| t.duration_since(**s) < Duration::from_millis(1_500))
            .count();
        assert!(within <= 2, "{within} batch jobs started within 1.5 s");
    }
    running.stop().await;
}

#[tokio::test]
async fn a_job_keeps_its_lane_through_a_retry_a_dead_worker_and_a_redelivery() {
    let redis = TestRedis::new();
    let queue = Queue::connect(&redis.config()).await.unwrap();
    let keys = queue.redis().keys().clone();
    let mut conn = queue.redis().connection();
    let (batch, person) = (Uuid::new_v4(), Uuid::new_v4());
    queue.push_in(Lane::Batch, &[batch]).await.unwrap();
    queue.push(&[person]).await.unwrap();
    // Pushed again in the other lane: already queued, so nothing changes.
    assert_eq!(queue.push(&[batch]).await.unwrap(), 0);
    assert_eq!(queue.ready_lens().await.unwrap(), (1, 1));

    // Taken by a worker that dies: the reaper returns each to its own lane.
    let dead = "dead-worker";
    let _: () = conn.sadd(keys.workers(), dead).await.unwrap();
    for list in [keys.ready(), keys.ready_batch()] {
        let _: Option<String> = redis::cmd("LMOVE")
            .arg(list)
            .arg(keys.inflight(dead))
            .arg("RIGHT")
            .arg("LEFT")
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    assert_eq!(queue.ready_lens().await.unwrap(), (0, 0));
    assert_eq!(maintenance::reap_dead_workers(&queue).await.unwrap(), 2);
    let ready_batch: Vec<String> = conn.lrange(keys.ready_batch(), 0, -1).await.unwrap();
    assert_eq!(ready_batch, vec![batch.to_string()]);
    let ready: Vec<String> = conn.lrange(keys.ready(), 0, -1).await.unwrap();
    assert_eq!(ready, vec![person.to_string()]);

    // Waiting for a retry, then due: back to its own lane.
    for (list, id) in [(keys.ready(), person), (keys.ready_batch(), batch)] {
        let _: () = conn.lrem(list, 1, id.to_string()).await.unwrap();
        let _: () = conn.zadd(keys.delayed(), id.to_string(), 0).await.unwrap();
    }
    assert_eq!(maintenance::promote_due(&queue).await.unwrap(), 2);
    assert_eq!(queue.ready_lens().await.unwrap(), (1, 1));
    let ready_batch: Vec<String> = conn.lrange(keys.ready_batch(), 0, -1).await.unwrap();
    assert_eq!(ready_batch, vec![batch.to_string()]);
    assert_eq!(
        queue
            .lanes_of(&[batch, person, Uuid::new_v4()])
            .await
            .unwrap(),
        vec![Some(Lane::Batch), Some(Lane::Interactive), None]
    );
}

#[tokio::test]
async fn an_upgrade_gives_the_ids_of_the_old_members_set_their_lane_once() {
    let redis = TestRedis::new();
    let queue = Queue::connect(&redis.config()).await.unwrap();
    let (waiting, pushed) = (Uuid::new_v4(), Uuid::new_v4());
    // What a worker of the version before lanes left: a members set and a ready list.
    let old = format!("{{{}}}:queue:members", redis.config().prefix);
    let mut conn = queue.redis().connection();
    let _: () = conn.sadd(&old, waiting.to_string()).await.unwrap();
    let _: () = conn
        .lpush(queue.redis().keys().ready(), waiting.to_string())
        .await
        .unwrap();
    assert_eq!(queue.upgrade().await.unwrap(), 1);
    assert_eq!(queue.upgrade().await.unwrap(), 0, "once");
    let exists: bool = conn.exists(&old).await.unwrap();
    assert!(!exists);
    // Known to the queue, so the reconciler's push of it adds no second copy.
    assert_eq!(
        queue
            .push_first(Lane::Interactive, &[waiting, pushed])
            .await
            .unwrap(),
        1
    );
    assert_eq!(queue.ready_lens().await.unwrap(), (2, 0));
}

/// On a Redis Cluster every key of a deployment is in one slot (the prefix is their hash tag),
/// so the queue's scripts touch one node; and `CLIENT KILL` of the blocking connection reaches
/// the node that connection is on, so shutdown does not wait out a parked `BLMOVE`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_the_keys_share_one_node_and_the_blocking_connection_can_be_killed() {
    let cluster = testkit::RedisCluster::start().await;
    let config = cluster.config();
    let queue = Queue::connect(&config).await.unwrap();
    let ids: Vec<Uuid> = (0..20).map(|_| Uuid::new_v4()).collect();
    assert_eq!(queue.push(&ids).await.unwrap(), 20);
    assert_eq!(queue.push(&ids).await.unwrap(), 0, "pushed once");
    assert_eq!(queue.ready_len().await.unwrap(), 20);

    let mut holders = Vec::new();
    for port in &cluster.ports {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(queue.redis().keys().pattern())
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            holders.push((*port, keys));
        }
    }
    assert_eq!(holders.len(), 1, "one node holds every key: {holders:?}");

    let ready = queue.redis().keys().ready();
    let mut blocking = queue
        .redis()
        .target()
        .dedicated(Duration::from_secs(30))
        .await
        .unwrap();
    let mut client_id = redis::cmd("CLIENT");
    client_id.arg("ID");
    let id: i64 = blocking.query_at(&ready, client_id).await.unwrap();
    let mut kill = redis::cmd("CLIENT");
    kill.arg("KILL").arg("ID").arg(id);
    let killed: i64 = queue
        .redis()
        .connection()
        .query_at(&ready, kill)
        .await
        .unwrap();
    assert_eq!(killed, 1, "the kill reached the blocking connection's node");
}
