//! OpenAPI 3 and Swagger 2 definitions with API Gateway's extensions
//! (`x-amazon-apigateway-integration`, `x-amazon-apigateway-any-method`,
//! `x-amazon-apigateway-binary-media-types`, `x-amazon-apigateway-cors`), read into the
//! resources, methods, integrations and responses of a REST API (ImportRestApi, PutRestApi) or
//! the routes and integrations of an HTTP API (ImportApi, ReimportApi), in JSON or YAML.
//!
//! Security is imported, never dropped: an operation's `security` (or the document's) names
//! schemes from `securityDefinitions` / `components.securitySchemes`; an API key scheme
//! (`x-api-key` in a header) makes the method require a key, and a scheme with
//! `x-amazon-apigateway-authorizer` becomes a Lambda authorizer (TOKEN or REQUEST) the method
//! uses. Anything else that protects (IAM, OAuth, JWT, Cognito, alternatives, keys from an
//! authorizer) refuses the whole document with a message naming it, so a protected method is
//! never imported as a public one.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::http_apis::{AResult, ApiError};
use crate::rest_apis::{Integration, IntegrationResponse, Method, MethodResponse};

/// A definition, read: the API's name and settings and, per resource path, its methods.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    /// `info.title`: the API's name (required when importing a new API).
    pub name: Option<String>,
    /// `info.description`.
    pub description: Option<String>,
    /// `x-amazon-apigateway-binary-media-types`: media types whose bodies are passed as binary.
    pub binary_media_types: Vec<String>,
    /// Resource path (`/items/{id}`) → HTTP method → method. A method's `authorizer_id` holds
    /// the name of its authorizer in `authorizers` until the import assigns ids.
    pub paths: BTreeMap<String, BTreeMap<String, Method>>,
    /// Lambda authorizers by security scheme name (their `id` is assigned on import).
    pub authorizers: BTreeMap<String, crate::rest_apis::Authorizer>,
}

/// The document's security schemes (Swagger 2 `securityDefinitions`, OpenAPI 3
/// `components.securitySchemes`).
fn schemes(doc: &Value) -> Option<&serde_json::Map<String, Value>> {
    doc.get("securityDefinitions")
        .or_else(|| doc.get("components")?.get("securitySchemes"))
        .and_then(Value::as_object)
}

/// The security requirement objects that apply to an operation: its own, else the document's.
fn requirements<'a>(
    doc: &'a Value,
    op: &'a Value,
    at: &str,
) -> AResult<Vec<&'a serde_json::Map<String, Value>>> {
    let Some(sec) = op.get("security").or_else(|| doc.get("security")) else {
        return Ok(Vec::new());
    };
    let list = sec
        .as_array()
        .ok_or_else(|| bad(format!("{at}: `security` must be a list")))?;
    list.iter()
        .map(|r| {
            r.as_object()
                .ok_or_else(|| bad(format!("{at}: each `security` entry must be an object")))
        })
        .filter(|r| r.as_ref().map_or(true, |m| !m.is_empty()))
        .collect()
}

/// How a REST API operation is protected: (authorization type, authorizer scheme name,
/// API key required). Adds the Lambda authorizers it uses to `authorizers`.
fn protection(
    doc: &Value,
    op: &Value,
    at: &str,
    authorizers: &mut BTreeMap<String, crate::rest_apis::Authorizer>,
) -> AResult<(String, Option<String>, bool)> {
    let reqs = requirements(doc, op, at)?;
    if reqs.len() > 1 {
        return Err(bad(format!(
            "{at}: alternative security requirements (more than one entry in `security`) are not supported by Nimbus yet"
        )));
    }
    let mut auth = ("NONE".to_string(), None, false);
    let Some(req) = reqs.first() else {
        return Ok(auth);
    };
    for name in req.keys() {
        let scheme = schemes(doc).and_then(|s| s.get(name)).ok_or_else(|| {
            bad(format!(
                "{at}: `security` names the undefined security scheme '{name}'"
            ))
        })?;
        let kind = scheme.get("type").and_then(Value::as_str).unwrap_or("");
        let authtype = scheme
            .get("x-amazon-apigateway-authtype")
            .and_then(Value::as_str)
            .unwrap_or("");
        if authtype.eq_ignore_ascii_case("awsSigv4") {
            return Err(bad(format!(
                "{at}: security scheme '{name}' asks for AWS_IAM authorization, which Nimbus does not support yet"
            )));
        }
        if let Some(x) = scheme.get("x-amazon-apigateway-authorizer") {
            if auth.1.is_some() {
                return Err(bad(format!(
                    "{at}: more than one Lambda authorizer in one security requirement"
                )));
            }
            let a = authorizer_of(name, scheme, x, at)?;
            authorizers.insert(name.clone(), a);
            auth.0 = "CUSTOM".into();
            auth.1 = Some(name.clone());
            continue;
        }
        let header = scheme.get("in").and_then(Value::as_str) == Some("header");
        let key_name = scheme.get("name").and_then(Value::as_str).unwrap_or("");
        if kind == "apiKey" && header && key_name.eq_ignore_ascii_case("x-api-key") {
            auth.2 = true;
            continue;
        }
        return Err(bad(format!(
            "{at}: security scheme '{name}' (type '{kind}') is not supported by Nimbus yet; only API keys (an `x-api-key` header) and Lambda authorizers (`x-amazon-apigateway-authorizer`) are"
        )));
    }
    Ok(auth)
}

/// A Lambda authorizer from a scheme's `x-amazon-apigateway-authorizer`.
fn authorizer_of(
    name: &str,
    scheme: &Value,
    x: &Value,
    at: &str,
) -> AResult<crate::rest_apis::Authorizer> {
    let kind = x
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_uppercase();
    if kind != "TOKEN" && kind != "REQUEST" {
        return Err(bad(format!(
            "{at}: the authorizer of security scheme '{name}' has type '{kind}'; Nimbus supports token and request authorizers"
        )));
    }
    let identity_source = x
        .get("identitySource")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            (kind == "TOKEN").then(|| {
                format!(
                    "method.request.header.{}",
                    scheme
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("Authorization")
                )
            })
        });
    Ok(crate::rest_apis::Authorizer {
        id: String::new(),
        name: name.to_string(),
        authorizer_type: kind,
        authorizer_uri: x
            .get("authorizerUri")
            .and_then(Value::as_str)
            .map(str::to_string),
        identity_source,
        identity_validation_expression: x
            .get("identityValidationExpression")
            .and_then(Value::as_str)
            .map(str::to_string),
        ttl_seconds: x
            .get("authorizerResultTtlInSeconds")
            .and_then(Value::as_u64)
            .map_or(300, |t| u32::try_from(t.min(3600)).unwrap_or(3600)),
    })
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest(format!("Invalid OpenAPI input: {}", msg.into()))
}

/// Parses a JSON or YAML document.
pub fn parse_document(body: &[u8]) -> AResult<Value> {
    let trimmed = body.iter().position(|b| !b.is_ascii_whitespace());
    let doc: Value = if trimmed.is_some_and(|i| body[i] == b'{') {
        serde_json::from_slice(body).map_err(|e| bad(format!("the JSON does not parse: {e}")))?
    } else {
        serde_norway::from_slice(body).map_err(|e| bad(format!("the YAML does not parse: {e}")))?
    };
    if doc.get("openapi").is_none() && doc.get("swagger").is_none() {
        return Err(bad(
            "the document has neither an `openapi` (3.x) nor a `swagger` (2.0) version field",
        ));
    }
    Ok(doc)
}

fn strings(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let s = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), s)
                })
                .collect()
        })
        .unwrap_or_default()
}

const VERBS: [&str; 8] = [
    "get",
    "put",
    "post",
    "delete",
    "options",
    "head",
    "patch",
    "x-amazon-apigateway-any-method",
];

/// The method request parameters of an operation's (and its path's) `parameters`.
fn request_parameters(params: &[&Value]) -> BTreeMap<String, bool> {
    let mut out = BTreeMap::new();
    for p in params {
        let (Some(name), Some(place)) = (
            p.get("name").and_then(Value::as_str),
            p.get("in").and_then(Value::as_str),
        ) else {
            continue;
        };
        let place = match place {
            "path" => "path",
            "query" => "querystring",
            "header" => "header",
            _ => continue,
        };
        let required = p.get("required").and_then(Value::as_bool).unwrap_or(false);
        out.insert(format!("method.request.{place}.{name}"), required);
    }
    out
}

fn integration_of(x: &Value, at: &str) -> AResult<Integration> {
    let kind = x
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("{at}: x-amazon-apigateway-integration has no type")))?
        .to_ascii_uppercase();
    let mut responses = BTreeMap::new();
    if let Some(rs) = x.get("responses").and_then(Value::as_object) {
        for (pattern, r) in rs {
            let code = match r.get("statusCode") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => {
                    return Err(bad(format!(
                        "{at}: integration response '{pattern}' has no statusCode"
                    )));
                }
            };
            responses.insert(
                code.clone(),
                IntegrationResponse {
                    status_code: code,
                    selection_pattern: (pattern != "default").then(|| pattern.clone()),
                    response_parameters: strings(r.get("responseParameters")),
                    response_templates: strings(r.get("responseTemplates")),
                },
            );
        }
    }
    Ok(Integration {
        integration_type: kind,
        http_method: x
            .get("httpMethod")
            .and_then(Value::as_str)
            .map(str::to_string),
        uri: x.get("uri").and_then(Value::as_str).map(str::to_string),
        request_templates: strings(x.get("requestTemplates")),
        request_parameters: strings(x.get("requestParameters")),
        passthrough_behavior: x
            .get("passthroughBehavior")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_uppercase(),
        timeout_ms: x
            .get("timeoutInMillis")
            .and_then(Value::as_u64)
            .map_or(0, |t| u32::try_from(t).unwrap_or(u32::MAX)),
        responses,
    })
}

/// A string of the document's `info` object (`title`, `description`).
fn info_field(doc: &Value, name: &str) -> Option<String> {
    doc.get("info")?.get(name)?.as_str().map(str::to_string)
}

/// Reads a parsed document into a definition.
pub fn read(doc: &Value) -> AResult<Definition> {
    match doc
        .get("x-amazon-apigateway-api-key-source")
        .and_then(Value::as_str)
    {
        None | Some("HEADER") => {}
        Some(other) => {
            return Err(bad(format!(
                "x-amazon-apigateway-api-key-source '{other}' is not supported by Nimbus yet; API keys are read from the x-api-key header"
            )));
        }
    }
    let mut def = Definition {
        name: info_field(doc, "title"),
        description: info_field(doc, "description"),
        binary_media_types: doc
            .get("x-amazon-apigateway-binary-media-types")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        paths: BTreeMap::new(),
        authorizers: BTreeMap::new(),
    };
    let paths = doc
        .get("paths")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("the document has no `paths` object"))?;
    for (path, item) in paths {
        if !path.starts_with('/') {
            return Err(bad(format!("path '{path}' must start with '/'")));
        }
        let shared: Vec<&Value> = item
            .get("parameters")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        let mut methods = BTreeMap::new();
        for verb in VERBS {
            let Some(op) = item.get(verb) else {
                continue;
            };
            let http = if verb == "x-amazon-apigateway-any-method" {
                "ANY".to_string()
            } else {
                verb.to_ascii_uppercase()
            };
            let at = format!("{http} {path}");
            let mut params = shared.clone();
            if let Some(a) = op.get("parameters").and_then(Value::as_array) {
                params.extend(a.iter());
            }
            let mut responses = BTreeMap::new();
            if let Some(rs) = op.get("responses").and_then(Value::as_object) {
                for (code, r) in rs {
                    if code.parse::<u16>().is_err() {
                        continue;
                    }
                    let headers = r
                        .get("headers")
                        .and_then(Value::as_object)
                        .map(|h| {
                            h.keys()
                                .map(|k| (format!("method.response.header.{k}"), false))
                                .collect()
                        })
                        .unwrap_or_default();
                    responses.insert(
                        code.clone(),
                        MethodResponse {
                            status_code: code.clone(),
                            response_parameters: headers,
                            response_models: BTreeMap::new(),
                        },
                    );
                }
            }
            let integration = op
                .get("x-amazon-apigateway-integration")
                .map(|x| integration_of(x, &at))
                .transpose()?;
            let (authorization_type, authorizer_id, api_key_required) =
                protection(doc, op, &at, &mut def.authorizers)?;
            methods.insert(
                http.clone(),
                Method {
                    http_method: http,
                    authorization_type,
                    authorizer_id,
                    request_validator_id: None,
                    request_models: BTreeMap::new(),
                    api_key_required,
                    request_parameters: request_parameters(&params),
                    responses,
                    integration,
                },
            );
        }
        def.paths.insert(path.clone(), methods);
    }
    Ok(def)
}

/// An HTTP API definition: routes (`GET /items/{id}`, `ANY /x`, `$default`) with their
/// integrations, and the API's CORS configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpDefinition {
    /// `info.title`: the API's name (required when importing a new API).
    pub name: Option<String>,
    /// `info.description`.
    pub description: Option<String>,
    /// `x-amazon-apigateway-cors`, as written; checked when the definition is applied.
    pub cors: Option<Value>,
    /// Each route key with its `x-amazon-apigateway-integration`, if any
    /// (the path `/$default` is the route `$default`).
    pub routes: Vec<(String, Option<crate::http_apis::IntegrationInput>)>,
}

/// Reads a parsed document as an HTTP API.
pub fn read_http(doc: &Value) -> AResult<HttpDefinition> {
    let paths = doc
        .get("paths")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("the document has no `paths` object"))?;
    let mut routes = Vec::new();
    for (path, item) in paths {
        if !path.starts_with('/') {
            return Err(bad(format!("path '{path}' must start with '/'")));
        }
        for verb in VERBS {
            let Some(op) = item.get(verb) else {
                continue;
            };
            let method = if verb == "x-amazon-apigateway-any-method" {
                "ANY".to_string()
            } else {
                verb.to_ascii_uppercase()
            };
            let at = format!("{method} {path}");
            if !requirements(doc, op, &at)?.is_empty() {
                return Err(bad(format!(
                    "{at}: importing route authorization (`security`) into HTTP APIs is not supported by Nimbus yet; import the API without it and attach authorizers with CreateAuthorizer and UpdateRoute"
                )));
            }
            let key = if path == "/$default" {
                "$default".to_string()
            } else {
                format!("{method} {path}")
            };
            let integration = op.get("x-amazon-apigateway-integration").map(|x| {
                crate::http_apis::IntegrationInput {
                    integration_type: x
                        .get("type")
                        .and_then(Value::as_str)
                        .map(str::to_ascii_uppercase),
                    integration_uri: x.get("uri").and_then(Value::as_str).map(str::to_string),
                    integration_method: x
                        .get("httpMethod")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    payload_format_version: match x.get("payloadFormatVersion") {
                        Some(Value::String(v)) => Some(v.clone()),
                        Some(Value::Number(n)) => Some(format!("{:.1}", n.as_f64().unwrap_or(0.0))),
                        _ => None,
                    },
                    timeout_ms: x.get("timeoutInMillis").and_then(Value::as_i64),
                    description: None,
                }
            });
            routes.push((key, integration));
        }
    }
    Ok(HttpDefinition {
        name: info_field(doc, "title"),
        description: info_field(doc, "description"),
        cors: doc.get("x-amazon-apigateway-cors").cloned(),
        routes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SWAGGER: &str = r#"
swagger: "2.0"
info:
  title: twilio
x-amazon-apigateway-binary-media-types: ["image/png"]
paths:
  /addphoto:
    get:
      parameters:
        - name: Body
          in: query
          required: false
      responses:
        "200":
          headers:
            Content-Type: {type: string}
      x-amazon-apigateway-integration:
        type: aws
        httpMethod: POST
        uri: arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:000000000000:function:f/invocations
        passthroughBehavior: when_no_templates
        requestTemplates:
          application/json: '{"body": "$input.params(''Body'')"}'
        responses:
          default:
            statusCode: "200"
            responseParameters:
              method.response.header.Content-Type: "'application/xml'"
            responseTemplates:
              application/xml: '$input.path(''$'')'
          "Bad.*":
            statusCode: 400
  /items/{id}:
    x-amazon-apigateway-any-method:
      x-amazon-apigateway-integration: {type: aws_proxy, httpMethod: POST, uri: "arn:aws:lambda:us-east-1:000000000000:function:f"}
"#;

    #[test]
    fn swagger_yaml_with_api_gateway_extensions() {
        let def = read(&parse_document(SWAGGER.as_bytes()).expect("parse")).expect("read");
        assert_eq!(def.name.as_deref(), Some("twilio"));
        assert_eq!(def.binary_media_types, vec!["image/png"]);
        let get = &def.paths["/addphoto"]["GET"];
        assert_eq!(
            get.request_parameters
                .get("method.request.querystring.Body"),
            Some(&false)
        );
        assert!(
            get.responses["200"]
                .response_parameters
                .contains_key("method.response.header.Content-Type")
        );
        let i = get.integration.as_ref().expect("integration");
        assert_eq!(
            (i.integration_type.as_str(), i.passthrough_behavior.as_str()),
            ("AWS", "WHEN_NO_TEMPLATES")
        );
        assert_eq!(i.responses["200"].selection_pattern, None);
        assert_eq!(
            i.responses["400"].selection_pattern.as_deref(),
            Some("Bad.*")
        );
        let any = &def.paths["/items/{id}"]["ANY"];
        assert_eq!(
            any.integration
                .as_ref()
                .map(|i| i.integration_type.as_str()),
            Some("AWS_PROXY")
        );
    }

    #[test]
    fn bad_documents_say_what_is_wrong() {
        for (doc, needle) in [
            ("{}", "neither"),
            ("openapi: 3.0.1\ninfo: {title: x}\n", "no `paths`"),
            (
                "{\"openapi\": \"3.0.1\", \"paths\": {\"x\": {}}}",
                "must start with '/'",
            ),
            ("openapi: [unclosed", "does not parse"),
        ] {
            let err = parse_document(doc.as_bytes()).and_then(|d| read(&d));
            assert!(
                matches!(&err, Err(ApiError::BadRequest(m)) if m.contains(needle)),
                "{doc}: {err:?}"
            );
        }
    }

    const SECURED: &str = r#"
swagger: "2.0"
info: {title: secured}
securityDefinitions:
  api_key: {type: apiKey, name: x-api-key, in: header}
  tokenAuth:
    type: apiKey
    name: Authorization
    in: header
    x-amazon-apigateway-authtype: custom
    x-amazon-apigateway-authorizer:
      type: token
      authorizerUri: arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:000000000000:function:auth/invocations
      authorizerResultTtlInSeconds: 60
  sigv4: {type: apiKey, name: Authorization, in: header, x-amazon-apigateway-authtype: awsSigv4}
  oauth: {type: oauth2, flow: implicit, authorizationUrl: "https://x", scopes: {}}
security:
  - api_key: []
paths:
  /keyed:
    get: {}
  /public:
    get: {security: []}
  /guarded:
    get:
      security:
        - tokenAuth: []
          api_key: []
"#;

    #[test]
    fn security_is_imported_never_dropped() {
        let def = read(&parse_document(SECURED.as_bytes()).expect("parse")).expect("read");
        let keyed = &def.paths["/keyed"]["GET"];
        assert!(keyed.api_key_required, "the document-level api_key applies");
        assert_eq!(keyed.authorization_type, "NONE");
        let public = &def.paths["/public"]["GET"];
        assert!(!public.api_key_required, "`security: []` opts out");
        let guarded = &def.paths["/guarded"]["GET"];
        assert!(guarded.api_key_required);
        assert_eq!(guarded.authorization_type, "CUSTOM");
        assert_eq!(guarded.authorizer_id.as_deref(), Some("tokenAuth"));
        let a = &def.authorizers["tokenAuth"];
        assert_eq!(a.authorizer_type, "TOKEN");
        assert_eq!(
            a.identity_source.as_deref(),
            Some("method.request.header.Authorization")
        );
        assert_eq!(a.ttl_seconds, 60);
    }

    #[test]
    fn unsupported_security_refuses_the_document() {
        for (security, needle) in [
            ("[{sigv4: []}]", "AWS_IAM"),
            ("[{oauth: []}]", "'oauth'"),
            ("[{nope: []}]", "undefined security scheme"),
            ("[{api_key: []}, {tokenAuth: []}]", "alternative"),
        ] {
            let doc = SECURED.replace(
                "security:\n  - api_key: []\n",
                &format!("security: {security}\n"),
            );
            let err = parse_document(doc.as_bytes()).and_then(|d| read(&d));
            assert!(
                matches!(&err, Err(ApiError::BadRequest(m)) if m.contains(needle)),
                "{security}: {err:?}"
            );
        }
        let doc = format!("{SECURED}x-amazon-apigateway-api-key-source: AUTHORIZER\n");
        assert!(read(&parse_document(doc.as_bytes()).expect("parse")).is_err());
        let http = "openapi: 3.0.1\ninfo: {title: h}\npaths:\n  /x:\n    get:\n      security: [{jwt: []}]\n";
        let err = read_http(&parse_document(http.as_bytes()).expect("parse"));
        assert!(
            matches!(&err, Err(ApiError::BadRequest(m)) if m.contains("security")),
            "{err:?}"
        );
    }
}
