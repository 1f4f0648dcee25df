//! Nimbus API Gateway: function URLs, HTTP APIs (`apigatewayv2`) and REST APIs (`apigateway`)
//! as a crate of their own. The models ([`http_apis`], [`rest_apis`], [`api_keys`],
//! [`openapi`]) are records in the store; the control planes speak AWS's REST-JSON
//! ([`apigwv2`], [`apigw_rest`], [`apigw_keys`]); the endpoints — `<id>.lambda-url.<host>`,
//! `<apiId>.execute-api.<host>` and their path-style forms — are served here too
//! ([`function_url`], [`apigwv2`], [`apigw_rest`]), invoking functions through the platform's
//! invoke service.

pub mod api_keys;
pub mod apigw_keys;
pub mod apigw_rest;
pub mod apigwv2;
pub mod authorizer;
pub mod cors_headers;
pub mod endpoint;
pub mod function_url;
pub mod http_apis;
pub mod http_events;
pub mod http_proxy;
mod members;
pub mod openapi;
pub mod rest_apis;
pub mod templates;
pub mod throttle;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nimbus_core::invoke::Caller;
use nimbus_core::{Core, CoreError, InvokeService, Settings};
use nimbus_edge::error::JsonError;
use nimbus_edge::services::{AwsService, Handled};
use tower::ServiceExt;

/// What the gateway serves from: its own records and the platform services it calls.
#[derive(Clone)]
pub struct Gateway {
    /// The platform's settings: region and account for ARNs, the public URL endpoints are reported
    /// under.
    pub settings: Arc<Settings>,
    /// The invoke service integrations and authorizers call functions through.
    pub invoke: Arc<InvokeService>,
    /// Function URL configurations (the Lambda API writes them; the gateway serves them).
    pub urls: Arc<nimbus_core::urls::FunctionUrls>,
    /// REST APIs (`apigateway`): resources, methods, stages and deployments.
    pub rest_apis: Arc<rest_apis::RestApis>,
    /// HTTP APIs (`apigatewayv2`): routes, integrations, authorizers, stages and deployments.
    pub http_apis: Arc<http_apis::HttpApis>,
    /// API keys and usage plans, checked on REST API methods with `apiKeyRequired`.
    pub api_keys: Arc<api_keys::ApiKeys>,
    /// Stage, method, route and usage-plan token buckets.
    pub throttle: Arc<throttle::Throttle>,
    /// Lambda authorizer results within their TTL.
    pub authorizers: Arc<authorizer::AuthorizerCache>,
}

impl Gateway {
    /// Opens the gateway's records (splitting records of earlier versions).
    pub async fn open(core: &Core) -> Result<Gateway, CoreError> {
        let http_apis = Arc::new(http_apis::HttpApis::open(core.store.clone())?);
        http_apis.migrate().await?;
        let rest_apis = Arc::new(rest_apis::RestApis::open(core.store.clone())?);
        rest_apis.migrate().await?;
        Ok(Gateway {
            settings: core.settings.clone(),
            invoke: core.invoke.clone(),
            urls: core.urls.clone(),
            api_keys: Arc::new(api_keys::ApiKeys::open(core.store.clone())?),
            throttle: Arc::new(throttle::Throttle::new(core.clock.clone())),
            authorizers: Arc::new(authorizer::AuthorizerCache::new(core.clock.clone())),
            rest_apis,
            http_apis,
        })
    }
}

/// The caller API Gateway invokes functions as: the service, for the method's `execute-api` ARN
/// (`arn:aws:execute-api:{region}:{account}:{apiId}/{stage}/{METHOD}/{path}`), which is what a
/// function's resource policy names as `SourceArn`.
pub fn caller(gw: &Gateway, api_id: &str, stage: &str, method: &str, path: &str) -> Caller {
    Caller::service(
        "apigateway.amazonaws.com",
        format!(
            "arn:aws:execute-api:{}:{}:{api_id}/{stage}/{method}/{}",
            gw.settings.region,
            gw.settings.account_id,
            path.trim_start_matches('/')
        ),
    )
}

/// Whether a request is for an endpoint that serves browsers and the public — a function URL
/// or an API stage, by host name or by path — rather than for a control plane.
pub fn is_endpoint(host: &str, path: &str) -> bool {
    endpoint::claims(host, path)
}

/// API Gateway at the front door: its endpoints (resolved once, [`endpoint`]), and the control
/// planes' router.
struct Front {
    gw: Gateway,
    control: Router,
}

impl AwsService for Front {
    fn signing_name(&self) -> &'static str {
        "apigateway"
    }

    fn path_prefixes(&self) -> &'static [&'static str] {
        &["/restapis", "/v2/apis", "/apikeys", "/usageplans"]
    }

    fn endpoint(&self, host: &str, path: &str) -> bool {
        is_endpoint(host, path)
    }

    fn handle(&self, req: axum::extract::Request) -> Handled {
        let host = req
            .headers()
            .get(axum::http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if let Some(ep) = endpoint::resolve(&self.gw, host, req.uri().path()) {
            let gw = self.gw.clone();
            return Box::pin(async move { endpoint::serve(&gw, ep, req).await });
        }
        let router = self.control.clone();
        Box::pin(async move {
            match router.oneshot(req).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            }
        })
    }
}

/// A request for API Gateway that no operation matched.
async fn unknown_operation(req: axum::extract::Request) -> Response {
    JsonError {
        status: StatusCode::NOT_FOUND,
        error_type: "UnknownOperationException",
        message: format!(
            "Nimbus does not implement {} {} of API Gateway",
            req.method(),
            req.uri().path()
        ),
    }
    .into_response()
}

/// The front door's view of API Gateway.
pub fn front(gw: Gateway) -> Arc<dyn AwsService> {
    let control = Router::new()
        .merge(apigwv2::routes())
        .merge(apigw_rest::routes())
        .merge(apigw_keys::routes())
        .fallback(unknown_operation)
        .with_state(gw.clone());
    Arc::new(Front { gw, control })
}
