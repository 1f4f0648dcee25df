//! The Nimbus edge: one HTTP listener for every AWS-compatible API and Nimbus's own endpoints.
//!
//! The front door picks the service for a request (SigV4 credential scope, then `X-Amz-Target`,
//! then the query `Action`, then the path) and hands it to that service's module, which parses
//! the AWS wire format into core commands and renders results and errors back. AWS shapes live
//! only here.

pub mod apigw_keys;
pub mod apigw_rest;
pub mod apigwv2;
pub mod authorizer;
pub mod cors;
pub mod error;
pub mod front_door;
pub mod function_url;
pub mod guard;
pub mod http_events;
pub mod http_proxy;
pub mod lambda;
pub mod listener;
pub mod logs;
pub mod nimbus_api;
pub mod services;
pub mod templates;
pub mod throttle;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use nimbus_core::Core;

/// The largest request body the front door reads, on the code upload routes only (a 50 MB
/// zip, base64-encoded in JSON).
pub const MAX_BODY: usize = 80 * 1024 * 1024;

/// The largest body any other route reads (control-plane documents such as OpenAPI imports;
/// Invoke has its own 6 MB limit).
pub const MAX_CONTROL_BODY: usize = 10 * 1024 * 1024;

/// How the front door meets the network: who may reach the AWS APIs, and connection limits.
#[derive(Debug, Clone, Default)]
pub struct EdgeConfig {
    pub browsers: guard::BrowserPolicy,
    pub limits: listener::ConnectionLimits,
}

/// Builds the router for every service: the built-in ones and `services` from their crates.
pub fn router(core: Core, browsers: guard::BrowserPolicy, services: services::Services) -> Router {
    Router::new()
        .merge(nimbus_api::routes())
        .merge(lambda::routes())
        .merge(apigwv2::routes())
        .merge(apigw_rest::routes())
        .merge(apigw_keys::routes())
        .fallback(front_door::dispatch)
        .layer(axum::Extension(services))
        .layer(axum::middleware::from_fn_with_state(
            core.clone(),
            apigwv2::dispatch,
        ))
        .layer(axum::middleware::from_fn_with_state(
            core.clone(),
            function_url::dispatch,
        ))
        .layer(DefaultBodyLimit::max(MAX_CONTROL_BODY))
        .layer(axum::middleware::from_fn_with_state(
            std::sync::Arc::new(browsers),
            guard::check,
        ))
        .with_state(core)
}

/// Serves the front door on `listener` until `shutdown` resolves (then drains, bounded).
pub async fn serve(
    listener: tokio::net::TcpListener,
    core: Core,
    config: EdgeConfig,
    services: services::Services,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(core, config.browsers, services);
    listener::serve(listener, app, config.limits, shutdown).await
}
