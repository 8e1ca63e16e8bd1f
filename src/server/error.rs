//! The JSON error body of every failed request, and the mapping from module errors to
//! HTTP statuses.
//!
//! Every error is `{"error": "...", "field": "...", "index": N}`. `field` names the input
//! at fault and `index` the position of the job in an array body, and both are left out
//! when they do not apply. Messages never contain a token.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tracing::{debug, error};

use super::ingest::IngestError;
use crate::outbox::OutboxError;

/// An HTTP error response with a JSON body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiError {
    /// The HTTP status of the response.
    #[serde(skip)]
    pub status: StatusCode,
    /// The message: what failed, naming the value found.
    pub error: String,
    /// The input at fault: a JSON field, a query parameter or a path segment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Position of the job at fault in an array body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
}

impl ApiError {
    /// Builds an error with a status and a message, naming no field.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            error: message.into(),
            field: None,
            index: None,
        }
    }

    /// Builds a 400 error for a query parameter or path segment.
    pub fn bad_parameter(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message).with_field(field)
    }

    /// Builds a 422 error for a field of a well-formed request body.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message).with_field(field)
    }

    /// Names the input at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Names the position of the job at fault in an array body.
    pub fn at_index(mut self, index: usize) -> Self {
        self.index = Some(index);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        debug!(
            status = status.as_u16(),
            field = self.field.as_deref(),
            index = self.index,
            error = %self.error,
            "request failed"
        );
        let mut response = (status, Json(self)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            let challenge = HeaderValue::from_static("Bearer");
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

impl From<OutboxError> for ApiError {
    /// Maps a missing job to 404, a refused state change to 409, and anything else, which
    /// is a database failure, to 503 after logging it.
    fn from(err: OutboxError) -> Self {
        match err {
            OutboxError::NotFound(_) => Self::new(StatusCode::NOT_FOUND, err.to_string()),
            OutboxError::InvalidTransition { .. } => {
                Self::new(StatusCode::CONFLICT, err.to_string())
            }
            other => {
                error!(error = %other, "outbox request failed");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, other.to_string())
            }
        }
    }
}

impl From<IngestError> for ApiError {
    /// Maps every ingest failure to 503, because nothing was stored and a retry may
    /// succeed. The writer has already logged the cause.
    fn from(err: IngestError) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, err.to_string())
    }
}
