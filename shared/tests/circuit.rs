//! The provider circuit in Redis, seen from two worker processes' circuits: a fleet error
//! opens it for both, one of them gets the probe when it is due, a failed probe doubles the
//! wait (up to its bound) and a good answer closes it for both.

use std::time::Duration;

use chrono::Utc;
use shared::keyspace::Redis;
use shared::llm::circuit::{Circuit, CircuitConfig, Gate};
use testkit::TestRedis;

const MODEL: &str = "gpt-4o-mini";

/// Two workers' circuits on one Redis prefix: the first probe 300 ms after opening, at most
/// 600 ms apart.
async fn two_workers(redis: &TestRedis) -> (Circuit, Circuit, Redis) {
    let config = CircuitConfig {
        probe: Duration::from_millis(300),
        probe_max: Duration::from_millis(600),
    };
    let a = Redis::connect(&redis.config()).await.unwrap();
    let b = Redis::connect(&redis.config()).await.unwrap();
    let circuits = (
        Circuit::new(a.clone(), config.clone(), Duration::from_secs(1)),
        Circuit::new(b, config, Duration::from_secs(1)),
    );
    (circuits.0, circuits.1, a)
}

/// How far ahead of now `gate` says to ask again; panics unless it is open.
fn wait_of(gate: Gate) -> Duration {
    match gate {
        Gate::Open { retry_at } => (retry_at - Utc::now()).to_std().unwrap_or_default(),
        other => panic!("expected an open circuit, got {other:?}"),
    }
}

#[tokio::test]
async fn a_fleet_error_opens_the_circuit_for_every_worker_and_one_of_them_probes_when_due() {
    let redis = TestRedis::new();
    let (a, b, handle) = two_workers(&redis).await;
    assert_eq!(a.check(MODEL).await, Gate::Closed);
    assert_eq!(b.check(MODEL).await, Gate::Closed);
    assert!(Circuit::open_circuits(&handle).await.unwrap().is_empty());

    let probe_at = a
        .open(
            MODEL,
            "llm_quota_exceeded",
            "You exceeded your current quota",
        )
        .await;
    let wait = (probe_at - Utc::now()).to_std().unwrap_or_default();
    assert!(
        wait <= Duration::from_millis(300),
        "first probe in {wait:?}"
    );
    assert!(wait_of(b.check(MODEL).await) <= Duration::from_millis(300));
    let open = Circuit::open_circuits(&handle).await.unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].model, MODEL);
    assert_eq!(open[0].code, "llm_quota_exceeded");
    assert_eq!(open[0].probe_at, probe_at);
    assert!(open[0].opened_at <= probe_at);

    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(b.check(MODEL).await, Gate::Probe, "the first to ask probes");
    // The other waits for the probe's outcome, asking again within a second.
    assert!(wait_of(a.check(MODEL).await) <= Duration::from_secs(1));
}

#[tokio::test]
async fn a_failed_probe_doubles_the_wait_up_to_its_bound_and_a_good_answer_closes_it() {
    let redis = TestRedis::new();
    let (a, b, handle) = two_workers(&redis).await;
    let first = a
        .open(MODEL, "llm_invalid_api_key", "Incorrect API key")
        .await;
    // Another worker meeting the same error while no probe runs changes nothing.
    assert_eq!(
        b.open(MODEL, "llm_invalid_api_key", "Incorrect API key")
            .await,
        first
    );

    let mut waits = Vec::new();
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(650)).await;
        assert_eq!(a.check(MODEL).await, Gate::Probe);
        let before = Utc::now();
        let next = a
            .open(MODEL, "llm_invalid_api_key", "Incorrect API key")
            .await;
        let after = Utc::now();
        // Measured from both sides of the call, so a stalled (busy) machine cannot shorten
        // the wait seen: at least the next wait from before it, at most from after it.
        let span = |from: chrono::DateTime<Utc>| (next - from).to_std().unwrap_or_default();
        waits.push((span(before), span(after)));
    }
    // 300 ms doubled is 600 ms, the bound: the next failure keeps it there (a few ms of
    // rounding to whole milliseconds allowed).
    for (from_before, from_after) in &waits {
        assert!(
            *from_before >= Duration::from_millis(590) && *from_after <= Duration::from_millis(600),
            "{waits:?}"
        );
    }

    tokio::time::sleep(Duration::from_millis(650)).await;
    assert_eq!(b.check(MODEL).await, Gate::Probe);
    b.close(MODEL).await;
    assert_eq!(a.check(MODEL).await, Gate::Closed);
    assert_eq!(b.check(MODEL).await, Gate::Closed);
    assert!(Circuit::open_circuits(&handle).await.unwrap().is_empty());
}
