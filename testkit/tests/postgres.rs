//! A private PostgreSQL server serves, restarts with its data kept, and is gone once dropped.

use sqlx::{Connection, PgConnection};
use testkit::PrivatePostgres;

#[tokio::test]
async fn a_private_server_keeps_its_data_across_a_restart_and_stops_when_dropped() {
    let mut server = PrivatePostgres::start().await;
    server.create_database("menus_private").await;
    let url = server.url("menus_private");
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(one, 1);
    sqlx::query("CREATE TABLE kept (id int)")
        .execute(&mut conn)
        .await
        .unwrap();

    server.restart().await;
    let on_old = sqlx::query("SELECT 1").execute(&mut conn).await;
    assert!(on_old.is_err(), "a restart drops every connection");
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM kept")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    drop(conn);

    drop(server);
    assert!(PgConnection::connect(&url).await.is_err());
}
