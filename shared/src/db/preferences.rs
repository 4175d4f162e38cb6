//! A person's stored preferences: the profile their requests are merged with, whether the
//! weekly batch generates for them and on which weekday their weekly menu starts.

use chrono::Weekday;
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use domain::request::MenuOptions;

/// The stored profile and whether the weekly schedule generates for this person.
#[derive(Debug, Clone, PartialEq)]
pub struct Preferences {
    pub options: MenuOptions,
    pub auto_generate_weekly: bool,
    /// The weekday the weekly batch's menu starts on (Monday unless the person chose).
    pub weekly_start_day: Weekday,
}

impl Default for Preferences {
    fn default() -> Self {
        Preferences {
            options: MenuOptions::default(),
            auto_generate_weekly: false,
            weekly_start_day: Weekday::Mon,
        }
    }
}

/// The ISO number of a weekday (1 = Monday … 7 = Sunday), as `weekly_start_day` stores it.
pub fn iso_number(day: Weekday) -> i16 {
    day.number_from_monday() as i16
}

/// The weekday of an ISO number; Monday for a number outside 1–7 (the column's check allows
/// none).
pub fn weekday_of(iso: i16) -> Weekday {
    u8::try_from(iso - 1)
        .ok()
        .and_then(|n| Weekday::try_from(n).ok())
        .unwrap_or(Weekday::Mon)
}

/// The person's preferences, or empty ones if they never saved any.
#[tracing::instrument(skip_all, fields(user_id = %user_id), err(level = "warn"))]
pub async fn get(conn: &mut PgConnection, user_id: Uuid) -> Result<Preferences, sqlx::Error> {
    let row: Option<(Json<MenuOptions>, bool, i16)> = sqlx::query_as(
        "SELECT options, auto_generate_weekly, weekly_start_day FROM preferences
         WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(conn)
    .await?;
    Ok(
        row.map_or_else(Preferences::default, |(options, weekly, start)| {
            Preferences {
                options: options.0,
                auto_generate_weekly: weekly,
                weekly_start_day: weekday_of(start),
            }
        }),
    )
}

/// Replaces the person's preferences; callers validate them first.
#[tracing::instrument(skip_all, fields(user_id = %user_id), err(level = "warn"))]
pub async fn put(
    conn: &mut PgConnection,
    user_id: Uuid,
    preferences: &Preferences,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO preferences (user_id, options, auto_generate_weekly, weekly_start_day)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (user_id) DO UPDATE
         SET options = EXCLUDED.options, auto_generate_weekly = EXCLUDED.auto_generate_weekly,
             weekly_start_day = EXCLUDED.weekly_start_day, updated_at = now()",
    )
    .bind(user_id)
    .bind(Json(&preferences.options))
    .bind(preferences.auto_generate_weekly)
    .bind(iso_number(preferences.weekly_start_day))
    .execute(conn)
    .await?;
    Ok(())
}
