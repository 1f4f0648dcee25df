//! `HTTP_PROXY` integrations: the request is forwarded to the integration's URI (with `{proxy}`
//! and other path parameters substituted) and the upstream response returned as it is.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

fn client() -> Option<&'static reqwest::Client> {
    static C: OnceLock<Option<reqwest::Client>> = OnceLock::new();
    C.get_or_init(|| {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .ok()
    })
    .as_ref()
}

/// Hop-by-hop headers are not forwarded.
fn hop(name: &str) -> bool {
    matches!(
        name,
        "host"
            | "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "upgrade"
            | "te"
            | "trailer"
            | "content-length"
    )
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "message": message }).to_string(),
    )
        .into_response()
}

/// Forwards a request; `timeout` bounds the upstream call (504 past it).
pub async fn forward(
    uri: &str,
    method: &Method,
    params: &BTreeMap<String, String>,
    query: &str,
    headers: &HeaderMap,
    body: Bytes,
    timeout: std::time::Duration,
) -> Response {
    let mut target = uri.to_string();
    for (k, v) in params {
        target = target
            .replace(&format!("{{{k}+}}"), v)
            .replace(&format!("{{{k}}}"), v);
    }
    if !query.is_empty() {
        target.push(if target.contains('?') { '&' } else { '?' });
        target.push_str(query);
    }
    let Some(client) = client() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error");
    };
    let Ok(m) = reqwest::Method::from_bytes(method.as_str().as_bytes()) else {
        return error(StatusCode::BAD_REQUEST, "Bad request");
    };
    let mut req = client
        .request(m, &target)
        .timeout(timeout)
        .body(body.to_vec());
    for (k, v) in headers {
        if !hop(k.as_str()) {
            req = req.header(k.as_str(), v.as_bytes());
        }
    }
    match req.send().await {
        Ok(r) => {
            let status =
                StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let upstream: Vec<(String, Vec<u8>)> = r
                .headers()
                .iter()
                .filter(|(k, _)| !hop(k.as_str()))
                .map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec()))
                .collect();
            let bytes = r.bytes().await.unwrap_or_default();
            let mut resp = Response::new(Body::from(bytes));
            *resp.status_mut() = status;
            for (k, v) in upstream {
                if let (Ok(n), Ok(v)) = (
                    axum::http::HeaderName::try_from(k.as_str()),
                    HeaderValue::from_bytes(&v),
                ) {
                    resp.headers_mut().append(n, v);
                }
            }
            resp
        }
        Err(e) if e.is_timeout() => {
            error(StatusCode::GATEWAY_TIMEOUT, "Endpoint request timed out")
        }
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error"),
    }
}
