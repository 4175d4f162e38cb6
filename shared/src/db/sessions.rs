//! Sessions: one per login, behind every bearer token, so that a logout, a password or role
//! change, or a disabled account takes effect on the next request. The refresh token is kept as
//! a SHA-256 digest only and replaced on every use.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::users::Role;

/// What a request's token may do now: the account's current role, and whether the session is
/// still live (not revoked, not expired, the account not disabled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionState {
    pub user_id: Uuid,
    pub role: Role,
    pub live: bool,
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The token was the session's current one; the new digest replaced it.
    Rotated { user_id: Uuid },
    /// The token was an earlier one of a live session (a copy was used after the session moved
    /// on): the session is revoked, since one of the two holders is not its owner.
    Reused { user_id: Uuid },
    /// No live session has this id (revoked, expired, its account disabled, or never issued).
    Dead,
}

/// Starts a session for `user_id` that can be refreshed for `lifetime`; returns its id and end.
#[tracing::instrument(skip_all, fields(user_id = %user_id), err(level = "warn"))]
pub async fn create(
    conn: &mut PgConnection,
    user_id: Uuid,
    refresh_hash: &[u8],
    lifetime: Duration,
) -> Result<(Uuid, DateTime<Utc>), sqlx::Error> {
    let id = Uuid::now_v7();
    let expires_at: DateTime<Utc> = sqlx::query_scalar(
        "INSERT INTO sessions (id, user_id, refresh_hash, expires_at)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4))
         RETURNING expires_at",
    )
    .bind(id)
    .bind(user_id)
    .bind(refresh_hash)
    .bind(lifetime.as_secs_f64())
    .fetch_one(conn)
    .await?;
    Ok((id, expires_at))
}

/// The session's state, `None` for an id never issued (or whose account was deleted).
#[tracing::instrument(skip_all, fields(session_id = %id), err(level = "warn"))]
pub async fn state(conn: &mut PgConnection, id: Uuid) -> Result<Option<SessionState>, sqlx::Error> {
    sqlx::query_as(
        "SELECT s.user_id, u.role,
                s.revoked_at IS NULL AND s.expires_at > now() AND u.disabled_at IS NULL AS live
           FROM sessions s JOIN users u ON u.id = s.user_id
          WHERE s.id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Replaces the refresh digest `presented` of session `id` with `next`, in one statement (the
/// row lock orders two refreshes of one session: the second finds the digest changed).
#[tracing::instrument(skip_all, fields(session_id = %id), err(level = "warn"))]
pub async fn rotate(
    conn: &mut PgConnection,
    id: Uuid,
    presented: &[u8],
    next: &[u8],
) -> Result<Rotation, sqlx::Error> {
    let row: Option<(Uuid, bool)> = sqlx::query_as(
        "UPDATE sessions s
            SET refresh_hash = CASE WHEN s.refresh_hash = $2 THEN $3 ELSE s.refresh_hash END,
                refreshed_at = now(),
                revoked_at = CASE WHEN s.refresh_hash = $2 THEN NULL ELSE now() END
           FROM users u
          WHERE s.id = $1 AND u.id = s.user_id
            AND s.revoked_at IS NULL AND s.expires_at > now() AND u.disabled_at IS NULL
      RETURNING s.user_id, s.revoked_at IS NULL",
    )
    .bind(id)
    .bind(presented)
    .bind(next)
    .fetch_optional(conn)
    .await?;
    Ok(match row {
        Some((user_id, true)) => Rotation::Rotated { user_id },
        Some((user_id, false)) => Rotation::Reused { user_id },
        None => Rotation::Dead,
    })
}

/// Ends one session (a logout). Ending one already ended changes nothing.
#[tracing::instrument(skip_all, fields(session_id = %id), err(level = "warn"))]
pub async fn revoke(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Ends every session of `user_id` but `except` (the one a password change is made from).
#[tracing::instrument(skip_all, fields(user_id = %user_id), err(level = "warn"))]
pub async fn revoke_all(
    conn: &mut PgConnection,
    user_id: Uuid,
    except: Option<Uuid>,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE sessions SET revoked_at = now()
          WHERE user_id = $1 AND revoked_at IS NULL AND id IS DISTINCT FROM $2",
    )
    .bind(user_id)
    .bind(except)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
