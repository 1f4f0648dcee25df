//! The composition root: the services of this server and where they plug in. Each service
//! crate is opened on the core's store and settings, registers its sink (what it takes
//! deliveries for) with the core, and gives the front door its requests' handler. A new
//! service is one more entry here.

use std::sync::Arc;

use nimbus_core::Core;
use nimbus_edge::services::Services;

/// Opens every service crate and wires it in; then the event source mappings resume.
pub(crate) async fn services(core: &Core) -> anyhow::Result<Services> {
    let sqs = Arc::new(
        nimbus_sqs::QueueService::open(core.store.clone(), core.settings.clone())
            .map_err(|e| anyhow::anyhow!("opening the queue service: {e}"))?,
    );
    core.sinks.register("sqs", sqs.clone());
    core.event_sources
        .register("sqs", Arc::new(nimbus_sqs::esm::SqsSource(sqs.clone())));
    core.event_sources
        .resume()
        .await
        .map_err(|e| anyhow::anyhow!("resuming event source mappings: {e}"))?;
    let gateway = nimbus_apigw::Gateway::open(core)
        .await
        .map_err(|e| anyhow::anyhow!("opening API Gateway: {e}"))?;
    Ok(Services::new(vec![
        nimbus_apigw::front(gateway),
        nimbus_lambda::front(core.clone()),
        nimbus_logs::front(core.clone()),
        nimbus_sqs::front(sqs),
    ]))
}
