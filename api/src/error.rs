//! The API's one error type: each variant maps to a status and a message that
//! says what to fix. Internals are logged, never sent.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::correlation;

/// Everything a route can answer other than success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is wrong; the message says how.
    #[error("{0}")]
    BadRequest(String),
    /// No or bad credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Valid credentials, but not in an allowed group.
    #[error("{0}")]
    Forbidden(String),
    /// Nothing there.
    #[error("{0}")]
    NotFound(String),
    /// The URI is longer than the API reads.
    #[error("{0}")]
    UriTooLong(String),
    /// The headers are larger than the API reads.
    #[error("{0}")]
    HeadersTooLarge(String),
    /// The request contradicts what is recorded (an id already taken).
    #[error("{0}")]
    Conflict(String),
    /// Writing is not enabled on this API (a POST without an ingest queue).
    #[error("{0}")]
    NotWritable(String),
    /// The body is larger than the route reads.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The body is not of a type the route reads.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The activity queue refused or could not be reached; the message says what
    /// was accepted before it failed.
    #[error("{0}")]
    QueueUnavailable(String),
    /// The table could not be reached.
    #[error("the activity store is unavailable; try again shortly")]
    Unavailable(#[source] anyhow::Error),
    /// Anything else: a defect or an unexpected answer. Logged in full.
    #[error("internal error")]
    Unexpected(#[source] anyhow::Error),
}

/// The body of every error response.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// HTTP status code.
    pub status: u16,
    /// Short name of the status, e.g. `Bad Request`.
    pub error: String,
    /// What went wrong and how to fix it.
    pub message: String,
    /// Quote this when asking for support.
    pub correlation_id: String,
}

impl ApiError {
    /// The status each variant answers with.
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            Self::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::NotWritable(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::QueueUnavailable(_) | Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        match &self {
            Self::Unavailable(e) => tracing::error!(error = format!("{e:#}"), "store unavailable"),
            Self::Unexpected(e) => tracing::error!(error = format!("{e:#}"), "unexpected error"),
            Self::QueueUnavailable(m) => tracing::error!(reason = %m, "activity queue unavailable"),
            _ => tracing::info!(status = status.as_u16(), reason = %self, "request refused"),
        }
        let body = ErrorBody {
            status: status.as_u16(),
            error: status.canonical_reason().unwrap_or("Error").to_owned(),
            message: self.to_string(),
            correlation_id: correlation::current(),
        };
        let mut response = (status, Json(body)).into_response();
        if let Self::NotWritable(_) = &self {
            // RFC 9110: a 405 names the methods the resource has.
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET"));
        }
        if let Self::Unauthorized(msg) = &self {
            // RFC 6750: say which scheme, and why the token was refused.
            let quoted = msg.replace('"', "'");
            let value = format!(
                "Bearer realm=\"activity-history\", error=\"invalid_token\", error_description=\"{quoted}\""
            );
            if let Ok(v) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
        }
        response
    }
}
