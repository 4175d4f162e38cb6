//! Finished menus: one per job, owned by the person they were generated for.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use super::Cursor;
use domain::menu::MenuPlan;
use domain::request::GenerationRequest;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MenuRow {
    pub id: Uuid,
    pub job_id: Uuid,
    pub owner_id: Uuid,
    pub requested_by: Uuid,
    pub request: Json<GenerationRequest>,
    pub plan: Json<MenuPlan>,
    pub created_at: DateTime<Utc>,
}

/// A menu in a list: enough to show it without its plan.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MenuSummary {
    pub id: Uuid,
    pub job_id: Uuid,
    pub owner_id: Uuid,
    pub days: i32,
    pub created_at: DateTime<Utc>,
}

/// The menu if `viewer` may see it (its owner, or the owner's coach).
#[tracing::instrument(skip_all, fields(menu_id = %id, viewer = %viewer), err(level = "warn"))]
pub async fn get_visible(
    conn: &mut PgConnection,
    id: Uuid,
    viewer: Uuid,
) -> Result<Option<MenuRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, job_id, owner_id, requested_by, request, plan, created_at FROM menus
         WHERE id = $1 AND visible_to(owner_id, $2)",
    )
    .bind(id)
    .bind(viewer)
    .fetch_optional(conn)
    .await
}

/// One owner's menus, newest first, `limit` at most, after `cursor` (keyset pagination, so a
/// page costs the same however deep it is).
#[tracing::instrument(skip_all, fields(user_id = %owner_id, limit = limit), err(level = "warn"))]
pub async fn list(
    conn: &mut PgConnection,
    owner_id: Uuid,
    cursor: Option<Cursor>,
    limit: i64,
) -> Result<Vec<MenuSummary>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, job_id, owner_id, jsonb_array_length(plan -> 'days') AS days, created_at
         FROM menus
         WHERE owner_id = $1
           AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
         ORDER BY created_at DESC, id DESC
         LIMIT $4",
    )
    .bind(owner_id)
    .bind(cursor.map(|c| c.created_at))
    .bind(cursor.map(|c| c.id))
    .bind(limit)
    .fetch_all(conn)
    .await
}
