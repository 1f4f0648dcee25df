//! The function model: the stored record of a function (`$LATEST`), the typed commands that
//! create and change it, and its lifecycle states.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `State` of a function, as Lambda reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FunctionState {
    Pending,
    Active,
    Failed,
}

impl FunctionState {
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
    InProgress,
    Successful,
    Failed,
}

impl UpdateStatus {
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
    pub log_format: Option<String>,
    pub application_log_level: Option<String>,
    pub system_log_level: Option<String>,
    pub log_group: Option<String>,
}

/// The stored record of a function's `$LATEST`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionRecord {
    pub name: String,
    pub runtime: String,
    pub role: String,
    pub handler: String,
    pub description: String,
    pub timeout: u32,
    pub memory_size: u32,
    pub environment: BTreeMap<String, String>,
    /// base64 SHA-256 of the zip (`CodeSha256`).
    pub code_sha256: String,
    /// hex SHA-256: the blob key and the unpacked task root's name.
    pub code_hex: String,
    pub code_size: u64,
    pub last_modified: String,
    pub revision_id: String,
    pub state: FunctionState,
    pub state_reason: Option<String>,
    pub state_reason_code: Option<String>,
    pub last_update_status: UpdateStatus,
    pub last_update_status_reason: Option<String>,
    pub last_update_status_reason_code: Option<String>,
    pub architectures: Vec<String>,
    pub ephemeral_storage: u32,
    pub tracing_mode: String,
    pub logging: LoggingConfig,
    pub dead_letter_target: Option<String>,
    pub tags: BTreeMap<String, String>,
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
    pub function: String,
    pub name: String,
    pub function_version: String,
    pub description: String,
    /// `AdditionalVersionWeights`: at most one version and its share (0–1).
    pub additional_weights: BTreeMap<String, f64>,
    pub revision_id: String,
}

impl FunctionRecord {
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
    pub runtime: Option<String>,
    pub role: Option<String>,
    pub handler: Option<String>,
    pub description: Option<String>,
    pub timeout: Option<i64>,
    pub memory_size: Option<i64>,
    pub environment: Option<BTreeMap<String, String>>,
    pub ephemeral_storage: Option<i64>,
    pub tracing_mode: Option<String>,
    pub logging: Option<LoggingConfig>,
    pub dead_letter_target: Option<Option<String>>,
    pub layers: Option<Vec<String>>,
}

/// CreateFunction.
#[derive(Debug, Clone, Default)]
pub struct CreateFunction {
    pub name: String,
    pub config: ConfigChange,
    pub zip: Option<Vec<u8>>,
    /// A code source we do not take (S3 location, image): its name, for the error message.
    pub unsupported_code_source: Option<String>,
    pub package_type: Option<String>,
    pub architectures: Option<Vec<String>>,
    pub publish: bool,
    pub tags: BTreeMap<String, String>,
}

/// UpdateFunctionCode.
#[derive(Debug, Clone, Default)]
pub struct UpdateCode {
    pub zip: Option<Vec<u8>>,
    pub unsupported_code_source: Option<String>,
    pub architectures: Option<Vec<String>>,
    pub revision_id: Option<String>,
    pub dry_run: bool,
    pub publish: bool,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_marker: Option<String>,
}

/// Account-wide numbers for GetAccountSettings.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountSettings {
    pub total_code_size_limit: u64,
    pub code_size_unzipped: u64,
    pub code_size_zipped: u64,
    pub concurrent_executions: u64,
    pub unreserved_concurrent_executions: u64,
    pub total_code_size: u64,
    pub function_count: u64,
}
