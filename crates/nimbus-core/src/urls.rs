//! Function URLs: a dedicated HTTP endpoint per function (or alias), reached on the main port by
//! host name `<url-id>.lambda-url.localhost`. Configurations are records (kind `function-url`).

use std::sync::Arc;

use nimbus_store::Store;
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::functions::FunctionService;
use crate::names::FunctionRef;
use crate::records::RecordMap;

const KIND: &str = "function-url";

/// A function URL's configuration, as stored (`FunctionUrlConfig`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UrlConfig {
    /// The URL id (32 hex digits): the host name's first label, `<url-id>.lambda-url.localhost`.
    pub url_id: String,
    /// The unqualified function name.
    pub function: String,
    /// `$LATEST` or an alias.
    pub qualifier: String,
    /// `AuthType`: `NONE` (`AWS_IAM` is refused until signatures are verified).
    pub auth_type: String,
    /// The `Cors` object as given.
    pub cors: Option<serde_json::Value>,
    /// `InvokeMode`: `BUFFERED` (`RESPONSE_STREAM` is refused for now).
    pub invoke_mode: String,
    /// `CreationTime`: ISO 8601 with microseconds, UTC (`2024-01-31T12:00:00.000000Z`).
    pub creation_time: String,
    /// `LastModifiedTime`: ISO 8601 with microseconds, UTC.
    pub last_modified: String,
}

/// What a Create/Update request carries.
#[derive(Debug, Clone, Default)]
pub struct UrlInput {
    /// `AuthType`: `NONE` or `AWS_IAM` (refused for now); required on create.
    pub auth_type: Option<String>,
    /// The `Cors` object as given (checked by [`crate::cors::Cors::from_wire`]); on update it
    /// replaces the current one.
    pub cors: Option<serde_json::Value>,
    /// `InvokeMode`: `BUFFERED` (the default) or `RESPONSE_STREAM` (refused for now).
    pub invoke_mode: Option<String>,
}

/// The function URLs of all functions, keyed `{function}:{qualifier}` (at most one per function and
/// qualifier).
pub struct FunctionUrls {
    functions: Arc<FunctionService>,
    /// Keyed `<function>:<qualifier>`.
    map: RecordMap<UrlConfig>,
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
    /// Loads the stored URL configurations; `functions` resolves the functions and aliases requests
    /// name.
    pub fn open(store: Store, functions: Arc<FunctionService>) -> Result<FunctionUrls> {
        Ok(FunctionUrls {
            functions,
            map: RecordMap::open(store, KIND)?,
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
        self.map.put(key(&c.function, &c.qualifier), c).await
    }

    /// CreateFunctionUrlConfig for `$LATEST` or an alias (not a version): a new URL id; 409 if the
    /// qualifier has one.
    pub async fn create(&self, r: &FunctionRef, input: UrlInput) -> Result<UrlConfig> {
        let _edit = self.map.edit().await;
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
        self.map.get(&key(function, qualifier))
    }

    /// GetFunctionUrlConfig (`NotFound` when the qualifier has no URL).
    pub fn get(&self, r: &FunctionRef) -> Result<UrlConfig> {
        let (function, qualifier) = self.target(r)?;
        self.get_by(&function, &qualifier).ok_or_else(Self::missing)
    }

    /// UpdateFunctionUrlConfig: changes only what `input` gives; the URL id stays.
    pub async fn update(&self, r: &FunctionRef, input: UrlInput) -> Result<UrlConfig> {
        let _edit = self.map.edit().await;
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

    /// DeleteFunctionUrlConfig (`NotFound` when the qualifier has no URL).
    pub async fn delete(&self, r: &FunctionRef) -> Result<()> {
        let (function, qualifier) = self.target(r)?;
        if self.get_by(&function, &qualifier).is_none() {
            return Err(Self::missing());
        }
        self.map.remove(&key(&function, &qualifier)).await
    }

    /// ListFunctionUrlConfigs: every URL of the function, whatever the qualifier `r` names.
    pub fn list(&self, r: &FunctionRef) -> Result<Vec<UrlConfig>> {
        let (function, _) = self.target(&FunctionRef {
            qualifier: None,
            ..r.clone()
        })?;
        Ok(self
            .map
            .values()
            .into_iter()
            .filter(|c| c.function == function)
            .collect())
    }

    /// The configuration a URL id belongs to.
    pub fn by_id(&self, id: &str) -> Option<UrlConfig> {
        self.map.find(|c| c.url_id == id)
    }

    /// Forgets a deleted function's URLs.
    pub fn forget(&self, function: &str) {
        self.map.remove_prefix(&format!("{function}:"));
    }
}

/// Whether `<name>.localhost` host names resolve on this machine (RFC 6761 says they should;
/// glibc without nss-myhostname does not). Function URLs and API endpoints are handed out
/// host-style where they resolve and path-style elsewhere, so they work as given.
pub fn localhost_subdomains_resolve() -> bool {
    use std::net::ToSocketAddrs;
    static R: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *R.get_or_init(|| {
        ("nimbus-probe.localhost", 80)
            .to_socket_addrs()
            .map(|mut a| a.any(|x| x.ip().is_loopback()))
            .unwrap_or(false)
    })
}
