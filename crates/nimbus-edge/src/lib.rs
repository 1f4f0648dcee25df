//! The Nimbus edge: one HTTP listener for every AWS-compatible API and Nimbus's own endpoints.
//!
//! The front door picks the service for a request — the endpoints services declare (function
//! URLs, API stages), then the SigV4 credential scope, `X-Amz-Target`, the query `Action`, the
//! path — and hands it to that service's crate, which parses its AWS wire format into platform
//! commands and renders results and errors back. The edge holds no service of its own: it owns
//! the listener, the browser guard, the dispatch order and Nimbus's `/_nimbus/` endpoints.

pub mod error;
pub mod front_door;
pub mod guard;
pub mod listener;
pub mod nimbus_api;
pub mod protocol;
pub mod services;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use nimbus_core::Core;

/// The largest body a route reads unless its service sets its own limit (control-plane
/// documents such as OpenAPI imports; Lambda's code uploads and Invoke have limits of their own).
pub const MAX_CONTROL_BODY: usize = 10 * 1024 * 1024;

/// How the front door meets the network: who may reach the AWS APIs, and connection limits.
#[derive(Debug, Clone, Default)]
pub struct EdgeConfig {
    /// Which browser origins and host names may reach the AWS APIs (the guard in [`guard`]).
    pub browsers: guard::BrowserPolicy,
    /// Connection counts and timeouts of the listener.
    pub limits: listener::ConnectionLimits,
}

/// Builds the front door: one handler for every request, which picks the service
/// ([`front_door::dispatch`]); Nimbus's own `/_nimbus/` endpoints are answered beside them.
pub fn router(core: Core, browsers: guard::BrowserPolicy, services: services::Services) -> Router {
    let door = front_door::FrontDoor {
        browsers,
        services,
        own: nimbus_api::routes().with_state(core),
    };
    Router::new()
        .fallback(front_door::dispatch)
        .layer(DefaultBodyLimit::max(MAX_CONTROL_BODY))
        .with_state(std::sync::Arc::new(door))
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
