//! The AWS protocols' shared parts, so that every service renders its errors and results the
//! same way: one [`AwsError`] trait (the error's shape name, query code, HTTP status, message
//! and fault) rendered once per protocol — the JSON 1.0/1.1 protocols here ([`json_error`],
//! [`json_ok`]), the query protocol (form in, XML out) in [`query`], XML text in [`xml`].

pub mod query;
pub mod xml;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Whose fault an error is, as the query protocol's `<Type>` and `x-amzn-query-error` say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The request was wrong (4xx).
    Sender,
    /// The service failed (5xx).
    Receiver,
}

impl Fault {
    /// `Sender` or `Receiver`.
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Sender => "Sender",
            Fault::Receiver => "Receiver",
        }
    }
}

/// An error a service answers with, whichever protocol carries it.
pub trait AwsError {
    /// The error shape's name (`QueueDoesNotExist`, `ResourceNotFoundException`): JSON's
    /// `__type`, REST's `x-amzn-errortype`.
    fn code(&self) -> &str;
    /// The query protocol's code for it (the model's `awsQueryError`,
    /// `AWS.SimpleQueueService.NonExistentQueue`), where it differs from the shape's name.
    fn query_code(&self) -> &str {
        self.code()
    }
    /// The HTTP status.
    fn status(&self) -> StatusCode;
    /// The message for the caller.
    fn message(&self) -> &str;
    /// Whose fault: the caller's for 4xx, the service's for 5xx.
    fn fault(&self) -> Fault {
        if self.status().is_server_error() {
            Fault::Receiver
        } else {
            Fault::Sender
        }
    }
}

/// A new request id (`x-amzn-RequestId`).
pub fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Which JSON protocol: the content type both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Json {
    /// `application/x-amz-json-1.0` (SQS, DynamoDB, Kinesis's 1.1 aside).
    V1_0,
    /// `application/x-amz-json-1.1` (CloudWatch Logs, EventBridge, Kinesis).
    V1_1,
}

impl Json {
    fn content_type(self) -> &'static str {
        match self {
            Json::V1_0 => "application/x-amz-json-1.0",
            Json::V1_1 => "application/x-amz-json-1.1",
        }
    }
}

fn with_request_id(mut r: Response, id: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(id) {
        r.headers_mut().insert("x-amzn-requestid", v);
    }
    r
}

/// A JSON-protocol success: the body as given.
pub fn json_ok(version: Json, body: String) -> Response {
    with_request_id(
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, version.content_type())],
            body,
        )
            .into_response(),
        &request_id(),
    )
}

/// A JSON-protocol error: `{"__type": "<namespace>#<code>", "message": …}` (the namespace
/// only where the service's model qualifies its shapes, as `com.amazonaws.sqs`). A service
/// that also speaks the query protocol (`awsQueryCompatible`) adds `x-amzn-query-error:
/// <query code>;<fault>`, which SDKs read the error's code from.
pub fn json_error(
    e: &dyn AwsError,
    version: Json,
    namespace: Option<&str>,
    query_compatible: bool,
) -> Response {
    let kind = match namespace {
        Some(ns) => format!("{ns}#{}", e.code()),
        None => e.code().to_string(),
    };
    let body = serde_json::json!({ "__type": kind, "message": e.message() });
    let mut r = (
        e.status(),
        [(header::CONTENT_TYPE, version.content_type())],
        body.to_string(),
    )
        .into_response();
    if query_compatible
        && let Ok(v) = HeaderValue::from_str(&format!("{};{}", e.query_code(), e.fault().as_str()))
    {
        r.headers_mut().insert("x-amzn-query-error", v);
    }
    with_request_id(r, &request_id())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Missing;

    impl AwsError for Missing {
        fn code(&self) -> &str {
            "QueueDoesNotExist"
        }
        fn query_code(&self) -> &str {
            "AWS.SimpleQueueService.NonExistentQueue"
        }
        fn status(&self) -> StatusCode {
            StatusCode::BAD_REQUEST
        }
        fn message(&self) -> &str {
            "The specified queue does not exist."
        }
    }

    #[tokio::test]
    async fn json_errors_carry_type_message_and_query_code() {
        let r = json_error(&Missing, Json::V1_0, Some("com.amazonaws.sqs"), true);
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            r.headers()["x-amzn-query-error"],
            "AWS.SimpleQueueService.NonExistentQueue;Sender"
        );
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "application/x-amz-json-1.0"
        );
        let body = axum::body::to_bytes(r.into_body(), 1024)
            .await
            .expect("body");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["__type"], "com.amazonaws.sqs#QueueDoesNotExist");
        assert_eq!(v["message"], "The specified queue does not exist.");
        let plain = json_error(&Missing, Json::V1_1, None, false);
        assert!(plain.headers().get("x-amzn-query-error").is_none());
    }
}
