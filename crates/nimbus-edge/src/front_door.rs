//! The front door: which service a request is for, decided once, in one order for everyone.
//! Endpoints a service declares by host or path (function URLs, API stages) come first; then
//! the SigV4 credential scope in `Authorization`, `X-Amz-Target`, the query/form `Action`, and
//! the path prefixes services declare. Every service is a crate of its own registered as a
//! [`crate::services::AwsService`]; no route is matched ahead of this.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;

use crate::error::JsonError;
use crate::guard::{self, BrowserPolicy};
use crate::services::{AwsService, Services};

/// Where the front door sends a request.
#[derive(Clone)]
pub enum Service {
    /// A service registered from its own crate.
    Registered(std::sync::Arc<dyn AwsService>),
    /// Nothing registered claims it: what the request named, for the error message.
    Unknown(String),
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Service::Registered(s) => write!(f, "Registered({})", s.signing_name()),
            Service::Unknown(w) => write!(f, "Unknown({w})"),
        }
    }
}

impl PartialEq for Service {
    fn eq(&self, other: &Service) -> bool {
        match (self, other) {
            (Service::Registered(a), Service::Registered(b)) => {
                a.signing_name() == b.signing_name()
            }
            (Service::Unknown(a), Service::Unknown(b)) => a == b,
            _ => false,
        }
    }
}

/// Classifies a request: the SigV4 credential scope, then `X-Amz-Target`, then the query
/// `Action`, then the path prefixes services declare.
pub fn classify(
    services: &Services,
    headers: &HeaderMap,
    path: &str,
    query: Option<&str>,
) -> Service {
    let found = |svc: Option<std::sync::Arc<dyn AwsService>>, what: &str| match svc {
        Some(svc) => Service::Registered(svc),
        None => Service::Unknown(what.to_string()),
    };
    if let Some(c) = crate::services::credential(headers) {
        return found(services.by_signing_name(c.service), c.service);
    }
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        let prefix = target.split('.').next().unwrap_or(target);
        return found(services.by_target(target), prefix);
    }
    if let Some(q) = query
        && q.split('&').any(|kv| kv.starts_with("Action="))
    {
        return Service::Unknown("query-protocol".into());
    }
    found(services.by_path(path), path)
}

/// What the front door routes with.
pub struct FrontDoor {
    /// Which browsers and host names may reach the AWS APIs.
    pub browsers: BrowserPolicy,
    /// The AWS services registered by the binary, asked in [`classify`]'s order.
    pub services: Services,
    /// Nimbus's own endpoints (`/_nimbus/…`).
    pub own: Router,
}

/// Every request, in one order: an endpoint a service declares (function URLs and API stages
/// serve browsers, so the browser guard does not apply to them); otherwise the guard, then
/// Nimbus's own `/_nimbus/` endpoints, then the AWS service [`classify`] picks.
pub async fn dispatch(State(door): State<Arc<FrontDoor>>, req: Request<Body>) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Some(svc) = door.services.by_endpoint(host, req.uri().path()) {
        return svc.handle(req).await;
    }
    let routed = door.clone();
    guard::check(&door.browsers, req, move |req| async move {
        if req.uri().path().starts_with("/_nimbus/") {
            return match routed.own.clone().oneshot(req).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            };
        }
        let service = classify(
            &routed.services,
            req.headers(),
            req.uri().path(),
            req.uri().query(),
        );
        match service {
            Service::Registered(svc) => svc.handle(req).await,
            Service::Unknown(what) => JsonError {
                status: StatusCode::BAD_REQUEST,
                error_type: "UnknownOperationException",
                message: format!("Nimbus does not serve this API yet ({what})"),
            }
            .into_response(),
        }
    })
    .await
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

    /// A stand-in service: a signing name, a target prefix and path prefixes.
    struct Stub(&'static str, Option<&'static str>, &'static [&'static str]);

    impl AwsService for Stub {
        fn signing_name(&self) -> &'static str {
            self.0
        }
        fn target_prefix(&self) -> Option<&'static str> {
            self.1
        }
        fn path_prefixes(&self) -> &'static [&'static str] {
            self.2
        }
        fn handle(&self, _req: Request<Body>) -> crate::services::Handled {
            Box::pin(async { StatusCode::NO_CONTENT.into_response() })
        }
    }

    fn is(service: &Service, name: &str) -> bool {
        matches!(service, Service::Registered(s) if s.signing_name() == name)
    }

    #[test]
    fn scope_wins_then_target_then_path() {
        let services = Services::new(vec![
            std::sync::Arc::new(Stub("logs", Some("Logs_20140328."), &[])),
            std::sync::Arc::new(Stub("lambda", None, &["/2015-03-31/"])),
        ]);
        let auth = "AWS4-HMAC-SHA256 Credential=test/20261122/us-east-1/logs/aws4_request, SignedHeaders=host, Signature=x";
        let logs_by_scope = classify(
            &services,
            &headers(&[("authorization", auth)]),
            "/2015-03-31/functions",
            None,
        );
        assert!(is(&logs_by_scope, "logs"), "{logs_by_scope:?}");
        let logs_by_target = classify(
            &services,
            &headers(&[("x-amz-target", "Logs_20140328.GetLogEvents")]),
            "/2015-03-31/functions",
            None,
        );
        assert!(is(&logs_by_target, "logs"), "{logs_by_target:?}");
        let by_path = classify(&services, &HeaderMap::new(), "/2015-03-31/functions/", None);
        assert!(is(&by_path, "lambda"), "{by_path:?}");
        assert!(matches!(
            classify(
                &services,
                &HeaderMap::new(),
                "/",
                Some("Action=SendMessage")
            ),
            Service::Unknown(_)
        ));
        assert!(matches!(
            classify(&services, &HeaderMap::new(), "/2099-01-01/x", None),
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
