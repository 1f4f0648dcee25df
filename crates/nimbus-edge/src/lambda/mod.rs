//! The Lambda control plane and Invoke over REST-JSON, at AWS's exact paths.

mod concurrency;
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

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use nimbus_core::Core;

pub fn routes() -> Router<Core> {
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
}
