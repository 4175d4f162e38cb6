//! Menus: submitting a generation request (which creates a job), reading finished menus, listing
//! them a page at a time, and a menu's grocery list.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use shared::db::Cursor;
use shared::db::jobs::{self, Inserted, NewJob};
use shared::db::menus::{self, MenuRow};
use shared::db::preferences;
use shared::grocery::{GroceryList, grocery_list};
use shared::job::JobStatus;
use shared::menu::MenuPlan;
use shared::request::{GenerationRequest, MenuOptions, default_start_date};
use uuid::Uuid;

use crate::auth::CurrentUser;
use crate::error::ApiError;
use crate::extract::{Id, JsonObject, QueryParams};
use crate::pagination;
use crate::routes::coaching::acting_for;
use crate::routes::jobs::{JobView, status_url};
use crate::state::AppState;

/// Longest `Idempotency-Key` accepted; a UUID needs 36.
const IDEMPOTENCY_KEY_CHARS: usize = 200;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/menus", get(list).post(submit))
        .route("/v1/menus/{id}", get(show))
        .route("/v1/menus/{id}/grocery-list", get(groceries))
}

pub fn menu_url(id: Uuid) -> String {
    format!("/v1/menus/{id}")
}

/// What a submission answers.
#[derive(Serialize)]
struct Submitted {
    job_id: Uuid,
    status: JobStatus,
    status_url: String,
    job: JobView,
}

/// Creates a job for the caller, or with `client_id` for a coach's linked client. Fields left
/// out come from the owner's stored preferences, then the defaults. 202 with the new job; 200
/// with the existing one when the `Idempotency-Key` was used before for the same request.
async fn submit(
    State(state): State<AppState>,
    caller: CurrentUser,
    headers: HeaderMap,
    mut body: JsonObject,
) -> Result<Response, ApiError> {
    let idempotency_key = idempotency_key(&headers)?;
    let client_id: Option<Uuid> = body.take("client_id")?;
    let start_date: Option<NaiveDate> = body.take("start_date")?;
    let options: MenuOptions = body.into_typed()?;
    state.submit_limit.check(&caller.id)?;

    // No transaction: the reads need none and the insert is one statement.
    let mut conn = shared::db::hold(&state.db, "menus").await?;
    let owner_id = acting_for(&mut conn, &caller, client_id).await?;
    let stored = preferences::get(&mut conn, owner_id).await?;
    let request = GenerationRequest::from_options(
        &options.merged_over(&stored.options),
        start_date.unwrap_or_else(default_start_date),
    )
    .map_err(ApiError::Validation)?;
    let new_job = NewJob {
        owner_id,
        requested_by: caller.id,
        request,
        max_attempts: state.job_max_attempts,
        idempotency_key,
        batch_id: None,
    };
    let inserted = jobs::insert(&mut conn, &new_job).await?;
    drop(conn);

    let (status, job) = match inserted {
        Inserted::Created(job) => {
            // The committed row is the truth, so the job is accepted even when Redis is
            // unreachable; pushing due jobs that Redis lost is the reconciler's work
            // (DESIGN.md §3), not this request's.
            if let Err(e) = state.queue.enqueue(job.id).await {
                tracing::error!(job.id = %job.id, error = %e, "job saved but not queued");
            }
            metrics::counter!("jobs_enqueued_total").increment(1);
            (StatusCode::ACCEPTED, job)
        }
        Inserted::Existing(job) if job.request.0 == new_job.request && job.owner_id == owner_id => {
            (StatusCode::OK, job)
        }
        Inserted::Existing(_) => return Err(ApiError::IdempotencyKeyReused),
    };
    let url = status_url(job.id);
    let location = HeaderValue::try_from(url.as_str()).map_err(|e| ApiError::Internal(e.into()))?;
    let body = Submitted {
        job_id: job.id,
        status: job.status,
        status_url: url,
        job: job.into(),
    };
    Ok((status, [(header::LOCATION, location)], Json(body)).into_response())
}

/// The optional `Idempotency-Key` header: 1 to 200 printable ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let bytes = value.as_bytes();
    let printable = |b: &u8| (0x20..0x7f).contains(b);
    if bytes.is_empty() || bytes.len() > IDEMPOTENCY_KEY_CHARS || !bytes.iter().all(printable) {
        return Err(ApiError::InvalidIdempotencyKey);
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

/// A finished menu: its days and the request it was generated from.
#[derive(Serialize)]
struct MenuView {
    id: Uuid,
    job_id: Uuid,
    owner_id: Uuid,
    requested_by: Uuid,
    created_at: DateTime<Utc>,
    request: GenerationRequest,
    #[serde(flatten)]
    plan: MenuPlan,
}

async fn show(
    State(state): State<AppState>,
    caller: CurrentUser,
    Id(id): Id,
) -> Result<Json<MenuView>, ApiError> {
    let menu = visible_menu(&state, id, caller.id).await?;
    Ok(Json(MenuView {
        id: menu.id,
        job_id: menu.job_id,
        owner_id: menu.owner_id,
        requested_by: menu.requested_by,
        created_at: menu.created_at,
        request: menu.request.0,
        plan: menu.plan.0,
    }))
}

async fn groceries(
    State(state): State<AppState>,
    caller: CurrentUser,
    Id(id): Id,
) -> Result<Json<GroceryList>, ApiError> {
    let menu = visible_menu(&state, id, caller.id).await?;
    Ok(Json(grocery_list(&menu.plan.0)))
}

async fn visible_menu(state: &AppState, id: Uuid, viewer: Uuid) -> Result<MenuRow, ApiError> {
    let mut conn = shared::db::hold(&state.db, "menus").await?;
    menus::get_visible(&mut conn, id, viewer)
        .await?
        .ok_or(ApiError::NotFound("menu"))
}

#[derive(Serialize)]
struct MenuItem {
    id: Uuid,
    job_id: Uuid,
    owner_id: Uuid,
    days: i32,
    created_at: DateTime<Utc>,
    url: String,
}

#[derive(Serialize)]
struct MenuPage {
    items: Vec<MenuItem>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

/// The caller's menus (or with `client_id` a linked client's), newest first.
async fn list(
    State(state): State<AppState>,
    caller: CurrentUser,
    params: QueryParams,
) -> Result<Json<MenuPage>, ApiError> {
    let limit = params.int(
        "limit",
        pagination::PAGE_SIZE,
        pagination::DEFAULT_PAGE_SIZE,
    )?;
    let cursor = params.text("cursor").map(pagination::decode).transpose()?;
    let client_id = params.uuid("client_id")?;
    let mut conn = shared::db::hold(&state.db, "menus").await?;
    let owner_id = acting_for(&mut conn, &caller, client_id).await?;
    // One more than asked tells whether another page follows.
    let rows = menus::list(&mut conn, owner_id, cursor, limit + 1).await?;
    let (rows, next_cursor) = pagination::split(rows, limit, |m| Cursor {
        created_at: m.created_at,
        id: m.id,
    });
    let items = rows
        .into_iter()
        .map(|m| MenuItem {
            url: menu_url(m.id),
            id: m.id,
            job_id: m.job_id,
            owner_id: m.owner_id,
            days: m.days,
            created_at: m.created_at,
        })
        .collect();
    Ok(Json(MenuPage { items, next_cursor }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_bounded_printable_ascii() {
        let with = |v: &[u8]| {
            let mut h = HeaderMap::new();
            h.insert("idempotency-key", HeaderValue::from_bytes(v).unwrap());
            idempotency_key(&h)
        };
        assert_eq!(with(b"abc-123").unwrap().as_deref(), Some("abc-123"));
        assert!(with(&[b'k'; 200]).is_ok());
        assert!(matches!(
            with(&[b'k'; 201]),
            Err(ApiError::InvalidIdempotencyKey)
        ));
        assert!(matches!(with(b""), Err(ApiError::InvalidIdempotencyKey)));
        assert!(matches!(
            with(b"caf\xc3\xa9"),
            Err(ApiError::InvalidIdempotencyKey)
        ));
        assert_eq!(idempotency_key(&HeaderMap::new()).unwrap(), None);
    }
}
