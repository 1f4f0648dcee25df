//! API Gateway HTTP APIs (`apigatewayv2`): APIs with their integrations, routes, stages and
//! deployments, and the route matching API Gateway does. Each API is one record (kind
//! `http-api`) holding its parts; what each deployment froze is a record of its own (kind
//! `http-deployment`, key `<api>/<deployment>`), so the API's record does not grow with its
//! deployment history and requests never copy it.

use std::collections::BTreeMap;

use nimbus_store::Store;
use serde::{Deserialize, Serialize};

use nimbus_core::error::{CoreError, Result};
use nimbus_core::records::RecordMap;

const KIND: &str = "http-api";
const SNAPSHOT_KIND: &str = "http-deployment";

fn snapshot_key(api: &str, deployment: &str) -> String {
    format!("{api}/{deployment}")
}

/// An HTTP API integration (`Integration`): where a route's requests go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Integration {
    /// `integrationId` (7 lowercase alphanumerics); routes name it as `integrations/<id>`.
    pub id: String,
    /// `integrationType`: `AWS_PROXY` (a Lambda function) or `HTTP_PROXY` (a URL); `MOCK`, `AWS`
    /// and `HTTP` are refused.
    pub integration_type: String,
    /// `integrationUri`: a function ARN (or its `arn:aws:apigateway:…/functions/<arn>/invocations`
    /// form) for `AWS_PROXY`, a URL for `HTTP_PROXY`; may hold `${stageVariables.name}` references.
    pub integration_uri: Option<String>,
    /// `integrationMethod`: stored and returned; `HTTP_PROXY` forwards with the request's own
    /// method.
    pub integration_method: Option<String>,
    /// `payloadFormatVersion`: `1.0` or `2.0` (the default for `AWS_PROXY`; `HTTP_PROXY` defaults
    /// to `1.0`).
    pub payload_format_version: String,
    /// `timeoutInMillis`: 50–30,000 ms (default 30,000).
    pub timeout_ms: u32,
    /// `description`.
    pub description: Option<String>,
}

/// An HTTP API route (`Route`): a route key and the integration it sends requests to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// `routeId` (7 lowercase alphanumerics).
    pub id: String,
    /// `routeKey`: `$default` or `METHOD /path` (see [`check_route_key`]); unique within the API.
    pub route_key: String,
    /// `target`: `integrations/<integrationId>`; a route without one answers 500.
    pub target: Option<String>,
    /// With `authorizationType` CUSTOM: the Lambda authorizer.
    #[serde(default)]
    pub authorizer_id: Option<String>,
}

/// A Lambda authorizer of an HTTP API (`REQUEST`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Authorizer {
    /// `authorizerId` (6 lowercase alphanumerics).
    pub id: String,
    /// `name`; required.
    pub name: String,
    /// `authorizerUri`: the function to call, in any form an `AWS_PROXY` integration URI takes.
    pub authorizer_uri: String,
    /// `$request.header.X`, `$request.querystring.X`, `$context.X`, `$stageVariables.X`.
    pub identity_source: Vec<String>,
    /// `authorizerPayloadFormatVersion`: `1.0` or `2.0`.
    pub payload_format_version: String,
    /// `enableSimpleResponses`: the function answers `{"isAuthorized": …}` rather than an IAM
    /// policy; only with payload format 2.0.
    pub simple_responses: bool,
    /// `authorizerResultTtlInSeconds`: 0–3600; 0 turns caching off, and any other value needs an
    /// `identitySource`.
    pub ttl_seconds: u32,
}

/// What CreateAuthorizer / UpdateAuthorizer carry.
#[derive(Debug, Clone, Default)]
pub struct AuthorizerInput {
    /// `name`; required on create.
    pub name: Option<String>,
    /// `authorizerType`: `REQUEST`, required on create (`JWT` is refused).
    pub authorizer_type: Option<String>,
    /// `authorizerUri`.
    pub authorizer_uri: Option<String>,
    /// `identitySource`, replacing the current list.
    pub identity_source: Option<Vec<String>>,
    /// `authorizerPayloadFormatVersion`.
    pub payload_format_version: Option<String>,
    /// `enableSimpleResponses`.
    pub simple_responses: Option<bool>,
    /// `authorizerResultTtlInSeconds`, checked to be 0–3600.
    pub ttl_seconds: Option<i64>,
}

/// A route's authorization: `NONE`, or `CUSTOM` with an authorizer.
#[derive(Debug, Clone, Default)]
pub struct RouteAuth {
    /// `authorizationType`: `NONE` or `CUSTOM` (others are refused); absent keeps the route's
    /// current authorizer.
    pub authorization_type: Option<String>,
    /// `authorizerId`: an authorizer of the same API; required with `CUSTOM` unless the route has
    /// one.
    pub authorizer_id: Option<String>,
}

/// An HTTP API stage (`Stage`): a name in the invoke URL serving a deployment, or the live
/// routes when it deploys automatically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// `stageName`: `$default` (served without a stage segment in the path) or a name.
    pub name: String,
    /// `defaultRouteSettings` throttling: requests per second and burst.
    #[serde(default)]
    pub throttling_rate: Option<f64>,
    /// `defaultRouteSettings.throttlingBurstLimit`: the bucket's size, in requests.
    #[serde(default)]
    pub throttling_burst: Option<u32>,
    /// `routeSettings`: per-route throttling (rate, burst) by route key, over the default.
    #[serde(default)]
    pub route_throttling: BTreeMap<String, (Option<f64>, Option<u32>)>,
    /// `autoDeploy`: the stage serves the API's current routes and integrations, not a deployment.
    pub auto_deploy: bool,
    /// `deploymentId`: the deployment served when the stage does not deploy automatically.
    pub deployment_id: Option<String>,
    /// `stageVariables`, substituted into integration URIs as `${stageVariables.name}`.
    pub stage_variables: BTreeMap<String, String>,
    /// `description`.
    pub description: Option<String>,
    /// `createdDate`: ISO 8601 to the second, UTC.
    pub created: String,
    /// `lastUpdatedDate`: ISO 8601 to the second, UTC.
    pub updated: String,
}

/// A deployment as the API's record holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// `deploymentId` (10 lowercase alphanumerics); its snapshot is the record
    /// `<api>/<deploymentId>`.
    pub id: String,
    /// `createdDate`: ISO 8601 to the second, UTC.
    pub created: String,
    /// `description`.
    pub description: Option<String>,
    /// What the deployment froze, in records written before snapshots were records of their
    /// own; moved out when the store is opened ([`HttpApis::migrate`]).
    #[serde(default, rename = "routes", skip_serializing)]
    legacy_routes: Option<Vec<Route>>,
    #[serde(default, rename = "integrations", skip_serializing)]
    legacy_integrations: Option<BTreeMap<String, Integration>>,
}

/// What a deployment froze: the routes and integrations of that moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The routes as they were when deployed.
    pub routes: Vec<Route>,
    /// The integrations as they were when deployed, by id.
    pub integrations: BTreeMap<String, Integration>,
}

/// An HTTP API (`Api` with `protocolType` HTTP), as stored: one record holding all its parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpApi {
    /// `apiId` (10 lowercase alphanumerics): the host name's first label,
    /// `<apiId>.execute-api.<host>`.
    pub id: String,
    /// `name`; required and not empty.
    pub name: String,
    /// `protocolType`: always `HTTP` (`WEBSOCKET` is refused).
    pub protocol_type: String,
    /// `description`.
    pub description: Option<String>,
    /// `routeSelectionExpression`: always `$request.method $request.path`.
    pub route_selection_expression: String,
    /// `createdDate`: ISO 8601 to the second, UTC.
    pub created: String,
    /// `tags`.
    pub tags: BTreeMap<String, String>,
    /// The integrations, by `integrationId`.
    pub integrations: BTreeMap<String, Integration>,
    /// The routes, by `routeId`.
    pub routes: BTreeMap<String, Route>,
    /// The stages, by `stageName`.
    pub stages: BTreeMap<String, Stage>,
    /// The deployments, by `deploymentId` (their snapshots are records of their own).
    pub deployments: BTreeMap<String, Deployment>,
    /// `corsConfiguration`: preflights answered and headers added by the gateway.
    #[serde(default)]
    pub cors: Option<nimbus_core::cors::Cors>,
    /// The Lambda (`REQUEST`) authorizers, by `authorizerId`.
    #[serde(default)]
    pub authorizers: BTreeMap<String, Authorizer>,
}

/// Errors in API Gateway's vocabulary.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404 `NotFoundException`: no such API, stage, route or other part.
    #[error("{0}")]
    NotFound(String),
    /// 400 `BadRequestException`: an invalid or unsupported input.
    #[error("{0}")]
    BadRequest(String),
    /// 409 `ConflictException`: a duplicate, or a part still in use.
    #[error("{0}")]
    Conflict(String),
    /// 500 `InternalServerErrorException`: the store or the platform failed.
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl From<nimbus_store::StoreError> for ApiError {
    fn from(e: nimbus_store::StoreError) -> Self {
        ApiError::Core(CoreError::from(e))
    }
}

/// A result of the gateway's control planes, failing with an [`ApiError`].
pub type AResult<T> = std::result::Result<T, ApiError>;

/// A new API (CreateApi).
#[derive(Debug, Clone, Default)]
pub struct ApiInput {
    /// `name`; required and not empty.
    pub name: Option<String>,
    /// `protocolType`: `HTTP` (`WEBSOCKET` is refused); required.
    pub protocol_type: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// `target` (quick create): a function for an `AWS_PROXY` integration (payload 2.0), with a
    /// route and an auto-deploying `$default` stage.
    pub target: Option<String>,
    /// `routeKey` (quick create): the route's key, `$default` when absent; only with `target`.
    pub route_key: Option<String>,
    /// `tags`.
    pub tags: BTreeMap<String, String>,
    /// `corsConfiguration`, already checked.
    pub cors: Option<nimbus_core::cors::Cors>,
}

/// What CreateIntegration and UpdateIntegration carry (and what an OpenAPI operation's
/// `x-amazon-apigateway-integration` yields); equal inputs share one integration on import.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IntegrationInput {
    /// `integrationType`: `AWS_PROXY` or `HTTP_PROXY`; required on create, not changed by update.
    pub integration_type: Option<String>,
    /// `integrationUri`; required for both types.
    pub integration_uri: Option<String>,
    /// `integrationMethod`; only on create.
    pub integration_method: Option<String>,
    /// `payloadFormatVersion`: `1.0` or `2.0`.
    pub payload_format_version: Option<String>,
    /// `timeoutInMillis`: 50–30,000; values outside are refused.
    pub timeout_ms: Option<i64>,
    /// `description`.
    pub description: Option<String>,
}

/// Applies CreateAuthorizer/UpdateAuthorizer fields to an authorizer and checks the result.
fn authorizer_from(mut a: Authorizer, i: AuthorizerInput, creating: bool) -> AResult<Authorizer> {
    match i.authorizer_type.as_deref() {
        Some("REQUEST") => {}
        None if !creating => {}
        Some("JWT") => {
            return Err(ApiError::BadRequest(
                "JWT authorizers are not supported by Nimbus yet; use a Lambda (REQUEST) authorizer".into(),
            ));
        }
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "Invalid AuthorizerType {other}: must be REQUEST or JWT"
            )));
        }
        None => return Err(ApiError::BadRequest("AuthorizerType is required".into())),
    }
    if let Some(n) = i.name {
        a.name = n;
    }
    if let Some(u) = i.authorizer_uri {
        a.authorizer_uri = u;
    }
    if let Some(s) = i.identity_source {
        a.identity_source = s;
    }
    if let Some(v) = i.payload_format_version {
        a.payload_format_version = v;
    }
    if let Some(b) = i.simple_responses {
        a.simple_responses = b;
    }
    if let Some(t) = i.ttl_seconds {
        a.ttl_seconds = u32::try_from(t)
            .ok()
            .filter(|t| *t <= 3600)
            .ok_or_else(|| {
                ApiError::BadRequest(
                    "AuthorizerResultTtlInSeconds must be between 0 and 3600".into(),
                )
            })?;
    }
    if a.name.is_empty() {
        return Err(ApiError::BadRequest("Name is required".into()));
    }
    if a.authorizer_uri.is_empty() {
        return Err(ApiError::BadRequest(
            "AuthorizerUri is required for a REQUEST authorizer".into(),
        ));
    }
    if a.payload_format_version != "1.0" && a.payload_format_version != "2.0" {
        return Err(ApiError::BadRequest(
            "AuthorizerPayloadFormatVersion is required for a REQUEST authorizer: 1.0 or 2.0"
                .into(),
        ));
    }
    if a.simple_responses && a.payload_format_version != "2.0" {
        return Err(ApiError::BadRequest(
            "EnableSimpleResponses is only supported with AuthorizerPayloadFormatVersion 2.0"
                .into(),
        ));
    }
    let prefixes = [
        "$request.header.",
        "$request.querystring.",
        "$context.",
        "$stageVariables.",
    ];
    if let Some(bad) = a
        .identity_source
        .iter()
        .find(|s| !prefixes.iter().any(|p| s.starts_with(p)))
    {
        return Err(ApiError::BadRequest(format!(
            "Invalid identity source {bad}: use $request.header.<name>, $request.querystring.<name>, $context.<name> or $stageVariables.<name>"
        )));
    }
    if a.ttl_seconds > 0 && a.identity_source.is_empty() {
        return Err(ApiError::BadRequest(
            "IdentitySource is required when authorizer caching is enabled".into(),
        ));
    }
    Ok(a)
}

/// The authorizer a route ends up with after a Create/UpdateRoute's authorization fields.
fn route_authorizer(
    a: &HttpApi,
    auth: &RouteAuth,
    current: Option<String>,
) -> AResult<Option<String>> {
    let id = match auth.authorization_type.as_deref() {
        None => auth.authorizer_id.clone().or(current),
        Some("NONE") => return Ok(None),
        Some("CUSTOM") => auth.authorizer_id.clone().or(current),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "AuthorizationType {other} is not supported by Nimbus yet; use NONE or CUSTOM"
            )));
        }
    };
    match id {
        Some(id) if a.authorizers.contains_key(&id) => Ok(Some(id)),
        Some(id) => Err(ApiError::BadRequest(format!(
            "Invalid authorizer id {id}: no such authorizer in this API"
        ))),
        None if auth.authorization_type.as_deref() == Some("CUSTOM") => Err(ApiError::BadRequest(
            "AuthorizationType CUSTOM requires an AuthorizerId".into(),
        )),
        None => Ok(None),
    }
}

fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// API Gateway ids: 10 lowercase alphanumerics.
fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_string()
}

/// A route key: `$default` or `METHOD /path` (method `ANY` or an HTTP method, path starting
/// with `/`, `{param}` segments, a greedy `{proxy+}` only last).
pub fn check_route_key(key: &str) -> AResult<()> {
    if key == "$default" {
        return Ok(());
    }
    let bad = || {
        ApiError::BadRequest(format!(
            "Invalid route key: {key}. Expected `$default` or an HTTP method and a path starting with /, such as `GET /items/{{id}}`."
        ))
    };
    let (method, path) = key.split_once(' ').ok_or_else(bad)?;
    let methods = [
        "ANY", "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS",
    ];
    if !methods.contains(&method) || !path.starts_with('/') {
        return Err(bad());
    }
    let segs: Vec<&str> = path.split('/').skip(1).collect();
    for (i, s) in segs.iter().enumerate() {
        if s.ends_with("+}") && i + 1 != segs.len() {
            return Err(ApiError::BadRequest(format!(
                "Invalid route key: {key}. A greedy path variable must be the last segment."
            )));
        }
    }
    Ok(())
}

/// The route for a request, as API Gateway picks it: method-specific over `ANY`, literal
/// segments over variables, variables over a greedy `{proxy+}`, and `$default` last. Returns the
/// route and its path parameters.
pub fn match_route<'a>(
    routes: impl Iterator<Item = &'a Route>,
    method: &str,
    path: &str,
) -> Option<(Route, BTreeMap<String, String>)> {
    let req: Vec<&str> = path.split('/').skip(1).collect();
    // (rank, route, path parameters); lower ranks are more specific.
    type Candidate = ((u8, usize, usize, u8), Route, BTreeMap<String, String>);
    let mut best: Option<Candidate> = None;
    let mut default = None;
    for r in routes {
        if r.route_key == "$default" {
            default = Some(r.clone());
            continue;
        }
        let Some((m, p)) = r.route_key.split_once(' ') else {
            continue;
        };
        if m != "ANY" && !m.eq_ignore_ascii_case(method) {
            continue;
        }
        let pat: Vec<&str> = p.split('/').skip(1).collect();
        let mut params = BTreeMap::new();
        let mut greedy = false;
        let mut vars = 0;
        let mut ok = true;
        for (i, seg) in pat.iter().enumerate() {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix("+}")) {
                let rest = req.get(i..).map(|r| r.join("/")).unwrap_or_default();
                if rest.is_empty() {
                    ok = false;
                }
                params.insert(name.to_string(), rest);
                greedy = true;
                break;
            }
            let Some(actual) = req.get(i) else {
                ok = false;
                break;
            };
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                if actual.is_empty() {
                    ok = false;
                    break;
                }
                params.insert(name.to_string(), (*actual).to_string());
                vars += 1;
            } else if seg != actual {
                ok = false;
                break;
            }
        }
        if !greedy && pat.len() != req.len() {
            ok = false;
        }
        if !ok {
            continue;
        }
        let literal = pat.len() - vars - usize::from(greedy);
        let rank = (
            u8::from(greedy),
            vars,
            usize::MAX - literal,
            u8::from(m == "ANY"),
        );
        if best.as_ref().is_none_or(|(b, _, _)| rank < *b) {
            best = Some((rank, r.clone(), params));
        }
    }
    best.map(|(_, r, p)| (r, p))
        .or_else(|| default.map(|r| (r, BTreeMap::new())))
}

/// The HTTP APIs, one record each (kind `http-api`), and their deployments' snapshots (kind
/// `http-deployment`).
pub struct HttpApis {
    map: RecordMap<HttpApi>,
    snapshots: RecordMap<std::sync::Arc<Snapshot>>,
}

impl HttpApis {
    /// Loads the stored APIs and snapshots; [`HttpApis::migrate`] should run before serving.
    pub fn open(store: Store) -> Result<HttpApis> {
        Ok(HttpApis {
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
                .any(|d| d.legacy_routes.is_some() || d.legacy_integrations.is_some())
            {
                continue;
            }
            for d in api.deployments.values_mut() {
                let snapshot = Snapshot {
                    routes: d.legacy_routes.take().unwrap_or_default(),
                    integrations: d.legacy_integrations.take().unwrap_or_default(),
                };
                self.snapshots
                    .put(snapshot_key(&api.id, &d.id), std::sync::Arc::new(snapshot))
                    .await?;
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

    /// GetApi: the API with all its parts (404 when unknown).
    pub fn get(&self, id: &str) -> AResult<HttpApi> {
        self.map
            .get(id)
            .ok_or_else(|| ApiError::NotFound(format!("Invalid API identifier specified {id}")))
    }

    /// Whether an HTTP API exists (read in place: no copy of the record).
    pub fn exists(&self, id: &str) -> bool {
        self.map.contains(id)
    }

    /// Whether an HTTP API has a stage of this name; `None` when the API does not exist (read
    /// in place, per request: no copy of the record).
    pub fn has_stage(&self, id: &str, stage: &str) -> Option<bool> {
        self.map.read(id, |a| a.stages.contains_key(stage))
    }

    /// Whether an HTTP API exists, and its CORS configuration.
    pub fn cors(&self, id: &str) -> Option<Option<nimbus_core::cors::Cors>> {
        self.map.read(id, |a| a.cors.clone())
    }

    /// GetApis: every API with all its parts, in id order.
    pub fn list(&self) -> Vec<HttpApi> {
        self.map.values()
    }

    async fn save(&self, api: HttpApi) -> AResult<HttpApi> {
        Ok(self.map.put(api.id.clone(), api).await?)
    }

    /// Applies a change to an API and stores it (stages that deploy automatically follow).
    async fn change<T>(&self, id: &str, f: impl FnOnce(&mut HttpApi) -> AResult<T>) -> AResult<T> {
        let _edit = self.map.edit().await;
        let mut api = self.get(id)?;
        let out = f(&mut api)?;
        self.save(api).await?;
        Ok(out)
    }

    fn integration(input: IntegrationInput) -> AResult<Integration> {
        let t = input
            .integration_type
            .ok_or_else(|| ApiError::BadRequest("IntegrationType is required".into()))?;
        match t.as_str() {
            "AWS_PROXY" => {
                if input.integration_uri.is_none() {
                    return Err(ApiError::BadRequest(
                        "IntegrationUri is required for an AWS_PROXY integration".into(),
                    ));
                }
            }
            "HTTP_PROXY" => {
                if input.integration_uri.is_none() {
                    return Err(ApiError::BadRequest(
                        "IntegrationUri is required for an HTTP_PROXY integration".into(),
                    ));
                }
            }
            "MOCK" | "AWS" | "HTTP" => {
                return Err(ApiError::BadRequest(format!(
                    "Integration type {t} is not supported by Nimbus HTTP APIs yet; use AWS_PROXY or HTTP_PROXY."
                )));
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "Invalid integration type {other}. Valid values: AWS_PROXY, HTTP_PROXY, MOCK."
                )));
            }
        }
        let version = input
            .payload_format_version
            .unwrap_or_else(|| if t == "HTTP_PROXY" { "1.0" } else { "2.0" }.into());
        if version != "1.0" && version != "2.0" {
            return Err(ApiError::BadRequest(format!(
                "Invalid payload format version {version}. Valid values: 1.0, 2.0."
            )));
        }
        let timeout = input.timeout_ms.unwrap_or(30_000);
        if !(50..=30_000).contains(&timeout) {
            return Err(ApiError::BadRequest(
                "TimeoutInMillis must be between 50 and 30000".into(),
            ));
        }
        Ok(Integration {
            id: new_id()[..7].to_string(),
            integration_type: t,
            integration_uri: input.integration_uri,
            integration_method: input.integration_method,
            payload_format_version: version,
            timeout_ms: timeout as u32,
            description: input.description,
        })
    }

    /// CreateApi, including quick create (`Target`: an integration, a route and a `$default`
    /// stage that deploys automatically).
    pub async fn create(&self, input: ApiInput) -> AResult<HttpApi> {
        let name = input
            .name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ApiError::BadRequest("Name is required".into()))?;
        match input.protocol_type.as_deref() {
            Some("HTTP") => {}
            Some("WEBSOCKET") => {
                return Err(ApiError::BadRequest(
                    "WEBSOCKET APIs are not supported by Nimbus yet".into(),
                ));
            }
            _ => {
                return Err(ApiError::BadRequest(
                    "ProtocolType is required and must be HTTP or WEBSOCKET".into(),
                ));
            }
        }
        let mut api = HttpApi {
            id: new_id(),
            name,
            protocol_type: "HTTP".into(),
            description: input.description,
            route_selection_expression: "$request.method $request.path".into(),
            created: now(),
            tags: input.tags,
            integrations: BTreeMap::new(),
            routes: BTreeMap::new(),
            stages: BTreeMap::new(),
            deployments: BTreeMap::new(),
            cors: input.cors,
            authorizers: BTreeMap::new(),
        };
        if let Some(target) = input.target {
            let i = Self::integration(IntegrationInput {
                integration_type: Some("AWS_PROXY".into()),
                integration_uri: Some(target),
                payload_format_version: Some("2.0".into()),
                ..IntegrationInput::default()
            })?;
            let key = input.route_key.unwrap_or_else(|| "$default".into());
            check_route_key(&key)?;
            let r = Route {
                id: new_id()[..7].to_string(),
                route_key: key,
                target: Some(format!("integrations/{}", i.id)),
                authorizer_id: None,
            };
            api.integrations.insert(i.id.clone(), i);
            api.routes.insert(r.id.clone(), r);
            let t = now();
            api.stages.insert(
                "$default".into(),
                Stage {
                    name: "$default".into(),
                    throttling_rate: None,
                    throttling_burst: None,
                    route_throttling: BTreeMap::new(),
                    auto_deploy: true,
                    deployment_id: None,
                    stage_variables: BTreeMap::new(),
                    description: None,
                    created: t.clone(),
                    updated: t,
                },
            );
        } else if input.route_key.is_some() {
            return Err(ApiError::BadRequest(
                "RouteKey can only be given with Target (quick create)".into(),
            ));
        }
        self.save(api).await
    }

    /// DeleteApi, with its deployments' snapshots.
    pub async fn delete(&self, id: &str) -> AResult<()> {
        let _edit = self.map.edit().await;
        self.get(id)?;
        self.map.remove(id).await?;
        Ok(self.snapshots.remove_prefixed(&format!("{id}/")).await?)
    }

    /// ImportApi (`existing` is `None`) and ReimportApi: the definition's routes and
    /// integrations replace the API's (one integration per distinct integration), with its name,
    /// description and CORS configuration. Stages are kept; nothing changes unless the whole
    /// definition is valid.
    pub async fn import(
        &self,
        existing: Option<&str>,
        def: crate::openapi::HttpDefinition,
    ) -> AResult<HttpApi> {
        let cors = def
            .cors
            .as_ref()
            .map(nimbus_core::cors::Cors::from_wire)
            .transpose()
            .map_err(|e| {
                ApiError::BadRequest(format!(
                    "Invalid OpenAPI input: x-amazon-apigateway-cors: {e}"
                ))
            })?;
        let mut integrations: Vec<(IntegrationInput, Integration)> = Vec::new();
        let mut routes = BTreeMap::new();
        for (key, input) in def.routes {
            check_route_key(&key)
                .map_err(|e| ApiError::BadRequest(format!("Invalid OpenAPI input: {e}")))?;
            let target = match input {
                None => None,
                Some(input) => {
                    let id = match integrations.iter().find(|(i, _)| *i == input) {
                        Some((_, made)) => made.id.clone(),
                        None => {
                            let made = Self::integration(input.clone()).map_err(|e| {
                                ApiError::BadRequest(format!("Invalid OpenAPI input: {key}: {e}"))
                            })?;
                            let id = made.id.clone();
                            integrations.push((input, made));
                            id
                        }
                    };
                    Some(format!("integrations/{id}"))
                }
            };
            let r = Route {
                id: new_id()[..7].to_string(),
                route_key: key,
                target,
                authorizer_id: None,
            };
            routes.insert(r.id.clone(), r);
        }
        let integrations: BTreeMap<String, Integration> = integrations
            .into_iter()
            .map(|(_, i)| (i.id.clone(), i))
            .collect();
        match existing {
            Some(id) => {
                self.change(id, |a| {
                    if let Some(n) = def.name.filter(|n| !n.is_empty()) {
                        a.name = n;
                    }
                    a.description = def.description.or(a.description.take());
                    a.cors = cors;
                    a.routes = routes;
                    a.integrations = integrations;
                    Ok(a.clone())
                })
                .await
            }
            None => {
                let name = def.name.filter(|n| !n.is_empty()).ok_or_else(|| {
                    ApiError::BadRequest(
                        "Invalid OpenAPI input: the document has no info.title to name the API"
                            .into(),
                    )
                })?;
                let mut api = self
                    .create(ApiInput {
                        name: Some(name),
                        protocol_type: Some("HTTP".into()),
                        description: def.description,
                        cors,
                        ..ApiInput::default()
                    })
                    .await?;
                api = self
                    .change(&api.id, |a| {
                        a.routes = routes;
                        a.integrations = integrations;
                        Ok(a.clone())
                    })
                    .await?;
                Ok(api)
            }
        }
    }

    /// CreateAuthorizer (Lambda `REQUEST` authorizers; JWT is refused until Nimbus fetches keys).
    pub async fn create_authorizer(
        &self,
        api: &str,
        input: AuthorizerInput,
    ) -> AResult<Authorizer> {
        let a = authorizer_from(
            Authorizer {
                id: new_id()[..6].to_string(),
                name: String::new(),
                authorizer_uri: String::new(),
                identity_source: Vec::new(),
                payload_format_version: String::new(),
                simple_responses: false,
                ttl_seconds: 0,
            },
            input,
            true,
        )?;
        self.change(api, |api| {
            api.authorizers.insert(a.id.clone(), a.clone());
            Ok(a)
        })
        .await
    }

    /// UpdateAuthorizer: the given fields replace the authorizer's.
    pub async fn update_authorizer(
        &self,
        api: &str,
        id: &str,
        input: AuthorizerInput,
    ) -> AResult<Authorizer> {
        self.change(api, |a| {
            let current = a.authorizers.get(id).cloned().ok_or_else(|| {
                ApiError::NotFound(format!("Invalid Authorizer identifier specified {id}"))
            })?;
            let next = authorizer_from(current, input, false)?;
            a.authorizers.insert(id.to_string(), next.clone());
            Ok(next)
        })
        .await
    }

    /// DeleteAuthorizer: refused while a route uses it.
    pub async fn delete_authorizer(&self, api: &str, id: &str) -> AResult<()> {
        self.change(api, |a| {
            if !a.authorizers.contains_key(id) {
                return Err(ApiError::NotFound(format!(
                    "Invalid Authorizer identifier specified {id}"
                )));
            }
            if let Some(r) = a
                .routes
                .values()
                .find(|r| r.authorizer_id.as_deref() == Some(id))
            {
                return Err(ApiError::Conflict(format!(
                    "Cannot delete authorizer {id}: route {} uses it",
                    r.route_key
                )));
            }
            a.authorizers.remove(id);
            Ok(())
        })
        .await
    }

    /// CreateIntegration (`AWS_PROXY` or `HTTP_PROXY`).
    pub async fn create_integration(
        &self,
        api: &str,
        input: IntegrationInput,
    ) -> AResult<Integration> {
        let i = Self::integration(input)?;
        self.change(api, |a| {
            a.integrations.insert(i.id.clone(), i.clone());
            Ok(i)
        })
        .await
    }

    /// CreateRoute: a new route key, an integration of this API as target (if any), and its
    /// authorization.
    pub async fn create_route(
        &self,
        api: &str,
        key: Option<String>,
        target: Option<String>,
        auth: RouteAuth,
    ) -> AResult<Route> {
        let key = key.ok_or_else(|| ApiError::BadRequest("RouteKey is required".into()))?;
        check_route_key(&key)?;
        self.change(api, |a| {
            let authorizer_id = route_authorizer(a, &auth, None)?;
            if a.routes.values().any(|r| r.route_key == key) {
                return Err(ApiError::Conflict(format!(
                    "Unable to create route {key}. A route with that key already exists."
                )));
            }
            if let Some(t) = &target {
                let id = t.strip_prefix("integrations/").unwrap_or("");
                if !a.integrations.contains_key(id) {
                    return Err(ApiError::BadRequest(format!(
                        "Invalid target {t}: expected integrations/<an integration of this API>"
                    )));
                }
            }
            let r = Route {
                id: new_id()[..7].to_string(),
                route_key: key,
                target,
                authorizer_id,
            };
            a.routes.insert(r.id.clone(), r.clone());
            Ok(r)
        })
        .await
    }

    /// UpdateApi: name, description, `corsConfiguration` (`Some(None)` removes it, as
    /// DeleteCorsConfiguration does).
    pub async fn update_api(
        &self,
        id: &str,
        name: Option<String>,
        description: Option<String>,
        cors: Option<Option<nimbus_core::cors::Cors>>,
    ) -> AResult<HttpApi> {
        self.change(id, |a| {
            if let Some(c) = cors {
                a.cors = c;
            }
            if let Some(n) = name {
                if n.is_empty() {
                    return Err(ApiError::BadRequest("Name must not be empty".into()));
                }
                a.name = n;
            }
            if description.is_some() {
                a.description = description;
            }
            Ok(a.clone())
        })
        .await
    }

    /// UpdateRoute: key and target.
    pub async fn update_route(
        &self,
        api: &str,
        route: &str,
        key: Option<String>,
        target: Option<String>,
        auth: RouteAuth,
    ) -> AResult<Route> {
        if let Some(k) = &key {
            check_route_key(k)?;
        }
        self.change(api, |a| {
            let current = a.routes.get(route).and_then(|r| r.authorizer_id.clone());
            let authorizer_id = route_authorizer(a, &auth, current)?;
            if let Some(t) = &target {
                let id = t.strip_prefix("integrations/").unwrap_or("");
                if !a.integrations.contains_key(id) {
                    return Err(ApiError::BadRequest(format!(
                        "Invalid target {t}: expected integrations/<an integration of this API>"
                    )));
                }
            }
            if let Some(k) = &key
                && a.routes
                    .values()
                    .any(|r| &r.route_key == k && r.id != route)
            {
                return Err(ApiError::Conflict(format!(
                    "Unable to update route: a route with key {k} already exists."
                )));
            }
            let r = a.routes.get_mut(route).ok_or_else(|| {
                ApiError::NotFound(format!("Invalid Route identifier specified {route}"))
            })?;
            if let Some(k) = key {
                r.route_key = k;
            }
            r.authorizer_id = authorizer_id;
            if target.is_some() {
                r.target = target;
            }
            Ok(r.clone())
        })
        .await
    }

    /// DeleteRoute.
    pub async fn delete_route(&self, api: &str, route: &str) -> AResult<()> {
        self.change(api, |a| {
            a.routes.remove(route).map(drop).ok_or_else(|| {
                ApiError::NotFound(format!("Invalid Route identifier specified {route}"))
            })
        })
        .await
    }

    /// UpdateIntegration: URI, payload format, timeout, description.
    pub async fn update_integration(
        &self,
        api: &str,
        id: &str,
        input: IntegrationInput,
    ) -> AResult<Integration> {
        if let Some(v) = &input.payload_format_version
            && v != "1.0"
            && v != "2.0"
        {
            return Err(ApiError::BadRequest(format!(
                "Invalid payload format version {v}. Valid values: 1.0, 2.0."
            )));
        }
        if let Some(t) = input.timeout_ms
            && !(50..=30_000).contains(&t)
        {
            return Err(ApiError::BadRequest(
                "TimeoutInMillis must be between 50 and 30000".into(),
            ));
        }
        self.change(api, |a| {
            let i = a.integrations.get_mut(id).ok_or_else(|| {
                ApiError::NotFound(format!("Invalid Integration identifier specified {id}"))
            })?;
            if input.integration_uri.is_some() {
                i.integration_uri = input.integration_uri;
            }
            if let Some(v) = input.payload_format_version {
                i.payload_format_version = v;
            }
            if let Some(t) = input.timeout_ms {
                i.timeout_ms = t as u32;
            }
            if input.description.is_some() {
                i.description = input.description;
            }
            Ok(i.clone())
        })
        .await
    }

    /// DeleteIntegration: refused while a route targets it.
    pub async fn delete_integration(&self, api: &str, id: &str) -> AResult<()> {
        self.change(api, |a| {
            let target = format!("integrations/{id}");
            if a.routes
                .values()
                .any(|r| r.target.as_deref() == Some(&target))
            {
                return Err(ApiError::Conflict(format!(
                    "Cannot delete integration {id}: a route uses it."
                )));
            }
            a.integrations.remove(id).map(drop).ok_or_else(|| {
                ApiError::NotFound(format!("Invalid Integration identifier specified {id}"))
            })
        })
        .await
    }

    /// UpdateStage: auto-deploy, deployment, stage variables (merged), description.
    pub async fn update_stage(
        &self,
        api: &str,
        name: &str,
        auto_deploy: Option<bool>,
        deployment_id: Option<String>,
        variables: Option<BTreeMap<String, String>>,
        description: Option<String>,
    ) -> AResult<Stage> {
        self.change(api, |a| {
            if let Some(d) = &deployment_id
                && !a.deployments.contains_key(d)
            {
                return Err(ApiError::NotFound(format!(
                    "Invalid Deployment identifier specified {d}"
                )));
            }
            let st = a.stages.get_mut(name).ok_or_else(|| {
                ApiError::NotFound(format!("Invalid stage identifier specified {name}"))
            })?;
            if let Some(v) = auto_deploy {
                st.auto_deploy = v;
            }
            if deployment_id.is_some() {
                st.deployment_id = deployment_id;
            }
            if let Some(v) = variables {
                st.stage_variables.extend(v);
            }
            if description.is_some() {
                st.description = description;
            }
            st.updated = now();
            Ok(st.clone())
        })
        .await
    }

    /// DeleteStage (its deployment stays).
    pub async fn delete_stage(&self, api: &str, name: &str) -> AResult<()> {
        self.change(api, |a| {
            a.stages.remove(name).map(drop).ok_or_else(|| {
                ApiError::NotFound(format!("Invalid stage identifier specified {name}"))
            })
        })
        .await
    }

    /// DeleteDeployment, with its snapshot; refused (400) while a stage serves it.
    pub async fn delete_deployment(&self, api: &str, id: &str) -> AResult<()> {
        self.change(api, |a| {
            if a.stages
                .values()
                .any(|s| s.deployment_id.as_deref() == Some(id))
            {
                return Err(ApiError::BadRequest(format!(
                    "Active stages pointing to this deployment must be moved or deleted: {id}"
                )));
            }
            a.deployments.remove(id).map(drop).ok_or_else(|| {
                ApiError::NotFound(format!("Invalid Deployment identifier specified {id}"))
            })
        })
        .await?;
        Ok(self.snapshots.remove(&snapshot_key(api, id)).await?)
    }

    /// CreateStage: a new name, optionally serving an existing deployment.
    pub async fn create_stage(
        &self,
        api: &str,
        name: Option<String>,
        auto_deploy: bool,
        deployment_id: Option<String>,
        variables: BTreeMap<String, String>,
        description: Option<String>,
    ) -> AResult<Stage> {
        let name = name.ok_or_else(|| ApiError::BadRequest("StageName is required".into()))?;
        self.change(api, |a| {
            if a.stages.contains_key(&name) {
                return Err(ApiError::Conflict(format!("Stage already exists: {name}")));
            }
            if let Some(d) = &deployment_id
                && !a.deployments.contains_key(d)
            {
                return Err(ApiError::NotFound(format!(
                    "Invalid Deployment identifier specified {d}"
                )));
            }
            let t = now();
            let s = Stage {
                name: name.clone(),
                throttling_rate: None,
                throttling_burst: None,
                route_throttling: BTreeMap::new(),
                auto_deploy,
                deployment_id,
                stage_variables: variables,
                description,
                created: t.clone(),
                updated: t,
            };
            a.stages.insert(name, s.clone());
            Ok(s)
        })
        .await
    }

    /// CreateDeployment, optionally to a stage.
    pub async fn create_deployment(
        &self,
        api: &str,
        stage: Option<String>,
        description: Option<String>,
    ) -> AResult<Deployment> {
        let _edit = self.map.edit().await;
        let mut a = self.get(api)?;
        let d = Deployment {
            id: new_id(),
            created: now(),
            description,
            legacy_routes: None,
            legacy_integrations: None,
        };
        if let Some(s) = &stage {
            let st = a.stages.get_mut(s).ok_or_else(|| {
                ApiError::NotFound(format!("Invalid stage identifier specified {s}"))
            })?;
            st.deployment_id = Some(d.id.clone());
            st.updated = now();
        }
        // The snapshot first: a crash before the API's record names it leaves an orphan that
        // the next start removes, never a deployment without its snapshot.
        let snapshot = Snapshot {
            routes: a.routes.values().cloned().collect(),
            integrations: a.integrations.clone(),
        };
        self.snapshots
            .put(snapshot_key(&a.id, &d.id), std::sync::Arc::new(snapshot))
            .await?;
        a.deployments.insert(d.id.clone(), d.clone());
        self.save(a).await?;
        Ok(d)
    }

    /// Sets a stage's default throttling (`defaultRouteSettings`).
    pub async fn set_throttling(
        &self,
        api: &str,
        stage: &str,
        rate: Option<f64>,
        burst: Option<u32>,
    ) -> AResult<Stage> {
        if rate.is_some_and(|r| r < 0.0) {
            return Err(ApiError::BadRequest(
                "ThrottlingRateLimit must not be negative".into(),
            ));
        }
        self.change(api, |a| {
            let st = a.stages.get_mut(stage).ok_or_else(|| {
                ApiError::NotFound(format!("Invalid stage identifier specified {stage}"))
            })?;
            if rate.is_some() {
                st.throttling_rate = rate;
            }
            if burst.is_some() {
                st.throttling_burst = burst;
            }
            Ok(st.clone())
        })
        .await
    }

    /// Sets (`Some`) or removes (`None`) a route's throttling (`routeSettings`, and
    /// DeleteRouteSettings); the route key must be one of the API's routes.
    pub async fn set_route_throttling(
        &self,
        api: &str,
        stage: &str,
        route_key: &str,
        limits: Option<(Option<f64>, Option<u32>)>,
    ) -> AResult<Stage> {
        if let Some((Some(r), _)) = limits
            && r < 0.0
        {
            return Err(ApiError::BadRequest(
                "ThrottlingRateLimit must not be negative".into(),
            ));
        }
        self.change(api, |a| {
            if limits.is_some() && !a.routes.values().any(|r| r.route_key == route_key) {
                return Err(ApiError::BadRequest(format!(
                    "Unable to find Route by key {route_key} within the provided RouteSettings"
                )));
            }
            let st = a.stages.get_mut(stage).ok_or_else(|| {
                ApiError::NotFound(format!("Invalid stage identifier specified {stage}"))
            })?;
            match limits {
                Some(l) => {
                    st.route_throttling.insert(route_key.to_string(), l);
                }
                None => {
                    if st.route_throttling.remove(route_key).is_none() {
                        return Err(ApiError::NotFound(format!(
                            "Unable to find RouteSettings for route key {route_key}"
                        )));
                    }
                }
            }
            Ok(st.clone())
        })
        .await
    }

    /// What a stage serves: the live routes (auto-deploy) or its deployment's snapshot.
    /// The API comes without its deployment history, which requests never read.
    pub fn served(&self, api: &str, stage: &str) -> Option<Served> {
        let (a, s, live) = self.map.read(api, |a| {
            let s = a.stages.get(stage)?.clone();
            if let Some(d) = s.deployment_id.as_deref()
                && !s.auto_deploy
                && !a.deployments.contains_key(d)
            {
                return None;
            }
            let lite = HttpApi {
                id: a.id.clone(),
                name: a.name.clone(),
                protocol_type: a.protocol_type.clone(),
                description: a.description.clone(),
                route_selection_expression: a.route_selection_expression.clone(),
                created: a.created.clone(),
                tags: BTreeMap::new(),
                integrations: BTreeMap::new(),
                routes: BTreeMap::new(),
                stages: BTreeMap::new(),
                deployments: BTreeMap::new(),
                cors: a.cors.clone(),
                authorizers: a.authorizers.clone(),
            };
            let live = s.auto_deploy.then(|| {
                (
                    a.routes.values().cloned().collect::<Vec<_>>(),
                    a.integrations.clone(),
                )
            });
            Some((lite, s, live))
        })??;
        if let Some((routes, integrations)) = live {
            return Some((a, s, routes, integrations));
        }
        let snap = self
            .snapshots
            .get(&snapshot_key(api, s.deployment_id.as_deref()?))?;
        Some((a, s, snap.routes.clone(), snap.integrations.clone()))
    }
}

/// An API, one of its stages, and the routes and integrations that stage serves.
pub type Served = (HttpApi, Stage, Vec<Route>, BTreeMap<String, Integration>);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stage_serves_its_deployment_from_a_record_of_its_own() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(dir.path()).expect("store");
        let apis = HttpApis::open(store.clone()).expect("open");
        let api = apis
            .create(ApiInput {
                name: Some("h".into()),
                protocol_type: Some("HTTP".into()),
                ..Default::default()
            })
            .await
            .expect("api");
        apis.create_route(&api.id, Some("GET /a".into()), None, RouteAuth::default())
            .await
            .expect("route");
        apis.create_stage(
            &api.id,
            Some("v1".into()),
            false,
            None,
            BTreeMap::new(),
            None,
        )
        .await
        .expect("stage");
        apis.create_deployment(&api.id, Some("v1".into()), None)
            .await
            .expect("deploy");
        // A later route is not in the deployed snapshot.
        apis.create_route(&api.id, Some("GET /b".into()), None, RouteAuth::default())
            .await
            .expect("route");
        let (lite, _, routes, _) = apis.served(&api.id, "v1").expect("served");
        let keys: Vec<&str> = routes.iter().map(|r| r.route_key.as_str()).collect();
        assert_eq!(keys, vec!["GET /a"]);
        assert!(
            lite.deployments.is_empty(),
            "requests get no deployment history"
        );
        let second = apis
            .create_deployment(&api.id, None, None)
            .await
            .expect("deploy");
        let body = store
            .records(KIND)
            .expect("records")
            .into_iter()
            .find(|(k, _)| *k == api.id)
            .expect("record")
            .1;
        assert_eq!(
            body.matches("GET /a").count(),
            1,
            "routes only once: {body}"
        );
        assert_eq!(store.records(SNAPSHOT_KIND).expect("snapshots").len(), 2);
        apis.delete_deployment(&api.id, &second.id)
            .await
            .expect("delete");
        assert_eq!(store.records(SNAPSHOT_KIND).expect("snapshots").len(), 1);
        apis.delete(&api.id).await.expect("delete api");
        assert!(store.records(SNAPSHOT_KIND).expect("snapshots").is_empty());
    }

    fn routes(keys: &[&str]) -> Vec<Route> {
        keys.iter()
            .enumerate()
            .map(|(i, k)| Route {
                id: i.to_string(),
                route_key: k.to_string(),
                target: None,
                authorizer_id: None,
            })
            .collect()
    }

    fn pick(rs: &[Route], method: &str, path: &str) -> Option<(String, BTreeMap<String, String>)> {
        match_route(rs.iter(), method, path).map(|(r, p)| (r.route_key, p))
    }

    #[test]
    fn the_most_specific_route_wins() {
        let rs = routes(&[
            "$default",
            "ANY /{proxy+}",
            "GET /items/{id}",
            "GET /items/special",
            "ANY /items/{id}",
            "POST /items",
        ]);
        assert_eq!(
            pick(&rs, "GET", "/items/special").map(|x| x.0).as_deref(),
            Some("GET /items/special")
        );
        let (k, p) = pick(&rs, "GET", "/items/7").expect("route");
        assert_eq!(
            (k.as_str(), p.get("id").map(String::as_str)),
            ("GET /items/{id}", Some("7"))
        );
        assert_eq!(
            pick(&rs, "DELETE", "/items/7").map(|x| x.0).as_deref(),
            Some("ANY /items/{id}")
        );
        let (k, p) = pick(&rs, "GET", "/a/b/c").expect("route");
        assert_eq!(
            (k.as_str(), p.get("proxy").map(String::as_str)),
            ("ANY /{proxy+}", Some("a/b/c"))
        );
        assert_eq!(
            pick(&rs, "POST", "/items").map(|x| x.0).as_deref(),
            Some("POST /items")
        );
        // `/` only matches `$default` here (a greedy variable needs at least one segment).
        assert_eq!(
            pick(&rs, "GET", "/").map(|x| x.0).as_deref(),
            Some("$default")
        );
        let none = routes(&["GET /a"]);
        assert_eq!(pick(&none, "GET", "/b"), None);
    }

    #[test]
    fn route_keys_are_validated() {
        assert!(check_route_key("GET /items/{id}").is_ok());
        assert!(check_route_key("ANY /{proxy+}").is_ok());
        assert!(check_route_key("$default").is_ok());
        assert!(check_route_key("FETCH /x").is_err());
        assert!(check_route_key("GET items").is_err());
        assert!(check_route_key("GET /{proxy+}/x").is_err());
    }
}
