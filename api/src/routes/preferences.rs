//! A person's stored preferences: the profile their menu requests are merged with.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use shared::db::preferences::{self, Preferences};
use shared::request::MenuOptions;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::CurrentUser;
use crate::error::{ApiError, Envelope};
use crate::extract::JsonObject;
use crate::openapi::{
    BodyTooLarge, Internal, MalformedJson, NotJson, Unauthenticated, Unavailable, WithMenuOptions,
};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show, replace))
}

/// The menu options (unset ones `null`) and `auto_generate_weekly`, side by side. Documented as
/// `PreferencesBody`, since `flatten` cannot describe it (see `WithMenuOptions`).
#[derive(Serialize)]
struct PreferencesView {
    #[serde(flatten)]
    options: MenuOptions,
    auto_generate_weekly: bool,
}

// Documentation only: what `PreferencesView` holds besides the menu options.
/// The stored profile: the menu options (`null` when never set) and the weekly schedule.
#[derive(ToSchema)]
#[schema(as = Preferences)]
pub struct StoredPreferences {
    /// Whether the weekly schedule generates a menu for this person.
    pub auto_generate_weekly: bool,
}

// Documentation only: the bodies. (Aliases, because `#[utoipa::path]` takes a generic type for
// one to compose from its parameters' schemas, which `WithMenuOptions` is not.)
type PreferencesBody = WithMenuOptions<StoredPreferences>;
type PreferencesUpdate = WithMenuOptions<PreferencesInput>;

// Documentation only: what `PUT /v1/preferences` takes besides the menu options.
/// The whole profile: a menu option left out (or `null`) is unset, and the default applies.
#[derive(ToSchema)]
pub struct PreferencesInput {
    /// Whether the weekly schedule generates a menu for this person; `false` when absent.
    pub auto_generate_weekly: Option<bool>,
}

impl From<Preferences> for PreferencesView {
    fn from(p: Preferences) -> Self {
        PreferencesView {
            options: p.options,
            auto_generate_weekly: p.auto_generate_weekly,
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
        (status = 401, response = Unauthenticated),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
async fn show(
    State(state): State<AppState>,
    caller: CurrentUser,
) -> Result<Json<PreferencesView>, ApiError> {
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
        (status = 400, response = MalformedJson),
        (status = 401, response = Unauthenticated),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = NotJson),
        (
            status = 422,
            description = "`unknown_field`, `missing_field`, `invalid_type`: the body does not \
                fit the schema; `validation_failed`: values out of range or not allowed (every \
                one in `details`)",
            body = Envelope,
        ),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
async fn replace(
    State(state): State<AppState>,
    caller: CurrentUser,
    mut body: JsonObject,
) -> Result<Json<PreferencesView>, ApiError> {
    let auto_generate_weekly = body.take("auto_generate_weekly")?.unwrap_or(false);
    let options: MenuOptions = body.into_typed()?;
    options.validate().map_err(ApiError::Validation)?;
    let stored = Preferences {
        options,
        auto_generate_weekly,
    };
    let mut conn = shared::db::hold(&state.db, "preferences").await?;
    preferences::put(&mut conn, caller.id, &stored).await?;
    Ok(Json(stored.into()))
}
