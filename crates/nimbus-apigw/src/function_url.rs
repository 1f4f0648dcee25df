//! Serving function URLs: a request whose `Host` is `<url-id>.lambda-url.<anything>` invokes
//! that URL's function synchronously with a payload format 2.0 event, on the main port.

use crate::Gateway;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nimbus_core::CoreError;
use nimbus_core::invoke::{Caller, InvokeInput};
use nimbus_core::names::FunctionRef;

use crate::http_events::{RequestInfo, event_v2, response_v2};

/// Serves a request to a function URL (by its id; `host` is what the request addressed).
pub(crate) async fn serve(
    gw: &Gateway,
    id: &str,
    host: &str,
    path: &str,
    req: Request,
) -> Response {
    let Some(config) = gw.urls.by_id(id) else {
        return (
            StatusCode::NOT_FOUND,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            r#"{"Message":null}"#,
        )
            .into_response();
    };
    let cors = config
        .cors
        .as_ref()
        .and_then(|c| nimbus_core::cors::Cors::from_wire(c).ok());
    if let Some(cors) = &cors {
        if let Some(r) =
            crate::cors_headers::preflight(cors, req.method(), req.headers(), StatusCode::OK)
        {
            return r;
        }
        let headers = req.headers().clone();
        let mut resp = invoke_url(gw, &config, id, host, path, req).await;
        crate::cors_headers::decorate(cors, &headers, &mut resp);
        return resp;
    }
    invoke_url(gw, &config, id, host, path, req).await
}

async fn invoke_url(
    gw: &Gateway,
    config: &nimbus_core::urls::UrlConfig,
    id: &str,
    host: &str,
    path: &str,
    req: Request,
) -> Response {
    let source_ip = req
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "127.0.0.1".into());
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(Body::new(body), 6 * 1024 * 1024).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, r#"{"Message":"Request must be smaller than 6291456 bytes for the InvokeFunction operation"}"#).into_response();
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    let info = RequestInfo {
        method: &parts.method,
        path,
        raw_query: parts.uri.query().unwrap_or(""),
        source_ip,
        request_id: request_id.clone(),
        account_id: "anonymous".into(),
        api_id: config.url_id.clone(),
        domain_name: host.split(':').next().unwrap_or("").to_string(),
        route_key: "$default".into(),
        stage: "$default".into(),
    };
    let event = event_v2(&info, &parts.headers, &body);
    // AuthType NONE: anyone. AWS_IAM: the signer (not verified until SigV4 lands).
    let caller = if config.auth_type == "AWS_IAM" {
        Caller::Account {
            account_id: gw.settings.account_id.clone(),
            access_key_id: nimbus_edge::services::access_key_id(&parts.headers),
        }
    } else {
        Caller::Anonymous
    };
    let result = gw
        .invoke
        .invoke(InvokeInput::sync(
            FunctionRef {
                name: config.function.clone(),
                qualifier: (config.qualifier != "$LATEST").then(|| config.qualifier.clone()),
                account: None,
                region: None,
            },
            event.to_string(),
            caller,
        ))
        .await;
    let mut resp = match result {
        Ok(r) => response_v2(&r.payload, r.function_error),
        Err(CoreError::TooManyRequests { .. }) => (
            StatusCode::TOO_MANY_REQUESTS,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            r#"{"Message":"Rate Exceeded."}"#,
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(url = id, error = %e, "function URL invocation failed");
            (
                StatusCode::BAD_GATEWAY,
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                r#"{"Message":"Internal Server Error"}"#,
            )
                .into_response()
        }
    };
    if let Ok(v) = axum::http::HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
    resp
}
