//! A map of typed records kept in memory and written through to the store: the shape shared by
//! the control-plane objects that are one JSON record each (APIs, URL configs, event invoke
//! configs, provisioned-concurrency configs). Writes are acknowledged once committed.
//!
//! A read-modify-write holds the map's edit lock ([`RecordMap::edit`]) from the read to the
//! committed write, so concurrent edits of one record are applied one after another and none
//! is lost.

use std::collections::BTreeMap;
use std::sync::RwLock;

use nimbus_store::{Store, WriteOp};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{CoreError, Result};

/// Records of one kind, by key, kept in memory and written through to the store.
pub struct RecordMap<T> {
    store: Store,
    kind: &'static str,
    map: RwLock<BTreeMap<String, T>>,
    edit: tokio::sync::Mutex<()>,
}

impl<T: Clone + Serialize + DeserializeOwned> RecordMap<T> {
    /// Loads every record of `kind`; unreadable ones are logged and skipped.
    pub fn open(store: Store, kind: &'static str) -> Result<RecordMap<T>> {
        let mut map = BTreeMap::new();
        for (k, body) in store.records(kind)? {
            match serde_json::from_str::<T>(&body) {
                Ok(v) => {
                    map.insert(k, v);
                }
                Err(e) => tracing::error!(kind, key = %k, error = %e, "unreadable record skipped"),
            }
        }
        Ok(RecordMap {
            store,
            kind,
            map: RwLock::new(map),
            edit: tokio::sync::Mutex::new(()),
        })
    }

    /// The edit lock: hold it across a read-modify-write of a record.
    pub async fn edit(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.edit.lock().await
    }

    /// A clone of the value under `key`.
    pub fn get(&self, key: &str) -> Option<T> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    /// A part of one value, read in place (no clone of the whole value).
    pub fn read<R>(&self, key: &str, f: impl FnOnce(&T) -> R) -> Option<R> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .map(f)
    }

    /// Whether a value is stored under `key`.
    pub fn contains(&self, key: &str) -> bool {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(key)
    }

    /// Every value, in key order.
    pub fn values(&self) -> Vec<T> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Every key.
    pub fn keys(&self) -> Vec<String> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// The first value matching `f`.
    pub fn find(&self, f: impl Fn(&T) -> bool) -> Option<T> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .find(|v| f(v))
            .cloned()
    }

    /// Stores a value; returns once it is committed.
    pub async fn put(&self, key: String, value: T) -> Result<T> {
        let body = serde_json::to_string(&value)
            .map_err(|e| CoreError::Internal(format!("encoding a {} record: {e}", self.kind)))?;
        self.store
            .write_async(vec![WriteOp::PutRecord {
                kind: self.kind.into(),
                key: key.clone(),
                body,
            }])
            .await?;
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, value.clone());
        Ok(value)
    }

    /// Removes every record whose key starts with `prefix`.
    pub async fn remove_prefixed(&self, prefix: &str) -> Result<()> {
        for key in self.keys().into_iter().filter(|k| k.starts_with(prefix)) {
            self.remove(&key).await?;
        }
        Ok(())
    }

    /// Removes the records whose key `keep` refuses.
    pub async fn retain(&self, keep: impl Fn(&str) -> bool) -> Result<()> {
        for key in self.keys().into_iter().filter(|k| !keep(k)) {
            self.remove(&key).await?;
        }
        Ok(())
    }

    /// Removes a value; returns once the removal is committed.
    pub async fn remove(&self, key: &str) -> Result<()> {
        self.store
            .write_async(vec![WriteOp::DeleteRecord {
                kind: self.kind.into(),
                key: key.to_string(),
            }])
            .await?;
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        Ok(())
    }

    /// Removes every value whose key starts with `prefix` (written in the background).
    pub fn remove_prefix(&self, prefix: &str) {
        self.store
            .write_background(vec![WriteOp::DeleteRecordPrefix {
                kind: self.kind.into(),
                prefix: prefix.to_string(),
            }]);
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| !k.starts_with(prefix));
    }
}
