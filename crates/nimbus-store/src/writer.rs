//! The single writer thread and its group commit.
//!
//! Callers send batches of [`WriteOp`]s over a channel. The thread takes the first batch, then
//! everything else already waiting, applies it all in one transaction, commits once and then
//! acknowledges every waiting caller. Under load many callers share one commit.
//!
//! A group that carries a durable batch (an acknowledgement: an accepted event, a sent message,
//! a stored record) is committed with `synchronous=FULL`, so the WAL is fsynced before anyone is
//! told; groups of background rows and log lines commit with `NORMAL` (durable at the next
//! checkpoint). If a group fails, its batches are applied again one by one, so one bad batch
//! fails alone and every other batch (background ones too) is still committed.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, mpsc};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, params};

use crate::{Result, StoreError};

/// One write. Records are opaque JSON bodies under a (kind, key).
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// Inserts or replaces the record under (`kind`, `key`).
    PutRecord {
        /// The record type, e.g. `function`; chosen by the core.
        kind: String,
        /// The record's key, unique within its kind.
        key: String,
        /// The record as a JSON document.
        body: String,
    },
    /// A precondition: the batch commits only if the record under (`kind`, `key`) is at
    /// `revision` (`None`: absent); otherwise the whole batch fails with
    /// [`crate::StoreError::Conflict`] and nothing of it is written (compare-and-set).
    ExpectRevision {
        /// The record type.
        kind: String,
        /// The record's key.
        key: String,
        /// The revision the caller read, or `None` when it read no record.
        revision: Option<u64>,
    },
    /// Deletes the record under (`kind`, `key`), if there is one.
    DeleteRecord {
        /// The record type.
        kind: String,
        /// The record's key.
        key: String,
    },
    /// Deletes every record of `kind` whose key starts with `prefix`.
    DeleteRecordPrefix {
        /// The record type.
        kind: String,
        /// The key prefix; an empty prefix deletes every record of the kind.
        prefix: String,
    },
    /// Appends one log event, creating its group and stream if needed.
    Log(LogEventRow),
    /// Appends one metering row.
    Usage(UsageRow),
    /// Deletes a log group and its streams and events.
    DeleteLogGroup(String),
    /// Sets (or with `None` removes) a log group's retention in days.
    SetLogRetention {
        /// The log group's name.
        group: String,
        /// The retention in days; `None` returns the group to the server default.
        days: Option<u32>,
    },
    /// Deletes up to `limit` of a group's events older than `before_ms` (one chunk of a
    /// retention sweep or a group deletion, so no single commit holds the writer for long).
    ExpireLogEvents {
        /// The log group's name.
        group: String,
        /// The cut-off, in milliseconds since the Unix epoch; events at or after it stay.
        before_ms: i64,
        /// The most events this one write deletes.
        limit: u32,
    },
    /// Recomputes a group's streams' stored bytes from their events (after expiry).
    RecountLogBytes(String),
}

/// A log line to append; the group and stream are created on first use.
#[derive(Debug, Clone)]
pub struct LogEventRow {
    /// The log group, e.g. `/aws/lambda/my-function`.
    pub group: String,
    /// The log stream within the group.
    pub stream: String,
    /// The event's timestamp, in milliseconds since the Unix epoch (its ingestion time is the
    /// commit's).
    pub ts_ms: i64,
    /// The event's text, as the runtime wrote it (one event may hold several lines).
    pub message: String,
}

/// One metered invocation.
#[derive(Debug, Clone)]
pub struct UsageRow {
    /// When the invocation ended, in milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// The function's name.
    pub function: String,
    /// The invocation's request id.
    pub request_id: String,
    /// How long the invocation ran, in milliseconds.
    pub duration_ms: f64,
    /// The billed duration in milliseconds: run time plus any init time, rounded up to the
    /// billing granularity.
    pub billed_ms: i64,
    /// The function's configured memory (`MemorySize`) in MiB.
    pub memory_mb: i64,
    /// The cold start's init duration in milliseconds; `None` for a warm invocation.
    pub init_ms: Option<f64>,
    /// How it ended: `success`, or `error:` followed by the error type.
    pub status: String,
}

struct Batch {
    ops: Vec<WriteOp>,
    ack: Option<Ack>,
    /// Whether the commit must be on disk (fsynced) before the acknowledgement.
    durable: bool,
}

/// Who waits for a batch's commit: a blocking caller or an async one.
/// Why a batch was not committed.
#[derive(Debug, Clone)]
pub(crate) enum Refused {
    /// An [`WriteOp::ExpectRevision`] did not hold.
    Conflict(String),
    /// SQLite failed.
    Failed(String),
}

impl From<Refused> for StoreError {
    fn from(r: Refused) -> Self {
        match r {
            Refused::Conflict(m) => StoreError::Conflict(m),
            Refused::Failed(m) => StoreError::Commit(m),
        }
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Conflict(m) | Refused::Failed(m) => f.write_str(m),
        }
    }
}

/// A record changed by a commit, for [`crate::Store::subscribe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The record type.
    pub kind: String,
    /// The key, or for a prefix deletion the prefix.
    pub key: String,
    /// Whether the record (or every record under the prefix) is now gone.
    pub deleted: bool,
}

/// Where committed record changes are announced.
pub(crate) type Changes = tokio::sync::broadcast::Sender<Change>;

/// The changes a batch makes to records.
pub(crate) fn changes(ops: &[WriteOp]) -> impl Iterator<Item = Change> + '_ {
    ops.iter().filter_map(|op| match op {
        WriteOp::PutRecord { kind, key, .. } => Some(Change {
            kind: kind.clone(),
            key: key.clone(),
            deleted: false,
        }),
        WriteOp::DeleteRecord { kind, key } => Some(Change {
            kind: kind.clone(),
            key: key.clone(),
            deleted: true,
        }),
        WriteOp::DeleteRecordPrefix { kind, prefix } => Some(Change {
            kind: kind.clone(),
            key: prefix.clone(),
            deleted: true,
        }),
        _ => None,
    })
}

enum Ack {
    Sync(mpsc::SyncSender<std::result::Result<(), Refused>>),
    Async(tokio::sync::oneshot::Sender<std::result::Result<(), Refused>>),
}

impl Ack {
    fn send(self, r: std::result::Result<(), Refused>) {
        match self {
            Ack::Sync(tx) => {
                let _ = tx.send(r);
            }
            Ack::Async(tx) => {
                let _ = tx.send(r);
            }
        }
    }
}

pub(crate) struct WriterHandle {
    tx: mpsc::Sender<Batch>,
    /// Commits made with `synchronous=FULL` (groups with a durable batch).
    pub(crate) fsynced: Arc<AtomicU64>,
}

/// How many queued batches one transaction takes at most.
const MAX_GROUP: usize = 4096;

impl WriterHandle {
    pub(crate) fn spawn(conn: Connection, changes: Changes) -> Result<WriterHandle> {
        let (tx, rx) = mpsc::channel::<Batch>();
        let fsynced = Arc::new(AtomicU64::new(0));
        let counter = fsynced.clone();
        std::thread::Builder::new()
            .name("nimbus-store-writer".into())
            .spawn(move || run(conn, rx, counter, changes))
            .map_err(|e| StoreError::io("writer thread", e))?;
        Ok(WriterHandle { tx, fsynced })
    }

    pub(crate) fn write(&self, ops: Vec<WriteOp>) -> Result<()> {
        let (ack, done) = mpsc::sync_channel(1);
        self.tx
            .send(Batch {
                ops,
                ack: Some(Ack::Sync(ack)),
                durable: true,
            })
            .map_err(|_| StoreError::WriterGone)?;
        match done.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(r)) => Err(r.into()),
            Err(_) => Err(StoreError::WriterGone),
        }
    }

    /// Queues a batch; the returned future resolves once it is committed.
    pub(crate) fn write_async(
        &self,
        ops: Vec<WriteOp>,
        durable: bool,
    ) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
        let (ack, done) = tokio::sync::oneshot::channel();
        let sent = self.tx.send(Batch {
            ops,
            ack: Some(Ack::Async(ack)),
            durable,
        });
        async move {
            sent.map_err(|_| StoreError::WriterGone)?;
            match done.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(r)) => Err(r.into()),
                Err(_) => Err(StoreError::WriterGone),
            }
        }
    }

    pub(crate) fn write_background(&self, ops: Vec<WriteOp>) {
        if self
            .tx
            .send(Batch {
                ops,
                ack: None,
                durable: false,
            })
            .is_err()
        {
            tracing::error!("store writer is gone; dropping a background write");
        }
    }
}

/// How long background-only writes (logs, metering) may wait for company before committing.
const BACKGROUND_LINGER: std::time::Duration = std::time::Duration::from_millis(2);

/// Sets the commit mode; `Err` when FULL was asked for and could not be set (durable batches
/// must then not be acknowledged).
fn set_synchronous(
    conn: &Connection,
    full: bool,
    current: &mut Option<bool>,
) -> std::result::Result<(), String> {
    if *current != Some(full) {
        let mode = if full { "FULL" } else { "NORMAL" };
        match conn.pragma_update(None, "synchronous", mode) {
            Ok(()) => *current = Some(full),
            Err(e) => {
                *current = None;
                tracing::error!(error = %e, "setting synchronous={mode} failed");
                if full {
                    return Err(format!("cannot make the commit durable: {e}"));
                }
            }
        }
    }
    Ok(())
}

/// Acknowledges a committed batch and announces its record changes.
fn committed(b: Batch, fsynced: &AtomicU64, changes: &Changes) {
    if b.durable {
        fsynced.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    if changes.receiver_count() > 0 {
        for c in crate::writer::changes(&b.ops) {
            let _ = changes.send(c);
        }
    }
    if let Some(ack) = b.ack {
        ack.send(Ok(()));
    }
}

fn run(mut conn: Connection, rx: mpsc::Receiver<Batch>, fsynced: Arc<AtomicU64>, changes: Changes) {
    let mut synchronous: Option<bool> = None;
    while let Ok(first) = rx.recv() {
        let started = std::time::Instant::now();
        let mut group = vec![first];
        loop {
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(b) => group.push(b),
                    Err(_) => break,
                }
            }
            // Nobody waits on a background-only group: linger briefly so that one commit
            // carries many log lines and usage rows.
            let waited_on = group.iter().any(|b| b.durable);
            let left = BACKGROUND_LINGER.saturating_sub(started.elapsed());
            if waited_on || group.len() >= MAX_GROUP || left.is_zero() {
                break;
            }
            // Sleep rather than wait on the channel, so senders do not wake this thread
            // once per message.
            std::thread::sleep(left);
        }
        let durable = group.iter().any(|b| b.durable);
        let result = set_synchronous(&conn, durable, &mut synchronous)
            .map_err(Refused::Failed)
            .and_then(|()| apply(&mut conn, &group));
        match result {
            Ok(refused) => {
                // One fsync for the group (counted once), then every batch acknowledged: those
                // whose precondition failed with their conflict, the others as committed.
                if durable {
                    fsynced.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                for (mut b, conflict) in group.into_iter().zip(refused) {
                    b.durable = false;
                    match conflict {
                        None => committed(b, &fsynced, &changes),
                        Some(m) => fail(vec![b], Refused::Conflict(m)),
                    }
                }
            }
            Err(e) if group.len() == 1 => {
                tracing::error!(error = %e, "store commit failed");
                fail(group, e);
            }
            Err(e) => {
                // Find the bad batch: apply each alone, so the others still commit.
                tracing::warn!(error = %e, batches = group.len(), "a group commit failed; committing its batches one by one");
                for b in group {
                    let one = [b];
                    let r = set_synchronous(&conn, one[0].durable, &mut synchronous)
                        .map_err(Refused::Failed)
                        .and_then(|()| apply(&mut conn, &one));
                    let [b] = one;
                    match r {
                        Ok(refused) if refused.first().is_some_and(Option::is_some) => {
                            let m = refused.into_iter().flatten().next().unwrap_or_default();
                            fail(vec![b], Refused::Conflict(m));
                        }
                        Ok(_) => committed(b, &fsynced, &changes),
                        Err(e) => {
                            tracing::error!(error = %e, "store commit failed");
                            fail(vec![b], e);
                        }
                    }
                }
            }
        }
    }
}

/// Reports a failed commit: to the waiting callers, and in the log for background batches
/// (whose rows are lost; nobody else would know).
fn fail(group: Vec<Batch>, e: Refused) {
    for b in group {
        match b.ack {
            Some(ack) => ack.send(Err(e.clone())),
            None => tracing::error!(
                ops = b.ops.len(),
                error = %e,
                "background rows (log lines or usage) could not be stored and are dropped"
            ),
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Per-stream summary of the log events in one transaction.
struct StreamUpdate {
    first: i64,
    last: i64,
    bytes: i64,
}

/// Applies a group in one transaction. A batch with a precondition runs inside a savepoint of
/// its own, so a precondition that fails undoes that batch alone: the result names, per batch,
/// the conflict that refused it (`None`: applied).
fn apply(
    conn: &mut Connection,
    group: &[Batch],
) -> std::result::Result<Vec<Option<String>>, Refused> {
    apply_ops(conn, group).map_err(|e| Refused::Failed(e.to_string()))
}

/// Why applying a batch stopped.
enum Applied {
    Conflict(String),
    Sql(rusqlite::Error),
}

impl From<rusqlite::Error> for Applied {
    fn from(e: rusqlite::Error) -> Self {
        Applied::Sql(e)
    }
}

/// Log streams touched by a transaction: (group, stream) → summary.
type Streams = std::collections::HashMap<(String, String), StreamUpdate>;

fn conditional(b: &Batch) -> bool {
    b.ops
        .iter()
        .any(|op| matches!(op, WriteOp::ExpectRevision { .. }))
}

fn apply_ops(
    conn: &mut Connection,
    group: &[Batch],
) -> std::result::Result<Vec<Option<String>>, rusqlite::Error> {
    let mut tx = conn.transaction()?;
    let ingest = now_ms();
    let mut streams = Streams::new();
    let mut refused = vec![None; group.len()];
    for (i, b) in group.iter().enumerate() {
        if conditional(b) {
            let sp = tx.savepoint()?;
            let mut mine = Streams::new();
            match apply_batch(&sp, &b.ops, ingest, &mut mine) {
                Ok(()) => {
                    sp.commit()?;
                    merge_streams(&mut streams, mine);
                }
                // Dropping the savepoint rolls this batch back, and only it.
                Err(Applied::Conflict(m)) => refused[i] = Some(m),
                Err(Applied::Sql(e)) => return Err(e),
            }
        } else {
            match apply_batch(&tx, &b.ops, ingest, &mut streams) {
                Ok(()) => {}
                Err(Applied::Conflict(m)) => refused[i] = Some(m),
                Err(Applied::Sql(e)) => return Err(e),
            }
        }
    }
    for ((group, stream), u) in &streams {
        tx.prepare_cached(
            "INSERT INTO log_groups (name, created_ms) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        )?
        .execute(params![group, ingest])?;
        tx.prepare_cached(
            "INSERT INTO log_streams (group_name, name, created_ms, first_event_ms, last_event_ms, last_ingest_ms, stored_bytes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?3, ?6)
             ON CONFLICT (group_name, name) DO UPDATE SET
               first_event_ms = MIN(COALESCE(first_event_ms, excluded.first_event_ms), excluded.first_event_ms),
               last_event_ms = MAX(COALESCE(last_event_ms, excluded.last_event_ms), excluded.last_event_ms),
               last_ingest_ms = excluded.last_ingest_ms,
               stored_bytes = stored_bytes + excluded.stored_bytes",
        )?
        .execute(params![group, stream, ingest, u.first, u.last, u.bytes])?;
    }
    tx.commit()?;
    Ok(refused)
}

fn merge_streams(into: &mut Streams, from: Streams) {
    for (k, u) in from {
        let e = into.entry(k).or_insert(StreamUpdate {
            first: u.first,
            last: u.last,
            bytes: 0,
        });
        e.first = e.first.min(u.first);
        e.last = e.last.max(u.last);
        e.bytes += u.bytes;
    }
}

/// Applies one batch's operations on `tx` (the transaction, or a savepoint of it).
fn apply_batch(
    tx: &Connection,
    ops: &[WriteOp],
    ingest: i64,
    streams: &mut Streams,
) -> std::result::Result<(), Applied> {
    for op in ops {
        match op {
            WriteOp::PutRecord { kind, key, body } => {
                // Revisions come from one counter for the whole store, so a record deleted and
                // created again never repeats a revision an earlier copy had.
                let revision: i64 = tx
                    .prepare_cached(
                        "UPDATE store_meta SET v = v + 1 WHERE k = 'revision' RETURNING v",
                    )?
                    .query_row([], |r| r.get(0))?;
                tx.prepare_cached(
                    "INSERT INTO records (kind, key, body, revision) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (kind, key) DO UPDATE SET body = excluded.body, revision = excluded.revision",
                )?
                .execute(params![kind, key, body, revision])?;
            }
            WriteOp::ExpectRevision {
                kind,
                key,
                revision,
            } => {
                let current: Option<i64> = tx
                    .prepare_cached("SELECT revision FROM records WHERE kind = ?1 AND key = ?2")?
                    .query_row(params![kind, key], |r| r.get(0))
                    .map(Some)
                    .or_else(|e| match e {
                        rusqlite::Error::QueryReturnedNoRows => Ok(None),
                        e => Err(e),
                    })?;
                if current.map(|r| r as u64) != *revision {
                    return Err(Applied::Conflict(format!(
                        "{kind}/{key} is at revision {current:?}, not {revision:?}"
                    )));
                }
            }
            WriteOp::DeleteRecord { kind, key } => {
                tx.prepare_cached("DELETE FROM records WHERE kind = ?1 AND key = ?2")?
                    .execute(params![kind, key])?;
            }
            WriteOp::DeleteRecordPrefix { kind, prefix } => {
                tx.prepare_cached(
                    "DELETE FROM records WHERE kind = ?1 AND substr(key, 1, length(?2)) = ?2",
                )?
                .execute(params![kind, prefix])?;
            }
            WriteOp::Log(ev) => {
                // Groups and streams are upserted once per transaction, after the events.
                let e = streams
                    .entry((ev.group.clone(), ev.stream.clone()))
                    .or_insert(StreamUpdate {
                        first: ev.ts_ms,
                        last: ev.ts_ms,
                        bytes: 0,
                    });
                e.first = e.first.min(ev.ts_ms);
                e.last = e.last.max(ev.ts_ms);
                e.bytes += ev.message.len() as i64;
                tx.prepare_cached(
                    "INSERT INTO log_events (group_name, stream, ts_ms, ingest_ms, message) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![ev.group, ev.stream, ev.ts_ms, ingest, ev.message])?;
            }
            WriteOp::Usage(u) => {
                tx.prepare_cached(
                    "INSERT INTO usage (ts_ms, function, request_id, duration_ms, billed_ms, memory_mb, init_ms, status)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?
                .execute(params![
                    u.ts_ms,
                    u.function,
                    u.request_id,
                    u.duration_ms,
                    u.billed_ms,
                    u.memory_mb,
                    u.init_ms,
                    u.status
                ])?;
            }
            WriteOp::SetLogRetention { group, days } => {
                tx.prepare_cached("UPDATE log_groups SET retention_days = ?2 WHERE name = ?1")?
                    .execute(params![group, days])?;
            }
            WriteOp::ExpireLogEvents {
                group,
                before_ms,
                limit,
            } => {
                tx.prepare_cached(
                    "DELETE FROM log_events WHERE id IN
                     (SELECT id FROM log_events WHERE group_name = ?1 AND ts_ms < ?2 LIMIT ?3)",
                )?
                .execute(params![group, before_ms, limit])?;
            }
            WriteOp::RecountLogBytes(g) => {
                tx.prepare_cached(
                    "UPDATE log_streams SET stored_bytes = (SELECT COALESCE(SUM(length(message)), 0)
                       FROM log_events e WHERE e.group_name = log_streams.group_name AND e.stream = log_streams.name)
                     WHERE group_name = ?1",
                )?
                .execute(params![g])?;
            }
            WriteOp::DeleteLogGroup(g) => {
                tx.prepare_cached("DELETE FROM log_events WHERE group_name = ?1")?
                    .execute(params![g])?;
                tx.prepare_cached("DELETE FROM log_streams WHERE group_name = ?1")?
                    .execute(params![g])?;
                tx.prepare_cached("DELETE FROM log_groups WHERE name = ?1")?
                    .execute(params![g])?;
            }
        }
    }
    Ok(())
}
