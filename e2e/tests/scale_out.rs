//! The whole system over a three-node Redis Cluster, as it is scaled out: menus are made by two
//! workers, a long poll wakes on the job's event, and a cancel reaches the running attempt (both
//! published on one node and received on another). PgBouncer in transaction mode is exercised
//! by the scale-out benchmark (`bench/run.sh scale-out`): it needs PgBouncer 1.21 or later, which
//! the distribution's packages do not offer everywhere.

use std::time::{Duration, Instant};

use serde_json::json;
use standin::Latency;
use testkit::{RedisCluster, SystemOptions, spawn_system};

fn scaled_out(cluster: &RedisCluster, latency_ms: u64) -> SystemOptions {
    SystemOptions {
        redis: Some(cluster.config()),
        workers: 2,
        standin: standin::Config {
            latency: Latency::fixed(Duration::from_millis(latency_ms)),
            ..Default::default()
        },
        ..SystemOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn menus_are_made_over_a_redis_cluster() {
    let cluster = RedisCluster::start().await;
    let system = spawn_system(scaled_out(&cluster, 20)).await;
    let (ann, bo) = (system.api.user().await, system.api.user().await);
    let mut jobs = Vec::new();
    for i in 0..24 {
        let who = if i % 2 == 0 { &ann } else { &bo };
        let days = 1 + i % 3;
        jobs.push((
            who,
            days,
            system.submit_job(who, json!({"days": days})).await,
        ));
    }
    for (who, days, job) in &jobs {
        let view = system
            .wait_until_finished(who, *job, Duration::from_secs(60))
            .await;
        assert_eq!(view["status"], "succeeded", "{view}");
        assert_eq!(view["progress"]["days_done"], *days, "{view}");
        let menu_id = view["menu_id"].as_str().expect("a menu id");
        let (status, menu) = system.get_json(who, &format!("/v1/menus/{menu_id}")).await;
        assert_eq!(status, 200, "{menu}");
        assert_eq!(menu["days"].as_array().map(Vec::len), Some(*days as usize));
    }
    let menus: i64 = sqlx::query_scalar("SELECT count(*) FROM menus")
        .fetch_one(&system.api.db.pool)
        .await
        .unwrap();
    assert_eq!(menus, jobs.len() as i64, "one menu per job");
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn over_a_cluster_a_long_poll_wakes_on_the_change_and_a_cancel_stops_the_attempt() {
    let cluster = RedisCluster::start().await;
    let system = spawn_system(scaled_out(&cluster, 1_000)).await;
    let cook = system.api.user().await;
    let job = system.submit_job(&cook, json!({"days": 7})).await;

    // The job changes (claimed, then a day saved) within about a second: a long poll of 25 s
    // answers on the event, not at its end. 15 s is slack for a loaded machine.
    let (_, first) = system.get_json(&cook, &format!("/v1/jobs/{job}")).await;
    let started = Instant::now();
    let (status, changed) = system
        .get_json(&cook, &format!("/v1/jobs/{job}?wait=25"))
        .await;
    assert_eq!(status, 200);
    assert_ne!(first, changed, "the long poll answered with a change");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "answered after {:?}",
        started.elapsed()
    );

    assert_eq!(system.cancel(&cook, job).await, 200);
    let cancelled_at = Instant::now();
    let calls_at_cancel = system.standin.requests().len();
    // A call takes 1 s: past two of them, a running attempt would have started another.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let calls = system.standin.requests().len();
    assert!(
        calls <= calls_at_cancel + 1,
        "calls went on after the cancel: {calls_at_cancel} then {calls} in {:?}",
        cancelled_at.elapsed()
    );
    let (_, view) = system.get_json(&cook, &format!("/v1/jobs/{job}")).await;
    assert_eq!(view["status"], "cancelled");
    system.stop().await;
}
