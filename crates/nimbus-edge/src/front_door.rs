//! The front door: which AWS service a request is for. The SigV4 credential scope in
//! `Authorization` decides first, then `X-Amz-Target`, then the query/form `Action`, then the
//! path. Services of their own crates ([`crate::services`]) are recognised by their signing name
//! and target prefix.

use axum::body::Body;
use axum::extract::{Extension, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use nimbus_core::Core;

use crate::error::{JsonError, LambdaError};
use crate::services::{AwsService, Services};

#[derive(Clone)]
pub enum Service {
    Lambda,
    Logs,
    /// A service registered from its own crate.
    Registered(std::sync::Arc<dyn AwsService>),
    Unknown(String),
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Service::Lambda => f.write_str("Lambda"),
            Service::Logs => f.write_str("Logs"),
            Service::Registered(s) => write!(f, "Registered({})", s.signing_name()),
            Service::Unknown(w) => write!(f, "Unknown({w})"),
        }
    }
}

impl PartialEq for Service {
    fn eq(&self, other: &Service) -> bool {
        match (self, other) {
            (Service::Lambda, Service::Lambda) | (Service::Logs, Service::Logs) => true,
            (Service::Registered(a), Service::Registered(b)) => {
                a.signing_name() == b.signing_name()
            }
            (Service::Unknown(a), Service::Unknown(b)) => a == b,
            _ => false,
        }
    }
}

/// The service named by a SigV4 `Authorization` header's credential scope
/// (`Credential=AKID/20261122/us-east-1/<service>/aws4_request`).
fn scope_service(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    let cred = auth.split("Credential=").nth(1)?;
    let cred = cred.split([',', ' ']).next()?;
    let mut parts = cred.split('/');
    let _akid = parts.next()?;
    let _date = parts.next()?;
    let _region = parts.next()?;
    parts.next().map(str::to_string)
}

/// Classifies a request.
pub fn classify(
    services: &Services,
    headers: &HeaderMap,
    path: &str,
    query: Option<&str>,
) -> Service {
    if let Some(s) = scope_service(headers) {
        return match s.as_str() {
            "lambda" => Service::Lambda,
            "logs" => Service::Logs,
            other => match services.by_signing_name(other) {
                Some(svc) => Service::Registered(svc),
                None => Service::Unknown(other.to_string()),
            },
        };
    }
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        if target.starts_with("Logs_20140328.") {
            return Service::Logs;
        }
        if let Some(svc) = services.by_target(target) {
            return Service::Registered(svc);
        }
        return Service::Unknown(target.split('.').next().unwrap_or(target).to_string());
    }
    if let Some(q) = query
        && q.split('&').any(|kv| kv.starts_with("Action="))
    {
        return Service::Unknown("query-protocol".into());
    }
    let lambda_prefixes = [
        "/2015-03-31/",
        "/2014-11-13/",
        "/2016-08-19/",
        "/2017-03-31/",
        "/2017-10-31/",
        "/2018-10-31/",
        "/2019-09-25/",
        "/2019-09-30/",
        "/2020-04-22/",
        "/2020-06-30/",
        "/2021-07-20/",
        "/2021-10-31/",
        "/2021-11-15/",
    ];
    if lambda_prefixes.iter().any(|p| path.starts_with(p)) {
        return Service::Lambda;
    }
    Service::Unknown(path.to_string())
}

/// Requests no explicit route matched.
pub async fn dispatch(
    State(core): State<Core>,
    Extension(services): Extension<Services>,
    req: Request<Body>,
) -> Response {
    let service = classify(
        &services,
        req.headers(),
        req.uri().path(),
        req.uri().query(),
    );
    match service {
        Service::Logs => crate::logs::handle(core, req).await,
        Service::Registered(svc) => svc.handle(req).await,
        Service::Lambda => LambdaError::new(
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            format!(
                "Nimbus does not implement {} {} of the Lambda API",
                req.method(),
                req.uri().path()
            ),
        )
        .into_response(),
        Service::Unknown(what) => JsonError {
            status: StatusCode::BAD_REQUEST,
            error_type: "UnknownOperationException",
            message: format!("Nimbus does not serve this API yet ({what})"),
        }
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().expect("header"));
        }
        h
    }

    #[test]
    fn scope_wins_then_target_then_path() {
        let auth = "AWS4-HMAC-SHA256 Credential=test/20261122/us-east-1/logs/aws4_request, SignedHeaders=host, Signature=x";
        assert_eq!(
            classify(
                &Services::default(),
                &headers(&[("authorization", auth)]),
                "/2015-03-31/functions",
                None
            ),
            Service::Logs
        );
        assert_eq!(
            classify(
                &Services::default(),
                &headers(&[("x-amz-target", "Logs_20140328.GetLogEvents")]),
                "/",
                None
            ),
            Service::Logs
        );
        assert_eq!(
            classify(
                &Services::default(),
                &HeaderMap::new(),
                "/2015-03-31/functions/",
                None
            ),
            Service::Lambda
        );
        assert!(matches!(
            classify(
                &Services::default(),
                &HeaderMap::new(),
                "/",
                Some("Action=SendMessage")
            ),
            Service::Unknown(_)
        ));
    }

    struct Queues;

    impl AwsService for Queues {
        fn signing_name(&self) -> &'static str {
            "sqs"
        }
        fn target_prefix(&self) -> Option<&'static str> {
            Some("AmazonSQS.")
        }
        fn handle(&self, _req: Request<Body>) -> crate::services::Handled {
            Box::pin(async { StatusCode::NO_CONTENT.into_response() })
        }
    }

    #[test]
    fn registered_services_are_found_by_scope_and_target() {
        let services = Services::new(vec![std::sync::Arc::new(Queues)]);
        let auth = "AWS4-HMAC-SHA256 Credential=test/20261122/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=x";
        let by_scope = classify(&services, &headers(&[("authorization", auth)]), "/", None);
        assert!(matches!(&by_scope, Service::Registered(s) if s.signing_name() == "sqs"));
        let by_target = classify(
            &services,
            &headers(&[("x-amz-target", "AmazonSQS.SendMessage")]),
            "/",
            None,
        );
        assert_eq!(by_target, by_scope);
        // Without the registration the same request is for an unknown service.
        assert!(matches!(
            classify(
                &Services::default(),
                &headers(&[("x-amz-target", "AmazonSQS.SendMessage")]),
                "/",
                None
            ),
            Service::Unknown(_)
        ));
    }
}
