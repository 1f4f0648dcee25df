//! Event source mappings over REST-JSON: Create/Get/Update/Delete/ListEventSourceMappings under
//! `/2015-03-31/event-source-mappings/`. Members of AWS's model that Nimbus does not act on yet
//! (stream and Kafka settings, destinations, tags) are refused by name, never ignored.

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nimbus_core::Core;
use nimbus_core::error::CoreError;
use nimbus_core::event_sources::{Mapping, MappingInput};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::LambdaError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct FilterIn {
    pattern: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct FilterCriteriaIn {
    filters: Option<Vec<FilterIn>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct ScalingIn {
    maximum_concurrency: Option<i64>,
}

/// AWS's request members; the ones Nimbus acts on are typed, the others are named so that they
/// are refused clearly.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct MappingIn {
    function_name: Option<String>,
    event_source_arn: Option<String>,
    batch_size: Option<i64>,
    maximum_batching_window_in_seconds: Option<i64>,
    enabled: Option<bool>,
    function_response_types: Option<Vec<String>>,
    scaling_config: Option<ScalingIn>,
    filter_criteria: Option<FilterCriteriaIn>,
    starting_position: Option<Value>,
    starting_position_timestamp: Option<Value>,
    destination_config: Option<Value>,
    maximum_record_age_in_seconds: Option<Value>,
    bisect_batch_on_function_error: Option<Value>,
    maximum_retry_attempts: Option<Value>,
    parallelization_factor: Option<Value>,
    tumbling_window_in_seconds: Option<Value>,
    topics: Option<Value>,
    queues: Option<Value>,
    source_access_configurations: Option<Value>,
    self_managed_event_source: Option<Value>,
    amazon_managed_kafka_event_source_config: Option<Value>,
    self_managed_kafka_event_source_config: Option<Value>,
    document_d_b_event_source_config: Option<Value>,
    #[serde(rename = "KMSKeyArn")]
    kms_key_arn: Option<Value>,
    metrics_config: Option<Value>,
    provisioned_poller_config: Option<Value>,
    tags: Option<BTreeMap<String, String>>,
}

fn input(body: &[u8]) -> Result<MappingInput, LambdaError> {
    let m: MappingIn = super::wire::parse_body(body)?;
    let refused = [
        ("StartingPosition", m.starting_position.is_some()),
        (
            "StartingPositionTimestamp",
            m.starting_position_timestamp.is_some(),
        ),
        ("DestinationConfig", m.destination_config.is_some()),
        (
            "MaximumRecordAgeInSeconds",
            m.maximum_record_age_in_seconds.is_some(),
        ),
        (
            "BisectBatchOnFunctionError",
            m.bisect_batch_on_function_error.is_some(),
        ),
        ("MaximumRetryAttempts", m.maximum_retry_attempts.is_some()),
        ("ParallelizationFactor", m.parallelization_factor.is_some()),
        (
            "TumblingWindowInSeconds",
            m.tumbling_window_in_seconds.is_some(),
        ),
        ("Topics", m.topics.is_some()),
        ("Queues", m.queues.is_some()),
        (
            "SourceAccessConfigurations",
            m.source_access_configurations.is_some(),
        ),
        (
            "SelfManagedEventSource",
            m.self_managed_event_source.is_some(),
        ),
        (
            "AmazonManagedKafkaEventSourceConfig",
            m.amazon_managed_kafka_event_source_config.is_some(),
        ),
        (
            "SelfManagedKafkaEventSourceConfig",
            m.self_managed_kafka_event_source_config.is_some(),
        ),
        (
            "DocumentDBEventSourceConfig",
            m.document_d_b_event_source_config.is_some(),
        ),
        ("KMSKeyArn", m.kms_key_arn.is_some()),
        ("MetricsConfig", m.metrics_config.is_some()),
        (
            "ProvisionedPollerConfig",
            m.provisioned_poller_config.is_some(),
        ),
    ];
    if let Some((name, _)) = refused.iter().find(|(_, given)| *given) {
        return Err(CoreError::InvalidParameter(format!(
            "Nimbus does not support {name} on event source mappings yet; remove it (mappings read SQS queues with BatchSize, MaximumBatchingWindowInSeconds, Enabled, FunctionResponseTypes, ScalingConfig and FilterCriteria)"
        ))
        .into());
    }
    Ok(MappingInput {
        function_name: m.function_name,
        event_source_arn: m.event_source_arn,
        batch_size: m.batch_size,
        batching_window_secs: m.maximum_batching_window_in_seconds,
        enabled: m.enabled,
        function_response_types: m.function_response_types,
        maximum_concurrency: m.scaling_config.and_then(|s| s.maximum_concurrency),
        tags: m.tags,
        filters: match m.filter_criteria {
            None => None,
            Some(c) => Some(
                c.filters
                    .unwrap_or_default()
                    .into_iter()
                    .map(|f| {
                        f.pattern.ok_or_else(|| {
                            CoreError::InvalidParameter("Invalid filter pattern definition.".into())
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        },
    })
}

fn render(core: &Core, m: &Mapping) -> Value {
    let mut v = json!({
        "UUID": m.uuid,
        "BatchSize": m.batch_size,
        "MaximumBatchingWindowInSeconds": m.batching_window_secs,
        "EventSourceArn": m.source_arn,
        "FunctionArn": core.event_sources.function_arn(m),
        "LastModified": m.last_modified_ms as f64 / 1000.0,
        "State": m.state,
        "StateTransitionReason": m.state_reason,
        "FunctionResponseTypes": m.function_response_types,
        "EventSourceMappingArn": core.event_sources.arn(&m.uuid),
    });
    if let Some(c) = m.maximum_concurrency {
        v["ScalingConfig"] = json!({ "MaximumConcurrency": c });
    }
    if !m.filters.is_empty() {
        let filters: Vec<Value> = m.filters.iter().map(|p| json!({ "Pattern": p })).collect();
        v["FilterCriteria"] = json!({ "Filters": filters });
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

pub(crate) async fn create(State(core): State<Core>, body: Bytes) -> Result<Response, LambdaError> {
    let m = core.event_sources.create(input(&body)?).await?;
    Ok(reply(StatusCode::ACCEPTED, render(&core, &m)))
}

pub(crate) async fn get(
    State(core): State<Core>,
    Path(uuid): Path<String>,
) -> Result<Response, LambdaError> {
    let m = core.event_sources.get(&uuid)?;
    Ok(reply(StatusCode::OK, render(&core, &m)))
}

pub(crate) async fn update(
    State(core): State<Core>,
    Path(uuid): Path<String>,
    body: Bytes,
) -> Result<Response, LambdaError> {
    let i = input(&body)?;
    if i.event_source_arn.is_some() {
        return Err(CoreError::InvalidParameter(
            "EventSourceArn cannot be updated: create a new mapping".into(),
        )
        .into());
    }
    let m = core.event_sources.update(&uuid, i).await?;
    Ok(reply(StatusCode::ACCEPTED, render(&core, &m)))
}

pub(crate) async fn delete(
    State(core): State<Core>,
    Path(uuid): Path<String>,
) -> Result<Response, LambdaError> {
    let m = core.event_sources.delete(&uuid).await?;
    Ok(reply(StatusCode::ACCEPTED, render(&core, &m)))
}

pub(crate) async fn list(
    State(core): State<Core>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, LambdaError> {
    let max = q
        .get("MaxItems")
        .map(|v| {
            v.parse::<i64>().map_err(|_| {
                CoreError::Validation(format!(
                    "1 validation error detected: Value '{v}' at 'maxItems' failed to satisfy constraint: Member must be a number"
                ))
            })
        })
        .transpose()?;
    let (page, next) = core.event_sources.list(
        q.get("FunctionName").map(String::as_str),
        q.get("EventSourceArn").map(String::as_str),
        q.get("Marker").map(String::as_str),
        max,
    )?;
    let mut v = json!({
        "EventSourceMappings": page.iter().map(|m| render(&core, m)).collect::<Vec<_>>(),
    });
    if let Some(n) = next {
        v["NextMarker"] = json!(n);
    }
    Ok(reply(StatusCode::OK, v))
}
