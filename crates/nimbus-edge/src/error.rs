//! AWS-shaped errors of the front door itself (JSON 1.1: an unknown service or operation, a
//! refused browser request), and the JSON 1.1 error that services of that protocol share.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nimbus_core::CoreError;

/// A JSON 1.1 protocol error (`{"__type": …, "message": …}`), as CloudWatch Logs sends them.
#[derive(Debug)]
pub struct JsonError {
    /// The HTTP status; 400 unless the error says otherwise.
    pub status: StatusCode,
    /// The exception name sent as `__type`, e.g. `ResourceNotFoundException`.
    pub error_type: &'static str,
    /// The human-readable `message`.
    pub message: String,
}

impl JsonError {
    /// A client error (400 Bad Request) of this type.
    pub fn new(error_type: &'static str, message: impl Into<String>) -> Self {
        JsonError {
            status: StatusCode::BAD_REQUEST,
            error_type,
            message: message.into(),
        }
    }
}

impl From<CoreError> for JsonError {
    fn from(e: CoreError) -> Self {
        JsonError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error_type: "ServiceUnavailableException",
            message: e.to_string(),
        }
    }
}

impl crate::protocol::AwsError for JsonError {
    fn code(&self) -> &str {
        self.error_type
    }

    fn status(&self) -> StatusCode {
        self.status
    }

    fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for JsonError {
    fn into_response(self) -> Response {
        crate::protocol::json_error(&self, crate::protocol::Json::V1_1, None, false)
    }
}
