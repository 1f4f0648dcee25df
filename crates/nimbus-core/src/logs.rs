//! Function logs: the sink environments write to, and the queries CloudWatch Logs' read API
//! needs. Lines are appended through the store's group commit, so they are readable within a
//! millisecond or two of being printed, while the invocation is still running.
//!
//! Each function (log group) has a byte budget that refills at a steady rate: a batch that finds
//! the budget spent waits for it, and its environment reads no more output meanwhile, so a
//! function that floods stdout is slowed down to the rate instead of filling memory and disk.

use nimbus_exec::{LogLine, LogSink};
use nimbus_store::{
    LogEventRow, LogGroupRow, LogQuery, LogStreamRow, Store, StoredLogEvent, WriteOp,
};

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{CoreError, Result};

/// CloudWatch Logs' allowed retention periods, in days.
pub const RETENTION_DAYS: [u32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// Events one retention or deletion commit removes at most.
const EXPIRE_CHUNK: u32 = 5000;

/// Function logs: the [`LogSink`] environments write to (rate-limited per log group), and the
/// reads, retention and deletion CloudWatch Logs' API needs.
pub struct LogService {
    store: Store,
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// A group's byte budget: `level` bytes left as of `at`.
struct Bucket {
    level: f64,
    at: Instant,
}

impl LogService {
    /// A log service on `store`: each log group may store `rate_bytes_per_sec` on average and
    /// `burst_bytes` above it (both at least 1).
    pub fn new(store: Store, rate_bytes_per_sec: u64, burst_bytes: u64) -> LogService {
        LogService {
            store,
            rate: rate_bytes_per_sec.max(1) as f64,
            burst: burst_bytes.max(1) as f64,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `bytes` from the group's budget; returns how long to wait before storing them.
    fn take(&self, group: &str, bytes: u64) -> Duration {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 10_000 {
            // Forget full buckets of idle groups.
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| b.level + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let b = buckets.entry(group.to_string()).or_insert(Bucket {
            level: self.burst,
            at: now,
        });
        b.level = (b.level + now.duration_since(b.at).as_secs_f64() * self.rate).min(self.burst);
        b.at = now;
        b.level -= bytes as f64;
        if b.level >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-b.level / self.rate)
        }
    }

    /// DescribeLogGroups: the groups whose name starts with `prefix` (all for `None`), ordered by
    /// name.
    pub fn groups(&self, prefix: Option<&str>) -> Result<Vec<LogGroupRow>> {
        Ok(self.store.log_groups(prefix)?)
    }

    /// Sets (or removes) a group's retention; `days` must be one of [`RETENTION_DAYS`].
    pub async fn set_retention(&self, group: &str, days: Option<u32>) -> Result<()> {
        if let Some(d) = days
            && !RETENTION_DAYS.contains(&d)
        {
            return Err(CoreError::InvalidParameter(format!(
                "1 validation error detected: Value '{d}' at 'retentionInDays' failed to satisfy constraint: Member must satisfy enum value set: {RETENTION_DAYS:?}"
            )));
        }
        self.store
            .write_async(vec![WriteOp::SetLogRetention {
                group: group.to_string(),
                days,
            }])
            .await?;
        Ok(())
    }

    /// Deletes a group: its events in chunks (other writers run between them), then the rest.
    pub async fn delete_group(&self, group: &str) -> Result<()> {
        let store = self.store.clone();
        let group = group.to_string();
        tokio::task::spawn_blocking(move || {
            store.expire_log_events(&group, i64::MAX, EXPIRE_CHUNK)?;
            store.write(vec![WriteOp::DeleteLogGroup(group)])
        })
        .await
        .map_err(|e| CoreError::Internal(format!("deleting a log group: {e}")))??;
        Ok(())
    }

    /// One retention sweep at `now_ms`: deletes every group's events older than its retention
    /// (its own, or `default_days`). Returns the chunks deleted.
    pub fn sweep(&self, now_ms: i64, default_days: Option<u32>) -> Result<u32> {
        let mut chunks = 0;
        for (group, days) in self.store.log_retention()? {
            let Some(days) = days.or(default_days) else {
                continue;
            };
            let cutoff = now_ms.saturating_sub(i64::from(days) * 86_400_000);
            chunks += self.store.expire_log_events(&group, cutoff, EXPIRE_CHUNK)?;
        }
        Ok(chunks)
    }

    /// Whether a log group exists (it is created by its first event, or by CreateLogGroup).
    pub fn group_exists(&self, group: &str) -> Result<bool> {
        Ok(self.store.log_group_exists(group)?)
    }

    /// DescribeLogStreams: a group's streams, ordered by name (empty if the group does not exist).
    pub fn streams(&self, group: &str) -> Result<Vec<LogStreamRow>> {
        Ok(self.store.log_streams(group)?)
    }

    /// GetLogEvents and FilterLogEvents: the events matching `q`, at most `q.limit`.
    pub fn events(&self, q: &LogQuery<'_>) -> Result<Vec<StoredLogEvent>> {
        Ok(self.store.log_events(q)?)
    }
}

impl LogSink for LogService {
    fn write(
        &self,
        group: &str,
        stream: &str,
        lines: Vec<LogLine>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>> {
        let bytes: u64 = lines.iter().map(|l| l.message.len() as u64 + 26).sum();
        let wait = self.take(group, bytes);
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
        let stored = self.store.write_committed(ops);
        Box::pin(async move {
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            if let Err(e) = stored.await {
                tracing::error!(error = %e, "storing log lines failed");
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(group: &str, ts_ms: i64, message: &str) -> WriteOp {
        WriteOp::Log(LogEventRow {
            group: group.into(),
            stream: "s".into(),
            ts_ms,
            message: message.into(),
        })
    }

    fn messages(store: &Store, group: &str) -> Vec<String> {
        store
            .log_events(&LogQuery {
                group,
                streams: None,
                stream_prefix: None,
                start_ms: None,
                end_ms: None,
                after_id: None,
                before_id: None,
                newest_first: false,
                contains_all: &[],
                limit: 100_000,
            })
            .expect("events")
            .into_iter()
            .map(|e| e.message)
            .collect()
    }

    #[test]
    fn sweeps_delete_only_what_retention_expired() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| CoreError::Internal(e.to_string()))?;
        let store = Store::open(dir.path())?;
        let logs = LogService::new(store.clone(), 1 << 20, 1 << 20);
        let now = 10 * 86_400_000;
        let day = 86_400_000;
        let mut ops = Vec::new();
        for i in 0..12_000 {
            ops.push(event("/aws/lambda/kept", now - 3 * day, "old but kept"));
            ops.push(event("/aws/lambda/short", now - 2 * day - i, "expired"));
        }
        ops.push(event("/aws/lambda/short", now - day / 2, "fresh"));
        ops.push(event(
            "/aws/lambda/default",
            now - 8 * day,
            "past the default",
        ));
        ops.push(event("/aws/lambda/default", now, "within the default"));
        store.write(ops)?;
        store.write(vec![WriteOp::SetLogRetention {
            group: "/aws/lambda/short".into(),
            days: Some(1),
        }])?;
        // 12,000 expired events go in three chunks of at most 5,000.
        assert_eq!(logs.sweep(now, None)?, 3);
        assert_eq!(messages(&store, "/aws/lambda/short"), vec!["fresh"]);
        let short = store.log_groups(Some("/aws/lambda/short"))?;
        assert_eq!(
            short[0].stored_bytes,
            "fresh".len() as i64,
            "stored bytes follow the expiry"
        );
        assert_eq!(messages(&store, "/aws/lambda/kept").len(), 12_000);
        assert_eq!(messages(&store, "/aws/lambda/default").len(), 2);
        logs.sweep(now, Some(7))?;
        assert_eq!(messages(&store, "/aws/lambda/kept").len(), 12_000);
        assert_eq!(
            messages(&store, "/aws/lambda/default"),
            vec!["within the default"]
        );
        Ok(())
    }
}
