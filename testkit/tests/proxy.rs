//! The cuttable link gives one client an outage of the shared PostgreSQL, and ends it, while the
//! server itself keeps running.

use std::time::{Duration, Instant};

use sqlx::PgPool;
use testkit::{TcpProxy, TestDb};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ACQUIRE_TIMEOUT: Duration = Duration::from_millis(300);

async fn select_one(pool: &PgPool) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar("SELECT 1").fetch_one(pool).await
}

#[tokio::test]
async fn a_pool_through_the_proxy_loses_its_database_when_cut_and_regains_it_when_restored() {
    let db = TestDb::new().await;
    let proxy = db.proxy().await;
    let pool = shared::db::connect(&db.config_via(&proxy, 2, ACQUIRE_TIMEOUT))
        .await
        .unwrap();
    assert_eq!(select_one(&pool).await.unwrap(), 1);
    let mut open = pool.acquire().await.unwrap();

    proxy.cut();
    let on_open = sqlx::query("SELECT 1").execute(&mut *open).await;
    assert!(on_open.is_err(), "the open connection is dropped");
    drop(open);
    let started = Instant::now();
    assert!(
        pool.acquire().await.is_err(),
        "no new connection gets through"
    );
    assert!(started.elapsed() < ACQUIRE_TIMEOUT + Duration::from_secs(2));

    proxy.restore();
    assert_eq!(select_one(&pool).await.unwrap(), 1);
}

#[tokio::test]
async fn dropping_the_proxy_ends_its_connections() {
    let target = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = TcpProxy::start(target.local_addr().unwrap()).await;
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
    let (mut server, _) = target.accept().await.unwrap();
    client.write_all(b"ping").await.unwrap();
    let mut received = [0; 4];
    server.read_exact(&mut received).await.unwrap();
    assert_eq!(&received, b"ping");

    let addr = proxy.addr();
    drop(proxy);
    let mut byte = [0; 1];
    assert!(matches!(client.read(&mut byte).await, Ok(0) | Err(_)));
    // The listener may close a moment after the drop; a connection it takes meanwhile is ended.
    if let Ok(mut late) = TcpStream::connect(addr).await {
        assert!(matches!(late.read(&mut byte).await, Ok(0) | Err(_)));
    }
}
