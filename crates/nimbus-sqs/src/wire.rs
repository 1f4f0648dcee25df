//! SQS at the wire: which protocol a request speaks, and the JSON 1.0 codec
//! (`X-Amz-Target: AmazonSQS.<Operation>`, as current AWS SDKs speak it). A form-encoded
//! request (or one with an `Action` in its query string) is the query protocol, served by
//! [`crate::query`]. Both decode into [`crate::api::Request`] and run through
//! [`crate::api::execute`]; JSON errors carry SQS's `__type` and the `x-amzn-query-error`
//! header SDKs use to name the error.

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use nimbus_edge::protocol::{self, Json};
use serde_json::{Value, json};

use crate::api::{self, SqsError};
use crate::service::QueueService;

/// The largest request body SQS reads (a 1 MiB message, base64 attributes, envelope).
pub const MAX_REQUEST_BYTES: usize = 2 * 1024 * 1024;

fn json_error(e: &SqsError) -> Response {
    protocol::json_error(e, Json::V1_0, Some("com.amazonaws.sqs"), true)
}

fn json_ok(body: &Value) -> Response {
    protocol::json_ok(Json::V1_0, body.to_string())
}

/// Serves one SQS request, in whichever protocol it speaks.
pub async fn handle(core: &QueueService, req: Request<Body>) -> Response {
    if protocol::query::is_query(&req) {
        return crate::query::handle(core, req).await;
    }
    let op = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix("AmazonSQS."))
        .unwrap_or("")
        .to_string();
    let body = match axum::body::to_bytes(req.into_body(), MAX_REQUEST_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return json_error(&SqsError::invalid(format!(
                "The request body could not be read (at most {MAX_REQUEST_BYTES} bytes)."
            )));
        }
    };
    let input: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return json_error(&SqsError::invalid(format!(
                    "The request body is not valid JSON: {e}"
                )));
            }
        }
    };
    let result = match api::Request::decode(&op, input) {
        Ok(r) => api::execute(core, r).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(v) => json_ok(&v),
        Err(e) => json_error(&e),
    }
}
