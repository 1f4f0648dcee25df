//! Versions and aliases. A published version is an immutable snapshot of `$LATEST` (code and
//! configuration) numbered from 1, never reused; an alias names a version (or `$LATEST`) and may
//! send a share of invocations to one additional version (weighted canary routing). Both are
//! records (kinds `function-version` and `alias`) kept in memory beside the functions.

use std::collections::BTreeMap;
use std::sync::Arc;

use nimbus_store::{Store, WriteOp};

use crate::error::{CoreError, Result};
use crate::functions::FunctionService;
use crate::model::{AliasRecord, FunctionRecord, FunctionState, Page, UpdateStatus};
use crate::names::FunctionRef;

const VERSION_KIND: &str = "function-version";
const ALIAS_KIND: &str = "alias";

type Versions = BTreeMap<String, BTreeMap<u32, Arc<FunctionRecord>>>;
type Aliases = BTreeMap<String, BTreeMap<String, Arc<AliasRecord>>>;

fn version_key(function: &str, n: u32) -> String {
    format!("{function}:{n:010}")
}

fn alias_key(function: &str, alias: &str) -> String {
    format!("{function}:{alias}")
}

/// Loads every stored version and alias.
pub(crate) fn load(store: &Store) -> Result<(Versions, Aliases)> {
    let mut versions: Versions = BTreeMap::new();
    for (k, body) in store.records(VERSION_KIND)? {
        match serde_json::from_str::<FunctionRecord>(&body) {
            Ok(r) => {
                if let Ok(n) = r.version.parse::<u32>() {
                    versions
                        .entry(r.name.clone())
                        .or_default()
                        .insert(n, Arc::new(r));
                }
            }
            Err(e) => tracing::error!(key = %k, error = %e, "unreadable version skipped"),
        }
    }
    let mut aliases: Aliases = BTreeMap::new();
    for (k, body) in store.records(ALIAS_KIND)? {
        match serde_json::from_str::<AliasRecord>(&body) {
            Ok(a) => {
                aliases
                    .entry(a.function.clone())
                    .or_default()
                    .insert(a.name.clone(), Arc::new(a));
            }
            Err(e) => tracing::error!(key = %k, error = %e, "unreadable alias skipped"),
        }
    }
    Ok((versions, aliases))
}

/// What makes two snapshots the same function (publishing an unchanged `$LATEST` returns the
/// existing version). A version's own description is not part of it.
fn fingerprint(r: &FunctionRecord) -> serde_json::Value {
    serde_json::json!([
        r.code_sha256,
        r.runtime,
        r.role,
        r.handler,
        r.timeout,
        r.memory_size,
        r.environment,
        r.architectures,
        r.ephemeral_storage,
        r.tracing_mode,
        r.logging,
        r.dead_letter_target,
    ])
}

/// Alias names: 1–128 of `[a-zA-Z0-9-_]`, not all digits (that would read as a version).
fn check_alias_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !name.bytes().all(|b| b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(CoreError::Validation(format!(
            "1 validation error detected: Value '{name}' at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)"
        )))
    }
}

/// An alias change (all optional on update).
#[derive(Debug, Clone, Default)]
pub struct AliasInput {
    /// The alias name: required on create (1–128 of `[A-Za-z0-9_-]`, not all digits); ignored on
    /// update, which names the alias itself.
    pub name: Option<String>,
    /// `FunctionVersion`: `$LATEST` or a published version; required on create.
    pub function_version: Option<String>,
    /// `Description`.
    pub description: Option<String>,
    /// `RoutingConfig.AdditionalVersionWeights`: at most one other published version and its share,
    /// 0–1.
    pub weights: Option<BTreeMap<String, f64>>,
    /// `RevisionId`: on update, the change applies only if it is still the alias's current one.
    pub revision_id: Option<String>,
}

impl FunctionService {
    /// A published version or an alias's primary version, by qualifier.
    pub(crate) fn qualified(&self, function: &str, qualifier: &str) -> Option<Arc<FunctionRecord>> {
        if let Ok(n) = qualifier.parse::<u32>() {
            return self
                .versions
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(function)?
                .get(&n)
                .cloned();
        }
        let alias = self.alias(function, qualifier)?;
        self.version_record(function, &alias.function_version)
    }

    fn version_record(&self, function: &str, version: &str) -> Option<Arc<FunctionRecord>> {
        if version == "$LATEST" {
            return self.get(function);
        }
        let n = version.parse::<u32>().ok()?;
        self.versions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(function)?
            .get(&n)
            .cloned()
    }

    /// An alias of a function, by name.
    pub fn alias(&self, function: &str, name: &str) -> Option<Arc<AliasRecord>> {
        self.aliases
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(function)?
            .get(name)
            .cloned()
    }

    /// The record an invocation runs: for an alias, its version or (by weight) its additional
    /// version.
    pub fn resolve_for_invoke(&self, r: &FunctionRef) -> Result<Arc<FunctionRecord>> {
        let rec = self.resolve(&FunctionRef {
            qualifier: None,
            ..r.clone()
        })?;
        let Some(q) = r.qualifier.as_deref().filter(|q| *q != "$LATEST") else {
            return Ok(rec);
        };
        if q.parse::<u32>().is_ok() {
            return self.resolve(r);
        }
        let alias = self
            .alias(&rec.name, q)
            .ok_or_else(|| self.not_found(&rec.name, Some(q)))?;
        let mut version = alias.function_version.clone();
        if let Some((v, w)) = alias.additional_weights.iter().next()
            && rand_unit() < *w
        {
            version = v.clone();
        }
        self.version_record(&rec.name, &version)
            .ok_or_else(|| self.not_found(&rec.name, Some(&version)))
    }

    async fn put(&self, kind: &str, key: String, body: String) -> Result<()> {
        self.store_handle()
            .write_async(vec![WriteOp::PutRecord {
                kind: kind.into(),
                key,
                body,
            }])
            .await
            .map_err(CoreError::from)
    }

    /// PublishVersion.
    pub async fn publish_version(
        &self,
        r: &FunctionRef,
        code_sha256: Option<String>,
        description: Option<String>,
        revision_id: Option<String>,
    ) -> Result<Arc<FunctionRecord>> {
        if r.qualifier.is_some() {
            return Err(CoreError::InvalidParameter(
                "Unqualified function name is required for PublishVersion.".into(),
            ));
        }
        let latest = self.resolve(r)?;
        self.settled(&latest.name).await?;
        let _guard = self.write_lock.lock().await;
        let latest = self.resolve(r)?;
        if let Some(rev) = &revision_id
            && rev != &latest.revision_id
        {
            return Err(CoreError::PreconditionFailed(
                "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id".into(),
            ));
        }
        if let Some(sha) = &code_sha256
            && sha != &latest.code_sha256
        {
            return Err(CoreError::InvalidParameter(format!(
                "CodeSha256 ({sha}) is different from current CodeSha256 in $LATEST ({}). Please try again with the current CodeSha256.",
                latest.code_sha256
            )));
        }
        if latest.state != FunctionState::Active
            || latest.last_update_status != UpdateStatus::Successful
        {
            return Err(CoreError::Conflict(
                "The operation cannot be performed at this time. An update is in progress for resource: ".to_string()
                    + &self.arn(&latest.name),
            ));
        }
        // An unchanged $LATEST: the newest version stands.
        if let Some(newest) = self
            .versions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&latest.name)
            .and_then(|v| v.values().next_back().cloned())
            && fingerprint(&newest) == fingerprint(&latest)
        {
            return Ok(newest);
        }
        let n = latest.last_published + 1;
        let mut snapshot = (*latest).clone();
        snapshot.version = n.to_string();
        snapshot.revision_id = uuid::Uuid::new_v4().to_string();
        snapshot.reserved_concurrency = None;
        if let Some(d) = description {
            snapshot.description = d;
        }
        let body = serde_json::to_string(&snapshot)
            .map_err(|e| CoreError::Internal(format!("encoding a version: {e}")))?;
        self.put(VERSION_KIND, version_key(&latest.name, n), body)
            .await?;
        let mut bumped = (*latest).clone();
        bumped.last_published = n;
        self.persist(bumped).await?;
        let snapshot = Arc::new(snapshot);
        self.versions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(latest.name.clone())
            .or_default()
            .insert(n, snapshot.clone());
        Ok(snapshot)
    }

    /// ListVersionsByFunction: `$LATEST`, then the versions in order.
    pub fn list_versions(
        &self,
        r: &FunctionRef,
        marker: Option<&str>,
        max_items: Option<i64>,
    ) -> Result<Page<Arc<FunctionRecord>>> {
        let latest = self.resolve(&FunctionRef {
            qualifier: None,
            ..r.clone()
        })?;
        let mut all = vec![latest.clone()];
        if let Some(v) = self
            .versions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&latest.name)
        {
            all.extend(v.values().cloned());
        }
        page(all, marker, max_items, |r| r.version.clone())
    }

    /// DeleteFunction with a version qualifier.
    pub async fn delete_version(&self, function: &str, qualifier: &str) -> Result<()> {
        let Ok(n) = qualifier.parse::<u32>() else {
            return Err(CoreError::InvalidParameter(format!(
                "Deletion of aliases is not supported by DeleteFunction: use DeleteAlias for '{qualifier}'."
            )));
        };
        let _guard = self.write_lock.lock().await;
        if self.version_record(function, qualifier).is_none() {
            return Err(self.not_found(function, Some(qualifier)));
        }
        let users: Vec<String> = self
            .aliases
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(function)
            .map(|m| {
                m.values()
                    .filter(|a| {
                        a.function_version == qualifier
                            || a.additional_weights.contains_key(qualifier)
                    })
                    .map(|a| a.name.clone())
                    .collect()
            })
            .unwrap_or_default();
        if !users.is_empty() {
            return Err(CoreError::Conflict(format!(
                "Unable to delete version because the following aliases reference it: [{}]",
                users.join(", ")
            )));
        }
        self.store_handle()
            .write_async(vec![WriteOp::DeleteRecord {
                kind: VERSION_KIND.into(),
                key: version_key(function, n),
            }])
            .await?;
        if let Some(v) = self
            .versions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(function)
        {
            v.remove(&n);
        }
        Ok(())
    }

    /// Removes a deleted function's versions and aliases.
    pub(crate) fn forget_versions(&self, function: &str) {
        let prefix = format!("{function}:");
        self.store_handle().write_background(vec![
            WriteOp::DeleteRecordPrefix {
                kind: VERSION_KIND.into(),
                prefix: prefix.clone(),
            },
            WriteOp::DeleteRecordPrefix {
                kind: ALIAS_KIND.into(),
                prefix,
            },
        ]);
        self.versions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(function);
        self.aliases
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(function);
    }

    fn alias_arn(&self, function: &str, alias: &str) -> String {
        format!("{}:{alias}", self.arn(function))
    }

    /// Checks an alias's target and routing: versions that exist; routing only between two
    /// published versions, one additional version, weights in [0, 1].
    fn check_alias_target(
        &self,
        function: &str,
        version: &str,
        weights: &BTreeMap<String, f64>,
    ) -> Result<()> {
        if version != "$LATEST" && version.parse::<u32>().is_err() {
            return Err(CoreError::Validation(format!(
                "1 validation error detected: Value '{version}' at 'functionVersion' failed to satisfy constraint: Member must satisfy regular expression pattern: (\\$LATEST|[0-9]+)"
            )));
        }
        if self.version_record(function, version).is_none() {
            return Err(self.not_found(function, Some(version)));
        }
        if weights.len() > 1 {
            return Err(CoreError::InvalidParameter(
                "Number of items in AdditionalVersionWeights cannot be greater than 1".into(),
            ));
        }
        for (v, w) in weights {
            if !(0.0..=1.0).contains(w) {
                return Err(CoreError::Validation(format!(
                    "1 validation error detected: Value '{w}' at 'routingConfig.additionalVersionWeights' failed to satisfy constraint: Map value must satisfy constraint: [Member must have value less than or equal to 1.0, Member must have value greater than or equal to 0.0]"
                )));
            }
            if version == "$LATEST" || v == "$LATEST" {
                return Err(CoreError::InvalidParameter(
                    "$LATEST is not supported for an alias pointing to more than 1 version".into(),
                ));
            }
            if v == version {
                return Err(CoreError::InvalidParameter(format!(
                    "Invalid function version {v}. Function version {v} is already included in routing configuration."
                )));
            }
            if self.version_record(function, v).is_none() {
                return Err(self.not_found(function, Some(v)));
            }
        }
        Ok(())
    }

    async fn save_alias(&self, a: AliasRecord) -> Result<Arc<AliasRecord>> {
        let body = serde_json::to_string(&a)
            .map_err(|e| CoreError::Internal(format!("encoding an alias: {e}")))?;
        self.put(ALIAS_KIND, alias_key(&a.function, &a.name), body)
            .await?;
        let a = Arc::new(a);
        self.aliases
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(a.function.clone())
            .or_default()
            .insert(a.name.clone(), a.clone());
        Ok(a)
    }

    /// CreateAlias.
    pub async fn create_alias(
        &self,
        r: &FunctionRef,
        input: AliasInput,
    ) -> Result<Arc<AliasRecord>> {
        let function = self
            .resolve(&FunctionRef {
                qualifier: None,
                ..r.clone()
            })?
            .name
            .clone();
        let name = input.name.clone().ok_or_else(|| {
            CoreError::Validation("1 validation error detected: Value null at 'name' failed to satisfy constraint: Member must not be null".into())
        })?;
        check_alias_name(&name)?;
        let version = input.function_version.clone().ok_or_else(|| {
            CoreError::Validation("1 validation error detected: Value null at 'functionVersion' failed to satisfy constraint: Member must not be null".into())
        })?;
        let weights = input.weights.clone().unwrap_or_default();
        let _guard = self.write_lock.lock().await;
        self.check_alias_target(&function, &version, &weights)?;
        if self.alias(&function, &name).is_some() {
            return Err(CoreError::Conflict(format!(
                "Alias already exists: {}",
                self.alias_arn(&function, &name)
            )));
        }
        self.save_alias(AliasRecord {
            function,
            name,
            function_version: version,
            description: input.description.unwrap_or_default(),
            additional_weights: weights,
            revision_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
    }

    fn alias_not_found(&self, function: &str, name: &str) -> CoreError {
        CoreError::NotFound(format!(
            "Cannot find alias arn: {}",
            self.alias_arn(function, name)
        ))
    }

    /// GetAlias (`NotFound` when the function has no such alias).
    pub fn get_alias(&self, r: &FunctionRef, name: &str) -> Result<Arc<AliasRecord>> {
        let function = self
            .resolve(&FunctionRef {
                qualifier: None,
                ..r.clone()
            })?
            .name
            .clone();
        self.alias(&function, name)
            .ok_or_else(|| self.alias_not_found(&function, name))
    }

    /// UpdateAlias.
    pub async fn update_alias(
        &self,
        r: &FunctionRef,
        name: &str,
        input: AliasInput,
    ) -> Result<Arc<AliasRecord>> {
        let function = self
            .resolve(&FunctionRef {
                qualifier: None,
                ..r.clone()
            })?
            .name
            .clone();
        let _guard = self.write_lock.lock().await;
        let current = self
            .alias(&function, name)
            .ok_or_else(|| self.alias_not_found(&function, name))?;
        if let Some(rev) = &input.revision_id
            && rev != &current.revision_id
        {
            return Err(CoreError::PreconditionFailed(
                "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id".into(),
            ));
        }
        let mut next = (*current).clone();
        if let Some(v) = input.function_version {
            next.function_version = v;
        }
        if let Some(d) = input.description {
            next.description = d;
        }
        if let Some(w) = input.weights {
            next.additional_weights = w;
        }
        self.check_alias_target(&function, &next.function_version, &next.additional_weights)?;
        next.revision_id = uuid::Uuid::new_v4().to_string();
        self.save_alias(next).await
    }

    /// DeleteAlias.
    pub async fn delete_alias(&self, r: &FunctionRef, name: &str) -> Result<()> {
        let function = self
            .resolve(&FunctionRef {
                qualifier: None,
                ..r.clone()
            })?
            .name
            .clone();
        let _guard = self.write_lock.lock().await;
        if self.alias(&function, name).is_none() {
            return Err(self.alias_not_found(&function, name));
        }
        self.store_handle()
            .write_async(vec![WriteOp::DeleteRecord {
                kind: ALIAS_KIND.into(),
                key: alias_key(&function, name),
            }])
            .await?;
        if let Some(m) = self
            .aliases
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&function)
        {
            m.remove(name);
        }
        Ok(())
    }

    /// ListAliases, optionally only those pointing at `version`.
    pub fn list_aliases(
        &self,
        r: &FunctionRef,
        version: Option<&str>,
        marker: Option<&str>,
        max_items: Option<i64>,
    ) -> Result<Page<Arc<AliasRecord>>> {
        let function = self
            .resolve(&FunctionRef {
                qualifier: None,
                ..r.clone()
            })?
            .name
            .clone();
        let all: Vec<Arc<AliasRecord>> = self
            .aliases
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&function)
            .map(|m| {
                m.values()
                    .filter(|a| version.is_none_or(|v| a.function_version == v))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        page(all, marker, max_items, |a| a.name.clone())
    }

    /// The alias's ARN: the function ARN with `:{alias}`.
    pub fn alias_arn_of(&self, a: &AliasRecord) -> String {
        self.alias_arn(&a.function, &a.name)
    }
}

/// A page of up to `max_items` (default and at most 50) after `marker` (the last key returned).
fn page<T>(
    all: Vec<T>,
    marker: Option<&str>,
    max_items: Option<i64>,
    key: impl Fn(&T) -> String,
) -> Result<Page<T>> {
    let max = match max_items {
        None => 50,
        Some(m) if (1..=10_000).contains(&m) => m.min(50) as usize,
        Some(m) => {
            return Err(CoreError::Validation(format!(
                "1 validation error detected: Value '{m}' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and 10000"
            )));
        }
    };
    let start = match marker {
        None => 0,
        Some(m) => all
            .iter()
            .position(|x| key(x) == m)
            .map(|i| i + 1)
            .ok_or_else(|| CoreError::InvalidParameter(format!("Invalid marker: {m}")))?,
    };
    let rest: Vec<T> = all.into_iter().skip(start).collect();
    let more = rest.len() > max;
    let items: Vec<T> = rest.into_iter().take(max).collect();
    let next_marker = if more { items.last().map(&key) } else { None };
    Ok(Page { items, next_marker })
}

/// A uniform number in [0, 1) for weighted routing.
fn rand_unit() -> f64 {
    let b = *uuid::Uuid::new_v4().as_bytes();
    let x = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) >> 11;
    x as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_names_follow_aws_rules() {
        assert!(check_alias_name("live").is_ok());
        assert!(check_alias_name("blue-green_2").is_ok());
        assert!(
            check_alias_name("123").is_err(),
            "all digits reads as a version"
        );
        assert!(check_alias_name("").is_err());
        assert!(check_alias_name("a:b").is_err());
    }

    #[test]
    fn routing_draws_are_uniform_enough() {
        let n = 20_000;
        let below = (0..n).filter(|_| rand_unit() < 0.25).count();
        let share = below as f64 / n as f64;
        assert!((0.22..0.28).contains(&share), "{share}");
    }

    #[test]
    fn pages_continue_after_the_marker() -> Result<()> {
        let p = page((1..=5).collect::<Vec<u32>>(), None, Some(2), |x| {
            x.to_string()
        })?;
        assert_eq!((p.items, p.next_marker.as_deref()), (vec![1, 2], Some("2")));
        let p = page((1..=5).collect::<Vec<u32>>(), Some("4"), Some(2), |x| {
            x.to_string()
        })?;
        assert_eq!((p.items, p.next_marker), (vec![5], None));
        Ok(())
    }
}
