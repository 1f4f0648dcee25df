//! The function control plane: create, read, update, delete and list functions, with their
//! `Pending → Active` and `InProgress → Successful` lifecycles.
//!
//! Records live in memory (the invoke path reads them without I/O) and are written through to
//! the store before any change is acknowledged. Code is stored as a blob and unpacked into a
//! task root during the Pending / InProgress phase; only then does the function become Active.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine;
use nimbus_exec::code::{self, CodeError, MAX_UNZIPPED_BYTES};
use nimbus_exec::runtimes::KNOWN_RUNTIMES;
use nimbus_exec::{RuntimeCatalog, RuntimeError};
use nimbus_store::{Store, WriteOp};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::error::{CoreError, Result};
use crate::model::*;
use crate::names::FunctionRef;
use crate::settings::Settings;
use crate::validate;

const KIND: &str = "function";
/// Lambda's limit on a directly uploaded zip.
pub const MAX_ZIPPED_BYTES: usize = 52_428_800;
/// How long a call waits for a short Pending / InProgress phase to end before answering 409.
const SETTLE_WAIT: Duration = Duration::from_secs(10);

/// The function control plane: every function's `$LATEST`, its published versions and aliases in
/// memory, each change committed to the store first; code blobs are content-addressed and unpacked
/// once per code hash.
pub struct FunctionService {
    settings: Arc<Settings>,
    store: Store,
    catalog: Arc<RuntimeCatalog>,
    records: RwLock<BTreeMap<String, Arc<FunctionRecord>>>,
    /// Published versions per function.
    pub(crate) versions: RwLock<BTreeMap<String, BTreeMap<u32, Arc<FunctionRecord>>>>,
    /// Aliases per function.
    pub(crate) aliases: RwLock<BTreeMap<String, BTreeMap<String, Arc<crate::model::AliasRecord>>>>,
    /// Serialises control-plane changes.
    pub(crate) write_lock: tokio::sync::Mutex<()>,
    generation: watch::Sender<u64>,
    /// Who unpacks code (a helper as an unprivileged uid when the server is root).
    unpacker: std::sync::OnceLock<code::Unpacker>,
}

fn timestamp() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
        .to_string()
}

fn code_error(e: CodeError) -> CoreError {
    match e {
        CodeError::NotAZip
        | CodeError::TooLarge { .. }
        | CodeError::TooManyEntries { .. }
        | CodeError::UnsafeEntry(_)
        | CodeError::BeneathLink(_)
        | CodeError::Conflict(_) => CoreError::InvalidParameter(e.to_string()),
        CodeError::Io { .. } => CoreError::Internal(e.to_string()),
    }
}

impl FunctionService {
    /// Loads the functions, versions and aliases from the store (unreadable records are logged and
    /// skipped). Call [`FunctionService::resume`] next.
    pub fn open(
        settings: Arc<Settings>,
        store: Store,
        catalog: Arc<RuntimeCatalog>,
    ) -> Result<FunctionService> {
        let mut records = BTreeMap::new();
        for (key, body) in store.records(KIND)? {
            match serde_json::from_str::<FunctionRecord>(&body) {
                Ok(r) => {
                    records.insert(key, Arc::new(r));
                }
                Err(e) => {
                    tracing::error!(function = %key, error = %e, "unreadable function record skipped")
                }
            }
        }
        let (generation, _) = watch::channel(0);
        let (versions, aliases) = crate::versions::load(&store)?;
        let svc = FunctionService {
            settings,
            store,
            catalog,
            records: RwLock::new(records),
            versions: RwLock::new(versions),
            aliases: RwLock::new(aliases),
            write_lock: tokio::sync::Mutex::new(()),
            unpacker: std::sync::OnceLock::new(),
            generation,
        };
        Ok(svc)
    }

    /// Finishes activations a crash interrupted. Call once after `open`, inside the runtime.
    pub fn resume(self: &Arc<Self>) {
        let unsettled: Vec<String> = self
            .read()
            .values()
            .filter(|r| {
                r.state == FunctionState::Pending
                    || r.last_update_status == UpdateStatus::InProgress
            })
            .map(|r| r.name.clone())
            .collect();
        for name in unsettled {
            self.spawn_activation(name);
        }
    }

    pub(crate) fn store_handle(&self) -> &Store {
        &self.store
    }

    /// The runtimes this server can run.
    pub fn catalog(&self) -> &RuntimeCatalog {
        &self.catalog
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<FunctionRecord>>> {
        self.records.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The unqualified function ARN: `arn:aws:lambda:{region}:{account}:function:{name}`.
    pub fn arn(&self, name: &str) -> String {
        self.settings.function_arn(name)
    }

    /// Sets who unpacks code (once, at start-up, before any activation).
    pub fn set_unpacker(&self, u: code::Unpacker) {
        let _ = self.unpacker.set(u);
    }

    fn unpacker(&self) -> &code::Unpacker {
        self.unpacker.get().unwrap_or(&code::Unpacker::InProcess)
    }

    /// The task root a code version is unpacked into: `{data_dir}/tasks/{code_hex}`.
    pub fn task_root(&self, code_hex: &str) -> PathBuf {
        self.settings.data_dir.join("tasks").join(code_hex)
    }

    /// The stored zip of a code version (its blob file).
    pub fn code_path(&self, code_hex: &str) -> PathBuf {
        self.store.blobs().path(code_hex)
    }

    pub(crate) fn not_found(&self, name: &str, qualifier: Option<&str>) -> CoreError {
        let arn = match qualifier {
            Some(q) => format!("{}:{q}", self.arn(name)),
            None => self.arn(name),
        };
        CoreError::NotFound(format!("Function not found: {arn}"))
    }

    /// Looks a function up by reference (unqualified or `$LATEST`).
    pub fn resolve(&self, r: &FunctionRef) -> Result<Arc<FunctionRecord>> {
        if let Some(acct) = &r.account
            && acct != &self.settings.account_id
        {
            return Err(self.not_found(&r.name, r.qualifier.as_deref()));
        }
        let rec = self
            .read()
            .get(&r.name)
            .cloned()
            .ok_or_else(|| self.not_found(&r.name, r.qualifier.as_deref()))?;
        match r.qualifier.as_deref() {
            None | Some("$LATEST") => Ok(rec),
            Some(q) => self
                .qualified(&rec.name, q)
                .ok_or_else(|| self.not_found(&r.name, Some(q))),
        }
    }

    /// The `$LATEST` record of a function, by unqualified name.
    pub fn get(&self, name: &str) -> Option<Arc<FunctionRecord>> {
        self.read().get(name).cloned()
    }

    fn supported(&self) -> &'static [&'static str] {
        KNOWN_RUNTIMES
    }

    fn check_runtime_available(&self, runtime: &str) -> Result<()> {
        match self.catalog.resolve(runtime) {
            Ok(_) => Ok(()),
            Err(RuntimeError::Unknown(r)) => Err(CoreError::InvalidParameter(format!(
                "The runtime parameter of {r} is not supported by Nimbus yet. Supported runtimes: {}",
                KNOWN_RUNTIMES.join(", ")
            ))),
            Err(e @ RuntimeError::Unavailable { .. }) => {
                Err(CoreError::InvalidParameter(e.to_string()))
            }
        }
    }

    /// Checks an uploaded zip and stores it. Returns (base64 sha, hex sha, size).
    async fn store_zip(&self, zip: Vec<u8>) -> Result<(String, String, u64)> {
        if zip.len() > MAX_ZIPPED_BYTES {
            return Err(CoreError::RequestTooLarge(format!(
                "Zipped size must be smaller than {MAX_ZIPPED_BYTES} bytes"
            )));
        }
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            code::inspect_zip(&zip, MAX_UNZIPPED_BYTES).map_err(code_error)?;
            let sha = Sha256::digest(&zip);
            let b64 = base64::engine::general_purpose::STANDARD.encode(sha);
            let hex = store.blobs().put(&zip)?;
            Ok((b64, hex, zip.len() as u64))
        })
        .await
        .map_err(|e| CoreError::Internal(format!("storing code: {e}")))?
    }

    pub(crate) async fn persist(&self, rec: FunctionRecord) -> Result<Arc<FunctionRecord>> {
        let body = serde_json::to_string(&rec)
            .map_err(|e| CoreError::Internal(format!("encoding a record: {e}")))?;
        let store = self.store.clone();
        let key = rec.name.clone();
        tokio::task::spawn_blocking(move || {
            store.write(vec![WriteOp::PutRecord {
                kind: KIND.into(),
                key,
                body,
            }])
        })
        .await
        .map_err(|e| CoreError::Internal(format!("writing a record: {e}")))??;
        let rec = Arc::new(rec);
        self.records
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(rec.name.clone(), rec.clone());
        self.generation.send_modify(|g| *g += 1);
        Ok(rec)
    }

    /// CreateFunction: stores the zip and the record in `Pending`, answers, and activates in the
    /// background (code unpacked, then `Active` or `Failed`).
    pub async fn create(self: &Arc<Self>, cmd: CreateFunction) -> Result<Arc<FunctionRecord>> {
        let name_ref = crate::names::parse_function_ref(&cmd.name)?;
        if name_ref.qualifier.is_some() {
            return Err(CoreError::InvalidParameter(
                "Unqualified function name is required for CreateFunction (remove the version or alias)."
                    .into(),
            ));
        }
        let name = name_ref.name;
        let c = &cmd.config;
        if let Some(pt) = &cmd.package_type
            && pt != "Zip"
        {
            return Err(CoreError::InvalidParameter(format!(
                "PackageType {pt} is not supported by Nimbus yet; use Zip."
            )));
        }
        let role = c.role.clone().ok_or_else(|| {
            CoreError::Validation(
                "1 validation error detected: Value null at 'role' failed to satisfy constraint: Member must not be null"
                    .into(),
            )
        })?;
        validate::config_change(c, self.supported())?;
        let runtime = c.runtime.clone().ok_or_else(|| {
            CoreError::InvalidParameter("Runtime and Handler are mandatory parameters for functions created with deployment packages.".into())
        })?;
        let handler = c.handler.clone().ok_or_else(|| {
            CoreError::InvalidParameter("Runtime and Handler are mandatory parameters for functions created with deployment packages.".into())
        })?;
        if let Some(a) = &cmd.architectures {
            validate::architectures(a)?;
        }
        for (k, v) in &cmd.tags {
            if k.is_empty() || k.len() > 128 || v.len() > 256 {
                return Err(CoreError::InvalidParameter(format!(
                    "Tag key '{k}' must be 1-128 characters and its value at most 256"
                )));
            }
        }
        if cmd.tags.len() > 50 {
            return Err(CoreError::InvalidParameter(
                "A function can have at most 50 tags".into(),
            ));
        }
        self.check_runtime_available(&runtime)?;
        let zip = match (&cmd.zip, &cmd.unsupported_code_source) {
            (Some(z), _) => z.clone(),
            (None, Some(src)) => {
                return Err(CoreError::InvalidParameter(format!(
                    "Code.{src} is not supported by this Nimbus version yet; upload the code as Code.ZipFile."
                )));
            }
            (None, None) => {
                return Err(CoreError::InvalidParameter(
                    "Please provide a source for function code.".into(),
                ));
            }
        };
        let _guard = self.write_lock.lock().await;
        if self.read().contains_key(&name) {
            return Err(CoreError::Conflict(format!(
                "Function already exist: {name}"
            )));
        }
        let (sha_b64, hex, size) = self.store_zip(zip).await?;
        let rec = FunctionRecord {
            name: name.clone(),
            runtime,
            role,
            handler,
            description: c.description.clone().unwrap_or_default(),
            timeout: c.timeout.unwrap_or(3) as u32,
            memory_size: c.memory_size.unwrap_or(128) as u32,
            environment: c.environment.clone().unwrap_or_default(),
            code_sha256: sha_b64,
            code_hex: hex,
            code_size: size,
            last_modified: timestamp(),
            revision_id: uuid::Uuid::new_v4().to_string(),
            state: FunctionState::Pending,
            state_reason: Some("The function is being created.".into()),
            state_reason_code: Some("Creating".into()),
            last_update_status: UpdateStatus::Successful,
            last_update_status_reason: None,
            last_update_status_reason_code: None,
            architectures: cmd
                .architectures
                .clone()
                .unwrap_or_else(|| vec!["x86_64".into()]),
            ephemeral_storage: c.ephemeral_storage.unwrap_or(512) as u32,
            tracing_mode: c
                .tracing_mode
                .clone()
                .unwrap_or_else(|| "PassThrough".into()),
            logging: c.logging.clone().unwrap_or_else(|| LoggingConfig {
                log_format: Some("Text".into()),
                ..Default::default()
            }),
            dead_letter_target: c.dead_letter_target.clone().flatten(),
            tags: cmd.tags.clone(),
            version: "$LATEST".into(),
            last_published: 0,
            reserved_concurrency: None,
        };
        let rec = self.persist(rec).await?;
        drop(_guard);
        self.spawn_activation(name);
        Ok(rec)
    }

    /// Unpacks the function's code and moves it to Active / Successful (or Failed).
    fn spawn_activation(self: &Arc<Self>, name: String) {
        let svc = self.clone();
        tokio::spawn(async move {
            if let Err(e) = svc.activate(&name).await {
                tracing::error!(function = %name, error = %e, "activation failed");
            }
        });
    }

    async fn activate(&self, name: &str) -> Result<()> {
        let Some(rec) = self.get(name) else {
            return Ok(());
        };
        let zip = self.code_path(&rec.code_hex);
        let dest = self.task_root(&rec.code_hex);
        let unpacked = tokio::task::spawn_blocking({
            let unpacker = self.unpacker().clone();
            move || code::unpack_once_with(&zip, &dest, MAX_UNZIPPED_BYTES, &unpacker)
        })
        .await
        .map_err(|e| CoreError::Internal(format!("unpacking code: {e}")))?;
        let _guard = self.write_lock.lock().await;
        let Some(current) = self.get(name) else {
            return Ok(());
        };
        if current.code_hex != rec.code_hex {
            return Ok(()); // a newer upload took over; its own activation settles it
        }
        let mut next = (*current).clone();
        let failure = unpacked
            .err()
            .map(|e| (e.to_string(), "InvalidZipFileException".to_string()));
        if next.settle(failure).is_err() {
            return Ok(()); // already settled (by a restart's resume, say): nothing to record
        }
        self.persist(next).await?;
        Ok(())
    }

    /// Waits (briefly) until the function is neither Pending nor InProgress.
    pub async fn settled(&self, name: &str) -> Result<Arc<FunctionRecord>> {
        let mut rx = self.generation.subscribe();
        let wait = async {
            loop {
                let rec = self.get(name).ok_or_else(|| self.not_found(name, None))?;
                if rec.state != FunctionState::Pending
                    && rec.last_update_status != UpdateStatus::InProgress
                {
                    return Ok(rec);
                }
                if rx.changed().await.is_err() {
                    return Ok(rec);
                }
            }
        };
        match tokio::time::timeout(SETTLE_WAIT, wait).await {
            Ok(r) => r,
            Err(_) => {
                let rec = self.get(name).ok_or_else(|| self.not_found(name, None))?;
                Err(CoreError::Conflict(
                    if rec.state == FunctionState::Pending {
                        "The operation cannot be performed at this time. The function is currently in the following state: Pending".to_string()
                    } else {
                        format!(
                            "The operation cannot be performed at this time. An update is in progress for resource: {}",
                            self.arn(name)
                        )
                    },
                ))
            }
        }
    }

    /// Lambda's answer when a function's state does not allow the change.
    fn transition_refused(&self, name: &str, e: crate::model::TransitionError) -> CoreError {
        CoreError::Conflict(match e {
            crate::model::TransitionError::Pending => {
                "The operation cannot be performed at this time. The function is currently in the following state: Pending".to_string()
            }
            _ => format!(
                "The operation cannot be performed at this time. An update is in progress for resource: {}",
                self.arn(name)
            ),
        })
    }

    fn check_revision(rec: &FunctionRecord, revision: Option<&str>) -> Result<()> {
        match revision {
            Some(r) if r != rec.revision_id => Err(CoreError::PreconditionFailed(
                "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id".into(),
            )),
            _ => Ok(()),
        }
    }

    /// UpdateFunctionCode: stores the new zip and sets `LastUpdateStatus` `InProgress` until it is
    /// unpacked; waits (up to 10 s) for an earlier change to settle, else 409.
    pub async fn update_code(
        self: &Arc<Self>,
        r: &FunctionRef,
        cmd: UpdateCode,
    ) -> Result<Arc<FunctionRecord>> {
        if r.qualifier.is_some() {
            return Err(CoreError::InvalidParameter(
                "Unqualified function name is required for UpdateFunctionCode.".into(),
            ));
        }
        self.resolve(r)?;
        if let Some(a) = &cmd.architectures {
            validate::architectures(a)?;
        }
        let zip = match (cmd.zip, cmd.unsupported_code_source) {
            (Some(z), _) => z,
            (None, Some(src)) => {
                return Err(CoreError::InvalidParameter(format!(
                    "{src} is not supported by this Nimbus version yet; upload the code as ZipFile."
                )));
            }
            (None, None) => {
                return Err(CoreError::InvalidParameter(
                    "Please provide a source for function code.".into(),
                ));
            }
        };
        self.settled(&r.name).await?;
        let (sha_b64, hex, size) = self.store_zip(zip).await?;
        let _guard = self.write_lock.lock().await;
        let current = self.resolve(r)?;
        Self::check_revision(&current, cmd.revision_id.as_deref())?;
        if cmd.dry_run {
            let mut preview = (*current).clone();
            preview.code_sha256 = sha_b64;
            preview.code_size = size;
            return Ok(Arc::new(preview));
        }
        let mut next = (*current).clone();
        next.code_sha256 = sha_b64;
        next.code_hex = hex;
        next.code_size = size;
        if let Some(a) = cmd.architectures {
            next.architectures = a;
        }
        next.last_modified = timestamp();
        next.revision_id = uuid::Uuid::new_v4().to_string();
        next.begin_update("The function is being created.", "Creating")
            .map_err(|e| self.transition_refused(&r.name, e))?;
        let rec = self.persist(next).await?;
        drop(_guard);
        self.spawn_activation(r.name.clone());
        Ok(rec)
    }

    /// UpdateFunctionConfiguration: applies the fields given in `change` to `$LATEST`, if
    /// `revision_id` (when given) is still current.
    pub async fn update_config(
        self: &Arc<Self>,
        r: &FunctionRef,
        change: ConfigChange,
        revision_id: Option<String>,
    ) -> Result<Arc<FunctionRecord>> {
        if r.qualifier.is_some() {
            return Err(CoreError::InvalidParameter(
                "Unqualified function name is required for UpdateFunctionConfiguration.".into(),
            ));
        }
        self.resolve(r)?;
        validate::config_change(&change, self.supported())?;
        if let Some(rt) = &change.runtime {
            self.check_runtime_available(rt)?;
        }
        self.settled(&r.name).await?;
        let _guard = self.write_lock.lock().await;
        let current = self.resolve(r)?;
        Self::check_revision(&current, revision_id.as_deref())?;
        let mut next = (*current).clone();
        let c = change;
        if let Some(v) = c.runtime {
            next.runtime = v;
        }
        if let Some(v) = c.role {
            next.role = v;
        }
        if let Some(v) = c.handler {
            next.handler = v;
        }
        if let Some(v) = c.description {
            next.description = v;
        }
        if let Some(v) = c.timeout {
            next.timeout = v as u32;
        }
        if let Some(v) = c.memory_size {
            next.memory_size = v as u32;
        }
        if let Some(v) = c.environment {
            next.environment = v;
        }
        if let Some(v) = c.ephemeral_storage {
            next.ephemeral_storage = v as u32;
        }
        if let Some(v) = c.tracing_mode {
            next.tracing_mode = v;
        }
        if let Some(v) = c.logging {
            next.logging = LoggingConfig {
                log_format: v.log_format.or(next.logging.log_format.take()),
                ..v
            };
        }
        if let Some(v) = c.dead_letter_target {
            next.dead_letter_target = v;
        }
        next.last_modified = timestamp();
        next.revision_id = uuid::Uuid::new_v4().to_string();
        // Configuration changes apply at once; the phase is still reported as Lambda does.
        next.begin_update("The function is being updated.", "Updating")
            .map_err(|e| self.transition_refused(&r.name, e))?;
        let rec = self.persist(next).await?;
        drop(_guard);
        self.spawn_activation(r.name.clone());
        Ok(rec)
    }

    /// The function a tagging ARN names (`arn:aws:lambda:<region>:<account>:function:<name>`).
    fn tagged(&self, arn: &str) -> Result<Arc<FunctionRecord>> {
        let r = crate::names::parse_function_ref(arn)?;
        if !arn.starts_with("arn:") || r.qualifier.is_some() {
            return Err(CoreError::InvalidParameter(format!(
                "The resource {arn} is not a function ARN: tags apply to unqualified function ARNs (arn:aws:lambda:<region>:<account>:function:<name>)."
            )));
        }
        self.resolve(&r)
    }

    /// TagResource: adds or overwrites tags.
    pub async fn tag(&self, arn: &str, tags: BTreeMap<String, String>) -> Result<()> {
        check_tags(&tags)?;
        let _guard = self.write_lock.lock().await;
        let current = self.tagged(arn)?;
        let mut next = (*current).clone();
        next.tags.extend(tags);
        if next.tags.len() > 50 {
            return Err(CoreError::InvalidParameter(
                "A function can have at most 50 tags".into(),
            ));
        }
        self.persist(next).await.map(drop)
    }

    /// UntagResource: removes tags (keys that are not set are ignored).
    pub async fn untag(&self, arn: &str, keys: &[String]) -> Result<()> {
        let _guard = self.write_lock.lock().await;
        let current = self.tagged(arn)?;
        let mut next = (*current).clone();
        for k in keys {
            next.tags.remove(k);
        }
        self.persist(next).await.map(drop)
    }

    /// ListTags.
    pub fn tags(&self, arn: &str) -> Result<BTreeMap<String, String>> {
        Ok(self.tagged(arn)?.tags.clone())
    }

    /// Σ reserved concurrency over all functions.
    pub fn reserved_total(&self) -> u64 {
        self.read()
            .values()
            .filter_map(|r| r.reserved_concurrency)
            .map(u64::from)
            .sum()
    }

    /// The unreserved concurrency the account must keep: 100, or a tenth of a smaller limit.
    pub fn min_unreserved(&self) -> u64 {
        (self.settings.account_concurrency as u64 / 10).min(100)
    }

    /// PutFunctionConcurrency (`Some`) / DeleteFunctionConcurrency (`None`). Reserved
    /// concurrency belongs to the function as a whole, so qualifiers are refused.
    pub async fn set_reserved_concurrency(
        &self,
        r: &FunctionRef,
        value: Option<i64>,
    ) -> Result<Arc<FunctionRecord>> {
        if let Some(q) = &r.qualifier {
            return Err(CoreError::InvalidParameter(format!(
                "Reserved concurrency applies to the whole function; remove the qualifier '{q}' from the function name."
            )));
        }
        if let Some(v) = value
            && v < 0
        {
            return Err(CoreError::Validation(format!(
                "1 validation error detected: Value '{v}' at 'reservedConcurrentExecutions' failed to satisfy constraint: Member must have value greater than or equal to 0"
            )));
        }
        let _guard = self.write_lock.lock().await;
        let current = self.resolve(r)?;
        if let Some(v) = value {
            let others =
                self.reserved_total() - current.reserved_concurrency.map(u64::from).unwrap_or(0);
            let limit = self.settings.account_concurrency as u64;
            let min = self.min_unreserved();
            if (v as u64).saturating_add(others).saturating_add(min) > limit {
                return Err(CoreError::InvalidParameter(format!(
                    "Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [{min}]."
                )));
            }
        }
        let mut next = (*current).clone();
        next.reserved_concurrency = value.map(|v| v as u32);
        self.persist(next).await
    }

    /// DeleteFunction: unqualified, the function with its versions and aliases (and code no other
    /// function uses); qualified, one published version.
    pub async fn delete(&self, r: &FunctionRef) -> Result<()> {
        match r.qualifier.as_deref() {
            None => {}
            Some("$LATEST") => {
                return Err(CoreError::InvalidParameter(
                    "$LATEST version cannot be deleted without deleting the function.".into(),
                ));
            }
            Some(q) => {
                let rec = self.resolve(&FunctionRef {
                    qualifier: None,
                    ..r.clone()
                })?;
                return self.delete_version(&rec.name, q).await;
            }
        }
        let _guard = self.write_lock.lock().await;
        let rec = self.resolve(r)?;
        // The code this function holds ($LATEST and its published versions); each is removed
        // unless another function's $LATEST or published version still runs it.
        let mut mine: Vec<String> = vec![rec.code_hex.clone()];
        let mut others: std::collections::HashSet<String> = self
            .read()
            .values()
            .filter(|o| o.name != rec.name)
            .map(|o| o.code_hex.clone())
            .collect();
        for (f, vs) in self
            .versions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            for v in vs.values() {
                if *f == rec.name {
                    mine.push(v.code_hex.clone());
                } else {
                    others.insert(v.code_hex.clone());
                }
            }
        }
        mine.sort();
        mine.dedup();
        mine.retain(|h| !others.contains(h));
        let store = self.store.clone();
        let name = rec.name.clone();
        tokio::task::spawn_blocking(move || {
            store.write(vec![WriteOp::DeleteRecord {
                kind: KIND.into(),
                key: name,
            }])
        })
        .await
        .map_err(|e| CoreError::Internal(format!("deleting a record: {e}")))??;
        self.records
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&rec.name);
        self.generation.send_modify(|g| *g += 1);
        self.forget_versions(&rec.name);
        for hex in mine {
            let _ = self.store.blobs().remove(&hex);
            let root = self.task_root(&hex);
            tokio::task::spawn_blocking(move || std::fs::remove_dir_all(root));
        }
        Ok(())
    }

    /// ListFunctions: at most 50 per page, in name order; the marker is the base64 of the last
    /// name returned.
    pub fn list(
        &self,
        marker: Option<&str>,
        max_items: Option<i64>,
    ) -> Result<Page<Arc<FunctionRecord>>> {
        let max = match max_items {
            None => 50,
            Some(m) if (1..=10_000).contains(&m) => (m as usize).min(50),
            Some(m) => {
                return Err(CoreError::Validation(format!(
                    "1 validation error detected: Value '{m}' at 'maxItems' failed to satisfy constraint: Member must have value {}",
                    if m < 1 {
                        "greater than or equal to 1"
                    } else {
                        "less than or equal to 10000"
                    }
                )));
            }
        };
        let after = match marker {
            None | Some("") => None,
            Some(m) => Some(
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(m)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| CoreError::InvalidParameter(format!("Invalid marker: {m}")))?,
            ),
        };
        let map = self.read();
        let mut iter: Box<dyn Iterator<Item = &Arc<FunctionRecord>>> = match &after {
            Some(a) => Box::new(
                map.range::<String, _>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded))
                    .map(|(_, v)| v),
            ),
            None => Box::new(map.values()),
        };
        let items: Vec<Arc<FunctionRecord>> = iter.by_ref().take(max).cloned().collect();
        let more = iter.next().is_some();
        let next_marker = if more {
            items
                .last()
                .map(|r| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r.name.as_bytes()))
        } else {
            None
        };
        Ok(Page { items, next_marker })
    }

    /// Every function's `$LATEST`, sorted by name.
    pub fn all(&self) -> Vec<Arc<FunctionRecord>> {
        self.read().values().cloned().collect()
    }

    /// GetAccountSettings' limits and usage; `reserved_total` is the reserved concurrency of all
    /// functions.
    pub fn account_settings(&self, reserved_total: u64) -> AccountSettings {
        let map = self.read();
        let limit = self.settings.account_concurrency as u64;
        AccountSettings {
            total_code_size_limit: 80_530_636_800,
            code_size_unzipped: MAX_UNZIPPED_BYTES,
            code_size_zipped: MAX_ZIPPED_BYTES as u64,
            concurrent_executions: limit,
            unreserved_concurrent_executions: limit.saturating_sub(reserved_total),
            total_code_size: map.values().map(|r| r.code_size).sum(),
            function_count: map.len() as u64,
        }
    }

    /// Whether `hex` is the code of the function's $LATEST or of one of its published versions.
    pub fn holds_code(&self, name: &str, hex: &str) -> bool {
        self.get(name).is_some_and(|r| r.code_hex == hex)
            || self
                .versions
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(name)
                .is_some_and(|vs| vs.values().any(|v| v.code_hex == hex))
    }

    /// The stored zip of a function's current code.
    pub fn code_bytes(&self, code_hex: &str) -> Result<Vec<u8>> {
        Ok(self.store.blobs().get(code_hex)?)
    }
}

/// Tag keys and values as Lambda allows them (for functions and event source mappings).
pub(crate) fn check_tags(tags: &BTreeMap<String, String>) -> Result<()> {
    for (k, v) in tags {
        if k.is_empty() || k.len() > 128 || v.len() > 256 {
            return Err(CoreError::InvalidParameter(format!(
                "Tag key '{k}' must be 1-128 characters and its value at most 256"
            )));
        }
        if k.starts_with("aws:") {
            return Err(CoreError::InvalidParameter(format!(
                "Tag key '{k}' uses the reserved prefix 'aws:'"
            )));
        }
    }
    Ok(())
}
