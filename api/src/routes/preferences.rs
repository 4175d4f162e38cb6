//! A person's stored preferences: the profile their menu requests are merged with, and the
//! weekly batch's settings (whether it generates for them, and the weekday their menu starts).

use axum::Json;
use axum::extract::State;
use chrono::Weekday;
use serde::{Deserialize, Serialize};
use shared::db::preferences::{self, Preferences};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::CurrentUser;
use crate::error::{ApiError, Envelope};
use crate::extract::WithMenuOptions;
use crate::openapi::{JsonBodyRefusals, SignedInRefusals};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show, replace))
}

/// A day of the week, as the API writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = Weekday)]
pub enum DayOfWeek {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

impl From<Weekday> for DayOfWeek {
    fn from(day: Weekday) -> Self {
        match day {
            Weekday::Mon => DayOfWeek::Monday,
            Weekday::Tue => DayOfWeek::Tuesday,
            Weekday::Wed => DayOfWeek::Wednesday,
            Weekday::Thu => DayOfWeek::Thursday,
            Weekday::Fri => DayOfWeek::Friday,
            Weekday::Sat => DayOfWeek::Saturday,
            Weekday::Sun => DayOfWeek::Sunday,
        }
    }
}

impl From<DayOfWeek> for Weekday {
    fn from(day: DayOfWeek) -> Self {
        match day {
            DayOfWeek::Monday => Weekday::Mon,
            DayOfWeek::Tuesday => Weekday::Tue,
            DayOfWeek::Wednesday => Weekday::Wed,
            DayOfWeek::Thursday => Weekday::Thu,
            DayOfWeek::Friday => Weekday::Fri,
            DayOfWeek::Saturday => Weekday::Sat,
            DayOfWeek::Sunday => Weekday::Sun,
        }
    }
}

/// The stored profile: the menu options (`null` when never set) and the weekly schedule.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Preferences)]
pub struct StoredPreferences {
    /// Whether the weekly schedule generates a menu for this person.
    pub auto_generate_weekly: bool,
    /// The weekday the weekly menu starts on: the first such day of the batch's week.
    pub weekly_start_day: DayOfWeek,
}

/// The whole profile: a menu option left out (or `null`) is unset, and the default applies.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PreferencesInput {
    /// Whether the weekly schedule generates a menu for this person; `false` when absent.
    pub auto_generate_weekly: Option<bool>,
    /// The weekday the weekly menu starts on; `monday` when absent.
    pub weekly_start_day: Option<DayOfWeek>,
}

/// The profile as `GET` and `PUT` answer it, and the body `PUT` takes. (Aliases, because
/// `#[utoipa::path]` takes a generic type for one to compose from its parameters' schemas,
/// which `WithMenuOptions` is not.)
type PreferencesBody = WithMenuOptions<StoredPreferences>;
type PreferencesUpdate = WithMenuOptions<PreferencesInput>;

impl From<Preferences> for PreferencesBody {
    fn from(p: Preferences) -> Self {
        WithMenuOptions {
            keys: StoredPreferences {
                auto_generate_weekly: p.auto_generate_weekly,
                weekly_start_day: p.weekly_start_day.into(),
            },
            options: p.options,
        }
    }
}

/// The caller's stored preferences.
#[utoipa::path(
    get,
    path = "/v1/preferences",
    operation_id = "get_preferences",
    tag = "preferences",
    security(("bearer" = [])),
    responses(
        (
            status = 200,
            description = "The stored profile; fields never set are `null`",
            body = PreferencesBody,
        ),
        SignedInRefusals,
    )
)]
async fn show(
    State(state): State<AppState>,
    caller: CurrentUser,
) -> Result<Json<PreferencesBody>, ApiError> {
    let mut conn = shared::db::hold(&state.db, "preferences").await?;
    Ok(Json(preferences::get(&mut conn, caller.id).await?.into()))
}

/// Replaces the whole profile: a field left out is unset, and then the default applies.
#[utoipa::path(
    put,
    path = "/v1/preferences",
    operation_id = "put_preferences",
    tag = "preferences",
    security(("bearer" = [])),
    request_body = PreferencesUpdate,
    responses(
        (
            status = 200,
            description = "The profile as stored",
            body = PreferencesBody,
        ),
        (
            status = 422,
            description = "`unknown_field`, `missing_field`, `invalid_type`: the body does not \
                fit the schema; `validation_failed`: values out of range or not allowed (every \
                one in `details`)",
            body = Envelope,
        ),
        JsonBodyRefusals,
        SignedInRefusals,
    )
)]
async fn replace(
    State(state): State<AppState>,
    caller: CurrentUser,
    body: PreferencesUpdate,
) -> Result<Json<PreferencesBody>, ApiError> {
    let WithMenuOptions { keys, options } = body;
    // Stored as a request would store its text (trimmed, NFC), so what is read back is what
    // the menus will use.
    let options = options.validated().map_err(ApiError::Validation)?;
    let stored = Preferences {
        options,
        auto_generate_weekly: keys.auto_generate_weekly.unwrap_or(false),
        weekly_start_day: keys.weekly_start_day.map_or(Weekday::Mon, Weekday::from),
    };
    let mut conn = shared::db::hold(&state.db, "preferences").await?;
    preferences::put(&mut conn, caller.id, &stored).await?;
    Ok(Json(stored.into()))
}
