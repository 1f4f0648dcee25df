//! Nimbus queues: the SQS service as a crate of its own. [`service`] owns queues and their
//! durable messages (standard and FIFO), [`api`] is SQS's operations as typed requests and
//! results, [`wire`] speaks SQS's JSON protocol and [`query`] its query (form/XML) protocol over
//! the same operations, and the crate plugs into the server in
//! two places: the front door routes SQS requests to [`front`], and the sink registry delivers
//! destination records and dead-letter events to queues through [`QueueService`]'s [`Sink`];
//! [`esm::SqsSource`] feeds event source mappings (queue → function).

pub mod api;
pub mod esm;
pub mod query;
pub mod service;
pub mod wire;

use std::sync::Arc;

use nimbus_core::sinks::{Delivery, Message, Sink, SinkError};
pub use service::QueueService;

impl Sink for QueueService {
    /// Sends one message to the queue the ARN names (`arn:aws:sqs:<region>:<account>:<name>`).
    fn deliver<'a>(&'a self, target: &'a str, message: Message) -> Delivery<'a> {
        Box::pin(async move {
            let name = self
                .name_of(target)
                .map_err(|e| SinkError::NotFound(format!("{target}: {e}")))?;
            let attributes = message
                .attributes
                .into_iter()
                .map(|(k, a)| {
                    (
                        k,
                        service::MessageAttribute {
                            data_type: a.data_type,
                            string_value: a.string_value,
                            binary_value: a.binary_value,
                        },
                    )
                })
                .collect();
            // A FIFO queue takes the record in one message group, deduplicated by content.
            let fifo = self.is_fifo(&name);
            let body = message.body;
            let outgoing = service::Outgoing {
                group: fifo.then(|| "nimbus".to_string()),
                dedup_id: fifo.then(|| service::sha256_hex(body.as_bytes())),
                // Delivered at once on a standard queue (the queue's delay does not apply).
                delay: (!fifo).then_some(0),
                attributes,
                ..service::Outgoing::body(body)
            };
            self.send(&name, vec![outgoing])
                .await
                .map(drop)
                .map_err(|e| match e {
                    service::QueueError::NoQueue => SinkError::NotFound(format!("{target}: {e}")),
                    // Kept for a retry: the queue may take it later (a larger maximum size).
                    other => SinkError::Unavailable(format!("{target}: {other}")),
                })
        })
    }
}

/// SQS at the front door.
struct Front(Arc<QueueService>);

impl nimbus_edge::services::AwsService for Front {
    fn signing_name(&self) -> &'static str {
        "sqs"
    }

    fn target_prefix(&self) -> Option<&'static str> {
        Some("AmazonSQS.")
    }

    fn handle(&self, req: axum::extract::Request) -> nimbus_edge::services::Handled {
        let svc = self.0.clone();
        Box::pin(async move { wire::handle(&svc, req).await })
    }
}

/// The front door's view of the queue service.
pub fn front(service: Arc<QueueService>) -> Arc<dyn nimbus_edge::services::AwsService> {
    Arc::new(Front(service))
}
