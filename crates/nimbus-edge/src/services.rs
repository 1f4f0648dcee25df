//! Services that plug into the front door from crates of their own: each says how the front
//! door recognises its requests (the SigV4 signing name, the `X-Amz-Target` prefix of its JSON
//! operations, the path prefixes of its REST operations) and handles what it is given. The binary registers them as it composes the
//! server; the front door asks them in [`crate::front_door::classify`]'s order.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;

/// A response being produced.
pub type Handled = Pin<Box<dyn Future<Output = Response> + Send>>;

/// An AWS service served from its own crate.
pub trait AwsService: Send + Sync + 'static {
    /// The name in SigV4 credential scopes (`Credential=…/<region>/<name>/aws4_request`).
    fn signing_name(&self) -> &'static str;
    /// The `X-Amz-Target` prefix of its operations (`AmazonSQS.`), for JSON-protocol services.
    fn target_prefix(&self) -> Option<&'static str> {
        None
    }
    /// Path prefixes that are its own when a request is not signed (REST protocols whose paths
    /// carry the API version, such as Lambda's `/2015-03-31/`).
    fn path_prefixes(&self) -> &'static [&'static str] {
        &[]
    }
    /// Whether this service serves the request as one of its public endpoints (function URLs,
    /// API stages: by host name or path). Checked before anything else, and such requests skip
    /// the browser guard: they serve browsers as AWS does.
    fn endpoint(&self, _host: &str, _path: &str) -> bool {
        false
    }
    /// Serves one request the front door routed here.
    fn handle(&self, req: Request<Body>) -> Handled;
}

/// The registered services.
#[derive(Clone, Default)]
pub struct Services(Arc<Vec<Arc<dyn AwsService>>>);

impl Services {
    /// Registers services; where two could claim a request, the earlier in `list` wins.
    pub fn new(list: Vec<Arc<dyn AwsService>>) -> Services {
        Services(Arc::new(list))
    }

    /// The service whose signing name this is.
    pub fn by_signing_name(&self, name: &str) -> Option<Arc<dyn AwsService>> {
        self.0.iter().find(|s| s.signing_name() == name).cloned()
    }

    /// The service whose operations carry this `X-Amz-Target`.
    pub fn by_target(&self, target: &str) -> Option<Arc<dyn AwsService>> {
        self.0
            .iter()
            .find(|s| s.target_prefix().is_some_and(|p| target.starts_with(p)))
            .cloned()
    }

    /// The service whose public endpoint this is.
    pub fn by_endpoint(&self, host: &str, path: &str) -> Option<Arc<dyn AwsService>> {
        self.0.iter().find(|s| s.endpoint(host, path)).cloned()
    }

    /// The service that declared a prefix of this path.
    pub fn by_path(&self, path: &str) -> Option<Arc<dyn AwsService>> {
        self.0
            .iter()
            .find(|s| s.path_prefixes().iter().any(|p| path.starts_with(p)))
            .cloned()
    }
}

/// What a SigV4 `Authorization` header's credential names
/// (`Credential=<key id>/<date>/<region>/<service>/aws4_request`), unverified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credential<'a> {
    /// The access key id.
    pub access_key_id: &'a str,
    /// The signing name of the service the request was signed for.
    pub service: &'a str,
}

/// The credential of a request's SigV4 `Authorization` header, parsed once for routing and
/// for the caller's identity.
pub fn credential(headers: &axum::http::HeaderMap) -> Option<Credential<'_>> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    let cred = auth.split("Credential=").nth(1)?;
    let cred = cred.split([',', ' ']).next()?;
    let mut parts = cred.split('/');
    let access_key_id = parts.next()?.trim();
    let _date = parts.next()?;
    let _region = parts.next()?;
    let service = parts.next()?;
    Some(Credential {
        access_key_id,
        service,
    })
}

/// The access key id a SigV4 `Authorization` header names, unverified.
pub fn access_key_id(headers: &axum::http::HeaderMap) -> Option<String> {
    credential(headers)
        .map(|c| c.access_key_id)
        .filter(|k| !k.is_empty() && k.len() <= 128)
        .map(str::to_string)
}
