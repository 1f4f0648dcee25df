//! The embedded backend: one SQLite database in WAL mode (`nimbus.db`), written by one writer
//! thread with group commit ([`crate::writer`]) and read through a connection of its own, so
//! reads never wait behind the writer.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags, params};

use crate::writer::{self, Changes};
use crate::{
    Backend, Change, Commit, LogGroupRow, LogQuery, LogStreamRow, Record, Result, StoreError,
    StoredLogEvent, UsageSummary, WriteOp,
};

/// The SQLite backend.
pub struct SqliteStore {
    writer: writer::WriterHandle,
    reader: Mutex<Connection>,
    changes: Changes,
}

impl SqliteStore {
    /// Opens (creating if needed) the database in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<SqliteStore> {
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::io(data_dir, e))?;
        let db_path = data_dir.join("nimbus.db");
        let conn = Connection::open(&db_path)?;
        crate::schema::prepare(&conn)?;
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
        let (changes, _) = tokio::sync::broadcast::channel(1024);
        let writer = writer::WriterHandle::spawn(conn, changes.clone())?;
        Ok(SqliteStore {
            writer,
            reader: Mutex::new(reader),
            changes,
        })
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let conn = self
            .reader
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(f(&conn)?)
    }
}

impl Backend for SqliteStore {
    fn commit(&self, ops: Vec<WriteOp>, durable: bool) -> Commit {
        Box::pin(self.writer.write_async(ops, durable))
    }

    fn write(&self, ops: Vec<WriteOp>) -> Result<()> {
        self.writer.write(ops)
    }

    fn write_background(&self, ops: Vec<WriteOp>) {
        self.writer.write_background(ops)
    }

    fn durable_commits(&self) -> u64 {
        self.writer
            .fsynced
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn records(&self, kind: &str) -> Result<Vec<Record>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT key, body, revision FROM records WHERE kind = ?1 ORDER BY key",
            )?;
            let rows = st.query_map(params![kind], |r| {
                Ok(Record {
                    key: r.get(0)?,
                    body: r.get(1)?,
                    revision: r.get::<_, i64>(2)? as u64,
                })
            })?;
            rows.collect()
        })
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    fn log_groups(&self, prefix: Option<&str>) -> Result<Vec<LogGroupRow>> {
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

    fn log_streams(&self, group: &str) -> Result<Vec<LogStreamRow>> {
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

    fn log_retention(&self) -> Result<Vec<(String, Option<u32>)>> {
        self.read(|c| {
            let mut st =
                c.prepare_cached("SELECT name, retention_days FROM log_groups ORDER BY name")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    fn log_events_before(&self, group: &str, before_ms: i64) -> Result<bool> {
        self.read(|c| {
            c.query_row(
                "SELECT EXISTS(SELECT 1 FROM log_events WHERE group_name = ?1 AND ts_ms < ?2)",
                params![group, before_ms],
                |r| r.get(0),
            )
        })
    }

    fn log_group_exists(&self, group: &str) -> Result<bool> {
        self.read(|c| {
            c.query_row(
                "SELECT EXISTS(SELECT 1 FROM log_groups WHERE name = ?1)",
                params![group],
                |r| r.get(0),
            )
        })
    }

    fn log_events(&self, q: &LogQuery<'_>) -> Result<Vec<StoredLogEvent>> {
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

    fn usage_summary(&self) -> Result<Vec<UsageSummary>> {
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
