//! The worker's own `/metrics` endpoint: Prometheus text with the pool and queue gauges sampled
//! at the scrape.

use shared::queue::Queue;
use testkit::{TestDb, TestRedis};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn the_worker_serves_prometheus_text_with_its_pool_and_queue() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let queue = Queue::connect(&redis.config()).await.unwrap();
    for _ in 0..3 {
        queue.push(&[uuid::Uuid::new_v4()]).await.unwrap();
    }
    telemetry::metrics();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let server = tokio::spawn(worker::metrics::serve(
        listener,
        db.pool.clone(),
        queue,
        stop.clone(),
    ));

    let body = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    })
    .await
    .unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("content-type: text/plain"));
    assert!(body.contains("queue_depth{list=\"ready\"} 3"), "{body}");
    assert!(body.contains("db_pool_connections{process=\"worker\",state=\"in_use\"}"));
    stop.cancel();
    server.await.unwrap().unwrap();
}
