//! Lambda's errors: each core error mapped once to the Lambda (REST-JSON) error type, HTTP status
//! and the body member casing botocore's model gives that shape.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use nimbus_core::CoreError;

/// A Lambda (REST-JSON) error.
#[derive(Debug)]
pub struct LambdaError {
    /// The HTTP status AWS gives this error type (404 for `ResourceNotFoundException`, …).
    pub status: StatusCode,
    /// The exception name, sent in the `X-Amzn-ErrorType` header (e.g.
    /// `ResourceNotFoundException`).
    pub error_type: &'static str,
    /// The human-readable message, sent as `message` or `Message` (see [`Self::capital`]).
    pub message: String,
    /// Whether the shape's member is `Message` (capital) rather than `message`.
    pub capital: bool,
    /// The body's `Type` member: `User` for the caller's errors, `Service` for Nimbus's own.
    pub kind: &'static str,
    /// A throttle's `Reason` (e.g. `ReservedFunctionConcurrentInvocationLimitExceeded`); when set,
    /// the response also carries `Retry-After: 1`.
    pub reason: Option<&'static str>,
}

impl LambdaError {
    /// A caller's error (`Type: User`) with a lower-case `message` and no reason.
    pub fn new(status: StatusCode, error_type: &'static str, message: impl Into<String>) -> Self {
        LambdaError {
            status,
            error_type,
            message: message.into(),
            capital: false,
            kind: "User",
            reason: None,
        }
    }

    /// `ResourceNotFoundException` (404), whose shape spells its member `Message`.
    pub fn not_found(message: impl Into<String>) -> Self {
        LambdaError {
            capital: true,
            ..LambdaError::new(StatusCode::NOT_FOUND, "ResourceNotFoundException", message)
        }
    }

    /// `InvalidParameterValueException` (400): a parameter is out of range or malformed.
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        LambdaError::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            message,
        )
    }

    /// `InvalidRequestContentException` (400): the request body could not be read, or is not
    /// the JSON the operation takes.
    pub fn invalid_content(message: impl Into<String>) -> Self {
        LambdaError::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            message,
        )
    }
}

impl From<CoreError> for LambdaError {
    fn from(e: CoreError) -> Self {
        let msg = e.to_string();
        match e {
            CoreError::Validation(_) => {
                LambdaError::new(StatusCode::BAD_REQUEST, "ValidationException", msg)
            }
            CoreError::InvalidParameter(_) => LambdaError::invalid_parameter(msg),
            CoreError::InvalidRequestContent(_) => LambdaError::invalid_content(msg),
            CoreError::NotFound(_) => LambdaError::not_found(msg),
            CoreError::ProvisionedNotFound(_) => LambdaError::new(
                StatusCode::NOT_FOUND,
                "ProvisionedConcurrencyConfigNotFoundException",
                msg,
            ),
            CoreError::Conflict(_) => {
                LambdaError::new(StatusCode::CONFLICT, "ResourceConflictException", msg)
            }
            CoreError::PreconditionFailed(_) => LambdaError::new(
                StatusCode::PRECONDITION_FAILED,
                "PreconditionFailedException",
                msg,
            ),
            CoreError::RequestTooLarge(_) => LambdaError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLargeException",
                msg,
            ),
            CoreError::TooManyRequests { reason, .. } => LambdaError {
                reason: Some(reason),
                ..LambdaError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequestsException",
                    msg,
                )
            },
            CoreError::Store(_) | CoreError::Internal(_) => {
                tracing::error!(error = %msg, "internal error");
                LambdaError {
                    capital: true,
                    kind: "Service",
                    ..LambdaError::new(StatusCode::INTERNAL_SERVER_ERROR, "ServiceException", msg)
                }
            }
        }
    }
}

impl nimbus_edge::protocol::AwsError for LambdaError {
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

/// Lambda's REST-JSON error: `x-amzn-errortype` names the shape; the body carries `Type`
/// (`User` or `Service`), the message under the member name the shape's model gives it, and
/// `Reason` for throttles.
impl IntoResponse for LambdaError {
    fn into_response(self) -> Response {
        let mut body = serde_json::Map::new();
        body.insert("Type".into(), self.kind.into());
        body.insert(
            if self.capital { "Message" } else { "message" }.into(),
            self.message.into(),
        );
        if let Some(r) = self.reason {
            body.insert("Reason".into(), r.into());
        }
        let mut resp = (
            self.status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            serde_json::Value::Object(body).to_string(),
        )
            .into_response();
        let h = resp.headers_mut();
        h.insert(
            "x-amzn-errortype",
            HeaderValue::from_static(self.error_type),
        );
        if let Ok(v) = HeaderValue::from_str(&nimbus_edge::protocol::request_id()) {
            h.insert("x-amzn-requestid", v);
        }
        if self.reason.is_some() {
            h.insert("retry-after", HeaderValue::from_static("1"));
        }
        resp
    }
}
