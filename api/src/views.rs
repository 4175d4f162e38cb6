//! What several route modules show, in one place so that none imports another: a job's view
//! and a page of them, an account's view and what its jobs cost, where jobs, menus and batch
//! runs can be read, and the job a person may see.

use chrono::{DateTime, Utc};
use domain::request::GenerationRequest;
use serde::Serialize;
use shared::db::jobs::{self, DayOrigin, JobRow, UsageTotals};
use shared::db::users::{Role, User};
use shared::job::{JobError, JobStatus, usd};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// Where a job's status can be read: `/v1/jobs/{id}`.
pub fn status_url(id: Uuid) -> String {
    format!("/v1/jobs/{id}")
}

/// Days generated and saved so far, of all the menu's days.
#[derive(Serialize, ToSchema)]
pub struct Progress {
    pub days_done: i32,
    pub days_total: i32,
}

/// What the job's LLM calls have cost so far.
#[derive(Serialize, ToSchema)]
#[schema(as = JobUsage)]
pub struct UsageView {
    pub llm_calls: i32,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
}

/// A job as clients see it.
#[derive(Serialize, ToSchema)]
#[schema(as = Job)]
pub struct JobView {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub requested_by: Uuid,
    pub status: JobStatus,
    pub progress: Progress,
    pub attempts: i32,
    pub max_attempts: i32,
    /// The last error; cleared when the job succeeds.
    pub error: Option<JobError>,
    pub menu_id: Option<Uuid>,
    pub menu_url: Option<String>,
    /// The weekly batch that created the job; `null` for a job someone submitted.
    pub batch_id: Option<Uuid>,
    /// The request as resolved: explicit values, then stored preferences, then defaults.
    pub request: GenerationRequest,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub usage: UsageView,
    /// What the job's LLM calls cost so far, in US dollars: every call's tokens at its
    /// model's price (`LLM_PRICES`) on the lane it went through (the Batch API's is half).
    pub cost_usd: f64,
    /// What the Batch API's discount saved on the job against the normal lane's price, in US
    /// dollars (0 for a job that never went through the batch lane).
    pub batch_saved_usd: f64,
    /// Where each saved day came from (endpoint, model, lane), in day order; in a job's own
    /// view (`GET /v1/jobs/{id}`, the admin's job), empty in lists.
    pub days: Vec<DayOrigin>,
}

impl From<JobRow> for JobView {
    fn from(row: JobRow) -> Self {
        JobView {
            id: row.id,
            owner_id: row.owner_id,
            requested_by: row.requested_by,
            status: row.status,
            progress: Progress {
                days_done: row.days_done,
                days_total: row.days_total,
            },
            attempts: row.attempts,
            max_attempts: row.max_attempts,
            error: row
                .last_error_code
                .zip(row.last_error_message)
                .map(|(code, message)| JobError::new(code, message)),
            menu_id: row.menu_id,
            menu_url: row.menu_id.map(menu_url),
            batch_id: row.batch_id,
            request: row.request.0,
            created_at: row.created_at,
            started_at: row.started_at,
            next_attempt_at: row.next_attempt_at,
            finished_at: row.finished_at,
            usage: UsageView {
                llm_calls: row.llm_calls,
                prompt_tokens: row.prompt_tokens,
                completion_tokens: row.completion_tokens,
                total_tokens: row.prompt_tokens + row.completion_tokens,
            },
            cost_usd: usd(row.cost_micros),
            batch_saved_usd: usd(row.batch_saved_micros),
            days: row.day_sources.map(|d| d.0).unwrap_or_default(),
        }
    }
}

/// A page of jobs, newest first (also the admin list's).
#[derive(Serialize, ToSchema)]
pub struct JobPage {
    pub items: Vec<JobView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

// An account as its owner and admins see it (a doc comment would change the document).
#[derive(Serialize, ToSchema)]
#[schema(as = User)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    /// Whether an admin disabled the account.
    pub disabled: bool,
}

impl From<User> for UserView {
    fn from(user: User) -> Self {
        UserView {
            id: user.id,
            email: user.email,
            role: user.role,
            disabled: user.disabled_at.is_some(),
        }
    }
}

/// What a person's jobs have cost: LLM calls, tokens and US dollars (the caller's own at
/// `/v1/me/usage`; any account's for admins).
#[derive(Serialize, ToSchema)]
#[schema(as = AccountUsage)]
pub struct AccountUsageView {
    #[serde(flatten)]
    totals: UsageTotals,
    /// Prompt and completion tokens together.
    total_tokens: i64,
    /// What those jobs cost, in US dollars.
    cost_usd: f64,
    /// What the Batch API's discount saved on them against the normal lane's price, in US
    /// dollars.
    batch_saved_usd: f64,
}

impl From<UsageTotals> for AccountUsageView {
    fn from(totals: UsageTotals) -> Self {
        AccountUsageView {
            total_tokens: totals.prompt_tokens + totals.completion_tokens,
            cost_usd: usd(totals.cost_micros),
            batch_saved_usd: usd(totals.batch_saved_micros),
            totals,
        }
    }
}

/// Where a finished menu can be read: `/v1/menus/{id}`.
pub fn menu_url(id: Uuid) -> String {
    format!("/v1/menus/{id}")
}

/// Where a batch run can be read (by admins): `/v1/admin/batches/{id}`.
pub fn batch_url(id: Uuid) -> String {
    format!("/v1/admin/batches/{id}")
}

/// The job `id` if `viewer` may see it (its owner, or the owner's coach); 404 otherwise.
pub async fn visible_job(state: &AppState, id: Uuid, viewer: Uuid) -> Result<JobRow, ApiError> {
    let mut conn = shared::db::hold(&state.db, "jobs").await?;
    jobs::get_visible(&mut conn, id, viewer)
        .await?
        .ok_or(ApiError::NotFound("job"))
}
