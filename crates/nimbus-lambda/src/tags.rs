//! Tags: TagResource, UntagResource and ListTags under `/2017-03-31/tags/{ARN}`.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nimbus_core::Core;
use nimbus_core::event_sources::EventSourceMappings;
use serde::Deserialize;
use serde_json::json;

use super::wire;
use crate::error::LambdaError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct TagIn {
    tags: Option<BTreeMap<String, String>>,
}

pub(crate) async fn tag(
    State(core): State<Core>,
    Path(arn): Path<String>,
    body: Bytes,
) -> Result<Response, LambdaError> {
    let input: TagIn = wire::parse_body(&body)?;
    let tags = input.tags.ok_or_else(|| {
        LambdaError::new(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "1 validation error detected: Value null at 'tags' failed to satisfy constraint: Member must not be null",
        )
    })?;
    if EventSourceMappings::uuid_of(&arn).is_some() {
        core.event_sources.tag(&arn, tags).await?;
    } else {
        core.functions.tag(&arn, tags).await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn untag(
    State(core): State<Core>,
    Path(arn): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, LambdaError> {
    // `tagKeys` repeats: ?tagKeys=a&tagKeys=b.
    let keys: Vec<String> = query
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == "tagKeys")
        .map(|(_, v)| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    if keys.is_empty() {
        return Err(LambdaError::new(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "1 validation error detected: Value null at 'tagKeys' failed to satisfy constraint: Member must not be null",
        ));
    }
    if EventSourceMappings::uuid_of(&arn).is_some() {
        core.event_sources.untag(&arn, &keys).await?;
    } else {
        core.functions.untag(&arn, &keys).await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn list(
    State(core): State<Core>,
    Path(arn): Path<String>,
) -> Result<Response, LambdaError> {
    let tags = if EventSourceMappings::uuid_of(&arn).is_some() {
        core.event_sources.tags(&arn)?
    } else {
        core.functions.tags(&arn)?
    };
    Ok((
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        json!({ "Tags": tags }).to_string(),
    )
        .into_response())
}
