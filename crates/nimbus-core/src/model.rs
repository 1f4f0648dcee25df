//! The function model: the stored record of a function (`$LATEST`), the typed commands that
//! create and change it, and its lifecycle states.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `State` of a function, as Lambda reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FunctionState {
    /// Being created: the code is being checked and unpacked; invocations wait for it to settle.
    Pending,
    /// Ready to invoke.
    Active,
    /// Creation failed (e.g. an unusable zip, `StateReasonCode` `InvalidZipFileException`);
    /// invocations are refused.
    Failed,
}

impl FunctionState {
    /// The state as Lambda spells it (`Pending`, `Active`, `Failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            FunctionState::Pending => "Pending",
            FunctionState::Active => "Active",
            FunctionState::Failed => "Failed",
        }
    }
}

/// `LastUpdateStatus` of a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpdateStatus {
    /// An update of code or configuration is being applied.
    InProgress,
    /// The last update was applied.
    Successful,
    /// The last update's code could not be used; the reason is in `last_update_status_reason`.
    Failed,
}

impl UpdateStatus {
    /// The status as Lambda spells it (`InProgress`, `Successful`, `Failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateStatus::InProgress => "InProgress",
            UpdateStatus::Successful => "Successful",
            UpdateStatus::Failed => "Failed",
        }
    }
}

/// `LoggingConfig` of a function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct LoggingConfig {
    /// `LogFormat`: `Text` (the default) or `JSON`.
    pub log_format: Option<String>,
    /// `ApplicationLogLevel`: `TRACE`, `DEBUG`, `INFO`, `WARN`, `ERROR` or `FATAL`; only with the
    /// `JSON` format.
    pub application_log_level: Option<String>,
    /// `SystemLogLevel`: `DEBUG`, `INFO` or `WARN`; only with the `JSON` format.
    pub system_log_level: Option<String>,
    /// `LogGroup`: where the function's logs go (default `/aws/lambda/{name}`).
    pub log_group: Option<String>,
}

/// The stored record of a function's `$LATEST`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionRecord {
    /// `FunctionName`: the unqualified name, the record's key.
    pub name: String,
    /// `Runtime` identifier (e.g. `python3.12`).
    pub runtime: String,
    /// `Role`: the execution role's ARN (checked for shape, not assumed).
    pub role: String,
    /// `Handler` (e.g. `index.handler`).
    pub handler: String,
    /// `Description`, empty when none.
    pub description: String,
    /// `Timeout` in seconds, 1–900 (default 3).
    pub timeout: u32,
    /// `MemorySize` in MiB, 128–10240 (default 128).
    pub memory_size: u32,
    /// `Environment.Variables` handed to the function.
    pub environment: BTreeMap<String, String>,
    /// base64 SHA-256 of the zip (`CodeSha256`).
    pub code_sha256: String,
    /// hex SHA-256: the blob key and the unpacked task root's name.
    pub code_hex: String,
    /// `CodeSize`: the zip's size in bytes.
    pub code_size: u64,
    /// `LastModified`: ISO 8601 with milliseconds, as Lambda writes it
    /// (`2024-01-31T12:00:00.000+0000`).
    pub last_modified: String,
    /// `RevisionId`: a UUID, new on every change; callers pass it to make updates conditional.
    pub revision_id: String,
    /// `State` of the function.
    pub state: FunctionState,
    /// `StateReason`: why the function is in its state (`None` when `Active`).
    pub state_reason: Option<String>,
    /// `StateReasonCode` (e.g. `Creating`, `InvalidZipFileException`).
    pub state_reason_code: Option<String>,
    /// `LastUpdateStatus` of the function.
    pub last_update_status: UpdateStatus,
    /// `LastUpdateStatusReason`, when the last update failed.
    pub last_update_status_reason: Option<String>,
    /// `LastUpdateStatusReasonCode`, when the last update failed (e.g. `InvalidZipFileException`).
    pub last_update_status_reason_code: Option<String>,
    /// `Architectures`: exactly one of `x86_64` (the default) or `arm64`.
    pub architectures: Vec<String>,
    /// `EphemeralStorage.Size` of `/tmp` in MiB, 512–10240 (default 512).
    pub ephemeral_storage: u32,
    /// `TracingConfig.Mode`: `PassThrough` (the default) or `Active`.
    pub tracing_mode: String,
    /// `LoggingConfig` of the function.
    pub logging: LoggingConfig,
    /// `DeadLetterConfig.TargetArn`: the SQS queue that asynchronous events go to once retries are
    /// exhausted.
    pub dead_letter_target: Option<String>,
    /// `Tags` of the function.
    pub tags: BTreeMap<String, String>,
    /// `ReservedConcurrentExecutions`: instances set aside for this function, and its cap (`None`:
    /// draws on the unreserved pool).
    pub reserved_concurrency: Option<u32>,
    /// `$LATEST`, or the number of a published version (an immutable snapshot).
    #[serde(default = "latest")]
    pub version: String,
    /// The highest version number published so far (numbers are never reused).
    #[serde(default)]
    pub last_published: u32,
}

fn latest() -> String {
    "$LATEST".into()
}

/// An alias: a name for a version, optionally sending a share of invocations to a second one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AliasRecord {
    /// The unqualified name of the function the alias belongs to.
    pub function: String,
    /// The alias name (not a number, not `$LATEST`).
    pub name: String,
    /// `FunctionVersion` the alias points to: `$LATEST` or a published version number.
    pub function_version: String,
    /// `Description`, empty when none.
    pub description: String,
    /// `AdditionalVersionWeights`: at most one version and its share (0–1).
    pub additional_weights: BTreeMap<String, f64>,
    /// `RevisionId`: a UUID, new on every change of the alias.
    pub revision_id: String,
}

/// Why a function's state cannot change as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The function is still being created (`State: Pending`).
    #[error("the function is currently in the following state: Pending")]
    Pending,
    /// Another update has not finished (`LastUpdateStatus: InProgress`).
    #[error("an update is in progress")]
    UpdateInProgress,
    /// Nothing is being created or updated, so there is nothing to settle.
    #[error("no creation or update is in progress")]
    NothingInProgress,
}

impl FunctionRecord {
    /// An update starts (`LastUpdateStatus` → `InProgress`, with Lambda's reason): allowed only
    /// once the function is created and no other update is in progress.
    pub fn begin_update(&mut self, reason: &str, code: &str) -> Result<(), TransitionError> {
        if self.state == FunctionState::Pending {
            return Err(TransitionError::Pending);
        }
        if self.last_update_status == UpdateStatus::InProgress {
            return Err(TransitionError::UpdateInProgress);
        }
        self.last_update_status = UpdateStatus::InProgress;
        self.last_update_status_reason = Some(reason.to_string());
        self.last_update_status_reason_code = Some(code.to_string());
        Ok(())
    }

    /// A creation or update ends: with its code ready, `Pending → Active` and
    /// `InProgress → Successful`; with `failure` (reason, reason code), a new function is
    /// `Failed`, while an updated one keeps `State` and reports `LastUpdateStatus: Failed`.
    pub fn settle(&mut self, failure: Option<(String, String)>) -> Result<(), TransitionError> {
        let creating = self.state == FunctionState::Pending;
        if !creating && self.last_update_status != UpdateStatus::InProgress {
            return Err(TransitionError::NothingInProgress);
        }
        match failure {
            None => {
                self.state = FunctionState::Active;
                self.state_reason = None;
                self.state_reason_code = None;
                self.last_update_status = UpdateStatus::Successful;
                self.last_update_status_reason = None;
                self.last_update_status_reason_code = None;
            }
            Some((reason, code)) if creating => {
                self.state = FunctionState::Failed;
                self.state_reason = Some(reason);
                self.state_reason_code = Some(code);
            }
            Some((reason, code)) => {
                self.last_update_status = UpdateStatus::Failed;
                self.last_update_status_reason = Some(reason);
                self.last_update_status_reason_code = Some(code);
            }
        }
        Ok(())
    }

    /// The function's log group: `LoggingConfig.LogGroup`, or `/aws/lambda/{name}`.
    pub fn log_group(&self) -> String {
        self.logging
            .log_group
            .clone()
            .unwrap_or_else(|| format!("/aws/lambda/{}", self.name))
    }
}

/// Configuration fields shared by create and update (all optional on update).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigChange {
    /// `Runtime` identifier; required on create.
    pub runtime: Option<String>,
    /// `Role` ARN; required on create.
    pub role: Option<String>,
    /// `Handler`.
    pub handler: Option<String>,
    /// `Description`, at most 256 characters.
    pub description: Option<String>,
    /// `Timeout` in seconds, 1–900 (wide here so out-of-range values are reported, not truncated).
    pub timeout: Option<i64>,
    /// `MemorySize` in MiB, 128–10240.
    pub memory_size: Option<i64>,
    /// `Environment.Variables`: replaces all of them (at most 4 KB; reserved keys refused).
    pub environment: Option<BTreeMap<String, String>>,
    /// `EphemeralStorage.Size` in MiB, 512–10240.
    pub ephemeral_storage: Option<i64>,
    /// `TracingConfig.Mode`: `Active` or `PassThrough`.
    pub tracing_mode: Option<String>,
    /// `LoggingConfig`, replacing the current one.
    pub logging: Option<LoggingConfig>,
    /// `DeadLetterConfig.TargetArn`: `None` leaves it, `Some(None)` removes it, `Some(Some(arn))`
    /// sets it.
    pub dead_letter_target: Option<Option<String>>,
    /// `Layers`: only an empty list is accepted (Nimbus has no layers yet).
    pub layers: Option<Vec<String>>,
}

/// CreateFunction.
#[derive(Debug, Clone, Default)]
pub struct CreateFunction {
    /// `FunctionName`: unqualified (no version or alias).
    pub name: String,
    /// The function's configuration; `Runtime` and `Role` are required.
    pub config: ConfigChange,
    /// `Code.ZipFile`: the zip's bytes (already base64-decoded), at most 50 MiB.
    pub zip: Option<Vec<u8>>,
    /// A code source we do not take (S3 location, image): its name, for the error message.
    pub unsupported_code_source: Option<String>,
    /// `PackageType`: only `Zip` is supported.
    pub package_type: Option<String>,
    /// `Architectures` (default `["x86_64"]`).
    pub architectures: Option<Vec<String>>,
    /// `Publish`: publish version 1 once the function is active (done by the caller after
    /// [`crate::functions::FunctionService::create`]).
    pub publish: bool,
    /// `Tags` of the new function.
    pub tags: BTreeMap<String, String>,
}

/// UpdateFunctionCode.
#[derive(Debug, Clone, Default)]
pub struct UpdateCode {
    /// `ZipFile`: the new zip's bytes (already base64-decoded), at most 50 MiB.
    pub zip: Option<Vec<u8>>,
    /// A code source Nimbus does not take (S3 location, image): its name, for the error message.
    pub unsupported_code_source: Option<String>,
    /// `Architectures`, replacing the current ones.
    pub architectures: Option<Vec<String>>,
    /// `RevisionId`: when given, the update applies only if it is still the current one.
    pub revision_id: Option<String>,
    /// `DryRun`: check the code and answer the resulting configuration without changing anything.
    pub dry_run: bool,
    /// `Publish`: publish a version once the code is updated (done by the caller; ignored with
    /// `dry_run`).
    pub publish: bool,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The page's items, in key order.
    pub items: Vec<T>,
    /// `NextMarker`: an opaque token for the page after this one, `None` on the last page.
    pub next_marker: Option<String>,
}

/// Account-wide numbers for GetAccountSettings.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountSettings {
    /// `AccountLimit.TotalCodeSize`: bytes of code the account may hold (75 GiB, Lambda's).
    pub total_code_size_limit: u64,
    /// `AccountLimit.CodeSizeUnzipped`: the largest unpacked function, in bytes.
    pub code_size_unzipped: u64,
    /// `AccountLimit.CodeSizeZipped`: the largest zip upload, in bytes.
    pub code_size_zipped: u64,
    /// `AccountLimit.ConcurrentExecutions`: the account's concurrency limit (from the settings).
    pub concurrent_executions: u64,
    /// `AccountLimit.UnreservedConcurrentExecutions`: the limit less all reserved concurrency.
    pub unreserved_concurrent_executions: u64,
    /// `AccountUsage.TotalCodeSize`: bytes of code of all functions' `$LATEST`.
    pub total_code_size: u64,
    /// `AccountUsage.FunctionCount`: how many functions exist.
    pub function_count: u64,
}

#[cfg(test)]
mod transition_tests {
    use super::*;

    fn record(state: FunctionState, update: UpdateStatus) -> FunctionRecord {
        serde_json::from_value(serde_json::json!({
            "name": "f", "runtime": "provided.al2023", "role": "r", "handler": "h",
            "description": "", "timeout": 3, "memory_size": 128, "environment": {},
            "code_sha256": "", "code_hex": "", "code_size": 0, "last_modified": "",
            "revision_id": "", "state": state, "state_reason": null, "state_reason_code": null,
            "last_update_status": update, "last_update_status_reason": null,
            "last_update_status_reason_code": null, "architectures": ["x86_64"],
            "ephemeral_storage": 512, "tracing_mode": "PassThrough",
            "logging": {}, "dead_letter_target": null, "tags": {},
        }))
        .expect("a record")
    }

    #[test]
    fn creation_and_updates_move_only_along_lambdas_states() {
        // Pending → Active.
        let mut f = record(FunctionState::Pending, UpdateStatus::Successful);
        assert_eq!(
            f.begin_update("u", "Updating"),
            Err(TransitionError::Pending),
            "no update while being created"
        );
        f.settle(None).expect("created");
        assert_eq!(
            (f.state, f.last_update_status),
            (FunctionState::Active, UpdateStatus::Successful)
        );
        assert_eq!(f.settle(None), Err(TransitionError::NothingInProgress));
        // Active: an update starts; a second waits its turn; a failure keeps the function Active.
        f.begin_update("The function is being updated.", "Updating")
            .expect("update");
        assert_eq!(f.last_update_status, UpdateStatus::InProgress);
        assert_eq!(
            f.begin_update("u", "Updating"),
            Err(TransitionError::UpdateInProgress)
        );
        f.settle(Some(("bad zip".into(), "InvalidZipFileException".into())))
            .expect("failed update");
        assert_eq!(
            (f.state, f.last_update_status),
            (FunctionState::Active, UpdateStatus::Failed)
        );
        assert_eq!(f.last_update_status_reason.as_deref(), Some("bad zip"));
        // A failed creation is a Failed function, which can still be updated.
        let mut g = record(FunctionState::Pending, UpdateStatus::Successful);
        g.settle(Some(("bad zip".into(), "InvalidZipFileException".into())))
            .expect("failed creation");
        assert_eq!(g.state, FunctionState::Failed);
        g.begin_update("u", "Updating")
            .expect("update of a failed function");
        g.settle(None).expect("fixed");
        assert_eq!(g.state, FunctionState::Active);
    }
}
