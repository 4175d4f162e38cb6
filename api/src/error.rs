//! The one error type of the HTTP layer and the one JSON shape every error takes:
//! `{"error":{"code","message","field","details"}}`. Codes are stable (clients branch on them);
//! messages are for people. Internal failures are logged here, once, and answered opaquely.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::field_error::FieldError;
use serde::Serialize;
use utoipa::ToSchema;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("send the request body as JSON, with the header content-type: application/json")]
    UnsupportedMediaType,
    #[error("the request body is larger than this endpoint accepts")]
    BodyTooLarge,
    #[error("`{field}` is not a field this endpoint accepts")]
    UnknownField { field: String },
    #[error("`{field}` is required")]
    MissingField { field: String },
    /// `field` is `None` when the body as a whole has the wrong type.
    #[error("{}has the wrong type: {detail}", field.as_ref().map(|f| format!("`{f}` ")).unwrap_or_default())]
    InvalidType {
        field: Option<String>,
        detail: String,
    },
    /// Never empty: the first error names the field, all of them go in `details`.
    #[error("{}", .0.first().map_or("the request is not valid", |e| e.message.as_str()))]
    Validation(Vec<FieldError>),
    #[error("the query string cannot be read: {0}")]
    InvalidQuery(String),
    #[error("the Idempotency-Key header must be 1 to 200 printable ASCII characters")]
    InvalidIdempotencyKey,
    #[error("this Idempotency-Key was already used for a different request; use a new key")]
    IdempotencyKeyReused,
    #[error("this endpoint needs a bearer token: send Authorization: Bearer <token>")]
    Unauthenticated,
    #[error("the bearer token has expired; log in again")]
    ExpiredToken,
    #[error("the bearer token is not valid; log in again")]
    InvalidToken,
    /// The token's session was ended: a logout, a password or role change, a disabled account,
    /// or a refresh token used twice.
    #[error("this session has ended (logged out, password or role changed); log in again")]
    SessionEnded,
    #[error("this account is disabled")]
    AccountDisabled,
    #[error("email or password is incorrect")]
    InvalidCredentials,
    #[error("registration is disabled on this server")]
    RegistrationDisabled,
    #[error("{0}")]
    Forbidden(&'static str),
    /// Also what a caller gets for something that exists but is not theirs, so ids cannot be
    /// probed.
    #[error("there is no such {0}, or it is not yours")]
    NotFound(&'static str),
    #[error("no route matches {method} {path}")]
    RouteNotFound { method: String, path: String },
    #[error("this method is not allowed here; the Allow header lists those that are")]
    MethodNotAllowed,
    #[error("you have no linked client with this id; they must accept your invitation first")]
    ClientNotFound,
    #[error("an account with this email already exists; log in instead")]
    EmailTaken,
    #[error("the job has already finished and can no longer be cancelled")]
    JobFinished,
    #[error("a running or succeeded job cannot be requeued; this one is {}", .0.as_str())]
    NotRequeueable(shared::job::JobStatus),
    #[error("too many requests; retry after the time in the Retry-After header")]
    TooManyRequests { retry_after: Duration },
    /// Logins to one account are refused for a while after repeated wrong passwords, whoever
    /// tries and whether or not the account exists.
    #[error(
        "too many failed logins for this account; retry after the time in the Retry-After header"
    )]
    TooManyFailedLogins { retry_after: Duration },
    #[error("you have {limit} menus waiting or being generated; submit more once one finishes")]
    TooManyJobsWaiting { limit: u32, retry_after: Duration },
    #[error("the server is busy; retry after the time in the Retry-After header")]
    Busy { retry_after: Duration },
    /// The database connection failed during the request (a restart, an outage); nothing the
    /// request asked for was done, unless its reply was what got lost (an `Idempotency-Key`
    /// makes the retry safe then).
    #[error(
        "the database is unavailable for a moment; retry after the time in the Retry-After header"
    )]
    DatabaseUnavailable,
    #[error("the server did not answer in time; try again")]
    Timeout,
    #[error("something went wrong on our side; try again later")]
    Internal(#[source] anyhow::Error),
}

/// What a client should wait before retrying after the database failed it.
const DATABASE_RETRY_AFTER: Duration = Duration::from_secs(2);

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            // No connection within the acquire timeout: every one stayed busy (a load peak) or
            // none could be opened (the database is down). Either way the client can wait it
            // out; it is not a failure of the request.
            sqlx::Error::PoolTimedOut => {
                tracing::warn!("no database connection within the acquire timeout");
                ApiError::Busy {
                    retry_after: Duration::from_secs(1),
                }
            }
            other if shared::db::is_transient(&other) => {
                tracing::warn!(error = %other, "the database failed a request for a moment");
                ApiError::DatabaseUnavailable
            }
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<redis::RedisError> for ApiError {
    /// Redis failing a request that needs it (the login throttle, an enqueue) is an outage the
    /// client can wait out, as with the database.
    fn from(error: redis::RedisError) -> Self {
        tracing::warn!(error = %error, "redis failed a request");
        ApiError::Busy {
            retry_after: Duration::from_secs(1),
        }
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            MalformedJson(_) | InvalidQuery(_) | InvalidIdempotencyKey => StatusCode::BAD_REQUEST,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UnknownField { .. } | MissingField { .. } | InvalidType { .. } | Validation(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Unauthenticated | ExpiredToken | InvalidToken | SessionEnded | InvalidCredentials => {
                StatusCode::UNAUTHORIZED
            }
            RegistrationDisabled | AccountDisabled | Forbidden(_) => StatusCode::FORBIDDEN,
            NotFound(_) | RouteNotFound { .. } | ClientNotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            // A reused `Idempotency-Key` is a conflict with an earlier request, not bad input:
            // the request itself may be valid.
            EmailTaken | JobFinished | NotRequeueable(_) | IdempotencyKeyReused => {
                StatusCode::CONFLICT
            }
            TooManyRequests { .. } | TooManyFailedLogins { .. } | TooManyJobsWaiting { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Busy { .. } | DatabaseUnavailable | Timeout => StatusCode::SERVICE_UNAVAILABLE,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code clients branch on.
    pub fn code(&self) -> &'static str {
        use ApiError::*;
        match self {
            MalformedJson(_) => "malformed_json",
            UnsupportedMediaType => "unsupported_media_type",
            BodyTooLarge => "body_too_large",
            UnknownField { .. } => "unknown_field",
            MissingField { .. } => "missing_field",
            InvalidType { .. } => "invalid_type",
            Validation(_) => "validation_failed",
            InvalidQuery(_) => "invalid_query",
            InvalidIdempotencyKey => "invalid_idempotency_key",
            IdempotencyKeyReused => "idempotency_key_reused",
            Unauthenticated => "unauthenticated",
            ExpiredToken | InvalidToken | SessionEnded => "invalid_token",
            AccountDisabled => "account_disabled",
            InvalidCredentials => "invalid_credentials",
            RegistrationDisabled => "registration_disabled",
            Forbidden(_) => "forbidden",
            NotFound(_) | RouteNotFound { .. } => "not_found",
            MethodNotAllowed => "method_not_allowed",
            ClientNotFound => "client_not_found",
            EmailTaken => "email_taken",
            JobFinished => "job_finished",
            NotRequeueable(_) => "not_requeueable",
            TooManyRequests { .. } => "too_many_requests",
            TooManyFailedLogins { .. } => "too_many_failed_logins",
            TooManyJobsWaiting { .. } => "too_many_jobs_waiting",
            Busy { .. } => "busy",
            DatabaseUnavailable => "database_unavailable",
            Timeout => "timeout",
            Internal(_) => "internal",
        }
    }

    /// The field at fault and the per-field problems, for errors about the input.
    fn fields(&self) -> Vec<FieldError> {
        let one = |field: &str| vec![FieldError::new(field, self.code(), self.to_string())];
        match self {
            ApiError::Validation(errors) => errors.clone(),
            ApiError::UnknownField { field } | ApiError::MissingField { field } => one(field),
            ApiError::InvalidType {
                field: Some(field), ..
            } => one(field),
            _ => Vec::new(),
        }
    }
}

// Named `ApiError` in the OpenAPI document, after the errors it renders.
/// Every error answers with this body.
#[derive(Serialize, ToSchema)]
#[schema(as = ApiError)]
pub struct Envelope {
    #[schema(inline)]
    error: Body,
}

#[derive(Serialize, ToSchema)]
struct Body {
    /// Stable: clients branch on it. Each operation lists the codes it can answer.
    #[schema(example = "validation_failed")]
    code: &'static str,
    /// For people: it may change.
    message: String,
    /// For errors about the input: the field at fault as a path (`macros.protein`,
    /// `meal_times[1]`), the first of `details`; `null` otherwise.
    #[schema(required = true)]
    field: Option<String>,
    /// For errors about the input: every problem, one per field; empty otherwise.
    details: Vec<FieldError>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(error) = &self {
            // The one place an internal failure is logged; the client learns nothing of it.
            tracing::error!(error = format!("{error:#}"), "request failed");
        }
        let status = self.status();
        let details = self.fields();
        let body = Envelope {
            error: Body {
                code: self.code(),
                message: self.to_string(),
                field: details.first().map(|d| d.field.clone()),
                details,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        match &self {
            ApiError::Unauthenticated => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::ExpiredToken | ApiError::InvalidToken | ApiError::SessionEnded => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            ApiError::TooManyRequests { retry_after }
            | ApiError::TooManyFailedLogins { retry_after }
            | ApiError::TooManyJobsWaiting { retry_after, .. }
            | ApiError::Busy { retry_after } => {
                headers.insert(header::RETRY_AFTER, retry_after_secs(*retry_after));
            }
            ApiError::DatabaseUnavailable => {
                headers.insert(header::RETRY_AFTER, retry_after_secs(DATABASE_RETRY_AFTER));
            }
            _ => {}
        }
        response
    }
}

/// `Retry-After` in whole seconds, rounded up: retrying a moment early would fail again.
fn retry_after_secs(wait: Duration) -> HeaderValue {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    HeaderValue::from(secs.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(error: ApiError) -> (StatusCode, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn validation_errors_name_the_first_field_and_list_all() {
        let (status, body) = body_of(ApiError::Validation(vec![
            FieldError::new(
                "days",
                "out_of_range",
                "days must be between 1 and 7, got 9",
            ),
            FieldError::new(
                "servings",
                "out_of_range",
                "servings must be between 1 and 10",
            ),
        ]))
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["error"]["code"], "validation_failed");
        assert_eq!(body["error"]["field"], "days");
        assert_eq!(
            body["error"]["message"],
            "days must be between 1 and 7, got 9"
        );
        assert_eq!(body["error"]["details"][1]["field"], "servings");
    }

    #[tokio::test]
    async fn an_internal_error_tells_the_client_nothing_of_its_cause() {
        let (status, body) = body_of(ApiError::Internal(anyhow::anyhow!(
            "relation \"users\" does not exist; password=hunter2"
        )))
        .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"]["code"], "internal");
        let text = body.to_string();
        assert!(
            !text.contains("users") && !text.contains("hunter2"),
            "{text}"
        );
        assert!(body["error"]["field"].is_null());
    }

    #[test]
    fn a_lost_database_connection_is_a_503_with_retry_after_not_a_500() {
        let lost = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        let response = ApiError::from(lost).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        let response = ApiError::from(sqlx::Error::PoolTimedOut).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key(header::RETRY_AFTER));
        let bug = ApiError::from(sqlx::Error::RowNotFound).into_response();
        assert_eq!(bug.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn retry_after_is_rounded_up_to_whole_seconds() {
        let response = ApiError::TooManyRequests {
            retry_after: Duration::from_millis(1_200),
        }
        .into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }
}
