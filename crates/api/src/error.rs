//! The one place errors become HTTP: one status table, one JSON body shape
//! (`{"error", "code", "details"?}`), and our own rejections for bad JSON, paths and queries.
//!
//! A 5xx is logged once here with its cause chain; its text never reaches the client.

use std::collections::BTreeMap;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use commerce_commands::DispatchError;
use commerce_domain::{DomainError, ErrorKind};
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Human-readable text.
    pub error: String,
    /// Machine-readable code, e.g. `validation_failed`, `not_found`, `conflict`.
    pub code: String,
    /// Per-field messages of a validation error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<BTreeMap<String, String>>,
}

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: malformed or invalid input.
    #[error("{message}")]
    BadRequest {
        /// Machine code.
        code: &'static str,
        /// What is wrong.
        message: String,
        /// Per-field messages.
        details: Option<BTreeMap<String, String>>,
    },
    /// 401: no, invalid or expired credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: signed in but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 404: unknown id (or someone else's resource).
    #[error("{0}")]
    NotFound(String),
    /// 409: duplicate, or a state that forbids the action.
    #[error("{message}")]
    Conflict {
        /// Machine code.
        code: &'static str,
        /// What conflicts.
        message: String,
    },
    /// 413: body larger than the limit.
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// 415: a body that is not JSON.
    #[error("request body must be application/json")]
    UnsupportedMediaType,
    /// 429: rate limited; retry after this many seconds.
    #[error("rate limit exceeded; retry in {retry_after} s")]
    TooManyRequests {
        /// Seconds until a request is allowed again.
        retry_after: u64,
    },
    /// 503: a dependency is down or overloaded.
    #[error("{0}")]
    Unavailable(String),
    /// 500: a bug or an unexpected failure; logged, never shown.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// A 400 on one field.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut details = BTreeMap::new();
        details.insert(field.to_owned(), message.clone());
        Self::BadRequest {
            code: "validation_failed",
            message: format!("{field}: {message}"),
            details: Some(details),
        }
    }

    /// A 400 without a field.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest {
            code: "bad_request",
            message: message.into(),
            details: None,
        }
    }

    /// A 409 with the generic code.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict {
            code: "conflict",
            message: message.into(),
        }
    }

    /// A 404 naming what was not found.
    pub fn not_found(what: &str) -> Self {
        Self::NotFound(format!("{what} not found"))
    }

    /// A 500 from any error.
    pub fn internal(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(error))
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. } | Self::Conflict { code, .. } => code,
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::TooManyRequests { .. } => "rate_limited",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal_error",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Self::Internal(cause) = &self {
            tracing::error!(error = %error_chain(cause.as_ref()), "request failed");
        }
        let details = match &self {
            Self::BadRequest { details, .. } => details.clone(),
            _ => None,
        };
        let body = ErrorBody {
            error: self.to_string(),
            code: self.code().to_owned(),
            details,
        };
        let mut response = (status, Json(body)).into_response();
        match self {
            Self::TooManyRequests { retry_after } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            Self::Unauthorized(_) => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            // Every 503 is a wait on something that recovers by itself (a read model catching
            // up, the database coming back): say when to try again.
            Self::Unavailable(_) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

/// `error: cause: cause…`, for the log.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl<E> From<DispatchError<E>> for ApiError
where
    E: DomainError + Send + Sync + 'static,
{
    fn from(error: DispatchError<E>) -> Self {
        match error {
            DispatchError::Rejected(e) => domain(&e),
            DispatchError::Contention { .. } => {
                Self::Unavailable("the resource is busy; try again".to_owned())
            }
            DispatchError::Store(e) => store(e),
        }
    }
}

/// Maps a domain rule to its status by its kind.
pub fn domain(error: &(impl DomainError + ?Sized)) -> ApiError {
    let message = error.to_string();
    match error.kind() {
        ErrorKind::Invalid => ApiError::BadRequest {
            code: "validation_failed",
            message,
            details: None,
        },
        ErrorKind::NotFound => ApiError::NotFound(message),
        ErrorKind::Conflict => ApiError::Conflict {
            code: "conflict",
            message,
        },
        ErrorKind::Forbidden => ApiError::Forbidden(message),
    }
}

/// A store failure: 503 when Postgres is unreachable, else 500.
pub fn store(error: impl std::error::Error + Send + Sync + 'static) -> ApiError {
    if is_connection_failure(&error) {
        tracing::warn!(error = %error_chain(&error), "database unavailable");
        ApiError::Unavailable("the database is unavailable; try again".to_owned())
    } else {
        ApiError::internal(error)
    }
}

fn is_connection_failure(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(sqlx_error) = e.downcast_ref::<sqlx::Error>() {
            return matches!(
                sqlx_error,
                sqlx::Error::Io(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed
            ) || matches!(sqlx_error, sqlx::Error::Database(db)
                    if db.code().is_some_and(|c| c.starts_with("57P") || c.starts_with("08")));
        }
        current = e.source();
    }
    false
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        store(error)
    }
}

impl From<commerce_event_store::StoreError> for ApiError {
    fn from(error: commerce_event_store::StoreError) -> Self {
        store(error)
    }
}

/// The result of every handler.
pub type ApiResult<T> = Result<T, ApiError>;
