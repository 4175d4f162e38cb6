//! The audit log's page, read one way for the JSON API and the dashboard: how many actions, and
//! the id of the last one seen (the cursor), in decimal.

use utoipa::IntoParams;

use crate::error::ApiError;
use crate::extract::{FromQuery, QueryParams};
use crate::pagination;

/// The most digits of an audit log cursor, an action's id in decimal: 18 always fit an `i64`.
/// An empty cursor is the first page, like an absent one.
const ACTION_CURSOR_DIGITS: usize = 18;

/// The query of the audit log: a page whose cursor is the last action's id.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActionPageParams {
    /// Items per page.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100, default = 20)]
    pub limit: i64,
    /// The `next_cursor` of the page before, as it was given; absent or empty: the first page.
    #[param(rename = "cursor", value_type = Option<String>, pattern = "^([0-9]{1,18})?$")]
    pub before: Option<i64>,
}

impl FromQuery for ActionPageParams {
    fn from_query(params: &QueryParams) -> Result<Self, ApiError> {
        let digits = |c: &str| {
            (1..=ACTION_CURSOR_DIGITS).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_digit())
        };
        let before = match params.text("cursor") {
            None | Some("") => None,
            Some(c) if digits(c) => Some(c.parse().map_err(|_| pagination::invalid_cursor())?),
            Some(_) => return Err(pagination::invalid_cursor()),
        };
        Ok(ActionPageParams {
            limit: pagination::limit(params)?,
            before,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_audit_page_is_the_checked_one() {
        let params = ActionPageParams::into_params(|| None);
        let schema = |name: &str| {
            let param = params.iter().find(|p| p.name == name).unwrap();
            serde_json::to_value(&param.schema).unwrap()
        };
        let limit = schema("limit");
        assert_eq!(
            (&limit["minimum"], &limit["maximum"], &limit["default"]),
            (
                &pagination::PAGE_SIZE.0.into(),
                &pagination::PAGE_SIZE.1.into(),
                &pagination::DEFAULT_PAGE_SIZE.into()
            )
        );
        assert_eq!(
            schema("cursor")["pattern"],
            format!("^([0-9]{{1,{ACTION_CURSOR_DIGITS}}})?$")
        );
        assert!(ACTION_CURSOR_DIGITS < i64::MAX.to_string().len());
    }
}
