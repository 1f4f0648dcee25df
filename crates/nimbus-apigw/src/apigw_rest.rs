//! API Gateway REST APIs (`apigateway`, REST-JSON under `/restapis`): the control plane, and
//! serving a stage's deployed resources through `AWS_PROXY`, `AWS` (with Velocity request and
//! response templates, `selectionPattern` and static `responseParameters`) and `MOCK`
//! integrations.

use std::collections::{BTreeMap, HashMap};

use crate::Gateway;
use crate::http_apis::ApiError;
use crate::members::{input, rest};
use crate::rest_apis::{
    Deployment, Integration, IntegrationResponse, Method, MethodResponse, MethodSetting, PatchOp,
    Resource, RestApi, Stage, match_resource,
};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use nimbus_core::CoreError;
use nimbus_core::invoke::{Caller, InvokeInput};
use serde_json::{Map, Value, json};

use crate::apigwv2::{GwError, R, event_v1, function_of, parse, reply, response_v1, s, strings};
use crate::http_events::RequestInfo;

fn bools(v: &Value, k: &str) -> BTreeMap<String, bool> {
    v.get(k)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_bool().unwrap_or(false)))
                .collect()
        })
        .unwrap_or_default()
}

fn render_api(a: &RestApi) -> Value {
    let mut v = json!({
        "id": a.id,
        "name": a.name,
        "createdDate": a.created,
        "rootResourceId": a.root_id,
        "apiKeySource": "HEADER",
        "endpointConfiguration": {"types": ["EDGE"]},
        "disableExecuteApiEndpoint": false,
        "tags": a.tags,
    });
    if let Some(d) = &a.description {
        v["description"] = json!(d);
    }
    if !a.binary_media_types.is_empty() {
        v["binaryMediaTypes"] = json!(a.binary_media_types);
    }
    v
}

/// Whether an integration response's `selectionPattern` matches the whole error message. Each
/// pattern is compiled once (a bounded cache), not per request.
fn selection_matches(pattern: &str, message: &str) -> bool {
    use std::sync::{Arc, Mutex, OnceLock};
    type Cache = Mutex<HashMap<String, Option<Arc<regex_lite::Regex>>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let cached = cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(pattern)
        .cloned();
    let re = match cached {
        Some(re) => re,
        None => {
            let re = regex_lite::Regex::new(&format!("^(?s:{pattern})$"))
                .ok()
                .map(Arc::new);
            let mut c = cache.lock().unwrap_or_else(|p| p.into_inner());
            if c.len() >= 512 {
                c.clear();
            }
            c.insert(pattern.to_string(), re.clone());
            re
        }
    };
    re.is_some_and(|re| re.is_match(message))
}

fn render_integration_response(r: &IntegrationResponse) -> Value {
    let mut v = json!({
        "statusCode": r.status_code,
        "responseParameters": r.response_parameters,
        "responseTemplates": r.response_templates,
    });
    if let Some(p) = &r.selection_pattern {
        v["selectionPattern"] = json!(p);
    }
    v
}

fn render_integration(i: &Integration) -> Value {
    let mut v = json!({
        "type": i.integration_type,
        "requestTemplates": i.request_templates,
        "requestParameters": i.request_parameters,
        "passthroughBehavior": i.passthrough_behavior,
        "timeoutInMillis": i.timeout_ms,
        "cacheNamespace": "",
        "cacheKeyParameters": [],
        "integrationResponses": i.responses.iter().map(|(k, r)| (k.clone(), render_integration_response(r))).collect::<Map<_, _>>(),
    });
    if let Some(m) = &i.http_method {
        v["httpMethod"] = json!(m);
    }
    if let Some(u) = &i.uri {
        v["uri"] = json!(u);
    }
    v
}

fn render_method_response(r: &MethodResponse) -> Value {
    json!({
        "statusCode": r.status_code,
        "responseParameters": r.response_parameters,
        "responseModels": r.response_models,
    })
}

fn render_method(m: &Method) -> Value {
    let mut v = json!({
        "httpMethod": m.http_method,
        "authorizationType": m.authorization_type,
        "authorizerId": m.authorizer_id,
        "requestValidatorId": m.request_validator_id,
        "requestModels": m.request_models,
        "apiKeyRequired": m.api_key_required,
        "requestParameters": m.request_parameters,
        "methodResponses": m.responses.iter().map(|(k, r)| (k.clone(), render_method_response(r))).collect::<Map<_, _>>(),
    });
    if let Some(i) = &m.integration {
        v["methodIntegration"] = render_integration(i);
    }
    v
}

fn render_resource(r: &Resource) -> Value {
    let mut v = json!({ "id": r.id, "path": r.path });
    if let Some(p) = &r.parent_id {
        v["parentId"] = json!(p);
        v["pathPart"] = json!(r.path_part);
    }
    if !r.methods.is_empty() {
        v["resourceMethods"] = Value::Object(
            r.methods
                .iter()
                .map(|(k, m)| (k.clone(), render_method(m)))
                .collect(),
        );
    }
    v
}

fn render_method_setting(m: &MethodSetting) -> Value {
    let mut v = json!({
        "metricsEnabled": m.metrics_enabled,
        "loggingLevel": m.logging_level.as_deref().unwrap_or("OFF"),
        "dataTraceEnabled": m.data_trace,
        "cachingEnabled": m.caching_enabled,
        "cacheTtlInSeconds": m.cache_ttl_seconds.unwrap_or(300),
        "cacheDataEncrypted": m.cache_data_encrypted,
        "requireAuthorizationForCacheControl": m.require_authorization_for_cache_control.unwrap_or(true),
        "unauthorizedCacheControlHeaderStrategy": m.unauthorized_cache_control_header_strategy.as_deref().unwrap_or("SUCCEED_WITH_RESPONSE_HEADER"),
    });
    if let Some(r) = m.throttling_rate {
        v["throttlingRateLimit"] = json!(r);
    }
    if let Some(b) = m.throttling_burst {
        v["throttlingBurstLimit"] = json!(b);
    }
    v
}

fn render_deployment(d: &Deployment) -> Value {
    let mut v = json!({ "id": d.id, "createdDate": d.created });
    if let Some(desc) = &d.description {
        v["description"] = json!(desc);
    }
    v
}

/// The `patchOperations` of an Update* request body.
fn patch_ops(body: &Bytes) -> Result<Vec<PatchOp>, GwError> {
    let v = parse(body)?;
    let ops = v.get("patchOperations").cloned().unwrap_or(json!([]));
    serde_json::from_value(ops).map_err(|e| {
        GwError(ApiError::BadRequest(format!(
            "Invalid patchOperations: {e}; each needs an op, a path and (for add and replace) a string value"
        )))
    })
}

fn render_stage(s: &Stage) -> Value {
    let mut v = json!({
        "stageName": s.name,
        "deploymentId": s.deployment_id,
        "variables": s.variables,
        "createdDate": s.created,
        "lastUpdatedDate": s.updated,
        "methodSettings": s.method_settings.iter().map(|(k, m)| (k.clone(), render_method_setting(m))).collect::<Map<_, _>>(),
        "cacheClusterEnabled": s.options.cache_cluster_enabled,
        "cacheClusterStatus": if s.options.cache_cluster_enabled { "AVAILABLE" } else { "NOT_AVAILABLE" },
        "tracingEnabled": s.tracing_enabled,
    });
    if let Some(size) = &s.options.cache_cluster_size {
        v["cacheClusterSize"] = json!(size);
    }
    if let Some(c) = &s.options.client_certificate_id {
        v["clientCertificateId"] = json!(c);
    }
    if let Some(d) = &s.options.documentation_version {
        v["documentationVersion"] = json!(d);
    }
    if s.options.access_log_destination_arn.is_some() || s.options.access_log_format.is_some() {
        v["accessLogSettings"] = json!({
            "destinationArn": s.options.access_log_destination_arn,
            "format": s.options.access_log_format,
        });
    }
    if let Some(d) = &s.description {
        v["description"] = json!(d);
    }
    v
}

/// ImportRestApi (`POST /restapis?mode=import`) and PutRestApi (`PUT /restapis/{id}?mode=`):
/// an OpenAPI or Swagger definition in JSON or YAML.
async fn import_api(gw: &Gateway, existing: Option<&str>, mode: &str, body: &Bytes) -> R {
    let overwrite = match mode {
        "overwrite" | "import" => true,
        "merge" => false,
        other => {
            return Err(GwError(ApiError::BadRequest(format!(
                "Invalid mode '{other}': PutRestApi takes merge or overwrite"
            ))));
        }
    };
    let doc = crate::openapi::parse_document(body)?;
    let def = crate::openapi::read(&doc)?;
    let a = gw.rest_apis.import(existing, overwrite, def).await?;
    let status = if existing.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(reply(status, render_api(&a)))
}

async fn put_api(
    State(gw): State<Gateway>,
    Path(id): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
    body: Bytes,
) -> R {
    let mode = q.get("mode").map(String::as_str).unwrap_or("merge");
    import_api(&gw, Some(&id), mode, &body).await
}

async fn create_api(
    State(gw): State<Gateway>,
    Query(q): Query<BTreeMap<String, String>>,
    body: Bytes,
) -> R {
    if q.get("mode").map(String::as_str) == Some("import") {
        return import_api(&gw, None, "import", &body).await;
    }
    let v = input(&body, rest::CREATE_REST_API)?;
    let types = v
        .get("binaryMediaTypes")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let a = gw
        .rest_apis
        .create(
            s(&v, "name"),
            s(&v, "description"),
            types,
            strings(&v, "tags"),
        )
        .await?;
    Ok(reply(StatusCode::CREATED, render_api(&a)))
}

async fn get_api(State(gw): State<Gateway>, Path(id): Path<String>) -> R {
    Ok(reply(StatusCode::OK, render_api(&gw.rest_apis.get(&id)?)))
}

async fn get_apis(State(gw): State<Gateway>) -> R {
    let items: Vec<Value> = gw.rest_apis.list().iter().map(render_api).collect();
    Ok(reply(StatusCode::OK, json!({ "item": items })))
}

async fn delete_api(State(gw): State<Gateway>, Path(id): Path<String>) -> R {
    gw.rest_apis.delete(&id).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn get_resources(State(gw): State<Gateway>, Path(id): Path<String>) -> R {
    let a = gw.rest_apis.get(&id)?;
    let mut items: Vec<&Resource> = a.resources.values().collect();
    items.sort_by(|x, y| x.path.cmp(&y.path));
    Ok(reply(
        StatusCode::OK,
        json!({ "item": items.iter().map(|r| render_resource(r)).collect::<Vec<_>>() }),
    ))
}

async fn create_resource(
    State(gw): State<Gateway>,
    Path((id, parent)): Path<(String, String)>,
    body: Bytes,
) -> R {
    let v = input(&body, rest::CREATE_RESOURCE)?;
    let r = gw
        .rest_apis
        .create_resource(&id, &parent, s(&v, "pathPart"))
        .await?;
    Ok(reply(StatusCode::CREATED, render_resource(&r)))
}

async fn get_resource(State(gw): State<Gateway>, Path((id, rid)): Path<(String, String)>) -> R {
    let a = gw.rest_apis.get(&id)?;
    let r = a.resources.get(&rid).ok_or_else(|| {
        GwError(ApiError::NotFound(
            "Invalid Resource identifier specified".into(),
        ))
    })?;
    Ok(reply(StatusCode::OK, render_resource(r)))
}

async fn delete_resource(State(gw): State<Gateway>, Path((id, rid)): Path<(String, String)>) -> R {
    gw.rest_apis.delete_resource(&id, &rid).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn put_method(
    State(gw): State<Gateway>,
    Path((id, rid, m)): Path<(String, String, String)>,
    body: Bytes,
) -> R {
    let v = input(&body, rest::PUT_METHOD)?;
    let method = gw
        .rest_apis
        .put_method(
            &id,
            &rid,
            &m,
            crate::rest_apis::MethodInput {
                authorization_type: s(&v, "authorizationType"),
                authorizer_id: s(&v, "authorizerId"),
                request_validator_id: s(&v, "requestValidatorId"),
                request_models: strings(&v, "requestModels"),
                api_key_required: v
                    .get("apiKeyRequired")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                request_parameters: bools(&v, "requestParameters"),
            },
        )
        .await?;
    Ok(reply(StatusCode::CREATED, render_method(&method)))
}

async fn get_method(
    State(gw): State<Gateway>,
    Path((id, rid, m)): Path<(String, String, String)>,
) -> R {
    Ok(reply(
        StatusCode::OK,
        render_method(&gw.rest_apis.method(&id, &rid, &m)?),
    ))
}

async fn put_integration(
    State(gw): State<Gateway>,
    Path((id, rid, m)): Path<(String, String, String)>,
    body: Bytes,
) -> R {
    let v = input(&body, rest::PUT_INTEGRATION)?;
    let i = Integration {
        integration_type: s(&v, "type").unwrap_or_default(),
        http_method: s(&v, "httpMethod"),
        uri: s(&v, "uri"),
        request_templates: strings(&v, "requestTemplates"),
        request_parameters: strings(&v, "requestParameters"),
        passthrough_behavior: s(&v, "passthroughBehavior").unwrap_or_default(),
        timeout_ms: v
            .get("timeoutInMillis")
            .and_then(Value::as_u64)
            .map_or(0, |t| u32::try_from(t).unwrap_or(u32::MAX)),
        responses: BTreeMap::new(),
    };
    let i = gw.rest_apis.put_integration(&id, &rid, &m, i).await?;
    Ok(reply(StatusCode::CREATED, render_integration(&i)))
}

async fn get_integration(
    State(gw): State<Gateway>,
    Path((id, rid, m)): Path<(String, String, String)>,
) -> R {
    let method = gw.rest_apis.method(&id, &rid, &m)?;
    let i = method.integration.ok_or_else(|| {
        GwError(ApiError::NotFound(
            "Invalid Integration identifier specified".into(),
        ))
    })?;
    Ok(reply(StatusCode::OK, render_integration(&i)))
}

async fn put_method_response(
    State(gw): State<Gateway>,
    Path((id, rid, m, code)): Path<(String, String, String, String)>,
    body: Bytes,
) -> R {
    let v = input(&body, rest::PUT_METHOD_RESPONSE)?;
    let r = gw
        .rest_apis
        .put_method_response(
            &id,
            &rid,
            &m,
            MethodResponse {
                status_code: code,
                response_parameters: bools(&v, "responseParameters"),
                response_models: strings(&v, "responseModels"),
            },
        )
        .await?;
    Ok(reply(StatusCode::CREATED, render_method_response(&r)))
}

async fn put_integration_response(
    State(gw): State<Gateway>,
    Path((id, rid, m, code)): Path<(String, String, String, String)>,
    body: Bytes,
) -> R {
    let v = input(&body, rest::PUT_INTEGRATION_RESPONSE)?;
    let r = gw
        .rest_apis
        .put_integration_response(
            &id,
            &rid,
            &m,
            IntegrationResponse {
                status_code: code,
                selection_pattern: s(&v, "selectionPattern"),
                response_parameters: strings(&v, "responseParameters"),
                response_templates: strings(&v, "responseTemplates"),
            },
        )
        .await?;
    Ok(reply(StatusCode::CREATED, render_integration_response(&r)))
}

async fn create_deployment(State(gw): State<Gateway>, Path(id): Path<String>, body: Bytes) -> R {
    let v = input(&body, rest::CREATE_DEPLOYMENT)?;
    let d = gw
        .rest_apis
        .create_deployment(
            &id,
            s(&v, "stageName"),
            s(&v, "description"),
            strings(&v, "variables"),
        )
        .await?;
    Ok(reply(StatusCode::CREATED, render_deployment(&d)))
}

async fn create_stage(State(gw): State<Gateway>, Path(id): Path<String>, body: Bytes) -> R {
    let v = input(&body, rest::CREATE_STAGE)?;
    let st = gw
        .rest_apis
        .create_stage(
            &id,
            s(&v, "stageName"),
            s(&v, "deploymentId"),
            s(&v, "description"),
            strings(&v, "variables"),
        )
        .await?;
    Ok(reply(StatusCode::CREATED, render_stage(&st)))
}

async fn get_stages(State(gw): State<Gateway>, Path(id): Path<String>) -> R {
    let a = gw.rest_apis.get(&id)?;
    Ok(reply(
        StatusCode::OK,
        json!({ "item": a.stages.values().map(render_stage).collect::<Vec<_>>() }),
    ))
}

async fn get_stage(State(gw): State<Gateway>, Path((id, name)): Path<(String, String)>) -> R {
    let a = gw.rest_apis.get(&id)?;
    let st = a.stages.get(&name).ok_or_else(|| {
        GwError(ApiError::NotFound(
            "Invalid Stage identifier specified".into(),
        ))
    })?;
    Ok(reply(StatusCode::OK, render_stage(st)))
}

async fn update_api(State(gw): State<Gateway>, Path(id): Path<String>, body: Bytes) -> R {
    let ops = patch_ops(&body)?;
    Ok(reply(
        StatusCode::OK,
        render_api(&gw.rest_apis.update(&id, &ops).await?),
    ))
}

async fn update_stage(
    State(gw): State<Gateway>,
    Path((id, name)): Path<(String, String)>,
    body: Bytes,
) -> R {
    let ops = patch_ops(&body)?;
    let st = gw.rest_apis.update_stage(&id, &name, &ops).await?;
    Ok(reply(StatusCode::OK, render_stage(&st)))
}

async fn delete_stage(State(gw): State<Gateway>, Path((id, name)): Path<(String, String)>) -> R {
    gw.rest_apis.delete_stage(&id, &name).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn get_deployments(State(gw): State<Gateway>, Path(id): Path<String>) -> R {
    let a = gw.rest_apis.get(&id)?;
    let mut items: Vec<&Deployment> = a.deployments.values().collect();
    items.sort_by_key(|d| d.created);
    Ok(reply(
        StatusCode::OK,
        json!({ "item": items.iter().map(|d| render_deployment(d)).collect::<Vec<_>>() }),
    ))
}

async fn get_deployment(State(gw): State<Gateway>, Path((id, did)): Path<(String, String)>) -> R {
    Ok(reply(
        StatusCode::OK,
        render_deployment(&gw.rest_apis.deployment(&id, &did)?),
    ))
}

async fn delete_deployment(
    State(gw): State<Gateway>,
    Path((id, did)): Path<(String, String)>,
) -> R {
    gw.rest_apis.delete_deployment(&id, &did).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn delete_method(
    State(gw): State<Gateway>,
    Path((id, rid, m)): Path<(String, String, String)>,
) -> R {
    gw.rest_apis.delete_method(&id, &rid, &m).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn delete_integration(
    State(gw): State<Gateway>,
    Path((id, rid, m)): Path<(String, String, String)>,
) -> R {
    gw.rest_apis.delete_integration(&id, &rid, &m).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_method_response(
    State(gw): State<Gateway>,
    Path((id, rid, m, code)): Path<(String, String, String, String)>,
) -> R {
    let method = gw.rest_apis.method(&id, &rid, &m)?;
    let r = method.responses.get(&code).ok_or_else(|| {
        GwError(ApiError::NotFound(
            "Invalid Response status code specified".into(),
        ))
    })?;
    Ok(reply(StatusCode::OK, render_method_response(r)))
}

async fn delete_method_response(
    State(gw): State<Gateway>,
    Path((id, rid, m, code)): Path<(String, String, String, String)>,
) -> R {
    gw.rest_apis
        .delete_method_response(&id, &rid, &m, &code)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_integration_response(
    State(gw): State<Gateway>,
    Path((id, rid, m, code)): Path<(String, String, String, String)>,
) -> R {
    let method = gw.rest_apis.method(&id, &rid, &m)?;
    let r = method
        .integration
        .as_ref()
        .and_then(|i| i.responses.get(&code))
        .ok_or_else(|| {
            GwError(ApiError::NotFound(
                "Invalid Response status code specified".into(),
            ))
        })?;
    Ok(reply(StatusCode::OK, render_integration_response(r)))
}

async fn delete_integration_response(
    State(gw): State<Gateway>,
    Path((id, rid, m, code)): Path<(String, String, String, String)>,
) -> R {
    gw.rest_apis
        .delete_integration_response(&id, &rid, &m, &code)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn update_method(
    State(gw): State<Gateway>,
    Path((id, rid, m)): Path<(String, String, String)>,
    body: Bytes,
) -> R {
    let ops = patch_ops(&body)?;
    let method = gw.rest_apis.update_method(&id, &rid, &m, &ops).await?;
    Ok(reply(StatusCode::OK, render_method(&method)))
}

async fn update_integration(
    State(gw): State<Gateway>,
    Path((id, rid, m)): Path<(String, String, String)>,
    body: Bytes,
) -> R {
    let ops = patch_ops(&body)?;
    let i = gw.rest_apis.update_integration(&id, &rid, &m, &ops).await?;
    Ok(reply(StatusCode::OK, render_integration(&i)))
}

async fn update_integration_response(
    State(gw): State<Gateway>,
    Path((id, rid, m, code)): Path<(String, String, String, String)>,
    body: Bytes,
) -> R {
    let ops = patch_ops(&body)?;
    let r = gw
        .rest_apis
        .update_integration_response(&id, &rid, &m, &code, &ops)
        .await?;
    Ok(reply(StatusCode::OK, render_integration_response(&r)))
}

fn render_authorizer(a: &crate::rest_apis::Authorizer) -> Value {
    let mut v = json!({
        "id": a.id,
        "name": a.name,
        "type": a.authorizer_type,
        "authType": "custom",
        "authorizerResultTtlInSeconds": a.ttl_seconds,
    });
    if let Some(u) = &a.authorizer_uri {
        v["authorizerUri"] = json!(u);
    }
    if let Some(i) = &a.identity_source {
        v["identitySource"] = json!(i);
    }
    if let Some(e) = &a.identity_validation_expression {
        v["identityValidationExpression"] = json!(e);
    }
    v
}

async fn create_authorizer(State(gw): State<Gateway>, Path(id): Path<String>, body: Bytes) -> R {
    let v = input(&body, rest::CREATE_AUTHORIZER)?;
    let a = gw
        .rest_apis
        .create_authorizer(
            &id,
            crate::rest_apis::AuthorizerInput {
                name: s(&v, "name"),
                authorizer_type: s(&v, "type"),
                authorizer_uri: s(&v, "authorizerUri"),
                identity_source: s(&v, "identitySource"),
                identity_validation_expression: s(&v, "identityValidationExpression"),
                ttl_seconds: v
                    .get("authorizerResultTtlInSeconds")
                    .and_then(Value::as_i64),
            },
        )
        .await?;
    Ok(reply(StatusCode::CREATED, render_authorizer(&a)))
}

async fn get_authorizers(State(gw): State<Gateway>, Path(id): Path<String>) -> R {
    let a = gw.rest_apis.get(&id)?;
    Ok(reply(
        StatusCode::OK,
        json!({ "item": a.authorizers.values().map(render_authorizer).collect::<Vec<_>>() }),
    ))
}

async fn get_authorizer(State(gw): State<Gateway>, Path((id, aid)): Path<(String, String)>) -> R {
    Ok(reply(
        StatusCode::OK,
        render_authorizer(&gw.rest_apis.authorizer(&id, &aid)?),
    ))
}

async fn update_authorizer(
    State(gw): State<Gateway>,
    Path((id, aid)): Path<(String, String)>,
    body: Bytes,
) -> R {
    let ops = patch_ops(&body)?;
    let a = gw.rest_apis.update_authorizer(&id, &aid, &ops).await?;
    Ok(reply(StatusCode::OK, render_authorizer(&a)))
}

async fn delete_authorizer(
    State(gw): State<Gateway>,
    Path((id, aid)): Path<(String, String)>,
) -> R {
    gw.rest_apis.delete_authorizer(&id, &aid).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

fn render_gateway_response(g: &crate::rest_apis::GatewayResponse) -> Value {
    let mut v = json!({
        "responseType": g.response_type,
        "responseParameters": g.response_parameters,
        "responseTemplates": g.response_templates,
        "defaultResponse": false,
    });
    if let Some(c) = &g.status_code {
        v["statusCode"] = json!(c);
    }
    v
}

async fn put_gateway_response(
    State(gw): State<Gateway>,
    Path((id, kind)): Path<(String, String)>,
    body: Bytes,
) -> R {
    let v = input(&body, rest::PUT_GATEWAY_RESPONSE)?;
    let g = gw
        .rest_apis
        .put_gateway_response(
            &id,
            crate::rest_apis::GatewayResponse {
                response_type: kind,
                status_code: s(&v, "statusCode"),
                response_parameters: strings(&v, "responseParameters"),
                response_templates: strings(&v, "responseTemplates"),
            },
        )
        .await?;
    Ok(reply(StatusCode::CREATED, render_gateway_response(&g)))
}

async fn get_gateway_response(
    State(gw): State<Gateway>,
    Path((id, kind)): Path<(String, String)>,
) -> R {
    let a = gw.rest_apis.get(&id)?;
    let g = a.gateway_responses.get(&kind).ok_or_else(|| {
        GwError(ApiError::NotFound(
            "Invalid Gateway Response Type specified".into(),
        ))
    })?;
    Ok(reply(StatusCode::OK, render_gateway_response(g)))
}

async fn get_gateway_responses(State(gw): State<Gateway>, Path(id): Path<String>) -> R {
    let a = gw.rest_apis.get(&id)?;
    Ok(reply(
        StatusCode::OK,
        json!({ "item": a.gateway_responses.values().map(render_gateway_response).collect::<Vec<_>>() }),
    ))
}

async fn delete_gateway_response(
    State(gw): State<Gateway>,
    Path((id, kind)): Path<(String, String)>,
) -> R {
    gw.rest_apis.delete_gateway_response(&id, &kind).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

fn render_model(m: &crate::rest_apis::Model) -> Value {
    let mut v =
        json!({"id": m.id, "name": m.name, "contentType": m.content_type, "schema": m.schema});
    if let Some(d) = &m.description {
        v["description"] = json!(d);
    }
    v
}

fn render_validator(v: &crate::rest_apis::RequestValidator) -> Value {
    json!({
        "id": v.id,
        "name": v.name,
        "validateRequestBody": v.validate_body,
        "validateRequestParameters": v.validate_parameters,
    })
}

async fn create_model(State(gw): State<Gateway>, Path(id): Path<String>, body: Bytes) -> R {
    let v = input(&body, rest::CREATE_MODEL)?;
    let m = gw
        .rest_apis
        .create_model(
            &id,
            s(&v, "name"),
            s(&v, "contentType"),
            s(&v, "schema"),
            s(&v, "description"),
        )
        .await?;
    Ok(reply(StatusCode::CREATED, render_model(&m)))
}

async fn get_models(State(gw): State<Gateway>, Path(id): Path<String>) -> R {
    let a = gw.rest_apis.get(&id)?;
    Ok(reply(
        StatusCode::OK,
        json!({ "item": a.models.values().map(render_model).collect::<Vec<_>>() }),
    ))
}

async fn get_model(State(gw): State<Gateway>, Path((id, name)): Path<(String, String)>) -> R {
    let a = gw.rest_apis.get(&id)?;
    let m = a
        .models
        .get(&name)
        .ok_or_else(|| GwError(ApiError::NotFound("Invalid model name specified".into())))?;
    Ok(reply(StatusCode::OK, render_model(m)))
}

async fn delete_model(State(gw): State<Gateway>, Path((id, name)): Path<(String, String)>) -> R {
    gw.rest_apis.delete_model(&id, &name).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn create_validator(State(gw): State<Gateway>, Path(id): Path<String>, body: Bytes) -> R {
    let v = input(&body, rest::CREATE_REQUEST_VALIDATOR)?;
    let flag = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
    let r = gw
        .rest_apis
        .create_validator(
            &id,
            s(&v, "name"),
            flag("validateRequestBody"),
            flag("validateRequestParameters"),
        )
        .await?;
    Ok(reply(StatusCode::CREATED, render_validator(&r)))
}

async fn get_validators(State(gw): State<Gateway>, Path(id): Path<String>) -> R {
    let a = gw.rest_apis.get(&id)?;
    Ok(reply(
        StatusCode::OK,
        json!({ "item": a.validators.values().map(render_validator).collect::<Vec<_>>() }),
    ))
}

async fn get_validator(State(gw): State<Gateway>, Path((id, vid)): Path<(String, String)>) -> R {
    let a = gw.rest_apis.get(&id)?;
    let v = a.validators.get(&vid).ok_or_else(|| {
        GwError(ApiError::NotFound(
            "Invalid Request Validator identifier specified".into(),
        ))
    })?;
    Ok(reply(StatusCode::OK, render_validator(v)))
}

async fn update_validator(
    State(gw): State<Gateway>,
    Path((id, vid)): Path<(String, String)>,
    body: Bytes,
) -> R {
    let ops = patch_ops(&body)?;
    let v = gw.rest_apis.update_validator(&id, &vid, &ops).await?;
    Ok(reply(StatusCode::OK, render_validator(&v)))
}

async fn delete_validator(State(gw): State<Gateway>, Path((id, vid)): Path<(String, String)>) -> R {
    gw.rest_apis.delete_validator(&id, &vid).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn update_resource(
    State(gw): State<Gateway>,
    Path((id, rid)): Path<(String, String)>,
    body: Bytes,
) -> R {
    let ops = patch_ops(&body)?;
    let r = gw.rest_apis.update_resource(&id, &rid, &ops).await?;
    Ok(reply(StatusCode::OK, render_resource(&r)))
}

async fn update_method_response(
    State(gw): State<Gateway>,
    Path((id, rid, m, code)): Path<(String, String, String, String)>,
    body: Bytes,
) -> R {
    let ops = patch_ops(&body)?;
    let r = gw
        .rest_apis
        .update_method_response(&id, &rid, &m, &code, &ops)
        .await?;
    Ok(reply(StatusCode::OK, render_method_response(&r)))
}

async fn update_deployment(
    State(gw): State<Gateway>,
    Path((id, did)): Path<(String, String)>,
    body: Bytes,
) -> R {
    let ops = patch_ops(&body)?;
    let d = gw.rest_apis.update_deployment(&id, &did, &ops).await?;
    Ok(reply(StatusCode::OK, render_deployment(&d)))
}

/// The control-plane routes of `apigateway` under `/restapis`: APIs (create, import, put),
/// resources, methods, integrations and their responses, deployments, authorizers, gateway
/// responses, models, request validators and stages.
pub fn routes() -> Router<Gateway> {
    Router::new()
        .route("/restapis", post(create_api).get(get_apis))
        .route(
            "/restapis/{id}",
            get(get_api)
                .delete(delete_api)
                .patch(update_api)
                .put(put_api),
        )
        .route("/restapis/{id}/resources", get(get_resources))
        .route(
            "/restapis/{id}/resources/{rid}",
            post(create_resource)
                .get(get_resource)
                .delete(delete_resource)
                .patch(update_resource),
        )
        .route(
            "/restapis/{id}/resources/{rid}/methods/{m}",
            put(put_method)
                .get(get_method)
                .delete(delete_method)
                .patch(update_method),
        )
        .route(
            "/restapis/{id}/resources/{rid}/methods/{m}/integration",
            put(put_integration)
                .get(get_integration)
                .delete(delete_integration)
                .patch(update_integration),
        )
        .route(
            "/restapis/{id}/resources/{rid}/methods/{m}/responses/{code}",
            put(put_method_response)
                .get(get_method_response)
                .delete(delete_method_response)
                .patch(update_method_response),
        )
        .route(
            "/restapis/{id}/resources/{rid}/methods/{m}/integration/responses/{code}",
            put(put_integration_response)
                .get(get_integration_response)
                .delete(delete_integration_response)
                .patch(update_integration_response),
        )
        .route(
            "/restapis/{id}/deployments",
            post(create_deployment).get(get_deployments),
        )
        .route(
            "/restapis/{id}/deployments/{did}",
            get(get_deployment)
                .delete(delete_deployment)
                .patch(update_deployment),
        )
        .route(
            "/restapis/{id}/authorizers",
            post(create_authorizer).get(get_authorizers),
        )
        .route(
            "/restapis/{id}/authorizers/{aid}",
            get(get_authorizer)
                .patch(update_authorizer)
                .delete(delete_authorizer),
        )
        .route(
            "/restapis/{id}/gatewayresponses",
            get(get_gateway_responses),
        )
        .route(
            "/restapis/{id}/gatewayresponses/{kind}",
            put(put_gateway_response)
                .get(get_gateway_response)
                .delete(delete_gateway_response),
        )
        .route("/restapis/{id}/models", post(create_model).get(get_models))
        .route(
            "/restapis/{id}/models/{name}",
            get(get_model).delete(delete_model),
        )
        .route(
            "/restapis/{id}/requestvalidators",
            post(create_validator).get(get_validators),
        )
        .route(
            "/restapis/{id}/requestvalidators/{vid}",
            get(get_validator)
                .patch(update_validator)
                .delete(delete_validator),
        )
        .route("/restapis/{id}/stages", post(create_stage).get(get_stages))
        .route(
            "/restapis/{id}/stages/{name}",
            get(get_stage)
                .delete(delete_stage)
                .merge(patch(update_stage)),
        )
}

/// A static `responseParameters` value (`'text'`) for a method response header.
fn apply_response_parameters(resp: &mut Response, params: &BTreeMap<String, String>) {
    for (k, v) in params {
        let Some(name) = k.strip_prefix("method.response.header.") else {
            continue;
        };
        let Some(value) = v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')) else {
            continue;
        };
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::from_str(value)) {
            resp.headers_mut().insert(n, v);
        }
    }
}

/// An integration's request parameters, mapped from the method request.
#[derive(Debug, Default, PartialEq)]
struct Mapped {
    path: BTreeMap<String, String>,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
}

/// Evaluates `requestParameters` (`integration.request.{path|querystring|header}.X` ←
/// `method.request.{path|querystring|multivaluequerystring|header|multivalueheader}.Y`,
/// `stageVariables.Z`, `context.V` or a static `'value'`); absent sources map nothing.
fn map_request_parameters(
    mapping: &BTreeMap<String, String>,
    path: &BTreeMap<String, String>,
    query: &BTreeMap<String, Vec<String>>,
    headers: &HeaderMap,
    stage_variables: &BTreeMap<String, String>,
    context: &Value,
) -> Mapped {
    let mut out = Mapped::default();
    for (target, source) in mapping {
        let value = if let Some(lit) = source.strip_prefix('\'').and_then(|x| x.strip_suffix('\''))
        {
            Some(lit.to_string())
        } else if let Some(n) = source.strip_prefix("method.request.path.") {
            path.get(n).cloned()
        } else if let Some(n) = source.strip_prefix("method.request.querystring.") {
            query.get(n).and_then(|v| v.last()).cloned()
        } else if let Some(n) = source.strip_prefix("method.request.multivaluequerystring.") {
            query.get(n).map(|v| v.join(","))
        } else if let Some(n) = source.strip_prefix("method.request.header.") {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        } else if let Some(n) = source.strip_prefix("method.request.multivalueheader.") {
            let all: Vec<&str> = headers
                .get_all(n)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            (!all.is_empty()).then(|| all.join(","))
        } else if let Some(n) = source.strip_prefix("stageVariables.") {
            stage_variables.get(n).cloned()
        } else if let Some(n) = source.strip_prefix("context.") {
            crate::authorizer::context_value(context, n)
        } else {
            None
        };
        let Some(value) = value else {
            continue;
        };
        if let Some(n) = target.strip_prefix("integration.request.path.") {
            out.path.insert(n.to_string(), value);
        } else if let Some(n) = target.strip_prefix("integration.request.querystring.") {
            out.query.push((n.to_string(), value));
        } else if let Some(n) = target.strip_prefix("integration.request.header.") {
            out.headers.push((n.to_string(), value));
        }
    }
    out
}

/// A query string's parameters, decoded, each with all of its values.
pub(crate) fn query_multi(query: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let d = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    for kv in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        out.entry(d(k)).or_default().push(d(v));
    }
    out
}

/// Whether a media type (a `Content-Type` or one entry of `Accept`) is one of the API's
/// `binaryMediaTypes` (which may be `type/*` or `*/*`).
fn is_binary(types: &[String], media: &str) -> bool {
    let m = media
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if m.is_empty() {
        return false;
    }
    types.iter().any(|t| {
        let t = t.to_ascii_lowercase();
        t == m
            || t == "*/*"
            || t.strip_suffix("/*")
                .is_some_and(|major| m.split('/').next() == Some(major))
    })
}

fn vtl_request(
    body: &str,
    params: &BTreeMap<String, String>,
    query: &str,
    headers: &HeaderMap,
    context: Value,
    stage: &Stage,
) -> nimbus_vtl::Request {
    let q = query
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let d = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (d(k), d(v))
        })
        .collect();
    nimbus_vtl::Request {
        body: body.to_string(),
        path_params: params.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        query_params: q,
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        context,
        stage_variables: stage
            .variables
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// What the gateway itself answers instead of the integration, typed by API Gateway's gateway
/// response types, so that an API's customised gateway responses can replace it.
#[derive(Debug, Clone, PartialEq)]
pub enum GatewayError {
    /// No resource or method matches (403 `Missing Authentication Token`).
    MissingAuthenticationToken,
    /// A stage, method or usage-plan bucket is empty (429).
    Throttled,
    /// The method has no integration (500).
    ApiConfigurationError,
    /// The body is over 10 MB (413).
    RequestTooLarge,
    /// The authorizer found no identity or said `Unauthorized` (401).
    Unauthorized,
    /// The authorizer's policy denies the method (403), explicitly or by no `Allow`.
    AccessDenied {
        /// An explicit `Deny` matched.
        explicit: bool,
    },
    /// The authorizer function failed or answered nonsense (500).
    AuthorizerFailure,
    /// The method names an authorizer the API does not have (500).
    AuthorizerConfigurationError,
    /// No enabled key of a usage plan for this stage (403).
    InvalidApiKey,
    /// The key's usage plan quota is spent (429).
    QuotaExceeded,
    /// Required request parameters are missing (400), by name.
    BadRequestParameters(Vec<String>),
    /// The body does not match the method's model (400).
    BadRequestBody,
    /// No request template for the content type, and passthrough refused (415).
    UnsupportedMediaType,
    /// The integration did not answer within its timeout (504).
    IntegrationTimeout,
    /// A proxy integration's function failed (502).
    IntegrationFailure,
    /// A mapping template or integration call failed inside the gateway (500).
    Internal,
}

impl GatewayError {
    /// The gateway response type (`MISSING_AUTHENTICATION_TOKEN`, …) customisations key on.
    pub fn response_type(&self) -> &'static str {
        match self {
            GatewayError::MissingAuthenticationToken => "MISSING_AUTHENTICATION_TOKEN",
            GatewayError::Throttled => "THROTTLED",
            GatewayError::ApiConfigurationError => "API_CONFIGURATION_ERROR",
            GatewayError::RequestTooLarge => "REQUEST_TOO_LARGE",
            GatewayError::Unauthorized => "UNAUTHORIZED",
            GatewayError::AccessDenied { .. } => "ACCESS_DENIED",
            GatewayError::AuthorizerFailure => "AUTHORIZER_FAILURE",
            GatewayError::AuthorizerConfigurationError => "AUTHORIZER_CONFIGURATION_ERROR",
            GatewayError::InvalidApiKey => "INVALID_API_KEY",
            GatewayError::QuotaExceeded => "QUOTA_EXCEEDED",
            GatewayError::BadRequestParameters(_) => "BAD_REQUEST_PARAMETERS",
            GatewayError::BadRequestBody => "BAD_REQUEST_BODY",
            GatewayError::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            GatewayError::IntegrationTimeout => "INTEGRATION_TIMEOUT",
            GatewayError::IntegrationFailure | GatewayError::Internal => "DEFAULT_5XX",
        }
    }

    /// The message of the default response (`$context.error.message` in templates).
    pub fn message(&self) -> Option<String> {
        Some(match self {
            GatewayError::MissingAuthenticationToken => "Missing Authentication Token".into(),
            GatewayError::Throttled => "Too Many Requests".into(),
            GatewayError::ApiConfigurationError
            | GatewayError::IntegrationFailure
            | GatewayError::Internal => "Internal server error".into(),
            GatewayError::RequestTooLarge => "Request Entity Too Large".into(),
            GatewayError::Unauthorized => "Unauthorized".into(),
            GatewayError::AccessDenied { explicit: true } => {
                "User is not authorized to access this resource with an explicit deny".into()
            }
            GatewayError::AccessDenied { explicit: false } => {
                "User is not authorized to access this resource".into()
            }
            GatewayError::AuthorizerFailure | GatewayError::AuthorizerConfigurationError => {
                return None;
            }
            GatewayError::InvalidApiKey => "Forbidden".into(),
            GatewayError::QuotaExceeded => "Limit Exceeded".into(),
            GatewayError::BadRequestParameters(missing) => format!(
                "Missing required request parameters: [{}]",
                missing.join(", ")
            ),
            GatewayError::BadRequestBody => "Invalid request body".into(),
            GatewayError::UnsupportedMediaType => "Unsupported Media Type".into(),
            GatewayError::IntegrationTimeout => "Endpoint request timed out".into(),
        })
    }

    /// API Gateway's default response for it.
    pub fn default_response(&self) -> Response {
        let refusal = match self {
            GatewayError::Unauthorized => crate::authorizer::Outcome::Unauthorized.refusal(),
            GatewayError::AccessDenied { explicit } => crate::authorizer::Outcome::Denied {
                explicit: *explicit,
            }
            .refusal(),
            GatewayError::AuthorizerFailure | GatewayError::AuthorizerConfigurationError => {
                crate::authorizer::Outcome::Failure.refusal()
            }
            _ => None,
        };
        if let Some(r) = refusal {
            return r;
        }
        let status = match self {
            GatewayError::MissingAuthenticationToken | GatewayError::InvalidApiKey => {
                StatusCode::FORBIDDEN
            }
            GatewayError::Throttled | GatewayError::QuotaExceeded => StatusCode::TOO_MANY_REQUESTS,
            GatewayError::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::BadRequestParameters(_) | GatewayError::BadRequestBody => {
                StatusCode::BAD_REQUEST
            }
            GatewayError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            GatewayError::IntegrationTimeout => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::IntegrationFailure => StatusCode::BAD_GATEWAY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        reply(status, json!({ "message": self.message() }))
    }
}

/// The response for a gateway error: the API's gateway response for its type, else for
/// `DEFAULT_4XX`/`DEFAULT_5XX`, over the default response (status, static
/// `gatewayresponse.header.*` values and the `application/json` template with
/// `$context.error.*`).
async fn customise(api: &RestApi, st: &Stage, error: GatewayError) -> Response {
    let mut resp = error.default_response();
    let kind = error.response_type();
    let message = error.message();
    let default = if resp.status().is_server_error() {
        "DEFAULT_5XX"
    } else {
        "DEFAULT_4XX"
    };
    let Some(g) = api
        .gateway_responses
        .get(kind)
        .or_else(|| api.gateway_responses.get(default))
    else {
        return resp;
    };
    if let Some(code) = g.status_code.as_deref().and_then(|c| c.parse::<u16>().ok())
        && let Ok(status) = StatusCode::from_u16(code)
    {
        *resp.status_mut() = status;
    }
    for (k, v) in &g.response_parameters {
        let (Some(name), Some(value)) = (
            k.strip_prefix("gatewayresponse.header."),
            v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')),
        ) else {
            continue;
        };
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::from_str(value)) {
            resp.headers_mut().insert(n, v);
        }
    }
    if let Some(t) = g.response_templates.get("application/json") {
        let message = message.unwrap_or_default();
        let context = json!({
            "error": {"message": message, "messageString": format!("\"{message}\""), "responseType": kind},
            "stage": st.name,
            "apiId": api.id,
        });
        let req = vtl_request("", &BTreeMap::new(), "", &HeaderMap::new(), context, st);
        match crate::templates::render(t, req).await {
            Ok(body) => {
                let status = resp.status();
                let headers = resp.headers().clone();
                resp = Response::new(Body::from(body));
                *resp.status_mut() = status;
                *resp.headers_mut() = headers;
                resp.headers_mut()
                    .insert("content-type", HeaderValue::from_static("application/json"));
            }
            Err(e) => tracing::warn!(api = %api.id, error = %e, "gateway response template failed"),
        }
    }
    resp
}

/// Serves a request on a REST API stage; `None` when no such API exists.
pub async fn serve(
    gw: &Gateway,
    id: &str,
    stage: &str,
    path: &str,
    req: axum::extract::Request,
) -> Option<Response> {
    let Some((api, st, resources)) = gw.rest_apis.served(id, stage) else {
        // An API that exists, on a stage that does not: API Gateway answers 403.
        gw.rest_apis.get(id).ok()?;
        return Some(reply(
            StatusCode::FORBIDDEN,
            json!({"message": "Forbidden"}),
        ));
    };
    // Every answer of the stage carries the request's id, the gateway's own errors too.
    let request_id = uuid::Uuid::new_v4().to_string();
    let mut resp = match serve_stage(gw, &api, &st, &resources, path, &request_id, req).await {
        Ok(resp) => resp,
        Err(e) => customise(&api, &st, e).await,
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
    Some(resp)
}

/// One request on a REST API stage, as the pipeline's steps see it.
struct Call<'a> {
    gw: &'a Gateway,
    api: &'a RestApi,
    st: &'a Stage,
    resource: &'a Resource,
    method: &'a Method,
    /// The request path under the stage.
    path: &'a str,
    /// Path parameters the resource's template bound.
    params: BTreeMap<String, String>,
    /// The HTTP method, upper case.
    method_name: String,
    parts: axum::http::request::Parts,
    body: Bytes,
    query: String,
    request_id: String,
    /// `$context` for templates; the authorizer's and API key's findings are added to it.
    context: Value,
    /// The authorizer's principal and context, for proxy events.
    authorized: Option<Value>,
    caller: Caller,
}

/// The stage's pipeline, in API Gateway's order: match the resource and method, throttle,
/// read the body, authorize, check the API key, validate, integrate. Each step either passes
/// the request on or answers with the gateway error that stops it.
async fn serve_stage(
    gw: &Gateway,
    api: &RestApi,
    st: &Stage,
    resources: &[Resource],
    path: &str,
    request_id: &str,
    req: axum::extract::Request,
) -> Result<Response, GatewayError> {
    let (parts, body) = req.into_parts();
    let (resource, params) =
        match_resource(resources, path).ok_or(GatewayError::MissingAuthenticationToken)?;
    let method_name = parts.method.as_str().to_ascii_uppercase();
    let method = resource
        .methods
        .get(&method_name)
        .or_else(|| resource.methods.get("ANY"))
        .ok_or(GatewayError::MissingAuthenticationToken)?;
    throttle(gw, api, st, resource, method)?;
    let mut integration = method
        .integration
        .clone()
        .ok_or(GatewayError::ApiConfigurationError)?;
    integration.uri = integration
        .uri
        .map(|u| crate::apigwv2::with_stage_variables(&u, &st.variables));
    let body = axum::body::to_bytes(Body::new(body), 10 * 1024 * 1024)
        .await
        .map_err(|_| GatewayError::RequestTooLarge)?;
    let context = json!({
        "requestId": request_id,
        "extendedRequestId": request_id,
        "apiId": api.id,
        "stage": st.name,
        "resourceId": resource.id,
        "resourcePath": resource.path,
        "httpMethod": method_name,
        "path": format!("/{}{}", st.name, path),
        "accountId": gw.settings.account_id,
        "protocol": "HTTP/1.1",
        "identity": {"sourceIp": "127.0.0.1", "userAgent": parts.headers.get("user-agent").and_then(|v| v.to_str().ok())},
        "requestTime": chrono::Utc::now().format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
        "requestTimeEpoch": chrono::Utc::now().timestamp_millis(),
    });
    let mut call = Call {
        gw,
        api,
        st,
        resource,
        method,
        path,
        params,
        caller: crate::caller(gw, &api.id, &st.name, &method_name, path),
        method_name,
        query: parts.uri.query().unwrap_or("").to_string(),
        parts,
        body,
        request_id: request_id.to_string(),
        context,
        authorized: None,
    };
    call.authorize().await?;
    call.check_api_key()?;
    call.validate()?;
    match integration.integration_type.as_str() {
        "AWS_PROXY" => call.proxy(&integration).await,
        "AWS" | "MOCK" | "HTTP" => call.mapped(&integration).await,
        "HTTP_PROXY" => Ok(call.http_proxy(&integration).await),
        other => {
            tracing::warn!(api = %api.id, integration = other, "integration type not supported yet");
            Err(GatewayError::Internal)
        }
    }
}

/// The stage's (or the method's) token bucket.
fn throttle(
    gw: &Gateway,
    api: &RestApi,
    st: &Stage,
    resource: &Resource,
    method: &Method,
) -> Result<(), GatewayError> {
    if let Some((rate, burst)) = st.throttling(&resource.path, &method.http_method)
        && !gw.throttle.admit(
            &format!(
                "{}/{}/{}/{}",
                api.id, st.name, resource.path, method.http_method
            ),
            rate,
            burst,
        )
    {
        return Err(GatewayError::Throttled);
    }
    Ok(())
}

impl Call<'_> {
    fn header(&self, name: &str) -> &str {
        self.parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The request's content type without parameters, lower case (`application/json` when
    /// absent).
    fn content_type(&self) -> String {
        self.parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .and_then(|c| c.split(';').next())
            .map(|c| c.trim().to_ascii_lowercase())
            .unwrap_or_else(|| "application/json".into())
    }

    /// A Lambda authorizer decides before the integration runs; its principal and context
    /// reach the integration as `$context.authorizer.*` / `requestContext.authorizer`.
    async fn authorize(&mut self) -> Result<(), GatewayError> {
        if self.method.authorization_type != "CUSTOM" {
            return Ok(());
        }
        let authorizer = self
            .method
            .authorizer_id
            .as_ref()
            .and_then(|id| self.api.authorizers.get(id))
            .ok_or(GatewayError::AuthorizerConfigurationError)?;
        let multi = query_multi(&self.query);
        let outcome = crate::authorizer::authorize(
            self.gw,
            authorizer,
            &crate::authorizer::Request {
                api_id: &self.api.id,
                stage: &self.st.name,
                stage_variables: &self.st.variables,
                method: &self.method_name,
                path: self.path,
                resource_path: &self.resource.path,
                headers: &self.parts.headers,
                query: &multi,
                path_params: &self.params,
                request_context: &self.context,
            },
        )
        .await;
        match outcome {
            crate::authorizer::Outcome::Allow {
                principal_id,
                context: mut extra,
            } => {
                extra.insert("principalId".into(), Value::String(principal_id));
                self.context["authorizer"] = Value::Object(extra.clone());
                self.authorized = Some(Value::Object(extra));
                Ok(())
            }
            crate::authorizer::Outcome::Unauthorized => Err(GatewayError::Unauthorized),
            crate::authorizer::Outcome::Denied { explicit } => {
                Err(GatewayError::AccessDenied { explicit })
            }
            crate::authorizer::Outcome::Failure => Err(GatewayError::AuthorizerFailure),
        }
    }

    /// API keys: an enabled key in a usage plan for this stage, within its quota and throttle.
    fn check_api_key(&mut self) -> Result<(), GatewayError> {
        use crate::api_keys::KeyCheck;
        if !self.method.api_key_required {
            return Ok(());
        }
        let value = self
            .parts
            .headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok());
        // The plan's throttle, a bucket per plan and key; a throttled request does not count
        // against the quota.
        let throttle = &self.gw.throttle;
        let admit = |plan: &str, key: &str, t: Option<&crate::api_keys::Throttle>| {
            t.and_then(|t| t.rate_limit.map(|rate| (rate, t.burst_limit)))
                .is_none_or(|(rate, burst)| {
                    throttle.admit(&format!("plan/{plan}/{key}"), rate, burst)
                })
        };
        match self
            .gw
            .api_keys
            .check(&self.api.id, &self.st.name, value, admit)
        {
            KeyCheck::Forbidden => Err(GatewayError::InvalidApiKey),
            KeyCheck::QuotaExceeded => Err(GatewayError::QuotaExceeded),
            KeyCheck::Throttled => Err(GatewayError::Throttled),
            KeyCheck::Allowed { key, .. } => {
                self.context["identity"]["apiKey"] = json!(value);
                self.context["identity"]["apiKeyId"] = json!(key);
                Ok(())
            }
        }
    }

    /// The method's request validator: required parameters, then the body against its model.
    fn validate(&self) -> Result<(), GatewayError> {
        if self.method.request_validator_id.is_none() {
            return Ok(());
        }
        let query_names = query_multi(&self.query).into_keys().collect();
        let header_names = self
            .parts
            .headers
            .keys()
            .map(|k| k.as_str().to_string())
            .collect();
        match crate::rest_apis::validate_request(
            self.api,
            self.method,
            &query_names,
            &header_names,
            &self.content_type(),
            &self.body,
        ) {
            Ok(()) => Ok(()),
            Err(crate::rest_apis::Invalid::Parameters(missing)) => {
                Err(GatewayError::BadRequestParameters(missing))
            }
            Err(crate::rest_apis::Invalid::Body) => Err(GatewayError::BadRequestBody),
        }
    }

    /// `AWS_PROXY`: the proxy event (payload 1.0) in, the function's response description out.
    async fn proxy(&self, integration: &Integration) -> Result<Response, GatewayError> {
        let (api, st, resource) = (self.api, self.st, self.resource);
        let info = RequestInfo {
            method: &self.parts.method,
            path: self.path,
            raw_query: &self.query,
            source_ip: "127.0.0.1".into(),
            request_id: self.request_id.clone(),
            account_id: self.gw.settings.account_id.clone(),
            api_id: api.id.clone(),
            domain_name: format!("{}.execute-api.localhost", api.id),
            route_key: String::new(),
            stage: st.name.clone(),
        };
        let route = crate::http_apis::Route {
            id: resource.id.clone(),
            route_key: format!("{} {}", self.method_name, resource.path),
            target: None,
            authorizer_id: None,
        };
        let binary_in = is_binary(&api.binary_media_types, self.header("content-type"));
        let binary_out = self
            .header("accept")
            .split(',')
            .any(|t| is_binary(&api.binary_media_types, t));
        let mut event = event_v1(
            &info,
            &route,
            &self.parts.headers,
            &self.parts.method,
            &self.body,
            Some(binary_in),
            // REST API proxy events have no `version`.
            None,
        );
        event["requestContext"]["resourceId"] = json!(resource.id);
        if let Some(a) = &self.authorized {
            event["requestContext"]["authorizer"] = a.clone();
        }
        if !self.params.is_empty() {
            event["pathParameters"] = json!(self.params);
        }
        if !st.variables.is_empty() {
            event["stageVariables"] = json!(st.variables);
        }
        match invoke(self.gw, integration, event.to_string(), &self.caller).await {
            Ok((payload, false)) => Ok(response_v1(&payload, binary_out)),
            Err(Timeout) => Err(GatewayError::IntegrationTimeout),
            Ok((_, true)) | Err(Failed(_)) => Err(GatewayError::IntegrationFailure),
        }
    }

    /// `AWS`, `MOCK` and `HTTP`: the request template, the call, then the integration response
    /// the result selects and its template.
    async fn mapped(&self, integration: &Integration) -> Result<Response, GatewayError> {
        let api = self.api;
        let text = String::from_utf8_lossy(&self.body).into_owned();
        let vreq = self.template_request(&text);
        let payload = match (
            integration.request_templates.get(&self.content_type()),
            integration.passthrough_behavior.as_str(),
        ) {
            (Some(t), _) => crate::templates::render(t, vreq).await.map_err(|e| {
                tracing::warn!(api = %api.id, error = %e, "request mapping template failed");
                GatewayError::Internal
            })?,
            (None, "NEVER") => return Err(GatewayError::UnsupportedMediaType),
            (None, "WHEN_NO_TEMPLATES") if !integration.request_templates.is_empty() => {
                return Err(GatewayError::UnsupportedMediaType);
            }
            (None, _) => text,
        };
        let (result_body, selector) = match integration.integration_type.as_str() {
            "MOCK" => {
                let status = serde_json::from_str::<Value>(&payload)
                    .ok()
                    .and_then(|v| v.get("statusCode").and_then(Value::as_u64))
                    .map(|s| s.to_string());
                (String::new(), status.map(Selector::Status))
            }
            "HTTP" => {
                let (status, text) = self.call_http(integration, payload).await?;
                (text, Some(Selector::Pattern(status.to_string())))
            }
            _ => match invoke(self.gw, integration, payload, &self.caller).await {
                Ok((p, false)) => (String::from_utf8_lossy(&p).into_owned(), None),
                Ok((p, true)) => {
                    let msg = serde_json::from_slice::<Value>(&p)
                        .ok()
                        .and_then(|v| {
                            v.get("errorMessage")
                                .and_then(Value::as_str)
                                .map(str::to_string)
                        })
                        .unwrap_or_default();
                    (
                        String::from_utf8_lossy(&p).into_owned(),
                        Some(Selector::Pattern(msg)),
                    )
                }
                Err(Timeout) => return Err(GatewayError::IntegrationTimeout),
                Err(Failed(e)) => {
                    tracing::warn!(api = %api.id, error = %e, "integration call failed");
                    return Err(GatewayError::Internal);
                }
            },
        };
        let ir = select_response(integration, selector.as_ref()).ok_or(GatewayError::Internal)?;
        let status = ir
            .status_code
            .parse::<u16>()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
            .unwrap_or(StatusCode::OK);
        let template = ir
            .response_templates
            .get("application/json")
            .or_else(|| ir.response_templates.values().next())
            .filter(|t| !t.is_empty());
        let out = match template {
            Some(t) => crate::templates::render(t, self.template_request(&result_body))
                .await
                .map_err(|e| {
                    tracing::warn!(api = %api.id, error = %e, "response mapping template failed");
                    GatewayError::Internal
                })?,
            None => result_body,
        };
        let mut r = Response::new(Body::from(out));
        *r.status_mut() = status;
        r.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        apply_response_parameters(&mut r, &ir.response_parameters);
        Ok(r)
    }

    /// What a mapping template sees of this request, with `body` as `$input`.
    fn template_request(&self, body: &str) -> nimbus_vtl::Request {
        vtl_request(
            body,
            &self.params,
            &self.query,
            &self.parts.headers,
            self.context.clone(),
            self.st,
        )
    }

    /// An `HTTP` integration's upstream call (its `requestParameters` mapped): the status and
    /// the body, which select the integration response.
    async fn call_http(
        &self,
        integration: &Integration,
        payload: String,
    ) -> Result<(u16, String), GatewayError> {
        let timeout =
            std::time::Duration::from_millis(u64::from(integration.timeout_ms.clamp(50, 29_000)));
        let method = integration
            .http_method
            .clone()
            .unwrap_or_else(|| self.method_name.clone());
        let mapped = map_request_parameters(
            &integration.request_parameters,
            &self.params,
            &query_multi(&self.query),
            &self.parts.headers,
            &self.st.variables,
            &self.context,
        );
        let mut path_params = self.params.clone();
        path_params.extend(mapped.path);
        crate::http_proxy::call(
            integration.uri.as_deref().unwrap_or(""),
            &method,
            &path_params,
            &mapped.query,
            &mapped.headers,
            payload,
            timeout,
        )
        .await
        .map_err(|e| match e {
            crate::http_proxy::CallError::Timeout => GatewayError::IntegrationTimeout,
            crate::http_proxy::CallError::Failed(e) => {
                tracing::warn!(api = %self.api.id, error = %e, "HTTP integration call failed");
                GatewayError::Internal
            }
        })
    }

    /// `HTTP_PROXY`: the request forwarded as it came, the upstream's answer returned.
    async fn http_proxy(&self, integration: &Integration) -> Response {
        let timeout =
            std::time::Duration::from_millis(u64::from(integration.timeout_ms.clamp(50, 29_000)));
        crate::http_proxy::forward(
            integration.uri.as_deref().unwrap_or(""),
            &self.parts.method,
            &self.params,
            &self.query,
            &self.parts.headers,
            self.body.clone(),
            timeout,
        )
        .await
    }
}

/// What selects an integration response.
enum Selector {
    /// A `MOCK` integration's status code: the response keyed by it.
    Status(String),
    /// Text matched against `selectionPattern`s: an `HTTP` upstream's status code, or a
    /// function error's message.
    Pattern(String),
}

/// The integration response: by status (MOCK), by `selectionPattern` on the upstream status
/// (HTTP) or the error message (a function error), else the default one (no pattern).
fn select_response<'i>(
    integration: &'i Integration,
    selector: Option<&Selector>,
) -> Option<&'i IntegrationResponse> {
    let default = || {
        integration
            .responses
            .values()
            .find(|r| r.selection_pattern.as_deref().unwrap_or("").is_empty())
    };
    match selector {
        Some(Selector::Status(code)) => integration.responses.get(code).or_else(default),
        Some(Selector::Pattern(msg)) => integration
            .responses
            .values()
            .find(|r| {
                r.selection_pattern
                    .as_deref()
                    .is_some_and(|p| !p.is_empty() && selection_matches(p, msg))
            })
            .or_else(default),
        None => default(),
    }
}

/// Why an integration call produced no result.
enum CallError {
    Timeout,
    Failed(CoreError),
}
use CallError::{Failed, Timeout};

/// Invokes the integration's function synchronously; (payload, function error).
async fn invoke(
    gw: &Gateway,
    integration: &Integration,
    payload: String,
    caller: &Caller,
) -> Result<(Vec<u8>, bool), CallError> {
    let target = integration
        .uri
        .as_deref()
        .and_then(function_of)
        .ok_or_else(|| {
            Failed(CoreError::InvalidParameter(
                "the integration URI does not name a function".into(),
            ))
        })?;
    let call = gw
        .invoke
        .invoke(InvokeInput::sync(target, payload, caller.clone()));
    let limit =
        std::time::Duration::from_millis(u64::from(integration.timeout_ms.clamp(50, 29_000)));
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(r)) => Ok((r.payload.to_vec(), r.function_error)),
        Ok(Err(e)) => Err(Failed(e)),
        Err(_) => Err(Timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::{Mapped, is_binary, map_request_parameters};
    use axum::http::HeaderMap;
    use serde_json::json;
    use std::collections::BTreeMap;

    #[test]
    fn request_parameters_map_from_the_method_request() {
        let mapping: BTreeMap<String, String> = [
            ("integration.request.path.item", "method.request.path.id"),
            (
                "integration.request.querystring.q",
                "method.request.querystring.search",
            ),
            (
                "integration.request.querystring.all",
                "method.request.multivaluequerystring.tag",
            ),
            ("integration.request.header.X-Stage", "stageVariables.env"),
            ("integration.request.header.X-Static", "'fixed'"),
            ("integration.request.header.X-Req", "context.requestId"),
            (
                "integration.request.header.X-Absent",
                "method.request.header.missing",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let path = [("id".to_string(), "7".to_string())].into_iter().collect();
        let query = [
            ("search".to_string(), vec!["rust".to_string()]),
            ("tag".to_string(), vec!["a".to_string(), "b".to_string()]),
        ]
        .into_iter()
        .collect();
        let vars = [("env".to_string(), "prod".to_string())]
            .into_iter()
            .collect();
        let m = map_request_parameters(
            &mapping,
            &path,
            &query,
            &HeaderMap::new(),
            &vars,
            &json!({"requestId": "r-1"}),
        );
        assert_eq!(
            m,
            Mapped {
                path: [("item".to_string(), "7".to_string())]
                    .into_iter()
                    .collect(),
                query: vec![
                    ("all".to_string(), "a,b".to_string()),
                    ("q".to_string(), "rust".to_string())
                ],
                headers: vec![
                    ("X-Req".to_string(), "r-1".to_string()),
                    ("X-Stage".to_string(), "prod".to_string()),
                    ("X-Static".to_string(), "fixed".to_string())
                ],
            }
        );
    }

    #[test]
    fn binary_media_types_match_like_api_gateway() {
        let types = vec![
            "image/*".to_string(),
            "application/octet-stream".to_string(),
        ];
        assert!(is_binary(&types, "image/png"));
        assert!(is_binary(&types, "Image/JPEG; q=0.9"));
        assert!(is_binary(&types, "application/octet-stream"));
        assert!(!is_binary(&types, "application/json"));
        assert!(!is_binary(&types, ""));
        assert!(is_binary(&["*/*".to_string()], "text/plain"));
        assert!(!is_binary(&[], "image/png"));
    }
}
