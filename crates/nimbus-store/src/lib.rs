//! The durable store behind one interface ([`Backend`]): records with revisions,
//! compare-and-set and change notification; the append-only log and usage streams; group
//! commits with a durability choice; plus content-addressed blob files for function code. The
//! embedded backend ([`SqliteStore`]) is one SQLite database in WAL mode; [`MemoryStore`] is the
//! in-memory double for tests.
//!
//! Every write goes through one writer thread that commits whatever has queued up while the
//! previous commit was in flight (group commit). A write is acknowledged only after its
//! transaction committed, so an acknowledged write survives `kill -9` of the server
//! (`synchronous=NORMAL` in WAL mode puts every commit in the WAL before `COMMIT` returns).
//! Reads use their own connection and never wait behind the writer.
//!
//! The store knows nothing of Lambda: records are opaque JSON documents owned by the core.

mod blobs;
mod memory;
mod schema;
mod sqlite;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use blobs::BlobStore;
pub use memory::MemoryStore;
pub use sqlite::SqliteStore;
pub use writer::{Change, LogEventRow, UsageRow, WriteOp};

/// Errors from the store. Every I/O error carries the path it concerns.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or directory operation failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory the operation was on.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// SQLite refused a statement or could not open the database.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The writer thread could not commit a batch; the message is SQLite's error as text.
    #[error("commit failed: {0}")]
    Commit(String),
    /// A compare-and-set precondition ([`WriteOp::ExpectRevision`]) did not hold: the batch
    /// was not written.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The writer thread has exited, so nothing more can be written.
    #[error("the store's writer thread has stopped")]
    WriterGone,
    /// No blob is stored under this hex SHA-256.
    #[error("blob {0} not found")]
    BlobNotFound(String),
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }
}

/// The store's result type.
pub type Result<T> = std::result::Result<T, StoreError>;

/// A stored log stream's summary, as DescribeLogStreams reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct LogStreamRow {
    /// The log group the stream belongs to.
    pub group: String,
    /// The stream's name, unique within its group.
    pub name: String,
    /// When the stream's first event was stored, in milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// The oldest event timestamp in the stream, in milliseconds since the Unix epoch.
    pub first_event_ms: Option<i64>,
    /// The newest event timestamp in the stream, in milliseconds since the Unix epoch.
    pub last_event_ms: Option<i64>,
    /// When an event was last stored in the stream, in milliseconds since the Unix epoch.
    pub last_ingest_ms: Option<i64>,
    /// The summed length of the stream's messages in bytes (`storedBytes`).
    pub stored_bytes: i64,
}

/// A stored log event, with its store-assigned sequence id (used for paging tokens).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredLogEvent {
    /// The store-assigned sequence id: increases with every stored event, across all groups.
    pub id: i64,
    /// The log group the event belongs to.
    pub group: String,
    /// The log stream the event belongs to.
    pub stream: String,
    /// The event's own timestamp, in milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// When the store committed the event, in milliseconds since the Unix epoch (`ingestionTime`).
    pub ingest_ms: i64,
    /// The event's text (one event may hold several lines).
    pub message: String,
}

/// A query over log events; `None` fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct LogQuery<'a> {
    /// The log group to read; the only filter that is always applied.
    pub group: &'a str,
    /// Only events in these streams (an empty slice matches nothing).
    pub streams: Option<&'a [String]>,
    /// Only events in streams whose name starts with this.
    pub stream_prefix: Option<&'a str>,
    /// Only events with a timestamp at or after this, in milliseconds since the Unix epoch.
    pub start_ms: Option<i64>,
    /// Only events with a timestamp at or before this, in milliseconds since the Unix epoch.
    pub end_ms: Option<i64>,
    /// Only events with an id strictly greater than this (forward paging).
    pub after_id: Option<i64>,
    /// Only events with an id strictly smaller than this (backward paging).
    pub before_id: Option<i64>,
    /// Return the newest events first.
    pub newest_first: bool,
    /// Case-sensitive substring terms, all of which must occur.
    pub contains_all: &'a [String],
    /// The most events to return.
    pub limit: usize,
}

/// Usage summed per function, for pricing.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageSummary {
    /// The function's name.
    pub function: String,
    /// How many invocations were metered.
    pub requests: u64,
    /// The summed billed duration in milliseconds.
    pub billed_ms: u64,
    /// Σ memory(GB) × billed seconds.
    pub gb_seconds: f64,
}

/// One log group as DescribeLogGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogGroupRow {
    /// The group's name, e.g. `/aws/lambda/my-function`.
    pub name: String,
    /// When the group's first event was stored, in milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// The summed length of the messages in all its streams, in bytes (`storedBytes`).
    pub stored_bytes: i64,
    /// The group's own retention in days; `None` when the server default applies.
    pub retention_days: Option<u32>,
}

/// A record with its revision (bumped by every write of it; the first write makes it 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The record's key, unique within its kind.
    pub key: String,
    /// The record as a JSON document.
    pub body: String,
    /// Its revision, for [`WriteOp::ExpectRevision`].
    pub revision: u64,
}

/// A pending commit: resolves once the batch is committed (or refused).
pub type Commit = std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send>>;

/// What a store backend provides: records with revisions and compare-and-set, change
/// notification, the append-only log and usage streams with their queries, and group commits
/// with a durability choice. [`SqliteStore`] is the embedded backend, [`MemoryStore`] the
/// in-memory double for tests; a distributed backend implements the same trait.
pub trait Backend: Send + Sync + 'static {
    /// Commits `ops` as one batch; with `durable`, the commit is fsynced before it resolves.
    fn commit(&self, ops: Vec<WriteOp>, durable: bool) -> Commit;
    /// Commits `ops` as one batch from a thread that may block, durably.
    fn write(&self, ops: Vec<WriteOp>) -> Result<()>;
    /// Queues `ops` without waiting (logs, metering).
    fn write_background(&self, ops: Vec<WriteOp>);
    /// How many commits so far were fsynced before their acknowledgements.
    fn durable_commits(&self) -> u64;
    /// Every record of `kind`, ordered by key.
    fn records(&self, kind: &str) -> Result<Vec<Record>>;
    /// Committed record changes, from now on.
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change>;
    /// Log groups whose name starts with `prefix` (all for `None`), ordered by name.
    fn log_groups(&self, prefix: Option<&str>) -> Result<Vec<LogGroupRow>>;
    /// A group's log streams, ordered by name.
    fn log_streams(&self, group: &str) -> Result<Vec<LogStreamRow>>;
    /// Every log group with its own retention in days.
    fn log_retention(&self) -> Result<Vec<(String, Option<u32>)>>;
    /// Whether a group holds any event older than `before_ms`.
    fn log_events_before(&self, group: &str, before_ms: i64) -> Result<bool>;
    /// Whether a log group exists.
    fn log_group_exists(&self, group: &str) -> Result<bool>;
    /// The log events that match `q`, at most `q.limit`, ordered by id.
    fn log_events(&self, q: &LogQuery<'_>) -> Result<Vec<StoredLogEvent>>;
    /// Usage per function (all time), ordered by function name.
    fn usage_summary(&self) -> Result<Vec<UsageSummary>>;
}

/// The store: a handle on a backend, and the blob directory for function code.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
    blobs: Arc<BlobStore>,
}

impl Store {
    /// Opens (creating if needed) the embedded SQLite store in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Store> {
        let backend = SqliteStore::open(data_dir)?;
        let blobs = BlobStore::open(&data_dir.join("blobs"))?;
        Ok(Store {
            backend: Arc::new(backend),
            blobs: Arc::new(blobs),
        })
    }

    /// An in-memory store (records, logs and usage in memory; blobs as files in `blob_dir`),
    /// for tests: nothing survives the process.
    pub fn memory(blob_dir: &Path) -> Result<Store> {
        Ok(Store {
            backend: Arc::new(MemoryStore::default()),
            blobs: Arc::new(BlobStore::open(blob_dir)?),
        })
    }

    /// The blob files for function code.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// Applies writes in one transaction and returns once they are durable (fsynced).
    pub fn write(&self, ops: Vec<WriteOp>) -> Result<()> {
        self.backend.write(ops)
    }

    /// Commits `ops` in one transaction (grouped with other writers') without blocking a thread:
    /// the future resolves once the commit is durable against a process crash.
    pub fn write_async(&self, ops: Vec<WriteOp>) -> Commit {
        self.backend.commit(ops, true)
    }

    /// Commits `ops` with the next group and resolves once committed, without asking for an
    /// fsync (log lines: the caller needs backpressure, not durability).
    pub fn write_committed(&self, ops: Vec<WriteOp>) -> Commit {
        self.backend.commit(ops, false)
    }

    /// How many commits so far were fsynced before their acknowledgements.
    pub fn durable_commits(&self) -> u64 {
        self.backend.durable_commits()
    }

    /// Queues writes without waiting for them (logs, metering): they are committed with the next
    /// group, normally within a millisecond or two.
    pub fn write_background(&self, ops: Vec<WriteOp>) {
        self.backend.write_background(ops)
    }

    /// Waits until everything queued so far is committed.
    pub fn flush(&self) -> Result<()> {
        self.backend.write(Vec::new())
    }

    /// All stored records of one kind, ordered by key.
    pub fn records(&self, kind: &str) -> Result<Vec<(String, String)>> {
        Ok(self
            .backend
            .records(kind)?
            .into_iter()
            .map(|r| (r.key, r.body))
            .collect())
    }

    /// All stored records of one kind with their revisions, ordered by key.
    pub fn records_with_revisions(&self, kind: &str) -> Result<Vec<Record>> {
        self.backend.records(kind)
    }

    /// Committed record changes from now on (a receiver that falls behind skips ahead:
    /// re-read what it needs on `Lagged`).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.backend.subscribe()
    }

    /// Log groups whose name starts with `prefix` (every group for `None`), ordered by name.
    pub fn log_groups(&self, prefix: Option<&str>) -> Result<Vec<LogGroupRow>> {
        self.backend.log_groups(prefix)
    }

    /// A group's log streams, ordered by name (empty if the group does not exist).
    pub fn log_streams(&self, group: &str) -> Result<Vec<LogStreamRow>> {
        self.backend.log_streams(group)
    }

    /// Every log group with its own retention in days (`None`: the server default applies).
    pub fn log_retention(&self) -> Result<Vec<(String, Option<u32>)>> {
        self.backend.log_retention()
    }

    /// Whether a group holds any event older than `before_ms`.
    pub fn log_events_before(&self, group: &str, before_ms: i64) -> Result<bool> {
        self.backend.log_events_before(group, before_ms)
    }

    /// Deletes a group's events older than `before_ms` in chunks of `chunk`, each its own
    /// commit, so other writers run between them. Returns the number of chunks.
    pub fn expire_log_events(&self, group: &str, before_ms: i64, chunk: u32) -> Result<u32> {
        let mut chunks = 0;
        while chunks < 100_000 && self.log_events_before(group, before_ms)? {
            self.write(vec![WriteOp::ExpireLogEvents {
                group: group.to_string(),
                before_ms,
                limit: chunk,
            }])?;
            chunks += 1;
        }
        if chunks > 0 {
            // The streams' stored bytes, counted again from what is left.
            self.write(vec![WriteOp::RecountLogBytes(group.to_string())])?;
        }
        Ok(chunks)
    }

    /// Whether a log group has been created (by its first event).
    pub fn log_group_exists(&self, group: &str) -> Result<bool> {
        self.backend.log_group_exists(group)
    }

    /// The log events that match `q`, at most `q.limit`, ordered by id (oldest or newest first).
    pub fn log_events(&self, q: &LogQuery<'_>) -> Result<Vec<StoredLogEvent>> {
        self.backend.log_events(q)
    }

    /// Usage per function (all time), ordered by function name.
    pub fn usage_summary(&self) -> Result<Vec<UsageSummary>> {
        self.backend.usage_summary()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledged_commits_are_fsynced_and_background_ones_are_not() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
        let s = Store::open(dir.path())?;
        let put = |k: &str| WriteOp::PutRecord {
            kind: "k".into(),
            key: k.into(),
            body: "{}".into(),
        };
        for i in 0..5 {
            s.write(vec![put(&format!("r{i}"))])?;
        }
        assert_eq!(
            s.durable_commits(),
            5,
            "one fsynced commit per acknowledged write"
        );
        for i in 0..50 {
            s.write_background(vec![put(&format!("b{i}"))]);
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| StoreError::io("runtime", e))?;
        rt.block_on(s.write_committed(vec![put("log")]))?;
        assert_eq!(
            s.durable_commits(),
            5,
            "background rows and log lines are not fsynced"
        );
        assert_eq!(s.records("k")?.len(), 56);
        Ok(())
    }

    #[test]
    fn records_round_trip_and_survive_reopen() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
        {
            let s = Store::open(dir.path())?;
            s.write(vec![
                WriteOp::PutRecord {
                    kind: "function".into(),
                    key: "a".into(),
                    body: "{\"x\":1}".into(),
                },
                WriteOp::PutRecord {
                    kind: "function".into(),
                    key: "b".into(),
                    body: "{}".into(),
                },
            ])?;
            s.write(vec![WriteOp::DeleteRecord {
                kind: "function".into(),
                key: "b".into(),
            }])?;
        }
        let s = Store::open(dir.path())?;
        assert_eq!(
            s.records("function")?,
            vec![("a".to_string(), "{\"x\":1}".to_string())]
        );
        Ok(())
    }

    /// Runs a scenario against both backends.
    fn on_both(f: impl Fn(&Store) -> Result<()>) -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
        f(&Store::open(dir.path())?)?;
        f(&Store::memory(&dir.path().join("memory-blobs"))?)
    }

    fn put(key: &str, body: &str) -> WriteOp {
        WriteOp::PutRecord {
            kind: "k".into(),
            key: key.into(),
            body: body.into(),
        }
    }

    fn expect(key: &str, revision: Option<u64>) -> WriteOp {
        WriteOp::ExpectRevision {
            kind: "k".into(),
            key: key.into(),
            revision,
        }
    }

    #[test]
    fn revisions_and_compare_and_set() -> Result<()> {
        on_both(|s| {
            // Create only if absent.
            s.write(vec![expect("a", None), put("a", "1")])?;
            assert!(matches!(
                s.write(vec![expect("a", None), put("a", "clobbered")]),
                Err(StoreError::Conflict(_))
            ));
            let r = s.records_with_revisions("k")?;
            let first = r[0].revision;
            assert_eq!(r[0].body, "1");
            // Update only from the revision read; a stale writer loses and writes nothing.
            s.write(vec![
                expect("a", Some(first)),
                put("a", "2"),
                put("side", "x"),
            ])?;
            assert!(matches!(
                s.write(vec![
                    expect("a", Some(first)),
                    put("a", "stale"),
                    put("other", "y")
                ]),
                Err(StoreError::Conflict(_))
            ));
            let all = s.records("k")?;
            assert_eq!(
                all,
                vec![
                    ("a".to_string(), "2".to_string()),
                    ("side".to_string(), "x".to_string())
                ],
                "a refused batch writes nothing"
            );
            let second = s.records_with_revisions("k")?[0].revision;
            assert!(second > first);
            // A precondition sees its batch's own earlier writes.
            assert!(matches!(
                s.write(vec![put("a", "3"), expect("a", Some(second))]),
                Err(StoreError::Conflict(_))
            ));
            // Deleted and created again: never an earlier copy's revision.
            let side = |s: &Store| -> Result<Option<u64>> {
                Ok(s.records_with_revisions("k")?
                    .into_iter()
                    .find(|r| r.key == "side")
                    .map(|r| r.revision))
            };
            let before = side(s)?;
            s.write(vec![WriteOp::DeleteRecord {
                kind: "k".into(),
                key: "side".into(),
            }])?;
            s.write(vec![put("side", "again")])?;
            assert!(side(s)? > before, "a new copy gets a new revision");
            // A conflict in one batch does not fail other batches committed with it.
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .map_err(|e| StoreError::io("runtime", e))?;
            let (ok, refused) = rt.block_on(async {
                tokio::join!(
                    s.write_async(vec![put("b", "fine")]),
                    s.write_async(vec![expect("a", Some(7)), put("a", "no")])
                )
            });
            assert!(ok.is_ok() && matches!(refused, Err(StoreError::Conflict(_))));
            assert_eq!(s.records("k")?.len(), 3);
            // Many batches in one group: the one whose precondition fails is refused alone.
            let results = rt.block_on(async {
                let mut pending = Vec::new();
                pending.push(s.write_async(vec![expect("a", Some(1_000_000)), put("a", "no")]));
                for i in 0..50 {
                    pending.push(s.write_async(vec![put(&format!("g{i}"), "v")]));
                }
                let mut out = Vec::new();
                for p in pending {
                    out.push(p.await);
                }
                out
            });
            assert!(matches!(
                results.first(),
                Some(Err(StoreError::Conflict(_)))
            ));
            assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 50);
            assert_eq!(s.records("k")?.len(), 53);
            Ok(())
        })
    }

    #[test]
    fn committed_changes_are_announced() -> Result<()> {
        on_both(|s| {
            let mut rx = s.subscribe();
            s.write(vec![put("x", "1")])?;
            s.write(vec![WriteOp::DeleteRecord {
                kind: "k".into(),
                key: "x".into(),
            }])?;
            let _ = s.write(vec![expect("x", Some(5)), put("x", "refused")]);
            let got: Vec<Change> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
            assert_eq!(
                got,
                vec![
                    Change {
                        kind: "k".into(),
                        key: "x".into(),
                        deleted: false
                    },
                    Change {
                        kind: "k".into(),
                        key: "x".into(),
                        deleted: true
                    },
                ],
                "a refused batch announces nothing"
            );
            Ok(())
        })
    }

    #[test]
    fn logs_and_usage_are_queryable() -> Result<()> {
        on_both(logs_and_usage)
    }

    fn logs_and_usage(s: &Store) -> Result<()> {
        s.write_background(vec![WriteOp::Log(LogEventRow {
            group: "/aws/lambda/f".into(),
            stream: "2026/01/01/[$LATEST]abc".into(),
            ts_ms: 10,
            message: "hello world".into(),
        })]);
        s.write_background(vec![WriteOp::Log(LogEventRow {
            group: "/aws/lambda/f".into(),
            stream: "2026/01/01/[$LATEST]abc".into(),
            ts_ms: 11,
            message: "second".into(),
        })]);
        s.write_background(vec![WriteOp::Usage(UsageRow {
            ts_ms: 1,
            function: "f".into(),
            request_id: "r".into(),
            duration_ms: 1.5,
            billed_ms: 2,
            memory_mb: 512,
            init_ms: None,
            status: "success".into(),
        })]);
        s.flush()?;
        let streams = s.log_streams("/aws/lambda/f")?;
        assert_eq!(streams.len(), 1);
        assert_eq!(streams[0].first_event_ms, Some(10));
        assert_eq!(streams[0].last_event_ms, Some(11));
        let terms = vec!["world".to_string()];
        let ev = s.log_events(&LogQuery {
            group: "/aws/lambda/f",
            contains_all: &terms,
            limit: 10,
            ..Default::default()
        })?;
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].message, "hello world");
        let u = s.usage_summary()?;
        assert_eq!(u[0].requests, 1);
        assert!((u[0].gb_seconds - 0.001).abs() < 1e-12);
        Ok(())
    }
}
