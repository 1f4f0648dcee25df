//! Serving function URLs: a request whose `Host` is `<url-id>.lambda-url.<anything>` invokes
//! that URL's function synchronously with a payload format 2.0 event, on the main port.

use crate::Gateway;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use nimbus_core::CoreError;
use nimbus_core::invoke::{Caller, InvokeInput};
use nimbus_core::names::FunctionRef;

use crate::http_events::{RequestInfo, event_v2, response_v2};

/// The URL id a `Host` header names, if it is a function URL host.
fn url_id(host: &str) -> Option<&str> {
    let (id, rest) = host.split_once('.')?;
    rest.starts_with("lambda-url.").then_some(id)
}

/// Middleware: function URL hosts are served here; everything else goes on to the APIs.
pub async fn dispatch(State(gw): State<Gateway>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let Some(id) = url_id(&host).map(str::to_string) else {
        return next.run(req).await;
    };
    let path = req.uri().path().to_string();
    serve(&gw, &id, &host, &path, req).await
}

/// Path-style function URLs: `/_aws/lambda-url/<id>/<path>`, for machines where
/// `<id>.lambda-url.localhost` does not resolve.
pub async fn path_style(
    State(gw): State<Gateway>,
    axum::extract::Path((id, rest)): axum::extract::Path<(String, String)>,
    req: Request,
) -> Response {
    let host = format!("{id}.lambda-url.localhost");
    serve(&gw, &id, &host, &format!("/{rest}"), req).await
}

pub async fn path_style_root(
    State(gw): State<Gateway>,
    axum::extract::Path(id): axum::extract::Path<String>,
    req: Request,
) -> Response {
    let host = format!("{id}.lambda-url.localhost");
    serve(&gw, &id, &host, "/", req).await
}

async fn serve(gw: &Gateway, id: &str, host: &str, path: &str, req: Request) -> Response {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_url_hosts_are_recognised() {
        assert_eq!(url_id("abc123.lambda-url.localhost:4566"), Some("abc123"));
        assert_eq!(url_id("abc123.lambda-url.us-east-1.on.aws"), Some("abc123"));
        assert_eq!(url_id("127.0.0.1:4566"), None);
        assert_eq!(url_id("localhost"), None);
    }
}
