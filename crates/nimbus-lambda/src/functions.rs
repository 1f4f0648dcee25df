//! Function CRUD, listing and account settings.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use nimbus_core::Core;
use nimbus_core::model::{CreateFunction, FunctionRecord, UpdateCode};
use nimbus_core::names::{parse_function_ref, with_qualifier};
use serde_json::json;

use super::wire::{self, CreateFunctionIn, UpdateCodeIn, UpdateConfigurationIn};
use crate::error::LambdaError;

type Q = Query<HashMap<String, String>>;

fn ok(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

pub(crate) fn render(core: &Core, rec: &FunctionRecord) -> serde_json::Value {
    let arn = core.settings.function_arn(&rec.name);
    let arn = if rec.version == "$LATEST" {
        arn
    } else {
        format!("{arn}:{}", rec.version)
    };
    wire::configuration(rec, &arn, &core.settings.region)
}

pub(crate) async fn create(State(core): State<Core>, body: Bytes) -> Result<Response, LambdaError> {
    let mut input: CreateFunctionIn = wire::parse_body(&body)?;
    let name = input.function_name.take().ok_or_else(|| {
        LambdaError::new(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "1 validation error detected: Value null at 'functionName' failed to satisfy constraint: Member must not be null",
        )
    })?;
    let code = input.code.take().ok_or_else(|| {
        LambdaError::new(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "1 validation error detected: Value null at 'code' failed to satisfy constraint: Member must not be null",
        )
    })?;
    let zip = code.zip_file.as_deref().map(wire::decode_zip).transpose()?;
    let unsupported = if code.s3_bucket.is_some() || code.s3_key.is_some() {
        Some("S3Bucket".to_string())
    } else if code.image_uri.is_some() {
        Some("ImageUri".to_string())
    } else {
        None
    };
    let cmd = CreateFunction {
        name,
        config: input.config(),
        zip,
        unsupported_code_source: unsupported,
        package_type: input.package_type.take(),
        architectures: input.architectures.take(),
        publish: input.publish.unwrap_or(false),
        tags: input.tags.take().unwrap_or_default(),
    };
    let publish = cmd.publish;
    let rec = core.functions.create(cmd).await?;
    // Publish=true: the answer is the first version, once the function is active.
    let rec = if publish {
        core.functions
            .publish_version(&parse_function_ref(&rec.name)?, None, None, None)
            .await?
    } else {
        rec
    };
    Ok(ok(StatusCode::CREATED, render(&core, &rec)))
}

pub(super) fn target(
    name: &str,
    q: &HashMap<String, String>,
) -> Result<nimbus_core::names::FunctionRef, LambdaError> {
    let r = parse_function_ref(name)?;
    Ok(with_qualifier(r, q.get("Qualifier").map(String::as_str))?)
}

pub(crate) async fn get(
    State(core): State<Core>,
    Path(name): Path<String>,
    Query(q): Q,
    headers: HeaderMap,
) -> Result<Response, LambdaError> {
    let r = target(&name, &q)?;
    let rec = core.functions.resolve(&r)?;
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| {
            core.settings
                .public_url
                .trim_start_matches("http://")
                .to_string()
        });
    let location = format!(
        "http://{host}/_nimbus/code/{}/{}.zip",
        rec.name, rec.code_hex
    );
    let mut body = json!({
        "Configuration": render(&core, &rec),
        "Code": { "RepositoryType": "S3", "Location": location },
    });
    if let Some(o) = body.as_object_mut() {
        if !rec.tags.is_empty() {
            o.insert("Tags".into(), json!(rec.tags));
        }
        if let Some(c) = rec.reserved_concurrency {
            o.insert(
                "Concurrency".into(),
                json!({ "ReservedConcurrentExecutions": c }),
            );
        }
    }
    Ok(ok(StatusCode::OK, body))
}

pub(crate) async fn get_configuration(
    State(core): State<Core>,
    Path(name): Path<String>,
    Query(q): Q,
) -> Result<Response, LambdaError> {
    let r = target(&name, &q)?;
    let rec = core.functions.resolve(&r)?;
    Ok(ok(StatusCode::OK, render(&core, &rec)))
}

pub(crate) async fn update_configuration(
    State(core): State<Core>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, LambdaError> {
    let r = parse_function_ref(&name)?;
    let mut input: UpdateConfigurationIn = wire::parse_body(&body)?;
    let revision = input.revision_id.take();
    let rec = core
        .functions
        .update_config(&r, input.config(), revision)
        .await?;
    Ok(ok(StatusCode::OK, render(&core, &rec)))
}

pub(crate) async fn update_code(
    State(core): State<Core>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, LambdaError> {
    let r = parse_function_ref(&name)?;
    let input: UpdateCodeIn = wire::parse_body(&body)?;
    let zip = input
        .zip_file
        .as_deref()
        .map(wire::decode_zip)
        .transpose()?;
    let unsupported = if input.s3_bucket.is_some() || input.s3_key.is_some() {
        Some("S3Bucket".to_string())
    } else if input.image_uri.is_some() {
        Some("ImageUri".to_string())
    } else {
        None
    };
    let publish = input.publish.unwrap_or(false) && !input.dry_run.unwrap_or(false);
    let rec = core
        .functions
        .update_code(
            &r,
            UpdateCode {
                zip,
                unsupported_code_source: unsupported,
                architectures: input.architectures,
                revision_id: input.revision_id,
                dry_run: input.dry_run.unwrap_or(false),
                publish,
            },
        )
        .await?;
    let rec = if publish {
        core.functions
            .publish_version(&parse_function_ref(&rec.name)?, None, None, None)
            .await?
    } else {
        rec
    };
    Ok(ok(StatusCode::OK, render(&core, &rec)))
}

pub(crate) async fn delete(
    State(core): State<Core>,
    Path(name): Path<String>,
    Query(q): Q,
) -> Result<Response, LambdaError> {
    let r = target(&name, &q)?;
    core.functions.delete(&r).await?;
    if r.qualifier.is_none() {
        core.invoke.forget(&r.name);
        core.urls.forget(&r.name);
        core.policies.forget(&r.name);
    } else if let Some(q) = &r.qualifier {
        core.policies.forget_qualifier(&r.name, q).await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn list(State(core): State<Core>, Query(q): Q) -> Result<Response, LambdaError> {
    let max_items = match q.get("MaxItems") {
        Some(m) => Some(m.parse::<i64>().map_err(|_| {
            LambdaError::new(
                StatusCode::BAD_REQUEST,
                "ValidationException",
                format!("1 validation error detected: Value '{m}' at 'maxItems' failed to satisfy constraint: Member must be an integer"),
            )
        })?),
        None => None,
    };
    if let Some(v) = q.get("FunctionVersion")
        && v != "ALL"
    {
        return Err(LambdaError::new(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            format!(
                "1 validation error detected: Value '{v}' at 'functionVersion' failed to satisfy constraint: Member must satisfy enum value set: [ALL]"
            ),
        ));
    }
    let page = core
        .functions
        .list(q.get("Marker").map(String::as_str), max_items)?;
    let functions: Vec<serde_json::Value> = page.items.iter().map(|r| render(&core, r)).collect();
    let mut body = json!({ "Functions": functions });
    if let (Some(m), Some(o)) = (page.next_marker, body.as_object_mut()) {
        o.insert("NextMarker".into(), m.into());
    }
    Ok(ok(StatusCode::OK, body))
}

pub(crate) async fn account_settings(State(core): State<Core>) -> Result<Response, LambdaError> {
    let s = core
        .functions
        .account_settings(core.invoke.reserved_total());
    Ok(ok(
        StatusCode::OK,
        json!({
            "AccountLimit": {
                "TotalCodeSize": s.total_code_size_limit,
                "CodeSizeUnzipped": s.code_size_unzipped,
                "CodeSizeZipped": s.code_size_zipped,
                "ConcurrentExecutions": s.concurrent_executions,
                "UnreservedConcurrentExecutions": s.unreserved_concurrent_executions,
            },
            "AccountUsage": {
                "TotalCodeSize": s.total_code_size,
                "FunctionCount": s.function_count,
            }
        }),
    ))
}
