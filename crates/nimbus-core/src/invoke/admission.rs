//! Admission: whether an invocation may run now, and where. Account and reserved concurrency
//! are checked under one lock with the pools of each function version's environments (warm,
//! provisioned, starting); a slot is a warm environment popped (LIFO) or a cold start to make,
//! and releasing it returns the environment to its pool.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use nimbus_exec::{EnvConfig, Environment};

use super::InvokeService;
use crate::error::{CoreError, Result};
use crate::model::FunctionRecord;

#[derive(Default)]
pub(crate) struct Pool {
    pub(super) revision: String,
    pub(super) config: Option<Arc<EnvConfig>>,
    pub(super) idle: Vec<Arc<Environment>>,
    pub(super) inflight: usize,
    /// Provisioned-concurrency environments: their ids, the idle ones, and starts under way.
    pub(crate) provisioned: std::collections::HashSet<String>,
    pub(crate) provisioned_idle: Vec<Arc<Environment>>,
    pub(crate) provisioning: usize,
}

#[derive(Default)]
pub(crate) struct Pools {
    pub(crate) by_function: HashMap<String, Pool>,
    pub(super) inflight: usize,
    /// In-flight invocations of functions without reserved concurrency.
    pub(super) unreserved_inflight: usize,
    /// In-flight invocations per function (all versions).
    pub(super) per_function: HashMap<String, usize>,
    pub(crate) every: Vec<Weak<Environment>>,
    pub(crate) shutting_down: bool,
}

pub(super) enum Slot {
    Warm(Arc<Environment>),
    Cold(Arc<EnvConfig>),
}

/// Environments are per version: pools are keyed `<function>:<version>`.
pub(super) fn pool_key(rec: &FunctionRecord) -> String {
    format!("{}:{}", rec.name, rec.version)
}

impl InvokeService {
    pub(super) fn throttle(reason: &'static str) -> CoreError {
        CoreError::TooManyRequests {
            message: "Rate Exceeded.".into(),
            reason,
        }
    }

    /// Takes a concurrency slot: a function with reserved concurrency draws only on its
    /// reservation; every other function shares what the reservations leave of the account
    /// limit. Returns the slot and whether it counts against the unreserved pool.
    pub(super) fn acquire(&self, rec: &FunctionRecord) -> Result<(Slot, bool)> {
        let reserved_total = self.functions.reserved_total() as usize;
        let mut p = self.lock();
        if p.shutting_down {
            return Err(CoreError::Internal("the server is shutting down".into()));
        }
        // Reserved concurrency belongs to the function (all versions), so it is read from the
        // current record and counted across the function's pools.
        let reserved = self
            .functions
            .get(&rec.name)
            .and_then(|r| r.reserved_concurrency);
        let unreserved = reserved.is_none();
        if unreserved
            && p.unreserved_inflight
                >= self
                    .settings
                    .account_concurrency
                    .saturating_sub(reserved_total)
        {
            return Err(Self::throttle("ConcurrentInvocationLimitExceeded"));
        }
        let function_inflight = p.per_function.get(&rec.name).copied().unwrap_or(0);
        let pool = p.by_function.entry(pool_key(rec)).or_default();
        let mut retired = Vec::new();
        if pool.revision != rec.revision_id || pool.config.is_none() {
            retired = std::mem::take(&mut pool.idle);
            pool.revision = rec.revision_id.clone();
            pool.config = None;
        }
        if let Some(r) = reserved
            && function_inflight >= r as usize
        {
            return Err(Self::throttle(
                "ReservedFunctionConcurrentInvocationLimitExceeded",
            ));
        }
        let config = match &pool.config {
            Some(c) => c.clone(),
            None => {
                let c = self.env_config(rec)?;
                pool.config = Some(c.clone());
                c
            }
        };
        let mut slot = Slot::Cold(config);
        // Provisioned environments first, then on-demand warm ones.
        while let Some(env) = pool.provisioned_idle.pop() {
            if env.is_alive() {
                slot = Slot::Warm(env);
                break;
            }
            pool.provisioned.remove(env.id());
        }
        if matches!(slot, Slot::Cold(_)) {
            while let Some(env) = pool.idle.pop() {
                if env.is_alive() {
                    slot = Slot::Warm(env);
                    break;
                }
            }
        }
        pool.inflight += 1;
        p.inflight += 1;
        *p.per_function.entry(rec.name.clone()).or_default() += 1;
        if unreserved {
            p.unreserved_inflight += 1;
        }
        // Counted under the pools' lock, where shutdown sets `shutting_down`: shutdown either
        // refuses this invocation or waits for it.
        self.inflight
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        drop(p);
        for e in retired {
            e.shutdown();
        }
        Ok((slot, unreserved))
    }

    pub(super) fn release(
        &self,
        name: &str,
        revision: &str,
        env: Option<Arc<Environment>>,
        unreserved: bool,
    ) {
        let mut p = self.lock();
        p.inflight = p.inflight.saturating_sub(1);
        if unreserved {
            p.unreserved_inflight = p.unreserved_inflight.saturating_sub(1);
        }
        let function = name.split_once(':').map(|(f, _)| f).unwrap_or(name);
        if let Some(n) = p.per_function.get_mut(function) {
            *n = n.saturating_sub(1);
        }
        let shutting_down = p.shutting_down;
        let mut retire = None;
        match p.by_function.get_mut(name) {
            Some(pool) => {
                pool.inflight = pool.inflight.saturating_sub(1);
                if let Some(env) = env {
                    if pool.provisioned.contains(env.id()) {
                        if env.is_alive() && !shutting_down {
                            pool.provisioned_idle.push(env);
                        } else {
                            pool.provisioned.remove(env.id());
                            retire = Some(env);
                        }
                    } else if env.is_alive() && pool.revision == revision && !shutting_down {
                        pool.idle.push(env);
                    } else {
                        retire = Some(env);
                    }
                }
            }
            None => retire = env,
        }
        drop(p);
        if let Some(e) = retire {
            e.shutdown();
        }
    }
}
