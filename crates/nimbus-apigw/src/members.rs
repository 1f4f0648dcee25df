//! Request bodies checked against the operation's members, for API Gateway's control planes
//! (whose bodies are read as JSON values): the members AWS defines for an operation (botocore's
//! `apigateway` and `apigatewayv2` models) and, of those, the ones Nimbus implements. An unknown
//! member is refused; a member AWS has and Nimbus does not is refused too unless it carries its
//! default (so tools that send defaults keep working, and nothing a caller asks for is
//! silently ignored).

use axum::body::Bytes;
use serde_json::Value;

use crate::apigwv2::{GwError, parse};
use crate::http_apis::ApiError;

/// One operation's body members.
pub(crate) struct Members {
    /// The operation's name, for messages.
    pub(crate) op: &'static str,
    /// Every member AWS's model gives its body.
    pub(crate) aws: &'static [&'static str],
    /// The members Nimbus acts on.
    pub(crate) implemented: &'static [&'static str],
}

/// What an unimplemented member may carry and still be accepted: its default, or a value with
/// no effect on a server that serves every API locally.
pub(crate) fn is_default(member: &str, v: &Value) -> bool {
    match (member, v) {
        (_, Value::Null | Value::Bool(false)) => true,
        (_, Value::Array(a)) if a.is_empty() => true,
        (_, Value::Object(o)) if o.is_empty() => true,
        // Caching is off (no stage enables a cache cluster), so where cached keys would live
        // changes nothing.
        ("cacheNamespace" | "cacheKeyParameters", _) => true,
        // Nimbus generates distinct key values anyway.
        ("generateDistinctId", Value::Bool(true)) => true,
        // Labels that change nothing served: an API's `version`, a method's or route's
        // `operationName`, a deployment's `stageDescription`, and tags where Nimbus keeps none
        // (stages); accepted and not kept (docs/compatibility.md says so).
        ("version" | "operationName" | "stageDescription" | "tags", _) => true,
        // The role API Gateway would assume to call the integration: Nimbus does not evaluate
        // IAM yet, so the call is made as without it (docs/compatibility.md).
        ("credentials", Value::String(_)) => true,
        // Edge-optimized and regional endpoints are the same thing on one local server; a
        // private endpoint (VPC endpoints) is not.
        ("endpointConfiguration", Value::Object(o)) => {
            o.get("vpcEndpointIds")
                .is_none_or(|v| v.as_array().is_some_and(Vec::is_empty))
                && o.get("types").and_then(Value::as_array).is_some_and(|t| {
                    t.iter()
                        .all(|x| matches!(x.as_str(), Some("EDGE" | "REGIONAL")))
                })
                && o.get("ipAddressType")
                    .is_none_or(|t| t.as_str() == Some("ipv4"))
                && o.keys()
                    .all(|k| matches!(k.as_str(), "types" | "vpcEndpointIds" | "ipAddressType"))
        }
        (_, Value::String(s)) => matches!(
            (member, s.as_str()),
            ("routeSelectionExpression", "$request.method $request.path")
                | ("apiKeySelectionExpression", "$request.header.x-api-key")
                | ("ipAddressType", "ipv4")
                | ("connectionType", "INTERNET")
                | ("apiKeySource", "HEADER")
                | ("responseTransferMode", "BUFFERED")
        ),
        _ => false,
    }
}

/// A request body with its members checked against the operation's ([`Members`]).
pub(crate) fn input(body: &Bytes, m: Members) -> Result<Value, GwError> {
    let v = parse(body)?;
    let Some(obj) = v.as_object() else {
        return Err(GwError(ApiError::BadRequest(
            "Invalid request body: a JSON object is expected".into(),
        )));
    };
    for (k, val) in obj {
        if !m.aws.contains(&k.as_str()) {
            return Err(GwError(ApiError::BadRequest(format!(
                "Invalid request body: {} has no member '{k}'",
                m.op
            ))));
        }
        if !m.implemented.contains(&k.as_str()) && !is_default(k, val) {
            return Err(GwError(ApiError::BadRequest(format!(
                "Nimbus does not support '{k}' on {} yet; leave it out (or at its default)",
                m.op
            ))));
        }
    }
    Ok(v)
}

/// API Gateway's (REST APIs, `apigateway`) operations.
pub(crate) mod rest {
    use super::Members;

    pub(crate) const CREATE_REST_API: Members = Members {
        op: "CreateRestApi",
        aws: &[
            "name",
            "description",
            "version",
            "cloneFrom",
            "binaryMediaTypes",
            "minimumCompressionSize",
            "apiKeySource",
            "endpointConfiguration",
            "policy",
            "tags",
            "disableExecuteApiEndpoint",
            "securityPolicy",
            "endpointAccessMode",
        ],
        implemented: &["name", "description", "binaryMediaTypes", "tags"],
    };
    pub(crate) const CREATE_RESOURCE: Members = Members {
        op: "CreateResource",
        aws: &["pathPart"],
        implemented: &["pathPart"],
    };
    pub(crate) const PUT_METHOD: Members = Members {
        op: "PutMethod",
        aws: &[
            "authorizationType",
            "authorizerId",
            "apiKeyRequired",
            "operationName",
            "requestParameters",
            "requestModels",
            "requestValidatorId",
            "authorizationScopes",
        ],
        implemented: &[
            "authorizationType",
            "authorizerId",
            "apiKeyRequired",
            "requestParameters",
            "requestModels",
            "requestValidatorId",
        ],
    };
    pub(crate) const PUT_INTEGRATION: Members = Members {
        op: "PutIntegration",
        aws: &[
            "type",
            "httpMethod",
            "uri",
            "connectionType",
            "connectionId",
            "credentials",
            "requestParameters",
            "requestTemplates",
            "passthroughBehavior",
            "cacheNamespace",
            "cacheKeyParameters",
            "contentHandling",
            "timeoutInMillis",
            "tlsConfig",
            "responseTransferMode",
            "integrationTarget",
        ],
        implemented: &[
            "type",
            "httpMethod",
            "uri",
            "requestParameters",
            "requestTemplates",
            "passthroughBehavior",
            "timeoutInMillis",
        ],
    };
    pub(crate) const PUT_METHOD_RESPONSE: Members = Members {
        op: "PutMethodResponse",
        aws: &["responseParameters", "responseModels"],
        implemented: &["responseParameters", "responseModels"],
    };
    pub(crate) const PUT_INTEGRATION_RESPONSE: Members = Members {
        op: "PutIntegrationResponse",
        aws: &[
            "selectionPattern",
            "responseParameters",
            "responseTemplates",
            "contentHandling",
        ],
        implemented: &[
            "selectionPattern",
            "responseParameters",
            "responseTemplates",
        ],
    };
    pub(crate) const CREATE_DEPLOYMENT: Members = Members {
        op: "CreateDeployment",
        aws: &[
            "stageName",
            "stageDescription",
            "description",
            "cacheClusterEnabled",
            "cacheClusterSize",
            "variables",
            "canarySettings",
            "tracingEnabled",
        ],
        implemented: &["stageName", "description", "variables"],
    };
    pub(crate) const CREATE_STAGE: Members = Members {
        op: "CreateStage",
        aws: &[
            "stageName",
            "deploymentId",
            "description",
            "cacheClusterEnabled",
            "cacheClusterSize",
            "variables",
            "documentationVersion",
            "canarySettings",
            "tracingEnabled",
            "tags",
        ],
        implemented: &["stageName", "deploymentId", "description", "variables"],
    };
    pub(crate) const CREATE_AUTHORIZER: Members = Members {
        op: "CreateAuthorizer",
        aws: &[
            "name",
            "type",
            "providerARNs",
            "authType",
            "authorizerUri",
            "authorizerCredentials",
            "identitySource",
            "identityValidationExpression",
            "authorizerResultTtlInSeconds",
        ],
        implemented: &[
            "name",
            "type",
            "authorizerUri",
            "identitySource",
            "identityValidationExpression",
            "authorizerResultTtlInSeconds",
        ],
    };
    pub(crate) const PUT_GATEWAY_RESPONSE: Members = Members {
        op: "PutGatewayResponse",
        aws: &["statusCode", "responseParameters", "responseTemplates"],
        implemented: &["statusCode", "responseParameters", "responseTemplates"],
    };
    pub(crate) const CREATE_MODEL: Members = Members {
        op: "CreateModel",
        aws: &["name", "description", "schema", "contentType"],
        implemented: &["name", "description", "schema", "contentType"],
    };
    pub(crate) const CREATE_REQUEST_VALIDATOR: Members = Members {
        op: "CreateRequestValidator",
        aws: &["name", "validateRequestBody", "validateRequestParameters"],
        implemented: &["name", "validateRequestBody", "validateRequestParameters"],
    };
    pub(crate) const CREATE_API_KEY: Members = Members {
        op: "CreateApiKey",
        aws: &[
            "name",
            "description",
            "enabled",
            "generateDistinctId",
            "value",
            "stageKeys",
            "customerId",
            "tags",
        ],
        implemented: &[
            "name",
            "description",
            "enabled",
            "value",
            "customerId",
            "tags",
        ],
    };
    pub(crate) const UPDATE_API_KEY: Members = Members {
        op: "UpdateApiKey",
        aws: &["patchOperations"],
        implemented: &["patchOperations"],
    };
    pub(crate) const CREATE_USAGE_PLAN: Members = Members {
        op: "CreateUsagePlan",
        aws: &[
            "name",
            "description",
            "apiStages",
            "throttle",
            "quota",
            "tags",
        ],
        implemented: &[
            "name",
            "description",
            "apiStages",
            "throttle",
            "quota",
            "tags",
        ],
    };
    pub(crate) const CREATE_USAGE_PLAN_KEY: Members = Members {
        op: "CreateUsagePlanKey",
        aws: &["keyId", "keyType"],
        implemented: &["keyId", "keyType"],
    };
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn check(m: Members, body: Value) -> Result<(), String> {
        input(&Bytes::from(body.to_string()), m)
            .map(drop)
            .map_err(|GwError(e)| e.to_string())
    }

    #[test]
    fn rest_api_bodies_keep_to_what_nimbus_does() {
        use rest::*;
        assert!(
            check(
                CREATE_REST_API,
                json!({"name": "a", "binaryMediaTypes": ["image/png"]})
            )
            .is_ok()
        );
        // Edge-optimized and regional endpoints are served alike; private ones are not.
        assert!(check(
            CREATE_REST_API,
            json!({"name": "a", "endpointConfiguration": {"types": ["REGIONAL"]}, "apiKeySource": "HEADER"})
        )
        .is_ok());
        let e = check(
            CREATE_REST_API,
            json!({"name": "a", "endpointConfiguration": {"types": ["PRIVATE"], "vpcEndpointIds": ["v"]}}),
        )
        .expect_err("private");
        assert!(e.contains("endpointConfiguration"), "{e}");
        // A resource policy is protective: never accepted and ignored.
        let e = check(CREATE_REST_API, json!({"name": "a", "policy": "{}"})).expect_err("policy");
        assert!(e.contains("'policy'"), "{e}");
        assert!(
            check(
                PUT_INTEGRATION,
                json!({"type": "MOCK", "cacheNamespace": "x", "cacheKeyParameters": ["a"]})
            )
            .is_ok()
        );
        assert!(
            check(
                PUT_INTEGRATION,
                json!({"type": "AWS", "credentials": "arn:aws:iam::1:role/r"})
            )
            .is_ok()
        );
        assert!(
            check(
                PUT_INTEGRATION,
                json!({"type": "AWS", "tlsConfig": {"insecureSkipVerification": true}})
            )
            .is_err()
        );
        assert!(
            check(
                CREATE_STAGE,
                json!({"stageName": "p", "tags": {"team": "a"}})
            )
            .is_ok()
        );
        assert!(
            check(
                CREATE_REST_API,
                json!({"name": "a", "version": "2",
                       "endpointConfiguration": {"types": ["EDGE"], "ipAddressType": "ipv4"}})
            )
            .is_ok()
        );
        assert!(
            check(
                CREATE_REST_API,
                json!({"name": "a", "endpointConfiguration": {"types": ["EDGE"], "ipAddressType": "dualstack"}})
            )
            .is_err()
        );
        assert!(
            check(
                CREATE_STAGE,
                json!({"stageName": "p", "tracingEnabled": true})
            )
            .is_err()
        );
        assert!(
            check(
                CREATE_API_KEY,
                json!({"name": "k", "generateDistinctId": true})
            )
            .is_ok()
        );
        assert!(
            check(
                CREATE_USAGE_PLAN_KEY,
                json!({"keyId": "k", "keyType": "API_KEY", "x": 1})
            )
            .is_err()
        );
    }
}
