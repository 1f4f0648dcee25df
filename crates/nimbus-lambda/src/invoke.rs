//! Invoke (`/2015-03-31/functions/{name}/invocations`) and the deprecated InvokeAsync.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use nimbus_core::Core;
use nimbus_core::invoke::{Caller, InvocationType, InvokeInput, Outcome};
use nimbus_core::names::{parse_function_ref, with_qualifier};

use crate::error::LambdaError;
use axum::extract::rejection::BytesRejection;
use nimbus_core::invoke::MAX_SYNC_PAYLOAD;

/// The body limit of the Invoke route: one byte over the largest payload, so the core's own
/// check (with its AWS message) sees any payload that is too large by one byte.
pub(crate) const INVOKE_BODY_LIMIT: usize = MAX_SYNC_PAYLOAD + 1;

/// An unreadable or over-long body as Lambda reports it.
fn too_large(e: BytesRejection, op: &str, limit: usize) -> LambdaError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        LambdaError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLargeException",
            format!("Request must be smaller than {limit} bytes for the {op} operation"),
        )
    } else {
        LambdaError::invalid_content(format!("The request body could not be read: {e}"))
    }
}

/// Largest base64 `X-Amz-Client-Context` Lambda takes.
const MAX_CLIENT_CONTEXT: usize = 3583;

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn validation(msg: String) -> LambdaError {
    LambdaError::new(StatusCode::BAD_REQUEST, "ValidationException", msg)
}

/// The caller of a Lambda API request: this account, and the access key it was signed with.
fn caller(core: &Core, headers: &HeaderMap) -> Caller {
    Caller::Account {
        account_id: core.settings.account_id.clone(),
        access_key_id: nimbus_edge::services::access_key_id(headers),
    }
}

pub(crate) async fn invoke(
    State(core): State<Core>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, LambdaError> {
    let body = body.map_err(|e| too_large(e, "InvokeFunction", MAX_SYNC_PAYLOAD))?;
    let target = with_qualifier(
        parse_function_ref(&name)?,
        q.get("Qualifier").map(String::as_str),
    )?;
    let invocation_type = match header(&headers, "x-amz-invocation-type") {
        None | Some("RequestResponse") => InvocationType::RequestResponse,
        Some("Event") => InvocationType::Event,
        Some("DryRun") => InvocationType::DryRun,
        Some(other) => {
            return Err(validation(format!(
                "1 validation error detected: Value '{other}' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]"
            )));
        }
    };
    let log_tail = match header(&headers, "x-amz-log-type") {
        None | Some("None") => false,
        Some("Tail") => true,
        Some(other) => {
            return Err(validation(format!(
                "1 validation error detected: Value '{other}' at 'logType' failed to satisfy constraint: Member must satisfy enum value set: [Tail, None]"
            )));
        }
    };
    let client_context = match header(&headers, "x-amz-client-context") {
        None => None,
        Some(cc) => {
            if cc.len() > MAX_CLIENT_CONTEXT {
                return Err(validation(format!(
                    "1 validation error detected: Value at 'clientContext' failed to satisfy constraint: Member must have length less than or equal to {MAX_CLIENT_CONTEXT}"
                )));
            }
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(cc)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .filter(|s| serde_json::from_str::<serde_json::Value>(s).is_ok())
                .ok_or_else(|| {
                    LambdaError::invalid_content(
                        "Client context must be a valid Base64-encoded JSON object.",
                    )
                })?;
            Some(decoded)
        }
    };
    let result = core
        .invoke
        .invoke(InvokeInput {
            target,
            caller: caller(&core, &headers),
            payload: body,
            invocation_type,
            log_tail: log_tail && invocation_type == InvocationType::RequestResponse,
            client_context,
            trace_header: header(&headers, "x-amzn-trace-id").map(str::to_string),
        })
        .await?;
    let mut resp = Response::new(Body::from(result.payload));
    *resp.status_mut() = match result.outcome {
        Outcome::Completed => StatusCode::OK,
        Outcome::Accepted => StatusCode::ACCEPTED,
        Outcome::DryRun => StatusCode::NO_CONTENT,
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&result.request_id) {
        h.insert("x-amzn-requestid", v);
    }
    if result.outcome == Outcome::Completed {
        let ct = result
            .content_type
            .as_deref()
            .and_then(|c| HeaderValue::from_str(c).ok())
            .unwrap_or_else(|| HeaderValue::from_static("application/json"));
        h.insert(axum::http::header::CONTENT_TYPE, ct);
        if let Ok(v) = HeaderValue::from_str(&result.executed_version) {
            h.insert("x-amz-executed-version", v);
        }
        if result.function_error {
            h.insert(
                "x-amz-function-error",
                HeaderValue::from_static("Unhandled"),
            );
        }
        if let Some(log) = result.log_result
            && let Ok(v) = HeaderValue::from_str(&log)
        {
            h.insert("x-amz-log-result", v);
        }
    }
    Ok(resp)
}

/// InvokeAsync (deprecated): the body is the event; answers 202 `{"Status":202}`.
pub(crate) async fn invoke_async(
    State(core): State<Core>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, LambdaError> {
    let body = body.map_err(|e| too_large(e, "InvokeAsync", 262_144))?;
    let target = parse_function_ref(&name)?;
    if body.len() > 262_144 {
        return Err(LambdaError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLargeException",
            "Request must be smaller than 262144 bytes for the InvokeAsync operation",
        ));
    }
    core.invoke
        .invoke(InvokeInput {
            target,
            caller: caller(&core, &headers),
            payload: body,
            invocation_type: InvocationType::Event,
            log_tail: false,
            client_context: None,
            trace_header: None,
        })
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        "{\"Status\":202}",
    )
        .into_response())
}
