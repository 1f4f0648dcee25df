//! The payload format 2.0 request that HTTP APIs and function URLs send to functions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A payload format 2.0 request event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRequestV2 {
    /// Always `2.0`.
    pub version: String,
    /// The matched route (`GET /pets/{id}`), `$default` for function URLs.
    pub route_key: String,
    /// The request path, as sent (percent-encoded).
    pub raw_path: String,
    /// The query string without `?`, as sent.
    pub raw_query_string: String,
    /// The `Cookie` header split into cookies; absent without cookies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookies: Option<Vec<String>>,
    /// Headers, lower-case names, repeated values joined with commas (cookies excluded).
    pub headers: BTreeMap<String, String>,
    /// Query parameters, decoded, repeated values joined with commas; absent without a query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_string_parameters: Option<BTreeMap<String, String>>,
    /// Facts about the request and the caller.
    pub request_context: HttpRequestContextV2,
    /// The body: text, or base64 when `isBase64Encoded`; absent without a body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Route parameters (`{id}` → value); `null` or absent when there are none.
    #[serde(
        default,
        deserialize_with = "crate::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub path_parameters: Option<Option<BTreeMap<String, String>>>,
    /// Whether `body` is base64.
    pub is_base64_encoded: bool,
    /// The stage's variables; `null` or absent when there are none.
    #[serde(
        default,
        deserialize_with = "crate::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub stage_variables: Option<Option<BTreeMap<String, String>>>,
}

/// `requestContext` of a payload format 2.0 event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRequestContextV2 {
    /// The API owner's account (`anonymous` for function URLs without IAM auth).
    pub account_id: String,
    /// The API id, or the function URL's id.
    pub api_id: String,
    /// Mutual-TLS client certificate details; `null` for function URLs.
    #[serde(
        default,
        deserialize_with = "crate::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub authentication: Option<Option<Value>>,
    /// What an authorizer (Lambda, JWT or IAM) said about the caller; absent without one.
    #[serde(
        default,
        deserialize_with = "crate::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub authorizer: Option<Option<Value>>,
    /// The host name the request was sent to.
    pub domain_name: String,
    /// The first label of `domainName`.
    pub domain_prefix: String,
    /// Method, path, protocol, source address and user agent.
    pub http: HttpDescriptionV2,
    /// The request's id.
    pub request_id: String,
    /// As `routeKey` above.
    pub route_key: String,
    /// The stage (`$default` for function URLs).
    pub stage: String,
    /// When the request arrived, `dd/Mon/yyyy:HH:mm:ss +0000`.
    pub time: String,
    /// When the request arrived, milliseconds since the Unix epoch.
    pub time_epoch: i64,
}

/// `requestContext.http`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpDescriptionV2 {
    /// The HTTP method.
    pub method: String,
    /// The request path.
    pub path: String,
    /// `HTTP/1.1`.
    pub protocol: String,
    /// The address of the immediate TCP peer.
    pub source_ip: String,
    /// The `User-Agent` header (empty without one).
    pub user_agent: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_sample_round_trips() {
        let (expected, back) = crate::round_trip::<HttpRequestV2>(include_str!(
            "../fixtures/function-url-request.json"
        ));
        assert_eq!(expected, back);
    }

    #[test]
    fn absent_and_null_members_stay_as_they_were() {
        let minimal = r#"{"version":"2.0","routeKey":"$default","rawPath":"/","rawQueryString":"",
            "headers":{},"requestContext":{"accountId":"anonymous","apiId":"x","domainName":"x.lambda-url.localhost",
            "domainPrefix":"x","http":{"method":"GET","path":"/","protocol":"HTTP/1.1","sourceIp":"127.0.0.1","userAgent":""},
            "requestId":"r","routeKey":"$default","stage":"$default","time":"t","timeEpoch":0},"isBase64Encoded":false}"#;
        let (expected, back) = crate::round_trip::<HttpRequestV2>(minimal);
        assert_eq!(expected, back);
        assert!(back.get("pathParameters").is_none());
    }
}

/// A payload format 1.0 request: HTTP APIs with `payloadFormatVersion` 1.0, and REST APIs'
/// `AWS_PROXY` integrations (which leave out `version`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyRequestV1 {
    /// `1.0` for HTTP APIs; absent for REST APIs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The matched resource's path template (`/pets/{id}`).
    pub resource: String,
    /// The request path.
    pub path: String,
    /// The HTTP method.
    pub http_method: String,
    /// Headers, the last value of each; `null` without headers.
    pub headers: Option<BTreeMap<String, String>>,
    /// Headers, every value of each; `null` without headers.
    pub multi_value_headers: Option<BTreeMap<String, Vec<String>>>,
    /// Query parameters, decoded, the last value of each; `null` without a query.
    pub query_string_parameters: Option<BTreeMap<String, String>>,
    /// Query parameters, decoded, every value of each; `null` without a query.
    pub multi_value_query_string_parameters: Option<BTreeMap<String, Vec<String>>>,
    /// Facts about the request and the caller.
    pub request_context: ProxyRequestContextV1,
    /// Path parameters; `null` without them.
    pub path_parameters: Option<BTreeMap<String, String>>,
    /// The stage's variables; `null` without them.
    pub stage_variables: Option<BTreeMap<String, String>>,
    /// The body (base64 when `isBase64Encoded`); `null` without one.
    pub body: Option<String>,
    /// Whether `body` is base64.
    pub is_base64_encoded: bool,
}

/// `requestContext` of a payload format 1.0 request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyRequestContextV1 {
    /// The API owner's account.
    pub account_id: String,
    /// The API's id.
    pub api_id: String,
    /// What an authorizer said about the caller; absent without one.
    #[serde(
        default,
        deserialize_with = "crate::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub authorizer: Option<Option<Value>>,
    /// The host name the request was sent to.
    pub domain_name: String,
    /// The first label of `domainName`.
    pub domain_prefix: String,
    /// API Gateway's extended request id.
    pub extended_request_id: String,
    /// The HTTP method.
    pub http_method: String,
    /// Who called: all of IAM's and Cognito's members, `null` where unknown.
    pub identity: ProxyIdentityV1,
    /// The request path (REST APIs: with the stage).
    pub path: String,
    /// `HTTP/1.1`.
    pub protocol: String,
    /// The request's id.
    pub request_id: String,
    /// When the request arrived, `dd/Mon/yyyy:HH:mm:ss +0000`.
    pub request_time: String,
    /// When the request arrived, milliseconds since the Unix epoch.
    pub request_time_epoch: i64,
    /// The resource's id (REST APIs); `null` for HTTP APIs.
    #[serde(
        default,
        deserialize_with = "crate::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub resource_id: Option<Option<String>>,
    /// The matched resource's path template.
    pub resource_path: String,
    /// The stage.
    pub stage: String,
}

/// `requestContext.identity` of a payload format 1.0 request.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyIdentityV1 {
    /// The caller's access key (IAM authorization).
    pub access_key: Option<String>,
    /// The caller's account (IAM authorization).
    pub account_id: Option<String>,
    /// The API key used (REST APIs); absent for HTTP APIs.
    #[serde(
        default,
        deserialize_with = "crate::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub api_key: Option<Option<String>>,
    /// The API key's id (REST APIs); absent for HTTP APIs.
    #[serde(
        default,
        deserialize_with = "crate::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub api_key_id: Option<Option<String>>,
    /// The caller's principal id (IAM authorization).
    pub caller: Option<String>,
    /// Cognito's authentication provider.
    pub cognito_authentication_provider: Option<String>,
    /// Cognito's authentication type.
    pub cognito_authentication_type: Option<String>,
    /// Cognito's identity id.
    pub cognito_identity_id: Option<String>,
    /// Cognito's identity pool id.
    pub cognito_identity_pool_id: Option<String>,
    /// The caller's organization (IAM authorization).
    pub principal_org_id: Option<String>,
    /// The address of the immediate TCP peer.
    pub source_ip: String,
    /// The caller's user id (IAM authorization).
    pub user: Option<String>,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// The caller's ARN (IAM authorization).
    pub user_arn: Option<String>,
    /// The client certificate of a mutual-TLS request; absent otherwise.
    #[serde(
        default,
        deserialize_with = "crate::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub client_cert: Option<Option<Value>>,
}

#[cfg(test)]
mod v1_tests {
    use super::*;

    #[test]
    fn aws_sample_round_trips() {
        let (expected, back) = crate::round_trip::<ProxyRequestV1>(include_str!(
            "../fixtures/http-api-request-v1.json"
        ));
        assert_eq!(expected, back);
    }
}
