//! Lambda authorizers at request time, for REST APIs (`TOKEN`, `REQUEST`) and HTTP APIs
//! (`REQUEST`, payload 1.0 or 2.0, optionally simple responses): the identity taken from the
//! request, the authorizer function invoked with API Gateway's event, its IAM policy evaluated
//! against the method or route ARN (explicit deny wins, `*`/`?` wildcards) or its
//! `isAuthorized` answer read, results cached per identity for the authorizer's TTL, and the
//! principal and `context` handed on to the integration.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::Gateway;
use crate::rest_apis::Authorizer;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use nimbus_core::clock::Clock;
use nimbus_core::iam::{Decision, PolicyDocument};
use nimbus_core::invoke::{Caller, InvokeInput};
use serde_json::{Map, Value, json};

use crate::apigwv2::{function_of, reply};

/// What an authorizer decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The principal and the authorizer's `context` (values stringified, as API Gateway
    /// passes them on).
    Allow {
        /// `principalId`, as the function returned it (stringified when not a string).
        principal_id: String,
        /// The `context` object's entries.
        context: Map<String, Value>,
    },
    /// 401 `Unauthorized`: no identity, a `TOKEN` failing `identityValidationExpression`, or the
    /// function raised `Unauthorized`.
    Unauthorized,
    /// 403: the policy does not allow the method or route ARN, or a simple response said
    /// `isAuthorized: false`.
    Denied {
        /// Whether a statement denied it (REST APIs word the message differently) rather than none
        /// allowing it.
        explicit: bool,
    },
    /// 500: the function could not be called, failed, or answered something that is not a valid
    /// authorizer response.
    Failure,
}

impl Outcome {
    /// API Gateway's answer when the request may not proceed.
    pub fn refusal(&self) -> Option<Response> {
        let mut r = match self {
            Outcome::Allow { .. } => return None,
            Outcome::Unauthorized => {
                reply(StatusCode::UNAUTHORIZED, json!({"message": "Unauthorized"}))
            }
            Outcome::Denied { explicit: true } => reply(
                StatusCode::FORBIDDEN,
                json!({"Message": "User is not authorized to access this resource with an explicit deny"}),
            ),
            Outcome::Denied { explicit: false } => reply(
                StatusCode::FORBIDDEN,
                json!({"Message": "User is not authorized to access this resource"}),
            ),
            Outcome::Failure => reply(StatusCode::INTERNAL_SERVER_ERROR, json!({"message": null})),
        };
        let kind = match self {
            Outcome::Unauthorized => "UnauthorizedException",
            Outcome::Denied { .. } => "AccessDeniedException",
            _ => "AuthorizerConfigurationException",
        };
        r.headers_mut()
            .insert("x-amzn-errortype", HeaderValue::from_static(kind));
        Some(r)
    }
}

impl Outcome {
    /// An HTTP API's answer when the request may not proceed.
    pub fn http_refusal(&self) -> Option<Response> {
        Some(match self {
            Outcome::Allow { .. } => return None,
            Outcome::Unauthorized => {
                reply(StatusCode::UNAUTHORIZED, json!({"message": "Unauthorized"}))
            }
            Outcome::Denied { .. } => reply(StatusCode::FORBIDDEN, json!({"message": "Forbidden"})),
            Outcome::Failure => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"message": "Internal Server Error"}),
            ),
        })
    }
}

/// API Gateway invoking an authorizer: the service, for the authorizer's ARN.
fn authorizer_caller(gw: &Gateway, api_id: &str, authorizer_id: &str) -> Caller {
    Caller::service(
        "apigateway.amazonaws.com",
        format!(
            "arn:aws:execute-api:{}:{}:{api_id}/authorizers/{authorizer_id}",
            gw.settings.region, gw.settings.account_id
        ),
    )
}

/// Invokes an authorizer function; `Err` carries the outcome of a failed invocation.
async fn call(gw: &Gateway, uri: &str, event: &Value, caller: Caller) -> Result<Value, Outcome> {
    let target = function_of(uri).ok_or(Outcome::Failure)?;
    let result = gw
        .invoke
        .invoke(InvokeInput::sync(target, event.to_string(), caller))
        .await
        .map_err(|_| Outcome::Failure)?;
    let v = serde_json::from_slice::<Value>(&result.payload).map_err(|_| Outcome::Failure)?;
    if result.function_error {
        return Err(
            if v.get("errorMessage").and_then(Value::as_str) == Some("Unauthorized") {
                Outcome::Unauthorized
            } else {
                Outcome::Failure
            },
        );
    }
    Ok(v)
}

/// Authorizer results by (API, authorizer, identity), each kept for the authorizer's TTL on the
/// platform's clock; the policy is evaluated for each request.
pub struct AuthorizerCache {
    clock: Arc<dyn Clock>,
    entries: Mutex<HashMap<String, (Instant, Value)>>,
}

/// Entries held before expired ones are swept.
const MAX_CACHED: usize = 10_000;

impl AuthorizerCache {
    /// An empty cache on `clock` (a manual clock in tests).
    pub fn new(clock: Arc<dyn Clock>) -> AuthorizerCache {
        AuthorizerCache {
            clock,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &str) -> Option<Value> {
        let now = self.clock.now();
        let c = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        c.get(key)
            .filter(|(until, _)| *until > now)
            .map(|(_, v)| v.clone())
    }

    fn remember(&self, key: String, ttl: u32, v: &Value) {
        if ttl == 0 {
            return;
        }
        let now = self.clock.now();
        let mut c = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if c.len() > MAX_CACHED {
            c.retain(|_, (until, _)| *until > now);
        }
        c.insert(key, (now + Duration::from_secs(u64::from(ttl)), v.clone()));
    }
}

/// An HTTP API request as its authorizer sees it: the event (1.0 or 2.0, without a body, as
/// the integration would get it), the identity source values, and the route ARN.
pub struct HttpRequest<'a> {
    /// The API's id, part of the cache key and of the caller's ARN.
    pub api_id: &'a str,
    /// The event for payload 1.0 or 2.0; `type`, `routeArn`/`methodArn` and `identitySource` are
    /// added and any body removed.
    pub event: Value,
    /// The `identitySource` values ([`http_identity`]); `None` when one is missing, which is 401.
    pub identity: Option<Vec<String>>,
    /// `arn:aws:execute-api:{region}:{account}:{apiId}/{stage}/{METHOD}/{path}`, as `routeArn`
    /// (2.0) or `methodArn` (1.0).
    pub route_arn: String,
}

/// The values of an HTTP API authorizer's identity sources, or `None` when one is missing.
pub fn http_identity(
    sources: &[String],
    headers: &HeaderMap,
    query: &BTreeMap<String, Vec<String>>,
    request_context: &Value,
    stage_variables: &BTreeMap<String, String>,
) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for s in sources {
        let v = if let Some(h) = s.strip_prefix("$request.header.") {
            let all: Vec<&str> = headers
                .get_all(h.to_ascii_lowercase().as_str())
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            (!all.is_empty()).then(|| all.join(","))
        } else if let Some(q) = s.strip_prefix("$request.querystring.") {
            query.get(q).map(|v| v.join(","))
        } else if let Some(c) = s.strip_prefix("$context.") {
            context_value(request_context, c)
        } else if let Some(v) = s.strip_prefix("$stageVariables.") {
            stage_variables.get(v).cloned()
        } else {
            None
        };
        out.push(v.filter(|v| !v.is_empty())?);
    }
    Some(out)
}

/// Runs an HTTP API's Lambda authorizer.
pub async fn authorize_http(
    gw: &Gateway,
    a: &crate::http_apis::Authorizer,
    r: HttpRequest<'_>,
) -> Outcome {
    let Some(identity) = r.identity else {
        return Outcome::Unauthorized;
    };
    let key = format!("http/{}/{}/{}", r.api_id, a.id, identity.join("\u{0}"));
    // Only a result keyed by a real identity is cached (never one shared by every caller).
    let cacheable = a.ttl_seconds > 0 && !identity.is_empty();
    let output = match cacheable.then(|| gw.authorizers.get(&key)).flatten() {
        Some(v) => v,
        None => {
            let mut event = r.event;
            if let Some(obj) = event.as_object_mut() {
                obj.remove("body");
                obj.remove("isBase64Encoded");
            }
            event["type"] = json!("REQUEST");
            if a.payload_format_version == "2.0" {
                event["routeArn"] = json!(r.route_arn);
                event["identitySource"] = json!(identity);
            } else {
                event["methodArn"] = json!(r.route_arn);
                event["identitySource"] = json!(identity.join(","));
            }
            let caller = authorizer_caller(gw, r.api_id, &a.id);
            match call(gw, &a.authorizer_uri, &event, caller).await {
                Ok(v) => {
                    if cacheable {
                        gw.authorizers.remember(key, a.ttl_seconds, &v);
                    }
                    v
                }
                Err(outcome) => return outcome,
            }
        }
    };
    if a.simple_responses {
        let context = match output.get("context") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => return Outcome::Failure,
        };
        return match output.get("isAuthorized").and_then(Value::as_bool) {
            Some(true) => Outcome::Allow {
                principal_id: String::new(),
                context,
            },
            Some(false) => Outcome::Denied { explicit: true },
            None => Outcome::Failure,
        };
    }
    match decide(&output, &r.route_arn) {
        // HTTP APIs keep the context's values as the function returned them.
        Outcome::Allow { principal_id, .. } => Outcome::Allow {
            principal_id,
            context: output
                .get("context")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
        },
        other => other,
    }
}

/// The request as an authorizer sees it.
pub struct Request<'a> {
    /// The REST API's id.
    pub api_id: &'a str,
    /// The stage's name.
    pub stage: &'a str,
    /// The stage's variables, an identity source (`stageVariables.<name>`) and in the `REQUEST`
    /// event.
    pub stage_variables: &'a BTreeMap<String, String>,
    /// The HTTP method, upper case.
    pub method: &'a str,
    /// The request path under the stage, starting with `/`.
    pub path: &'a str,
    /// The matched resource's path template (`/pets/{id}`), the event's `resource`.
    pub resource_path: &'a str,
    /// The request headers (`method.request.header.<name>`).
    pub headers: &'a HeaderMap,
    /// The query string, every value of each name (`method.request.querystring.<name>` takes the
    /// last).
    pub query: &'a BTreeMap<String, Vec<String>>,
    /// Path parameters the resource's template bound.
    pub path_params: &'a BTreeMap<String, String>,
    /// The `$context` so far, for `context.<name>` sources and the event's `requestContext`.
    pub request_context: &'a Value,
}

/// `arn:aws:execute-api:{region}:{account}:{apiId}/{stage}/{METHOD}/{path}`.
pub fn method_arn(region: &str, account: &str, r: &Request<'_>) -> String {
    format!(
        "arn:aws:execute-api:{region}:{account}:{}/{}/{}/{}",
        r.api_id,
        r.stage,
        r.method,
        r.path.trim_start_matches('/')
    )
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The identity source values, or `None` when one is missing or empty.
fn identity(a: &Authorizer, r: &Request<'_>) -> Option<Vec<String>> {
    let sources = a.identity_source.as_deref().unwrap_or("");
    let mut out = Vec::new();
    for s in sources.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let v = if let Some(h) = s.strip_prefix("method.request.header.") {
            header(r.headers, h).map(str::to_string)
        } else if let Some(q) = s.strip_prefix("method.request.querystring.") {
            r.query.get(q).and_then(|v| v.last()).cloned()
        } else if let Some(v) = s.strip_prefix("stageVariables.") {
            r.stage_variables.get(v).cloned()
        } else if let Some(c) = s.strip_prefix("context.") {
            context_value(r.request_context, c)
        } else {
            None
        };
        out.push(v.filter(|v| !v.is_empty())?);
    }
    Some(out)
}

/// A value of a request context by dotted name (`identity.sourceIp`), as a string.
pub(crate) fn context_value(context: &Value, name: &str) -> Option<String> {
    context
        .pointer(&format!("/{}", name.replace('.', "/")))
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string())
        })
}

/// Runs the authorizer for a request.
pub async fn authorize(gw: &Gateway, a: &Authorizer, r: &Request<'_>) -> Outcome {
    let arn = method_arn(&gw.settings.region, &gw.settings.account_id, r);
    let identity = identity(a, r);
    let token = match a.authorizer_type.as_str() {
        "TOKEN" => {
            let Some(t) = identity.as_ref().and_then(|i| i.first()).cloned() else {
                return Outcome::Unauthorized;
            };
            if let Some(expr) = &a.identity_validation_expression
                && !regex_lite::Regex::new(&format!("^(?:{expr})$")).is_ok_and(|re| re.is_match(&t))
            {
                return Outcome::Unauthorized;
            }
            Some(t)
        }
        _ => {
            if identity.is_none() && a.ttl_seconds > 0 {
                return Outcome::Unauthorized;
            }
            None
        }
    };
    let key = format!(
        "{}/{}/{}",
        r.api_id,
        a.id,
        identity
            .as_ref()
            .map(|i| i.join("\u{0}"))
            .unwrap_or_default()
    );
    // Only a result keyed by a real identity is cached (never one shared by every caller).
    let cacheable = a.ttl_seconds > 0 && identity.as_ref().is_some_and(|i| !i.is_empty());
    let output = match cacheable.then(|| gw.authorizers.get(&key)).flatten() {
        Some(v) => v,
        None => {
            let event = match token {
                Some(t) => json!({"type": "TOKEN", "authorizationToken": t, "methodArn": arn}),
                None => request_event(r, &arn),
            };
            let Some(uri) = a.authorizer_uri.as_deref() else {
                return Outcome::Failure;
            };
            let caller = authorizer_caller(gw, r.api_id, &a.id);
            match call(gw, uri, &event, caller).await {
                Ok(v) => {
                    if cacheable {
                        gw.authorizers.remember(key, a.ttl_seconds, &v);
                    }
                    v
                }
                Err(outcome) => return outcome,
            }
        }
    };
    decide(&output, &arn)
}

/// The outcome of an authorizer's output for a method ARN.
pub fn decide(output: &Value, arn: &str) -> Outcome {
    let (Some(principal), Some(policy)) = (output.get("principalId"), output.get("policyDocument"))
    else {
        return Outcome::Failure;
    };
    let principal_id = match principal {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut context = Map::new();
    if let Some(c) = output.get("context") {
        let Some(obj) = c.as_object() else {
            return Outcome::Failure;
        };
        for (k, v) in obj {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Number(_) | Value::Bool(_) => v.to_string(),
                Value::Null => continue,
                // Objects and arrays are not allowed in an authorizer's context.
                _ => return Outcome::Failure,
            };
            context.insert(k.clone(), Value::String(s));
        }
    }
    let decision = PolicyDocument::from_value(policy.clone())
        .and_then(|doc| doc.evaluate("execute-api:Invoke", arn));
    match decision {
        Err(e) => {
            tracing::warn!(error = %e, "an authorizer's policy cannot be evaluated; the request is refused");
            Outcome::Failure
        }
        Ok(Decision::Allow) => Outcome::Allow {
            principal_id,
            context,
        },
        Ok(Decision::ExplicitDeny) => Outcome::Denied { explicit: true },
        Ok(Decision::ImplicitDeny) => Outcome::Denied { explicit: false },
    }
}

fn request_event(r: &Request<'_>, arn: &str) -> Value {
    let mut headers = Map::new();
    let mut multi: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in r.headers {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        headers.insert(k.as_str().to_string(), json!(v));
        multi.entry(k.as_str().to_string()).or_default().push(v);
    }
    let single: Map<String, Value> = r
        .query
        .iter()
        .filter_map(|(k, v)| v.last().map(|l| (k.clone(), json!(l))))
        .collect();
    json!({
        "type": "REQUEST",
        "methodArn": arn,
        "resource": r.resource_path,
        "path": r.path,
        "httpMethod": r.method,
        "headers": headers,
        "multiValueHeaders": multi,
        "queryStringParameters": single,
        "multiValueQueryStringParameters": r.query,
        "pathParameters": r.path_params,
        "stageVariables": r.stage_variables,
        "requestContext": r.request_context,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_results_last_their_ttl_on_the_clock() {
        let clock = Arc::new(nimbus_core::clock::ManualClock::new(0));
        let cache = AuthorizerCache::new(clock.clone());
        let v = json!({"principalId": "me"});
        cache.remember("k".into(), 300, &v);
        cache.remember("never".into(), 0, &v);
        assert_eq!(cache.get("k"), Some(v.clone()));
        assert_eq!(cache.get("never"), None);
        clock.advance(Duration::from_secs(299));
        assert_eq!(cache.get("k"), Some(v));
        clock.advance(Duration::from_secs(1));
        assert_eq!(cache.get("k"), None, "expired at its TTL");
    }

    const ARN: &str = "arn:aws:execute-api:us-east-1:000000000000:abc/prod/GET/pets/7";

    /// The platform's evaluator as an authorizer applies it: allowed, explicitly denied, not
    /// covered (`None`), or not evaluable.
    fn evaluate(policy: &Value, arn: &str) -> Result<Option<bool>, ()> {
        PolicyDocument::from_value(policy.clone())
            .and_then(|d| d.evaluate("execute-api:Invoke", arn))
            .map(|d| match d {
                Decision::Allow => Some(true),
                Decision::ExplicitDeny => Some(false),
                Decision::ImplicitDeny => None,
            })
            .map_err(drop)
    }

    fn policy(effect: &str, resource: Value) -> Value {
        json!({"Version": "2012-10-17", "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}]})
    }

    #[test]
    fn policies_are_evaluated_like_iam() {
        assert_eq!(evaluate(&policy("Allow", json!(ARN)), ARN), Ok(Some(true)));
        assert_eq!(
            evaluate(
                &policy(
                    "Allow",
                    json!("arn:aws:execute-api:us-east-1:000000000000:abc/prod/GET/*")
                ),
                ARN
            ),
            Ok(Some(true))
        );
        assert_eq!(
            evaluate(
                &policy("Allow", json!(["arn:aws:execute-api:*:*:abc/*/POST/*"])),
                ARN
            ),
            Ok(None)
        );
        let both = json!({"Statement": [
            {"Action": "execute-api:*", "Effect": "Allow", "Resource": "*"},
            {"Action": ["execute-api:Invoke"], "Effect": "Deny", "Resource": ARN},
        ]});
        assert_eq!(evaluate(&both, ARN), Ok(Some(false)));
        assert_eq!(evaluate(&json!({"Statement": "x"}), ARN), Err(()));
    }

    #[test]
    fn negated_statements_and_conditions_never_fail_open() {
        const ARN: &str = "arn:aws:execute-api:us-east-1:000000000000:abc/prod/GET/secret";
        let p = |st: Value| json!({"Version": "2012-10-17", "Statement": st});
        let allow_all = json!({"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "*"});
        let deny_not_public = json!({"Action": "execute-api:Invoke", "Effect": "Deny",
            "NotResource": "arn:aws:execute-api:us-east-1:000000000000:abc/prod/GET/public"});
        assert_eq!(
            evaluate(&p(json!([allow_all, deny_not_public])), ARN),
            Ok(Some(false))
        );
        let deny_not_other = json!({"NotAction": "execute-api:ManageConnections", "Effect": "Deny", "Resource": "*"});
        assert_eq!(
            evaluate(&p(json!([allow_all, deny_not_other])), ARN),
            Ok(Some(false))
        );
        let allow_not_secret =
            json!({"Action": "execute-api:Invoke", "Effect": "Allow", "NotResource": ARN});
        assert_eq!(evaluate(&p(json!([allow_not_secret])), ARN), Ok(None));
        let conditional = json!({"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": "*",
            "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}});
        assert_eq!(evaluate(&p(json!([allow_all, conditional])), ARN), Err(()));
        let neither = json!({"Effect": "Deny", "Resource": "*"});
        assert_eq!(evaluate(&p(json!([allow_all, neither])), ARN), Err(()));
    }

    #[test]
    fn outputs_become_outcomes() {
        let out = json!({"principalId": "u1", "policyDocument": policy("Allow", json!("*")), "context": {"tier": "gold", "n": 5, "ok": true}});
        assert_eq!(
            decide(&out, ARN),
            Outcome::Allow {
                principal_id: "u1".into(),
                context: json!({"tier": "gold", "n": "5", "ok": "true"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            }
        );
        let nested = json!({"principalId": "u1", "policyDocument": policy("Allow", json!("*")), "context": {"o": {}}});
        assert_eq!(decide(&nested, ARN), Outcome::Failure);
        assert_eq!(decide(&json!({"principalId": "u"}), ARN), Outcome::Failure);
        assert_eq!(
            decide(
                &json!({"principalId": "u", "policyDocument": policy("Deny", json!("*"))}),
                ARN
            ),
            Outcome::Denied { explicit: true }
        );
        assert!(Outcome::Unauthorized.refusal().is_some());
    }

    #[test]
    fn globs() {
        assert!(nimbus_core::iam::wildcard("a*c", "abbbc"));
        assert!(nimbus_core::iam::wildcard("a?c", "abc"));
        assert!(!nimbus_core::iam::wildcard("a?c", "abbc"));
        assert!(nimbus_core::iam::wildcard("*", ""));
        assert!(!nimbus_core::iam::wildcard("a.c", "abc"));
    }
}
