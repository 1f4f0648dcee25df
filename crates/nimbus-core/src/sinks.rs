//! The delivery seam between services: a registry of sinks keyed by the service part of a
//! target ARN (`arn:aws:<service>:…`). Asynchronous invocation delivers destination records and
//! dead-letter events through it (and, later, topics their subscriptions and buckets their
//! notifications), so the platform never depends on the service that receives them: a service
//! crate registers its sink when the binary composes the server.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

/// A message attribute as SQS and SNS carry it (`DataType` `String`, `Number` or `Binary`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// `DataType`: `String`, `Number` or `Binary`, with any custom suffix.
    pub data_type: String,
    /// `StringValue`, for `String` and `Number` types.
    pub string_value: Option<String>,
    /// base64, as on the wire.
    pub binary_value: Option<String>,
}

impl Attribute {
    /// A `String` attribute.
    pub fn string(value: impl Into<String>) -> Attribute {
        Attribute {
            data_type: "String".into(),
            string_value: Some(value.into()),
            binary_value: None,
        }
    }

    /// A `Number` attribute.
    pub fn number(value: impl std::fmt::Display) -> Attribute {
        Attribute {
            data_type: "Number".into(),
            string_value: Some(value.to_string()),
            binary_value: None,
        }
    }
}

/// What is delivered: a body and its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The message body (for destinations, the invocation record as JSON).
    pub body: String,
    /// Message attributes by name (dead-letter events carry `RequestID`, `ErrorCode` and
    /// `ErrorMessage`).
    pub attributes: BTreeMap<String, Attribute>,
}

/// Why a delivery did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The target does not exist (nothing to retry: the caller drops what it was delivering,
    /// as AWS does when a destination is gone).
    #[error("{0}")]
    NotFound(String),
    /// The target cannot take it now (a store failure, a service not registered yet): try
    /// again later.
    #[error("{0}")]
    Unavailable(String),
}

/// A future of a delivery.
pub type Delivery<'a> = Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send + 'a>>;

/// A service that takes deliveries for its ARNs.
pub trait Sink: Send + Sync {
    /// Delivers `message` to `target` (a full ARN); resolves once it is durably accepted.
    fn deliver<'a>(&'a self, target: &'a str, message: Message) -> Delivery<'a>;
}

/// The sinks of this server, by ARN service.
#[derive(Default)]
pub struct Sinks {
    map: RwLock<BTreeMap<String, Arc<dyn Sink>>>,
}

impl Sinks {
    /// An empty registry.
    pub fn new() -> Sinks {
        Sinks::default()
    }

    /// Registers the sink for ARNs of `service` (`sqs`, `sns`, …), replacing any earlier one.
    pub fn register(&self, service: &str, sink: Arc<dyn Sink>) {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(service.to_string(), sink);
    }

    /// Whether a sink takes ARNs of `service`.
    pub fn serves(&self, service: &str) -> bool {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(service)
    }

    /// Delivers to the sink of the ARN's service. An ARN of a service without a sink is
    /// `Unavailable` (kept and retried: the service may not be registered yet at start).
    pub async fn deliver(&self, target: &str, message: Message) -> Result<(), SinkError> {
        let service = target.split(':').nth(2).unwrap_or_default();
        let sink = self
            .map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(service)
            .cloned();
        match sink {
            Some(s) => s.deliver(target, message).await,
            None => Err(SinkError::Unavailable(format!(
                "no service of this server takes {service} deliveries ({target})"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Recorder(Mutex<Vec<(String, String)>>);

    impl Sink for Recorder {
        fn deliver<'a>(&'a self, target: &'a str, message: Message) -> Delivery<'a> {
            Box::pin(async move {
                if target.ends_with(":missing") {
                    return Err(SinkError::NotFound("no such queue".into()));
                }
                self.0
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((target.to_string(), message.body));
                Ok(())
            })
        }
    }

    #[tokio::test]
    async fn deliveries_go_to_the_arn_services_sink() {
        let sinks = Sinks::new();
        let rec = Arc::new(Recorder(Mutex::new(Vec::new())));
        sinks.register("sqs", rec.clone());
        let msg = |b: &str| Message {
            body: b.into(),
            attributes: BTreeMap::new(),
        };
        sinks
            .deliver("arn:aws:sqs:us-east-1:000000000000:q", msg("one"))
            .await
            .expect("delivered");
        assert!(matches!(
            sinks
                .deliver("arn:aws:sqs:us-east-1:000000000000:missing", msg("two"))
                .await,
            Err(SinkError::NotFound(_))
        ));
        assert!(matches!(
            sinks
                .deliver("arn:aws:sns:us-east-1:000000000000:t", msg("three"))
                .await,
            Err(SinkError::Unavailable(_))
        ));
        assert_eq!(
            *rec.0.lock().unwrap_or_else(|e| e.into_inner()),
            vec![(
                "arn:aws:sqs:us-east-1:000000000000:q".to_string(),
                "one".to_string()
            )]
        );
        assert!(sinks.serves("sqs") && !sinks.serves("sns"));
    }
}
