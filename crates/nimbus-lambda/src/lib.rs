//! Nimbus Lambda: the Lambda API as a crate of its own — the control plane, Invoke and event
//! source mappings over REST-JSON at AWS's exact paths, one module per family of operations. The
//! platform (`nimbus-core`) owns functions, the invoke service and mappings; this crate parses
//! AWS's wire shapes into its commands and renders results and errors ([`error`]) back.

mod concurrency;
pub mod error;
mod event_configs;
mod event_sources;
mod functions;
mod invoke;
mod policy;
mod provisioned;
mod tags;
mod urls;
mod versions;
mod wire;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use nimbus_core::Core;
use nimbus_edge::services::{AwsService, Handled};
use tower::ServiceExt;

use crate::error::LambdaError;

/// The largest request body Lambda reads, on the code upload routes only (a 50 MB zip,
/// base64-encoded in JSON); other routes keep the front door's control-plane limit, and
/// Invoke has its own.
pub const MAX_BODY: usize = 80 * 1024 * 1024;

/// The API versions (first path segment) of Lambda's REST paths.
const PATH_PREFIXES: &[&str] = &[
    "/2015-03-31/",
    "/2014-11-13/",
    "/2016-08-19/",
    "/2017-03-31/",
    "/2017-10-31/",
    "/2018-10-31/",
    "/2019-09-25/",
    "/2019-09-30/",
    "/2020-04-22/",
    "/2020-06-30/",
    "/2021-07-20/",
    "/2021-10-31/",
    "/2021-11-15/",
];

/// Lambda at the front door: its paths, served by one router.
struct Front(Router);

impl AwsService for Front {
    fn signing_name(&self) -> &'static str {
        "lambda"
    }

    fn path_prefixes(&self) -> &'static [&'static str] {
        PATH_PREFIXES
    }

    fn handle(&self, req: axum::extract::Request) -> Handled {
        let router = self.0.clone();
        Box::pin(async move {
            match router.oneshot(req).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            }
        })
    }
}

/// The front door's view of the Lambda API.
pub fn front(core: Core) -> Arc<dyn AwsService> {
    Arc::new(Front(routes().with_state(core)))
}

/// An operation Nimbus does not implement (at a Lambda path no route matched).
async fn unknown_operation(req: axum::extract::Request) -> axum::response::Response {
    LambdaError::new(
        StatusCode::NOT_FOUND,
        "UnknownOperationException",
        format!(
            "Nimbus does not implement {} {} of the Lambda API",
            req.method(),
            req.uri().path()
        ),
    )
    .into_response()
}

fn routes() -> Router<Core> {
    Router::new()
        .route(
            "/2015-03-31/functions",
            post(functions::create)
                .get(functions::list)
                .layer(DefaultBodyLimit::max(crate::MAX_BODY)),
        )
        .route(
            "/2015-03-31/functions/",
            post(functions::create)
                .get(functions::list)
                .layer(DefaultBodyLimit::max(crate::MAX_BODY)),
        )
        .route(
            "/2015-03-31/functions/{name}",
            get(functions::get).delete(functions::delete),
        )
        .route(
            "/2015-03-31/functions/{name}/configuration",
            get(functions::get_configuration).put(functions::update_configuration),
        )
        .route(
            "/2015-03-31/functions/{name}/code",
            axum::routing::put(functions::update_code)
                .layer(DefaultBodyLimit::max(crate::MAX_BODY)),
        )
        .route(
            "/2015-03-31/functions/{name}/versions",
            post(versions::publish).get(versions::list_versions),
        )
        .route(
            "/2015-03-31/functions/{name}/aliases",
            post(versions::create_alias).get(versions::list_aliases),
        )
        .route(
            "/2015-03-31/functions/{name}/aliases/{alias}",
            get(versions::get_alias)
                .put(versions::update_alias)
                .delete(versions::delete_alias),
        )
        .route(
            "/2015-03-31/functions/{name}/policy",
            post(policy::add).get(policy::get),
        )
        .route(
            "/2015-03-31/functions/{name}/policy/{sid}",
            axum::routing::delete(policy::remove),
        )
        .route(
            "/2015-03-31/functions/{name}/invocations",
            post(invoke::invoke).layer(DefaultBodyLimit::max(invoke::INVOKE_BODY_LIMIT)),
        )
        .route(
            "/2014-11-13/functions/{name}/invoke-async",
            post(invoke::invoke_async).layer(DefaultBodyLimit::max(262_145)),
        )
        .route(
            "/2014-11-13/functions/{name}/invoke-async/",
            post(invoke::invoke_async),
        )
        .route(
            "/2017-10-31/functions/{name}/concurrency",
            axum::routing::put(concurrency::put).delete(concurrency::delete),
        )
        .route(
            "/2019-09-30/functions/{name}/provisioned-concurrency",
            axum::routing::put(provisioned::put)
                .get(provisioned::get)
                .delete(provisioned::delete),
        )
        .route(
            "/2019-09-30/functions/{name}/concurrency",
            get(concurrency::get),
        )
        .route(
            "/2019-09-25/functions/{name}/event-invoke-config",
            axum::routing::put(event_configs::put)
                .post(event_configs::update)
                .get(event_configs::get)
                .delete(event_configs::delete),
        )
        .route(
            "/2019-09-25/functions/{name}/event-invoke-config/list",
            get(event_configs::list),
        )
        .route(
            "/2015-03-31/event-source-mappings/",
            post(event_sources::create).get(event_sources::list),
        )
        .route(
            "/2015-03-31/event-source-mappings",
            post(event_sources::create).get(event_sources::list),
        )
        .route(
            "/2015-03-31/event-source-mappings/{uuid}",
            get(event_sources::get)
                .put(event_sources::update)
                .delete(event_sources::delete),
        )
        .route(
            "/2017-03-31/tags/{arn}",
            post(tags::tag).delete(tags::untag).get(tags::list),
        )
        .route(
            "/2021-10-31/functions/{name}/url",
            post(urls::create)
                .get(urls::get)
                .put(urls::update)
                .delete(urls::delete),
        )
        .route("/2021-10-31/functions/{name}/urls", get(urls::list))
        .route(
            "/2016-08-19/account-settings",
            get(functions::account_settings),
        )
        .route(
            "/2016-08-19/account-settings/",
            get(functions::account_settings),
        )
        .fallback(unknown_operation)
}
