//! Keyset pages of newest-first lists: the opaque cursor a client passes back for the next page,
//! and the split of "one row more than asked" into a page and that cursor.

use chrono::{DateTime, TimeZone, Utc};
use domain::field_error::FieldError;
use shared::db::Cursor;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{FromQuery, QueryParams};

/// Rows per page when the client does not say, and the most it may ask for.
pub const DEFAULT_PAGE_SIZE: i64 = 20;
pub const PAGE_SIZE: (i64, i64) = (1, 100);

/// How long a cursor is: 48 lowercase hex digits (see [`encode`]). An empty one is the first
/// page, like an absent one.
const CURSOR_HEX_DIGITS: usize = 48;

/// The query parameters of a page, as the list operations take and document them.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100, default = 20)]
    pub limit: i64,
    /// The `next_cursor` of the page before, as it was given; absent or empty: the first page.
    #[param(value_type = Option<String>, pattern = "^([0-9a-f]{48})?$")]
    pub cursor: Option<Cursor>,
}

impl FromQuery for PageParams {
    fn from_query(params: &QueryParams) -> Result<Self, ApiError> {
        Ok(PageParams {
            limit: limit(params)?,
            cursor: cursor(params)?,
        })
    }
}

/// Microseconds (PostgreSQL's precision, so the position is exact) and the id, as 16 and 32 hex
/// digits. Opaque to clients: they pass it back as it is.
pub fn encode(cursor: Cursor) -> String {
    format!(
        "{:016x}{}",
        cursor.created_at.timestamp_micros(),
        cursor.id.simple()
    )
}

/// The earliest and latest times a cursor may name: any a row can have, and within what
/// PostgreSQL stores (a time outside it would fail the query).
fn cursor_bounds() -> (DateTime<Utc>, DateTime<Utc>) {
    let at = |y| {
        Utc.with_ymd_and_hms(y, 1, 1, 0, 0, 0)
            .single()
            .expect("a valid date")
    };
    (at(1), at(10_000))
}

/// Reads a cursor of the documented shape (not empty). Any such cursor is a position in
/// the list, one this API gave or not: a time out of range is taken as the nearest in range.
pub fn decode(raw: &str) -> Result<Cursor, ApiError> {
    let hex = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if raw.len() != CURSOR_HEX_DIGITS || !hex(raw) {
        return Err(invalid_cursor());
    }
    let (micros, id) = raw.split_at(16);
    let micros = u64::from_str_radix(micros, 16).map_err(|_| invalid_cursor())? as i64;
    let (first, last) = cursor_bounds();
    let micros = micros.clamp(first.timestamp_micros(), last.timestamp_micros());
    Ok(Cursor {
        created_at: DateTime::from_timestamp_micros(micros).ok_or_else(invalid_cursor)?,
        id: Uuid::try_parse(id).map_err(|_| invalid_cursor())?,
    })
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

/// The `cursor` of the page a list request asks for; `None` for the first page (no cursor, or
/// an empty one).
pub fn cursor(params: &QueryParams) -> Result<Option<Cursor>, ApiError> {
    params
        .text("cursor")
        .filter(|raw| !raw.is_empty())
        .map(decode)
        .transpose()
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
        let id = Uuid::now_v7();
        let hyphenated = format!("0000000000000001{id}");
        let upper = encode(cursor).to_uppercase();
        for bad in [
            "",
            "zz",
            "0000000000000001",
            "0000000000000001not-a-uuid",
            "-000000000000001",
            &hyphenated,
            &upper,
        ] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_cursor_of_the_documented_shape_is_a_position() {
        let (first, last) = cursor_bounds();
        for (raw, at) in [
            ("8000000000000000", first),
            (
                "ffffffffffffffff",
                DateTime::UNIX_EPOCH - chrono::TimeDelta::microseconds(1),
            ),
            ("7fffffffffffffff", last),
            ("0000000000000000", DateTime::UNIX_EPOCH),
        ] {
            let raw = format!("{raw}{}", "0".repeat(32));
            assert_eq!(decode(&raw).unwrap().created_at, at, "{raw}");
        }
    }

    /// The parameter `name` of [`PageParams`] as documented.
    fn documented(name: &str) -> serde_json::Value {
        let param = PageParams::into_params(|| None)
            .into_iter()
            .find(|p| p.name == name)
            .unwrap();
        assert!(
            matches!(param.required, utoipa::openapi::Required::False),
            "{name} is optional"
        );
        serde_json::to_value(param.schema).unwrap()
    }

    #[test]
    fn the_documented_cursor_is_the_checked_one() {
        assert_eq!(
            documented("cursor")["pattern"],
            format!("^([0-9a-f]{{{CURSOR_HEX_DIGITS}}})?$")
        );
    }

    #[test]
    fn the_documented_page_size_is_the_checked_one() {
        let schema = documented("limit");
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
