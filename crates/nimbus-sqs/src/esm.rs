//! SQS as an event source: the pollers of a queue → function mapping, as Lambda runs them.
//! Each poller long-polls the queue, gathers up to `BatchSize` messages (waiting up to
//! `MaximumBatchingWindowInSeconds` for more once the first arrived), invokes the function
//! synchronously with Lambda's SQS event, and then deletes what the function handled: the whole
//! batch on success, all but the reported items with `ReportBatchItemFailures`, nothing on a
//! function error or a malformed report (the visibility timeout and the queue's redrive policy
//! take over, as on AWS). A throttled batch is made visible again after a short pause. With
//! `FilterCriteria`, a record is delivered only when a pattern matches it (its body parsed when
//! it is JSON); the others are deleted unseen, as Lambda does.
//!
//! On a FIFO queue the queue itself keeps one batch in flight per message group (a group is not
//! handed out while any of its messages is in flight), so each group is delivered in order and a
//! failing batch blocks its group until it is retried. With `ReportBatchItemFailures`, the first
//! reported item of a group and every later item of that group in the batch are kept (Lambda's
//! rule for FIFO sources: a function should stop at the first failure and report the rest), so
//! nothing of a group is deleted past a failure.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use nimbus_core::error::CoreError;
use nimbus_core::event_sources::{Batching, EventSource, Mapping, Poller};
use nimbus_core::invoke::{Caller, InvokeInput, InvokeService};
use nimbus_core::patterns::Pattern;
use nimbus_events::sqs::{SqsEvent, SqsMessageAttribute, SqsRecord};
use serde_json::Value;
use tokio::sync::watch;

use crate::service::{MessageAttribute, QueueService, Received, md5_of_attributes, md5_of_body};

/// Pollers a mapping starts with (Lambda starts with five).
const DEFAULT_POLLERS: u32 = 5;

/// Pollers a mapping may scale up to without `ScalingConfig.MaximumConcurrency` (Lambda's
/// default ceiling for SQS is 1,250 concurrent invocations; the account's concurrency limit
/// throttles before that on a single host).
const MAX_POLLERS: u32 = 1000;

/// Pollers added per second while a backlog grows, and the empty rounds after which an added
/// poller leaves.
const SCALE_STEP: u32 = 5;
const IDLE_ROUNDS: u32 = 3;

/// The longest single receive: short enough that a stop is seen within it.
const RECEIVE_WAIT_SECS: i64 = 2;

/// The largest event a batch may make (Lambda's synchronous payload limit, with room for the
/// envelope); messages past it go back to the queue for the next batch.
const MAX_EVENT_BYTES: usize = 6 * 1024 * 1024 - 4096;

const NO_QUEUE: &str = "Error occurred while ReceiveMessage. SQS Error Code: AWS.SimpleQueueService.NonExistentQueue. SQS Error Message: The specified queue does not exist.";

/// The queue service as an event source.
pub struct SqsSource(pub Arc<QueueService>);

impl EventSource for SqsSource {
    fn validate(&self, source_arn: &str) -> Result<(), String> {
        let parts: Vec<&str> = source_arn.split(':').collect();
        if parts.len() != 6 || parts[0] != "arn" || parts[2] != "sqs" {
            return Err(format!(
                "The event source ARN {source_arn} is not a queue's ARN."
            ));
        }
        self.0
            .name_of(source_arn)
            .map(drop)
            .map_err(|_| NO_QUEUE.to_string())
    }

    /// Lambda's limits for queues: more than 10 messages a batch only with a batching window;
    /// FIFO queues take at most 10 and no window.
    fn check_batching(&self, source_arn: &str, b: Batching) -> Result<(), String> {
        let fifo = source_arn.ends_with(".fifo");
        if fifo && b.window_secs > 0 {
            return Err("Batching window is not supported for FIFO queues".into());
        }
        if fifo && b.batch_size > 10 {
            return Err(format!(
                "BatchSize {} is greater than the maximum of 10 for FIFO queues",
                b.batch_size
            ));
        }
        if b.batch_size > 10 && b.window_secs == 0 {
            return Err("Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10".into());
        }
        Ok(())
    }

    fn run(
        &self,
        mapping: Mapping,
        invoke: Arc<InvokeService>,
        stop: watch::Receiver<bool>,
    ) -> Poller {
        let queue = self.0.clone();
        Box::pin(async move {
            // Five pollers to begin with; while messages wait beyond what the pollers take in a
            // round, more join (five a second) up to the ceiling, and leave once idle.
            let ceiling = mapping.maximum_concurrency.unwrap_or(MAX_POLLERS);
            let mut set = tokio::task::JoinSet::new();
            for _ in 0..DEFAULT_POLLERS.min(ceiling) {
                set.spawn(poll(
                    queue.clone(),
                    mapping.clone(),
                    invoke.clone(),
                    stop.clone(),
                    None,
                ));
            }
            let mut stop_wait = stop.clone();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = stop_wait.changed() => break,
                    _ = tick.tick() => {}
                }
                while set.try_join_next().is_some() {}
                let active = set.len() as u32;
                let backlog = queue
                    .name_of(&mapping.source_arn)
                    .and_then(|n| queue.visible_count(&n))
                    .unwrap_or(0);
                if active < ceiling && backlog > (active * mapping.batch_size) as usize {
                    for _ in 0..SCALE_STEP.min(ceiling - active) {
                        set.spawn(poll(
                            queue.clone(),
                            mapping.clone(),
                            invoke.clone(),
                            stop.clone(),
                            Some(IDLE_ROUNDS),
                        ));
                    }
                }
            }
            while set.join_next().await.is_some() {}
        })
    }
}

fn stopped(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow()
}

/// One poller; with `leave_after`, it leaves after that many rounds without messages.
async fn poll(
    queue: Arc<QueueService>,
    m: Mapping,
    invoke: Arc<InvokeService>,
    stop: watch::Receiver<bool>,
    leave_after: Option<u32>,
) {
    let mut idle = 0u32;
    let region = m
        .source_arn
        .split(':')
        .nth(3)
        .unwrap_or_default()
        .to_string();
    // Checked when the mapping was stored; one that no longer parses matches nothing.
    let filters: Vec<Pattern> = m
        .filters
        .iter()
        .filter_map(|f| Pattern::parse(f).ok())
        .collect();
    let filtered = !m.filters.is_empty();
    while !stopped(&stop) {
        let name = match queue.name_of(&m.source_arn) {
            Ok(n) => n,
            Err(_) => {
                // The queue is gone; a queue of that name may come back.
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let batch = match gather(&queue, &name, &m, &stop).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(uuid = %m.uuid, error = %e, "receiving from the mapping's queue failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if batch.is_empty() {
            idle += 1;
            if leave_after.is_some_and(|n| idle >= n) {
                return;
            }
            continue;
        }
        idle = 0;
        let (records, batch) = event_records(&queue, &name, batch, &m.source_arn, &region);
        let (records, batch): (Vec<SqsRecord>, Vec<Received>) = if filtered {
            let (keep, drop): (Vec<_>, Vec<_>) = records
                .into_iter()
                .zip(batch)
                .partition(|(rec, _)| filters.iter().any(|p| p.matches(&filter_view(rec))));
            let dropped: Vec<&str> = drop
                .iter()
                .map(|(_, r)| r.receipt_handle.as_str())
                .collect();
            if !dropped.is_empty()
                && let Err(e) = queue.delete_messages(&name, &dropped).await
            {
                tracing::warn!(uuid = %m.uuid, error = %e, "deleting filtered-out messages failed");
            }
            keep.into_iter().unzip()
        } else {
            (records, batch)
        };
        if batch.is_empty() {
            continue;
        }
        let fifo = queue.is_fifo(&name);
        // Records of strings and string maps always serialize.
        let event = serde_json::to_vec(&SqsEvent { records }).expect("an SQS event serializes");
        let outcome = invoke
            .invoke(InvokeInput::sync(
                m.target(),
                event,
                Caller::service("sqs.amazonaws.com", m.source_arn.clone()),
            ))
            .await;
        match outcome {
            Ok(r) if !r.function_error => {
                let failed = if m.reports_item_failures() {
                    let ids: HashSet<&str> = batch.iter().map(|r| r.message.id.as_str()).collect();
                    reported_failures(&r.payload, &ids)
                } else {
                    Some(HashSet::new())
                };
                let failed = if fifo {
                    failed.map(|f| fifo_kept(&batch, &f))
                } else {
                    failed
                };
                match failed {
                    Some(failed) => {
                        let handled: Vec<&str> = batch
                            .iter()
                            .filter(|r| !failed.contains(&r.message.id))
                            .map(|r| r.receipt_handle.as_str())
                            .collect();
                        match queue.delete_messages(&name, &handled).await {
                            Ok(outcomes) => {
                                for e in outcomes.into_iter().filter_map(Result::err) {
                                    tracing::warn!(uuid = %m.uuid, error = %e, "deleting a handled message failed");
                                }
                            }
                            Err(e) => {
                                tracing::warn!(uuid = %m.uuid, error = %e, "deleting a handled batch failed")
                            }
                        }
                    }
                    None => tracing::warn!(
                        uuid = %m.uuid,
                        "the function's batchItemFailures is malformed: the whole batch failed"
                    ),
                }
            }
            // A function error: the batch comes back after the visibility timeout.
            Ok(_) => {}
            Err(CoreError::TooManyRequests { .. }) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                for r in &batch {
                    let _ = queue.change_visibility(&name, &r.receipt_handle, 0);
                }
            }
            Err(e) => {
                tracing::warn!(uuid = %m.uuid, error = %e, "invoking the mapping's function failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Up to `BatchSize` messages: the first receive waits for any, then more are gathered until
/// the batch is full or the batching window has passed.
async fn gather(
    queue: &QueueService,
    name: &str,
    m: &Mapping,
    stop: &watch::Receiver<bool>,
) -> Result<Vec<Received>, crate::service::QueueError> {
    let want = m.batch_size as usize;
    let mut out: Vec<Received> = Vec::new();
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        if stopped(stop) && out.is_empty() {
            return Ok(out);
        }
        let wait = match deadline {
            None => RECEIVE_WAIT_SECS,
            Some(d) => {
                let left = d.saturating_duration_since(tokio::time::Instant::now());
                left.as_secs().min(RECEIVE_WAIT_SECS as u64) as i64
            }
        };
        let got = queue
            .receive(name, (want - out.len()).min(10), None, Some(wait))
            .await?;
        if !got.is_empty() && deadline.is_none() {
            deadline = Some(
                tokio::time::Instant::now()
                    + Duration::from_secs(u64::from(m.batching_window_secs)),
            );
        }
        out.extend(got);
        match deadline {
            Some(d) if out.len() >= want || tokio::time::Instant::now() >= d => return Ok(out),
            Some(_) => {}
            None if stopped(stop) => return Ok(out),
            None => {}
        }
    }
}

fn lambda_attributes(
    attrs: &BTreeMap<String, MessageAttribute>,
) -> BTreeMap<String, SqsMessageAttribute> {
    attrs
        .iter()
        .map(|(k, a)| {
            (
                k.clone(),
                SqsMessageAttribute {
                    string_value: a.string_value.clone(),
                    binary_value: a.binary_value.clone(),
                    string_list_values: Vec::new(),
                    binary_list_values: Vec::new(),
                    data_type: a.data_type.clone(),
                },
            )
        })
        .collect()
}

/// A record as filter patterns see it: its body parsed when it is JSON.
fn filter_view(record: &SqsRecord) -> Value {
    let mut v = serde_json::to_value(record).unwrap_or(Value::Null);
    if let Ok(parsed) = serde_json::from_str::<Value>(&record.body) {
        v["body"] = parsed;
    }
    v
}

/// Lambda's SQS records for a batch, and the messages they carry: messages past the event size
/// limit are made visible again.
fn event_records(
    queue: &QueueService,
    name: &str,
    batch: Vec<Received>,
    source_arn: &str,
    region: &str,
) -> (Vec<SqsRecord>, Vec<Received>) {
    let mut records = Vec::new();
    let mut kept = Vec::new();
    let mut size = 0usize;
    for r in batch {
        let msg = &r.message;
        let mut attributes = BTreeMap::from([
            (
                "ApproximateReceiveCount".to_string(),
                msg.receive_count.to_string(),
            ),
            ("SentTimestamp".to_string(), msg.sent_ms.to_string()),
            ("SenderId".to_string(), "000000000000".to_string()),
            (
                "ApproximateFirstReceiveTimestamp".to_string(),
                msg.first_receive_ms.unwrap_or(msg.sent_ms).to_string(),
            ),
        ]);
        // FIFO messages carry their sequence number, group and deduplication id, as in
        // Lambda's event for FIFO queues; a trace header when the sender gave one.
        for (k, v) in [
            ("SequenceNumber", &msg.sequence),
            ("MessageGroupId", &msg.group),
            ("MessageDeduplicationId", &msg.dedup_id),
            ("AWSTraceHeader", &msg.trace_header),
        ] {
            if let Some(v) = v {
                attributes.insert(k.to_string(), v.clone());
            }
        }
        let record = SqsRecord {
            message_id: msg.id.clone(),
            receipt_handle: r.receipt_handle.clone(),
            body: msg.body.clone(),
            attributes,
            message_attributes: lambda_attributes(&msg.attributes),
            md5_of_message_attributes: md5_of_attributes(&msg.attributes),
            md5_of_body: md5_of_body(&msg.body),
            event_source: "aws:sqs".into(),
            event_source_arn: source_arn.to_string(),
            aws_region: region.to_string(),
        };
        let len = serde_json::to_vec(&record).map_or(0, |v| v.len()) + 1;
        if !kept.is_empty() && size + len > MAX_EVENT_BYTES {
            let _ = queue.change_visibility(name, &r.receipt_handle, 0);
            continue;
        }
        size += len;
        records.push(record);
        kept.push(r);
    }
    (records, kept)
}

/// FIFO: the messages to keep (not delete) for reported failures — in each message group, the
/// first reported item and every item after it in the batch.
fn fifo_kept(batch: &[Received], failed: &HashSet<String>) -> HashSet<String> {
    let mut blocked: HashSet<&str> = HashSet::new();
    let mut kept = HashSet::new();
    for r in batch {
        let group = r.message.group.as_deref().unwrap_or("");
        if blocked.contains(group) || failed.contains(&r.message.id) {
            blocked.insert(group);
            kept.insert(r.message.id.clone());
        }
    }
    kept
}

/// The message ids a `ReportBatchItemFailures` response names, or `None` when the response
/// fails the whole batch (not JSON, or an item without a known `itemIdentifier`). An empty or
/// null response, or no `batchItemFailures`, is a complete success.
fn reported_failures(payload: &[u8], ids: &HashSet<&str>) -> Option<HashSet<String>> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Some(HashSet::new());
    }
    let v: Value = serde_json::from_slice(payload).ok()?;
    let items = match v.get("batchItemFailures") {
        None | Some(Value::Null) => return Some(HashSet::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return None,
    };
    let mut out = HashSet::new();
    for item in items {
        let id = item.get("itemIdentifier")?.as_str()?;
        if id.is_empty() || !ids.contains(id) {
            return None;
        }
        out.insert(id.to_string());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_failures_keep_the_rest_of_their_group() {
        let r = |id: &str, g: &str| Received {
            message: crate::service::StoredMessage {
                queue: "q.fifo".into(),
                seq: 0,
                id: id.into(),
                body: String::new(),
                attributes: BTreeMap::new(),
                sent_ms: 0,
                receive_count: 1,
                first_receive_ms: None,
                visible_at_ms: 0,
                group: Some(g.into()),
                dedup_id: None,
                sequence: None,
                trace_header: None,
            },
            receipt_handle: id.into(),
        };
        let batch = [
            r("a1", "a"),
            r("b1", "b"),
            r("a2", "a"),
            r("b2", "b"),
            r("a3", "a"),
        ];
        let failed: HashSet<String> = ["a2".to_string()].into_iter().collect();
        let mut kept: Vec<String> = fifo_kept(&batch, &failed).into_iter().collect();
        kept.sort();
        assert_eq!(
            kept,
            vec!["a2", "a3"],
            "a1 and group b are handled; a2 and a3 stay"
        );
        assert!(fifo_kept(&batch, &HashSet::new()).is_empty());
    }

    #[test]
    fn item_failure_reports_follow_lambdas_rules() {
        let ids: HashSet<&str> = ["a", "b"].into_iter().collect();
        let names = |p: &str| {
            reported_failures(p.as_bytes(), &ids).map(|s| {
                let mut v: Vec<String> = s.into_iter().collect();
                v.sort();
                v
            })
        };
        // Complete success.
        for p in [
            "",
            "null",
            "{}",
            r#"{"batchItemFailures": []}"#,
            r#"{"batchItemFailures": null}"#,
        ] {
            assert_eq!(names(p), Some(vec![]), "{p}");
        }
        assert_eq!(
            names(r#"{"batchItemFailures": [{"itemIdentifier": "b"}]}"#),
            Some(vec!["b".to_string()])
        );
        // Complete failure.
        for p in [
            "not json",
            r#"{"batchItemFailures": [{"foo": "notvalid"}]}"#,
            r#"{"batchItemFailures": [{"itemIdentifier": ""}]}"#,
            r#"{"batchItemFailures": [{"itemIdentifier": null}]}"#,
            r#"{"batchItemFailures": [{"itemIdentifier": "zzz"}]}"#,
            r#"{"batchItemFailures": "a"}"#,
        ] {
            assert_eq!(names(p), None, "{p}");
        }
    }
}
