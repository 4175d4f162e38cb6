//! A person's stored preferences: the profile their requests are merged with.

use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use crate::request::MenuOptions;

/// The stored profile and whether the weekly schedule generates for this person.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Preferences {
    pub options: MenuOptions,
    pub auto_generate_weekly: bool,
}

/// The person's preferences, or empty ones if they never saved any.
pub async fn get(conn: &mut PgConnection, user_id: Uuid) -> Result<Preferences, sqlx::Error> {
    let row: Option<(Json<MenuOptions>, bool)> =
        sqlx::query_as("SELECT options, auto_generate_weekly FROM preferences WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(conn)
            .await?;
    Ok(
        row.map_or_else(Preferences::default, |(options, weekly)| Preferences {
            options: options.0,
            auto_generate_weekly: weekly,
        }),
    )
}

/// Replaces the person's preferences; callers validate them first.
pub async fn put(
    conn: &mut PgConnection,
    user_id: Uuid,
    preferences: &Preferences,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO preferences (user_id, options, auto_generate_weekly) VALUES ($1, $2, $3)
         ON CONFLICT (user_id) DO UPDATE
         SET options = EXCLUDED.options, auto_generate_weekly = EXCLUDED.auto_generate_weekly,
             updated_at = now()",
    )
    .bind(user_id)
    .bind(Json(&preferences.options))
    .bind(preferences.auto_generate_weekly)
    .execute(conn)
    .await?;
    Ok(())
}
