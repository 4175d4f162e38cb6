//! `/metrics` on the API and on the worker: valid Prometheus text with the series operators
//! rely on, and counters that move when a job runs.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use testkit::{SystemOptions, TestSystem, spawn_system};

/// Every sample as `name{label="value",…}` → value, parsed from Prometheus text.
fn samples(text: &str) -> HashMap<String, f64> {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
    scrape
        .samples
        .into_iter()
        .map(|s| {
            let mut labels: Vec<String> = s
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{v}\""))
                .collect();
            labels.sort();
            let value = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                prometheus_parse::Value::Histogram(buckets) => {
                    buckets.last().map_or(0.0, |b| b.count)
                }
                prometheus_parse::Value::Summary(_) => 0.0,
            };
            (format!("{}{{{}}}", s.metric, labels.join(",")), value)
        })
        .collect()
}

fn sum(samples: &HashMap<String, f64>, name: &str) -> f64 {
    samples
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{name}{{")))
        .map(|(_, v)| v)
        .sum()
}

async fn scrape(system: &TestSystem) -> HashMap<String, f64> {
    let response = system.api.get_anonymous("/metrics").await;
    assert!(response.status().is_success());
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    samples(&response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_parse_name_the_series_and_move_when_a_job_runs() {
    let system = spawn_system(SystemOptions::default()).await;
    let cook = system.api.user().await;
    let before = scrape(&system).await;

    let job = system.submit_job(&cook, json!({"days": 2})).await;
    let view = system
        .wait_until_finished(&cook, job, Duration::from_secs(30))
        .await;
    assert_eq!(view["status"], "succeeded");
    // The job reads as succeeded once its menu commits; the worker records the run's duration
    // just after, when the grouped write answers it. Scrape until it has (10 s: a loaded
    // machine).
    let mut after = scrape(&system).await;
    let recorded =
        |samples: &HashMap<String, f64>| samples.keys().any(|k| k.starts_with("job_run_seconds{"));
    let since = std::time::Instant::now();
    while !recorded(&after) && since.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        after = scrape(&system).await;
    }

    for series in [
        "http_requests_total",
        "http_request_duration_seconds",
        "jobs_enqueued_total",
        "jobs_claimed_total",
        "jobs_succeeded_total",
        "job_wait_seconds",
        "job_run_seconds",
        "llm_calls_total",
        "llm_call_duration_seconds",
        "llm_tokens_total",
        "llm_capacity_wait_seconds",
        "db_pool_connections",
        "db_connection_held_seconds",
        "queue_depth",
    ] {
        assert!(
            after.keys().any(|k| k.starts_with(&format!("{series}{{"))),
            "{series} is missing from /metrics"
        );
    }
    // Counters are per process, and this one process runs the API and the worker: they moved
    // by exactly what the job did.
    let moved = |name: &str| sum(&after, name) - sum(&before, name);
    assert_eq!(moved("jobs_enqueued_total"), 1.0);
    assert_eq!(moved("jobs_claimed_total"), 1.0);
    assert_eq!(moved("jobs_succeeded_total"), 1.0);
    assert_eq!(moved("llm_calls_total"), 2.0, "one call per day");
    assert!(moved("llm_tokens_total") > 0.0);
    assert!(
        moved("db_connection_held_seconds") >= 4.0,
        "claim, two days, the menu"
    );
    assert!(
        after.contains_key(
            "llm_calls_total{endpoint=\"default\",model=\"gpt-4o-mini\",outcome=\"ok\"}"
        ),
        "calls are counted by endpoint, model and outcome"
    );
    assert!(
        after
            .keys()
            .any(|k| k.starts_with("http_requests_total{") && k.contains("route=\"/v1/menus\"")),
        "requests are counted by route template"
    );
    system.stop().await;
}
