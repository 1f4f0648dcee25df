//! Reserved concurrency: PutFunctionConcurrency and DeleteFunctionConcurrency (under
//! `/2017-10-31`) and GetFunctionConcurrency (under `/2019-09-30`), as AWS dates them.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nimbus_core::Core;
use nimbus_core::names::parse_function_ref;
use serde::Deserialize;
use serde_json::json;

use super::wire;
use crate::error::LambdaError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct PutIn {
    reserved_concurrent_executions: Option<i64>,
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

pub(crate) async fn put(
    State(core): State<Core>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, LambdaError> {
    let input: PutIn = wire::parse_body(&body)?;
    let value = input.reserved_concurrent_executions.ok_or_else(|| {
        LambdaError::new(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "1 validation error detected: Value null at 'reservedConcurrentExecutions' failed to satisfy constraint: Member must not be null",
        )
    })?;
    let r = parse_function_ref(&name)?;
    let rec = core
        .functions
        .set_reserved_concurrency(&r, Some(value))
        .await?;
    Ok(json_response(
        StatusCode::OK,
        json!({ "ReservedConcurrentExecutions": rec.reserved_concurrency }),
    ))
}

pub(crate) async fn get(
    State(core): State<Core>,
    Path(name): Path<String>,
) -> Result<Response, LambdaError> {
    let r = parse_function_ref(&name)?;
    let rec = core.functions.resolve(&r)?;
    let body = match rec.reserved_concurrency {
        Some(v) => json!({ "ReservedConcurrentExecutions": v }),
        None => json!({}),
    };
    Ok(json_response(StatusCode::OK, body))
}

pub(crate) async fn delete(
    State(core): State<Core>,
    Path(name): Path<String>,
) -> Result<Response, LambdaError> {
    let r = parse_function_ref(&name)?;
    core.functions.set_reserved_concurrency(&r, None).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
