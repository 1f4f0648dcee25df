//! Asynchronous invocation settings: Put/Get/Update/Delete/ListFunctionEventInvokeConfigs, under
//! `/2019-09-25`.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nimbus_core::Core;
use nimbus_core::event_config::{EventConfigInput, EventInvokeConfig};
use nimbus_core::names::{parse_function_ref, with_qualifier};
use serde::Deserialize;
use serde_json::{Value, json};

use super::wire;
use crate::error::LambdaError;

type Q = Query<HashMap<String, String>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct DestinationIn {
    destination: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct DestinationConfigIn {
    on_success: Option<DestinationIn>,
    on_failure: Option<DestinationIn>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct ConfigIn {
    maximum_retry_attempts: Option<i64>,
    maximum_event_age_in_seconds: Option<i64>,
    destination_config: Option<DestinationConfigIn>,
}

fn input(body: &[u8]) -> Result<EventConfigInput, LambdaError> {
    let c: ConfigIn = wire::parse_body(body)?;
    let d = c.destination_config;
    let pick = |x: Option<&DestinationIn>| x.and_then(|d| d.destination.clone());
    Ok(EventConfigInput {
        maximum_retry_attempts: c.maximum_retry_attempts,
        maximum_event_age_seconds: c.maximum_event_age_in_seconds,
        on_success: pick(d.as_ref().and_then(|d| d.on_success.as_ref())),
        on_failure: pick(d.as_ref().and_then(|d| d.on_failure.as_ref())),
    })
}

fn render(core: &Core, c: &EventInvokeConfig) -> Value {
    let dest = |d: &Option<String>| match d {
        Some(arn) => json!({ "Destination": arn }),
        None => json!({}),
    };
    let mut v = json!({
        "LastModified": c.last_modified,
        "FunctionArn": format!("{}:{}", core.settings.function_arn(&c.function), c.qualifier),
        "DestinationConfig": { "OnSuccess": dest(&c.on_success), "OnFailure": dest(&c.on_failure) },
    });
    if let Some(r) = c.maximum_retry_attempts {
        v["MaximumRetryAttempts"] = json!(r);
    }
    if let Some(a) = c.maximum_event_age_seconds {
        v["MaximumEventAgeInSeconds"] = json!(a);
    }
    v
}

fn ok(body: Value) -> Response {
    (
        StatusCode::OK,
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
    let c = core
        .event_configs
        .put(&target(&name, &q)?, input(&body)?)
        .await?;
    Ok(ok(render(&core, &c)))
}

pub(crate) async fn update(
    State(core): State<Core>,
    Path(name): Path<String>,
    Query(q): Q,
    body: Bytes,
) -> Result<Response, LambdaError> {
    let c = core
        .event_configs
        .update(&target(&name, &q)?, input(&body)?)
        .await?;
    Ok(ok(render(&core, &c)))
}

pub(crate) async fn get(
    State(core): State<Core>,
    Path(name): Path<String>,
    Query(q): Q,
) -> Result<Response, LambdaError> {
    let c = core.event_configs.get(&target(&name, &q)?)?;
    Ok(ok(render(&core, &c)))
}

pub(crate) async fn delete(
    State(core): State<Core>,
    Path(name): Path<String>,
    Query(q): Q,
) -> Result<Response, LambdaError> {
    core.event_configs.delete(&target(&name, &q)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn list(
    State(core): State<Core>,
    Path(name): Path<String>,
    Query(q): Q,
) -> Result<Response, LambdaError> {
    if let Some(m) = q.get("MaxItems")
        && !m.parse::<i64>().is_ok_and(|n| (1..=50).contains(&n))
    {
        return Err(LambdaError::new(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            format!(
                "1 validation error detected: Value '{m}' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and 50"
            ),
        ));
    }
    let all = core.event_configs.list(&parse_function_ref(&name)?)?;
    let items: Vec<Value> = all.iter().map(|c| render(&core, c)).collect();
    Ok(ok(json!({ "FunctionEventInvokeConfigs": items })))
}
