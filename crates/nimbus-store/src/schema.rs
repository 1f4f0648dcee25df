//! Database settings and schema, applied on every open (idempotent).

use rusqlite::Connection;

/// Indexes are kept to what the queries need: every index is paid for on the hot write path
/// (three log lines and one usage row per invocation).
pub(crate) fn prepare(conn: &Connection) -> rusqlite::Result<()> {
    // WAL + NORMAL: each commit is in the WAL (in the kernel) before COMMIT returns, which is what
    // kill -9 safety needs; fsync happens at checkpoints. The writer switches to FULL (WAL
    // fsynced at commit) for every group that carries an acknowledgement (see `writer`).
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS records (
            kind TEXT NOT NULL,
            key TEXT NOT NULL,
            body TEXT NOT NULL,
            PRIMARY KEY (kind, key)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS usage (
            id INTEGER PRIMARY KEY,
            ts_ms INTEGER NOT NULL,
            function TEXT NOT NULL,
            request_id TEXT NOT NULL,
            duration_ms REAL NOT NULL,
            billed_ms INTEGER NOT NULL,
            memory_mb INTEGER NOT NULL,
            init_ms REAL,
            status TEXT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS log_groups (
            name TEXT PRIMARY KEY,
            created_ms INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS log_streams (
            group_name TEXT NOT NULL,
            name TEXT NOT NULL,
            created_ms INTEGER NOT NULL,
            first_event_ms INTEGER,
            last_event_ms INTEGER,
            last_ingest_ms INTEGER,
            stored_bytes INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (group_name, name)
        );
        CREATE TABLE IF NOT EXISTS log_events (
            id INTEGER PRIMARY KEY,
            group_name TEXT NOT NULL,
            stream TEXT NOT NULL,
            ts_ms INTEGER NOT NULL,
            ingest_ms INTEGER NOT NULL,
            message TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS log_events_by_stream ON log_events (group_name, stream, id);
        DROP INDEX IF EXISTS log_events_by_time;
        DROP INDEX IF EXISTS usage_by_function;",
    )?;
    // Added after the first release: a group's retention (NULL = the server default).
    let has_retention: bool = conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM pragma_table_info('log_groups') WHERE name = 'retention_days')",
        [],
        |r| r.get(0),
    )?;
    if !has_retention {
        conn.execute_batch("ALTER TABLE log_groups ADD COLUMN retention_days INTEGER")?;
    }
    // Added later: a record's revision, bumped by every write (compare-and-set).
    let has_revision: bool = conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM pragma_table_info('records') WHERE name = 'revision')",
        [],
        |r| r.get(0),
    )?;
    if !has_revision {
        conn.execute_batch("ALTER TABLE records ADD COLUMN revision INTEGER NOT NULL DEFAULT 1")?;
    }
    // The store-wide revision counter (above every revision ever given).
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS store_meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
         INSERT OR IGNORE INTO store_meta (k, v)
           VALUES ('revision', (SELECT COALESCE(MAX(revision), 0) FROM records));",
    )?;
    Ok(())
}
