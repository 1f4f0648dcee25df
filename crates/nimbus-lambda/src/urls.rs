//! Function URL configuration: Create/Get/Update/DeleteFunctionUrlConfig and
//! ListFunctionUrlConfigs under `/2021-10-31`.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nimbus_core::Core;
use nimbus_core::names::{parse_function_ref, with_qualifier};
use nimbus_core::urls::{UrlConfig, UrlInput};
use serde::Deserialize;
use serde_json::{Value, json};

use super::wire;
use crate::error::LambdaError;

type Q = Query<HashMap<String, String>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct UrlIn {
    auth_type: Option<String>,
    cors: Option<Value>,
    invoke_mode: Option<String>,
}

fn input(body: &[u8]) -> Result<UrlInput, LambdaError> {
    let u: UrlIn = wire::parse_body(body)?;
    if let Some(c) = &u.cors {
        nimbus_core::cors::Cors::from_wire(c).map_err(|e| {
            LambdaError::from(nimbus_core::CoreError::Validation(format!(
                "1 validation error detected: Value at 'cors' failed to satisfy constraint: {e}"
            )))
        })?;
    }
    Ok(UrlInput {
        auth_type: u.auth_type,
        cors: u.cors,
        invoke_mode: u.invoke_mode,
    })
}

/// `http://<id>.lambda-url.localhost:<port>/` where `*.localhost` resolves on this machine,
/// else the path-style `<public url>/_aws/lambda-url/<id>/` — usable as-is either way.
pub(crate) fn function_url(core: &Core, id: &str) -> String {
    let base = core.settings.public_url.trim_end_matches('/');
    if !nimbus_core::urls::localhost_subdomains_resolve() {
        return format!("{base}/_aws/lambda-url/{id}/");
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("http", base));
    let port = rest
        .rsplit_once(':')
        .map(|(_, p)| format!(":{p}"))
        .unwrap_or_default();
    format!("{scheme}://{id}.lambda-url.localhost{port}/")
}

fn render(core: &Core, c: &UrlConfig) -> Value {
    let arn = core.settings.function_arn(&c.function);
    let arn = if c.qualifier == "$LATEST" {
        arn
    } else {
        format!("{arn}:{}", c.qualifier)
    };
    let mut v = json!({
        "FunctionUrl": function_url(core, &c.url_id),
        "FunctionArn": arn,
        "AuthType": c.auth_type,
        "CreationTime": c.creation_time,
        "LastModifiedTime": c.last_modified,
        "InvokeMode": c.invoke_mode,
    });
    if let Some(cors) = &c.cors {
        v["Cors"] = cors.clone();
    }
    v
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

pub(crate) async fn create(
    State(core): State<Core>,
    Path(name): Path<String>,
    Query(q): Q,
    body: Bytes,
) -> Result<Response, LambdaError> {
    let c = core.urls.create(&target(&name, &q)?, input(&body)?).await?;
    let mut v = render(&core, &c);
    if let Some(o) = v.as_object_mut() {
        o.remove("LastModifiedTime");
    }
    Ok(reply(StatusCode::CREATED, v))
}

pub(crate) async fn get(
    State(core): State<Core>,
    Path(name): Path<String>,
    Query(q): Q,
) -> Result<Response, LambdaError> {
    let c = core.urls.get(&target(&name, &q)?)?;
    Ok(reply(StatusCode::OK, render(&core, &c)))
}

pub(crate) async fn update(
    State(core): State<Core>,
    Path(name): Path<String>,
    Query(q): Q,
    body: Bytes,
) -> Result<Response, LambdaError> {
    let c = core.urls.update(&target(&name, &q)?, input(&body)?).await?;
    Ok(reply(StatusCode::OK, render(&core, &c)))
}

pub(crate) async fn delete(
    State(core): State<Core>,
    Path(name): Path<String>,
    Query(q): Q,
) -> Result<Response, LambdaError> {
    core.urls.delete(&target(&name, &q)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn list(
    State(core): State<Core>,
    Path(name): Path<String>,
) -> Result<Response, LambdaError> {
    let all = core.urls.list(&parse_function_ref(&name)?)?;
    Ok(reply(
        StatusCode::OK,
        json!({ "FunctionUrlConfigs": all.iter().map(|c| render(&core, c)).collect::<Vec<_>>() }),
    ))
}
