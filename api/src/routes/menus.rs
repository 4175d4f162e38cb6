//! Menus: submitting a generation request (which creates a job), reading finished menus, listing
//! them a page at a time, and a menu's grocery list.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use domain::grocery::{GroceryList, grocery_list};
use domain::menu::MenuPlan;
use domain::request::{GenerationRequest, default_start_date};
use serde::{Deserialize, Serialize};
use shared::db::Cursor;
use shared::db::jobs::{self, Inserted, NewJob};
use shared::db::menus::{self, MenuRow};
use shared::db::users::Role;
use shared::db::{coaching, preferences};
use shared::job::JobStatus;
use sqlx::PgConnection;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::CurrentUser;
use crate::error::{ApiError, Envelope};
use crate::extract::{FromQuery, Id, Query, QueryParams, WithMenuOptions};
use crate::openapi::{BodyTooLarge, InvalidQuery, ItemRefusals, NotJson, SignedInRefusals};
use crate::pagination::{self, PageParams};
use crate::state::AppState;
use crate::views::{JobView, menu_url, status_url};

/// What a submission refused for the jobs waiting suggests waiting: about one job's time.
const WAITING_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

/// Longest `Idempotency-Key` accepted; a UUID needs 36. (Documented on `Idempotency`.)
const IDEMPOTENCY_KEY_CHARS: usize = 200;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, submit))
        .routes(routes!(show))
        .routes(routes!(groceries))
}

/// Whose jobs and menus a request is about: the caller's own, or with `client_id` a linked
/// client's (coaches only). A client who is not linked (or no longer is) is reported as not
/// found.
async fn acting_for(
    conn: &mut PgConnection,
    caller: &CurrentUser,
    client_id: Option<Uuid>,
) -> Result<Uuid, ApiError> {
    let Some(client_id) = client_id else {
        return Ok(caller.id);
    };
    if caller.role != Role::Coach {
        return Err(ApiError::Forbidden(
            "only coach accounts may act for a client (client_id)",
        ));
    }
    if coaching::is_client(conn, caller.id, client_id).await? {
        Ok(client_id)
    } else {
        Err(ApiError::ClientNotFound)
    }
}

/// What a submission answers.
#[derive(Serialize, ToSchema)]
struct Submitted {
    job_id: Uuid,
    status: JobStatus,
    /// Where the job's status can be read (also in `Location`).
    #[schema(example = "/v1/jobs/0190b5c6-6a1e-7cc0-9b5e-2f4c3c1d9a10")]
    status_url: String,
    job: JobView,
}

/// A menu generation request: the menu options, each optional (the owner's stored preferences,
/// then the defaults, fill in the rest), and whom and when the menu is for.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MenuSubmission {
    /// A linked client to generate for (coaches only); the caller when absent.
    pub client_id: Option<Uuid>,
    /// The menu's first day; tomorrow (UTC) when absent.
    pub start_date: Option<NaiveDate>,
}

/// The body of `POST /v1/menus`. (An alias, because `#[utoipa::path]` takes a generic type for
/// one to compose from its parameters' schemas, which `WithMenuOptions` is not.)
type SubmissionBody = WithMenuOptions<MenuSubmission>;

/// The optional `Idempotency-Key` header of a submission.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
struct Idempotency {
    /// Makes retries safe: a second submission with the same key and the same request answers
    /// 200 with the first one's job instead of creating another; with a different request,
    /// 409 `idempotency_key_reused`. 1 to 200 printable ASCII characters (a UUID does).
    #[param(
        rename = "Idempotency-Key",
        value_type = Option<String>,
        nullable = false,
        min_length = 1,
        max_length = 200,
        pattern = "^[ -~]+$"
    )]
    key: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Idempotency {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        idempotency_key(&parts.headers).map(|key| Idempotency { key })
    }
}

/// Submits a menu generation request.
///
/// Creates a job for the caller, or with `client_id` for a coach's linked client. Fields left
/// out come from the owner's stored preferences, then the defaults. 202 with the new job; 200
/// with the existing one when the `Idempotency-Key` was used before for the same request.
#[utoipa::path(
    post,
    path = "/v1/menus",
    operation_id = "submit_menu",
    tag = "menus",
    security(("bearer" = [])),
    params(Idempotency),
    request_body = SubmissionBody,
    responses(
        (
            status = 202,
            description = "Accepted: a job was created and queued",
            body = Submitted,
            headers(("Location" = String, description = "The job's status URL")),
            links(
                ("GetJob" = (
                    operation_id = "get_job",
                    parameters(("id" = "$response.body#/job_id")),
                    description = "The job, now or long-polled"
                )),
                ("StreamJob" = (
                    operation_id = "stream_job",
                    parameters(("id" = "$response.body#/job_id")),
                    description = "The job's changes as Server-Sent Events"
                )),
                ("CancelJob" = (
                    operation_id = "cancel_job",
                    parameters(("id" = "$response.body#/job_id")),
                    description = "Cancels the job"
                )),
            ),
        ),
        (
            status = 200,
            description = "This `Idempotency-Key` was used before for the same request: its job \
                (the same links as the 202's)",
            body = Submitted,
            headers(("Location" = String, description = "The job's status URL")),
        ),
        (
            status = 400,
            description = "`malformed_json`: the body is not valid JSON; \
                `invalid_idempotency_key`: the header is empty, too long or not printable ASCII",
            body = Envelope,
        ),
        (
            status = 403,
            description = "`forbidden`: `client_id` was given by an account that is not a coach",
            body = Envelope,
        ),
        (
            status = 404,
            description = "`client_not_found`: `client_id` is not a client who accepted the \
                caller's invitation",
            body = Envelope,
        ),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = NotJson),
        (
            status = 409,
            description = "`idempotency_key_reused`: the `Idempotency-Key` was used before for \
                a different request (another body, or another client)",
            body = Envelope,
        ),
        (
            status = 422,
            description = "`unknown_field`, `missing_field`, `invalid_type`: the body does not \
                fit the schema; `validation_failed`: values out of range or not allowed, after \
                merging with the stored preferences (every one in `details`)",
            body = Envelope,
        ),
        (
            status = 429,
            description = "`too_many_requests`: the caller's submissions per minute \
                (`SUBMIT_RATE_PER_MINUTE`) are spent; `too_many_jobs_waiting`: the owner has \
                `WAITING_JOBS_PER_USER` jobs waiting or running",
            body = Envelope,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again")),
        ),
        SignedInRefusals,
    )
)]
async fn submit(
    State(state): State<AppState>,
    caller: CurrentUser,
    Idempotency {
        key: idempotency_key,
    }: Idempotency,
    body: SubmissionBody,
) -> Result<Response, ApiError> {
    let WithMenuOptions {
        keys: MenuSubmission {
            client_id,
            start_date,
        },
        options,
    } = body;
    state.submit_limit.check(&caller.id)?;

    // No transaction: the reads need none, and the insert is one statement (shared with the
    // submissions arriving at the same moment) on a connection of its own.
    let mut conn = shared::db::hold(&state.db, "menus").await?;
    let owner_id = acting_for(&mut conn, &caller, client_id).await?;
    if let Some(limit) = state.waiting_jobs_per_user {
        let (full, retry) = jobs::waiting_at_limit(
            &mut conn,
            owner_id,
            limit.get(),
            caller.id,
            idempotency_key.as_deref(),
        )
        .await?;
        // A retry of an accepted submission finds its job below, whatever the count.
        if full && !retry {
            return Err(ApiError::TooManyJobsWaiting {
                limit: limit.get(),
                retry_after: WAITING_RETRY_AFTER,
            });
        }
    }
    let stored = preferences::get(&mut conn, owner_id).await?;
    let request = GenerationRequest::from_options(
        &options.merged_over(&stored.options),
        start_date.unwrap_or_else(default_start_date),
    )
    .map_err(ApiError::Validation)?;
    drop(conn);
    let new_job = NewJob {
        owner_id,
        requested_by: caller.id,
        request: request.clone(),
        max_attempts: state.job_max_attempts,
        idempotency_key,
        batch_id: None,
    };
    // The committed row is the truth: the job is accepted even when Redis is unreachable (the
    // reconciler queues it then).
    let inserted = state.life.submit(new_job).await?;
    let (status, job) = match inserted {
        Inserted::Created(job) => (StatusCode::ACCEPTED, job),
        Inserted::Existing(job) if job.request.0 == request && job.owner_id == owner_id => {
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
#[derive(Serialize, ToSchema)]
#[schema(as = Menu)]
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

/// One menu of the caller's (or of a client's, for their coach).
#[utoipa::path(
    get,
    path = "/v1/menus/{id}",
    operation_id = "get_menu",
    tag = "menus",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The menu's id")),
    responses(
        (status = 200, description = "The menu", body = MenuView),
        ItemRefusals,
    )
)]
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

/// What to buy for a menu: every ingredient summed, aisle by aisle.
#[utoipa::path(
    get,
    path = "/v1/menus/{id}/grocery-list",
    operation_id = "get_grocery_list",
    tag = "menus",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The menu's id")),
    responses(
        (status = 200, description = "The menu's grocery list", body = GroceryList),
        ItemRefusals,
    )
)]
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

#[derive(Serialize, ToSchema)]
struct MenuItem {
    id: Uuid,
    job_id: Uuid,
    owner_id: Uuid,
    days: i32,
    created_at: DateTime<Utc>,
    /// Where the whole menu can be read.
    url: String,
}

#[derive(Serialize, ToSchema)]
struct MenuPage {
    items: Vec<MenuItem>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

/// The query of `GET /v1/menus`, besides the page.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
struct MenuListParams {
    /// A linked client whose menus to list (coaches only).
    client_id: Option<Uuid>,
}

impl FromQuery for MenuListParams {
    fn from_query(params: &QueryParams) -> Result<Self, ApiError> {
        Ok(MenuListParams {
            client_id: params.uuid("client_id")?,
        })
    }
}

/// The caller's menus (or with `client_id` a linked client's), newest first.
#[utoipa::path(
    get,
    path = "/v1/menus",
    operation_id = "list_menus",
    tag = "menus",
    security(("bearer" = [])),
    params(PageParams, MenuListParams),
    responses(
        (status = 200, description = "A page of menus", body = MenuPage),
        (status = 400, response = InvalidQuery),
        (
            status = 403,
            description = "`forbidden`: `client_id` was given by an account that is not a coach",
            body = Envelope,
        ),
        (
            status = 404,
            description = "`client_not_found`: `client_id` is not a client who accepted the \
                caller's invitation",
            body = Envelope,
        ),
        (
            status = 422,
            description = "`invalid_type`: `limit` is not an integer or `client_id` not a UUID; \
                `validation_failed`: `limit` out of range or a `cursor` not of its shape",
            body = Envelope,
        ),
        SignedInRefusals,
    )
)]
async fn list(
    State(state): State<AppState>,
    caller: CurrentUser,
    Query(PageParams { limit, cursor }): Query<PageParams>,
    Query(MenuListParams { client_id }): Query<MenuListParams>,
) -> Result<Json<MenuPage>, ApiError> {
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

    #[test]
    fn the_documented_idempotency_key_is_the_checked_one() {
        let param = Idempotency::into_params(|| None).pop().unwrap();
        assert_eq!(param.name, "Idempotency-Key");
        let schema = serde_json::to_value(param.schema).unwrap();
        assert_eq!(
            (
                &schema["minLength"],
                &schema["maxLength"],
                &schema["pattern"]
            ),
            (&1.into(), &IDEMPOTENCY_KEY_CHARS.into(), &"^[ -~]+$".into())
        );
        // The pattern's range is the check's: space (0x20) to tilde (0x7e).
        assert!(
            idempotency_key(&{
                let mut h = HeaderMap::new();
                h.insert("idempotency-key", HeaderValue::from_static(" ~"));
                h
            })
            .is_ok()
        );
    }
}
