//! Keyset pages of newest-first lists: the opaque cursor a client passes back for the next page,
//! and the split of "one row more than asked" into a page and that cursor.

use chrono::DateTime;
use shared::db::Cursor;
use shared::request::FieldError;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::QueryParams;

/// Rows per page when the client does not say, and the most it may ask for.
pub const DEFAULT_PAGE_SIZE: i64 = 20;
pub const PAGE_SIZE: (i64, i64) = (1, 100);

/// Documentation only (handlers read them one by one with `QueryParams`): the query parameters
/// of a page.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page.
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the page before; the first page without it.
    pub cursor: Option<String>,
}

/// Microseconds (PostgreSQL's precision, so the position is exact) and the id, as hex. Opaque
/// to clients: they pass it back as it is.
pub fn encode(cursor: Cursor) -> String {
    format!(
        "{:016x}{}",
        cursor.created_at.timestamp_micros(),
        cursor.id.simple()
    )
}

pub fn decode(raw: &str) -> Result<Cursor, ApiError> {
    let parsed = raw.get(..16).zip(raw.get(16..)).and_then(|(micros, id)| {
        let micros = i64::from_str_radix(micros, 16).ok()?;
        Some(Cursor {
            created_at: DateTime::from_timestamp_micros(micros)?,
            id: Uuid::try_parse(id).ok()?,
        })
    });
    parsed.ok_or_else(invalid_cursor)
}

pub fn invalid_cursor() -> ApiError {
    ApiError::Validation(vec![FieldError::new(
        "cursor",
        "invalid_value",
        "cursor must be a next_cursor value from an earlier page",
    )])
}

/// The `limit` a list request asks for: within [`PAGE_SIZE`], [`DEFAULT_PAGE_SIZE`] when absent.
pub fn limit(params: &QueryParams) -> Result<i64, ApiError> {
    params.int("limit", PAGE_SIZE, DEFAULT_PAGE_SIZE)
}

/// The `cursor` of the page a list request asks for, if it is not the first.
pub fn cursor(params: &QueryParams) -> Result<Option<Cursor>, ApiError> {
    params.text("cursor").map(decode).transpose()
}

/// Rows fetched with `limit + 1`: the page, and the cursor of the next one if there is one.
pub fn split<T>(
    mut rows: Vec<T>,
    limit: i64,
    cursor_of: impl Fn(&T) -> Cursor,
) -> (Vec<T>, Option<String>) {
    if rows.len() as i64 <= limit {
        return (rows, None);
    }
    rows.truncate(limit as usize);
    let next = rows.last().map(|last| encode(cursor_of(last)));
    (rows, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_survives_the_round_trip_and_garbage_is_refused() {
        let cursor = Cursor {
            created_at: DateTime::from_timestamp_micros(1_764_000_000_123_456).unwrap(),
            id: Uuid::now_v7(),
        };
        assert_eq!(decode(&encode(cursor)).unwrap(), cursor);
        for bad in ["", "zz", "0000000000000001", "0000000000000001not-a-uuid"] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_documented_page_size_is_the_checked_one() {
        let limit = PageParams::into_params(|| None)
            .into_iter()
            .find(|p| p.name == "limit")
            .unwrap();
        let schema = serde_json::to_value(limit.schema).unwrap();
        assert_eq!(
            (&schema["minimum"], &schema["maximum"], &schema["default"]),
            (
                &PAGE_SIZE.0.into(),
                &PAGE_SIZE.1.into(),
                &DEFAULT_PAGE_SIZE.into()
            )
        );
    }

    #[test]
    fn one_row_more_than_the_limit_means_another_page() {
        let at = DateTime::from_timestamp_micros(1).unwrap();
        let cursor_of = |id: &Uuid| Cursor {
            created_at: at,
            id: *id,
        };
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let (page, next) = split(ids.clone(), 2, cursor_of);
        assert_eq!(page, ids[..2]);
        assert_eq!(next, Some(encode(cursor_of(&ids[1]))));
        let (page, next) = split(ids.clone(), 3, cursor_of);
        assert_eq!((page.len(), next), (3, None));
    }
}
