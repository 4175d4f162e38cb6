//! Why an admin operation did nothing, in the operations' own terms: the JSON routes map it to
//! an [`ApiError`] once (`From`), the dashboard shows a refusal as a flash and anything else as
//! an error page, and the command prints it.

use domain::field_error::FieldError;
use shared::job::JobStatus;

use crate::error::ApiError;

/// What an admin operation fails with.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No job or batch (the `&'static str` names which) has this id.
    #[error("there is no such {0}")]
    NotFound(&'static str),
    /// The job is running or succeeded (its status), so it cannot be requeued.
    #[error("a running or succeeded job cannot be requeued; this one is {}", .0.as_str())]
    NotRequeueable(JobStatus),
    /// The job has finished, so it cannot be cancelled.
    #[error("the job has already finished and can no longer be cancelled")]
    JobFinished,
    /// The input names nothing to act on, or a value out of range; never empty, the first
    /// problem is the message.
    #[error("{}", .0.first().map_or("the request is not valid", |e| e.message.as_str()))]
    Invalid(Vec<FieldError>),
    #[error("the database failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

impl AdminError {
    /// One problem with the input field `field`: `code` for programs, `message` for people.
    pub(crate) fn invalid(field: &str, code: &'static str, message: impl Into<String>) -> Self {
        AdminError::Invalid(vec![FieldError::new(field, code, message)])
    }
}

/// The HTTP edge: each refusal answers as its `ApiError` does; a database failure as any
/// request's (503 `busy` or `database_unavailable`, else 500); Redis failing the statistics is
/// a 500 `internal`.
impl From<AdminError> for ApiError {
    fn from(error: AdminError) -> Self {
        match error {
            AdminError::NotFound(what) => ApiError::NotFound(what),
            AdminError::NotRequeueable(status) => ApiError::NotRequeueable(status),
            AdminError::JobFinished => ApiError::JobFinished,
            AdminError::Invalid(problems) => ApiError::Validation(problems),
            AdminError::Database(e) => e.into(),
            AdminError::Redis(e) => ApiError::Internal(anyhow::anyhow!("redis: {e}")),
        }
    }
}
