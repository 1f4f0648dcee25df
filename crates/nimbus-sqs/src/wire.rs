//! SQS at the wire: which protocol a request speaks, and the JSON 1.0 codec
//! (`X-Amz-Target: AmazonSQS.<Operation>`, as current AWS SDKs speak it). A form-encoded
//! request (or one with an `Action` in its query string) is the query protocol, served by
//! [`crate::query`]. Both decode into [`crate::api::Request`] and run through
//! [`crate::api::execute`]; JSON errors carry SQS's `__type` and the `x-amzn-query-error`
//! header SDKs use to name the error.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::api::{self, SqsError};
use crate::service::QueueService;

/// The largest request body SQS reads (a 1 MiB message, base64 attributes, envelope).
pub const MAX_REQUEST_BYTES: usize = 2 * 1024 * 1024;

pub fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn json_error(e: &SqsError) -> Response {
    let body = json!({
        "__type": format!("com.amazonaws.sqs#{}", e.shape),
        "message": e.message,
    });
    let mut r = (
        e.status,
        [(header::CONTENT_TYPE, "application/x-amz-json-1.0")],
        body.to_string(),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("{};{}", e.query_code, e.fault())) {
        r.headers_mut().insert("x-amzn-query-error", v);
    }
    if let Ok(v) = HeaderValue::from_str(&request_id()) {
        r.headers_mut().insert("x-amzn-requestid", v);
    }
    r
}

fn json_ok(body: &Value) -> Response {
    let mut r = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-amz-json-1.0")],
        body.to_string(),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&request_id()) {
        r.headers_mut().insert("x-amzn-requestid", v);
    }
    r
}

/// Whether a request speaks the query protocol: a form body, or no `X-Amz-Target` and an
/// `Action` in the query string.
fn is_query(req: &Request<Body>) -> bool {
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
        .unwrap_or(false);
    let target = req.headers().contains_key("x-amz-target");
    form || (!target
        && req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv.starts_with("Action="))))
}

/// Serves one SQS request, in whichever protocol it speaks.
pub async fn handle(core: &QueueService, req: Request<Body>) -> Response {
    if is_query(&req) {
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
