//! One worker id per process: the attempt row a worker writes when it claims a job names the
//! in-flight list in Redis that holds the job, so an operator can tell from either side which
//! process runs what.

use std::time::{Duration, Instant};

use redis::AsyncCommands;
use serde_json::json;
use standin::Latency;
use testkit::{SystemOptions, spawn_system};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_attempt_row_names_the_in_flight_list_holding_its_job() {
    let system = spawn_system(SystemOptions {
        standin: standin::Config {
            latency: Latency::fixed(Duration::from_millis(500)),
            ..standin::Config::default()
        },
        ..SystemOptions::default()
    })
    .await;
    let cook = system.api.user().await;
    let job = system.submit_job(&cook, json!({"days": 3})).await;

    let deadline = Instant::now() + Duration::from_secs(10);
    let attempt_worker: String = loop {
        let row: Option<String> =
            sqlx::query_scalar("SELECT worker_id FROM job_attempts WHERE job_id = $1")
                .bind(job)
                .fetch_optional(&system.pool)
                .await
                .unwrap();
        if let Some(worker) = row {
            break worker;
        }
        assert!(Instant::now() < deadline, "no attempt was claimed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    let redis = system.api.queue.redis();
    let in_flight: Vec<String> = redis
        .connection()
        .lrange(redis.keys().inflight(&attempt_worker), 0, -1)
        .await
        .unwrap();
    assert_eq!(in_flight, [job.to_string()], "{attempt_worker}");
    let workers: Vec<String> = redis
        .connection()
        .smembers(redis.keys().workers())
        .await
        .unwrap();
    assert_eq!(workers, [attempt_worker]);

    let view = system
        .wait_until_finished(&cook, job, Duration::from_secs(30))
        .await;
    assert_eq!(view["status"], "succeeded", "{view}");
    system.stop().await;
}
