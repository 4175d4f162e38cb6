//! The fleet budget's reservations in Redis, seen from two worker processes' budgets: slots are
//! spaced evenly across both, a slot too far away is not reserved, a 429's pause pushes every
//! slot past it, and an unlimited budget still honours the pause.

use std::time::{Duration, Instant};

use shared::keyspace::Redis;
use shared::llm::budget::{Admission, Budget, BudgetConfig};
use shared::queue::Lane;
use testkit::TestRedis;

fn config(rpm: Option<u32>, max_wait_ms: u64) -> BudgetConfig {
    BudgetConfig {
        rpm,
        tpm: None,
        window: Duration::from_secs(60),
        utilization: 0.99,
        max_wait: Duration::from_millis(max_wait_ms),
        interactive_share: 0.3,
        interactive_idle: Duration::from_secs(15),
        batch_lookahead: Duration::from_millis(100),
    }
}

async fn two_processes(redis: &TestRedis, config: BudgetConfig) -> (Budget, Budget) {
    let a = Redis::connect(&redis.config()).await.unwrap();
    let b = Redis::connect(&redis.config()).await.unwrap();
    (Budget::new(a, config.clone()), Budget::new(b, config))
}

fn waited(admission: Admission) -> Duration {
    match admission {
        Admission::Go { waited } => waited,
        Admission::Later { after } => panic!("no slot within the wait (next in {after:?})"),
    }
}

#[tokio::test]
async fn slots_are_spaced_evenly_across_every_process() {
    let redis = TestRedis::new();
    // 600 RPM at 99 %, less one call: a slot every 60 s / 593 ≈ 101 ms.
    let (a, b) = two_processes(&redis, config(Some(600), 10_000)).await;
    let started = Instant::now();
    let (first, second) = tokio::join!(
        async {
            let mut w = Vec::new();
            for _ in 0..3 {
                w.push(waited(a.admit("m", 1_000, Lane::Interactive).await));
            }
            w
        },
        async {
            let mut w = Vec::new();
            for _ in 0..3 {
                w.push(waited(b.admit("m", 1_000, Lane::Interactive).await));
            }
            w
        },
    );
    let elapsed = started.elapsed();
    // Six calls need five spacings after the first, whichever process makes them.
    assert!(
        elapsed >= Duration::from_millis(5 * 101 - 5),
        "six slots in {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(5 * 101 + 400),
        "six slots took {elapsed:?}"
    );
    assert!(
        first.iter().chain(&second).any(|w| w.is_zero()),
        "the first slot is free"
    );
    assert!(
        !a.is_local() && !b.is_local(),
        "both used the shared budget"
    );
}

#[tokio::test]
async fn a_slot_beyond_the_longest_wait_is_not_reserved() {
    let redis = TestRedis::new();
    // 60 RPM: a slot every ~1.03 s. Three callers at once get slots at 0, 1.03 and 2.06 s; with
    // 1.5 s as the longest wait, the third is told when to come back and reserves nothing.
    let (a, b) = two_processes(&redis, config(Some(60), 1_500)).await;
    let started = Instant::now();
    let (x, y, z) = tokio::join!(
        a.admit("m", 1, Lane::Interactive),
        b.admit("m", 1, Lane::Interactive),
        a.admit("m", 1, Lane::Interactive)
    );
    let mut later = Vec::new();
    let mut went = 0;
    for admission in [x, y, z] {
        match admission {
            Admission::Go { .. } => went += 1,
            Admission::Later { after } => later.push(after),
        }
    }
    assert_eq!(went, 2);
    assert_eq!(later.len(), 1);
    assert!(
        later[0] > Duration::from_millis(1_500) && later[0] < Duration::from_millis(2_200),
        "{later:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "nobody waited for the refused slot"
    );
    // Nothing was reserved for it: the next slot is the third one, not a fourth.
    match a.admit("m", 1, Lane::Interactive).await {
        Admission::Go { waited } => assert!(waited < Duration::from_millis(1_100), "{waited:?}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_pause_after_a_429_holds_every_process_whatever_the_budget() {
    let redis = TestRedis::new();
    for rpm in [Some(6_000), None] {
        let (a, b) = two_processes(&redis, config(rpm, 10_000)).await;
        a.pause("paused-model", Duration::from_millis(600)).await;
        // A shorter pause never shortens a longer one.
        a.pause("paused-model", Duration::from_millis(10)).await;
        let started = Instant::now();
        let wait = waited(b.admit("paused-model", 1, Lane::Interactive).await);
        assert!(
            wait >= Duration::from_millis(550),
            "{rpm:?}: waited {wait:?}"
        );
        assert!(started.elapsed() >= Duration::from_millis(550));
        // Another model is not paused.
        assert!(
            waited(b.admit("other-model", 1, Lane::Interactive).await) < Duration::from_millis(100)
        );
    }
}

#[tokio::test]
async fn without_redis_a_call_larger_than_the_local_burst_is_paced_too() {
    let mut server = testkit::PrivateRedis::start().await;
    let redis = Redis::connect(&server.config()).await.unwrap();
    // 1,000 tokens a second: a local share paces about 1.1 ms per token.
    let budget = Budget::new(
        redis,
        BudgetConfig {
            rpm: None,
            tpm: Some(1_000),
            window: Duration::from_secs(1),
            max_wait: Duration::from_secs(10),
            ..config(None, 0)
        },
    );
    server.stop();
    // The first call sizes the local limiter's burst: 100 tokens, let through at once.
    let first = waited(budget.admit("gpt-4o-mini", 100, Lane::Interactive).await);
    assert!(budget.is_local(), "redis is down: the local share paces");
    // Generous: a loaded machine may pause the test; the point is the next call's wait.
    assert!(
        first < Duration::from_millis(300),
        "the burst passes: {first:?}"
    );
    // Five times the burst: it waits for all of its tokens (≈ 560 ms), it is not waved through.
    let second = waited(budget.admit("gpt-4o-mini", 500, Lane::Interactive).await);
    assert!(
        second >= Duration::from_millis(400),
        "a call above the burst went after {second:?}"
    );
}

/// Calls per second of `lane` that `tasks` callers of `budget` looping until `until` were
/// admitted to (over the time they actually took: the last calls end after `until`).
async fn flood(budget: &Budget, lane: Lane, tasks: usize, until: Instant) -> f64 {
    let started = Instant::now();
    let calls = admissions(budget, lane, tasks, until).await.len();
    calls as f64 / started.elapsed().as_secs_f64()
}

/// The wait of every admission of `lane` made by `tasks` callers looping until `until`.
async fn admissions(budget: &Budget, lane: Lane, tasks: usize, until: Instant) -> Vec<Duration> {
    let callers = (0..tasks).map(|_| {
        let budget = budget.clone();
        tokio::spawn(async move {
            let mut waits = Vec::new();
            while Instant::now() < until {
                waits.push(waited(budget.admit("m", 1, lane).await));
            }
            waits
        })
    });
    let mut waits = Vec::new();
    for caller in callers.collect::<Vec<_>>() {
        waits.extend(caller.await.unwrap());
    }
    waits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batch_leaves_people_their_share_and_takes_it_back_when_they_are_gone() {
    let redis = TestRedis::new();
    // 1,200 requests a minute: a slot every ≈ 50 ms, slow enough that a loaded machine's
    // callers keep up with it (each batch reservation is a Redis round trip, one at a time per
    // process). While people call, batch calls are spaced at ≥ 50 ms / 0.7; they book at most
    // 100 ms ahead; people count as gone 500 ms after their last call.
    let config = BudgetConfig {
        interactive_idle: Duration::from_millis(500),
        batch_lookahead: Duration::from_millis(100),
        ..config(Some(1_200), 10_000)
    };
    let slot = Duration::from_secs_f64(60.0 / (1_200.0 * 0.99 - 1.0));
    let (a, b) = two_processes(&redis, config).await;

    // The batch alone, from two processes with eight callers each: the whole budget.
    let alone = Duration::from_secs(3);
    let batch = flood(&a, Lane::Batch, 8, Instant::now() + alone);
    let other = flood(&b, Lane::Batch, 8, Instant::now() + alone);
    let (batch, other) = tokio::join!(batch, other);
    let rate = batch + other;
    let budget = 1.0 / slot.as_secs_f64();
    // Above the budget by at most a call: n calls take n − 1 slots, the first comes at the
    // start (at 20 a second over 3 s, 5 %).
    assert!(
        rate > 0.85 * budget && rate < 1.1 * budget,
        "the batch alone made {rate:.0} calls/s of {budget:.0}"
    );

    // People call every 200 ms (5/s, a quarter of the budget: under their 30 % share) while
    // the batch floods.
    let busy = Duration::from_secs(5);
    let until = Instant::now() + busy;
    let people = {
        let b = b.clone();
        tokio::spawn(async move {
            let mut waits = Vec::new();
            while Instant::now() < until {
                waits.push(waited(b.admit("m", 1, Lane::Interactive).await));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            waits
        })
    };
    let batch_rate = flood(&a, Lane::Batch, 16, until).await;
    let people = people.await.unwrap();
    assert!(
        batch_rate < 0.75 * budget,
        "the batch made {batch_rate:.0} calls/s of {budget:.0} while people called"
    );
    assert!(
        batch_rate > 0.5 * budget,
        "but kept most of its share: {batch_rate:.0}/s"
    );
    // A person's slot is at most the batch's lookahead and a slot or two away (the wait the
    // budget's script computes, not a time slept), far below what queueing behind sixteen
    // batch callers would be (0.8 s).
    let longest = people.iter().max().unwrap();
    assert!(
        *longest < Duration::from_millis(300),
        "a person waited {longest:?} for a slot"
    );

    // People gone for longer than the idle time: the batch has the whole budget again.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let again = Duration::from_secs(3);
    let rate = flood(&a, Lane::Batch, 16, Instant::now() + again).await;
    assert!(
        rate > 0.85 * budget,
        "the batch took back only {rate:.0} calls/s of {budget:.0}"
    );
}
