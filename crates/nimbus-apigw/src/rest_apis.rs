//! API Gateway REST APIs (`apigateway`): resources, methods, integrations with their request and
//! response templates, method and integration responses, deployments (snapshots of the resource
//! tree) and stages. Each API is one record (kind `rest-api`).

use std::collections::BTreeMap;

use nimbus_store::Store;
use serde::{Deserialize, Serialize};

use crate::http_apis::{AResult, ApiError};
use nimbus_core::error::Result;
use nimbus_core::records::RecordMap;

const KIND: &str = "rest-api";

/// An integration response (`IntegrationResponse`): how an `AWS`, `HTTP` or `MOCK` integration's
/// result becomes the method's response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct IntegrationResponse {
    /// `statusCode`: the method response it answers with; the key a `MOCK` result's `statusCode`
    /// selects.
    pub status_code: String,
    /// `selectionPattern`: a regular expression matched against the whole of a function error's
    /// `errorMessage` or an `HTTP` upstream's status code; absent or empty marks the default
    /// response.
    pub selection_pattern: Option<String>,
    /// `responseParameters`: `method.response.header.<name>` ← a static `'value'` (other sources
    /// are not applied).
    pub response_parameters: BTreeMap<String, String>,
    /// `responseTemplates`: VTL mapping templates by content type; `application/json` (else the
    /// first) renders the body.
    pub response_templates: BTreeMap<String, String>,
}

/// A method's integration (`Integration`): what the gateway calls for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Integration {
    /// `type`: `AWS_PROXY` and `AWS` (a Lambda function), `HTTP_PROXY` and `HTTP` (a URL), or
    /// `MOCK`.
    pub integration_type: String,
    /// `httpMethod`: the method an `HTTP` integration calls the upstream with (the request's own
    /// when absent); not used for functions.
    pub http_method: Option<String>,
    /// `uri`: a function ARN or its `arn:aws:apigateway:…/functions/<arn>/invocations` form, or the
    /// upstream URL (with `{name}` path parameters); required except for `MOCK`.
    pub uri: Option<String>,
    /// `requestTemplates`: VTL mapping templates by content type, rendering the integration request
    /// for `AWS`, `HTTP` and `MOCK`.
    pub request_templates: BTreeMap<String, String>,
    /// `requestParameters`: `integration.request.{path|querystring|header}.<name>` ← a method
    /// request parameter, `stageVariables.<name>`, `context.<name>` or a static `'value'` (`HTTP`
    /// only).
    pub request_parameters: BTreeMap<String, String>,
    /// `passthroughBehavior`: what a request whose content type has no template does:
    /// `WHEN_NO_MATCH` (the default) passes the body through, `WHEN_NO_TEMPLATES` only when there
    /// are no templates at all, `NEVER` answers 415.
    pub passthrough_behavior: String,
    /// `timeoutInMillis`: 50–29,000 ms (default 29,000), after which the call is abandoned.
    pub timeout_ms: u32,
    /// The integration responses, by status code.
    pub responses: BTreeMap<String, IntegrationResponse>,
}

/// A method response (`MethodResponse`): a status code the method may answer with, and what it
/// declares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct MethodResponse {
    /// `statusCode`: the HTTP status, as a string (`200`).
    pub status_code: String,
    /// `responseParameters`: `method.response.header.<name>` → whether it is required; declared and
    /// returned, not enforced.
    pub response_parameters: BTreeMap<String, bool>,
    /// `responseModels`: content type → model name; declared and returned, not enforced.
    pub response_models: BTreeMap<String, String>,
}

/// A method (`Method`) of a resource: its authorization, request checks, responses and integration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Method {
    /// `httpMethod`: `GET`, `POST`, `PUT`, `DELETE`, `PATCH`, `HEAD`, `OPTIONS` or `ANY`, upper
    /// case.
    pub http_method: String,
    /// `authorizationType`: `NONE` or `CUSTOM` (a Lambda authorizer); `AWS_IAM` and
    /// `COGNITO_USER_POOLS` are refused.
    pub authorization_type: String,
    /// With `authorization_type` CUSTOM: the Lambda authorizer.
    #[serde(default)]
    pub authorizer_id: Option<String>,
    /// The request validator that checks this method's requests.
    #[serde(default)]
    pub request_validator_id: Option<String>,
    /// Content type → model name, for body validation.
    #[serde(default)]
    pub request_models: BTreeMap<String, String>,
    /// `apiKeyRequired`: requests need an `x-api-key` of a usage plan covering the stage (403
    /// without).
    pub api_key_required: bool,
    /// `requestParameters`: `method.request.{querystring|header|path}.<name>` → whether it is
    /// required (checked by a request validator that validates parameters).
    pub request_parameters: BTreeMap<String, bool>,
    /// The method responses, by status code.
    pub responses: BTreeMap<String, MethodResponse>,
    /// The integration; a method without one answers 500 (`API_CONFIGURATION_ERROR`).
    pub integration: Option<Integration>,
}

/// A resource (`Resource`): one node of the API's path tree, with its methods.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    /// The resource's id (10 lowercase alphanumerics).
    pub id: String,
    /// `parentId`; `None` only for the root resource `/`.
    pub parent_id: Option<String>,
    /// `pathPart`: this resource's one segment: a literal, `{name}`, or a greedy `{name+}` (which
    /// has no children); empty for the root.
    pub path_part: String,
    /// `path`: the full path from the root (`/items/{id}`), kept up to date when a part is renamed.
    pub path: String,
    /// The methods, by upper-case HTTP method.
    pub methods: BTreeMap<String, Method>,
}

/// A deployment as the API's record holds it. The snapshot of resources it serves is a record
/// of its own (kind `rest-deployment`, key `<api>/<deployment>`), written once: the API's record
/// does not grow with its deployment history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// The deployment's id (10 lowercase alphanumerics).
    pub id: String,
    /// `createdDate`: seconds since the Unix epoch.
    pub created: i64,
    /// `description`.
    pub description: Option<String>,
    /// The snapshot, in records written before snapshots were records of their own; moved out
    /// when the store is opened ([`RestApis::migrate`]).
    #[serde(default, rename = "resources", skip_serializing)]
    legacy_resources: Option<std::sync::Arc<Vec<Resource>>>,
}

/// Record kind of deployment snapshots.
const SNAPSHOT_KIND: &str = "rest-deployment";

fn snapshot_key(api: &str, deployment: &str) -> String {
    format!("{api}/{deployment}")
}

/// A stage's settings for one method (`~1items/GET`) or for all of them (`*/*`).
/// Caching settings are recorded and reported, not applied: Nimbus has no response cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct MethodSetting {
    /// `throttling/rateLimit`: requests per second for the method (or, under `*/*`, every method
    /// without its own); no throttling when absent.
    pub throttling_rate: Option<f64>,
    /// `throttling/burstLimit`: the bucket's size, in requests; the rate rounded up when absent.
    pub throttling_burst: Option<u32>,
    /// `metrics/enabled`: recorded only.
    pub metrics_enabled: bool,
    /// `logging/loglevel`: `OFF`, `ERROR` or `INFO`; recorded only.
    pub logging_level: Option<String>,
    /// `logging/dataTrace`: recorded only.
    pub data_trace: bool,
    /// `caching/enabled`: recorded only.
    pub caching_enabled: bool,
    /// `caching/ttlInSeconds`: 0–3600; recorded only.
    pub cache_ttl_seconds: Option<u32>,
    /// `caching/dataEncrypted`: recorded only.
    pub cache_data_encrypted: bool,
    /// `caching/requireAuthorizationForCacheControl`: recorded only.
    pub require_authorization_for_cache_control: Option<bool>,
    /// `caching/unauthorizedCacheControlHeaderStrategy`: `FAIL_WITH_403`,
    /// `SUCCEED_WITH_RESPONSE_HEADER` or `SUCCEED_WITHOUT_RESPONSE_HEADER`; recorded only.
    pub unauthorized_cache_control_header_strategy: Option<String>,
}

/// Stage settings that are recorded and reported as API Gateway does; access logs and a cache
/// cluster are not provided (requests are logged by Nimbus itself).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct StageOptions {
    /// `cacheClusterEnabled`: reported, with `cacheClusterStatus` `AVAILABLE` when set.
    pub cache_cluster_enabled: bool,
    /// `cacheClusterSize`: one of API Gateway's sizes in GB (`0.5` … `237`).
    pub cache_cluster_size: Option<String>,
    /// `accessLogSettings.destinationArn`.
    pub access_log_destination_arn: Option<String>,
    /// `accessLogSettings.format`.
    pub access_log_format: Option<String>,
    /// `clientCertificateId`.
    pub client_certificate_id: Option<String>,
    /// `documentationVersion`.
    pub documentation_version: Option<String>,
}

/// A REST API stage (`Stage`): a name in the invoke URL, serving one deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// `stageName`: the first path segment of the invoke URL.
    pub name: String,
    /// `deploymentId`: the deployment served; always one of the API's.
    pub deployment_id: String,
    /// `description`.
    pub description: Option<String>,
    /// `variables`: stage variables, for integration URIs, mapping templates and authorizers.
    pub variables: BTreeMap<String, String>,
    /// `createdDate`: seconds since the Unix epoch.
    pub created: i64,
    /// `lastUpdatedDate`: seconds since the Unix epoch.
    pub updated: i64,
    /// `methodSettings`, keyed `<escaped resource path>/<METHOD>` (`~1items/GET`) or `*/*`.
    #[serde(default)]
    pub method_settings: BTreeMap<String, MethodSetting>,
    /// `tracingEnabled`: recorded only (no X-Ray).
    #[serde(default)]
    pub tracing_enabled: bool,
    /// Settings recorded and reported only: cache cluster, access logs, certificate, documentation.
    #[serde(default)]
    pub options: StageOptions,
}

impl Stage {
    /// The throttling (rate, burst) for a method of a resource: its own setting, else the
    /// stage-wide `*/*` one.
    pub fn throttling(&self, resource_path: &str, method: &str) -> Option<(f64, Option<u32>)> {
        let own = format!("{}/{method}", escape_pointer(resource_path));
        [own.as_str(), "*/*"].iter().find_map(|k| {
            let s = self.method_settings.get(*k)?;
            s.throttling_rate.map(|r| (r, s.throttling_burst))
        })
    }
}

/// One operation of an API Gateway `patchOperations` list.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PatchOp {
    /// `op`: `add`, `remove` or `replace` (`copy` and `move` are refused).
    pub op: String,
    /// `path`: a JSON pointer into the resource (`/name`, `/variables/stageVar`), `/` escaped as
    /// `~1`.
    pub path: String,
    /// `value`: always a string (`"true"`, `"100"`); required for `add` and `replace`.
    pub value: Option<String>,
}

/// A JSON-pointer segment as API Gateway writes it: `~` as `~0`, `/` as `~1`.
pub fn escape_pointer(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

fn unescape_pointer(s: &str) -> String {
    s.replace("~1", "/").replace("~0", "~")
}

fn invalid_patch(op: &PatchOp, allowed: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "Invalid patch path '{}' specified for op '{}'. Must be one of: [{allowed}]",
        op.path, op.op
    ))
}

fn patch_value(op: &PatchOp) -> AResult<&str> {
    op.value.as_deref().ok_or_else(|| {
        ApiError::BadRequest(format!(
            "Invalid null or empty value in patch operation '{}' for path '{}'",
            op.op, op.path
        ))
    })
}

fn patch_bool(op: &PatchOp) -> AResult<bool> {
    match patch_value(op)? {
        "true" => Ok(true),
        "false" => Ok(false),
        v => Err(ApiError::BadRequest(format!(
            "Invalid value '{v}' for {}: must be true or false",
            op.path
        ))),
    }
}

/// A Lambda authorizer (`TOKEN` or `REQUEST`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Authorizer {
    /// The authorizer's id (6 lowercase alphanumerics).
    pub id: String,
    /// `name`; unique within the API.
    pub name: String,
    /// `type`: `TOKEN` (one header's value as `authorizationToken`) or `REQUEST` (the request's
    /// parameters); `COGNITO_USER_POOLS` is refused.
    pub authorizer_type: String,
    /// `authorizerUri`: the function to call, in any form an integration URI takes; required.
    pub authorizer_uri: Option<String>,
    /// `identitySource`: comma-separated `method.request.header.<name>`,
    /// `method.request.querystring.<name>`, `stageVariables.<name>` or `context.<name>`; a `TOKEN`
    /// authorizer's is one header.
    pub identity_source: Option<String>,
    /// `identityValidationExpression`: a regular expression the whole token must match (`TOKEN`
    /// only), else 401 without calling the function.
    pub identity_validation_expression: Option<String>,
    /// `authorizerResultTtlInSeconds`: 0–3600 (default 300); 0 turns caching off.
    pub ttl_seconds: u32,
}

/// What PutMethod carries.
#[derive(Debug, Clone, Default)]
pub struct MethodInput {
    /// `authorizationType`: `NONE` or `CUSTOM`; required.
    pub authorization_type: Option<String>,
    /// `authorizerId`: an authorizer of the API; required with `CUSTOM`, ignored otherwise.
    pub authorizer_id: Option<String>,
    /// `requestValidatorId`: a validator of the API.
    pub request_validator_id: Option<String>,
    /// `requestModels`: content type → model name (the API's or a built-in one).
    pub request_models: BTreeMap<String, String>,
    /// `apiKeyRequired`.
    pub api_key_required: bool,
    /// `requestParameters`: parameter expression → whether it is required.
    pub request_parameters: BTreeMap<String, bool>,
}

/// What CreateAuthorizer carries.
#[derive(Debug, Clone, Default)]
pub struct AuthorizerInput {
    /// `name`; required and unique within the API.
    pub name: Option<String>,
    /// `type`: `TOKEN` or `REQUEST`; required.
    pub authorizer_type: Option<String>,
    /// `authorizerUri`; required.
    pub authorizer_uri: Option<String>,
    /// `identitySource`; required for `TOKEN`, and for `REQUEST` when caching is on.
    pub identity_source: Option<String>,
    /// `identityValidationExpression` (`TOKEN`).
    pub identity_validation_expression: Option<String>,
    /// `authorizerResultTtlInSeconds`: 0–3600; 300 when absent.
    pub ttl_seconds: Option<i64>,
}

fn check_authorizer(a: &Authorizer) -> AResult<()> {
    match a.authorizer_type.as_str() {
        "TOKEN" | "REQUEST" => {}
        "COGNITO_USER_POOLS" => {
            return Err(ApiError::BadRequest(
                "Authorizers of type COGNITO_USER_POOLS are not supported by Nimbus yet; use TOKEN or REQUEST".into(),
            ));
        }
        other => {
            return Err(ApiError::BadRequest(format!(
                "Invalid authorizer type '{other}': must be TOKEN, REQUEST or COGNITO_USER_POOLS"
            )));
        }
    }
    if a.name.is_empty() {
        return Err(ApiError::BadRequest("Authorizer name is required".into()));
    }
    if a.authorizer_uri.is_none() {
        return Err(ApiError::BadRequest(
            "AuthorizerUri is required for authorizers of type TOKEN and REQUEST".into(),
        ));
    }
    if a.authorizer_type == "TOKEN"
        && !a
            .identity_source
            .as_deref()
            .is_some_and(|s| s.starts_with("method.request.header."))
    {
        return Err(ApiError::BadRequest(
            "A TOKEN authorizer needs an identitySource of the form method.request.header.<name>"
                .into(),
        ));
    }
    if let Some(e) = &a.identity_validation_expression
        && regex_lite::Regex::new(e).is_err()
    {
        return Err(ApiError::BadRequest(format!(
            "Invalid identityValidationExpression: {e}"
        )));
    }
    if a.ttl_seconds > 3600 {
        return Err(ApiError::BadRequest(
            "authorizerResultTtlInSeconds must be between 0 and 3600".into(),
        ));
    }
    // A cached result is keyed by the identity; without one, one caller's answer would be
    // everyone's.
    if a.authorizer_type == "REQUEST"
        && a.ttl_seconds > 0
        && a.identity_source
            .as_deref()
            .is_none_or(|s| s.trim().is_empty())
    {
        return Err(ApiError::BadRequest(
            "An identitySource is required for a REQUEST authorizer when authorizerResultTtlInSeconds is greater than 0 (caching is on)".into(),
        ));
    }
    Ok(())
}

/// A REST API (`RestApi`), as stored: one record holding its resource tree, stages, deployments
/// and settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestApi {
    /// The `restApiId` (10 lowercase alphanumerics): the host name's first label,
    /// `<restApiId>.execute-api.<host>`.
    pub id: String,
    /// `name`; required and not empty.
    pub name: String,
    /// `description`.
    pub description: Option<String>,
    /// `createdDate`: seconds since the Unix epoch.
    pub created: i64,
    /// `rootResourceId`: the id of the resource `/`, which cannot be deleted.
    pub root_id: String,
    /// `binaryMediaTypes`: media types (`image/png`, `image/*`, `*/*`) whose bodies reach proxy
    /// integrations base64-encoded.
    pub binary_media_types: Vec<String>,
    /// The resources as edited (the draft), by id; stages serve deployments' snapshots instead.
    pub resources: BTreeMap<String, Resource>,
    /// The deployments, by id (their snapshots are records of their own).
    pub deployments: BTreeMap<String, Deployment>,
    /// The stages, by name.
    pub stages: BTreeMap<String, Stage>,
    /// `tags`.
    pub tags: BTreeMap<String, String>,
    /// The Lambda authorizers, by id. Read live by deployed stages, not from the deployment.
    #[serde(default)]
    pub authorizers: BTreeMap<String, Authorizer>,
    /// Customised gateway responses, by response type (`DEFAULT_4XX`, `THROTTLED`, …).
    #[serde(default)]
    pub gateway_responses: BTreeMap<String, GatewayResponse>,
    /// Models by name (JSON schemas for request validation).
    #[serde(default)]
    pub models: BTreeMap<String, Model>,
    /// Request validators, by id.
    #[serde(default)]
    pub validators: BTreeMap<String, RequestValidator>,
}

/// A model: a JSON schema (draft 4) for a content type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// The model's id (6 lowercase alphanumerics).
    pub id: String,
    /// `name`: alphanumeric, unique within the API, and neither `Empty` nor `Error`; methods name
    /// models by it.
    pub name: String,
    /// `contentType`: the content type the model describes.
    pub content_type: String,
    /// `schema`: the JSON Schema (draft 4) as text; checked when the model is created.
    pub schema: String,
    /// `description`.
    pub description: Option<String>,
}

/// A request validator (`RequestValidator`): which checks a method that names it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestValidator {
    /// The validator's id (6 lowercase alphanumerics).
    pub id: String,
    /// `name`; may be empty.
    pub name: String,
    /// `validateRequestBody`: the body must match the method's model for its content type (400
    /// `Invalid request body` otherwise).
    pub validate_body: bool,
    /// `validateRequestParameters`: the method's required query strings and headers must be
    /// present.
    pub validate_parameters: bool,
}

/// What a request validator found wrong with a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Invalid {
    /// Required parameters that are missing (`querystring.q`, `header.x-id`).
    Parameters(Vec<String>),
    /// The body does not match the method's model for its content type.
    Body,
}

/// Runs the method's request validator, if it has one: required parameters (query strings and
/// headers; `header_names` are lower case), then the body against the method's model (by
/// content type, else `$default`; `Empty` validates nothing).
pub fn validate_request(
    api: &RestApi,
    method: &Method,
    query_names: &std::collections::BTreeSet<String>,
    header_names: &std::collections::BTreeSet<String>,
    content_type: &str,
    body: &[u8],
) -> std::result::Result<(), Invalid> {
    let Some(v) = method
        .request_validator_id
        .as_ref()
        .and_then(|id| api.validators.get(id))
    else {
        return Ok(());
    };
    if v.validate_parameters {
        let missing: Vec<String> = method
            .request_parameters
            .iter()
            .filter(|(_, required)| **required)
            .filter_map(|(name, _)| {
                let rest = name.strip_prefix("method.request.")?;
                let (kind, n) = rest.split_once('.')?;
                let present = match kind {
                    "querystring" | "multivaluequerystring" => query_names.contains(n),
                    "header" | "multivalueheader" => header_names.contains(&n.to_ascii_lowercase()),
                    _ => true,
                };
                (!present).then(|| n.to_string())
            })
            .collect();
        if !missing.is_empty() {
            return Err(Invalid::Parameters(missing));
        }
    }
    if v.validate_body {
        let model = method
            .request_models
            .get(content_type)
            .or_else(|| method.request_models.get("$default"));
        let Some(model) = model.and_then(|m| api.models.get(m)) else {
            return Ok(());
        };
        let Some(validator) = compiled(&model.schema) else {
            return Ok(());
        };
        let doc = if body.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(body).map_err(|_| Invalid::Body)?
        };
        if !validator.is_valid(&doc) {
            return Err(Invalid::Body);
        }
    }
    Ok(())
}

/// A model's schema, compiled once (by schema text) and reused by every request it validates.
fn compiled(schema: &str) -> Option<std::sync::Arc<jsonschema::Validator>> {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<jsonschema::Validator>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(v) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(schema) {
        return Some(v.clone());
    }
    let doc = serde_json::from_str::<serde_json::Value>(schema).ok()?;
    let v = Arc::new(jsonschema::draft4::new(&doc).ok()?);
    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
    if c.len() > 1_000 {
        c.clear();
    }
    c.insert(schema.to_string(), v.clone());
    Some(v)
}

/// The models every API has without creating them.
pub const BUILT_IN_MODELS: [&str; 2] = ["Empty", "Error"];

/// A customised gateway response (PutGatewayResponse).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatewayResponse {
    /// `responseType`: one of [`GATEWAY_RESPONSE_TYPES`]; `DEFAULT_4XX` and `DEFAULT_5XX` apply to
    /// every type of their class without its own.
    pub response_type: String,
    /// `statusCode`: the status to answer with instead of the error's own.
    pub status_code: Option<String>,
    /// `responseParameters`: `gatewayresponse.header.<name>` ← a static `'value'`.
    pub response_parameters: BTreeMap<String, String>,
    /// `responseTemplates`: by content type; `application/json` renders the body (with
    /// `$context.error.message` and friends).
    pub response_templates: BTreeMap<String, String>,
}

/// The gateway response types API Gateway defines.
pub const GATEWAY_RESPONSE_TYPES: &[&str] = &[
    "DEFAULT_4XX",
    "DEFAULT_5XX",
    "RESOURCE_NOT_FOUND",
    "UNAUTHORIZED",
    "INVALID_API_KEY",
    "API_CONFIGURATION_ERROR",
    "AUTHORIZER_FAILURE",
    "AUTHORIZER_CONFIGURATION_ERROR",
    "INVALID_SIGNATURE",
    "EXPIRED_TOKEN",
    "ACCESS_DENIED",
    "MISSING_AUTHENTICATION_TOKEN",
    "INTEGRATION_FAILURE",
    "INTEGRATION_TIMEOUT",
    "BAD_REQUEST_PARAMETERS",
    "BAD_REQUEST_BODY",
    "REQUEST_TOO_LARGE",
    "THROTTLED",
    "QUOTA_EXCEEDED",
    "UNSUPPORTED_MEDIA_TYPE",
    "WAF_FILTERED",
];

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_string()
}

const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "ANY",
];

/// The REST APIs, one record each (kind `rest-api`), and their deployments' snapshots (kind
/// `rest-deployment`).
pub struct RestApis {
    map: RecordMap<RestApi>,
    /// Deployment snapshots, shared by every request to the stages that serve them.
    snapshots: RecordMap<std::sync::Arc<Vec<Resource>>>,
}

impl RestApis {
    /// Loads the stored APIs and snapshots; [`RestApis::migrate`] should run before serving.
    pub fn open(store: Store) -> Result<RestApis> {
        Ok(RestApis {
            map: RecordMap::open(store.clone(), KIND)?,
            snapshots: RecordMap::open(store, SNAPSHOT_KIND)?,
        })
    }

    /// At start: moves snapshots out of API records written by earlier versions, and removes
    /// snapshots whose deployment is gone (a crash between the two writes of a create or a
    /// delete leaves one).
    pub async fn migrate(&self) -> Result<()> {
        let _edit = self.map.edit().await;
        for mut api in self.map.values() {
            if !api
                .deployments
                .values()
                .any(|d| d.legacy_resources.is_some())
            {
                continue;
            }
            for d in api.deployments.values_mut() {
                if let Some(r) = d.legacy_resources.take() {
                    self.snapshots.put(snapshot_key(&api.id, &d.id), r).await?;
                }
            }
            self.map.put(api.id.clone(), api).await?;
        }
        self.snapshots
            .retain(|key| {
                key.split_once('/').is_some_and(|(a, d)| {
                    self.map
                        .read(a, |api| api.deployments.contains_key(d))
                        .unwrap_or(false)
                })
            })
            .await
    }

    /// Whether a REST API exists (read in place: no copy of the record).
    pub fn exists(&self, id: &str) -> bool {
        self.map.contains(id)
    }

    /// GetRestApi: the API with all its parts (404 when unknown).
    pub fn get(&self, id: &str) -> AResult<RestApi> {
        self.map
            .get(id)
            .ok_or_else(|| ApiError::NotFound("Invalid API identifier specified".into()))
    }

    /// GetRestApis: every API with all its parts, in id order.
    pub fn list(&self) -> Vec<RestApi> {
        self.map.values()
    }

    async fn save(&self, api: RestApi) -> AResult<RestApi> {
        Ok(self.map.put(api.id.clone(), api).await?)
    }

    async fn change<T>(&self, id: &str, f: impl FnOnce(&mut RestApi) -> AResult<T>) -> AResult<T> {
        let _edit = self.map.edit().await;
        let mut api = self.get(id)?;
        let out = f(&mut api)?;
        self.save(api).await?;
        Ok(out)
    }

    /// CreateRestApi: the API and its root resource `/`.
    pub async fn create(
        &self,
        name: Option<String>,
        description: Option<String>,
        binary_media_types: Vec<String>,
        tags: BTreeMap<String, String>,
    ) -> AResult<RestApi> {
        let name = name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ApiError::BadRequest("Invalid API name specified".into()))?;
        let root = Resource {
            id: new_id(),
            parent_id: None,
            path_part: String::new(),
            path: "/".into(),
            methods: BTreeMap::new(),
        };
        let api = RestApi {
            id: new_id(),
            name,
            description,
            created: now(),
            root_id: root.id.clone(),
            binary_media_types,
            resources: [(root.id.clone(), root)].into_iter().collect(),
            deployments: BTreeMap::new(),
            stages: BTreeMap::new(),
            tags,
            authorizers: BTreeMap::new(),
            gateway_responses: BTreeMap::new(),
            models: BTreeMap::new(),
            validators: BTreeMap::new(),
        };
        self.save(api).await
    }

    /// DeleteRestApi, with its deployments' snapshots.
    pub async fn delete(&self, id: &str) -> AResult<()> {
        let _edit = self.map.edit().await;
        self.get(id)?;
        self.map.remove(id).await?;
        Ok(self.snapshots.remove_prefixed(&format!("{id}/")).await?)
    }

    /// CreateResource under `parent`.
    pub async fn create_resource(
        &self,
        api: &str,
        parent: &str,
        part: Option<String>,
    ) -> AResult<Resource> {
        let part = part.unwrap_or_default();
        check_path_part(&part)?;
        self.change(api, |a| {
            let p = a
                .resources
                .get(parent)
                .ok_or_else(|| ApiError::NotFound("Invalid Resource identifier specified".into()))?
                .clone();
            if p.path_part.ends_with("+}") {
                return Err(ApiError::BadRequest(
                    "A greedy path variable must be the last segment".into(),
                ));
            }
            if a.resources
                .values()
                .any(|r| r.parent_id.as_deref() == Some(parent) && r.path_part == part)
            {
                return Err(ApiError::Conflict(format!(
                    "Another resource with the same parent already has this name: {part}"
                )));
            }
            let path = if p.path == "/" {
                format!("/{part}")
            } else {
                format!("{}/{part}", p.path)
            };
            let r = Resource {
                id: new_id(),
                parent_id: Some(parent.to_string()),
                path_part: part,
                path,
                methods: BTreeMap::new(),
            };
            a.resources.insert(r.id.clone(), r.clone());
            Ok(r)
        })
        .await
    }

    /// DeleteResource: the resource and everything under it (the root is refused).
    pub async fn delete_resource(&self, api: &str, id: &str) -> AResult<()> {
        self.change(api, |a| {
            if a.root_id == id {
                return Err(ApiError::BadRequest(
                    "Cannot delete the root resource".into(),
                ));
            }
            if !a.resources.contains_key(id) {
                return Err(ApiError::NotFound(
                    "Invalid Resource identifier specified".into(),
                ));
            }
            // The resource and everything under it.
            let mut doomed = vec![id.to_string()];
            let mut i = 0;
            while i < doomed.len() {
                let parent = doomed[i].clone();
                doomed.extend(
                    a.resources
                        .values()
                        .filter(|r| r.parent_id.as_deref() == Some(&parent))
                        .map(|r| r.id.clone()),
                );
                i += 1;
            }
            for d in doomed {
                a.resources.remove(&d);
            }
            Ok(())
        })
        .await
    }

    fn method_mut<'a>(a: &'a mut RestApi, resource: &str, method: &str) -> AResult<&'a mut Method> {
        a.resources
            .get_mut(resource)
            .ok_or_else(|| ApiError::NotFound("Invalid Resource identifier specified".into()))?
            .methods
            .get_mut(method)
            .ok_or_else(|| ApiError::NotFound("Invalid Method identifier specified".into()))
    }

    /// PutMethod.
    pub async fn put_method(
        &self,
        api: &str,
        resource: &str,
        method: &str,
        input: MethodInput,
    ) -> AResult<Method> {
        let MethodInput {
            authorization_type,
            authorizer_id,
            request_validator_id,
            request_models,
            api_key_required,
            request_parameters,
        } = input;
        let method = method.to_ascii_uppercase();
        if !METHODS.contains(&method.as_str()) {
            return Err(ApiError::BadRequest(format!(
                "Invalid HttpMethod specified: {method}"
            )));
        }
        let auth = authorization_type
            .ok_or_else(|| ApiError::BadRequest("Authorization type is required".into()))?;
        if auth != "NONE" && auth != "CUSTOM" {
            return Err(ApiError::BadRequest(format!(
                "Authorization type {auth} is not supported by Nimbus yet; use NONE or CUSTOM"
            )));
        }
        self.change(api, |a| {
            if auth == "CUSTOM"
                && !authorizer_id
                    .as_ref()
                    .is_some_and(|id| a.authorizers.contains_key(id))
            {
                return Err(ApiError::BadRequest(
                    "Invalid authorizer ID specified. Setting the authorization type to CUSTOM requires a valid authorizer.".into(),
                ));
            }
            let r = a.resources.get_mut(resource).ok_or_else(|| {
                ApiError::NotFound("Invalid Resource identifier specified".into())
            })?;
            if let Some(v) = &request_validator_id
                && !a.validators.contains_key(v)
            {
                return Err(ApiError::BadRequest(format!(
                    "Invalid Request Validator identifier specified: {v}"
                )));
            }
            if let Some(m) = request_models
                .values()
                .find(|m| !a.models.contains_key(*m) && !BUILT_IN_MODELS.contains(&m.as_str()))
            {
                return Err(ApiError::BadRequest(format!(
                    "Invalid model identifier specified: {m}"
                )));
            }
            let m = Method {
                http_method: method.clone(),
                request_validator_id: request_validator_id.clone(),
                request_models: request_models.clone(),
                authorizer_id: (auth == "CUSTOM").then(|| authorizer_id.clone()).flatten(),
                authorization_type: auth,
                api_key_required,
                request_parameters,
                responses: BTreeMap::new(),
                integration: None,
            };
            r.methods.insert(method, m.clone());
            Ok(m)
        })
        .await
    }

    /// GetMethod (the HTTP method in any case).
    pub fn method(&self, api: &str, resource: &str, method: &str) -> AResult<Method> {
        let a = self.get(api)?;
        a.resources
            .get(resource)
            .ok_or_else(|| ApiError::NotFound("Invalid Resource identifier specified".into()))?
            .methods
            .get(&method.to_ascii_uppercase())
            .cloned()
            .ok_or_else(|| ApiError::NotFound("Invalid Method identifier specified".into()))
    }

    /// PutIntegration.
    pub async fn put_integration(
        &self,
        api: &str,
        resource: &str,
        method: &str,
        mut i: Integration,
    ) -> AResult<Integration> {
        check_integration(&mut i)?;
        let method = method.to_ascii_uppercase();
        self.change(api, |a| {
            let m = Self::method_mut(a, resource, &method)?;
            m.integration = Some(i.clone());
            Ok(i)
        })
        .await
    }

    /// ImportRestApi (`existing` is `None`) and PutRestApi: `overwrite` replaces every resource
    /// with the definition's, `merge` adds the definition's resources and methods (replacing
    /// methods it redefines). Nothing changes unless the whole definition is valid.
    pub async fn import(
        &self,
        existing: Option<&str>,
        overwrite: bool,
        mut def: crate::openapi::Definition,
    ) -> AResult<RestApi> {
        for (path, methods) in def.paths.iter_mut() {
            for part in path.split('/').filter(|p| !p.is_empty()) {
                check_path_part(part)?;
            }
            for m in methods.values_mut() {
                if let Some(i) = m.integration.as_mut() {
                    check_integration(i).map_err(|e| match e {
                        ApiError::BadRequest(msg) => ApiError::BadRequest(format!(
                            "Invalid OpenAPI input: {} {path}: {msg}",
                            m.http_method
                        )),
                        other => other,
                    })?;
                }
            }
        }
        let _edit = self.map.edit().await;
        let mut api = match existing {
            Some(id) => self.get(id)?,
            None => {
                let name = def.name.clone().filter(|n| !n.is_empty()).ok_or_else(|| {
                    ApiError::BadRequest(
                        "Invalid OpenAPI input: the document has no info.title to name the API"
                            .into(),
                    )
                })?;
                let root = Resource {
                    id: new_id(),
                    parent_id: None,
                    path_part: String::new(),
                    path: "/".into(),
                    methods: BTreeMap::new(),
                };
                RestApi {
                    id: new_id(),
                    name,
                    description: None,
                    created: now(),
                    root_id: root.id.clone(),
                    binary_media_types: Vec::new(),
                    resources: [(root.id.clone(), root)].into_iter().collect(),
                    deployments: BTreeMap::new(),
                    stages: BTreeMap::new(),
                    tags: BTreeMap::new(),
                    authorizers: BTreeMap::new(),
                    gateway_responses: BTreeMap::new(),
                    models: BTreeMap::new(),
                    validators: BTreeMap::new(),
                }
            }
        };
        if overwrite || existing.is_none() {
            if let Some(n) = def.name.take().filter(|n| !n.is_empty()) {
                api.name = n;
            }
            api.description = def.description.take().or(api.description);
            api.binary_media_types = std::mem::take(&mut def.binary_media_types);
            let root = api.root_id.clone();
            api.resources.retain(|id, _| *id == root);
            if let Some(r) = api.resources.get_mut(&root) {
                r.methods.clear();
            }
        } else {
            for t in std::mem::take(&mut def.binary_media_types) {
                if !api.binary_media_types.contains(&t) {
                    api.binary_media_types.push(t);
                }
            }
        }
        // The definition's authorizers: an existing one of the same name is updated in place
        // (keeping its id), others are created; methods then refer to them by id.
        let mut ids: BTreeMap<String, String> = BTreeMap::new();
        for (name, mut a) in std::mem::take(&mut def.authorizers) {
            check_authorizer(&a).map_err(|e| match e {
                ApiError::BadRequest(msg) => ApiError::BadRequest(format!(
                    "Invalid OpenAPI input: security scheme '{name}': {msg}"
                )),
                other => other,
            })?;
            a.id = api
                .authorizers
                .values()
                .find(|x| x.name == name)
                .map(|x| x.id.clone())
                .unwrap_or_else(new_id);
            ids.insert(name, a.id.clone());
            api.authorizers.insert(a.id.clone(), a);
        }
        for methods in def.paths.values_mut() {
            for m in methods.values_mut() {
                if let Some(name) = m.authorizer_id.take() {
                    m.authorizer_id = Some(ids.get(&name).cloned().ok_or_else(|| {
                        ApiError::Core(nimbus_core::CoreError::Internal(format!(
                            "authorizer {name} was not imported"
                        )))
                    })?);
                }
            }
        }
        for (path, methods) in def.paths {
            let id = ensure_resource(&mut api, &path)?;
            if let Some(r) = api.resources.get_mut(&id) {
                r.methods.extend(methods);
            }
        }
        self.save(api).await
    }
}

/// The id of the resource at `path`, creating the missing resources along it.
fn ensure_resource(api: &mut RestApi, path: &str) -> AResult<String> {
    let mut current = api.root_id.clone();
    let mut full = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        full.push('/');
        full.push_str(part);
        let existing = api
            .resources
            .values()
            .find(|r| r.parent_id.as_deref() == Some(current.as_str()) && r.path_part == part)
            .map(|r| r.id.clone());
        current = match existing {
            Some(id) => id,
            None => {
                if api
                    .resources
                    .get(&current)
                    .is_some_and(|p| p.path_part.ends_with("+}"))
                {
                    return Err(ApiError::BadRequest(format!(
                        "Invalid OpenAPI input: {path}: a greedy path variable must be the last segment"
                    )));
                }
                let r = Resource {
                    id: new_id(),
                    parent_id: Some(current.clone()),
                    path_part: part.to_string(),
                    path: full.clone(),
                    methods: BTreeMap::new(),
                };
                let id = r.id.clone();
                api.resources.insert(id.clone(), r);
                id
            }
        };
    }
    Ok(current)
}

/// A resource path part: one segment of letters, digits, `._-:`, or a `{variable}` / `{greedy+}`.
fn check_path_part(part: &str) -> AResult<()> {
    if part.is_empty() || part.contains('/') {
        return Err(ApiError::BadRequest(
            "Resource's path part must be a single, non-empty path segment".into(),
        ));
    }
    let valid = part
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.:{}+".contains(c));
    if !valid {
        return Err(ApiError::BadRequest(format!(
            "Resource's path part only allow a-zA-Z0-9._- and curly braces at the beginning and the end and an optional plus sign before the closing brace: {part}"
        )));
    }
    Ok(())
}

/// The rules of PutIntegration, with its defaults filled in.
fn check_integration(i: &mut Integration) -> AResult<()> {
    match i.integration_type.as_str() {
        "AWS_PROXY" | "AWS" => {
            if i.uri.is_none() {
                return Err(ApiError::BadRequest(
                    "Enumeration value for Integration uri is required".into(),
                ));
            }
        }
        "HTTP" | "HTTP_PROXY" => {
            if i.uri.is_none() {
                return Err(ApiError::BadRequest(
                    "Integrations of type 'HTTP' or 'HTTP_PROXY' require a uri".into(),
                ));
            }
        }
        "MOCK" => {}
        other => {
            return Err(ApiError::BadRequest(format!(
                "Invalid integration type specified: {other}"
            )));
        }
    }
    if i.passthrough_behavior.is_empty() {
        i.passthrough_behavior = "WHEN_NO_MATCH".into();
    }
    if i.timeout_ms == 0 {
        i.timeout_ms = 29_000;
    }
    if !(50..=29_000).contains(&i.timeout_ms) {
        return Err(ApiError::BadRequest(
            "Timeout should be between 50 ms and 29000 ms".into(),
        ));
    }
    Ok(())
}

impl RestApis {
    /// PutMethodResponse: adds or replaces the method response for its status code.
    pub async fn put_method_response(
        &self,
        api: &str,
        resource: &str,
        method: &str,
        r: MethodResponse,
    ) -> AResult<MethodResponse> {
        let method = method.to_ascii_uppercase();
        self.change(api, |a| {
            let m = Self::method_mut(a, resource, &method)?;
            m.responses.insert(r.status_code.clone(), r.clone());
            Ok(r)
        })
        .await
    }

    /// PutIntegrationResponse: adds or replaces it; the method response for its status code must
    /// exist, and the selection pattern must be a valid regular expression.
    pub async fn put_integration_response(
        &self,
        api: &str,
        resource: &str,
        method: &str,
        r: IntegrationResponse,
    ) -> AResult<IntegrationResponse> {
        if let Some(p) = &r.selection_pattern
            && regex_lite::Regex::new(p).is_err()
        {
            return Err(ApiError::BadRequest(format!(
                "Invalid selection pattern specified: {p}"
            )));
        }
        let method = method.to_ascii_uppercase();
        self.change(api, |a| {
            let m = Self::method_mut(a, resource, &method)?;
            if !m.responses.contains_key(&r.status_code) {
                return Err(ApiError::NotFound(
                    "Invalid Response status code specified".into(),
                ));
            }
            let i = m.integration.as_mut().ok_or_else(|| {
                ApiError::NotFound("Invalid Integration identifier specified".into())
            })?;
            i.responses.insert(r.status_code.clone(), r.clone());
            Ok(r)
        })
        .await
    }

    /// CreateDeployment: a snapshot of the resources, optionally to a (new or existing) stage.
    pub async fn create_deployment(
        &self,
        api: &str,
        stage: Option<String>,
        description: Option<String>,
        variables: BTreeMap<String, String>,
    ) -> AResult<Deployment> {
        let _edit = self.map.edit().await;
        let mut a = self.get(api)?;
        if !a.resources.values().any(|r| !r.methods.is_empty()) {
            return Err(ApiError::BadRequest(
                "The REST API doesn't contain any methods".into(),
            ));
        }
        let d = Deployment {
            id: new_id(),
            created: now(),
            description,
            legacy_resources: None,
        };
        // The snapshot first: a crash before the API's record names it leaves an orphan that
        // the next start removes, never a deployment without its snapshot.
        let snapshot: Vec<Resource> = a.resources.values().cloned().collect();
        self.snapshots
            .put(snapshot_key(&a.id, &d.id), std::sync::Arc::new(snapshot))
            .await?;
        if let Some(name) = stage {
            let t = now();
            let st = a.stages.entry(name.clone()).or_insert(Stage {
                name,
                deployment_id: d.id.clone(),
                description: None,
                variables: BTreeMap::new(),
                created: t,
                updated: t,
                method_settings: BTreeMap::new(),
                tracing_enabled: false,
                options: StageOptions::default(),
            });
            st.deployment_id = d.id.clone();
            st.variables.extend(variables);
            st.updated = t;
        }
        a.deployments.insert(d.id.clone(), d.clone());
        self.save(a).await?;
        Ok(d)
    }

    /// CreateStage: a new name serving an existing deployment.
    pub async fn create_stage(
        &self,
        api: &str,
        name: Option<String>,
        deployment: Option<String>,
        description: Option<String>,
        variables: BTreeMap<String, String>,
    ) -> AResult<Stage> {
        let name = name.ok_or_else(|| ApiError::BadRequest("Stage name is required".into()))?;
        let deployment =
            deployment.ok_or_else(|| ApiError::BadRequest("Deployment id is required".into()))?;
        self.change(api, |a| {
            if !a.deployments.contains_key(&deployment) {
                return Err(ApiError::NotFound(
                    "Invalid Deployment identifier specified".into(),
                ));
            }
            if a.stages.contains_key(&name) {
                return Err(ApiError::Conflict("Stage already exists".into()));
            }
            let t = now();
            let st = Stage {
                name: name.clone(),
                deployment_id: deployment,
                description,
                variables,
                created: t,
                updated: t,
                method_settings: BTreeMap::new(),
                tracing_enabled: false,
                options: StageOptions::default(),
            };
            a.stages.insert(name, st.clone());
            Ok(st)
        })
        .await
    }

    fn stage_mut<'a>(a: &'a mut RestApi, name: &str) -> AResult<&'a mut Stage> {
        a.stages
            .get_mut(name)
            .ok_or_else(|| ApiError::NotFound("Invalid Stage identifier specified".into()))
    }

    /// UpdateStage: `patchOperations` on the description, the deployment, stage variables
    /// (`/variables/{name}`), tracing, and method settings (`/*/*/throttling/rateLimit`,
    /// `/~1items/GET/throttling/burstLimit`, `.../metrics/enabled`, `.../logging/loglevel`,
    /// `.../logging/dataTrace`). All operations apply, or none.
    pub async fn update_stage(&self, api: &str, name: &str, ops: &[PatchOp]) -> AResult<Stage> {
        self.change(api, |a| {
            let deployments: Vec<String> = a.deployments.keys().cloned().collect();
            let resources: Vec<Resource> = a.resources.values().cloned().collect();
            let st = Self::stage_mut(a, name)?;
            for op in ops {
                apply_stage_patch(st, op, &deployments, &resources)?;
            }
            st.updated = now();
            Ok(st.clone())
        })
        .await
    }

    /// DeleteStage (its deployment stays).
    pub async fn delete_stage(&self, api: &str, name: &str) -> AResult<()> {
        self.change(api, |a| {
            a.stages
                .remove(name)
                .map(|_| ())
                .ok_or_else(|| ApiError::NotFound("Invalid Stage identifier specified".into()))
        })
        .await
    }

    /// GetDeployment.
    pub fn deployment(&self, api: &str, id: &str) -> AResult<Deployment> {
        self.get(api)?
            .deployments
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::NotFound("Invalid Deployment identifier specified".into()))
    }

    /// DeleteDeployment: refused while a stage serves it, as API Gateway does.
    pub async fn delete_deployment(&self, api: &str, id: &str) -> AResult<()> {
        self.change(api, |a| {
            if !a.deployments.contains_key(id) {
                return Err(ApiError::NotFound(
                    "Invalid Deployment identifier specified".into(),
                ));
            }
            if a.stages.values().any(|s| s.deployment_id == id) {
                return Err(ApiError::BadRequest(
                    "Active stages pointing to this deployment must be moved or deleted".into(),
                ));
            }
            a.deployments.remove(id);
            Ok(())
        })
        .await?;
        Ok(self.snapshots.remove(&snapshot_key(api, id)).await?)
    }

    /// UpdateRestApi: `/name`, `/description`, `/binaryMediaTypes/{type}` (add or remove).
    pub async fn update(&self, id: &str, ops: &[PatchOp]) -> AResult<RestApi> {
        self.change(id, |a| {
            for op in ops {
                let allowed = "/name, /description, /binaryMediaTypes/{type}";
                match (op.op.as_str(), op.path.as_str()) {
                    ("replace", "/name") => {
                        let v = patch_value(op)?;
                        if v.is_empty() {
                            return Err(ApiError::BadRequest("Invalid API name specified".into()));
                        }
                        a.name = v.to_string();
                    }
                    ("replace", "/description") => a.description = op.value.clone(),
                    ("add" | "remove", p) if p.starts_with("/binaryMediaTypes/") => {
                        let t = unescape_pointer(&p["/binaryMediaTypes/".len()..]);
                        a.binary_media_types.retain(|x| *x != t);
                        if op.op == "add" {
                            a.binary_media_types.push(t);
                        }
                    }
                    _ => return Err(invalid_patch(op, allowed)),
                }
            }
            Ok(a.clone())
        })
        .await
    }

    /// UpdateMethod: `/authorizationType` (`NONE` or `CUSTOM`), `/authorizerId`,
    /// `/requestValidatorId`, `/apiKeyRequired`, `/requestParameters/{name}`,
    /// `/requestModels/{contentType}`, `/operationName` (accepted, not kept); a `CUSTOM` method
    /// must end up with one of the API's authorizers.
    pub async fn update_method(
        &self,
        api: &str,
        resource: &str,
        method: &str,
        ops: &[PatchOp],
    ) -> AResult<Method> {
        let method = method.to_ascii_uppercase();
        self.change(api, |a| {
            let known: Vec<String> = a.authorizers.keys().cloned().collect();
            let m = Self::method_mut(a, resource, &method)?;
            let allowed = "/authorizationType, /authorizerId, /requestValidatorId, /apiKeyRequired, /requestParameters/{name}, /requestModels/{contentType}, /operationName";
            for op in ops {
                let (o, p) = (op.op.as_str(), op.path.as_str());
                if let Some(name) = p.strip_prefix("/requestParameters/") {
                    let name = unescape_pointer(name);
                    match o {
                        "add" | "replace" => {
                            m.request_parameters
                                .insert(name, op.value.as_deref() == Some("true"));
                        }
                        "remove" => {
                            m.request_parameters.remove(&name);
                        }
                        _ => return Err(invalid_patch(op, allowed)),
                    }
                    continue;
                }
                match (o, p) {
                    ("replace", "/authorizationType") => {
                        let v = patch_value(op)?;
                        if v != "NONE" && v != "CUSTOM" {
                            return Err(ApiError::BadRequest(format!(
                                "Authorization type {v} is not supported by Nimbus yet; use NONE or CUSTOM"
                            )));
                        }
                        m.authorization_type = v.to_string();
                        if v == "NONE" {
                            m.authorizer_id = None;
                        }
                    }
                    ("replace", "/authorizerId") => m.authorizer_id = op.value.clone(),
                    ("replace", "/requestValidatorId") => {
                        m.request_validator_id = op.value.clone().filter(|v| !v.is_empty())
                    }
                    ("replace", "/apiKeyRequired") => m.api_key_required = patch_bool(op)?,
                    ("replace", "/operationName") => {}
                    (_, p) if p.starts_with("/requestModels/") => {
                        patch_map(&mut m.request_models, op, &p["/requestModels/".len()..], allowed)?
                    }
                    _ => return Err(invalid_patch(op, allowed)),
                }
            }
            if m.authorization_type == "CUSTOM"
                && !m.authorizer_id.as_ref().is_some_and(|id| known.contains(id))
            {
                return Err(ApiError::BadRequest(
                    "Invalid authorizer ID specified. Setting the authorization type to CUSTOM requires a valid authorizer.".into(),
                ));
            }
            Ok(m.clone())
        })
        .await
    }

    /// UpdateIntegration: `/uri`, `/httpMethod`, `/passthroughBehavior`, `/timeoutInMillis`,
    /// `/requestTemplates/{contentType}`, `/requestParameters/{name}`, `/contentHandling`
    /// (accepted, not kept).
    pub async fn update_integration(
        &self,
        api: &str,
        resource: &str,
        method: &str,
        ops: &[PatchOp],
    ) -> AResult<Integration> {
        let method = method.to_ascii_uppercase();
        self.change(api, |a| {
            let i = Self::method_mut(a, resource, &method)?
                .integration
                .as_mut()
                .ok_or_else(|| {
                    ApiError::NotFound("Invalid Integration identifier specified".into())
                })?;
            let allowed = "/uri, /httpMethod, /passthroughBehavior, /timeoutInMillis, /contentHandling, /requestTemplates/{contentType}, /requestParameters/{name}";
            for op in ops {
                let (o, p) = (op.op.as_str(), op.path.as_str());
                let map = if let Some(k) = p.strip_prefix("/requestTemplates/") {
                    Some((&mut i.request_templates, k))
                } else {
                    p.strip_prefix("/requestParameters/")
                        .map(|k| (&mut i.request_parameters, k))
                };
                if let Some((map, key)) = map {
                    patch_map(map, op, key, allowed)?;
                    continue;
                }
                match (o, p) {
                    ("replace", "/uri") => i.uri = Some(patch_value(op)?.to_string()),
                    ("replace", "/httpMethod") => i.http_method = Some(patch_value(op)?.to_string()),
                    ("replace", "/passthroughBehavior") => {
                        let v = patch_value(op)?;
                        if !["WHEN_NO_MATCH", "WHEN_NO_TEMPLATES", "NEVER"].contains(&v) {
                            return Err(ApiError::BadRequest(format!(
                                "Invalid passthrough behavior '{v}': must be WHEN_NO_MATCH, WHEN_NO_TEMPLATES or NEVER"
                            )));
                        }
                        i.passthrough_behavior = v.to_string();
                    }
                    ("replace", "/timeoutInMillis") => {
                        let v = patch_value(op)?;
                        i.timeout_ms = v.parse().ok().filter(|t| (50..=29_000).contains(t)).ok_or_else(|| {
                            ApiError::BadRequest("Timeout should be between 50 ms and 29000 ms".into())
                        })?;
                    }
                    ("replace", "/contentHandling") => {}
                    _ => return Err(invalid_patch(op, allowed)),
                }
            }
            Ok(i.clone())
        })
        .await
    }

    /// UpdateResource: `/pathPart` (the paths of the resource and everything under it follow).
    pub async fn update_resource(&self, api: &str, id: &str, ops: &[PatchOp]) -> AResult<Resource> {
        self.change(api, |a| {
            let allowed = "/pathPart";
            for op in ops {
                if (op.op.as_str(), op.path.as_str()) != ("replace", "/pathPart") {
                    return Err(invalid_patch(op, allowed));
                }
                let part = patch_value(op)?.to_string();
                check_path_part(&part)?;
                let r = a.resources.get(id).cloned().ok_or_else(|| {
                    ApiError::NotFound("Invalid Resource identifier specified".into())
                })?;
                if r.parent_id.is_none() {
                    return Err(ApiError::BadRequest(
                        "The root resource has no path part to change".into(),
                    ));
                }
                if a.resources
                    .values()
                    .any(|x| x.parent_id == r.parent_id && x.id != r.id && x.path_part == part)
                {
                    return Err(ApiError::Conflict(format!(
                        "Another resource with the same parent already has this name: {part}"
                    )));
                }
                let old = r.path.clone();
                let new = match old.rsplit_once('/') {
                    Some(("", _)) => format!("/{part}"),
                    Some((parent, _)) => format!("{parent}/{part}"),
                    None => format!("/{part}"),
                };
                for x in a.resources.values_mut() {
                    if x.id == r.id {
                        x.path_part = part.clone();
                        x.path = new.clone();
                    } else if let Some(rest) = x.path.strip_prefix(&format!("{old}/")) {
                        x.path = format!("{new}/{rest}");
                    }
                }
            }
            a.resources
                .get(id)
                .cloned()
                .ok_or_else(|| ApiError::NotFound("Invalid Resource identifier specified".into()))
        })
        .await
    }

    /// UpdateMethodResponse: `/responseParameters/{name}` (value `true`/`false`),
    /// `/responseModels/{contentType}`.
    pub async fn update_method_response(
        &self,
        api: &str,
        resource: &str,
        method: &str,
        code: &str,
        ops: &[PatchOp],
    ) -> AResult<MethodResponse> {
        let method = method.to_ascii_uppercase();
        self.change(api, |a| {
            let r = Self::method_mut(a, resource, &method)?
                .responses
                .get_mut(code)
                .ok_or_else(|| {
                    ApiError::NotFound("Invalid Response status code specified".into())
                })?;
            let allowed = "/responseParameters/{name}, /responseModels/{contentType}";
            for op in ops {
                let p = op.path.as_str();
                if let Some(name) = p.strip_prefix("/responseParameters/") {
                    let name = unescape_pointer(name);
                    match op.op.as_str() {
                        "add" | "replace" => {
                            r.response_parameters
                                .insert(name, op.value.as_deref() == Some("true"));
                        }
                        "remove" => {
                            r.response_parameters.remove(&name);
                        }
                        _ => return Err(invalid_patch(op, allowed)),
                    }
                } else if let Some(ct) = p.strip_prefix("/responseModels/") {
                    patch_map(&mut r.response_models, op, ct, allowed)?;
                } else {
                    return Err(invalid_patch(op, allowed));
                }
            }
            Ok(r.clone())
        })
        .await
    }

    /// UpdateDeployment: `/description`.
    pub async fn update_deployment(
        &self,
        api: &str,
        id: &str,
        ops: &[PatchOp],
    ) -> AResult<Deployment> {
        self.change(api, |a| {
            let d = a.deployments.get_mut(id).ok_or_else(|| {
                ApiError::NotFound("Invalid Deployment identifier specified".into())
            })?;
            for op in ops {
                match (op.op.as_str(), op.path.as_str()) {
                    ("replace", "/description") => d.description = op.value.clone(),
                    _ => return Err(invalid_patch(op, "/description")),
                }
            }
            Ok(d.clone())
        })
        .await
    }

    /// UpdateIntegrationResponse: `/selectionPattern`, `/responseTemplates/{contentType}`,
    /// `/responseParameters/{name}`.
    pub async fn update_integration_response(
        &self,
        api: &str,
        resource: &str,
        method: &str,
        code: &str,
        ops: &[PatchOp],
    ) -> AResult<IntegrationResponse> {
        let method = method.to_ascii_uppercase();
        self.change(api, |a| {
            let r = Self::method_mut(a, resource, &method)?
                .integration
                .as_mut()
                .ok_or_else(|| {
                    ApiError::NotFound("Invalid Integration identifier specified".into())
                })?
                .responses
                .get_mut(code)
                .ok_or_else(|| {
                    ApiError::NotFound("Invalid Response status code specified".into())
                })?;
            let allowed = "/selectionPattern, /contentHandling, /responseTemplates/{contentType}, /responseParameters/{name}";
            for op in ops {
                let (o, p) = (op.op.as_str(), op.path.as_str());
                let map = if let Some(k) = p.strip_prefix("/responseTemplates/") {
                    Some((&mut r.response_templates, k))
                } else {
                    p.strip_prefix("/responseParameters/")
                        .map(|k| (&mut r.response_parameters, k))
                };
                if let Some((map, key)) = map {
                    patch_map(map, op, key, allowed)?;
                    continue;
                }
                match (o, p) {
                    ("replace", "/selectionPattern") => {
                        if let Some(v) = &op.value
                            && regex_lite::Regex::new(v).is_err()
                        {
                            return Err(ApiError::BadRequest(format!(
                                "Invalid selection pattern specified: {v}"
                            )));
                        }
                        r.selection_pattern = op.value.clone().filter(|v| !v.is_empty());
                    }
                    ("replace", "/contentHandling") => {}
                    _ => return Err(invalid_patch(op, allowed)),
                }
            }
            Ok(r.clone())
        })
        .await
    }

    /// CreateModel: the schema must be JSON (a JSON Schema draft 4 document).
    pub async fn create_model(
        &self,
        api: &str,
        name: Option<String>,
        content_type: Option<String>,
        schema: Option<String>,
        description: Option<String>,
    ) -> AResult<Model> {
        let name = name
            .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric()))
            .ok_or_else(|| {
                ApiError::BadRequest("Model name must be non-empty and alphanumeric".into())
            })?;
        let content_type = content_type
            .ok_or_else(|| ApiError::BadRequest("Content type must be non-empty".into()))?;
        let schema = schema.unwrap_or_else(|| "{}".into());
        let doc: serde_json::Value = serde_json::from_str(&schema).map_err(|e| {
            ApiError::BadRequest(format!(
                "Invalid model specified: the schema is not JSON: {e}"
            ))
        })?;
        jsonschema::draft4::new(&doc)
            .map_err(|e| ApiError::BadRequest(format!("Invalid model specified: {e}")))?;
        self.change(api, |a| {
            if a.models.contains_key(&name) || BUILT_IN_MODELS.contains(&name.as_str()) {
                return Err(ApiError::Conflict(format!(
                    "Model name already exists for this REST API: {name}"
                )));
            }
            let m = Model {
                id: new_id()[..6].to_string(),
                name: name.clone(),
                content_type,
                schema,
                description,
            };
            a.models.insert(name, m.clone());
            Ok(m)
        })
        .await
    }

    /// DeleteModel: refused while a method uses it.
    pub async fn delete_model(&self, api: &str, name: &str) -> AResult<()> {
        self.change(api, |a| {
            if !a.models.contains_key(name) {
                return Err(ApiError::NotFound("Invalid model name specified".into()));
            }
            if let Some((r, m)) = a.resources.values().find_map(|r| {
                r.methods
                    .values()
                    .find(|m| m.request_models.values().any(|x| x == name))
                    .map(|m| (r, m))
            }) {
                return Err(ApiError::Conflict(format!(
                    "Cannot delete model '{name}', is referenced in method request: {} {}",
                    m.http_method, r.path
                )));
            }
            a.models.remove(name);
            Ok(())
        })
        .await
    }

    /// CreateRequestValidator.
    pub async fn create_validator(
        &self,
        api: &str,
        name: Option<String>,
        validate_body: bool,
        validate_parameters: bool,
    ) -> AResult<RequestValidator> {
        self.change(api, |a| {
            let v = RequestValidator {
                id: new_id()[..6].to_string(),
                name: name.unwrap_or_default(),
                validate_body,
                validate_parameters,
            };
            a.validators.insert(v.id.clone(), v.clone());
            Ok(v)
        })
        .await
    }

    /// UpdateRequestValidator: `/name`, `/validateRequestBody`, `/validateRequestParameters`.
    pub async fn update_validator(
        &self,
        api: &str,
        id: &str,
        ops: &[PatchOp],
    ) -> AResult<RequestValidator> {
        self.change(api, |a| {
            let v = a.validators.get_mut(id).ok_or_else(|| {
                ApiError::NotFound("Invalid Request Validator identifier specified".into())
            })?;
            for op in ops {
                match (op.op.as_str(), op.path.as_str()) {
                    ("replace", "/name") => v.name = op.value.clone().unwrap_or_default(),
                    ("replace", "/validateRequestBody") => v.validate_body = patch_bool(op)?,
                    ("replace", "/validateRequestParameters") => {
                        v.validate_parameters = patch_bool(op)?
                    }
                    _ => {
                        return Err(invalid_patch(
                            op,
                            "/name, /validateRequestBody, /validateRequestParameters",
                        ));
                    }
                }
            }
            Ok(v.clone())
        })
        .await
    }

    /// DeleteRequestValidator: refused while a method uses it.
    pub async fn delete_validator(&self, api: &str, id: &str) -> AResult<()> {
        self.change(api, |a| {
            if !a.validators.contains_key(id) {
                return Err(ApiError::NotFound(
                    "Invalid Request Validator identifier specified".into(),
                ));
            }
            if a.resources.values().any(|r| {
                r.methods
                    .values()
                    .any(|m| m.request_validator_id.as_deref() == Some(id))
            }) {
                return Err(ApiError::Conflict(format!(
                    "Cannot delete request validator '{id}': a method uses it"
                )));
            }
            a.validators.remove(id);
            Ok(())
        })
        .await
    }

    /// PutGatewayResponse.
    pub async fn put_gateway_response(
        &self,
        api: &str,
        r: GatewayResponse,
    ) -> AResult<GatewayResponse> {
        if !GATEWAY_RESPONSE_TYPES.contains(&r.response_type.as_str()) {
            return Err(ApiError::BadRequest(format!(
                "Invalid response type '{}': must be one of {}",
                r.response_type,
                GATEWAY_RESPONSE_TYPES.join(", ")
            )));
        }
        if let Some(c) = &r.status_code
            && !c.parse::<u16>().is_ok_and(|c| (100..600).contains(&c))
        {
            return Err(ApiError::BadRequest(format!(
                "Invalid status code '{c}': must be an HTTP status code"
            )));
        }
        if let Some(k) = r
            .response_parameters
            .keys()
            .find(|k| !k.starts_with("gatewayresponse.header."))
        {
            return Err(ApiError::BadRequest(format!(
                "Invalid mapping expression specified: {k}; gateway response parameters are gatewayresponse.header.<name>"
            )));
        }
        self.change(api, |a| {
            a.gateway_responses
                .insert(r.response_type.clone(), r.clone());
            Ok(r)
        })
        .await
    }

    /// DeleteGatewayResponse.
    pub async fn delete_gateway_response(&self, api: &str, kind: &str) -> AResult<()> {
        self.change(api, |a| {
            a.gateway_responses
                .remove(kind)
                .map(|_| ())
                .ok_or_else(|| ApiError::NotFound("Invalid Gateway Response Type specified".into()))
        })
        .await
    }

    /// CreateAuthorizer.
    pub async fn create_authorizer(
        &self,
        api: &str,
        input: AuthorizerInput,
    ) -> AResult<Authorizer> {
        let a = Authorizer {
            id: new_id()[..6].to_string(),
            name: input.name.unwrap_or_default(),
            authorizer_type: input.authorizer_type.unwrap_or_default(),
            authorizer_uri: input.authorizer_uri,
            identity_source: input.identity_source,
            identity_validation_expression: input.identity_validation_expression,
            ttl_seconds: match input.ttl_seconds {
                None => 300,
                Some(t) => u32::try_from(t).unwrap_or(u32::MAX),
            },
        };
        check_authorizer(&a)?;
        self.change(api, |api| {
            if api.authorizers.values().any(|x| x.name == a.name) {
                return Err(ApiError::Conflict(format!(
                    "Authorizer name must be unique. Authorizer {} already exists in this RestApi.",
                    a.name
                )));
            }
            api.authorizers.insert(a.id.clone(), a.clone());
            Ok(a)
        })
        .await
    }

    /// GetAuthorizer.
    pub fn authorizer(&self, api: &str, id: &str) -> AResult<Authorizer> {
        self.get(api)?
            .authorizers
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::NotFound("Invalid Authorizer identifier specified".into()))
    }

    /// UpdateAuthorizer: `/name`, `/type`, `/authorizerUri`, `/identitySource`,
    /// `/identityValidationExpression`, `/authorizerResultTtlInSeconds`.
    pub async fn update_authorizer(
        &self,
        api: &str,
        id: &str,
        ops: &[PatchOp],
    ) -> AResult<Authorizer> {
        self.change(api, |a| {
            let auth = a.authorizers.get_mut(id).ok_or_else(|| {
                ApiError::NotFound("Invalid Authorizer identifier specified".into())
            })?;
            let mut next = auth.clone();
            let allowed = "/name, /type, /authorizerUri, /identitySource, /identityValidationExpression, /authorizerResultTtlInSeconds";
            for op in ops {
                if op.op != "replace" {
                    return Err(invalid_patch(op, allowed));
                }
                match op.path.as_str() {
                    "/name" => next.name = patch_value(op)?.to_string(),
                    "/type" => next.authorizer_type = patch_value(op)?.to_string(),
                    "/authorizerUri" => next.authorizer_uri = op.value.clone(),
                    "/identitySource" => next.identity_source = op.value.clone(),
                    "/identityValidationExpression" => {
                        next.identity_validation_expression =
                            op.value.clone().filter(|v| !v.is_empty())
                    }
                    "/authorizerResultTtlInSeconds" => {
                        let v = patch_value(op)?;
                        next.ttl_seconds = v.parse().map_err(|_| {
                            ApiError::BadRequest(format!(
                                "Invalid authorizerResultTtlInSeconds '{v}': must be an integer from 0 to 3600"
                            ))
                        })?;
                    }
                    _ => return Err(invalid_patch(op, allowed)),
                }
            }
            check_authorizer(&next)?;
            *auth = next.clone();
            Ok(next)
        })
        .await
    }

    /// DeleteAuthorizer: refused while a method uses it.
    pub async fn delete_authorizer(&self, api: &str, id: &str) -> AResult<()> {
        self.change(api, |a| {
            if !a.authorizers.contains_key(id) {
                return Err(ApiError::NotFound(
                    "Invalid Authorizer identifier specified".into(),
                ));
            }
            for r in a.resources.values() {
                for m in r.methods.values() {
                    if m.authorizer_id.as_deref() == Some(id) {
                        return Err(ApiError::Conflict(format!(
                            "Cannot delete authorizer '{id}', is referenced in method: {} {}",
                            m.http_method, r.path
                        )));
                    }
                }
            }
            a.authorizers.remove(id);
            Ok(())
        })
        .await
    }

    /// DeleteMethod.
    pub async fn delete_method(&self, api: &str, resource: &str, method: &str) -> AResult<()> {
        let method = method.to_ascii_uppercase();
        self.change(api, |a| {
            let r = a.resources.get_mut(resource).ok_or_else(|| {
                ApiError::NotFound("Invalid Resource identifier specified".into())
            })?;
            r.methods
                .remove(&method)
                .map(|_| ())
                .ok_or_else(|| ApiError::NotFound("Invalid Method identifier specified".into()))
        })
        .await
    }

    /// DeleteIntegration.
    pub async fn delete_integration(&self, api: &str, resource: &str, method: &str) -> AResult<()> {
        let method = method.to_ascii_uppercase();
        self.change(api, |a| {
            Self::method_mut(a, resource, &method)?
                .integration
                .take()
                .map(|_| ())
                .ok_or_else(|| {
                    ApiError::NotFound("Invalid Integration identifier specified".into())
                })
        })
        .await
    }

    /// DeleteMethodResponse.
    pub async fn delete_method_response(
        &self,
        api: &str,
        resource: &str,
        method: &str,
        code: &str,
    ) -> AResult<()> {
        let method = method.to_ascii_uppercase();
        self.change(api, |a| {
            Self::method_mut(a, resource, &method)?
                .responses
                .remove(code)
                .map(|_| ())
                .ok_or_else(|| ApiError::NotFound("Invalid Response status code specified".into()))
        })
        .await
    }

    /// DeleteIntegrationResponse.
    pub async fn delete_integration_response(
        &self,
        api: &str,
        resource: &str,
        method: &str,
        code: &str,
    ) -> AResult<()> {
        let method = method.to_ascii_uppercase();
        self.change(api, |a| {
            Self::method_mut(a, resource, &method)?
                .integration
                .as_mut()
                .ok_or_else(|| {
                    ApiError::NotFound("Invalid Integration identifier specified".into())
                })?
                .responses
                .remove(code)
                .map(|_| ())
                .ok_or_else(|| ApiError::NotFound("Invalid Response status code specified".into()))
        })
        .await
    }

    /// What a request to a stage needs: the API's settings (without its draft resources and
    /// deployment history, which requests never read), the stage, and the deployed resources
    /// (shared with the record, not copied).
    pub fn served(
        &self,
        api: &str,
        stage: &str,
    ) -> Option<(RestApi, Stage, std::sync::Arc<Vec<Resource>>)> {
        let (settings, st) = self.map.read(api, |a| {
            let st = a.stages.get(stage)?.clone();
            a.deployments.get(&st.deployment_id)?;
            let settings = RestApi {
                id: a.id.clone(),
                name: a.name.clone(),
                description: None,
                created: a.created,
                root_id: a.root_id.clone(),
                binary_media_types: a.binary_media_types.clone(),
                resources: BTreeMap::new(),
                deployments: BTreeMap::new(),
                stages: BTreeMap::new(),
                tags: BTreeMap::new(),
                authorizers: a.authorizers.clone(),
                gateway_responses: a.gateway_responses.clone(),
                models: a.models.clone(),
                validators: a.validators.clone(),
            };
            Some((settings, st))
        })??;
        let resources = self.snapshots.get(&snapshot_key(api, &st.deployment_id))?;
        Some((settings, st, resources))
    }
}

/// A patch of one entry of a string map (`/requestTemplates/application~1json`).
fn patch_map(
    map: &mut BTreeMap<String, String>,
    op: &PatchOp,
    key: &str,
    allowed: &str,
) -> AResult<()> {
    let key = unescape_pointer(key);
    match op.op.as_str() {
        "add" | "replace" => {
            map.insert(key, op.value.clone().unwrap_or_default());
        }
        "remove" => {
            map.remove(&key);
        }
        _ => return Err(invalid_patch(op, allowed)),
    }
    Ok(())
}

/// One UpdateStage patch operation.
fn apply_stage_patch(
    st: &mut Stage,
    op: &PatchOp,
    deployments: &[String],
    resources: &[Resource],
) -> AResult<()> {
    let allowed = "/description, /deploymentId, /tracingEnabled, /cacheClusterEnabled, /cacheClusterSize, /clientCertificateId, /documentationVersion, /accessLogSettings/destinationArn, /accessLogSettings/format, /variables/{name}, /{resourcePath}/{httpMethod}/throttling/rateLimit, /{resourcePath}/{httpMethod}/throttling/burstLimit, /{resourcePath}/{httpMethod}/metrics/enabled, /{resourcePath}/{httpMethod}/logging/loglevel, /{resourcePath}/{httpMethod}/logging/dataTrace, /{resourcePath}/{httpMethod}/caching/enabled, /{resourcePath}/{httpMethod}/caching/ttlInSeconds, /{resourcePath}/{httpMethod}/caching/dataEncrypted, /{resourcePath}/{httpMethod}/caching/requireAuthorizationForCacheControl, /{resourcePath}/{httpMethod}/caching/unauthorizedCacheControlHeaderStrategy";
    let path = op.path.as_str();
    match (op.op.as_str(), path) {
        ("replace", "/description") => st.description = op.value.clone(),
        ("replace", "/deploymentId") => {
            let d = patch_value(op)?;
            if !deployments.iter().any(|x| x == d) {
                return Err(ApiError::BadRequest(format!("Invalid deployment id: {d}")));
            }
            st.deployment_id = d.to_string();
        }
        ("replace", "/tracingEnabled") => st.tracing_enabled = patch_bool(op)?,
        ("replace", "/cacheClusterEnabled") => st.options.cache_cluster_enabled = patch_bool(op)?,
        ("replace", "/cacheClusterSize") => {
            let v = patch_value(op)?;
            const SIZES: [&str; 8] = ["0.5", "1.6", "6.1", "13.5", "28.4", "58.2", "118", "237"];
            if !SIZES.contains(&v) {
                return Err(ApiError::BadRequest(format!(
                    "Invalid cache cluster size '{v}': must be one of {}",
                    SIZES.join(", ")
                )));
            }
            st.options.cache_cluster_size = Some(v.to_string());
        }
        ("replace", "/clientCertificateId") => st.options.client_certificate_id = op.value.clone(),
        ("replace", "/documentationVersion") => st.options.documentation_version = op.value.clone(),
        ("replace", "/accessLogSettings/destinationArn") => {
            st.options.access_log_destination_arn = Some(patch_value(op)?.to_string())
        }
        ("replace", "/accessLogSettings/format") => {
            st.options.access_log_format = Some(patch_value(op)?.to_string())
        }
        ("remove", "/accessLogSettings") => {
            st.options.access_log_destination_arn = None;
            st.options.access_log_format = None;
        }
        (o, p) if p.starts_with("/variables/") => {
            let name = unescape_pointer(&p["/variables/".len()..]);
            match o {
                "add" | "replace" => {
                    st.variables.insert(name, patch_value(op)?.to_string());
                }
                "remove" => {
                    st.variables.remove(&name);
                }
                _ => return Err(invalid_patch(op, allowed)),
            }
        }
        (o @ ("replace" | "remove"), p) => {
            // /{resource}/{method}/{group}/{setting}
            let segs: Vec<&str> = p.trim_start_matches('/').split('/').collect();
            let [res, method, group, setting] = segs[..] else {
                return Err(invalid_patch(op, allowed));
            };
            let key = format!("{res}/{method}");
            if key != "*/*" {
                let rpath = unescape_pointer(res);
                let found = resources
                    .iter()
                    .any(|r| r.path == rpath && (r.methods.contains_key(method) || method == "*"));
                if !found {
                    return Err(ApiError::BadRequest(format!(
                        "Cannot find method for {rpath} {method}: no such resource and method in this API"
                    )));
                }
            }
            let entry = st.method_settings.entry(key.clone()).or_default();
            let remove = o == "remove";
            match (group, setting) {
                ("throttling", "rateLimit") => {
                    entry.throttling_rate = if remove {
                        None
                    } else {
                        let v = patch_value(op)?;
                        let r: f64 = v.parse().ok().filter(|r: &f64| *r >= 0.0).ok_or_else(|| {
                            ApiError::BadRequest(format!(
                                "Invalid value '{v}' for throttling/rateLimit: must be a non-negative number"
                            ))
                        })?;
                        Some(r)
                    }
                }
                ("throttling", "burstLimit") => {
                    entry.throttling_burst = if remove {
                        None
                    } else {
                        let v = patch_value(op)?;
                        Some(v.parse().map_err(|_| {
                            ApiError::BadRequest(format!(
                                "Invalid value '{v}' for throttling/burstLimit: must be a non-negative integer"
                            ))
                        })?)
                    }
                }
                ("metrics", "enabled") => entry.metrics_enabled = !remove && patch_bool(op)?,
                ("caching", "enabled") => entry.caching_enabled = !remove && patch_bool(op)?,
                ("caching", "dataEncrypted") => {
                    entry.cache_data_encrypted = !remove && patch_bool(op)?
                }
                ("caching", "ttlInSeconds") => {
                    entry.cache_ttl_seconds = if remove {
                        None
                    } else {
                        let v = patch_value(op)?;
                        Some(v.parse().ok().filter(|t| *t <= 3600).ok_or_else(|| {
                            ApiError::BadRequest(format!(
                                "Invalid value '{v}' for caching/ttlInSeconds: must be an integer from 0 to 3600"
                            ))
                        })?)
                    }
                }
                ("caching", "requireAuthorizationForCacheControl") => {
                    entry.require_authorization_for_cache_control =
                        if remove { None } else { Some(patch_bool(op)?) }
                }
                ("caching", "unauthorizedCacheControlHeaderStrategy") => {
                    entry.unauthorized_cache_control_header_strategy = if remove {
                        None
                    } else {
                        let v = patch_value(op)?;
                        const ALLOWED: [&str; 3] = [
                            "FAIL_WITH_403",
                            "SUCCEED_WITH_RESPONSE_HEADER",
                            "SUCCEED_WITHOUT_RESPONSE_HEADER",
                        ];
                        if !ALLOWED.contains(&v) {
                            return Err(ApiError::BadRequest(format!(
                                "Invalid value '{v}' for caching/unauthorizedCacheControlHeaderStrategy: must be one of {}",
                                ALLOWED.join(", ")
                            )));
                        }
                        Some(v.to_string())
                    }
                }
                ("logging", "dataTrace") => entry.data_trace = !remove && patch_bool(op)?,
                ("logging", "loglevel") => {
                    entry.logging_level = if remove {
                        None
                    } else {
                        let v = patch_value(op)?;
                        if !["OFF", "ERROR", "INFO"].contains(&v) {
                            return Err(ApiError::BadRequest(format!(
                                "Invalid logging level '{v}': must be OFF, ERROR or INFO"
                            )));
                        }
                        Some(v.to_string())
                    }
                }
                _ => return Err(invalid_patch(op, allowed)),
            }
            if *entry == MethodSetting::default() {
                st.method_settings.remove(&key);
            }
        }
        _ => return Err(invalid_patch(op, allowed)),
    }
    Ok(())
}

/// The resource a path selects: literal segments over `{param}` over a greedy `{proxy+}`;
/// returns it with its path parameters.
pub fn match_resource<'a>(
    resources: &'a [Resource],
    path: &str,
) -> Option<(&'a Resource, BTreeMap<String, String>)> {
    let req: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // (rank, resource, path parameters); lower ranks are more specific.
    type Candidate<'r> = ((u8, usize), &'r Resource, BTreeMap<String, String>);
    let mut best: Option<Candidate<'a>> = None;
    for r in resources {
        let pat: Vec<&str> = r.path.split('/').filter(|s| !s.is_empty()).collect();
        let mut params = BTreeMap::new();
        let mut greedy = false;
        let mut vars = 0;
        let mut ok = true;
        for (i, seg) in pat.iter().enumerate() {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix("+}")) {
                let rest = req.get(i..).map(|r| r.join("/")).unwrap_or_default();
                ok = !rest.is_empty();
                params.insert(name.to_string(), rest);
                greedy = true;
                break;
            }
            match req.get(i) {
                Some(actual) => {
                    if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        params.insert(name.to_string(), (*actual).to_string());
                        vars += 1;
                    } else if seg != actual {
                        ok = false;
                        break;
                    }
                }
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if !greedy && pat.len() != req.len() {
            ok = false;
        }
        if !ok {
            continue;
        }
        let rank = (u8::from(greedy), vars);
        if best.as_ref().is_none_or(|(b, _, _)| rank < *b) {
            best = Some((rank, r, params));
        }
    }
    best.map(|(_, r, p)| (r, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn deployments_are_records_of_their_own_and_old_records_move_out() {
        use nimbus_store::WriteOp;
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(dir.path()).expect("store");
        let apis = RestApis::open(store.clone()).expect("open");
        let api = apis
            .create(Some("a".into()), None, vec![], BTreeMap::new())
            .await
            .expect("api");
        let input = MethodInput {
            authorization_type: Some("NONE".into()),
            ..Default::default()
        };
        apis.put_method(&api.id, &api.root_id, "GET", input)
            .await
            .expect("method");
        for _ in 0..20 {
            apis.create_deployment(&api.id, Some("prod".into()), None, BTreeMap::new())
                .await
                .expect("deploy");
        }
        let record = |store: &Store| {
            store
                .records(KIND)
                .expect("records")
                .into_iter()
                .find(|(k, _)| *k == api.id)
                .expect("the API's record")
                .1
        };
        let body = record(&store);
        // Only the draft resources are in the API's record, however many deployments it has.
        assert_eq!(body.matches("\"path\":\"/\"").count(), 1, "{body}");
        let snapshots = |store: &Store| store.records(SNAPSHOT_KIND).expect("snapshots").len();
        assert_eq!(snapshots(&store), 20);
        let (_, st, served) = apis.served(&api.id, "prod").expect("served");
        assert_eq!(served.len(), 1);
        let old = apis
            .get(&api.id)
            .expect("api")
            .deployments
            .into_keys()
            .find(|d| *d != st.deployment_id)
            .expect("an older deployment");
        apis.delete_deployment(&api.id, &old).await.expect("delete");
        assert_eq!(snapshots(&store), 19);

        // A record written by an earlier version holds its snapshots inside, and a crash left
        // an orphan snapshot: the start moves the first out and removes the second.
        let mut legacy: serde_json::Value = serde_json::from_str(&body).expect("json");
        legacy["deployments"][&st.deployment_id]["resources"] =
            serde_json::to_value(&*served).expect("json");
        legacy["deployments"]
            .as_object_mut()
            .expect("deployments")
            .retain(|k, _| *k == st.deployment_id);
        assert_eq!(legacy.to_string().matches("\"path\":\"/\"").count(), 2);
        drop(apis);
        let mut ops = vec![WriteOp::PutRecord {
            kind: KIND.into(),
            key: api.id.clone(),
            body: legacy.to_string(),
        }];
        for (k, _) in store.records(SNAPSHOT_KIND).expect("snapshots") {
            ops.push(WriteOp::DeleteRecord {
                kind: SNAPSHOT_KIND.into(),
                key: k,
            });
        }
        ops.push(WriteOp::PutRecord {
            kind: SNAPSHOT_KIND.into(),
            key: "gone/gone".into(),
            body: "[]".into(),
        });
        store.write_async(ops).await.expect("write");
        let apis = RestApis::open(store.clone()).expect("reopen");
        apis.migrate().await.expect("migrate");
        let (_, _, again) = apis.served(&api.id, "prod").expect("served after the move");
        assert_eq!(*again, *served);
        assert_eq!(
            record(&store).matches("\"path\":\"/\"").count(),
            1,
            "the snapshot moved out of the API's record"
        );
        let keys: Vec<String> = store
            .records(SNAPSHOT_KIND)
            .expect("snapshots")
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, vec![snapshot_key(&api.id, &st.deployment_id)]);
    }

    fn res(path: &str) -> Resource {
        Resource {
            id: path.into(),
            parent_id: None,
            path_part: String::new(),
            path: path.into(),
            methods: BTreeMap::new(),
        }
    }

    #[test]
    fn resources_match_like_api_gateway() {
        let rs = vec![
            res("/"),
            res("/sms"),
            res("/items/{id}"),
            res("/items/special"),
            res("/{proxy+}"),
        ];
        assert_eq!(
            match_resource(&rs, "/").map(|(r, _)| r.path.as_str()),
            Some("/")
        );
        assert_eq!(
            match_resource(&rs, "/sms").map(|(r, _)| r.path.as_str()),
            Some("/sms")
        );
        assert_eq!(
            match_resource(&rs, "/items/special").map(|(r, _)| r.path.as_str()),
            Some("/items/special")
        );
        let (r, p) = match_resource(&rs, "/items/9").expect("match");
        assert_eq!(
            (r.path.as_str(), p.get("id").map(String::as_str)),
            ("/items/{id}", Some("9"))
        );
        let (r, p) = match_resource(&rs, "/a/b").expect("match");
        assert_eq!(
            (r.path.as_str(), p.get("proxy").map(String::as_str)),
            ("/{proxy+}", Some("a/b"))
        );
    }
}
