//! Function URLs: a dedicated HTTP endpoint per function (or alias), reached on the main port by
//! host name `<url-id>.lambda-url.localhost`. Configurations are records (kind `function-url`).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use nimbus_store::{Store, WriteOp};
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::functions::FunctionService;
use crate::names::FunctionRef;

const KIND: &str = "function-url";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UrlConfig {
    pub url_id: String,
    pub function: String,
    /// `$LATEST` or an alias.
    pub qualifier: String,
    pub auth_type: String,
    /// The `Cors` object as given.
    pub cors: Option<serde_json::Value>,
    pub invoke_mode: String,
    pub creation_time: String,
    pub last_modified: String,
}

/// What a Create/Update request carries.
#[derive(Debug, Clone, Default)]
pub struct UrlInput {
    pub auth_type: Option<String>,
    pub cors: Option<serde_json::Value>,
    pub invoke_mode: Option<String>,
}

pub struct FunctionUrls {
    store: Store,
    functions: Arc<FunctionService>,
    /// Keyed `<function>:<qualifier>`.
    map: RwLock<BTreeMap<String, UrlConfig>>,
}

fn key(function: &str, qualifier: &str) -> String {
    format!("{function}:{qualifier}")
}

fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

fn check(input: &UrlInput) -> Result<()> {
    match input.auth_type.as_deref() {
        Some("NONE") | None => {}
        Some("AWS_IAM") => {
            return Err(CoreError::InvalidParameter(
                "AuthType AWS_IAM is not supported yet: Nimbus does not verify request signatures; use NONE.".into(),
            ));
        }
        Some(other) => {
            return Err(CoreError::Validation(format!(
                "1 validation error detected: Value '{other}' at 'authType' failed to satisfy constraint: Member must satisfy enum value set: [NONE, AWS_IAM]"
            )));
        }
    }
    match input.invoke_mode.as_deref() {
        None | Some("BUFFERED") => Ok(()),
        Some("RESPONSE_STREAM") => Err(CoreError::InvalidParameter(
            "InvokeMode RESPONSE_STREAM is not supported yet; use BUFFERED.".into(),
        )),
        Some(other) => Err(CoreError::Validation(format!(
            "1 validation error detected: Value '{other}' at 'invokeMode' failed to satisfy constraint: Member must satisfy enum value set: [BUFFERED, RESPONSE_STREAM]"
        ))),
    }
}

impl FunctionUrls {
    pub fn open(store: Store, functions: Arc<FunctionService>) -> Result<FunctionUrls> {
        let mut map = BTreeMap::new();
        for (k, body) in store.records(KIND)? {
            match serde_json::from_str::<UrlConfig>(&body) {
                Ok(c) => {
                    map.insert(k, c);
                }
                Err(e) => tracing::error!(key = %k, error = %e, "unreadable function URL skipped"),
            }
        }
        Ok(FunctionUrls {
            store,
            functions,
            map: RwLock::new(map),
        })
    }

    /// The function and qualifier: `$LATEST` or an existing alias (not a version).
    fn target(&self, r: &FunctionRef) -> Result<(String, String)> {
        let rec = self.functions.resolve(&FunctionRef {
            qualifier: None,
            ..r.clone()
        })?;
        match r.qualifier.as_deref() {
            None | Some("$LATEST") => Ok((rec.name.clone(), "$LATEST".into())),
            Some(q) if q.parse::<u32>().is_ok() => Err(CoreError::InvalidParameter(
                "Function URLs can only be created for $LATEST or an alias, not a version.".into(),
            )),
            Some(q) => {
                self.functions
                    .alias(&rec.name, q)
                    .ok_or_else(|| self.functions.not_found(&rec.name, Some(q)))?;
                Ok((rec.name.clone(), q.to_string()))
            }
        }
    }

    fn missing() -> CoreError {
        CoreError::NotFound("The resource you requested does not exist.".into())
    }

    async fn save(&self, c: UrlConfig) -> Result<UrlConfig> {
        let body = serde_json::to_string(&c)
            .map_err(|e| CoreError::Internal(format!("encoding a URL config: {e}")))?;
        let k = key(&c.function, &c.qualifier);
        self.store
            .write_async(vec![WriteOp::PutRecord {
                kind: KIND.into(),
                key: k.clone(),
                body,
            }])
            .await?;
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(k, c.clone());
        Ok(c)
    }

    pub async fn create(&self, r: &FunctionRef, input: UrlInput) -> Result<UrlConfig> {
        if input.auth_type.is_none() {
            return Err(CoreError::Validation(
                "1 validation error detected: Value null at 'authType' failed to satisfy constraint: Member must not be null".into(),
            ));
        }
        check(&input)?;
        let (function, qualifier) = self.target(r)?;
        if self.get_by(&function, &qualifier).is_some() {
            return Err(CoreError::Conflict(format!(
                "Failed to create function url config for [functionArn = {}]. Error message:  FunctionUrlConfig exists for this Lambda function",
                self.functions.arn(&function)
            )));
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let t = now();
        self.save(UrlConfig {
            url_id: id,
            function,
            qualifier,
            auth_type: input.auth_type.unwrap_or_else(|| "NONE".into()),
            cors: input.cors,
            invoke_mode: input.invoke_mode.unwrap_or_else(|| "BUFFERED".into()),
            creation_time: t.clone(),
            last_modified: t,
        })
        .await
    }

    fn get_by(&self, function: &str, qualifier: &str) -> Option<UrlConfig> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key(function, qualifier))
            .cloned()
    }

    pub fn get(&self, r: &FunctionRef) -> Result<UrlConfig> {
        let (function, qualifier) = self.target(r)?;
        self.get_by(&function, &qualifier).ok_or_else(Self::missing)
    }

    pub async fn update(&self, r: &FunctionRef, input: UrlInput) -> Result<UrlConfig> {
        check(&input)?;
        let (function, qualifier) = self.target(r)?;
        let mut c = self
            .get_by(&function, &qualifier)
            .ok_or_else(Self::missing)?;
        if let Some(a) = input.auth_type {
            c.auth_type = a;
        }
        if input.cors.is_some() {
            c.cors = input.cors;
        }
        if let Some(m) = input.invoke_mode {
            c.invoke_mode = m;
        }
        c.last_modified = now();
        self.save(c).await
    }

    pub async fn delete(&self, r: &FunctionRef) -> Result<()> {
        let (function, qualifier) = self.target(r)?;
        if self.get_by(&function, &qualifier).is_none() {
            return Err(Self::missing());
        }
        let k = key(&function, &qualifier);
        self.store
            .write_async(vec![WriteOp::DeleteRecord {
                kind: KIND.into(),
                key: k.clone(),
            }])
            .await?;
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&k);
        Ok(())
    }

    pub fn list(&self, r: &FunctionRef) -> Result<Vec<UrlConfig>> {
        let (function, _) = self.target(&FunctionRef {
            qualifier: None,
            ..r.clone()
        })?;
        Ok(self
            .map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|c| c.function == function)
            .cloned()
            .collect())
    }

    /// The configuration a URL id belongs to.
    pub fn by_id(&self, id: &str) -> Option<UrlConfig> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .find(|c| c.url_id == id)
            .cloned()
    }

    /// Forgets a deleted function's URLs.
    pub fn forget(&self, function: &str) {
        let prefix = format!("{function}:");
        self.store
            .write_background(vec![WriteOp::DeleteRecordPrefix {
                kind: KIND.into(),
                prefix: prefix.clone(),
            }]);
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| !k.starts_with(&prefix));
    }
}
