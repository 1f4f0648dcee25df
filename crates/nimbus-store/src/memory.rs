//! The in-memory backend: everything the SQLite backend keeps, kept in maps behind one lock,
//! with the same semantics (a batch applies whole or not at all, revisions, compare-and-set,
//! change notification, log queries), for unit tests that need a store and no disk. Nothing
//! survives the process; every commit counts as durable.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::writer::changes;
use crate::{
    Backend, Change, Commit, LogGroupRow, LogQuery, LogStreamRow, Record, Result, StoreError,
    StoredLogEvent, UsageRow, UsageSummary, WriteOp,
};

#[derive(Default)]
struct Group {
    created_ms: i64,
    retention_days: Option<u32>,
    streams: BTreeMap<String, LogStreamRow>,
}

#[derive(Default)]
struct State {
    /// (kind, key) → (body, revision).
    records: BTreeMap<(String, String), (String, u64)>,
    groups: BTreeMap<String, Group>,
    events: Vec<StoredLogEvent>,
    next_event: i64,
    /// The last revision given (store-wide).
    next_revision: u64,
    usage: Vec<UsageRow>,
}

/// The in-memory backend.
pub struct MemoryStore {
    state: Mutex<State>,
    commits: AtomicU64,
    changes: tokio::sync::broadcast::Sender<Change>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore {
            state: Mutex::new(State::default()),
            commits: AtomicU64::new(0),
            changes: tokio::sync::broadcast::channel(1024).0,
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl State {
    /// Checks a batch's preconditions in order, as the SQLite backend does (a precondition sees
    /// the batch's own earlier writes), on a copy of the records: nothing is changed.
    fn check(&self, ops: &[WriteOp]) -> Result<()> {
        if !ops
            .iter()
            .any(|op| matches!(op, WriteOp::ExpectRevision { .. }))
        {
            return Ok(());
        }
        let mut records = self.records.clone();
        let mut next = self.next_revision;
        for op in ops {
            match op {
                WriteOp::PutRecord { kind, key, body } => {
                    next += 1;
                    records.insert((kind.clone(), key.clone()), (body.clone(), next));
                }
                WriteOp::DeleteRecord { kind, key } => {
                    records.remove(&(kind.clone(), key.clone()));
                }
                WriteOp::DeleteRecordPrefix { kind, prefix } => {
                    records.retain(|(k, key), _| !(k == kind && key.starts_with(prefix.as_str())));
                }
                WriteOp::ExpectRevision {
                    kind,
                    key,
                    revision,
                } => {
                    let current = records.get(&(kind.clone(), key.clone())).map(|(_, r)| *r);
                    if current != *revision {
                        return Err(StoreError::Conflict(format!(
                            "{kind}/{key} is at revision {current:?}, not {revision:?}"
                        )));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn apply(&mut self, ops: Vec<WriteOp>) {
        let ingest = now_ms();
        for op in ops {
            match op {
                WriteOp::PutRecord { kind, key, body } => {
                    // One counter for the whole store, as the SQLite backend keeps it.
                    self.next_revision += 1;
                    self.records.insert((kind, key), (body, self.next_revision));
                }
                WriteOp::ExpectRevision { .. } => {}
                WriteOp::DeleteRecord { kind, key } => {
                    self.records.remove(&(kind, key));
                }
                WriteOp::DeleteRecordPrefix { kind, prefix } => {
                    self.records
                        .retain(|(k, key), _| !(*k == kind && key.starts_with(&prefix)));
                }
                WriteOp::Log(ev) => {
                    self.next_event += 1;
                    let group = self.groups.entry(ev.group.clone()).or_insert(Group {
                        created_ms: ingest,
                        ..Group::default()
                    });
                    let s = group
                        .streams
                        .entry(ev.stream.clone())
                        .or_insert(LogStreamRow {
                            group: ev.group.clone(),
                            name: ev.stream.clone(),
                            created_ms: ingest,
                            first_event_ms: None,
                            last_event_ms: None,
                            last_ingest_ms: None,
                            stored_bytes: 0,
                        });
                    s.first_event_ms = Some(s.first_event_ms.map_or(ev.ts_ms, |f| f.min(ev.ts_ms)));
                    s.last_event_ms = Some(s.last_event_ms.map_or(ev.ts_ms, |l| l.max(ev.ts_ms)));
                    s.last_ingest_ms = Some(ingest);
                    s.stored_bytes += ev.message.len() as i64;
                    self.events.push(StoredLogEvent {
                        id: self.next_event,
                        group: ev.group,
                        stream: ev.stream,
                        ts_ms: ev.ts_ms,
                        ingest_ms: ingest,
                        message: ev.message,
                    });
                }
                WriteOp::Usage(u) => self.usage.push(u),
                WriteOp::DeleteLogGroup(g) => {
                    self.groups.remove(&g);
                    self.events.retain(|e| e.group != g);
                }
                WriteOp::SetLogRetention { group, days } => {
                    if let Some(g) = self.groups.get_mut(&group) {
                        g.retention_days = days;
                    }
                }
                WriteOp::ExpireLogEvents {
                    group,
                    before_ms,
                    limit,
                } => {
                    let mut left = limit;
                    self.events.retain(|e| {
                        let expire = left > 0 && e.group == group && e.ts_ms < before_ms;
                        if expire {
                            left -= 1;
                        }
                        !expire
                    });
                }
                WriteOp::RecountLogBytes(g) => {
                    if let Some(group) = self.groups.get_mut(&g) {
                        for (name, s) in group.streams.iter_mut() {
                            s.stored_bytes = self
                                .events
                                .iter()
                                .filter(|e| e.group == g && e.stream == *name)
                                .map(|e| e.message.len() as i64)
                                .sum();
                        }
                    }
                }
            }
        }
    }
}

impl MemoryStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn apply(&self, ops: Vec<WriteOp>) -> Result<()> {
        let announced: Vec<Change> = if self.changes.receiver_count() > 0 {
            changes(&ops).collect()
        } else {
            Vec::new()
        };
        {
            let mut st = self.lock();
            st.check(&ops)?;
            st.apply(ops);
        }
        self.commits.fetch_add(1, Ordering::Relaxed);
        for c in announced {
            let _ = self.changes.send(c);
        }
        Ok(())
    }
}

impl Backend for MemoryStore {
    fn commit(&self, ops: Vec<WriteOp>, _durable: bool) -> Commit {
        let r = self.apply(ops);
        Box::pin(async move { r })
    }

    fn write(&self, ops: Vec<WriteOp>) -> Result<()> {
        self.apply(ops)
    }

    fn write_background(&self, ops: Vec<WriteOp>) {
        if let Err(e) = self.apply(ops) {
            tracing::error!(error = %e, "background rows refused");
        }
    }

    fn durable_commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    fn records(&self, kind: &str) -> Result<Vec<Record>> {
        Ok(self
            .lock()
            .records
            .iter()
            .filter(|((k, _), _)| k == kind)
            .map(|((_, key), (body, revision))| Record {
                key: key.clone(),
                body: body.clone(),
                revision: *revision,
            })
            .collect())
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    fn log_groups(&self, prefix: Option<&str>) -> Result<Vec<LogGroupRow>> {
        let st = self.lock();
        Ok(st
            .groups
            .iter()
            .filter(|(name, _)| name.starts_with(prefix.unwrap_or("")))
            .map(|(name, g)| LogGroupRow {
                name: name.clone(),
                created_ms: g.created_ms,
                stored_bytes: g.streams.values().map(|s| s.stored_bytes).sum(),
                retention_days: g.retention_days,
            })
            .collect())
    }

    fn log_streams(&self, group: &str) -> Result<Vec<LogStreamRow>> {
        Ok(self
            .lock()
            .groups
            .get(group)
            .map(|g| g.streams.values().cloned().collect())
            .unwrap_or_default())
    }

    fn log_retention(&self) -> Result<Vec<(String, Option<u32>)>> {
        Ok(self
            .lock()
            .groups
            .iter()
            .map(|(n, g)| (n.clone(), g.retention_days))
            .collect())
    }

    fn log_events_before(&self, group: &str, before_ms: i64) -> Result<bool> {
        Ok(self
            .lock()
            .events
            .iter()
            .any(|e| e.group == group && e.ts_ms < before_ms))
    }

    fn log_group_exists(&self, group: &str) -> Result<bool> {
        Ok(self.lock().groups.contains_key(group))
    }

    fn log_events(&self, q: &LogQuery<'_>) -> Result<Vec<StoredLogEvent>> {
        let st = self.lock();
        let keep = |e: &&StoredLogEvent| {
            e.group == q.group
                && q.streams.is_none_or(|s| s.contains(&e.stream))
                && q.stream_prefix.is_none_or(|p| e.stream.starts_with(p))
                && q.start_ms.is_none_or(|s| e.ts_ms >= s)
                && q.end_ms.is_none_or(|t| e.ts_ms <= t)
                && q.after_id.is_none_or(|a| e.id > a)
                && q.before_id.is_none_or(|b| e.id < b)
                && q.contains_all
                    .iter()
                    .all(|t| e.message.contains(t.as_str()))
        };
        let out: Vec<StoredLogEvent> = if q.newest_first {
            st.events
                .iter()
                .rev()
                .filter(keep)
                .take(q.limit)
                .cloned()
                .collect()
        } else {
            st.events
                .iter()
                .filter(keep)
                .take(q.limit)
                .cloned()
                .collect()
        };
        Ok(out)
    }

    fn usage_summary(&self) -> Result<Vec<UsageSummary>> {
        let mut by: BTreeMap<String, (u64, u64, i64)> = BTreeMap::new();
        for u in &self.lock().usage {
            let e = by.entry(u.function.clone()).or_default();
            e.0 += 1;
            e.1 += u.billed_ms as u64;
            e.2 += u.billed_ms * u.memory_mb;
        }
        Ok(by
            .into_iter()
            .map(|(function, (requests, billed_ms, mb_ms))| UsageSummary {
                function,
                requests,
                billed_ms,
                gb_seconds: mb_ms as f64 / 1024.0 / 1000.0,
            })
            .collect())
    }
}
