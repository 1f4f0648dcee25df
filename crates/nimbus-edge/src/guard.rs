//! The front door's first check: which requests may reach the AWS APIs at all.
//!
//! Browsers are kept off the AWS APIs (control planes, Invoke, Logs, queues): a request that a
//! web page sent (`Origin`, or `Sec-Fetch-Site: cross-site`/`same-site`) is refused with 403
//! unless its origin is allowed in config, a request body must carry a content type the AWS
//! protocols use (so a `text/plain` "simple request" never reaches an operation), and the
//! `Host` must name this server (an IP literal, `localhost`, the public URL's host or a
//! configured name), which defeats DNS rebinding. The HTTP endpoints that serve browsers on
//! purpose — function URLs and API Gateway stages, host-style or path-style, which their
//! service declares ([`crate::services::AwsService::endpoint`]) — are not checked here; they
//! answer as API Gateway does.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::JsonError;

/// Which browsers and host names may reach the AWS APIs.
#[derive(Debug, Clone, Default)]
pub struct BrowserPolicy {
    /// Origins (`scheme://host[:port]`) whose pages may call the AWS APIs; `*` allows any.
    pub allowed_origins: Vec<String>,
    /// Host names (besides IP literals, `localhost`, `*.localhost` and the public URL's host)
    /// the server answers to; `*.example.com` allows subdomains.
    pub allowed_hosts: Vec<String>,
    /// The public URL's host name.
    pub public_host: Option<String>,
}

impl BrowserPolicy {
    fn origin_allowed(&self, origin: &str) -> bool {
        self.allowed_origins
            .iter()
            .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
    }

    fn host_allowed(&self, host: &str) -> bool {
        let name = host_name(host);
        if name.is_empty() {
            return false;
        }
        if name.parse::<std::net::IpAddr>().is_ok()
            || name.eq_ignore_ascii_case("localhost")
            || name.to_ascii_lowercase().ends_with(".localhost")
        {
            return true;
        }
        if self
            .public_host
            .as_deref()
            .is_some_and(|p| p.eq_ignore_ascii_case(name))
        {
            return true;
        }
        self.allowed_hosts
            .iter()
            .any(|h| match h.strip_prefix("*.") {
                Some(suffix) => name
                    .to_ascii_lowercase()
                    .ends_with(&format!(".{}", suffix.to_ascii_lowercase())),
                None => h.eq_ignore_ascii_case(name),
            })
    }
}

/// The host name of a `Host` header value, without port or IPv6 brackets.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    })
}

/// Whether a body of this content type is one the AWS protocols send: JSON (REST-JSON and
/// the `x-amz-json` protocols), `application/x-amz-*`, XML, query-protocol forms, or raw bytes
/// (Invoke payloads, imported documents).
fn content_type_allowed(ct: &str) -> bool {
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    matches!(
        essence.as_str(),
        "application/json"
            | "application/xml"
            | "text/xml"
            | "application/x-www-form-urlencoded"
            | "application/octet-stream"
            | "binary/octet-stream"
            | "application/zip"
            | "application/yaml"
            | "application/x-yaml"
    ) || essence.starts_with("application/x-amz-")
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn has_body(req: &Request<Body>) -> bool {
    let len = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match len {
        Some(n) => n > 0,
        None => req.headers().contains_key(header::TRANSFER_ENCODING),
    }
}

fn refuse(status: StatusCode, error_type: &'static str, message: String) -> Response {
    JsonError {
        status,
        error_type,
        message,
    }
    .into_response()
}

/// Refuses browser-originated, mis-typed and wrongly-addressed requests to the AWS APIs, and
/// answers CORS for allowed origins; hands the rest to `next`. (Endpoints that serve browsers on
/// purpose never come here: the front door sends them to their service first.)
pub async fn check<F, Fut>(policy: &BrowserPolicy, req: Request, next: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let headers = req.headers();
    if let Some(host) = headers.get(header::HOST) {
        let host = host.to_str().unwrap_or("");
        if !policy.host_allowed(host) {
            return refuse(
                StatusCode::FORBIDDEN,
                "AccessDeniedException",
                format!(
                    "Nimbus does not answer to the host name '{}'; add it to server.allowed_hosts to reach the AWS APIs through it",
                    host_name(host)
                ),
            );
        }
    }
    let site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase);
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    // Same-origin: `http://<the Host this request was sent to>`.
    let own = |o: &str| {
        o.strip_prefix("http://")
            .is_some_and(|rest| Some(rest) == host)
    };
    let mut cors_origin = None;
    let browser_from_elsewhere = matches!(site.as_deref(), Some("cross-site" | "same-site"))
        || origin.as_deref().is_some_and(|o| !own(o));
    if browser_from_elsewhere {
        match origin.as_deref() {
            Some(o) if policy.origin_allowed(o) => cors_origin = Some(o.to_string()),
            _ => {
                return refuse(
                    StatusCode::FORBIDDEN,
                    "AccessDeniedException",
                    format!(
                        "Nimbus refuses browser requests to its AWS APIs from other sites (origin {}); allow the origin in server.allowed_origins",
                        origin.as_deref().unwrap_or("not given")
                    ),
                );
            }
        }
    }
    if let Some(o) = &cors_origin
        && req.method() == Method::OPTIONS
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        let mut r = StatusCode::OK.into_response();
        let h = r.headers_mut();
        if let Ok(v) = HeaderValue::from_str(o) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        }
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE"),
        );
        if let Some(v) = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
        }
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        return r;
    }
    if has_body(&req) {
        let ct = headers
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("\u{0}").to_string());
        if let Some(ct) = ct
            && !content_type_allowed(&ct)
        {
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaTypeException",
                format!(
                    "The content type '{ct}' is not supported by the AWS APIs; send application/json, application/x-amz-json-1.0/1.1, XML or a form"
                ),
            );
        }
    }
    let mut resp = next(req).await;
    if let Some(o) = cors_origin
        && let Ok(v) = HeaderValue::from_str(&o)
    {
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("*"),
        );
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        let p = BrowserPolicy {
            allowed_hosts: vec!["nimbus.internal".into(), "*.corp.example".into()],
            public_host: Some("my.host".into()),
            ..BrowserPolicy::default()
        };
        for ok in [
            "127.0.0.1:4566",
            "[::1]:4566",
            "localhost:4566",
            "x.localhost",
            "10.1.2.3",
            "my.host:80",
            "nimbus.internal:4566",
            "a.corp.example",
        ] {
            assert!(p.host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.example:4566",
            "corp.example",
            "localhost.evil.example",
            "",
        ] {
            assert!(!p.host_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn content_types() {
        for ok in [
            "application/json",
            "application/x-amz-json-1.1",
            "application/x-www-form-urlencoded; charset=utf-8",
            "text/xml",
            "application/merge-patch+json",
        ] {
            assert!(content_type_allowed(ok), "{ok}");
        }
        for bad in [
            "text/plain",
            "text/plain;charset=UTF-8",
            "multipart/form-data; boundary=x",
            "\u{0}",
        ] {
            assert!(!content_type_allowed(bad), "{bad}");
        }
    }
}
