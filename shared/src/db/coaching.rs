//! Links between coaches and the clients they generate menus for.
//!
//! A coach invites a client by email; the client sees the invitation and accepts it. Only an
//! accepted link lets the coach submit for the client and read the client's jobs and menus.
//!
//! A link ends when either side removes it ([`unlink`]): the row is deleted, so every check of
//! the link (`is_client`, and `visible_to` in SQL, which reads this table) refuses the former
//! coach from that statement on. What the coach did while linked stays on the client's jobs and
//! menus (`requested_by`), which the client keeps; the coach may invite the same address again,
//! and the client must accept again.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

/// A coach's invitation of a client, and once accepted, the link between them.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, schemars::JsonSchema, utoipa::ToSchema)]
pub struct Link {
    /// The invitation's id (the one accepted with `POST /v1/invitations/{id}/accept`).
    pub id: Uuid,
    /// The coach who invited.
    pub coach_id: Uuid,
    /// The address the invitation was sent to.
    pub client_email: String,
    /// The client's account, once they accepted; `null` while the invitation is open.
    pub client_id: Option<Uuid>,
    /// When the client accepted; `null` while the invitation is open.
    pub accepted_at: Option<DateTime<Utc>>,
    /// When the coach invited.
    pub created_at: DateTime<Utc>,
}

/// Invites a client; inviting the same email twice returns the existing link.
#[tracing::instrument(skip_all, fields(coach_id = %coach_id), err(level = "warn"))]
pub async fn invite(
    conn: &mut PgConnection,
    coach_id: Uuid,
    client_email: &str,
) -> Result<Link, sqlx::Error> {
    sqlx::query_as(
        "WITH inserted AS (
             INSERT INTO coach_links (id, coach_id, client_email) VALUES ($1, $2, $3)
             ON CONFLICT (coach_id, lower(client_email)) DO NOTHING
             RETURNING *)
         SELECT id, coach_id, client_email, client_id, accepted_at, created_at FROM inserted
         UNION ALL
         SELECT id, coach_id, client_email, client_id, accepted_at, created_at FROM coach_links
         WHERE coach_id = $2 AND lower(client_email) = lower($3)
         LIMIT 1",
    )
    .bind(Uuid::now_v7())
    .bind(coach_id)
    .bind(client_email)
    .fetch_one(conn)
    .await
}

/// Invitations addressed to this email that are still open.
#[tracing::instrument(skip_all, err(level = "warn"))]
pub async fn pending_for(conn: &mut PgConnection, email: &str) -> Result<Vec<Link>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, coach_id, client_email, client_id, accepted_at, created_at FROM coach_links
         WHERE lower(client_email) = lower($1) AND client_id IS NULL ORDER BY created_at",
    )
    .bind(email)
    .fetch_all(conn)
    .await
}

/// Accepts an open invitation addressed to this client; `None` if there is no such invitation.
#[tracing::instrument(skip_all, fields(link_id = %link_id, client_id = %client_id), err(level = "warn"))]
pub async fn accept(
    conn: &mut PgConnection,
    link_id: Uuid,
    client_id: Uuid,
    client_email: &str,
) -> Result<Option<Link>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE coach_links SET client_id = $2, accepted_at = now()
         WHERE id = $1 AND lower(client_email) = lower($3) AND client_id IS NULL
         RETURNING id, coach_id, client_email, client_id, accepted_at, created_at",
    )
    .bind(link_id)
    .bind(client_id)
    .bind(client_email)
    .fetch_optional(conn)
    .await
}

/// Every link of a coach, accepted or not.
#[tracing::instrument(skip_all, fields(coach_id = %coach_id), err(level = "warn"))]
pub async fn links_of(conn: &mut PgConnection, coach_id: Uuid) -> Result<Vec<Link>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, coach_id, client_email, client_id, accepted_at, created_at FROM coach_links
         WHERE coach_id = $1 ORDER BY created_at",
    )
    .bind(coach_id)
    .fetch_all(conn)
    .await
}

/// Whether `client_id` accepted `coach_id`'s invitation, and neither side has ended the link
/// since.
#[tracing::instrument(skip_all, fields(coach_id = %coach_id, client_id = %client_id), err(level = "warn"))]
pub async fn is_client(
    conn: &mut PgConnection,
    coach_id: Uuid,
    client_id: Uuid,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM coach_links WHERE coach_id = $1 AND client_id = $2)",
    )
    .bind(coach_id)
    .bind(client_id)
    .fetch_one(conn)
    .await
}

/// The accepted links of a client: the coaches who may act for them now, oldest first.
#[tracing::instrument(skip_all, fields(client_id = %client_id), err(level = "warn"))]
pub async fn coaches_of(
    conn: &mut PgConnection,
    client_id: Uuid,
) -> Result<Vec<Link>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, coach_id, client_email, client_id, accepted_at, created_at FROM coach_links
         WHERE client_id = $1 ORDER BY accepted_at, id",
    )
    .bind(client_id)
    .fetch_all(conn)
    .await
}

/// Ends the accepted link between `coach_id` and `client_id` (either side may); whether there
/// was one. Open invitations are not touched: they have no `client_id` yet.
#[tracing::instrument(skip_all, fields(coach_id = %coach_id, client_id = %client_id), err(level = "warn"))]
pub async fn unlink(
    conn: &mut PgConnection,
    coach_id: Uuid,
    client_id: Uuid,
) -> Result<bool, sqlx::Error> {
    let deleted = sqlx::query("DELETE FROM coach_links WHERE coach_id = $1 AND client_id = $2")
        .bind(coach_id)
        .bind(client_id)
        .execute(conn)
        .await?;
    Ok(deleted.rows_affected() > 0)
}
