//! PublishVersion, ListVersionsByFunction and the alias operations (CreateAlias, GetAlias,
//! UpdateAlias, DeleteAlias, ListAliases), under `/2015-03-31`.

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nimbus_core::Core;
use nimbus_core::model::AliasRecord;
use nimbus_core::names::parse_function_ref;
use nimbus_core::versions::AliasInput;
use serde::Deserialize;
use serde_json::{Value, json};

use super::functions::render;
use super::wire;
use crate::error::LambdaError;

type Q = Query<HashMap<String, String>>;

fn reply(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn max_items(q: &HashMap<String, String>) -> Result<Option<i64>, LambdaError> {
    q.get("MaxItems")
        .map(|m| {
            m.parse::<i64>().map_err(|_| {
                LambdaError::new(
                    StatusCode::BAD_REQUEST,
                    "ValidationException",
                    format!("1 validation error detected: Value '{m}' at 'maxItems' failed to satisfy constraint: Member must be an integer"),
                )
            })
        })
        .transpose()
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct PublishIn {
    code_sha256: Option<String>,
    description: Option<String>,
    revision_id: Option<String>,
}

pub(crate) async fn publish(
    State(core): State<Core>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, LambdaError> {
    let input: PublishIn = wire::parse_body(&body)?;
    let rec = core
        .functions
        .publish_version(
            &parse_function_ref(&name)?,
            input.code_sha256,
            input.description,
            input.revision_id,
        )
        .await?;
    Ok(reply(StatusCode::CREATED, render(&core, &rec)))
}

pub(crate) async fn list_versions(
    State(core): State<Core>,
    Path(name): Path<String>,
    Query(q): Q,
) -> Result<Response, LambdaError> {
    let page = core.functions.list_versions(
        &parse_function_ref(&name)?,
        q.get("Marker").map(String::as_str),
        max_items(&q)?,
    )?;
    let mut body = json!({
        "Versions": page.items.iter().map(|r| render(&core, r)).collect::<Vec<_>>(),
    });
    if let Some(m) = page.next_marker {
        body["NextMarker"] = json!(m);
    }
    Ok(reply(StatusCode::OK, body))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct RoutingIn {
    additional_version_weights: Option<BTreeMap<String, f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct AliasIn {
    name: Option<String>,
    function_version: Option<String>,
    description: Option<String>,
    routing_config: Option<RoutingIn>,
    revision_id: Option<String>,
}

fn alias_input(body: &[u8]) -> Result<AliasInput, LambdaError> {
    let a: AliasIn = wire::parse_body(body)?;
    Ok(AliasInput {
        name: a.name,
        function_version: a.function_version,
        description: a.description,
        weights: a
            .routing_config
            .map(|r| r.additional_version_weights.unwrap_or_default()),
        revision_id: a.revision_id,
    })
}

fn render_alias(core: &Core, a: &AliasRecord) -> Value {
    let mut v = json!({
        "AliasArn": core.functions.alias_arn_of(a),
        "Name": a.name,
        "FunctionVersion": a.function_version,
        "Description": a.description,
        "RevisionId": a.revision_id,
    });
    if !a.additional_weights.is_empty() {
        v["RoutingConfig"] = json!({ "AdditionalVersionWeights": a.additional_weights });
    }
    v
}

pub(crate) async fn create_alias(
    State(core): State<Core>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, LambdaError> {
    let a = core
        .functions
        .create_alias(&parse_function_ref(&name)?, alias_input(&body)?)
        .await?;
    Ok(reply(StatusCode::CREATED, render_alias(&core, &a)))
}

pub(crate) async fn get_alias(
    State(core): State<Core>,
    Path((name, alias)): Path<(String, String)>,
) -> Result<Response, LambdaError> {
    let a = core
        .functions
        .get_alias(&parse_function_ref(&name)?, &alias)?;
    Ok(reply(StatusCode::OK, render_alias(&core, &a)))
}

pub(crate) async fn update_alias(
    State(core): State<Core>,
    Path((name, alias)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, LambdaError> {
    let a = core
        .functions
        .update_alias(&parse_function_ref(&name)?, &alias, alias_input(&body)?)
        .await?;
    Ok(reply(StatusCode::OK, render_alias(&core, &a)))
}

pub(crate) async fn delete_alias(
    State(core): State<Core>,
    Path((name, alias)): Path<(String, String)>,
) -> Result<Response, LambdaError> {
    let r = parse_function_ref(&name)?;
    core.functions.delete_alias(&r, &alias).await?;
    core.policies.forget_qualifier(&r.name, &alias).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn list_aliases(
    State(core): State<Core>,
    Path(name): Path<String>,
    Query(q): Q,
) -> Result<Response, LambdaError> {
    let page = core.functions.list_aliases(
        &parse_function_ref(&name)?,
        q.get("FunctionVersion").map(String::as_str),
        q.get("Marker").map(String::as_str),
        max_items(&q)?,
    )?;
    let mut body = json!({
        "Aliases": page.items.iter().map(|a| render_alias(&core, a)).collect::<Vec<_>>(),
    });
    if let Some(m) = page.next_marker {
        body["NextMarker"] = json!(m);
    }
    Ok(reply(StatusCode::OK, body))
}
