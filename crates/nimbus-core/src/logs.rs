//! Function logs: the sink environments write to, and the queries CloudWatch Logs' read API
//! needs. Lines are appended through the store's group commit, so they are readable within a
//! millisecond or two of being printed, while the invocation is still running.

use nimbus_exec::{LogLine, LogSink};
use nimbus_store::{LogEventRow, LogQuery, LogStreamRow, Store, StoredLogEvent, WriteOp};

use crate::error::Result;

pub struct LogService {
    store: Store,
}

impl LogService {
    pub fn new(store: Store) -> LogService {
        LogService { store }
    }

    pub fn groups(&self, prefix: Option<&str>) -> Result<Vec<(String, i64, i64)>> {
        Ok(self.store.log_groups(prefix)?)
    }

    pub fn group_exists(&self, group: &str) -> Result<bool> {
        Ok(self.store.log_group_exists(group)?)
    }

    pub fn streams(&self, group: &str) -> Result<Vec<LogStreamRow>> {
        Ok(self.store.log_streams(group)?)
    }

    pub fn events(&self, q: &LogQuery<'_>) -> Result<Vec<StoredLogEvent>> {
        Ok(self.store.log_events(q)?)
    }
}

impl LogSink for LogService {
    fn write(&self, group: &str, stream: &str, lines: Vec<LogLine>) {
        let ops = lines
            .into_iter()
            .map(|l| {
                WriteOp::Log(LogEventRow {
                    group: group.to_string(),
                    stream: stream.to_string(),
                    ts_ms: l.ts_ms,
                    message: l.message,
                })
            })
            .collect();
        self.store.write_background(ops);
    }
}
