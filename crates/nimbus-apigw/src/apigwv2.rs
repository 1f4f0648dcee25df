//! API Gateway HTTP APIs (`apigatewayv2`, REST-JSON with camelCase members under `/v2/apis`):
//! the control plane, and serving requests host-style (`<apiId>.execute-api.localhost`) and
//! path-style (`/restapis/<apiId>/<stage>/_user_request_/<path>`) through AWS_PROXY
//! integrations with payload format 1.0 or 2.0.

use std::collections::BTreeMap;

use crate::Gateway;
use crate::http_apis::{ApiError, ApiInput, HttpApi, Integration, IntegrationInput, Route, Stage};
use crate::members::{Members, input};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use nimbus_core::CoreError;
use nimbus_core::invoke::InvokeInput;
use nimbus_core::names::parse_function_ref;
use nimbus_events::http::{ProxyIdentityV1, ProxyRequestContextV1, ProxyRequestV1};
use serde_json::{Map, Value, json};

use crate::http_events::{RequestInfo, event_v2, response_v2};

pub(crate) struct GwError(pub(crate) ApiError);

impl From<ApiError> for GwError {
    fn from(e: ApiError) -> Self {
        GwError(e)
    }
}

impl IntoResponse for GwError {
    fn into_response(self) -> Response {
        let (status, kind) = match &self.0 {
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "NotFoundException"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "BadRequestException"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "ConflictException"),
            ApiError::Core(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerErrorException",
            ),
        };
        let mut r = (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            json!({ "message": self.0.to_string() }).to_string(),
        )
            .into_response();
        r.headers_mut()
            .insert("x-amzn-errortype", HeaderValue::from_static(kind));
        r
    }
}

pub(crate) type R = Result<Response, GwError>;

pub(crate) fn reply(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

pub(crate) fn parse(body: &Bytes) -> Result<Value, GwError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|e| GwError(ApiError::BadRequest(format!("Invalid request body: {e}"))))
}

const CREATE_API: Members = Members {
    op: "CreateApi",
    aws: &[
        "apiKeySelectionExpression",
        "corsConfiguration",
        "credentialsArn",
        "description",
        "disableSchemaValidation",
        "disableExecuteApiEndpoint",
        "ipAddressType",
        "name",
        "protocolType",
        "routeKey",
        "routeSelectionExpression",
        "tags",
        "target",
        "version",
    ],
    implemented: &[
        "corsConfiguration",
        "description",
        "name",
        "protocolType",
        "routeKey",
        "tags",
        "target",
    ],
};
const UPDATE_API: Members = Members {
    op: "UpdateApi",
    aws: &[
        "apiKeySelectionExpression",
        "corsConfiguration",
        "credentialsArn",
        "description",
        "disableSchemaValidation",
        "disableExecuteApiEndpoint",
        "ipAddressType",
        "name",
        "routeKey",
        "routeSelectionExpression",
        "target",
        "version",
    ],
    implemented: &["corsConfiguration", "description", "name"],
};
const INTEGRATION_MEMBERS: &[&str] = &[
    "connectionId",
    "connectionType",
    "contentHandlingStrategy",
    "credentialsArn",
    "description",
    "integrationMethod",
    "integrationSubtype",
    "integrationType",
    "integrationUri",
    "passthroughBehavior",
    "payloadFormatVersion",
    "requestParameters",
    "requestTemplates",
    "responseParameters",
    "templateSelectionExpression",
    "timeoutInMillis",
    "tlsConfig",
];
const INTEGRATION_IMPLEMENTED: &[&str] = &[
    "description",
    "integrationMethod",
    "integrationType",
    "integrationUri",
    "payloadFormatVersion",
    "timeoutInMillis",
];
const CREATE_INTEGRATION: Members = Members {
    op: "CreateIntegration",
    aws: INTEGRATION_MEMBERS,
    implemented: INTEGRATION_IMPLEMENTED,
};
const UPDATE_INTEGRATION: Members = Members {
    op: "UpdateIntegration",
    aws: INTEGRATION_MEMBERS,
    implemented: INTEGRATION_IMPLEMENTED,
};
const ROUTE_MEMBERS: &[&str] = &[
    "apiKeyRequired",
    "authorizationScopes",
    "authorizationType",
    "authorizerId",
    "modelSelectionExpression",
    "operationName",
    "requestModels",
    "requestParameters",
    "routeKey",
    "routeResponseSelectionExpression",
    "target",
];
const ROUTE_IMPLEMENTED: &[&str] = &["authorizationType", "authorizerId", "routeKey", "target"];
const CREATE_ROUTE: Members = Members {
    op: "CreateRoute",
    aws: ROUTE_MEMBERS,
    implemented: ROUTE_IMPLEMENTED,
};
const UPDATE_ROUTE: Members = Members {
    op: "UpdateRoute",
    aws: ROUTE_MEMBERS,
    implemented: ROUTE_IMPLEMENTED,
};
const CREATE_STAGE: Members = Members {
    op: "CreateStage",
    aws: &[
        "accessLogSettings",
        "autoDeploy",
        "clientCertificateId",
        "defaultRouteSettings",
        "deploymentId",
        "description",
        "routeSettings",
        "stageName",
        "stageVariables",
        "tags",
    ],
    implemented: &[
        "autoDeploy",
        "defaultRouteSettings",
        "deploymentId",
        "description",
        "routeSettings",
        "stageName",
        "stageVariables",
    ],
};
const UPDATE_STAGE: Members = Members {
    op: "UpdateStage",
    aws: &[
        "accessLogSettings",
        "autoDeploy",
        "clientCertificateId",
        "defaultRouteSettings",
        "deploymentId",
        "description",
        "routeSettings",
        "stageVariables",
    ],
    implemented: &[
        "autoDeploy",
        "defaultRouteSettings",
        "deploymentId",
        "description",
        "routeSettings",
        "stageVariables",
    ],
};
const CREATE_DEPLOYMENT: Members = Members {
    op: "CreateDeployment",
    aws: &["description", "stageName"],
    implemented: &["description", "stageName"],
};
const AUTHORIZER_MEMBERS: &[&str] = &[
    "authorizerCredentialsArn",
    "authorizerPayloadFormatVersion",
    "authorizerResultTtlInSeconds",
    "authorizerType",
    "authorizerUri",
    "enableSimpleResponses",
    "identitySource",
    "identityValidationExpression",
    "jwtConfiguration",
    "name",
];
// `jwtConfiguration` is read so that JWT authorizers are refused by the model's own message.
const AUTHORIZER_IMPLEMENTED: &[&str] = &[
    "authorizerPayloadFormatVersion",
    "authorizerResultTtlInSeconds",
    "authorizerType",
    "authorizerUri",
    "enableSimpleResponses",
    "identitySource",
    "jwtConfiguration",
    "name",
];
const CREATE_AUTHORIZER: Members = Members {
    op: "CreateAuthorizer",
    aws: AUTHORIZER_MEMBERS,
    implemented: AUTHORIZER_IMPLEMENTED,
};
const UPDATE_AUTHORIZER: Members = Members {
    op: "UpdateAuthorizer",
    aws: AUTHORIZER_MEMBERS,
    implemented: AUTHORIZER_IMPLEMENTED,
};

pub(crate) fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

pub(crate) fn strings(v: &Value, k: &str) -> BTreeMap<String, String> {
    v.get(k)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// `http://<apiId>.execute-api.localhost:<port>` where `*.localhost` resolves on this machine,
/// else the path-style `<public url>/_aws/execute-api/<apiId>` — usable as-is either way
/// (append `/<stage>/<path>`, or just `/<path>` for the `$default` stage).
fn endpoint(gw: &Gateway, id: &str) -> String {
    let base = gw.settings.public_url.trim_end_matches('/');
    if !nimbus_core::urls::localhost_subdomains_resolve() {
        return format!("{base}/_aws/execute-api/{id}");
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("http", base));
    let port = rest
        .rsplit_once(':')
        .map(|(_, p)| format!(":{p}"))
        .unwrap_or_default();
    format!("{scheme}://{id}.execute-api.localhost{port}")
}

fn render_api(gw: &Gateway, a: &HttpApi) -> Value {
    let mut v = json!({
        "apiId": a.id,
        "apiEndpoint": endpoint(gw, &a.id),
        "name": a.name,
        "protocolType": a.protocol_type,
        "routeSelectionExpression": a.route_selection_expression,
        "createdDate": a.created,
        "disableExecuteApiEndpoint": false,
        "apiKeySelectionExpression": "$request.header.x-api-key",
        "tags": a.tags,
    });
    if let Some(d) = &a.description {
        v["description"] = json!(d);
    }
    if let Some(c) = &a.cors {
        v["corsConfiguration"] = c.to_wire(false);
    }
    v
}

fn render_integration(i: &Integration) -> Value {
    let mut v = json!({
        "integrationId": i.id,
        "integrationType": i.integration_type,
        "payloadFormatVersion": i.payload_format_version,
        "timeoutInMillis": i.timeout_ms,
        "connectionType": "INTERNET",
        "apiGatewayManaged": false,
    });
    if let Some(u) = &i.integration_uri {
        v["integrationUri"] = json!(u);
    }
    if let Some(m) = &i.integration_method {
        v["integrationMethod"] = json!(m);
    }
    if let Some(d) = &i.description {
        v["description"] = json!(d);
    }
    v
}

fn render_route(r: &Route) -> Value {
    let mut v = json!({
        "routeId": r.id,
        "routeKey": r.route_key,
        "authorizationType": if r.authorizer_id.is_some() { "CUSTOM" } else { "NONE" },
        "apiKeyRequired": false,
        "apiGatewayManaged": false,
    });
    if let Some(t) = &r.target {
        v["target"] = json!(t);
    }
    if let Some(a) = &r.authorizer_id {
        v["authorizerId"] = json!(a);
    }
    v
}

fn route_auth(v: &Value) -> crate::http_apis::RouteAuth {
    crate::http_apis::RouteAuth {
        authorization_type: s(v, "authorizationType"),
        authorizer_id: s(v, "authorizerId"),
    }
}

fn render_authorizer(a: &crate::http_apis::Authorizer) -> Value {
    json!({
        "authorizerId": a.id,
        "name": a.name,
        "authorizerType": "REQUEST",
        "authorizerUri": a.authorizer_uri,
        "identitySource": a.identity_source,
        "authorizerPayloadFormatVersion": a.payload_format_version,
        "enableSimpleResponses": a.simple_responses,
        "authorizerResultTtlInSeconds": a.ttl_seconds,
    })
}

fn authorizer_input(v: &Value) -> crate::http_apis::AuthorizerInput {
    crate::http_apis::AuthorizerInput {
        name: s(v, "name"),
        authorizer_type: s(v, "authorizerType"),
        authorizer_uri: s(v, "authorizerUri"),
        identity_source: v.get("identitySource").and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        }),
        payload_format_version: s(v, "authorizerPayloadFormatVersion"),
        simple_responses: v.get("enableSimpleResponses").and_then(Value::as_bool),
        ttl_seconds: v
            .get("authorizerResultTtlInSeconds")
            .and_then(Value::as_i64),
    }
}

async fn create_authorizer(State(gw): State<Gateway>, Path(id): Path<String>, body: Bytes) -> R {
    let v = input(&body, CREATE_AUTHORIZER)?;
    let a = gw
        .http_apis
        .create_authorizer(&id, authorizer_input(&v))
        .await?;
    Ok(reply(StatusCode::CREATED, render_authorizer(&a)))
}

async fn get_authorizers(State(gw): State<Gateway>, Path(id): Path<String>) -> R {
    let a = gw.http_apis.get(&id)?;
    let items: Vec<Value> = a.authorizers.values().map(render_authorizer).collect();
    Ok(reply(StatusCode::OK, json!({ "items": items })))
}

async fn get_authorizer(State(gw): State<Gateway>, Path((id, aid)): Path<(String, String)>) -> R {
    let a = gw.http_apis.get(&id)?;
    let au = a
        .authorizers
        .get(&aid)
        .ok_or_else(|| not_found_in("Authorizer", &aid))?;
    Ok(reply(StatusCode::OK, render_authorizer(au)))
}

async fn update_authorizer(
    State(gw): State<Gateway>,
    Path((id, aid)): Path<(String, String)>,
    body: Bytes,
) -> R {
    let v = input(&body, UPDATE_AUTHORIZER)?;
    let a = gw
        .http_apis
        .update_authorizer(&id, &aid, authorizer_input(&v))
        .await?;
    Ok(reply(StatusCode::OK, render_authorizer(&a)))
}

async fn delete_authorizer(
    State(gw): State<Gateway>,
    Path((id, aid)): Path<(String, String)>,
) -> R {
    gw.http_apis.delete_authorizer(&id, &aid).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn route_settings(rate: Option<f64>, burst: Option<u32>) -> Value {
    let mut v = json!({"detailedMetricsEnabled": false});
    if let Some(r) = rate {
        v["throttlingRateLimit"] = json!(r);
    }
    if let Some(b) = burst {
        v["throttlingBurstLimit"] = json!(b);
    }
    v
}

/// The throttling of each route in a request body's `routeSettings`.
type RouteLimits = Vec<(String, (Option<f64>, Option<u32>))>;

fn route_throttling_of(v: &Value) -> RouteLimits {
    v.get("routeSettings")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, s)| {
                    (
                        k.clone(),
                        (
                            s.get("throttlingRateLimit").and_then(Value::as_f64),
                            s.get("throttlingBurstLimit")
                                .and_then(Value::as_u64)
                                .map(|b| u32::try_from(b).unwrap_or(u32::MAX)),
                        ),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Applies a CreateStage/UpdateStage body's `routeSettings`.
async fn apply_route_settings(
    gw: &Gateway,
    api: &str,
    stage: Stage,
    v: &Value,
) -> Result<Stage, GwError> {
    let mut st = stage;
    for (key, limits) in route_throttling_of(v) {
        st = gw
            .http_apis
            .set_route_throttling(api, &st.name, &key, Some(limits))
            .await?;
    }
    Ok(st)
}

/// DeleteRouteSettings.
async fn delete_route_settings(
    State(gw): State<Gateway>,
    Path((id, stage, key)): Path<(String, String, String)>,
) -> R {
    gw.http_apis
        .set_route_throttling(&id, &stage, &key, None)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The throttling a request body asks for in `defaultRouteSettings`.
fn throttling_of(v: &Value) -> (Option<f64>, Option<u32>) {
    let d = &v["defaultRouteSettings"];
    (
        d.get("throttlingRateLimit").and_then(Value::as_f64),
        d.get("throttlingBurstLimit")
            .and_then(Value::as_u64)
            .map(|b| u32::try_from(b).unwrap_or(u32::MAX)),
    )
}

fn render_stage(s: &Stage) -> Value {
    let mut v = json!({
        "stageName": s.name,
        "autoDeploy": s.auto_deploy,
        "stageVariables": s.stage_variables,
        "createdDate": s.created,
        "lastUpdatedDate": s.updated,
        "defaultRouteSettings": route_settings(s.throttling_rate, s.throttling_burst),
        "routeSettings": s.route_throttling.iter().map(|(k, (r, b))| (k.clone(), route_settings(*r, *b))).collect::<Map<_, _>>(),
        "tags": {},
    });
    if let Some(d) = &s.deployment_id {
        v["deploymentId"] = json!(d);
    }
    if let Some(d) = &s.description {
        v["description"] = json!(d);
    }
    v
}

async fn create_api(State(gw): State<Gateway>, body: Bytes) -> R {
    let v = input(&body, CREATE_API)?;
    let a = gw
        .http_apis
        .create(ApiInput {
            name: s(&v, "name"),
            protocol_type: s(&v, "protocolType"),
            description: s(&v, "description"),
            target: s(&v, "target"),
            route_key: s(&v, "routeKey"),
            tags: strings(&v, "tags"),
            cors: cors_of(&v)?.flatten(),
        })
        .await?;
    Ok(reply(StatusCode::CREATED, render_api(&gw, &a)))
}

async fn get_api(State(gw): State<Gateway>, Path(id): Path<String>) -> R {
    let a = gw.http_apis.get(&id)?;
    Ok(reply(StatusCode::OK, render_api(&gw, &a)))
}

async fn get_apis(State(gw): State<Gateway>) -> R {
    let items: Vec<Value> = gw
        .http_apis
        .list()
        .iter()
        .map(|a| render_api(&gw, a))
        .collect();
    Ok(reply(StatusCode::OK, json!({ "items": items })))
}

async fn delete_api(State(gw): State<Gateway>, Path(id): Path<String>) -> R {
    gw.http_apis.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn create_integration(State(gw): State<Gateway>, Path(id): Path<String>, body: Bytes) -> R {
    let v = input(&body, CREATE_INTEGRATION)?;
    let i = gw
        .http_apis
        .create_integration(
            &id,
            IntegrationInput {
                integration_type: s(&v, "integrationType"),
                integration_uri: s(&v, "integrationUri"),
                integration_method: s(&v, "integrationMethod"),
                payload_format_version: s(&v, "payloadFormatVersion"),
                timeout_ms: v.get("timeoutInMillis").and_then(Value::as_i64),
                description: s(&v, "description"),
            },
        )
        .await?;
    Ok(reply(StatusCode::CREATED, render_integration(&i)))
}

async fn get_integrations(State(gw): State<Gateway>, Path(id): Path<String>) -> R {
    let a = gw.http_apis.get(&id)?;
    let items: Vec<Value> = a.integrations.values().map(render_integration).collect();
    Ok(reply(StatusCode::OK, json!({ "items": items })))
}

async fn create_route(State(gw): State<Gateway>, Path(id): Path<String>, body: Bytes) -> R {
    let v = input(&body, CREATE_ROUTE)?;
    let r = gw
        .http_apis
        .create_route(&id, s(&v, "routeKey"), s(&v, "target"), route_auth(&v))
        .await?;
    Ok(reply(StatusCode::CREATED, render_route(&r)))
}

async fn get_routes(State(gw): State<Gateway>, Path(id): Path<String>) -> R {
    let a = gw.http_apis.get(&id)?;
    let items: Vec<Value> = a.routes.values().map(render_route).collect();
    Ok(reply(StatusCode::OK, json!({ "items": items })))
}

async fn create_stage(State(gw): State<Gateway>, Path(id): Path<String>, body: Bytes) -> R {
    let v = input(&body, CREATE_STAGE)?;
    let mut st = gw
        .http_apis
        .create_stage(
            &id,
            s(&v, "stageName"),
            v.get("autoDeploy")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            s(&v, "deploymentId"),
            strings(&v, "stageVariables"),
            s(&v, "description"),
        )
        .await?;
    if let (rate, burst) = throttling_of(&v)
        && (rate.is_some() || burst.is_some())
    {
        st = gw
            .http_apis
            .set_throttling(&id, &st.name, rate, burst)
            .await?;
    }
    let st = apply_route_settings(&gw, &id, st, &v).await?;
    Ok(reply(StatusCode::CREATED, render_stage(&st)))
}

async fn get_stages(State(gw): State<Gateway>, Path(id): Path<String>) -> R {
    let a = gw.http_apis.get(&id)?;
    let items: Vec<Value> = a.stages.values().map(render_stage).collect();
    Ok(reply(StatusCode::OK, json!({ "items": items })))
}

async fn create_deployment(State(gw): State<Gateway>, Path(id): Path<String>, body: Bytes) -> R {
    let v = input(&body, CREATE_DEPLOYMENT)?;
    let d = gw
        .http_apis
        .create_deployment(&id, s(&v, "stageName"), s(&v, "description"))
        .await?;
    Ok(reply(StatusCode::CREATED, render_deployment(&d)))
}

fn not_found_in(kind: &str, id: &str) -> GwError {
    GwError(ApiError::NotFound(format!(
        "Invalid {kind} identifier specified {id}"
    )))
}

async fn update_api(State(gw): State<Gateway>, Path(id): Path<String>, body: Bytes) -> R {
    let v = input(&body, UPDATE_API)?;
    let a = gw
        .http_apis
        .update_api(&id, s(&v, "name"), s(&v, "description"), cors_of(&v)?)
        .await?;
    Ok(reply(StatusCode::OK, render_api(&gw, &a)))
}

/// The OpenAPI definition in an ImportApi/ReimportApi body (`{"body": "<JSON or YAML>"}`).
fn definition_of(body: &Bytes) -> Result<crate::openapi::HttpDefinition, GwError> {
    let v = parse(body)?;
    let text = s(&v, "body").ok_or_else(|| {
        GwError(ApiError::BadRequest(
            "Body is required: the OpenAPI definition as a string".into(),
        ))
    })?;
    let doc = crate::openapi::parse_document(text.as_bytes())?;
    Ok(crate::openapi::read_http(&doc)?)
}

/// ImportApi.
async fn import_api(State(gw): State<Gateway>, body: Bytes) -> R {
    let a = gw.http_apis.import(None, definition_of(&body)?).await?;
    Ok(reply(StatusCode::CREATED, render_api(&gw, &a)))
}

/// ReimportApi.
async fn reimport_api(State(gw): State<Gateway>, Path(id): Path<String>, body: Bytes) -> R {
    let a = gw
        .http_apis
        .import(Some(&id), definition_of(&body)?)
        .await?;
    Ok(reply(StatusCode::CREATED, render_api(&gw, &a)))
}

/// DeleteCorsConfiguration.
async fn delete_cors(State(gw): State<Gateway>, Path(id): Path<String>) -> R {
    gw.http_apis.update_api(&id, None, None, Some(None)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The `corsConfiguration` of a CreateApi/UpdateApi body: absent, or `Some(None)` for null.
fn cors_of(v: &Value) -> Result<Option<Option<nimbus_core::cors::Cors>>, GwError> {
    match v.get("corsConfiguration") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(c) => nimbus_core::cors::Cors::from_wire(c)
            .map(|c| Some(Some(c)))
            .map_err(|e| {
                GwError(ApiError::BadRequest(format!(
                    "Invalid corsConfiguration: {e}"
                )))
            }),
    }
}

async fn get_route(State(gw): State<Gateway>, Path((id, rid)): Path<(String, String)>) -> R {
    let a = gw.http_apis.get(&id)?;
    let r = a
        .routes
        .get(&rid)
        .ok_or_else(|| not_found_in("Route", &rid))?;
    Ok(reply(StatusCode::OK, render_route(r)))
}

async fn update_route(
    State(gw): State<Gateway>,
    Path((id, rid)): Path<(String, String)>,
    body: Bytes,
) -> R {
    let v = input(&body, UPDATE_ROUTE)?;
    let r = gw
        .http_apis
        .update_route(
            &id,
            &rid,
            s(&v, "routeKey"),
            s(&v, "target"),
            route_auth(&v),
        )
        .await?;
    Ok(reply(StatusCode::OK, render_route(&r)))
}

async fn delete_route(State(gw): State<Gateway>, Path((id, rid)): Path<(String, String)>) -> R {
    gw.http_apis.delete_route(&id, &rid).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_integration(State(gw): State<Gateway>, Path((id, iid)): Path<(String, String)>) -> R {
    let a = gw.http_apis.get(&id)?;
    let i = a
        .integrations
        .get(&iid)
        .ok_or_else(|| not_found_in("Integration", &iid))?;
    Ok(reply(StatusCode::OK, render_integration(i)))
}

async fn update_integration(
    State(gw): State<Gateway>,
    Path((id, iid)): Path<(String, String)>,
    body: Bytes,
) -> R {
    let v = input(&body, UPDATE_INTEGRATION)?;
    let i = gw
        .http_apis
        .update_integration(
            &id,
            &iid,
            IntegrationInput {
                integration_type: None,
                integration_uri: s(&v, "integrationUri"),
                integration_method: s(&v, "integrationMethod"),
                payload_format_version: s(&v, "payloadFormatVersion"),
                timeout_ms: v.get("timeoutInMillis").and_then(Value::as_i64),
                description: s(&v, "description"),
            },
        )
        .await?;
    Ok(reply(StatusCode::OK, render_integration(&i)))
}

async fn delete_integration(
    State(gw): State<Gateway>,
    Path((id, iid)): Path<(String, String)>,
) -> R {
    gw.http_apis.delete_integration(&id, &iid).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_stage(State(gw): State<Gateway>, Path((id, name)): Path<(String, String)>) -> R {
    let a = gw.http_apis.get(&id)?;
    let st = a
        .stages
        .get(&name)
        .ok_or_else(|| not_found_in("stage", &name))?;
    Ok(reply(StatusCode::OK, render_stage(st)))
}

async fn update_stage(
    State(gw): State<Gateway>,
    Path((id, name)): Path<(String, String)>,
    body: Bytes,
) -> R {
    let v = input(&body, UPDATE_STAGE)?;
    let vars = v
        .get("stageVariables")
        .map(|_| strings(&v, "stageVariables"));
    let st = gw
        .http_apis
        .update_stage(
            &id,
            &name,
            v.get("autoDeploy").and_then(Value::as_bool),
            s(&v, "deploymentId"),
            vars,
            s(&v, "description"),
        )
        .await?;
    let (rate, burst) = throttling_of(&v);
    let st = if rate.is_some() || burst.is_some() {
        gw.http_apis.set_throttling(&id, &name, rate, burst).await?
    } else {
        st
    };
    let st = apply_route_settings(&gw, &id, st, &v).await?;
    Ok(reply(StatusCode::OK, render_stage(&st)))
}

async fn delete_stage(State(gw): State<Gateway>, Path((id, name)): Path<(String, String)>) -> R {
    gw.http_apis.delete_stage(&id, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn render_deployment(d: &crate::http_apis::Deployment) -> Value {
    let mut v = json!({
        "deploymentId": d.id,
        "deploymentStatus": "DEPLOYED",
        "createdDate": d.created,
        "autoDeployed": false,
    });
    if let Some(desc) = &d.description {
        v["description"] = json!(desc);
    }
    v
}

async fn get_deployments(State(gw): State<Gateway>, Path(id): Path<String>) -> R {
    let a = gw.http_apis.get(&id)?;
    let items: Vec<Value> = a.deployments.values().map(render_deployment).collect();
    Ok(reply(StatusCode::OK, json!({ "items": items })))
}

async fn get_deployment(State(gw): State<Gateway>, Path((id, did)): Path<(String, String)>) -> R {
    let a = gw.http_apis.get(&id)?;
    let d = a
        .deployments
        .get(&did)
        .ok_or_else(|| not_found_in("Deployment", &did))?;
    Ok(reply(StatusCode::OK, render_deployment(d)))
}

async fn delete_deployment(
    State(gw): State<Gateway>,
    Path((id, did)): Path<(String, String)>,
) -> R {
    gw.http_apis.delete_deployment(&id, &did).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The control-plane routes of `apigatewayv2` under `/v2/apis`: APIs (create, import, reimport),
/// integrations, routes, authorizers, stages with their route settings, and deployments.
pub fn routes() -> Router<Gateway> {
    Router::new()
        .route("/v2/apis", post(create_api).get(get_apis).put(import_api))
        .route(
            "/v2/apis/{id}",
            get(get_api)
                .delete(delete_api)
                .patch(update_api)
                .put(reimport_api),
        )
        .route("/v2/apis/{id}/cors", axum::routing::delete(delete_cors))
        .route(
            "/v2/apis/{id}/integrations",
            post(create_integration).get(get_integrations),
        )
        .route(
            "/v2/apis/{id}/integrations/{iid}",
            get(get_integration)
                .patch(update_integration)
                .delete(delete_integration),
        )
        .route("/v2/apis/{id}/routes", post(create_route).get(get_routes))
        .route(
            "/v2/apis/{id}/authorizers",
            post(create_authorizer).get(get_authorizers),
        )
        .route(
            "/v2/apis/{id}/authorizers/{aid}",
            get(get_authorizer)
                .patch(update_authorizer)
                .delete(delete_authorizer),
        )
        .route(
            "/v2/apis/{id}/routes/{rid}",
            get(get_route).patch(update_route).delete(delete_route),
        )
        .route("/v2/apis/{id}/stages", post(create_stage).get(get_stages))
        .route(
            "/v2/apis/{id}/stages/{name}",
            get(get_stage).patch(update_stage).delete(delete_stage),
        )
        .route(
            "/v2/apis/{id}/stages/{name}/routesettings/{key}",
            axum::routing::delete(delete_route_settings),
        )
        .route(
            "/v2/apis/{id}/deployments",
            post(create_deployment).get(get_deployments),
        )
        .route(
            "/v2/apis/{id}/deployments/{did}",
            get(get_deployment).delete(delete_deployment),
        )
}

use crate::endpoint::not_found;

/// Serves a request on an HTTP API's stage: CORS first when the API has a configuration.
pub(crate) async fn serve(
    gw: &Gateway,
    id: &str,
    stage: &str,
    path: &str,
    req: Request,
) -> Response {
    let Some(cors) = gw.http_apis.cors(id) else {
        return not_found();
    };
    let Some(cors) = cors else {
        return serve_http_api(gw, id, stage, path, req).await;
    };
    // With a CORS configuration the gateway answers preflights itself and owns the CORS headers.
    if let Some(r) =
        crate::cors_headers::preflight(&cors, req.method(), req.headers(), StatusCode::NO_CONTENT)
    {
        return r;
    }
    let headers = req.headers().clone();
    let mut resp = serve_http_api(gw, id, stage, path, req).await;
    crate::cors_headers::decorate(&cors, &headers, &mut resp);
    resp
}

/// What an HTTP API answers instead of the integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HttpApiError {
    /// No such stage or route (404).
    NotFound,
    /// The stage's or route's bucket is empty (429).
    Throttled,
    /// The route has no usable integration, or the invocation failed (500).
    Internal,
    /// The body is over 10 MB (413).
    TooLarge,
    /// The authorizer's refusal.
    Refused(AuthRefusal),
    /// The function did not answer within the integration's timeout (504).
    Timeout,
}

/// How an HTTP API's authorizer refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthRefusal {
    Unauthorized,
    Forbidden,
    Failed,
}

impl HttpApiError {
    /// API Gateway's answer for it.
    fn respond(self) -> Response {
        use crate::authorizer::Outcome;
        let refusal = |o: Outcome| o.http_refusal().unwrap_or_else(not_found);
        match self {
            HttpApiError::NotFound => not_found(),
            HttpApiError::Throttled => crate::throttle::too_many_requests(),
            HttpApiError::Internal => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"message": "Internal Server Error"}),
            ),
            HttpApiError::TooLarge => reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"message": "Request Entity Too Large"}),
            ),
            HttpApiError::Refused(AuthRefusal::Unauthorized) => refusal(Outcome::Unauthorized),
            HttpApiError::Refused(AuthRefusal::Forbidden) => {
                refusal(Outcome::Denied { explicit: false })
            }
            HttpApiError::Refused(AuthRefusal::Failed) => refusal(Outcome::Failure),
            HttpApiError::Timeout => reply(
                StatusCode::GATEWAY_TIMEOUT,
                json!({"message": "Service Unavailable"}),
            ),
        }
    }
}

async fn serve_http_api(gw: &Gateway, id: &str, stage: &str, path: &str, req: Request) -> Response {
    let Some(served) = gw.http_apis.served(id, stage) else {
        return not_found();
    };
    // Every answer of the stage carries the request's id, failures too.
    let request_id = uuid::Uuid::new_v4().to_string();
    let mut resp = http_pipeline(gw, &served, path, &request_id, req)
        .await
        .unwrap_or_else(HttpApiError::respond);
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("apigw-requestid", v);
    }
    resp
}

/// An HTTP API stage's pipeline, in API Gateway's order: match the route, throttle, find the
/// integration, read the body, build the event, authorize, integrate (only an authorized
/// request reaches an integration, an upstream as much as a function). Each step passes the
/// request on or stops it with the error API Gateway answers.
async fn http_pipeline(
    gw: &Gateway,
    served: &crate::http_apis::Served,
    path: &str,
    request_id: &str,
    req: Request,
) -> Result<Response, HttpApiError> {
    let (api, st, routes, integrations) = served;
    let (parts, body) = req.into_parts();
    let (route, params) = crate::http_apis::match_route(routes.iter(), parts.method.as_str(), path)
        .ok_or(HttpApiError::NotFound)?;
    throttle_route(gw, api, st, &route)?;
    let mut integration = route
        .target
        .as_deref()
        .and_then(|t| t.strip_prefix("integrations/"))
        .and_then(|i| integrations.get(i))
        .cloned()
        .ok_or(HttpApiError::Internal)?;
    integration.integration_uri = integration
        .integration_uri
        .map(|u| with_stage_variables(&u, &st.stage_variables));
    let body = axum::body::to_bytes(Body::new(body), 10 * 1024 * 1024)
        .await
        .map_err(|_| HttpApiError::TooLarge)?;
    let host = parts
        .headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(':')
        .next()
        .unwrap_or("")
        .to_string();
    let info = RequestInfo {
        method: &parts.method,
        path,
        raw_query: parts.uri.query().unwrap_or(""),
        source_ip: "127.0.0.1".into(),
        request_id: request_id.to_string(),
        account_id: gw.settings.account_id.clone(),
        api_id: api.id.clone(),
        domain_name: if host.is_empty() {
            format!("{}.execute-api.localhost", api.id)
        } else {
            host
        },
        route_key: route.route_key.clone(),
        stage: st.name.clone(),
    };
    let v1 = integration.payload_format_version == "1.0";
    let build = |body: &Bytes, v1: bool| {
        let mut e = if v1 {
            event_v1(
                &info,
                &route,
                &parts.headers,
                &parts.method,
                body,
                None,
                Some("1.0"),
            )
        } else {
            event_v2(&info, &parts.headers, body)
        };
        if !params.is_empty() {
            e["pathParameters"] = json!(params);
        }
        if !st.stage_variables.is_empty() {
            e["stageVariables"] = json!(st.stage_variables);
        }
        e
    };
    // A Lambda authorizer decides first; its context reaches the function as
    // `requestContext.authorizer.lambda`.
    let mut authorized = None;
    if let Some(aid) = &route.authorizer_id {
        let authorizer = api
            .authorizers
            .get(aid)
            .ok_or(HttpApiError::Refused(AuthRefusal::Failed))?;
        let auth_event = build(&Bytes::new(), authorizer.payload_format_version == "1.0");
        let query = crate::apigw_rest::query_multi(info.raw_query);
        let identity = crate::authorizer::http_identity(
            &authorizer.identity_source,
            &parts.headers,
            &query,
            &auth_event["requestContext"],
            &st.stage_variables,
        );
        let route_arn = format!(
            "arn:aws:execute-api:{}:{}:{}/{}/{}/{}",
            gw.settings.region,
            gw.settings.account_id,
            api.id,
            st.name,
            parts.method.as_str(),
            path.trim_start_matches('/')
        );
        let outcome = crate::authorizer::authorize_http(
            gw,
            authorizer,
            crate::authorizer::HttpRequest {
                api_id: &api.id,
                event: auth_event,
                identity,
                route_arn,
            },
        )
        .await;
        match outcome {
            crate::authorizer::Outcome::Allow {
                principal_id,
                context,
            } => {
                let mut a = json!({ "lambda": context });
                if !principal_id.is_empty() {
                    a["principalId"] = json!(principal_id);
                }
                authorized = Some(a);
            }
            crate::authorizer::Outcome::Unauthorized => {
                return Err(HttpApiError::Refused(AuthRefusal::Unauthorized));
            }
            crate::authorizer::Outcome::Denied { .. } => {
                return Err(HttpApiError::Refused(AuthRefusal::Forbidden));
            }
            crate::authorizer::Outcome::Failure => {
                return Err(HttpApiError::Refused(AuthRefusal::Failed));
            }
        }
    }
    // Only an authorized request reaches an integration, an upstream as much as a function.
    if integration.integration_type == "HTTP_PROXY" {
        let timeout =
            std::time::Duration::from_millis(u64::from(integration.timeout_ms.min(30_000)));
        // `integrationMethod` ANY (or none) passes the request's method on; another is used.
        let method = integration
            .integration_method
            .as_deref()
            .filter(|m| !m.eq_ignore_ascii_case("ANY"))
            .and_then(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
            .unwrap_or_else(|| parts.method.clone());
        return Ok(crate::http_proxy::forward(
            integration.integration_uri.as_deref().unwrap_or(""),
            &method,
            &params,
            parts.uri.query().unwrap_or(""),
            &parts.headers,
            body,
            timeout,
        )
        .await);
    }
    let target = integration
        .integration_uri
        .as_deref()
        .and_then(function_of)
        .ok_or(HttpApiError::Internal)?;
    // The event is built only for a function (an upstream gets the request as it came).
    let mut event = build(&body, v1);
    if let Some(a) = authorized {
        event["requestContext"]["authorizer"] = a;
    }
    let caller = crate::caller(gw, &api.id, &st.name, parts.method.as_str(), path);
    let call = gw
        .invoke
        .invoke(InvokeInput::sync(target, event.to_string(), caller));
    let limit = std::time::Duration::from_millis(u64::from(integration.timeout_ms.min(30_000)));
    let result = tokio::time::timeout(limit, call)
        .await
        .map_err(|_| HttpApiError::Timeout)?;
    match result {
        Err(CoreError::TooManyRequests { .. }) => Err(HttpApiError::Throttled),
        Err(_) => Err(HttpApiError::Internal),
        Ok(r) if r.function_error => Err(HttpApiError::Internal),
        Ok(r) if v1 => Ok(response_v1(&r.payload, true)),
        Ok(r) => Ok(response_v2(&r.payload, false)),
    }
}

/// The route's own throttling, else the stage's default, each route with its own bucket.
fn throttle_route(
    gw: &Gateway,
    api: &HttpApi,
    st: &Stage,
    route: &Route,
) -> Result<(), HttpApiError> {
    // Each limit the route sets overrides the stage's default for it (a route that sets only
    // a burst keeps the stage's rate).
    let (route_rate, route_burst) = st
        .route_throttling
        .get(&route.route_key)
        .copied()
        .unwrap_or((None, None));
    let (rate, burst) = (
        route_rate.or(st.throttling_rate),
        route_burst.or(st.throttling_burst),
    );
    if let Some(rate) = rate
        && !gw.throttle.admit(
            &format!("{}/{}/{}", api.id, st.name, route.route_key),
            rate,
            burst,
        )
    {
        return Err(HttpApiError::Throttled);
    }
    Ok(())
}

/// An integration URI with its `${stageVariables.name}` references replaced by the stage's
/// values (a missing variable becomes empty), as API Gateway resolves them per stage.
pub(crate) fn with_stage_variables(
    uri: &str,
    vars: &std::collections::BTreeMap<String, String>,
) -> String {
    let mut out = String::with_capacity(uri.len());
    let mut rest = uri;
    while let Some(i) = rest.find("${stageVariables.") {
        out.push_str(&rest[..i]);
        let after = &rest[i + "${stageVariables.".len()..];
        match after.find('}') {
            Some(end) => {
                out.push_str(vars.get(&after[..end]).map(String::as_str).unwrap_or(""));
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The function an AWS_PROXY integration URI names: a function ARN (optionally qualified) or
/// the `arn:aws:apigateway:<region>:lambda:path/2015-03-31/functions/<arn>/invocations` form.
pub(crate) fn function_of(uri: &str) -> Option<nimbus_core::names::FunctionRef> {
    let arn = match uri.split_once("/functions/") {
        Some((_, rest)) => rest.strip_suffix("/invocations").unwrap_or(rest),
        None => uri,
    };
    parse_function_ref(arn).ok()
}

/// The payload format 1.0 event (REST-API style, with multi-value headers and query). `binary`
/// says whether the body goes base64-encoded (a REST API decides by its `binaryMediaTypes`);
/// `None` encodes bodies that are not UTF-8, as HTTP APIs do.
pub(crate) fn event_v1(
    info: &RequestInfo<'_>,
    route: &Route,
    headers: &HeaderMap,
    method: &Method,
    body: &Bytes,
    binary: Option<bool>,
    version: Option<&str>,
) -> Value {
    let mut single = BTreeMap::new();
    let mut multi: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in headers {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        single.insert(k.as_str().to_string(), v.clone());
        multi.entry(k.as_str().to_string()).or_default().push(v);
    }
    let mut q_single = BTreeMap::new();
    let mut q_multi: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for kv in info.raw_query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let dec = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        q_single.insert(dec(k), dec(v));
        q_multi.entry(dec(k)).or_default().push(dec(v));
    }
    let resource = route
        .route_key
        .split_once(' ')
        .map(|(_, p)| p.to_string())
        .unwrap_or_else(|| info.path.to_string());
    let encode = binary.unwrap_or_else(|| std::str::from_utf8(body).is_err());
    let (body, is_base64_encoded) = if body.is_empty() {
        (None, false)
    } else if encode {
        (
            Some(base64::engine::general_purpose::STANDARD.encode(body)),
            true,
        )
    } else {
        (Some(String::from_utf8_lossy(body).into_owned()), false)
    };
    let now = chrono::Utc::now();
    let event = ProxyRequestV1 {
        version: version.map(str::to_string),
        resource: resource.clone(),
        path: info.path.to_string(),
        http_method: method.as_str().to_string(),
        headers: Some(single),
        multi_value_headers: Some(multi),
        query_string_parameters: (!q_single.is_empty()).then_some(q_single),
        multi_value_query_string_parameters: (!q_multi.is_empty()).then_some(q_multi),
        request_context: ProxyRequestContextV1 {
            account_id: info.account_id.clone(),
            api_id: info.api_id.clone(),
            authorizer: None,
            domain_name: info.domain_name.clone(),
            domain_prefix: info.domain_name.split('.').next().unwrap_or("").to_string(),
            extended_request_id: info.request_id.clone(),
            http_method: method.as_str().to_string(),
            identity: ProxyIdentityV1 {
                source_ip: info.source_ip.clone(),
                user_agent: headers
                    .get("user-agent")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
                ..ProxyIdentityV1::default()
            },
            path: info.path.to_string(),
            protocol: "HTTP/1.1".into(),
            request_id: info.request_id.clone(),
            request_time: now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
            request_time_epoch: now.timestamp_millis(),
            resource_id: Some(None),
            resource_path: resource,
            stage: info.stage.clone(),
        },
        path_parameters: None,
        stage_variables: None,
        body,
        is_base64_encoded,
    };
    // Route parameters, stage variables and the authorizer's answer are added to this value
    // by the caller; a struct of strings and maps always converts.
    serde_json::to_value(&event).unwrap_or(Value::Null)
}

/// Payload format 1.0 responses: `statusCode`, `headers`, `multiValueHeaders`, `body`,
/// `isBase64Encoded`; anything else is a 500 as API Gateway returns it. A base64 body is decoded
/// when `decode_binary` (a REST API only does so when the client accepts one of its
/// `binaryMediaTypes`; otherwise the client gets the base64 text).
pub(crate) fn response_v1(payload: &[u8], decode_binary: bool) -> Response {
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(payload) else {
        return reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"message": "Internal Server Error"}),
        );
    };
    let Some(status) = obj
        .get("statusCode")
        .and_then(Value::as_u64)
        .and_then(|s| StatusCode::from_u16(s as u16).ok())
    else {
        return reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"message": "Internal Server Error"}),
        );
    };
    let body = match obj.get("body") {
        Some(Value::String(s))
            if decode_binary
                && obj.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) =>
        {
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .unwrap_or_default()
        }
        Some(Value::String(s)) => s.clone().into_bytes(),
        None | Some(Value::Null) => Vec::new(),
        Some(other) => other.to_string().into_bytes(),
    };
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    if let Some(Value::Object(m)) = obj.get("multiValueHeaders") {
        for (k, vs) in m {
            for v in vs
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if let (Ok(n), Ok(v)) = (
                    axum::http::HeaderName::try_from(k.as_str()),
                    HeaderValue::from_str(v),
                ) {
                    h.append(n, v);
                }
            }
        }
    }
    if let Some(Value::Object(m)) = obj.get("headers") {
        for (k, v) in m {
            let v = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            if let (Ok(n), Ok(v)) = (
                axum::http::HeaderName::try_from(k.as_str()),
                HeaderValue::from_str(&v),
            ) {
                h.insert(n, v);
            }
        }
    }
    if !h.contains_key(axum::http::header::CONTENT_TYPE) {
        h.insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    resp
}

#[cfg(test)]
mod stage_variable_tests {
    use super::with_stage_variables;

    #[test]
    fn stage_variables_resolve_in_integration_uris() {
        let vars = [("alias".to_string(), "live".to_string())]
            .into_iter()
            .collect();
        assert_eq!(
            with_stage_variables(
                "arn:aws:lambda:us-east-1:1:function:f:${stageVariables.alias}/invocations",
                &vars
            ),
            "arn:aws:lambda:us-east-1:1:function:f:live/invocations"
        );
        assert_eq!(
            with_stage_variables("x${stageVariables.none}y", &vars),
            "xy"
        );
        assert_eq!(
            with_stage_variables("x${stageVariables.open", &vars),
            "x${stageVariables.open"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(m: Members, body: Value) -> Result<(), String> {
        input(&Bytes::from(body.to_string()), m)
            .map(drop)
            .map_err(|GwError(e)| e.to_string())
    }

    #[test]
    fn bodies_are_checked_against_the_operations_members() {
        assert!(check(CREATE_API, json!({"name": "a", "protocolType": "HTTP"})).is_ok());
        // Members AWS has and Nimbus does not implement pass only at their defaults.
        assert!(
            check(
                CREATE_API,
                json!({"name": "a", "protocolType": "HTTP", "disableExecuteApiEndpoint": false,
                   "routeSelectionExpression": "$request.method $request.path"})
            )
            .is_ok()
        );
        let e = check(
            CREATE_API,
            json!({"name": "a", "credentialsArn": "arn:aws:iam::1:role/r"}),
        )
        .expect_err("credentialsArn");
        assert!(
            e.contains("does not support 'credentialsArn' on CreateApi"),
            "{e}"
        );
        assert!(
            check(CREATE_API, json!({"name": "a", "version": "v1"})).is_ok(),
            "a label"
        );
        let e = check(
            CREATE_API,
            json!({"name": "a", "disableExecuteApiEndpoint": true}),
        )
        .expect_err("disable");
        assert!(e.contains("disableExecuteApiEndpoint"), "{e}");
        // Members AWS does not have are refused.
        let e = check(CREATE_API, json!({"name": "a", "bogus": 1})).expect_err("bogus");
        assert!(e.contains("CreateApi has no member 'bogus'"), "{e}");
        assert!(check(UPDATE_STAGE, json!({"stageName": "x"})).is_err());
        assert!(check(CREATE_STAGE, json!({"stageName": "x", "tags": {"a": "b"}})).is_ok());
        assert!(
            check(
                CREATE_STAGE,
                json!({"stageName": "x", "accessLogSettings": {"destinationArn": "d"}})
            )
            .is_err()
        );
        assert!(check(CREATE_API, json!([1, 2])).is_err());
    }
}
