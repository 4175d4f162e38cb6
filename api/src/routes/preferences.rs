//! A person's stored preferences: the profile their menu requests are merged with.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use shared::db::preferences::{self, Preferences};
use shared::request::MenuOptions;

use crate::auth::CurrentUser;
use crate::error::ApiError;
use crate::extract::JsonObject;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/preferences", get(show).put(replace))
}

/// The menu options (unset ones `null`) and `auto_generate_weekly`, side by side.
#[derive(Serialize)]
struct PreferencesView {
    #[serde(flatten)]
    options: MenuOptions,
    auto_generate_weekly: bool,
}

impl From<Preferences> for PreferencesView {
    fn from(p: Preferences) -> Self {
        PreferencesView {
            options: p.options,
            auto_generate_weekly: p.auto_generate_weekly,
        }
    }
}

async fn show(
    State(state): State<AppState>,
    caller: CurrentUser,
) -> Result<Json<PreferencesView>, ApiError> {
    let mut conn = shared::db::hold(&state.db, "preferences").await?;
    Ok(Json(preferences::get(&mut conn, caller.id).await?.into()))
}

/// Replaces the whole profile: a field left out is unset, and then the default applies.
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
