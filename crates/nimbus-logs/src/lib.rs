//! Nimbus logs: CloudWatch Logs as a crate of its own. The platform (`nimbus-core::logs`) owns
//! the log store that every environment writes to; this crate serves it over CloudWatch Logs'
//! JSON 1.1 protocol ([`wire`]): the read API, deletes and retention policies.

pub mod wire;

use std::sync::Arc;

use nimbus_core::Core;
use nimbus_edge::services::{AwsService, Handled};

/// CloudWatch Logs at the front door.
struct Front(Core);

impl AwsService for Front {
    fn signing_name(&self) -> &'static str {
        "logs"
    }

    fn target_prefix(&self) -> Option<&'static str> {
        Some("Logs_20140328.")
    }

    fn handle(&self, req: axum::extract::Request) -> Handled {
        let core = self.0.clone();
        Box::pin(wire::handle(core, req))
    }
}

/// The front door's view of the logs service.
pub fn front(core: Core) -> Arc<dyn AwsService> {
    Arc::new(Front(core))
}
