//! Rows written straight to a test's database, for tests that need a user or a queued job
//! without going through the API (a worker's tests, outages that cut the API off).

use domain::request::{GenerationRequest, MenuOptions, default_start_date};
use shared::db::jobs::{self, Inserted, NewJob};
use shared::db::users::{self, Role};
use sqlx::PgPool;
use uuid::Uuid;

/// A user (role `user`, a password hash nobody can log in with); returns its id.
pub async fn user(pool: &PgPool) -> Uuid {
    let mut conn = pool.acquire().await.expect("a connection");
    let email = format!("cook-{}@example.com", Uuid::new_v4().simple());
    users::insert(&mut conn, &email, "x", Role::User)
        .await
        .expect("insert a user")
        .id
}

/// A queued job of `days` days for `owner`, with three attempts and the default options,
/// written but not pushed to the queue; returns its id.
pub async fn queued_job(pool: &PgPool, owner: Uuid, days: u8) -> Uuid {
    let options = MenuOptions {
        days: Some(i64::from(days)),
        ..MenuOptions::default()
    };
    let new = NewJob {
        owner_id: owner,
        requested_by: owner,
        request: GenerationRequest::from_options(&options, default_start_date())
            .expect("valid options"),
        max_attempts: 3,
        idempotency_key: None,
        batch_id: None,
    };
    let mut conn = pool.acquire().await.expect("a connection");
    match jobs::insert(&mut conn, &new).await.expect("insert a job") {
        Inserted::Created(row) => row.id,
        Inserted::Existing(_) => unreachable!("no idempotency key"),
    }
}

/// `n` people who opted in to the weekly menu, each with `options` as their stored preferences
/// and Monday as their weekly start, written in two statements whatever `n`; returns their ids
/// (by creation).
pub async fn opted_in(pool: &PgPool, n: usize, options: &MenuOptions) -> Vec<Uuid> {
    let ids: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
    sqlx::query(
        "INSERT INTO users (id, email, password_hash)
         SELECT id, 'cook-' || id || '@example.com', 'x' FROM unnest($1::uuid[]) AS id",
    )
    .bind(&ids)
    .execute(pool)
    .await
    .expect("insert the people");
    sqlx::query(
        "INSERT INTO preferences (user_id, options, auto_generate_weekly)
         SELECT id, $2, true FROM unnest($1::uuid[]) AS id",
    )
    .bind(&ids)
    .bind(sqlx::types::Json(options))
    .execute(pool)
    .await
    .expect("insert their preferences");
    ids
}
