//! AWS-shaped errors of the front door itself (JSON 1.1: an unknown service or operation, a
//! refused browser request), and the JSON 1.1 error that services of that protocol share.

use axum::http::{HeaderValue, StatusCode};
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

impl IntoResponse for JsonError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "__type": self.error_type, "message": self.message });
        let mut resp = (
            self.status,
            [(
                axum::http::header::CONTENT_TYPE,
                "application/x-amz-json-1.1",
            )],
            body.to_string(),
        )
            .into_response();
        if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
            resp.headers_mut().insert("x-amzn-requestid", v);
        }
        resp
    }
}
