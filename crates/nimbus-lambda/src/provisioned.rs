//! Provisioned concurrency: Put/Get/Delete/ListProvisionedConcurrencyConfig(s) under
//! `/2019-09-30/functions/{name}/provisioned-concurrency`.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nimbus_core::Core;
use nimbus_core::names::{parse_function_ref, with_qualifier};
use nimbus_core::provisioned::ProvisionedStatus;
use serde::Deserialize;
use serde_json::{Value, json};

use super::wire;
use crate::error::LambdaError;

type Q = Query<HashMap<String, String>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct PutIn {
    provisioned_concurrent_executions: Option<i64>,
}

fn render(s: &ProvisionedStatus) -> Value {
    json!({
        "RequestedProvisionedConcurrentExecutions": s.config.requested,
        "AvailableProvisionedConcurrentExecutions": s.allocated,
        "AllocatedProvisionedConcurrentExecutions": s.allocated,
        "Status": s.status(),
        "LastModified": s.config.last_modified,
    })
}

fn reply(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn target(
    name: &str,
    q: &HashMap<String, String>,
) -> Result<nimbus_core::names::FunctionRef, LambdaError> {
    Ok(with_qualifier(
        parse_function_ref(name)?,
        q.get("Qualifier").map(String::as_str),
    )?)
}

pub(crate) async fn put(
    State(core): State<Core>,
    Path(name): Path<String>,
    Query(q): Q,
    body: Bytes,
) -> Result<Response, LambdaError> {
    let input: PutIn = wire::parse_body(&body)?;
    let n = input.provisioned_concurrent_executions.ok_or_else(|| {
        LambdaError::new(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "1 validation error detected: Value null at 'provisionedConcurrentExecutions' failed to satisfy constraint: Member must not be null",
        )
    })?;
    let s = core.invoke.put_provisioned(&target(&name, &q)?, n).await?;
    Ok(reply(StatusCode::ACCEPTED, render(&s)))
}

/// GetProvisionedConcurrencyConfig, or ListProvisionedConcurrencyConfigs with `?List=ALL`.
pub(crate) async fn get(
    State(core): State<Core>,
    Path(name): Path<String>,
    Query(q): Q,
) -> Result<Response, LambdaError> {
    if q.get("List").is_some_and(|l| l == "ALL") {
        let all = core.invoke.list_provisioned(&parse_function_ref(&name)?)?;
        let items: Vec<Value> = all
            .iter()
            .map(|s| {
                let mut v = render(s);
                v["FunctionArn"] = json!(format!(
                    "{}:{}",
                    core.settings.function_arn(&s.config.function),
                    s.config.qualifier
                ));
                v
            })
            .collect();
        return Ok(reply(
            StatusCode::OK,
            json!({ "ProvisionedConcurrencyConfigs": items }),
        ));
    }
    let s = core.invoke.get_provisioned(&target(&name, &q)?)?;
    Ok(reply(StatusCode::OK, render(&s)))
}

pub(crate) async fn delete(
    State(core): State<Core>,
    Path(name): Path<String>,
    Query(q): Q,
) -> Result<Response, LambdaError> {
    core.invoke.delete_provisioned(&target(&name, &q)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
