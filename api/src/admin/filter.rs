//! The job filter an admin names ([`JobFilter`]), read one way wherever it comes from: the JSON
//! API's query string, the dashboard's links and forms, and the command line's flags. Each
//! field's text is parsed here once; the query string's readers differ only in what an empty
//! parameter and a missing status mean ([`Reading`]), and [`to_query`] writes a filter back
//! as the dashboard reads it.

use chrono::{DateTime, Utc};
use domain::field_error::FieldError;
use shared::db::admin::JobFilter;
use shared::job::JobStatus;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{FromQuery, QueryParams};

/// The query parameters of a filter, in the order of [`JobFilter`]'s fields (and of its
/// documented parameters).
pub const PARAMS: [&str; 6] = [
    "status",
    "error_code",
    "user_id",
    "batch_id",
    "created_after",
    "created_before",
];

/// What a status's text must be.
const STATUS_RULE: &str = "must be one of queued, running, retrying, succeeded, failed, cancelled";
/// What a time's text must be.
const TIME_RULE: &str = "must be an RFC 3339 time, such as 2026-11-26T09:00:00Z";

/// How a query string names a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// The JSON API: a parameter given empty is refused, as its schema says.
    Api,
    /// The dashboard: a form's empty field means "any", and a query that names no status at
    /// all means failed jobs (`status=` alone means any status).
    Page,
}

/// The filter a query string names, read as `reading` says. Errors (422): `invalid_value` for
/// an unknown status, a time that is not RFC 3339 or (`Reading::Api`) a parameter given
/// empty; `invalid_type` for an id that is not a UUID.
pub fn read(params: &QueryParams, reading: Reading) -> Result<JobFilter, ApiError> {
    if reading == Reading::Api {
        for name in PARAMS {
            params.non_empty(name)?;
        }
    }
    let text = |name: &str| params.text(name).filter(|s| !s.is_empty());
    // An empty id field of the dashboard's form is "any" (the API refused it above).
    let id = |name: &str| match text(name) {
        Some(_) => params.uuid(name),
        None => Ok(None),
    };
    let time = |name: &str| -> Result<Option<DateTime<Utc>>, ApiError> {
        text(name)
            .map(|raw| parse_time(raw).ok_or_else(|| invalid(name, TIME_RULE)))
            .transpose()
    };
    let status = match (status_param(params)?, reading) {
        (None, Reading::Page) if params.text("status").is_none() => Some(JobStatus::Failed),
        (status, _) => status,
    };
    Ok(JobFilter {
        status,
        error_code: text("error_code").map(str::to_string),
        user_id: id("user_id")?,
        batch_id: id("batch_id")?,
        created_after: time("created_after")?,
        created_before: time("created_before")?,
    })
}

/// The filter parameters as the JSON API reads them ([`Reading::Api`]).
impl FromQuery for JobFilter {
    fn from_query(params: &QueryParams) -> Result<Self, ApiError> {
        read(params, Reading::Api)
    }
}

/// The `status` query parameter: one job status, or none when absent or empty. Also the
/// `status` of a person's own job list.
pub fn status_param(params: &QueryParams) -> Result<Option<JobStatus>, ApiError> {
    params
        .text("status")
        .filter(|s| !s.is_empty())
        .map(|raw| parse_status(raw).ok_or_else(|| invalid("status", STATUS_RULE)))
        .transpose()
}

/// The query string that names `filter` to [`read`] with [`Reading::Page`]: for links to the
/// next page, the "requeue all" form and the way back after it.
pub fn to_query(filter: &JobFilter) -> String {
    let query = serde_urlencoded::to_string(filter).expect("a filter is flat text");
    match filter.status {
        Some(_) => query,
        None if query.is_empty() => "status=".to_string(),
        None => format!("status=&{query}"),
    }
}

/// The filter as the command line's flags name it; each flag's text is parsed as the query
/// string's parameter of the same name.
#[derive(clap::Args, Debug)]
pub struct FilterArgs {
    /// Jobs in this state: queued, running, retrying, succeeded, failed or cancelled.
    #[arg(long, value_parser = status_flag)]
    status: Option<JobStatus>,
    /// Jobs whose last error has this code, such as llm_server_error.
    #[arg(long)]
    error_code: Option<String>,
    /// The person the jobs are for.
    #[arg(long)]
    user_id: Option<Uuid>,
    /// Jobs of one scheduled batch.
    #[arg(long)]
    batch_id: Option<Uuid>,
    /// Jobs created at or after this time (RFC 3339, such as 2026-11-26T09:00:00Z).
    #[arg(long, value_parser = time_flag)]
    created_after: Option<DateTime<Utc>>,
    /// Jobs created before this time (RFC 3339).
    #[arg(long, value_parser = time_flag)]
    created_before: Option<DateTime<Utc>>,
}

impl From<FilterArgs> for JobFilter {
    fn from(args: FilterArgs) -> Self {
        JobFilter {
            status: args.status,
            error_code: args.error_code,
            user_id: args.user_id,
            batch_id: args.batch_id,
            created_after: args.created_after,
            created_before: args.created_before,
        }
    }
}

fn status_flag(raw: &str) -> Result<JobStatus, String> {
    parse_status(raw).ok_or_else(|| STATUS_RULE.to_string())
}

fn time_flag(raw: &str) -> Result<DateTime<Utc>, String> {
    parse_time(raw).ok_or_else(|| TIME_RULE.to_string())
}

fn parse_status(raw: &str) -> Option<JobStatus> {
    JobStatus::ALL
        .into_iter()
        .find(|status| status.as_str() == raw)
}

fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// `name` breaks `rule` (422 `validation_failed`, `invalid_value`).
fn invalid(name: &str, rule: &str) -> ApiError {
    ApiError::Validation(vec![FieldError::new(
        name,
        "invalid_value",
        format!("{name} {rule}"),
    )])
}

#[cfg(test)]
mod tests {
    use utoipa::IntoParams;

    use super::*;

    #[test]
    fn the_documented_filter_parameters_are_the_read_ones() {
        let documented: Vec<String> = JobFilter::into_params(|| None)
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(documented, PARAMS);
    }

    #[test]
    fn every_status_is_read_by_its_name() {
        for status in JobStatus::ALL {
            assert_eq!(status_flag(status.as_str()), Ok(status));
        }
        assert!(status_flag("done").is_err());
        assert!(time_flag("2026-11-26T09:00:00Z").is_ok());
        assert!(time_flag("yesterday").is_err());
    }

    #[test]
    fn a_filter_survives_its_query_string_and_any_status_stays_any() {
        let filter = JobFilter {
            status: Some(JobStatus::Failed),
            error_code: Some("llm_server_error".into()),
            user_id: Some(Uuid::now_v7()),
            created_after: Some("2026-11-26T09:00:00Z".parse().unwrap()),
            ..JobFilter::default()
        };
        let query = to_query(&filter);
        assert!(
            query.starts_with("status=failed&error_code=llm_server_error"),
            "{query}"
        );
        assert_eq!(to_query(&JobFilter::default()), "status=");
        let any = JobFilter {
            error_code: Some("a b&c".into()),
            ..JobFilter::default()
        };
        assert_eq!(to_query(&any), "status=&error_code=a+b%26c");
    }
}
