//! Which public endpoint a request is for, decided once, before anything else: a function URL,
//! or a stage of an API — an HTTP API or a REST API — host-style (`<id>.lambda-url.<host>`,
//! `<apiId>.execute-api.<host>`) or path-style (`/_aws/lambda-url/<id>/…`,
//! `/_aws/execute-api/<apiId>/…`, `/restapis/<apiId>/<stage>/_user_request_/…`). The kind of
//! API is looked up once here; each kind's serving never hands a request to another.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use crate::Gateway;
use crate::apigwv2::reply;

/// An endpoint a request resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A function URL: its id, the host it was addressed as, and the path under it.
    FunctionUrl {
        /// The URL id, the host name's first label.
        id: String,
        /// The `Host` as sent (port included), or `<id>.lambda-url.localhost` for the path-style
        /// form.
        host: String,
        /// The path under the URL, starting with `/` (percent-decoded in the path-style form only).
        path: String,
    },
    /// A stage of an HTTP API, and the path under it.
    HttpApi {
        /// The `apiId`.
        id: String,
        /// The stage's name: the path's first segment when it names a stage, else `$default`.
        stage: String,
        /// The path under the stage, starting with `/`; what routes are matched against.
        path: String,
    },
    /// A stage of a REST API, and the path under it.
    RestApi {
        /// The `restApiId`.
        id: String,
        /// The stage's name: always the path's first segment (it may name no stage).
        stage: String,
        /// The path under the stage, starting with `/`; what resources are matched against.
        path: String,
    },
    /// Addressed as an API that does not exist.
    NoSuchApi,
}

/// How a request names an endpoint, before any lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Address {
    Url {
        id: String,
        host: String,
        path: String,
    },
    /// An API by id; the stage is in the path (HTTP APIs: only if it names one).
    Api { id: String, path: String },
    /// An API by id with the stage given (`/restapis/<id>/<stage>/_user_request_/…`).
    ApiStage {
        id: String,
        stage: String,
        path: String,
    },
}

fn decoded(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// `/<rest>`, never empty.
fn rooted(rest: &str) -> String {
    format!("/{}", rest.trim_start_matches('/'))
}

fn address(host: &str, path: &str) -> Option<Address> {
    if let Some((id, rest)) = host.split_once('.') {
        if rest.starts_with("lambda-url.") {
            return Some(Address::Url {
                id: id.to_string(),
                host: host.to_string(),
                path: path.to_string(),
            });
        }
        if rest.starts_with("execute-api.") {
            return Some(Address::Api {
                id: id.to_string(),
                path: path.to_string(),
            });
        }
    }
    // Path-style forms carry the rest of the path percent-decoded, as their routes did.
    if let Some(rest) = path.strip_prefix("/_aws/lambda-url/") {
        let (id, tail) = rest.split_once('/').unwrap_or((rest, ""));
        return (!id.is_empty()).then(|| Address::Url {
            id: id.to_string(),
            host: format!("{id}.lambda-url.localhost"),
            path: rooted(&decoded(tail)),
        });
    }
    if let Some(rest) = path.strip_prefix("/_aws/execute-api/") {
        let (id, tail) = rest.split_once('/').unwrap_or((rest, ""));
        return (!id.is_empty()).then(|| Address::Api {
            id: id.to_string(),
            path: rooted(&decoded(tail)),
        });
    }
    let mut segs = path.splitn(6, '/').skip(1);
    if segs.next() == Some("restapis") {
        let (Some(id), Some(stage), Some("_user_request_")) =
            (segs.next(), segs.next(), segs.next())
        else {
            return None;
        };
        if id.is_empty() || stage.is_empty() {
            return None;
        }
        return Some(Address::ApiStage {
            id: id.to_string(),
            stage: decoded(stage),
            path: rooted(&decoded(segs.next().unwrap_or(""))),
        });
    }
    None
}

/// Whether a request is for a public endpoint (by its form alone: no lookup).
pub fn claims(host: &str, path: &str) -> bool {
    address(host, path).is_some()
}

/// The endpoint a request is for, looked up once (in place: a request never copies an API's
/// record); `None` when it names no endpoint at all.
pub fn resolve(gw: &Gateway, host: &str, path: &str) -> Option<Endpoint> {
    Some(match address(host, path)? {
        Address::Url { id, host, path } => Endpoint::FunctionUrl { id, host, path },
        Address::ApiStage { id, stage, path } => {
            if gw.http_apis.exists(&id) {
                Endpoint::HttpApi { id, stage, path }
            } else if gw.rest_apis.exists(&id) {
                Endpoint::RestApi { id, stage, path }
            } else {
                Endpoint::NoSuchApi
            }
        }
        Address::Api { id, path } => {
            // An HTTP API: a named stage is the first path segment; otherwise `$default`
            // serves the whole path.
            let first = path.split('/').nth(1).unwrap_or("");
            let named = !first.is_empty() && first != "$default";
            match gw.http_apis.has_stage(&id, first) {
                Some(true) if named => {
                    let rest = rooted(&path[1 + first.len()..]);
                    Endpoint::HttpApi {
                        stage: first.to_string(),
                        id,
                        path: rest,
                    }
                }
                Some(_) => Endpoint::HttpApi {
                    id,
                    stage: "$default".into(),
                    path,
                },
                // A REST API: the stage is always the first path segment.
                None if gw.rest_apis.exists(&id) => {
                    let mut segs = path.splitn(3, '/').skip(1);
                    let stage = segs.next().unwrap_or("").to_string();
                    let rest = rooted(segs.next().unwrap_or(""));
                    Endpoint::RestApi {
                        id,
                        stage,
                        path: rest,
                    }
                }
                None => Endpoint::NoSuchApi,
            }
        }
    })
}

/// API Gateway's answer for an API that does not exist.
pub fn not_found() -> Response {
    reply(StatusCode::NOT_FOUND, json!({ "message": "Not Found" }))
}

/// Serves a resolved endpoint.
pub async fn serve(gw: &Gateway, endpoint: Endpoint, req: Request) -> Response {
    match endpoint {
        Endpoint::FunctionUrl { id, host, path } => {
            crate::function_url::serve(gw, &id, &host, &path, req).await
        }
        Endpoint::HttpApi { id, stage, path } => {
            crate::apigwv2::serve(gw, &id, &stage, &path, req).await
        }
        Endpoint::RestApi { id, stage, path } => {
            crate::apigw_rest::serve(gw, &id, &stage, &path, req)
                .await
                .unwrap_or_else(not_found)
        }
        Endpoint::NoSuchApi => not_found(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            address("abc.lambda-url.localhost:4566", "/x/y"),
            Some(Address::Url {
                id: "abc".into(),
                host: "abc.lambda-url.localhost:4566".into(),
                path: "/x/y".into()
            })
        );
        assert_eq!(
            address("127.0.0.1", "/_aws/lambda-url/abc"),
            Some(Address::Url {
                id: "abc".into(),
                host: "abc.lambda-url.localhost".into(),
                path: "/".into()
            })
        );
        assert_eq!(
            address("127.0.0.1", "/_aws/execute-api/a1/prod/p%20q"),
            Some(Address::Api {
                id: "a1".into(),
                path: "/prod/p q".into()
            })
        );
        assert_eq!(
            address("127.0.0.1", "/restapis/a1/prod/_user_request_/x/y"),
            Some(Address::ApiStage {
                id: "a1".into(),
                stage: "prod".into(),
                path: "/x/y".into()
            })
        );
        assert_eq!(
            address("127.0.0.1", "/restapis/a1/prod/_user_request_"),
            Some(Address::ApiStage {
                id: "a1".into(),
                stage: "prod".into(),
                path: "/".into()
            })
        );
        assert_eq!(address("127.0.0.1", "/restapis/a1/resources"), None);
        assert_eq!(address("127.0.0.1", "/restapis/a1/stages/prod"), None);
        assert_eq!(address("127.0.0.1", "/2015-03-31/functions"), None);
        assert!(claims("abc.execute-api.localhost:4566", "/prod/x"));
        assert!(claims("abc123.lambda-url.us-east-1.on.aws", "/"));
        assert!(!claims("127.0.0.1:4566", "/"));
        assert!(!claims("localhost", "/"));
    }
}
