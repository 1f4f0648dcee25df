//! CORS at the HTTP edge: answers preflight requests for endpoints with a CORS configuration
//! (function URLs, HTTP APIs) and puts the configured `Access-Control-*` headers on their
//! responses in place of any the backend sent, as Lambda and API Gateway do.

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use nimbus_core::cors::Cors;

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The answer to a preflight request (`status` is what the service answers with), or `None`
/// when the request is not a preflight.
pub fn preflight(
    cors: &Cors,
    method: &Method,
    headers: &HeaderMap,
    status: StatusCode,
) -> Option<Response> {
    let origin = header(headers, "origin");
    let wanted = header(headers, "access-control-request-method");
    if !Cors::is_preflight(method.as_str(), origin, wanted) {
        return None;
    }
    let mut resp = status.into_response();
    set(
        resp.headers_mut(),
        cors.preflight_headers(origin.unwrap_or(""), wanted.unwrap_or("")),
    );
    Some(resp)
}

/// Replaces the backend's CORS headers with the configured ones for the request's origin.
pub fn decorate(cors: &Cors, request_headers: &HeaderMap, resp: &mut Response) {
    let h = resp.headers_mut();
    let backend: Vec<HeaderName> = h
        .keys()
        .filter(|k| k.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    for k in backend {
        h.remove(k);
    }
    if let Some(origin) = header(request_headers, "origin") {
        let added = cors.response_headers(origin);
        set(h, added);
    }
}

fn set(h: &mut HeaderMap, values: Vec<(String, String)>) {
    for (k, v) in values {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::from_str(&v)) {
            h.insert(k, v);
        }
    }
}
