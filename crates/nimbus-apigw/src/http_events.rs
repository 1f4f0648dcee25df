//! HTTP requests as Lambda events and Lambda results as HTTP responses, in the payload format
//! 2.0 that function URLs and API Gateway HTTP APIs use.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use nimbus_events::http::{HttpDescriptionV2, HttpRequestContextV2, HttpRequestV2};
use serde_json::Value;

/// What the event needs to know about the request beyond headers and body.
pub struct RequestInfo<'a> {
    /// The request's method, `requestContext.http.method`.
    pub method: &'a Method,
    /// The path under the stage (or the function URL), `rawPath` and `requestContext.http.path`.
    pub path: &'a str,
    /// The query string as sent, without `?`, `rawQueryString`; decoded into
    /// `queryStringParameters`.
    pub raw_query: &'a str,
    /// `requestContext.http.sourceIp`.
    pub source_ip: String,
    /// `requestContext.requestId`, also returned to the client in a response header.
    pub request_id: String,
    /// `requestContext.accountId`: the API's account, or `anonymous` for a function URL.
    pub account_id: String,
    /// `requestContext.apiId`: the `apiId`, or the function URL's id.
    pub api_id: String,
    /// `requestContext.domainName`: the host without its port; its first label is `domainPrefix`.
    pub domain_name: String,
    /// `routeKey`: the matched route's key (`$default` for a function URL).
    pub route_key: String,
    /// `requestContext.stage`: the stage's name (`$default` for a function URL).
    pub stage: String,
}

/// Content types whose bodies are passed as text (others are base64).
fn is_text(content_type: &str) -> bool {
    let ct = content_type.to_ascii_lowercase();
    ct.starts_with("text/")
        || ct.contains("json")
        || ct.contains("xml")
        || ct.contains("javascript")
        || ct.starts_with("application/x-www-form-urlencoded")
        || ct.contains("yaml")
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// The payload format 2.0 event.
pub fn event_v2(info: &RequestInfo<'_>, headers: &HeaderMap, body: &Bytes) -> Value {
    let mut hs: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies: Vec<String> = Vec::new();
    for (k, v) in headers {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        if k == "cookie" {
            cookies.extend(
                v.split(';')
                    .map(|c| c.trim().to_string())
                    .filter(|c| !c.is_empty()),
            );
            continue;
        }
        hs.entry(k.as_str().to_string())
            .and_modify(|e| {
                e.push(',');
                e.push_str(&v);
            })
            .or_insert(v);
    }
    let mut query: BTreeMap<String, String> = BTreeMap::new();
    for kv in info.raw_query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        query
            .entry(decode(k))
            .and_modify(|e| {
                e.push(',');
                e.push_str(&decode(v));
            })
            .or_insert_with(|| decode(v));
    }
    let now = chrono::Utc::now();
    let (body, is_base64_encoded) = if body.is_empty() {
        (None, false)
    } else {
        let ct = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        match std::str::from_utf8(body) {
            Ok(text) if ct.is_empty() || is_text(ct) => (Some(text.to_string()), false),
            _ => (
                Some(base64::engine::general_purpose::STANDARD.encode(body)),
                true,
            ),
        }
    };
    let event = HttpRequestV2 {
        version: "2.0".into(),
        route_key: info.route_key.clone(),
        raw_path: info.path.to_string(),
        raw_query_string: info.raw_query.to_string(),
        cookies: (!cookies.is_empty()).then_some(cookies),
        headers: hs,
        query_string_parameters: (!query.is_empty()).then_some(query),
        request_context: HttpRequestContextV2 {
            account_id: info.account_id.clone(),
            api_id: info.api_id.clone(),
            authentication: None,
            authorizer: None,
            domain_name: info.domain_name.clone(),
            domain_prefix: info.domain_name.split('.').next().unwrap_or("").to_string(),
            http: HttpDescriptionV2 {
                method: info.method.as_str().to_string(),
                path: info.path.to_string(),
                protocol: "HTTP/1.1".into(),
                source_ip: info.source_ip.clone(),
                user_agent: headers
                    .get("user-agent")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string(),
            },
            request_id: info.request_id.clone(),
            route_key: info.route_key.clone(),
            stage: info.stage.clone(),
            time: now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
            time_epoch: now.timestamp_millis(),
        },
        body,
        path_parameters: None,
        is_base64_encoded,
        stage_variables: None,
    };
    // The HTTP API adds route parameters, stage variables and the authorizer's answer to
    // this value; a struct of strings and maps always converts.
    serde_json::to_value(&event).unwrap_or(Value::Null)
}

fn bad_gateway() -> Response {
    (
        StatusCode::BAD_GATEWAY,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        r#"{"Message":"Internal Server Error"}"#,
    )
        .into_response()
}

/// Turns a function's result into the HTTP response (payload format 2.0 rules): an object with
/// `statusCode` is a response description; anything else is a 200 with the result as JSON.
/// A function error is a 502.
pub fn response_v2(payload: &[u8], function_error: bool) -> Response {
    if function_error {
        return bad_gateway();
    }
    let parsed: Option<Value> = serde_json::from_slice(payload).ok();
    let Some(Value::Object(obj)) = parsed.as_ref().filter(|v| v.get("statusCode").is_some()) else {
        // Inference: the result is the body.
        return (
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            payload.to_vec(),
        )
            .into_response();
    };
    let Some(status) = obj
        .get("statusCode")
        .and_then(Value::as_u64)
        .and_then(|s| StatusCode::from_u16(s as u16).ok())
    else {
        return bad_gateway();
    };
    let body = match obj.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => {
            if obj.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
                match base64::engine::general_purpose::STANDARD.decode(s) {
                    Ok(b) => b,
                    Err(_) => return bad_gateway(),
                }
            } else {
                s.clone().into_bytes()
            }
        }
        Some(other) => other.to_string().into_bytes(),
    };
    let mut resp = Response::new(axum::body::Body::from(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    if let Some(Value::Object(headers)) = obj.get("headers") {
        for (k, v) in headers {
            let value = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if let (Ok(name), Ok(value)) = (
                HeaderName::try_from(k.as_str()),
                HeaderValue::from_str(&value),
            ) {
                h.append(name, value);
            }
        }
    }
    if let Some(Value::Array(cookies)) = obj.get("cookies") {
        for c in cookies.iter().filter_map(Value::as_str) {
            if let Ok(v) = HeaderValue::from_str(c) {
                h.append(axum::http::header::SET_COOKIE, v);
            }
        }
    }
    if !h.contains_key(axum::http::header::CONTENT_TYPE) {
        h.insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_json_results_are_inferred_as_the_body() {
        let r = response_v2(br#"{"hello":"world"}"#, false);
        assert_eq!(r.status(), StatusCode::OK);
        let r = response_v2(br#"{"statusCode":201,"headers":{"x-a":"b"},"cookies":["c=1"],"body":"aGk=","isBase64Encoded":true}"#, false);
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(r.headers()["x-a"], "b");
        assert_eq!(r.headers()["set-cookie"], "c=1");
        assert_eq!(response_v2(b"{}", true).status(), StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn events_carry_cookies_queries_and_binary_bodies() {
        let mut h = HeaderMap::new();
        h.insert("cookie", HeaderValue::from_static("a=1; b=2"));
        h.insert("content-type", HeaderValue::from_static("image/png"));
        let info = RequestInfo {
            method: &Method::POST,
            path: "/p",
            raw_query: "x=1&x=2&y=a%20b",
            source_ip: "127.0.0.1".into(),
            request_id: "r".into(),
            account_id: "anonymous".into(),
            api_id: "id".into(),
            domain_name: "id.lambda-url.localhost".into(),
            route_key: "$default".into(),
            stage: "$default".into(),
        };
        let ev = event_v2(&info, &h, &Bytes::from_static(&[0, 1, 2]));
        assert_eq!(ev["cookies"], json!(["a=1", "b=2"]));
        assert_eq!(ev["queryStringParameters"], json!({"x": "1,2", "y": "a b"}));
        assert_eq!(ev["isBase64Encoded"], true);
        assert_eq!(ev["body"], "AAEC");
        assert!(ev["headers"].get("cookie").is_none());
    }
}
