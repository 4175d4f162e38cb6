//! Accounts: email, argon2id password hash, role, and whether the account is disabled.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

/// What an account may do. Coaches act for linked clients; admins operate the service.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    sqlx::Type,
    schemars::JsonSchema,
    utoipa::ToSchema,
)]
#[sqlx(type_name = "user_role", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Coach,
    Admin,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub password_hash: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    /// When an admin disabled the account; a disabled account cannot log in and its sessions
    /// are refused.
    pub disabled_at: Option<DateTime<Utc>>,
}

/// The columns every query here reads into a [`User`].
const COLUMNS: &str = "id, email, password_hash, role, created_at, disabled_at";

/// Creates an account; a taken email fails with a unique violation on `users_email_key`.
#[tracing::instrument(skip_all, fields(role = ?role), err(level = "info"))]
pub async fn insert(
    conn: &mut PgConnection,
    email: &str,
    password_hash: &str,
    role: Role,
) -> Result<User, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO users (id, email, password_hash, role) VALUES ($1, $2, $3, $4)
         RETURNING {COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(email)
    .bind(password_hash)
    .bind(role)
    .fetch_one(conn)
    .await
}

/// Emails are matched case-insensitively.
#[tracing::instrument(skip_all, err(level = "warn"))]
pub async fn find_by_email(
    conn: &mut PgConnection,
    email: &str,
) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM users WHERE lower(email) = lower($1)"
    )))
    .bind(email)
    .fetch_optional(conn)
    .await
}

#[tracing::instrument(skip_all, fields(user_id = %id), err(level = "warn"))]
pub async fn find_by_id(conn: &mut PgConnection, id: Uuid) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM users WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Replaces the account's password hash.
#[tracing::instrument(skip_all, fields(user_id = %id), err(level = "warn"))]
pub async fn set_password(
    conn: &mut PgConnection,
    id: Uuid,
    password_hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
        .bind(id)
        .bind(password_hash)
        .execute(conn)
        .await?;
    Ok(())
}

/// Changes the role and/or disables (`Some(true)`) or re-enables (`Some(false)`) the account;
/// `None` for an unknown id.
#[tracing::instrument(skip_all, fields(user_id = %id), err(level = "warn"))]
pub async fn update_account(
    conn: &mut PgConnection,
    id: Uuid,
    role: Option<Role>,
    disabled: Option<bool>,
) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE users
            SET disabled_at = CASE WHEN $3 IS NULL THEN disabled_at
                                   WHEN $3 THEN coalesce(disabled_at, now())
                                   ELSE NULL END,
                role = coalesce($2, role)
          WHERE id = $1
      RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(role)
    .bind(disabled)
    .fetch_optional(conn)
    .await
}
