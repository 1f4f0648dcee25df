//! The built-in queue service (SQS semantics, standard queues): queues and their messages are
//! records (kinds `sqs-queue` and `sqs-message`), so a message is durable once `SendMessage`
//! answers. Visibility, receive counts and redrive to a dead-letter queue are kept in memory; after
//! a restart every unfinished message is visible again (at-least-once, as SQS).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use md5::{Digest, Md5};
use nimbus_store::{Store, WriteOp};
use serde::{Deserialize, Serialize};

use nimbus_core::error::{CoreError, Result};
use nimbus_core::settings::Settings;

const QUEUE_KIND: &str = "sqs-queue";
const MESSAGE_KIND: &str = "sqs-message";

/// Errors in SQS's own vocabulary (the edge renders them).
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("The specified queue does not exist.")]
    NoQueue,
    #[error("A queue already exists with the same name and a different value for attribute {0}")]
    NameExists(String),
    #[error("{0}")]
    InvalidParameter(String),
    #[error("{0}")]
    InvalidAttribute(String),
    #[error("The input receipt handle \"{0}\" is not a valid receipt handle.")]
    ReceiptHandleInvalid(String),
    #[error("{0}")]
    EmptyBatch(String),
    #[error("{0}")]
    TooManyEntries(String),
    #[error("{0}")]
    DistinctIds(String),
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl From<nimbus_store::StoreError> for QueueError {
    fn from(e: nimbus_store::StoreError) -> Self {
        QueueError::Core(CoreError::from(e))
    }
}

pub type QResult<T> = std::result::Result<T, QueueError>;

/// A message attribute (`StringValue` or `BinaryValue`, with its `DataType`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageAttribute {
    pub data_type: String,
    pub string_value: Option<String>,
    /// base64 as on the wire.
    pub binary_value: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueRecord {
    pub name: String,
    pub created: i64,
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredMessage {
    pub queue: String,
    pub seq: u64,
    pub id: String,
    pub body: String,
    pub attributes: BTreeMap<String, MessageAttribute>,
    pub sent_ms: i64,
    #[serde(default)]
    pub receive_count: u32,
    #[serde(default)]
    pub first_receive_ms: Option<i64>,
    #[serde(default)]
    pub visible_at_ms: i64,
}

/// A received message, as ReceiveMessage returns it.
#[derive(Debug, Clone)]
pub struct Received {
    pub message: StoredMessage,
    pub receipt_handle: String,
}

#[derive(Default)]
struct QueueState {
    record: Option<QueueRecord>,
    messages: BTreeMap<u64, StoredMessage>,
    /// Receipt handle → message seq, for messages in flight.
    receipts: HashMap<String, u64>,
}

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
];

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
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

pub fn md5_of_body(body: &str) -> String {
    md5_hex(body.as_bytes())
}

fn check_name(name: &str) -> QResult<()> {
    if name.ends_with(".fifo") {
        return Err(QueueError::InvalidParameter(
            "FIFO queues are not supported by Nimbus yet; create a standard queue.".into(),
        ));
    }
    let ok = !name.is_empty()
        && name.len() <= 80
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(QueueError::InvalidParameter(
            "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length"
                .into(),
        ))
    }
}

fn check_attributes(attrs: &BTreeMap<String, String>) -> QResult<()> {
    let range = |k: &str, v: &str, lo: i64, hi: i64| -> QResult<()> {
        match v.parse::<i64>() {
            Ok(n) if (lo..=hi).contains(&n) => Ok(()),
            _ => Err(QueueError::InvalidAttribute(format!(
                "Invalid value for the parameter {k}."
            ))),
        }
    };
    for (k, v) in attrs {
        match k.as_str() {
            "DelaySeconds" => range(k, v, 0, 900)?,
            "MaximumMessageSize" => range(k, v, 1024, 1_048_576)?,
            "MessageRetentionPeriod" => range(k, v, 60, 1_209_600)?,
            "ReceiveMessageWaitTimeSeconds" => range(k, v, 0, 20)?,
            "VisibilityTimeout" => range(k, v, 0, 43_200)?,
            "RedrivePolicy" => {
                let p: serde_json::Value = serde_json::from_str(v).map_err(|_| {
                    QueueError::InvalidAttribute(
                        "Invalid value for the parameter RedrivePolicy. Reason: Redrive policy is not a valid JSON map.".into(),
                    )
                })?;
                let ok = p["deadLetterTargetArn"].is_string()
                    && (p["maxReceiveCount"].is_u64()
                        || p["maxReceiveCount"]
                            .as_str()
                            .is_some_and(|s| s.parse::<u64>().is_ok()));
                if !ok {
                    return Err(QueueError::InvalidAttribute(
                        "Invalid value for the parameter RedrivePolicy. Reason: Redrive policy requires deadLetterTargetArn and maxReceiveCount.".into(),
                    ));
                }
            }
            "Policy"
            | "KmsMasterKeyId"
            | "KmsDataKeyReusePeriodSeconds"
            | "SqsManagedSseEnabled"
            | "RedriveAllowPolicy" => {}
            other => {
                return Err(QueueError::InvalidAttribute(format!(
                    "Unknown Attribute {other}."
                )));
            }
        }
    }
    Ok(())
}

impl QueueService {
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
                        q.messages.insert(m.seq, m);
                    }
                }
                Err(e) => tracing::error!(key = %k, error = %e, "unreadable message skipped"),
            }
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

    pub fn url(&self, name: &str) -> String {
        format!(
            "{}/{}/{}",
            self.settings.public_url.trim_end_matches('/'),
            self.settings.account_id,
            name
        )
    }

    pub fn arn(&self, name: &str) -> String {
        format!(
            "arn:aws:sqs:{}:{}:{}",
            self.settings.region, self.settings.account_id, name
        )
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

    /// CreateQueue: idempotent for the same attributes.
    pub async fn create(&self, name: &str, attrs: BTreeMap<String, String>) -> QResult<String> {
        check_name(name)?;
        check_attributes(&attrs)?;
        let mut full: BTreeMap<String, String> = DEFAULTS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        full.extend(attrs.clone());
        if let Some(existing) = self.lock().get(name).and_then(|q| q.record.clone()) {
            for (k, v) in &attrs {
                if existing.attributes.get(k) != Some(v) {
                    return Err(QueueError::NameExists(k.clone()));
                }
            }
            return Ok(self.url(name));
        }
        let rec = QueueRecord {
            name: name.to_string(),
            created: now_ms() / 1000,
            attributes: full,
        };
        let body = serde_json::to_string(&rec)
            .map_err(|e| CoreError::Internal(format!("encoding a queue: {e}")))?;
        self.store
            .write_async(vec![WriteOp::PutRecord {
                kind: QUEUE_KIND.into(),
                key: name.to_string(),
                body,
            }])
            .await?;
        self.lock().entry(name.to_string()).or_default().record = Some(rec);
        Ok(self.url(name))
    }

    pub fn list(&self, prefix: Option<&str>) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|(n, q)| q.record.is_some() && prefix.is_none_or(|p| n.starts_with(p)))
            .map(|(n, _)| self.url(n))
            .collect()
    }

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
            ])
            .await?;
        self.lock().remove(name);
        Ok(())
    }

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

    /// Queue attributes, with the computed ones (`QueueArn`, message counts, timestamps).
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
        out.insert("QueueArn".into(), self.arn(name));
        out.insert("ApproximateNumberOfMessages".into(), visible.to_string());
        out.insert(
            "ApproximateNumberOfMessagesNotVisible".into(),
            (q.messages.len() - visible).to_string(),
        );
        out.insert("ApproximateNumberOfMessagesDelayed".into(), "0".into());
        out.insert("CreatedTimestamp".into(), rec.created.to_string());
        out.insert("LastModifiedTimestamp".into(), rec.created.to_string());
        Ok(out)
    }

    pub async fn set_attributes(&self, name: &str, attrs: BTreeMap<String, String>) -> QResult<()> {
        check_attributes(&attrs)?;
        let rec = {
            let mut st = self.lock();
            let q = st.get_mut(name).ok_or(QueueError::NoQueue)?;
            let rec = q.record.as_mut().ok_or(QueueError::NoQueue)?;
            rec.attributes.extend(attrs);
            rec.clone()
        };
        let body = serde_json::to_string(&rec)
            .map_err(|e| CoreError::Internal(format!("encoding a queue: {e}")))?;
        self.store
            .write_async(vec![WriteOp::PutRecord {
                kind: QUEUE_KIND.into(),
                key: name.to_string(),
                body,
            }])
            .await?;
        Ok(())
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

    /// SendMessage / SendMessageBatch: every message is committed before this returns.
    pub async fn send(
        &self,
        name: &str,
        messages: Vec<(String, BTreeMap<String, MessageAttribute>, Option<i64>)>,
    ) -> QResult<Vec<StoredMessage>> {
        let max = self.attr(name, "MaximumMessageSize").unwrap_or(262_144) as usize;
        let queue_delay = self.attr(name, "DelaySeconds").unwrap_or(0);
        let now = now_ms();
        let mut out = Vec::new();
        let mut ops = Vec::new();
        for (body, attributes, delay) in messages {
            if body.is_empty() {
                return Err(QueueError::InvalidParameter(
                    "The request must contain the parameter MessageBody.".into(),
                ));
            }
            if body.len() > max {
                return Err(QueueError::InvalidParameter(format!(
                    "One or more parameters are invalid. Reason: Message must be shorter than {max} bytes."
                )));
            }
            let delay = delay.unwrap_or(queue_delay);
            if !(0..=900).contains(&delay) {
                return Err(QueueError::InvalidParameter(format!(
                    "Value {delay} for parameter DelaySeconds is invalid. Reason: must be between 0 and 900, if provided."
                )));
            }
            let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let m = StoredMessage {
                queue: name.to_string(),
                seq,
                id: uuid::Uuid::new_v4().to_string(),
                body,
                attributes,
                sent_ms: now,
                receive_count: 0,
                first_receive_ms: None,
                visible_at_ms: now + delay * 1000,
            };
            let json = serde_json::to_string(&m)
                .map_err(|e| CoreError::Internal(format!("encoding a message: {e}")))?;
            ops.push(WriteOp::PutRecord {
                kind: MESSAGE_KIND.into(),
                key: format!("{name}:{seq:020}"),
                body: json,
            });
            out.push(m);
        }
        self.store.write_async(ops).await?;
        {
            let mut st = self.lock();
            let q = st.get_mut(name).ok_or(QueueError::NoQueue)?;
            for m in &out {
                q.messages.insert(m.seq, m.clone());
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
        let deadline = tokio::time::Instant::now() + Duration::from_secs(wait as u64);
        loop {
            let arrived = self.arrived.notified();
            let got = self.take(name, max, visibility).await?;
            if !got.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(got);
            }
            tokio::select! {
                _ = arrived => {}
                _ = tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + Duration::from_millis(200))) => {}
            }
        }
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
            for m in q.messages.values_mut() {
                if out.len() >= max {
                    break;
                }
                // Past the queue's retention period a message is deleted, never delivered.
                if now.saturating_sub(m.sent_ms) > retention_ms {
                    expired.push(m.seq);
                    continue;
                }
                if m.visible_at_ms > now {
                    continue;
                }
                if let Some((_, limit)) = &redrive
                    && m.receive_count >= *limit
                {
                    moved.push(m.seq);
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
            q.receipts
                .retain(|_, seq| !moved.contains(seq) && !expired.contains(seq));
            for seq in &expired {
                q.messages.remove(seq);
            }
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

    /// Moves messages to the dead-letter queue named by `arn`.
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
        let batch = msgs
            .iter()
            .map(|m| (m.body.clone(), m.attributes.clone(), Some(0)))
            .collect();
        if self.send(&target, batch).await.is_err() {
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
            let gone: std::collections::HashSet<u64> = seqs
                .iter()
                .filter_map(|s| s.as_ref().ok().copied())
                .collect();
            q.receipts.retain(|_, s| !gone.contains(s));
        }
        Ok(seqs.into_iter().map(|s| s.map(drop)).collect())
    }

    /// ChangeMessageVisibility.
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
    }

    #[test]
    fn names_and_attributes_are_checked() {
        assert!(check_name("orders-dlq_1").is_ok());
        assert!(check_name("bad name").is_err());
        assert!(check_name("q.fifo").is_err());
        let mut a = BTreeMap::new();
        a.insert("VisibilityTimeout".to_string(), "50000".to_string());
        assert!(check_attributes(&a).is_err());
        a.insert("VisibilityTimeout".to_string(), "5".to_string());
        assert!(check_attributes(&a).is_ok());
        a.insert("Bogus".to_string(), "1".to_string());
        assert!(check_attributes(&a).is_err());
    }
}
