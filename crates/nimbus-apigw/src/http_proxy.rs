//! HTTP integrations: `HTTP_PROXY` forwards the request to the integration's URI (with `{proxy}`
//! and other path parameters substituted) and returns the upstream response as it is; `HTTP`
//! (non-proxy) sends the mapped request body and hands the upstream status and body to the
//! integration responses.

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

fn substitute(uri: &str, params: &BTreeMap<String, String>) -> String {
    let mut target = uri.to_string();
    for (k, v) in params {
        target = target
            .replace(&format!("{{{k}+}}"), v)
            .replace(&format!("{{{k}}}"), v);
    }
    target
}

/// Why an `HTTP` integration call produced no answer.
#[derive(Debug)]
pub enum CallError {
    /// The call took longer than the integration's timeout: 504 at the gateway.
    Timeout,
    /// The call could not be made or its response not read (the reason, for the log): 500 at the
    /// gateway.
    Failed(String),
}

/// An `HTTP` (non-proxy) integration call: `method` to `uri` (path parameters substituted) with
/// the mapped body as JSON; the upstream status and body.
pub async fn call(
    uri: &str,
    method: &str,
    params: &BTreeMap<String, String>,
    query: &[(String, String)],
    headers: &[(String, String)],
    body: String,
    timeout: std::time::Duration,
) -> Result<(u16, String), CallError> {
    let client = client().ok_or_else(|| CallError::Failed("no HTTP client".into()))?;
    let m = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|e| CallError::Failed(format!("integration method {method}: {e}")))?;
    let mut target = substitute(uri, params);
    if !query.is_empty() {
        let enc = |s: &str| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        let q: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect();
        target.push(if target.contains('?') { '&' } else { '?' });
        target.push_str(&q.join("&"));
    }
    let mut req = client
        .request(m, target)
        .timeout(timeout)
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = req.body(body).send().await.map_err(|e| {
        if e.is_timeout() {
            CallError::Timeout
        } else {
            CallError::Failed(e.to_string())
        }
    })?;
    let status = resp.status().as_u16();
    let bytes = read_capped(resp).await.map_err(CallError::Failed)?;
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

/// API Gateway's limit on an integration's response payload: 10 MB.
pub const MAX_UPSTREAM_BODY: usize = 10 * 1024 * 1024;

/// Reads an upstream response body, refusing one over [`MAX_UPSTREAM_BODY`] as soon as it
/// passes the limit (never buffering more).
async fn read_capped(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if out.len() + chunk.len() > MAX_UPSTREAM_BODY {
            return Err(format!(
                "the integration's response is larger than {MAX_UPSTREAM_BODY} bytes"
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
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
    let mut target = substitute(uri, params);
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
            let bytes = match read_capped(r).await {
                Ok(b) => b,
                Err(why) => {
                    tracing::warn!(uri = %target, "HTTP_PROXY integration: {why}");
                    return error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error");
                }
            };
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
