//! The built-in queue service (SQS semantics, standard and FIFO queues): queues, their messages
//! and FIFO deduplication entries are records (kinds `sqs-queue`, `sqs-message`, `sqs-dedup`),
//! so a message is durable once `SendMessage` answers and the 5-minute deduplication window
//! survives a restart. Visibility, receive counts and redrive to a dead-letter queue are kept in
//! memory; after a restart every unfinished message is visible again (at-least-once, as SQS).
//! FIFO queues hand out a message group only while none of its messages is in flight, and a
//! group's messages in the order they were sent.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use md5::{Digest, Md5};
use nimbus_store::{Store, WriteOp};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use nimbus_core::error::{CoreError, Result};
use nimbus_core::settings::Settings;

const QUEUE_KIND: &str = "sqs-queue";
const MESSAGE_KIND: &str = "sqs-message";
const DEDUP_KIND: &str = "sqs-dedup";

/// FIFO deduplication interval (SQS's five minutes).
pub const DEDUP_WINDOW_MS: i64 = 5 * 60 * 1000;

/// Tags a queue may carry (SQS's limit), and their key and value lengths.
pub const MAX_TAGS: usize = 50;
const MAX_TAG_KEY: usize = 128;
const MAX_TAG_VALUE: usize = 256;

/// The largest `Policy` document SQS takes (20 KB, as a queue attribute).
const MAX_POLICY: usize = 20 * 1024;

/// Errors in SQS's own vocabulary (the wire edge renders them).
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue does not exist (`QueueDoesNotExist`).
    #[error("The specified queue does not exist.")]
    NoQueue,
    /// CreateQueue of an existing name with a different value for this attribute
    /// (`QueueNameExists`).
    #[error("A queue already exists with the same name and a different value for attribute {0}")]
    NameExists(String),
    /// A request parameter is out of range or malformed (`InvalidParameterValue`).
    #[error("{0}")]
    InvalidParameter(String),
    /// A required parameter is absent, by its wire name (`MissingParameter`).
    #[error("The request must contain the parameter {0}.")]
    MissingParameter(String),
    /// A queue attribute has a value SQS refuses (`InvalidAttributeValue`).
    #[error("{0}")]
    InvalidAttribute(String),
    /// A queue attribute name SQS does not know, or a FIFO-only one on a standard queue
    /// (`InvalidAttributeName`).
    #[error("Unknown Attribute {0}.")]
    InvalidAttributeName(String),
    /// The receipt handle is malformed or no longer current (`ReceiptHandleIsInvalid`).
    #[error("The input receipt handle \"{0}\" is not a valid receipt handle.")]
    ReceiptHandleInvalid(String),
    /// A body or attribute value with characters outside XML 1.0's (`InvalidMessageContents`).
    #[error("{0}")]
    InvalidMessageContents(String),
    /// A batch request without entries (`EmptyBatchRequest`).
    #[error("{0}")]
    EmptyBatch(String),
    /// A batch request of more than 10 entries (`TooManyEntriesInBatchRequest`).
    #[error("{0}")]
    TooManyEntries(String),
    /// Two entries of a batch share an `Id` (`BatchEntryIdsNotDistinct`).
    #[error("{0}")]
    DistinctIds(String),
    /// A batch entry `Id` that is not 1–80 of `[A-Za-z0-9_-]` (`InvalidBatchEntryId`).
    #[error("{0}")]
    InvalidBatchEntryId(String),
    /// A SendMessageBatch over 1 MiB in all (`BatchRequestTooLong`).
    #[error("{0}")]
    BatchRequestTooLong(String),
    /// A per-request limit exceeded, e.g. more than 7 accounts or actions in AddPermission
    /// (`OverLimit`).
    #[error("{0}")]
    OverLimit(String),
    /// An SQS operation Nimbus does not implement, by name (`UnsupportedOperation`).
    #[error("Nimbus does not implement the SQS operation {0}.")]
    Unsupported(String),
    /// A store or core failure: Nimbus's fault (`InternalError`, 500).
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl From<nimbus_store::StoreError> for QueueError {
    fn from(e: nimbus_store::StoreError) -> Self {
        QueueError::Core(CoreError::from(e))
    }
}

/// A result whose error is a [`QueueError`].
pub type QResult<T> = std::result::Result<T, QueueError>;

/// A message attribute (`StringValue` or `BinaryValue`, with its `DataType`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageAttribute {
    /// `DataType`: `String`, `Number` or `Binary`, with any custom suffix.
    pub data_type: String,
    /// `StringValue`, for `String` and `Number` types.
    pub string_value: Option<String>,
    /// base64 as on the wire.
    pub binary_value: Option<String>,
}

/// A queue as stored (record kind `sqs-queue`, keyed by name).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueRecord {
    /// The queue name (ends in `.fifo` for a FIFO queue).
    pub name: String,
    /// `CreatedTimestamp`: seconds since the Unix epoch.
    pub created: i64,
    /// Queue attributes by SQS name, SQS's defaults filled in at creation; the computed ones
    /// (`QueueArn`, counts, timestamps) are not stored.
    pub attributes: BTreeMap<String, String>,
    /// Queue tags (at most 50).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// `LastModifiedTimestamp`: seconds since the Unix epoch of the last SetQueueAttributes
    /// (`None`: never, so `created`).
    #[serde(default)]
    pub modified: Option<i64>,
}

impl QueueRecord {
    /// Whether the `FifoQueue` attribute is `true`.
    pub fn is_fifo(&self) -> bool {
        self.attributes
            .get("FifoQueue")
            .is_some_and(|v| v == "true")
    }
}

/// A message as stored (record kind `sqs-message`, keyed `{queue}:{seq:020}`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredMessage {
    /// The name of the queue holding the message.
    pub queue: String,
    /// Nimbus's internal order number, unique across all queues and increasing in send order; the
    /// record key and the start of receipt handles (0 for a FIFO duplicate, which is not stored).
    pub seq: u64,
    /// `MessageId`: a UUID.
    pub id: String,
    /// The body as sent.
    pub body: String,
    /// Message attributes by name.
    pub attributes: BTreeMap<String, MessageAttribute>,
    /// `SentTimestamp`: milliseconds since the Unix epoch.
    pub sent_ms: i64,
    /// `ApproximateReceiveCount`: how often the message was handed out; past the redrive policy's
    /// `maxReceiveCount` it moves to the dead-letter queue.
    #[serde(default)]
    pub receive_count: u32,
    /// `ApproximateFirstReceiveTimestamp`: milliseconds since the Unix epoch, once received.
    #[serde(default)]
    pub first_receive_ms: Option<i64>,
    /// When the message becomes visible (delay or visibility timeout), milliseconds since the Unix
    /// epoch; 0 after a restart, so visible at once.
    #[serde(default)]
    pub visible_at_ms: i64,
    /// `MessageGroupId` (FIFO queues; fair queues on standard ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// `MessageDeduplicationId` (given or content-based), FIFO queues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_id: Option<String>,
    /// `SequenceNumber` (20 digits, strictly increasing per queue), FIFO queues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<String>,
    /// `AWSTraceHeader`, when the sender gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_header: Option<String>,
}

/// One message to send.
#[derive(Debug, Clone, Default)]
pub struct Outgoing {
    /// `MessageBody`.
    pub body: String,
    /// Message attributes by name, already checked.
    pub attributes: BTreeMap<String, MessageAttribute>,
    /// Per-message `DelaySeconds` (refused on FIFO queues).
    pub delay: Option<i64>,
    /// `MessageGroupId` (required on FIFO queues).
    pub group: Option<String>,
    /// `MessageDeduplicationId` (FIFO queues; `None` with content-based deduplication).
    pub dedup_id: Option<String>,
    /// `AWSTraceHeader`, the one message system attribute SQS takes.
    pub trace_header: Option<String>,
}

impl Outgoing {
    /// A message of just this body: no attributes, delay, group or deduplication id.
    pub fn body(body: impl Into<String>) -> Outgoing {
        Outgoing {
            body: body.into(),
            ..Outgoing::default()
        }
    }
}

/// What a send did: the message as stored, or (a FIFO duplicate inside the deduplication
/// window) the original's id and sequence number, not enqueued again.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The message as stored, or for a duplicate the message sent with the original's id and
    /// sequence number.
    pub message: StoredMessage,
    /// Whether this was a FIFO duplicate inside the deduplication window (not enqueued).
    pub duplicate: bool,
}

/// A received message, as ReceiveMessage returns it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The message, its receive count and visibility as this receive set them.
    pub message: StoredMessage,
    /// The receipt handle of this receive (`{seq}#{uuid}`): only the latest receive's handle is
    /// current.
    pub receipt_handle: String,
}

/// A deduplication entry: the first message sent with this id, until `expires_ms`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DedupEntry {
    message_id: String,
    sequence: String,
    expires_ms: i64,
}

#[derive(Default)]
struct QueueState {
    record: Option<QueueRecord>,
    messages: BTreeMap<u64, StoredMessage>,
    /// Receipt handle → message seq, for messages in flight.
    receipts: HashMap<String, u64>,
    /// FIFO: deduplication scope key → the first message sent with it.
    dedup: HashMap<String, DedupEntry>,
    /// FIFO: the last sequence number given out.
    last_sequence: u128,
    /// When expired deduplication entries were last swept.
    dedup_swept_ms: i64,
    /// FIFO: messages given a place in the queue (seq → group) whose commit is under way: a
    /// later message of their group waits for them, so concurrent senders cannot overtake.
    pending: BTreeMap<u64, String>,
    /// FIFO: `ReceiveRequestAttemptId` → what that receive handed out, for its retries.
    attempts: HashMap<String, Attempt>,
}

/// A FIFO receive that may be retried: its messages and handles, each message's visibility
/// deadline as that receive (or its last retry) set it, and when the attempt id lapses.
#[derive(Debug, Clone)]
struct Attempt {
    handed: Vec<(u64, String, i64)>,
    expires_ms: i64,
}

/// How long a `ReceiveRequestAttemptId` can be retried (SQS: five minutes).
const ATTEMPT_WINDOW_MS: i64 = 5 * 60 * 1000;
/// Attempt ids a queue remembers at most (the oldest are forgotten first).
const MAX_ATTEMPTS: usize = 10_000;

/// The queue service: every queue's record and messages in memory, writes committed to the store
/// before they answer. One per server, shared by the wire handlers, the destination sink and the
/// event source mappings.
pub struct QueueService {
    store: Store,
    settings: Arc<Settings>,
    queues: Mutex<BTreeMap<String, QueueState>>,
    seq: std::sync::atomic::AtomicU64,
    arrived: tokio::sync::Notify,
}

const DEFAULTS: &[(&str, &str)] = &[
    ("DelaySeconds", "0"),
    ("MaximumMessageSize", "262144"),
    ("MessageRetentionPeriod", "345600"),
    ("ReceiveMessageWaitTimeSeconds", "0"),
    ("VisibilityTimeout", "30"),
    ("SqsManagedSseEnabled", "true"),
];

const FIFO_DEFAULTS: &[(&str, &str)] = &[
    ("ContentBasedDeduplication", "false"),
    ("DeduplicationScope", "queue"),
    ("FifoThroughputLimit", "perQueue"),
];

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

/// The SHA-256 of a body, as content-based deduplication takes it (hex).
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// MD5 of message attributes as SQS computes it: per attribute, sorted by name, the length-
/// prefixed name, type and value, with a transport byte (1 = string, 2 = binary).
pub fn md5_of_attributes(attrs: &BTreeMap<String, MessageAttribute>) -> Option<String> {
    if attrs.is_empty() {
        return None;
    }
    use base64::Engine;
    let mut buf = Vec::new();
    let put = |b: &[u8], buf: &mut Vec<u8>| {
        buf.extend_from_slice(&(b.len() as u32).to_be_bytes());
        buf.extend_from_slice(b);
    };
    for (name, a) in attrs {
        put(name.as_bytes(), &mut buf);
        put(a.data_type.as_bytes(), &mut buf);
        match (&a.string_value, &a.binary_value) {
            (Some(s), _) => {
                buf.push(1);
                put(s.as_bytes(), &mut buf);
            }
            (None, Some(b)) => {
                buf.push(2);
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .unwrap_or_default();
                put(&raw, &mut buf);
            }
            (None, None) => {}
        }
    }
    Some(md5_hex(&buf))
}

/// MD5 of the message system attributes sent (`AWSTraceHeader`), same layout.
pub fn md5_of_system_attributes(trace_header: Option<&str>) -> Option<String> {
    let t = trace_header?;
    let mut attrs = BTreeMap::new();
    attrs.insert(
        "AWSTraceHeader".to_string(),
        MessageAttribute {
            data_type: "String".into(),
            string_value: Some(t.to_string()),
            binary_value: None,
        },
    );
    md5_of_attributes(&attrs)
}

/// The hex MD5 of a body's UTF-8 bytes (`MD5OfMessageBody`).
pub fn md5_of_body(body: &str) -> String {
    md5_hex(body.as_bytes())
}

/// Queue names: 1–80 of alphanumerics, `-` and `_`; a FIFO queue's name ends in `.fifo` (which
/// counts toward the 80), and only a FIFO queue's does.
fn check_name(name: &str, fifo: bool) -> QResult<()> {
    let stem = if fifo {
        name.strip_suffix(".fifo")
    } else {
        Some(name)
    };
    let ok = stem.is_some_and(|s| {
        !s.is_empty()
            && name.len() <= 80
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    match (ok, fifo) {
        (true, _) => Ok(()),
        (false, true) => Err(QueueError::InvalidParameter(
            "The name of a FIFO queue can only include alphanumeric characters, hyphens, or underscores, must end with .fifo suffix and be 1 to 80 in length.".into(),
        )),
        (false, false) => Err(QueueError::InvalidParameter(
            "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length"
                .into(),
        )),
    }
}

fn invalid_value(k: &str) -> QueueError {
    QueueError::InvalidAttribute(format!("Invalid value for the parameter {k}."))
}

fn invalid_value_because(k: &str, reason: &str) -> QueueError {
    QueueError::InvalidAttribute(format!(
        "Invalid value for the parameter {k}. Reason: {reason}"
    ))
}

/// A `Policy` attribute: a JSON policy document (an object with a `Statement`), within 20 KB.
fn check_policy(v: &str) -> QResult<()> {
    if v.is_empty() {
        // An empty policy removes it, as on SQS.
        return Ok(());
    }
    if v.len() > MAX_POLICY {
        return Err(invalid_value_because(
            "Policy",
            "Policy document is larger than 20480 bytes.",
        ));
    }
    let doc: serde_json::Value = serde_json::from_str(v)
        .map_err(|_| invalid_value_because("Policy", "Policy document is not valid JSON."))?;
    let statements_ok = match doc.get("Statement") {
        Some(serde_json::Value::Array(a)) => a.iter().all(serde_json::Value::is_object),
        Some(serde_json::Value::Object(_)) => true,
        _ => false,
    };
    if !doc.is_object() || !statements_ok {
        return Err(invalid_value_because(
            "Policy",
            "Policy document must be a JSON object with a Statement.",
        ));
    }
    Ok(())
}

/// Checks attributes for a queue of this type; `creating` allows `FifoQueue`.
fn check_attributes(attrs: &BTreeMap<String, String>, fifo: bool, creating: bool) -> QResult<()> {
    let range = |k: &str, v: &str, lo: i64, hi: i64| -> QResult<()> {
        match v.parse::<i64>() {
            Ok(n) if (lo..=hi).contains(&n) => Ok(()),
            _ => Err(invalid_value(k)),
        }
    };
    let boolean = |k: &str, v: &str| -> QResult<()> {
        if v == "true" || v == "false" {
            Ok(())
        } else {
            Err(invalid_value(k))
        }
    };
    for (k, v) in attrs {
        // No attribute SQS has takes more than a policy document (checked below).
        if k != "Policy" && v.len() > MAX_POLICY {
            return Err(invalid_value_because(
                k,
                &format!("Attribute values are at most {MAX_POLICY} bytes."),
            ));
        }
        match k.as_str() {
            "DelaySeconds" => range(k, v, 0, 900)?,
            "MaximumMessageSize" => range(k, v, 1024, 1_048_576)?,
            "MessageRetentionPeriod" => range(k, v, 60, 1_209_600)?,
            "ReceiveMessageWaitTimeSeconds" => range(k, v, 0, 20)?,
            "VisibilityTimeout" => range(k, v, 0, 43_200)?,
            "KmsDataKeyReusePeriodSeconds" => range(k, v, 60, 86_400)?,
            "SqsManagedSseEnabled" => boolean(k, v)?,
            "RedrivePolicy" => {
                if v.is_empty() {
                    continue;
                }
                let p: serde_json::Value = serde_json::from_str(v).map_err(|_| {
                    invalid_value_because(
                        "RedrivePolicy",
                        "Redrive policy is not a valid JSON map.",
                    )
                })?;
                let count = p["maxReceiveCount"]
                    .as_u64()
                    .or_else(|| p["maxReceiveCount"].as_str()?.parse::<u64>().ok());
                let ok = p["deadLetterTargetArn"].is_string() && count.is_some();
                if !ok {
                    return Err(invalid_value_because(
                        "RedrivePolicy",
                        "Redrive policy requires deadLetterTargetArn and maxReceiveCount.",
                    ));
                }
                if !count.is_some_and(|c| (1..=1000).contains(&c)) {
                    return Err(invalid_value_because(
                        "RedrivePolicy",
                        "Invalid value for maxReceiveCount: must be an integer from 1 to 1000.",
                    ));
                }
            }
            "Policy" => check_policy(v)?,
            "RedriveAllowPolicy" => {
                if !v.is_empty() && serde_json::from_str::<serde_json::Value>(v).is_err() {
                    return Err(invalid_value("RedriveAllowPolicy"));
                }
            }
            "KmsMasterKeyId" => {
                if v.len() > 2048 {
                    return Err(invalid_value(k));
                }
            }
            "FifoQueue" if creating => {
                // The caller decided the type from it; "false" on a `.fifo` name is refused by
                // the name check.
                boolean(k, v)?;
            }
            "FifoQueue" => {
                return Err(invalid_value_because(
                    "FifoQueue",
                    "Modifying queue type is not supported.",
                ));
            }
            "ContentBasedDeduplication" if fifo => boolean(k, v)?,
            "DeduplicationScope" if fifo => {
                if v != "queue" && v != "messageGroup" {
                    return Err(invalid_value(k));
                }
            }
            "FifoThroughputLimit" if fifo => {
                if v != "perQueue" && v != "perMessageGroupId" {
                    return Err(invalid_value(k));
                }
            }
            other => return Err(QueueError::InvalidAttributeName(other.to_string())),
        }
    }
    Ok(())
}

/// FIFO throughput settings that go together: `perMessageGroupId` needs `messageGroup` scope.
fn check_fifo_combination(attrs: &BTreeMap<String, String>) -> QResult<()> {
    if attrs.get("FifoThroughputLimit").map(String::as_str) == Some("perMessageGroupId")
        && attrs.get("DeduplicationScope").map(String::as_str) == Some("queue")
    {
        return Err(invalid_value_because(
            "FifoThroughputLimit",
            "The perMessageGroupId value is allowed only when the value for DeduplicationScope is messageGroup.",
        ));
    }
    Ok(())
}

/// `MessageGroupId` / `MessageDeduplicationId`: 1–128 alphanumeric or punctuation characters.
fn check_fifo_id(param: &str, v: &str) -> QResult<()> {
    let ok = !v.is_empty()
        && v.len() <= 128
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b.is_ascii_punctuation());
    if ok {
        Ok(())
    } else {
        Err(QueueError::InvalidParameter(format!(
            "Value {v} for parameter {param} is invalid. Reason: {param} can only include alphanumeric and punctuation characters. 1 to 128 in length."
        )))
    }
}

/// Message bodies and string attribute values: the characters SQS allows (XML 1.0's).
fn check_characters(s: &str) -> QResult<()> {
    let bad = s.chars().any(|c| {
        !matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
    });
    if bad {
        Err(QueueError::InvalidMessageContents(
            "Invalid characters found. Valid unicode characters are #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF".into(),
        ))
    } else {
        Ok(())
    }
}

/// Tag keys and values: SQS's lengths; `aws:` keys are reserved.
fn check_tags(tags: &BTreeMap<String, String>) -> QResult<()> {
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > MAX_TAG_KEY {
            return Err(QueueError::InvalidParameter(format!(
                "Tag key {k} is invalid. Reason: Tag keys must be between 1 and {MAX_TAG_KEY} characters in length."
            )));
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            return Err(QueueError::InvalidParameter(format!(
                "Tag key {k} is invalid. Reason: Tag keys must not start with the reserved prefix aws:."
            )));
        }
        if v.chars().count() > MAX_TAG_VALUE {
            return Err(QueueError::InvalidParameter(format!(
                "Tag value for key {k} is invalid. Reason: Tag values must be at most {MAX_TAG_VALUE} characters in length."
            )));
        }
    }
    Ok(())
}

/// The next FIFO sequence number of a queue: 20 digits, strictly increasing, and above the
/// clock (ms × 10⁷), so numbers keep increasing across restarts even when every message and
/// deduplication entry is gone.
fn next_sequence(last: u128, now: i64) -> u128 {
    let floor = (now.max(0) as u128) * 10_000_000;
    floor.max(last + 1)
}

/// The deduplication key of a message in a queue with this `DeduplicationScope`.
fn dedup_key(scope_group: bool, group: &str, id: &str) -> String {
    if scope_group {
        format!("g\u{1f}{group}\u{1f}{id}")
    } else {
        format!("q\u{1f}{id}")
    }
}

/// The FIFO hand-out rule, asked of each message in send order: a group is closed from its first
/// message that is not available (in flight, delayed, or an earlier one still being committed)
/// on, so no message is handed out while an earlier one of its group is in flight, and never
/// past one.
struct FifoGate {
    closed: HashSet<String>,
    /// The first message of each group still being committed.
    first_pending: HashMap<String, u64>,
}

impl FifoGate {
    fn new(pending: &BTreeMap<u64, String>) -> FifoGate {
        let mut first_pending = HashMap::new();
        for (seq, g) in pending {
            first_pending.entry(g.clone()).or_insert(*seq);
        }
        FifoGate {
            closed: HashSet::new(),
            first_pending,
        }
    }

    /// Whether `m` may be handed out now; if not, its group is closed for this round.
    fn admits(&mut self, m: &StoredMessage, now: i64) -> bool {
        let g = m.group.as_deref().unwrap_or("");
        if self.closed.contains(g) {
            return false;
        }
        let waiting = self.first_pending.get(g).is_some_and(|p| *p < m.seq);
        if waiting || m.visible_at_ms > now {
            self.close(g);
            return false;
        }
        true
    }

    fn close(&mut self, group: &str) {
        self.closed.insert(group.to_string());
    }
}

impl QueueService {
    /// Loads every queue, message and live deduplication entry from the store (expired entries are
    /// deleted in the background); every message is visible again at once, as in-flight state is
    /// not durable. Unreadable records are logged and skipped.
    pub fn open(store: Store, settings: Arc<Settings>) -> Result<QueueService> {
        let mut queues: BTreeMap<String, QueueState> = BTreeMap::new();
        for (k, body) in store.records(QUEUE_KIND)? {
            match serde_json::from_str::<QueueRecord>(&body) {
                Ok(q) => {
                    let name = q.name.clone();
                    queues.entry(name).or_default().record = Some(q);
                }
                Err(e) => tracing::error!(key = %k, error = %e, "unreadable queue skipped"),
            }
        }
        let mut max_seq = 0;
        for (k, body) in store.records(MESSAGE_KIND)? {
            match serde_json::from_str::<StoredMessage>(&body) {
                Ok(mut m) => {
                    max_seq = max_seq.max(m.seq);
                    m.visible_at_ms = 0;
                    if let Some(q) = queues.get_mut(&m.queue) {
                        if let Some(s) = m.sequence.as_deref().and_then(|s| s.parse::<u128>().ok())
                        {
                            q.last_sequence = q.last_sequence.max(s);
                        }
                        q.messages.insert(m.seq, m);
                    }
                }
                Err(e) => tracing::error!(key = %k, error = %e, "unreadable message skipped"),
            }
        }
        // Deduplication entries still inside their window come back; the rest are swept.
        let now = now_ms();
        let mut stale = Vec::new();
        for (k, body) in store.records(DEDUP_KIND)? {
            let parsed = serde_json::from_str::<DedupEntry>(&body).ok();
            let place = k.split_once(':');
            match (parsed, place) {
                (Some(e), Some((queue, key))) if e.expires_ms > now => {
                    if let Some(q) = queues.get_mut(queue) {
                        if let Ok(s) = e.sequence.parse::<u128>() {
                            q.last_sequence = q.last_sequence.max(s);
                        }
                        q.dedup.insert(key.to_string(), e);
                    }
                }
                _ => stale.push(WriteOp::DeleteRecord {
                    kind: DEDUP_KIND.into(),
                    key: k,
                }),
            }
        }
        if !stale.is_empty() {
            store.write_background(stale);
        }
        Ok(QueueService {
            store,
            settings,
            queues: Mutex::new(queues),
            seq: std::sync::atomic::AtomicU64::new(max_seq + 1),
            arrived: tokio::sync::Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, QueueState>> {
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The queue's URL: `{public_url}/{account_id}/{name}`.
    pub fn url(&self, name: &str) -> String {
        format!(
            "{}/{}/{}",
            self.settings.public_url.trim_end_matches('/'),
            self.settings.account_id,
            name
        )
    }

    /// The queue's ARN: `arn:aws:sqs:{region}:{account_id}:{name}`.
    pub fn arn(&self, name: &str) -> String {
        format!(
            "arn:aws:sqs:{}:{}:{}",
            self.settings.region, self.settings.account_id, name
        )
    }

    /// The account id Nimbus answers as (from the settings).
    pub fn account_id(&self) -> &str {
        &self.settings.account_id
    }

    /// The queue a URL (or bare name, or ARN) names.
    pub fn name_of(&self, url: &str) -> QResult<String> {
        let name = url
            .trim_end_matches('/')
            .rsplit(['/', ':'])
            .next()
            .unwrap_or("")
            .to_string();
        if self.lock().get(&name).is_some_and(|q| q.record.is_some()) {
            Ok(name)
        } else {
            Err(QueueError::NoQueue)
        }
    }

    /// Whether the queue is a FIFO queue.
    pub fn is_fifo(&self, name: &str) -> bool {
        self.lock()
            .get(name)
            .and_then(|q| q.record.as_ref())
            .is_some_and(QueueRecord::is_fifo)
    }

    /// A redrive policy's target must be a queue of the source's type (when it exists).
    fn check_redrive_target(&self, attrs: &BTreeMap<String, String>, fifo: bool) -> QResult<()> {
        let Some(policy) = attrs.get("RedrivePolicy").filter(|p| !p.is_empty()) else {
            return Ok(());
        };
        let arn = serde_json::from_str::<serde_json::Value>(policy)
            .ok()
            .and_then(|p| p["deadLetterTargetArn"].as_str().map(str::to_string))
            .unwrap_or_default();
        if let Ok(target) = self.name_of(&arn)
            && self.is_fifo(&target) != fifo
        {
            return Err(QueueError::InvalidParameter(format!(
                "Value {policy} for parameter RedrivePolicy is invalid. Reason: Dead-letter queue must be same type of queue as the source.."
            )));
        }
        Ok(())
    }

    /// CreateQueue: idempotent for the same attributes (tags are not compared, as on SQS).
    pub async fn create(
        &self,
        name: &str,
        attrs: BTreeMap<String, String>,
        tags: BTreeMap<String, String>,
    ) -> QResult<String> {
        let fifo = match attrs.get("FifoQueue").map(String::as_str) {
            Some("true") => true,
            Some("false") | None => false,
            Some(_) => return Err(invalid_value("FifoQueue")),
        };
        check_name(name, fifo)?;
        if fifo && name.strip_suffix(".fifo").is_none() {
            return Err(QueueError::InvalidParameter(
                "The name of a FIFO queue can only include alphanumeric characters, hyphens, or underscores, must end with .fifo suffix and be 1 to 80 in length.".into(),
            ));
        }
        check_attributes(&attrs, fifo, true)?;
        check_fifo_combination(&attrs)?;
        self.check_redrive_target(&attrs, fifo)?;
        if tags.len() > MAX_TAGS {
            return Err(QueueError::InvalidParameter(format!(
                "Too many tags added for queue {name}."
            )));
        }
        check_tags(&tags)?;
        let mut full: BTreeMap<String, String> = DEFAULTS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if fifo {
            full.extend(
                FIFO_DEFAULTS
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string())),
            );
            full.insert("FifoQueue".into(), "true".into());
        }
        full.extend(attrs.clone());
        full.retain(|k, v| !(v.is_empty() && (k == "Policy" || k == "RedrivePolicy")));
        if !fifo {
            full.remove("FifoQueue");
        }
        if let Some(existing) = self.lock().get(name).and_then(|q| q.record.clone()) {
            for (k, v) in &full {
                let defaulted = DEFAULTS.iter().chain(FIFO_DEFAULTS).any(|(d, _)| d == k);
                if defaulted && !attrs.contains_key(k) {
                    continue;
                }
                if existing.attributes.get(k) != Some(v) {
                    return Err(QueueError::NameExists(k.clone()));
                }
            }
            return Ok(self.url(name));
        }
        let now = now_ms();
        let rec = QueueRecord {
            name: name.to_string(),
            created: now / 1000,
            attributes: full,
            tags,
            modified: None,
        };
        self.put_record(&rec).await?;
        self.lock().entry(name.to_string()).or_default().record = Some(rec);
        Ok(self.url(name))
    }

    async fn put_record(&self, rec: &QueueRecord) -> QResult<()> {
        let body = serde_json::to_string(rec)
            .map_err(|e| CoreError::Internal(format!("encoding a queue: {e}")))?;
        self.store
            .write_async(vec![WriteOp::PutRecord {
                kind: QUEUE_KIND.into(),
                key: rec.name.clone(),
                body,
            }])
            .await?;
        Ok(())
    }

    /// Changes a queue's record under the lock, then commits it.
    async fn edit_record(
        &self,
        name: &str,
        edit: impl FnOnce(&mut QueueRecord) -> QResult<()>,
    ) -> QResult<QueueRecord> {
        let rec = {
            let mut st = self.lock();
            let q = st.get_mut(name).ok_or(QueueError::NoQueue)?;
            let rec = q.record.as_mut().ok_or(QueueError::NoQueue)?;
            let mut copy = rec.clone();
            edit(&mut copy)?;
            *rec = copy.clone();
            copy
        };
        self.put_record(&rec).await?;
        Ok(rec)
    }

    /// ListQueues: the URLs of the queues whose name starts with `prefix` (all without one), sorted
    /// by name.
    pub fn list(&self, prefix: Option<&str>) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|(n, q)| q.record.is_some() && prefix.is_none_or(|p| n.starts_with(p)))
            .map(|(n, _)| self.url(n))
            .collect()
    }

    /// The queues whose redrive policy names this queue as their dead-letter queue.
    pub fn dead_letter_sources(&self, name: &str) -> QResult<Vec<String>> {
        let arn = self.arn(name);
        let st = self.lock();
        if st.get(name).is_none_or(|q| q.record.is_none()) {
            return Err(QueueError::NoQueue);
        }
        Ok(st
            .iter()
            .filter(|(_, q)| {
                q.record
                    .as_ref()
                    .and_then(|r| r.attributes.get("RedrivePolicy"))
                    .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
                    .is_some_and(|p| p["deadLetterTargetArn"].as_str() == Some(arn.as_str()))
            })
            .map(|(n, _)| self.url(n))
            .collect())
    }

    /// DeleteQueue: removes the queue, its messages and its deduplication entries in one commit (at
    /// once, not after SQS's 60 seconds).
    pub async fn delete(&self, name: &str) -> QResult<()> {
        self.store
            .write_async(vec![
                WriteOp::DeleteRecord {
                    kind: QUEUE_KIND.into(),
                    key: name.to_string(),
                },
                WriteOp::DeleteRecordPrefix {
                    kind: MESSAGE_KIND.into(),
                    prefix: format!("{name}:"),
                },
                WriteOp::DeleteRecordPrefix {
                    kind: DEDUP_KIND.into(),
                    prefix: format!("{name}:"),
                },
            ])
            .await?;
        self.lock().remove(name);
        Ok(())
    }

    /// PurgeQueue: deletes every message, in flight or not (deduplication entries stay).
    pub async fn purge(&self, name: &str) -> QResult<()> {
        self.store
            .write_async(vec![WriteOp::DeleteRecordPrefix {
                kind: MESSAGE_KIND.into(),
                prefix: format!("{name}:"),
            }])
            .await?;
        if let Some(q) = self.lock().get_mut(name) {
            q.messages.clear();
            q.receipts.clear();
        }
        Ok(())
    }

    /// Messages visible now (what pollers could take).
    pub fn visible_count(&self, name: &str) -> QResult<usize> {
        let now = now_ms();
        let st = self.lock();
        let q = st.get(name).ok_or(QueueError::NoQueue)?;
        Ok(q.messages
            .values()
            .filter(|m| m.visible_at_ms <= now)
            .count())
    }

    /// Queue attributes, with the computed ones (`QueueArn`, message counts, timestamps).
    pub fn attributes(&self, name: &str) -> QResult<BTreeMap<String, String>> {
        let now = now_ms();
        let st = self.lock();
        let q = st.get(name).ok_or(QueueError::NoQueue)?;
        let rec = q.record.as_ref().ok_or(QueueError::NoQueue)?;
        let mut out = rec.attributes.clone();
        let visible = q
            .messages
            .values()
            .filter(|m| m.visible_at_ms <= now)
            .count();
        let delayed = q
            .messages
            .values()
            .filter(|m| m.visible_at_ms > now && m.receive_count == 0)
            .count();
        out.insert("QueueArn".into(), self.arn(name));
        out.insert("ApproximateNumberOfMessages".into(), visible.to_string());
        out.insert(
            "ApproximateNumberOfMessagesNotVisible".into(),
            (q.messages.len() - visible - delayed).to_string(),
        );
        out.insert(
            "ApproximateNumberOfMessagesDelayed".into(),
            delayed.to_string(),
        );
        out.insert("CreatedTimestamp".into(), rec.created.to_string());
        out.insert(
            "LastModifiedTimestamp".into(),
            rec.modified.unwrap_or(rec.created).to_string(),
        );
        Ok(out)
    }

    /// SetQueueAttributes: checks and merges `attrs` over the queue's attributes (an empty `Policy`
    /// or `RedrivePolicy` removes it) and stamps `LastModifiedTimestamp`.
    pub async fn set_attributes(&self, name: &str, attrs: BTreeMap<String, String>) -> QResult<()> {
        let fifo = self
            .lock()
            .get(name)
            .and_then(|q| q.record.as_ref().map(QueueRecord::is_fifo))
            .ok_or(QueueError::NoQueue)?;
        check_attributes(&attrs, fifo, false)?;
        self.check_redrive_target(&attrs, fifo)?;
        self.edit_record(name, |rec| {
            let mut next = rec.attributes.clone();
            next.extend(attrs);
            check_fifo_combination(&next)?;
            next.retain(|k, v| !(v.is_empty() && (k == "Policy" || k == "RedrivePolicy")));
            rec.attributes = next;
            rec.modified = Some(now_ms() / 1000);
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// TagQueue: adds or replaces tags, at most 50 in all.
    pub async fn tag(&self, name: &str, tags: BTreeMap<String, String>) -> QResult<()> {
        check_tags(&tags)?;
        self.edit_record(name, |rec| {
            let mut next = rec.tags.clone();
            next.extend(tags);
            if next.len() > MAX_TAGS {
                return Err(QueueError::InvalidParameter(format!(
                    "Too many tags added for queue {}.",
                    rec.name
                )));
            }
            rec.tags = next;
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// UntagQueue: removes the keys given (absent ones are ignored, as on SQS).
    pub async fn untag(&self, name: &str, keys: &[String]) -> QResult<()> {
        self.edit_record(name, |rec| {
            for k in keys {
                rec.tags.remove(k);
            }
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// ListQueueTags.
    pub fn tags(&self, name: &str) -> QResult<BTreeMap<String, String>> {
        let st = self.lock();
        let rec = st
            .get(name)
            .and_then(|q| q.record.as_ref())
            .ok_or(QueueError::NoQueue)?;
        Ok(rec.tags.clone())
    }

    /// AddPermission: a statement `Sid = label` allowing the accounts the actions (`SQS:<Action>`)
    /// on this queue, added to the queue's `Policy`.
    pub async fn add_permission(
        &self,
        name: &str,
        label: &str,
        accounts: &[String],
        actions: &[String],
    ) -> QResult<()> {
        const ACTIONS: &[&str] = &[
            "*",
            "SendMessage",
            "ReceiveMessage",
            "DeleteMessage",
            "ChangeMessageVisibility",
            "GetQueueAttributes",
            "GetQueueUrl",
            "ListDeadLetterSourceQueues",
            "PurgeQueue",
            "ListQueueTags",
        ];
        let label_ok = !label.is_empty()
            && label.len() <= 80
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !label_ok {
            return Err(QueueError::InvalidParameter(format!(
                "Value {label} for parameter Label is invalid. Reason: Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length."
            )));
        }
        if accounts.is_empty() {
            return Err(QueueError::MissingParameter("AWSAccountIds".into()));
        }
        if actions.is_empty() {
            return Err(QueueError::MissingParameter("Actions".into()));
        }
        if accounts.len() > 7 || actions.len() > 7 {
            return Err(QueueError::OverLimit(
                "7 actions and 7 accounts at most per permission.".into(),
            ));
        }
        if let Some(bad) = actions.iter().find(|a| !ACTIONS.contains(&a.as_str())) {
            return Err(QueueError::InvalidParameter(format!(
                "Value SQS:{bad} for parameter ActionName is invalid. Reason: Please refer to the appropriate WSDL for a list of valid actions."
            )));
        }
        let arn = self.arn(name);
        let principals: Vec<String> = accounts
            .iter()
            .map(|a| format!("arn:aws:iam::{a}:root"))
            .collect();
        // One value stands alone, several make a list, as SQS writes them.
        let one_or_list = |mut v: Vec<String>| match v.len() {
            1 => serde_json::Value::String(v.remove(0)),
            _ => serde_json::json!(v),
        };
        let statement = serde_json::json!({
            "Sid": label,
            "Effect": "Allow",
            "Principal": {"AWS": one_or_list(principals)},
            "Action": one_or_list(actions.iter().map(|a| format!("SQS:{a}")).collect()),
            "Resource": arn,
        });
        self.edit_record(name, |rec| {
            let mut doc = rec
                .attributes
                .get("Policy")
                .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
                .filter(serde_json::Value::is_object)
                .unwrap_or_else(|| {
                    serde_json::json!({"Version": "2012-10-17", "Id": format!("{arn}/SQSDefaultPolicy"), "Statement": []})
                });
            if !doc["Statement"].is_array() {
                let one = doc["Statement"].take();
                doc["Statement"] = serde_json::json!([one]);
            }
            let list = doc["Statement"].as_array_mut().ok_or_else(|| {
                QueueError::Core(CoreError::Internal("policy statements".into()))
            })?;
            if list.iter().any(|s| s["Sid"].as_str() == Some(label)) {
                return Err(QueueError::InvalidParameter(format!(
                    "Value {label} for parameter Label is invalid. Reason: Already exists."
                )));
            }
            list.push(statement);
            let text = doc.to_string();
            check_policy(&text)?;
            rec.attributes.insert("Policy".into(), text);
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// RemovePermission: drops the statement `Sid = label` (and the policy when it was the last).
    pub async fn remove_permission(&self, name: &str, label: &str) -> QResult<()> {
        self.edit_record(name, |rec| {
            let mut doc = rec
                .attributes
                .get("Policy")
                .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
                .unwrap_or(serde_json::Value::Null);
            let missing = || {
                QueueError::InvalidParameter(format!(
                    "Value {label} for parameter Label is invalid. Reason: can't find label on existing policy."
                ))
            };
            let list = doc["Statement"].as_array_mut().ok_or_else(missing)?;
            let before = list.len();
            list.retain(|s| s["Sid"].as_str() != Some(label));
            if list.len() == before {
                return Err(missing());
            }
            if list.is_empty() {
                rec.attributes.remove("Policy");
            } else {
                rec.attributes.insert("Policy".into(), doc.to_string());
            }
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// SendMessage / SendMessageBatch: every message is committed before this returns, with
    /// its deduplication entry on a FIFO queue. Validation fails the whole call (a batch sends
    /// entries one at a time, so an entry fails alone).
    pub async fn send(&self, name: &str, messages: Vec<Outgoing>) -> QResult<Vec<Sent>> {
        self.send_inner(name, messages, false).await
    }

    async fn send_inner(
        &self,
        name: &str,
        messages: Vec<Outgoing>,
        redriven: bool,
    ) -> QResult<Vec<Sent>> {
        let (max, queue_delay, fifo, content_dedup, scope_group) = {
            let st = self.lock();
            let rec = st
                .get(name)
                .and_then(|q| q.record.as_ref())
                .ok_or(QueueError::NoQueue)?;
            let a = &rec.attributes;
            let num = |k: &str, d: i64| a.get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
            (
                num("MaximumMessageSize", 262_144) as usize,
                num("DelaySeconds", 0),
                rec.is_fifo(),
                a.get("ContentBasedDeduplication")
                    .is_some_and(|v| v == "true"),
                a.get("DeduplicationScope")
                    .is_some_and(|v| v == "messageGroup"),
            )
        };
        let now = now_ms();
        // Checked first, so a refused batch changes nothing.
        for m in &messages {
            if m.body.is_empty() {
                return Err(QueueError::MissingParameter("MessageBody".into()));
            }
            let size = m.body.len()
                + m.attributes
                    .iter()
                    .map(|(k, a)| {
                        k.len()
                            + a.data_type.len()
                            + a.string_value.as_ref().map_or(0, String::len)
                            + a.binary_value.as_ref().map_or(0, |b| b.len() * 3 / 4)
                    })
                    .sum::<usize>();
            if size > max {
                return Err(QueueError::InvalidParameter(format!(
                    "One or more parameters are invalid. Reason: Message must be shorter than {max} bytes."
                )));
            }
            check_characters(&m.body)?;
            for a in m.attributes.values() {
                if let Some(s) = &a.string_value {
                    check_characters(s)?;
                }
            }
            if let Some(d) = m.delay {
                if fifo && d != 0 && !redriven {
                    return Err(QueueError::InvalidParameter(format!(
                        "Value {d} for parameter DelaySeconds is invalid. Reason: The request include parameter that is not valid for this queue type."
                    )));
                }
                if !(0..=900).contains(&d) {
                    return Err(QueueError::InvalidParameter(format!(
                        "Value {d} for parameter DelaySeconds is invalid. Reason: must be between 0 and 900, if provided."
                    )));
                }
            }
            if let Some(g) = &m.group {
                check_fifo_id("MessageGroupId", g)?;
            }
            if let Some(d) = &m.dedup_id {
                if !fifo {
                    return Err(QueueError::InvalidParameter(format!(
                        "Value {d} for parameter MessageDeduplicationId is invalid. Reason: The request include parameter that is not valid for this queue type."
                    )));
                }
                check_fifo_id("MessageDeduplicationId", d)?;
            }
            if fifo {
                if m.group.is_none() {
                    return Err(QueueError::MissingParameter("MessageGroupId".into()));
                }
                if m.dedup_id.is_none() && !content_dedup && !redriven {
                    return Err(QueueError::InvalidParameter(
                        "The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly".into(),
                    ));
                }
            }
        }
        let mut out = Vec::new();
        let mut ops = Vec::new();
        // FIFO: sequence numbers and deduplication are decided under the lock, and the entries
        // are held (as pending) until the commit, so a concurrent duplicate sees them.
        let mut pending_keys = Vec::new();
        {
            let mut st = self.lock();
            let q = st.get_mut(name).ok_or(QueueError::NoQueue)?;
            if fifo && now - q.dedup_swept_ms > 1000 {
                q.dedup_swept_ms = now;
                let gone: Vec<String> = q
                    .dedup
                    .iter()
                    .filter(|(_, e)| e.expires_ms <= now)
                    .map(|(k, _)| k.clone())
                    .collect();
                if !gone.is_empty() {
                    for k in &gone {
                        q.dedup.remove(k);
                    }
                    self.store.write_background(
                        gone.into_iter()
                            .map(|k| WriteOp::DeleteRecord {
                                kind: DEDUP_KIND.into(),
                                key: format!("{name}:{k}"),
                            })
                            .collect(),
                    );
                }
            }
            for m in messages {
                let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let dedup_id = if fifo {
                    m.dedup_id
                        .clone()
                        .or_else(|| Some(sha256_hex(m.body.as_bytes())))
                } else {
                    None
                };
                let group = m.group.clone();
                let key = dedup_id
                    .as_deref()
                    .map(|d| dedup_key(scope_group, group.as_deref().unwrap_or(""), d));
                if fifo
                    && !redriven
                    && let Some(k) = &key
                    && let Some(e) = q.dedup.get(k).filter(|e| e.expires_ms > now)
                {
                    out.push(Sent {
                        message: StoredMessage {
                            queue: name.to_string(),
                            seq: 0,
                            id: e.message_id.clone(),
                            body: m.body,
                            attributes: m.attributes,
                            sent_ms: now,
                            receive_count: 0,
                            first_receive_ms: None,
                            visible_at_ms: 0,
                            group,
                            dedup_id,
                            sequence: Some(e.sequence.clone()),
                            trace_header: m.trace_header,
                        },
                        duplicate: true,
                    });
                    continue;
                }
                let sequence = if fifo {
                    q.last_sequence = next_sequence(q.last_sequence, now);
                    Some(format!("{:020}", q.last_sequence))
                } else {
                    None
                };
                let delay = if fifo {
                    queue_delay
                } else {
                    m.delay.unwrap_or(queue_delay)
                };
                let msg = StoredMessage {
                    queue: name.to_string(),
                    seq,
                    id: uuid::Uuid::new_v4().to_string(),
                    body: m.body,
                    attributes: m.attributes,
                    sent_ms: now,
                    receive_count: 0,
                    first_receive_ms: None,
                    visible_at_ms: now + delay * 1000,
                    group,
                    dedup_id,
                    sequence: sequence.clone(),
                    trace_header: m.trace_header,
                };
                let json = serde_json::to_string(&msg)
                    .map_err(|e| CoreError::Internal(format!("encoding a message: {e}")))?;
                ops.push(WriteOp::PutRecord {
                    kind: MESSAGE_KIND.into(),
                    key: format!("{name}:{seq:020}"),
                    body: json,
                });
                if fifo
                    && !redriven
                    && let (Some(k), Some(s)) = (key, sequence)
                {
                    let entry = DedupEntry {
                        message_id: msg.id.clone(),
                        sequence: s,
                        expires_ms: now + DEDUP_WINDOW_MS,
                    };
                    let body = serde_json::to_string(&entry)
                        .map_err(|e| CoreError::Internal(format!("encoding a dedup entry: {e}")))?;
                    ops.push(WriteOp::PutRecord {
                        kind: DEDUP_KIND.into(),
                        key: format!("{name}:{k}"),
                        body,
                    });
                    q.dedup.insert(k.clone(), entry);
                    pending_keys.push(k);
                }
                if fifo {
                    q.pending.insert(seq, msg.group.clone().unwrap_or_default());
                }
                out.push(Sent {
                    message: msg,
                    duplicate: false,
                });
            }
        }
        let committed = if ops.is_empty() {
            Ok(())
        } else {
            self.store.write_async(ops).await
        };
        {
            let mut st = self.lock();
            let q = st.get_mut(name).ok_or(QueueError::NoQueue)?;
            for s in out.iter().filter(|s| !s.duplicate) {
                q.pending.remove(&s.message.seq);
            }
            if let Err(e) = committed {
                // Not committed: the deduplication entries taken for these messages go too.
                for k in &pending_keys {
                    q.dedup.remove(k);
                }
                drop(st);
                self.arrived.notify_waiters();
                return Err(e.into());
            }
            for s in out.iter().filter(|s| !s.duplicate) {
                q.messages.insert(s.message.seq, s.message.clone());
            }
        }
        self.arrived.notify_waiters();
        Ok(out)
    }

    /// ReceiveMessage: up to `max` visible messages, hidden for `visibility` seconds; waits up to
    /// `wait` for the first one. Messages received more often than the redrive policy allows
    /// move to the dead-letter queue instead.
    pub async fn receive(
        &self,
        name: &str,
        max: usize,
        visibility: Option<i64>,
        wait: Option<i64>,
    ) -> QResult<Vec<Received>> {
        self.receive_attempt(name, max, visibility, wait, None)
            .await
    }

    /// ReceiveMessage with a `ReceiveRequestAttemptId` (FIFO queues): a retry with the same id
    /// within five minutes, while none of the messages it handed out was deleted or had its
    /// visibility changed, gets the same messages and receipt handles again (their visibility
    /// timeout starts over), as SQS does. Standard queues ignore the id.
    pub async fn receive_attempt(
        &self,
        name: &str,
        max: usize,
        visibility: Option<i64>,
        wait: Option<i64>,
        attempt: Option<&str>,
    ) -> QResult<Vec<Received>> {
        if !(1..=10).contains(&max) {
            return Err(QueueError::InvalidParameter(format!(
                "Value {max} for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and 10, if provided."
            )));
        }
        let wait = wait
            .or_else(|| self.attr(name, "ReceiveMessageWaitTimeSeconds"))
            .unwrap_or(0);
        if !(0..=20).contains(&wait) {
            return Err(QueueError::InvalidParameter(format!(
                "Value {wait} for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and <= 20, if provided."
            )));
        }
        let visibility = visibility
            .or_else(|| self.attr(name, "VisibilityTimeout"))
            .unwrap_or(30);
        if !(0..=43_200).contains(&visibility) {
            return Err(QueueError::InvalidParameter(format!(
                "Value {visibility} for parameter VisibilityTimeout is invalid. Reason: Must be between 0 and 43200."
            )));
        }
        let attempt = attempt.filter(|_| self.is_fifo(name));
        if let Some(id) = attempt
            && let Some(again) = self.retry_attempt(name, id, visibility)
        {
            return Ok(again);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(wait as u64);
        loop {
            let arrived = self.arrived.notified();
            let got = self.take(name, max, visibility).await?;
            if !got.is_empty() || tokio::time::Instant::now() >= deadline {
                if let Some(id) = attempt
                    && !got.is_empty()
                {
                    self.remember_attempt(name, id, &got);
                }
                return Ok(got);
            }
            tokio::select! {
                _ = arrived => {}
                _ = tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + Duration::from_millis(200))) => {}
            }
        }
    }

    /// The messages of an earlier receive with this attempt id, if it can be retried.
    fn retry_attempt(&self, name: &str, id: &str, visibility: i64) -> Option<Vec<Received>> {
        let now = now_ms();
        let mut st = self.lock();
        let q = st.get_mut(name)?;
        let a = q.attempts.get(id)?.clone();
        let unchanged = a.expires_ms > now
            && a.handed.iter().all(|(seq, handle, visible_at)| {
                q.receipts.get(handle) == Some(seq)
                    && q.messages
                        .get(seq)
                        .is_some_and(|m| m.visible_at_ms == *visible_at)
            });
        if !unchanged {
            q.attempts.remove(id);
            return None;
        }
        let mut out = Vec::new();
        let mut handed = Vec::new();
        for (seq, handle, _) in &a.handed {
            let m = q.messages.get_mut(seq)?;
            m.visible_at_ms = now + visibility * 1000;
            handed.push((*seq, handle.clone(), m.visible_at_ms));
            out.push(Received {
                message: m.clone(),
                receipt_handle: handle.clone(),
            });
        }
        if let Some(entry) = q.attempts.get_mut(id) {
            entry.handed = handed;
        }
        Some(out)
    }

    fn remember_attempt(&self, name: &str, id: &str, got: &[Received]) {
        let now = now_ms();
        let mut st = self.lock();
        let Some(q) = st.get_mut(name) else { return };
        q.attempts.retain(|_, a| a.expires_ms > now);
        if q.attempts.len() >= MAX_ATTEMPTS
            && let Some(oldest) = q
                .attempts
                .iter()
                .min_by_key(|(_, a)| a.expires_ms)
                .map(|(k, _)| k.clone())
        {
            q.attempts.remove(&oldest);
        }
        q.attempts.insert(
            id.to_string(),
            Attempt {
                handed: got
                    .iter()
                    .map(|r| {
                        (
                            r.message.seq,
                            r.receipt_handle.clone(),
                            r.message.visible_at_ms,
                        )
                    })
                    .collect(),
                expires_ms: now + ATTEMPT_WINDOW_MS,
            },
        );
    }

    fn attr(&self, name: &str, key: &str) -> Option<i64> {
        self.lock()
            .get(name)?
            .record
            .as_ref()?
            .attributes
            .get(key)?
            .parse()
            .ok()
    }

    async fn take(&self, name: &str, max: usize, visibility: i64) -> QResult<Vec<Received>> {
        let now = now_ms();
        let redrive = self
            .lock()
            .get(name)
            .and_then(|q| q.record.as_ref())
            .and_then(|r| r.attributes.get("RedrivePolicy").cloned())
            .and_then(|p| serde_json::from_str::<serde_json::Value>(&p).ok())
            .and_then(|p| {
                let arn = p["deadLetterTargetArn"].as_str()?.to_string();
                let max = p["maxReceiveCount"]
                    .as_u64()
                    .or_else(|| p["maxReceiveCount"].as_str()?.parse().ok())?;
                Some((arn, max as u32))
            });
        let retention_ms = self
            .attr(name, "MessageRetentionPeriod")
            .unwrap_or(345_600)
            .saturating_mul(1000);
        let mut moved = Vec::new();
        let mut expired = Vec::new();
        let mut out = Vec::new();
        {
            let mut st = self.lock();
            let q = st.get_mut(name).ok_or(QueueError::NoQueue)?;
            let fifo = q.record.as_ref().is_some_and(QueueRecord::is_fifo);
            let mut gate = FifoGate::new(&q.pending);
            // In send order, stopping once `max` are taken (a long backlog is not walked).
            for m in q.messages.values_mut() {
                if out.len() >= max {
                    break;
                }
                // Past the queue's retention period a message is deleted, never delivered.
                if now.saturating_sub(m.sent_ms) > retention_ms {
                    expired.push(m.seq);
                    continue;
                }
                let available = if fifo {
                    gate.admits(m, now)
                } else {
                    m.visible_at_ms <= now
                };
                if !available {
                    continue;
                }
                if let Some((_, limit)) = &redrive
                    && m.receive_count >= *limit
                {
                    moved.push(m.seq);
                    // A group whose head goes to the dead-letter queue is not served past it
                    // in this round, so its order holds.
                    gate.close(m.group.as_deref().unwrap_or(""));
                    continue;
                }
                m.receive_count += 1;
                m.first_receive_ms.get_or_insert(now);
                m.visible_at_ms = now + visibility * 1000;
                let handle = format!("{}#{}", m.seq, uuid::Uuid::new_v4().simple());
                out.push(Received {
                    message: m.clone(),
                    receipt_handle: handle,
                });
            }
            for seq in &expired {
                q.messages.remove(seq);
            }
            q.receipts
                .retain(|_, seq| !moved.contains(seq) && !expired.contains(seq));
            for r in &out {
                q.receipts.insert(r.receipt_handle.clone(), r.message.seq);
            }
        }
        if !expired.is_empty() {
            self.store.write_background(
                expired
                    .iter()
                    .map(|seq| WriteOp::DeleteRecord {
                        kind: MESSAGE_KIND.into(),
                        key: format!("{name}:{seq:020}"),
                    })
                    .collect(),
            );
        }
        if let Some((arn, _)) = redrive
            && !moved.is_empty()
        {
            self.redrive(name, &arn, &moved).await;
        }
        Ok(out)
    }

    /// Moves messages to the dead-letter queue named by `arn` (a FIFO message keeps its group
    /// and deduplication id).
    async fn redrive(&self, from: &str, arn: &str, seqs: &[u64]) {
        let Ok(target) = self.name_of(arn) else {
            tracing::warn!(queue = from, dlq = arn, "the redrive target does not exist");
            return;
        };
        let msgs: Vec<StoredMessage> = {
            let mut st = self.lock();
            let Some(q) = st.get_mut(from) else { return };
            seqs.iter().filter_map(|s| q.messages.remove(s)).collect()
        };
        let target_fifo = self.is_fifo(&target);
        let batch = msgs
            .iter()
            .map(|m| Outgoing {
                body: m.body.clone(),
                attributes: m.attributes.clone(),
                delay: Some(0),
                group: m.group.clone().or_else(|| target_fifo.then(String::new)),
                dedup_id: m.dedup_id.clone().filter(|_| target_fifo),
                trace_header: m.trace_header.clone(),
            })
            .collect();
        if self.send_inner(&target, batch, true).await.is_err() {
            // The move failed: the messages stay where they were, to be tried again.
            tracing::warn!(
                queue = from,
                dlq = arn,
                "moving messages to the dead-letter queue failed; they stay in the source queue"
            );
            let mut st = self.lock();
            if let Some(q) = st.get_mut(from) {
                for m in msgs {
                    q.messages.insert(m.seq, m);
                }
            }
        } else {
            self.store.write_background(
                msgs.iter()
                    .map(|m| WriteOp::DeleteRecord {
                        kind: MESSAGE_KIND.into(),
                        key: format!("{from}:{:020}", m.seq),
                    })
                    .collect(),
            );
        }
    }

    fn seq_of(&self, name: &str, handle: &str) -> QResult<u64> {
        let st = self.lock();
        let q = st.get(name).ok_or(QueueError::NoQueue)?;
        q.receipts
            .get(handle)
            .copied()
            .filter(|s| q.messages.contains_key(s))
            .ok_or_else(|| QueueError::ReceiptHandleInvalid(handle.to_string()))
    }

    /// DeleteMessage (and each entry of DeleteMessageBatch).
    pub async fn delete_message(&self, name: &str, handle: &str) -> QResult<()> {
        let seq = self.seq_of(name, handle)?;
        self.store
            .write_async(vec![WriteOp::DeleteRecord {
                kind: MESSAGE_KIND.into(),
                key: format!("{name}:{seq:020}"),
            }])
            .await?;
        let mut st = self.lock();
        if let Some(q) = st.get_mut(name) {
            q.messages.remove(&seq);
            q.receipts.retain(|_, s| *s != seq);
        }
        drop(st);
        // A FIFO group may be free now.
        self.arrived.notify_waiters();
        Ok(())
    }

    /// DeleteMessageBatch: every valid handle's message deleted in one commit; each entry's own
    /// outcome (a stale handle fails alone).
    pub async fn delete_messages(&self, name: &str, handles: &[&str]) -> QResult<Vec<QResult<()>>> {
        let seqs: Vec<QResult<u64>> = handles.iter().map(|h| self.seq_of(name, h)).collect();
        if let Some(Err(QueueError::NoQueue)) =
            seqs.iter().find(|s| matches!(s, Err(QueueError::NoQueue)))
        {
            return Err(QueueError::NoQueue);
        }
        let ops: Vec<WriteOp> = seqs
            .iter()
            .filter_map(|s| s.as_ref().ok())
            .map(|seq| WriteOp::DeleteRecord {
                kind: MESSAGE_KIND.into(),
                key: format!("{name}:{seq:020}"),
            })
            .collect();
        if !ops.is_empty() {
            self.store.write_async(ops).await?;
        }
        let mut st = self.lock();
        if let Some(q) = st.get_mut(name) {
            for seq in seqs.iter().filter_map(|s| s.as_ref().ok()) {
                q.messages.remove(seq);
            }
            let gone: HashSet<u64> = seqs
                .iter()
                .filter_map(|s| s.as_ref().ok().copied())
                .collect();
            q.receipts.retain(|_, s| !gone.contains(s));
        }
        drop(st);
        self.arrived.notify_waiters();
        Ok(seqs.into_iter().map(|s| s.map(drop)).collect())
    }

    /// ChangeMessageVisibility (and each entry of ChangeMessageVisibilityBatch).
    pub fn change_visibility(&self, name: &str, handle: &str, seconds: i64) -> QResult<()> {
        if !(0..=43_200).contains(&seconds) {
            return Err(QueueError::InvalidParameter(format!(
                "Value {seconds} for parameter VisibilityTimeout is invalid. Reason: Must be between 0 and 43200."
            )));
        }
        let seq = self.seq_of(name, handle)?;
        let mut st = self.lock();
        if let Some(m) = st.get_mut(name).and_then(|q| q.messages.get_mut(&seq)) {
            m.visible_at_ms = now_ms() + seconds * 1000;
        }
        drop(st);
        if seconds == 0 {
            self.arrived.notify_waiters();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(dir: &std::path::Path) -> QueueService {
        let store = Store::open(dir).expect("store");
        QueueService::open(store, Arc::new(Settings::new(dir.to_path_buf()))).expect("open")
    }

    fn fifo_attrs(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut a: BTreeMap<String, String> = [("FifoQueue", "true")]
            .iter()
            .chain(extra)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        a.retain(|_, v| !v.is_empty());
        a
    }

    fn grouped(body: &str, group: &str, dedup: Option<&str>) -> Outgoing {
        Outgoing {
            group: Some(group.into()),
            dedup_id: dedup.map(str::to_string),
            ..Outgoing::body(body)
        }
    }

    #[test]
    fn body_and_attribute_digests_match_sqs() {
        // The MD5 of "hello" and SQS's documented attribute-digest layout.
        assert_eq!(md5_of_body("hello"), "5d41402abc4b2a76b9719d911017c592");
        let mut attrs = BTreeMap::new();
        attrs.insert(
            "a".to_string(),
            MessageAttribute {
                data_type: "String".into(),
                string_value: Some("b".into()),
                binary_value: None,
            },
        );
        let mut expect = Vec::new();
        for part in [&b"a"[..], &b"String"[..]] {
            expect.extend_from_slice(&(part.len() as u32).to_be_bytes());
            expect.extend_from_slice(part);
        }
        expect.push(1);
        expect.extend_from_slice(&1u32.to_be_bytes());
        expect.push(b'b');
        assert_eq!(md5_of_attributes(&attrs), Some(md5_hex(&expect)));
        assert_eq!(md5_of_attributes(&BTreeMap::new()), None);
        // Content-based deduplication: SHA-256 of the body.
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn names_and_attributes_are_checked() {
        assert!(check_name("orders-dlq_1", false).is_ok());
        assert!(check_name("bad name", false).is_err());
        // `.fifo` only on FIFO queues, and always on them.
        assert!(check_name("q.fifo", false).is_err());
        assert!(check_name("q.fifo", true).is_ok());
        assert!(check_name("q", true).is_err());
        assert!(check_name(".fifo", true).is_err());
        assert!(check_name(&format!("{}.fifo", "a".repeat(75)), true).is_ok());
        assert!(check_name(&format!("{}.fifo", "a".repeat(76)), true).is_err());
        let mut a = BTreeMap::new();
        a.insert("VisibilityTimeout".to_string(), "50000".to_string());
        assert!(check_attributes(&a, false, true).is_err());
        a.insert("VisibilityTimeout".to_string(), "5".to_string());
        assert!(check_attributes(&a, false, true).is_ok());
        a.insert("Bogus".to_string(), "1".to_string());
        assert!(matches!(
            check_attributes(&a, false, true),
            Err(QueueError::InvalidAttributeName(_))
        ));
        // FIFO-only attributes are unknown on standard queues; values are checked.
        let one = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        assert!(check_attributes(&one("ContentBasedDeduplication", "true"), false, true).is_err());
        assert!(check_attributes(&one("ContentBasedDeduplication", "true"), true, true).is_ok());
        assert!(check_attributes(&one("DeduplicationScope", "group"), true, true).is_err());
        assert!(
            check_attributes(&one("FifoThroughputLimit", "perMessageGroupId"), true, true).is_ok()
        );
        assert!(check_attributes(&one("FifoQueue", "true"), true, false).is_err());
        assert!(
            check_fifo_combination(&fifo_attrs(&[
                ("FifoThroughputLimit", "perMessageGroupId"),
                ("DeduplicationScope", "queue")
            ]))
            .is_err()
        );
        assert!(check_attributes(&one("Policy", "{\"Statement\": []}"), false, true).is_ok());
        assert!(check_attributes(&one("Policy", "not json"), false, true).is_err());
        assert!(check_attributes(&one("Policy", "[1]"), false, true).is_err());
        let big = format!(
            "{{\"Statement\": [], \"pad\": \"{}\"}}",
            "x".repeat(MAX_POLICY)
        );
        assert!(check_attributes(&one("Policy", &big), false, true).is_err());
        assert!(
            check_attributes(
                &one("KmsMasterKeyId", &"k".repeat(MAX_POLICY + 1)),
                false,
                true
            )
            .is_err()
        );
    }

    #[test]
    fn sequence_numbers_have_20_digits_and_increase() {
        let now = 1_765_000_000_000;
        let a = next_sequence(0, now);
        let b = next_sequence(a, now);
        let c = next_sequence(b, now - 10_000); // a clock step back
        assert_eq!(format!("{a:020}").len(), 20);
        assert!(a < b && b < c);
        assert_eq!(
            format!("{:020}", next_sequence(0, 1)),
            "00000000000010000000"
        );
    }

    /// What the gate admits of `messages`, in order.
    fn fifo_available<'a>(
        messages: impl Iterator<Item = &'a StoredMessage>,
        pending: &BTreeMap<u64, String>,
        now: i64,
    ) -> Vec<u64> {
        let mut gate = FifoGate::new(pending);
        messages
            .filter(|m| gate.admits(m, now))
            .map(|m| m.seq)
            .collect()
    }

    #[test]
    fn fifo_groups_are_handed_out_in_order_and_locked_while_in_flight() {
        let msg = |seq: u64, g: &str, visible_at: i64, received: u32| StoredMessage {
            queue: "q.fifo".into(),
            seq,
            id: seq.to_string(),
            body: String::new(),
            attributes: BTreeMap::new(),
            sent_ms: 0,
            receive_count: received,
            first_receive_ms: None,
            visible_at_ms: visible_at,
            group: Some(g.into()),
            dedup_id: None,
            sequence: None,
            trace_header: None,
        };
        let now = 100;
        let ms = [
            msg(1, "a", 200, 1), // in flight: a is locked
            msg(2, "a", 0, 0),
            msg(3, "b", 0, 0),
            msg(4, "b", 0, 0),
            msg(5, "c", 150, 0), // delayed: c waits behind it
            msg(6, "c", 0, 0),
        ];
        let none = BTreeMap::new();
        assert_eq!(fifo_available(ms.iter(), &none, now), vec![3, 4]);
        // Visibility expired: a is served again from its head.
        assert_eq!(
            fifo_available(ms.iter(), &none, 300),
            vec![1, 2, 3, 4, 5, 6]
        );
        // An earlier message of b still being committed holds b's later ones back.
        let pending = BTreeMap::from([(2, "b".to_string())]);
        assert_eq!(fifo_available(ms.iter(), &pending, 300), vec![1, 2, 5, 6]);
    }

    #[tokio::test]
    async fn fifo_send_receive_dedup_and_group_lock() {
        let dir = tempfile::tempdir().expect("tmp");
        let svc = service(dir.path());
        svc.create("jobs.fifo", fifo_attrs(&[]), BTreeMap::new())
            .await
            .expect("create");
        // MessageGroupId is required; a dedup id or content-based deduplication too.
        assert!(matches!(
            svc.send("jobs.fifo", vec![Outgoing::body("x")]).await,
            Err(QueueError::MissingParameter(p)) if p == "MessageGroupId"
        ));
        assert!(matches!(
            svc.send("jobs.fifo", vec![grouped("x", "g", None)]).await,
            Err(QueueError::InvalidParameter(_))
        ));
        let delayed = Outgoing {
            delay: Some(5),
            ..grouped("x", "g", Some("d"))
        };
        assert!(svc.send("jobs.fifo", vec![delayed]).await.is_err());

        let first = svc
            .send("jobs.fifo", vec![grouped("a1", "a", Some("1"))])
            .await
            .expect("send");
        let again = svc
            .send("jobs.fifo", vec![grouped("a1-again", "a", Some("1"))])
            .await
            .expect("duplicate");
        assert!(again[0].duplicate);
        assert_eq!(again[0].message.id, first[0].message.id);
        assert_eq!(again[0].message.sequence, first[0].message.sequence);
        let mut seqs = vec![first[0].message.sequence.clone()];
        for (b, g, d) in [("a2", "a", "2"), ("b1", "b", "3"), ("a3", "a", "4")] {
            let s = svc
                .send("jobs.fifo", vec![grouped(b, g, Some(d))])
                .await
                .expect("send");
            seqs.push(s[0].message.sequence.clone());
        }
        let mut sorted = seqs.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, seqs, "sequence numbers strictly increase");

        // One message at a time: a1, then b1 (a is locked while a1 is in flight).
        let got = svc
            .receive("jobs.fifo", 1, Some(30), Some(0))
            .await
            .expect("r");
        assert_eq!(got[0].message.body, "a1");
        let got2 = svc
            .receive("jobs.fifo", 10, Some(30), Some(0))
            .await
            .expect("r");
        let bodies: Vec<&str> = got2.iter().map(|r| r.message.body.as_str()).collect();
        assert_eq!(bodies, vec!["b1"]);
        assert!(
            svc.receive("jobs.fifo", 10, Some(30), Some(0))
                .await
                .expect("r")
                .is_empty()
        );
        svc.delete_message("jobs.fifo", &got[0].receipt_handle)
            .await
            .expect("delete");
        let rest = svc
            .receive("jobs.fifo", 10, Some(30), Some(0))
            .await
            .expect("r");
        let bodies: Vec<&str> = rest.iter().map(|r| r.message.body.as_str()).collect();
        assert_eq!(bodies, vec!["a2", "a3"], "group a in send order");
        // Visibility back to 0 releases a's head again, in order.
        for r in &rest {
            svc.change_visibility("jobs.fifo", &r.receipt_handle, 0)
                .expect("visibility");
        }
        let again = svc
            .receive("jobs.fifo", 1, Some(30), Some(0))
            .await
            .expect("r");
        assert_eq!(again[0].message.body, "a2");
    }

    #[tokio::test]
    async fn the_dedup_window_and_sequence_survive_a_restart() {
        let dir = tempfile::tempdir().expect("tmp");
        let (id, seq) = {
            let svc = service(dir.path());
            svc.create(
                "d.fifo",
                fifo_attrs(&[("ContentBasedDeduplication", "true")]),
                BTreeMap::new(),
            )
            .await
            .expect("create");
            let s = svc
                .send("d.fifo", vec![grouped("same body", "g", None)])
                .await
                .expect("send");
            let got = svc.receive("d.fifo", 1, None, Some(0)).await.expect("r");
            svc.delete_message("d.fifo", &got[0].receipt_handle)
                .await
                .expect("delete");
            svc.store.flush().expect("flush");
            (s[0].message.id.clone(), s[0].message.sequence.clone())
        };
        let svc = service(dir.path());
        // Content-based: the same body inside the window is the same message, even consumed.
        let dup = svc
            .send("d.fifo", vec![grouped("same body", "g", None)])
            .await
            .expect("send");
        assert!(dup[0].duplicate);
        assert_eq!(dup[0].message.id, id);
        assert!(
            svc.receive("d.fifo", 10, None, Some(0))
                .await
                .expect("r")
                .is_empty()
        );
        let other = svc
            .send("d.fifo", vec![grouped("other body", "g", None)])
            .await
            .expect("send");
        assert!(!other[0].duplicate);
        assert!(other[0].message.sequence > seq);
    }

    #[tokio::test]
    async fn a_receive_attempt_id_returns_the_same_messages_until_they_change() {
        let dir = tempfile::tempdir().expect("tmp");
        let svc = service(dir.path());
        svc.create("r.fifo", fifo_attrs(&[]), BTreeMap::new())
            .await
            .expect("create");
        for (b, d) in [("one", "1"), ("two", "2")] {
            svc.send("r.fifo", vec![grouped(b, "g", Some(d))])
                .await
                .expect("send");
        }
        let first = svc
            .receive_attempt("r.fifo", 1, Some(30), Some(0), Some("try-1"))
            .await
            .expect("receive");
        let retry = svc
            .receive_attempt("r.fifo", 1, Some(30), Some(0), Some("try-1"))
            .await
            .expect("retry");
        assert_eq!(first.len(), 1);
        assert_eq!(
            (&retry[0].message.body, &retry[0].receipt_handle),
            (&first[0].message.body, &first[0].receipt_handle)
        );
        // Once the message changed, the id no longer brings it back.
        svc.change_visibility("r.fifo", &first[0].receipt_handle, 0)
            .expect("visibility");
        let fresh = svc
            .receive_attempt("r.fifo", 1, Some(30), Some(0), Some("try-1"))
            .await
            .expect("fresh");
        assert_eq!(fresh[0].message.body, "one");
        assert_ne!(fresh[0].receipt_handle, first[0].receipt_handle);
    }

    #[tokio::test]
    async fn deduplication_scope_message_group_keys_by_group() {
        let dir = tempfile::tempdir().expect("tmp");
        let svc = service(dir.path());
        svc.create(
            "s.fifo",
            fifo_attrs(&[
                ("DeduplicationScope", "messageGroup"),
                ("FifoThroughputLimit", "perMessageGroupId"),
            ]),
            BTreeMap::new(),
        )
        .await
        .expect("create");
        let a = svc
            .send("s.fifo", vec![grouped("x", "a", Some("d"))])
            .await
            .expect("a");
        let b = svc
            .send("s.fifo", vec![grouped("x", "b", Some("d"))])
            .await
            .expect("b");
        let a2 = svc
            .send("s.fifo", vec![grouped("x", "a", Some("d"))])
            .await
            .expect("a2");
        assert!(!a[0].duplicate && !b[0].duplicate && a2[0].duplicate);
    }

    #[tokio::test]
    async fn standard_queues_refuse_fifo_members_and_fifo_dlqs_must_be_fifo() {
        let dir = tempfile::tempdir().expect("tmp");
        let svc = service(dir.path());
        svc.create("std", BTreeMap::new(), BTreeMap::new())
            .await
            .expect("std");
        svc.create("f.fifo", fifo_attrs(&[]), BTreeMap::new())
            .await
            .expect("fifo");
        // Fair queues: a group id is fine on a standard queue; a dedup id is not.
        assert!(svc.send("std", vec![grouped("x", "t", None)]).await.is_ok());
        assert!(
            svc.send("std", vec![grouped("x", "t", Some("d"))])
                .await
                .is_err()
        );
        let policy = BTreeMap::from([(
            "RedrivePolicy".to_string(),
            format!(
                "{{\"deadLetterTargetArn\":\"{}\",\"maxReceiveCount\":1}}",
                svc.arn("std")
            ),
        )]);
        assert!(matches!(
            svc.set_attributes("f.fifo", policy).await,
            Err(QueueError::InvalidParameter(_))
        ));
        // Names and the FifoQueue attribute must agree.
        assert!(
            svc.create("x.fifo", BTreeMap::new(), BTreeMap::new())
                .await
                .is_err()
        );
        assert!(
            svc.create("x", fifo_attrs(&[]), BTreeMap::new())
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn tags_and_permissions() {
        let dir = tempfile::tempdir().expect("tmp");
        let svc = service(dir.path());
        let tags = BTreeMap::from([("team".to_string(), "a".to_string())]);
        svc.create("t", BTreeMap::new(), tags)
            .await
            .expect("create");
        svc.tag(
            "t",
            BTreeMap::from([("env".to_string(), "dev".to_string())]),
        )
        .await
        .expect("tag");
        svc.untag("t", &["team".to_string()]).await.expect("untag");
        assert_eq!(
            svc.tags("t").expect("tags"),
            BTreeMap::from([("env".to_string(), "dev".to_string())])
        );
        let many: BTreeMap<String, String> =
            (0..50).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(svc.tag("t", many).await.is_err(), "51 tags");
        assert!(
            svc.tag("t", BTreeMap::from([("aws:x".to_string(), String::new())]))
                .await
                .is_err()
        );
        svc.add_permission("t", "l1", &["111122223333".into()], &["SendMessage".into()])
            .await
            .expect("add");
        assert!(
            svc.add_permission("t", "l1", &["111122223333".into()], &["SendMessage".into()])
                .await
                .is_err()
        );
        let policy = svc.attributes("t").expect("attrs")["Policy"].clone();
        assert!(policy.contains("\"SQS:SendMessage\"") && policy.contains("\"Sid\":\"l1\""));
        svc.remove_permission("t", "l1").await.expect("remove");
        assert!(!svc.attributes("t").expect("attrs").contains_key("Policy"));
        assert!(svc.remove_permission("t", "l1").await.is_err());
    }
}
