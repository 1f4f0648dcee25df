//! The embedded durable store: one SQLite database in WAL mode for records, plus content-addressed
//! blob files for function code.
//!
//! Every write goes through one writer thread that commits whatever has queued up while the
//! previous commit was in flight (group commit). A write is acknowledged only after its
//! transaction committed, so an acknowledged write survives `kill -9` of the server
//! (`synchronous=NORMAL` in WAL mode puts every commit in the WAL before `COMMIT` returns).
//! Reads use their own connection and never wait behind the writer.
//!
//! The store knows nothing of Lambda: records are opaque JSON documents owned by the core.

mod blobs;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags, params};

pub use blobs::BlobStore;
pub use writer::{LogEventRow, UsageRow, WriteOp};

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

/// The store: a writer thread, a read connection and the blob directory.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    writer: writer::WriterHandle,
    reader: Mutex<Connection>,
    blobs: BlobStore,
    db_path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::io(data_dir, e))?;
        let db_path = data_dir.join("nimbus.db");
        let conn = Connection::open(&db_path)?;
        schema::prepare(&conn)?;
        // The database (and the WAL and shared-memory files SQLite creates beside it, which
        // take its mode) is the server's alone.
        {
            use std::os::unix::fs::PermissionsExt;
            for name in ["nimbus.db", "nimbus.db-wal", "nimbus.db-shm"] {
                let p = data_dir.join(name);
                if p.exists() {
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
                        .map_err(|e| StoreError::io(&p, e))?;
                }
            }
        }
        let reader = Connection::open_with_flags(
            &db_path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        reader.busy_timeout(std::time::Duration::from_secs(5))?;
        let writer = writer::WriterHandle::spawn(conn)?;
        let blobs = BlobStore::open(&data_dir.join("blobs"))?;
        Ok(Store {
            inner: Arc::new(Inner {
                writer,
                reader: Mutex::new(reader),
                blobs,
                db_path,
            }),
        })
    }

    /// The path of the SQLite database file (`nimbus.db` in the data directory).
    pub fn db_path(&self) -> &Path {
        &self.inner.db_path
    }

    /// The blob files for function code.
    pub fn blobs(&self) -> &BlobStore {
        &self.inner.blobs
    }

    /// Applies writes in one transaction and returns once they are durable (fsynced).
    pub fn write(&self, ops: Vec<WriteOp>) -> Result<()> {
        self.inner.writer.write(ops)
    }

    /// Commits `ops` in one transaction (grouped with other writers') without blocking a thread:
    /// the future resolves once the commit is durable against a process crash.
    pub fn write_async(
        &self,
        ops: Vec<WriteOp>,
    ) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
        self.inner.writer.write_async(ops, true)
    }

    /// Commits `ops` with the next group and resolves once committed, without asking for an
    /// fsync (log lines: the caller needs backpressure, not durability).
    pub fn write_committed(
        &self,
        ops: Vec<WriteOp>,
    ) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
        self.inner.writer.write_async(ops, false)
    }

    /// How many commits so far were fsynced before their acknowledgements.
    pub fn durable_commits(&self) -> u64 {
        self.inner
            .writer
            .fsynced
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Queues writes without waiting for them (logs, metering): they are committed with the next
    /// group, normally within a millisecond or two.
    pub fn write_background(&self, ops: Vec<WriteOp>) {
        self.inner.writer.write_background(ops)
    }

    /// Waits until everything queued so far is committed.
    pub fn flush(&self) -> Result<()> {
        self.inner.writer.write(Vec::new())
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let conn = self
            .inner
            .reader
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(f(&conn)?)
    }

    /// All stored records of one kind, ordered by key.
    pub fn records(&self, kind: &str) -> Result<Vec<(String, String)>> {
        self.read(|c| {
            let mut st =
                c.prepare_cached("SELECT key, body FROM records WHERE kind = ?1 ORDER BY key")?;
            let rows = st.query_map(params![kind], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    /// Log groups whose name starts with `prefix` (every group for `None`), ordered by name.
    pub fn log_groups(&self, prefix: Option<&str>) -> Result<Vec<LogGroupRow>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT g.name, g.created_ms, COALESCE((SELECT SUM(stored_bytes) FROM log_streams s WHERE s.group_name = g.name), 0), g.retention_days
                 FROM log_groups g WHERE substr(g.name, 1, length(?1)) = ?1 ORDER BY g.name",
            )?;
            let rows = st.query_map(params![prefix.unwrap_or("")], |r| {
                Ok(LogGroupRow {
                    name: r.get(0)?,
                    created_ms: r.get(1)?,
                    stored_bytes: r.get(2)?,
                    retention_days: r.get(3)?,
                })
            })?;
            rows.collect()
        })
    }

    /// A group's log streams, ordered by name (empty if the group does not exist).
    pub fn log_streams(&self, group: &str) -> Result<Vec<LogStreamRow>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT group_name, name, created_ms, first_event_ms, last_event_ms, last_ingest_ms, stored_bytes
                 FROM log_streams WHERE group_name = ?1 ORDER BY name",
            )?;
            let rows = st.query_map(params![group], |r| {
                Ok(LogStreamRow {
                    group: r.get(0)?,
                    name: r.get(1)?,
                    created_ms: r.get(2)?,
                    first_event_ms: r.get(3)?,
                    last_event_ms: r.get(4)?,
                    last_ingest_ms: r.get(5)?,
                    stored_bytes: r.get(6)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Every log group with its own retention in days (`None`: the server default applies).
    pub fn log_retention(&self) -> Result<Vec<(String, Option<u32>)>> {
        self.read(|c| {
            let mut st =
                c.prepare_cached("SELECT name, retention_days FROM log_groups ORDER BY name")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    /// Whether a group holds any event older than `before_ms`.
    pub fn log_events_before(&self, group: &str, before_ms: i64) -> Result<bool> {
        self.read(|c| {
            c.query_row(
                "SELECT EXISTS(SELECT 1 FROM log_events WHERE group_name = ?1 AND ts_ms < ?2)",
                params![group, before_ms],
                |r| r.get(0),
            )
        })
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
        self.read(|c| {
            c.query_row(
                "SELECT EXISTS(SELECT 1 FROM log_groups WHERE name = ?1)",
                params![group],
                |r| r.get(0),
            )
        })
    }

    /// The log events that match `q`, at most `q.limit`, ordered by id (oldest or newest first).
    pub fn log_events(&self, q: &LogQuery<'_>) -> Result<Vec<StoredLogEvent>> {
        let mut sql = String::from(
            "SELECT id, group_name, stream, ts_ms, ingest_ms, message FROM log_events WHERE group_name = ?",
        );
        let mut args: Vec<rusqlite::types::Value> = vec![q.group.to_string().into()];
        if let Some(streams) = q.streams {
            sql.push_str(" AND stream IN (");
            for (i, s) in streams.iter().enumerate() {
                sql.push_str(if i == 0 { "?" } else { ",?" });
                args.push(s.clone().into());
            }
            if streams.is_empty() {
                sql.push_str("NULL");
            }
            sql.push(')');
        }
        if let Some(p) = q.stream_prefix {
            sql.push_str(" AND substr(stream, 1, length(?)) = ?");
            args.push(p.to_string().into());
            args.push(p.to_string().into());
        }
        if let Some(s) = q.start_ms {
            sql.push_str(" AND ts_ms >= ?");
            args.push(s.into());
        }
        if let Some(e) = q.end_ms {
            sql.push_str(" AND ts_ms <= ?");
            args.push(e.into());
        }
        if let Some(a) = q.after_id {
            sql.push_str(" AND id > ?");
            args.push(a.into());
        }
        if let Some(b) = q.before_id {
            sql.push_str(" AND id < ?");
            args.push(b.into());
        }
        for term in q.contains_all {
            sql.push_str(" AND instr(message, ?) > 0");
            args.push(term.clone().into());
        }
        sql.push_str(if q.newest_first {
            " ORDER BY id DESC LIMIT ?"
        } else {
            " ORDER BY id ASC LIMIT ?"
        });
        args.push((q.limit as i64).into());
        self.read(|c| {
            let mut st = c.prepare_cached(&sql)?;
            let rows = st.query_map(rusqlite::params_from_iter(args), |r| {
                Ok(StoredLogEvent {
                    id: r.get(0)?,
                    group: r.get(1)?,
                    stream: r.get(2)?,
                    ts_ms: r.get(3)?,
                    ingest_ms: r.get(4)?,
                    message: r.get(5)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Usage per function (all time), ordered by function name.
    pub fn usage_summary(&self) -> Result<Vec<UsageSummary>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT function, COUNT(*), SUM(billed_ms), SUM(billed_ms * memory_mb) FROM usage GROUP BY function ORDER BY function",
            )?;
            let rows = st.query_map([], |r| {
                let mb_ms: i64 = r.get(3)?;
                Ok(UsageSummary {
                    function: r.get(0)?,
                    requests: r.get::<_, i64>(1)? as u64,
                    billed_ms: r.get::<_, i64>(2)? as u64,
                    gb_seconds: mb_ms as f64 / 1024.0 / 1000.0,
                })
            })?;
            rows.collect()
        })
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

    #[test]
    fn logs_and_usage_are_queryable() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::io("tmp", e))?;
        let s = Store::open(dir.path())?;
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
