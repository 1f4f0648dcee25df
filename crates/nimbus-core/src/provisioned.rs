//! Provisioned concurrency: for a version or alias, that many environments are kept initialised
//! ahead of invocations (`AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency`), used before
//! any on-demand environment and never reaped for idleness. Settings are records (kind
//! `provisioned-concurrency`); the invoke service's reaper tops the environments up every tick.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use nimbus_store::{Store, WriteOp};
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::invoke::InvokeService;
use crate::names::FunctionRef;

const KIND: &str = "provisioned-concurrency";

/// A provisioned-concurrency setting, as stored (`ProvisionedConcurrencyConfig`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProvisionedConfig {
    /// The unqualified function name.
    pub function: String,
    /// A version number or an alias.
    pub qualifier: String,
    /// `RequestedProvisionedConcurrentExecutions`: environments to keep initialised, at least 1, at
    /// most the function's reserved concurrency and the account's unreserved concurrency.
    pub requested: u32,
    /// `LastModified`: ISO 8601 with milliseconds (`2024-01-31T12:00:00.000+0000`).
    pub last_modified: String,
}

/// A configuration with what is allocated right now.
#[derive(Debug, Clone, PartialEq)]
pub struct ProvisionedStatus {
    /// The setting.
    pub config: ProvisionedConfig,
    /// `AllocatedProvisionedConcurrentExecutions` (and `Available…`): environments initialised or
    /// starting now, at most `requested`.
    pub allocated: u32,
}

impl ProvisionedStatus {
    /// `Status`: `READY` once all requested environments are allocated, else `IN_PROGRESS`.
    pub fn status(&self) -> &'static str {
        if self.allocated >= self.config.requested {
            "READY"
        } else {
            "IN_PROGRESS"
        }
    }
}

/// The provisioned-concurrency settings of all functions, keyed `{function}:{qualifier}`, held by
/// the invoke service.
pub struct ProvisionedConfigs {
    store: Store,
    map: RwLock<BTreeMap<String, ProvisionedConfig>>,
}

fn key(function: &str, qualifier: &str) -> String {
    format!("{function}:{qualifier}")
}

impl ProvisionedConfigs {
    /// Loads the stored settings (unreadable records are logged and skipped).
    pub fn open(store: Store) -> Result<ProvisionedConfigs> {
        let mut map = BTreeMap::new();
        for (k, body) in store.records(KIND)? {
            match serde_json::from_str::<ProvisionedConfig>(&body) {
                Ok(c) => {
                    map.insert(k, c);
                }
                Err(e) => {
                    tracing::error!(key = %k, error = %e, "unreadable provisioned concurrency config skipped")
                }
            }
        }
        Ok(ProvisionedConfigs {
            store,
            map: RwLock::new(map),
        })
    }

    fn all(&self) -> Vec<ProvisionedConfig> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

impl InvokeService {
    /// The function and qualifier of a provisioned-concurrency request: a published version or
    /// an alias, never `$LATEST`.
    fn pc_target(&self, r: &FunctionRef) -> Result<(String, String)> {
        let q = match r.qualifier.as_deref() {
            None => {
                return Err(CoreError::Validation(
                    "1 validation error detected: Value null at 'qualifier' failed to satisfy constraint: Member must not be null".into(),
                ));
            }
            Some("$LATEST") => {
                return Err(CoreError::InvalidParameter(
                    "Provisioned Concurrency Configs cannot be applied to unpublished function versions.".into(),
                ));
            }
            Some(q) => q.to_string(),
        };
        let rec = self.functions.resolve(r)?;
        Ok((rec.name.clone(), q))
    }

    fn pc_status(&self, c: &ProvisionedConfig) -> ProvisionedStatus {
        let allocated = self
            .functions
            .resolve(&FunctionRef {
                name: c.function.clone(),
                qualifier: Some(c.qualifier.clone()),
                account: None,
                region: None,
            })
            .ok()
            .map(|rec| {
                let p = self.lock();
                p.by_function
                    .get(&format!("{}:{}", rec.name, rec.version))
                    .map(|pool| {
                        pool.provisioned_idle
                            .iter()
                            .filter(|e| e.is_alive() && e.init_failure().is_none())
                            .count()
                            + pool
                                .provisioned
                                .len()
                                .saturating_sub(pool.provisioned_idle.len())
                    })
                    .unwrap_or(0) as u32
            })
            .unwrap_or(0);
        ProvisionedStatus {
            config: c.clone(),
            allocated: allocated.min(c.requested),
        }
    }

    /// PutProvisionedConcurrencyConfig.
    pub async fn put_provisioned(
        &self,
        r: &FunctionRef,
        requested: i64,
    ) -> Result<ProvisionedStatus> {
        if requested < 1 {
            return Err(CoreError::Validation(format!(
                "1 validation error detected: Value '{requested}' at 'provisionedConcurrentExecutions' failed to satisfy constraint: Member must have value greater than or equal to 1"
            )));
        }
        let (function, qualifier) = self.pc_target(r)?;
        if let Some(reserved) = self
            .functions
            .get(&function)
            .and_then(|f| f.reserved_concurrency)
            && requested as u64 > u64::from(reserved)
        {
            return Err(CoreError::InvalidParameter(format!(
                "Requested Provisioned Concurrency ({requested}) should not be greater than the reserved Concurrency ({reserved}) for function."
            )));
        }
        let limit =
            self.settings.account_concurrency as i64 - self.functions.min_unreserved() as i64;
        if requested > limit {
            return Err(CoreError::InvalidParameter(format!(
                "Requested Provisioned Concurrency ({requested}) exceeds the account's unreserved concurrency available for it ({limit})."
            )));
        }
        let c = ProvisionedConfig {
            function: function.clone(),
            qualifier: qualifier.clone(),
            requested: requested as u32,
            last_modified: chrono::Utc::now()
                .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
                .to_string(),
        };
        let body = serde_json::to_string(&c)
            .map_err(|e| CoreError::Internal(format!("encoding a config: {e}")))?;
        let k = key(&function, &qualifier);
        self.provisioned
            .store
            .write_async(vec![WriteOp::PutRecord {
                kind: KIND.into(),
                key: k.clone(),
                body,
            }])
            .await?;
        self.provisioned
            .map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(k, c.clone());
        self.clone_for_provisioning();
        Ok(self.pc_status(&c))
    }

    fn pc_not_found() -> CoreError {
        CoreError::ProvisionedNotFound(
            "No Provisioned Concurrency Config found for this function".into(),
        )
    }

    /// GetProvisionedConcurrencyConfig: the setting of a version or alias, with what is allocated
    /// now.
    pub fn get_provisioned(&self, r: &FunctionRef) -> Result<ProvisionedStatus> {
        let (function, qualifier) = self.pc_target(r)?;
        let c = self
            .provisioned
            .map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key(&function, &qualifier))
            .cloned()
            .ok_or_else(Self::pc_not_found)?;
        Ok(self.pc_status(&c))
    }

    /// DeleteProvisionedConcurrencyConfig: the environments it kept idle are stopped.
    pub async fn delete_provisioned(&self, r: &FunctionRef) -> Result<()> {
        let (function, qualifier) = self.pc_target(r)?;
        let k = key(&function, &qualifier);
        if !self
            .provisioned
            .map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&k)
        {
            return Err(Self::pc_not_found());
        }
        self.provisioned
            .store
            .write_async(vec![WriteOp::DeleteRecord {
                kind: KIND.into(),
                key: k.clone(),
            }])
            .await?;
        self.provisioned
            .map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&k);
        self.clone_for_provisioning();
        Ok(())
    }

    /// ListProvisionedConcurrencyConfigs: every setting of the function's versions and aliases.
    pub fn list_provisioned(&self, function: &FunctionRef) -> Result<Vec<ProvisionedStatus>> {
        let rec = self.functions.resolve(&FunctionRef {
            qualifier: None,
            ..function.clone()
        })?;
        Ok(self
            .provisioned
            .all()
            .iter()
            .filter(|c| c.function == rec.name)
            .map(|c| self.pc_status(c))
            .collect())
    }

    /// Removes a deleted function's settings.
    pub(crate) fn forget_provisioned(&self, function: &str) {
        let prefix = format!("{function}:");
        self.provisioned
            .store
            .write_background(vec![WriteOp::DeleteRecordPrefix {
                kind: KIND.into(),
                prefix: prefix.clone(),
            }]);
        self.provisioned
            .map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| !k.starts_with(&prefix));
    }

    /// Brings every version's provisioned environments to their target: starts what is missing,
    /// stops idle ones beyond it (a lowered or deleted setting).
    pub(crate) fn clone_for_provisioning(&self) {
        let Some(me) = self.me.get().and_then(std::sync::Weak::upgrade) else {
            return;
        };
        // Targets per pool key (a version may be provisioned through several aliases: the sum).
        let mut targets: BTreeMap<String, (Arc<crate::model::FunctionRecord>, usize)> =
            BTreeMap::new();
        for c in self.provisioned.all() {
            let r = FunctionRef {
                name: c.function.clone(),
                qualifier: Some(c.qualifier.clone()),
                account: None,
                region: None,
            };
            if let Ok(rec) = self.functions.resolve(&r) {
                let k = format!("{}:{}", rec.name, rec.version);
                targets.entry(k).or_insert((rec, 0)).1 += c.requested as usize;
            }
        }
        let mut starts = Vec::new();
        let mut retired = Vec::new();
        {
            let mut p = self.lock();
            if p.shutting_down {
                return;
            }
            let keys: Vec<String> = p.by_function.keys().cloned().collect();
            for k in keys.iter().filter(|k| !targets.contains_key(*k)) {
                if let Some(pool) = p.by_function.get_mut(k) {
                    for e in pool.provisioned_idle.drain(..) {
                        pool.provisioned.remove(e.id());
                        retired.push(e);
                    }
                }
            }
            for (k, (rec, target)) in &targets {
                let pool = p.by_function.entry(k.clone()).or_default();
                // Forget environments that died.
                let dead: Vec<String> = pool
                    .provisioned_idle
                    .iter()
                    .filter(|e| !e.is_alive())
                    .map(|e| e.id().to_string())
                    .collect();
                pool.provisioned_idle.retain(|e| e.is_alive());
                for id in dead {
                    pool.provisioned.remove(&id);
                }
                let have = pool.provisioned.len() + pool.provisioning;
                if have < *target {
                    for _ in have..*target {
                        pool.provisioning += 1;
                        starts.push((k.clone(), rec.clone()));
                    }
                } else {
                    let mut extra = have - *target;
                    while extra > 0 {
                        let Some(e) = pool.provisioned_idle.pop() else {
                            break;
                        };
                        pool.provisioned.remove(e.id());
                        retired.push(e);
                        extra -= 1;
                    }
                }
            }
        }
        for e in retired {
            e.shutdown();
        }
        for (k, rec) in starts {
            let svc = me.clone();
            tokio::spawn(async move { svc.start_provisioned(k, rec).await });
        }
    }

    async fn start_provisioned(
        self: Arc<Self>,
        key: String,
        rec: Arc<crate::model::FunctionRecord>,
    ) {
        let config = match self.env_config(&rec) {
            Ok(c) => {
                let mut c = (*c).clone();
                for (k, v) in c.env.iter_mut() {
                    if k == "AWS_LAMBDA_INITIALIZATION_TYPE" {
                        *v = "provisioned-concurrency".into();
                    }
                }
                Arc::new(c)
            }
            Err(e) => {
                tracing::warn!(function = %rec.name, error = %e, "cannot provision an environment");
                let mut p = self.lock();
                if let Some(pool) = p.by_function.get_mut(&key) {
                    pool.provisioning = pool.provisioning.saturating_sub(1);
                }
                return;
            }
        };
        let sink: Arc<dyn nimbus_exec::LogSink> = self.logs.clone();
        let env = nimbus_exec::Environment::start(config, self.launcher.as_ref(), sink).await;
        let mut p = self.lock();
        p.every.push(Arc::downgrade(&env));
        let shutting_down = p.shutting_down;
        let pool = p.by_function.entry(key).or_default();
        pool.provisioning = pool.provisioning.saturating_sub(1);
        if env.is_alive() && env.init_failure().is_none() && !shutting_down {
            pool.provisioned.insert(env.id().to_string());
            pool.provisioned_idle.push(env);
        } else {
            drop(p);
            env.shutdown();
        }
    }
}
