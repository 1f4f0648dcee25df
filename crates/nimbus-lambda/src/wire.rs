//! Lambda's JSON shapes: request bodies (unknown members refused) and the rendering of
//! `FunctionConfiguration` and friends.

use std::collections::BTreeMap;

use base64::Engine;
use nimbus_core::model::{ConfigChange, FunctionRecord, LoggingConfig};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::LambdaError;

/// Parses a JSON body into `T`, with Lambda's error for unreadable content.
pub(crate) fn parse_body<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, LambdaError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        &b"{}"[..]
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        LambdaError::invalid_content(format!("Could not parse request body into json: {e}"))
    })
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(crate) struct EnvironmentIn {
    pub variables: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(crate) struct EphemeralStorageIn {
    pub size: i64,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(crate) struct TracingIn {
    pub mode: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(crate) struct DeadLetterIn {
    pub target_arn: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(crate) struct LoggingIn {
    pub log_format: Option<String>,
    pub application_log_level: Option<String>,
    pub system_log_level: Option<String>,
    pub log_group: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
// Some members are accepted (they are part of the API) without Nimbus acting on them yet.
#[allow(dead_code)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(crate) struct CodeIn {
    pub zip_file: Option<String>,
    #[serde(rename = "S3Bucket")]
    pub s3_bucket: Option<String>,
    #[serde(rename = "S3Key")]
    pub s3_key: Option<String>,
    #[serde(rename = "S3ObjectVersion")]
    pub s3_object_version: Option<String>,
    pub image_uri: Option<String>,
    #[serde(rename = "SourceKMSKeyArn")]
    pub source_kms_key_arn: Option<String>,
}

/// CreateFunction's body. Members Nimbus does not act on yet are accepted (they are part of
/// the API) but unknown members are refused.
#[derive(Debug, Deserialize, Default)]
// Some members are accepted (they are part of the API) without Nimbus acting on them yet.
#[allow(dead_code)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(crate) struct CreateFunctionIn {
    pub function_name: Option<String>,
    pub runtime: Option<String>,
    pub role: Option<String>,
    pub handler: Option<String>,
    pub code: Option<CodeIn>,
    pub description: Option<String>,
    pub timeout: Option<i64>,
    pub memory_size: Option<i64>,
    pub publish: Option<bool>,
    pub vpc_config: Option<Value>,
    pub package_type: Option<String>,
    pub dead_letter_config: Option<DeadLetterIn>,
    pub environment: Option<EnvironmentIn>,
    #[serde(rename = "KMSKeyArn")]
    pub kms_key_arn: Option<String>,
    pub tracing_config: Option<TracingIn>,
    pub tags: Option<BTreeMap<String, String>>,
    pub layers: Option<Vec<String>>,
    pub file_system_configs: Option<Value>,
    pub image_config: Option<Value>,
    pub code_signing_config_arn: Option<String>,
    pub architectures: Option<Vec<String>>,
    pub ephemeral_storage: Option<EphemeralStorageIn>,
    pub snap_start: Option<Value>,
    pub logging_config: Option<LoggingIn>,
    pub tenancy_config: Option<Value>,
    pub capacity_provider_config: Option<Value>,
    pub durable_config: Option<Value>,
    pub publish_to: Option<String>,
}

/// UpdateFunctionConfiguration's body.
#[derive(Debug, Deserialize, Default)]
// Some members are accepted (they are part of the API) without Nimbus acting on them yet.
#[allow(dead_code)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(crate) struct UpdateConfigurationIn {
    pub role: Option<String>,
    pub handler: Option<String>,
    pub description: Option<String>,
    pub timeout: Option<i64>,
    pub memory_size: Option<i64>,
    pub vpc_config: Option<Value>,
    pub environment: Option<EnvironmentIn>,
    pub runtime: Option<String>,
    pub dead_letter_config: Option<DeadLetterIn>,
    #[serde(rename = "KMSKeyArn")]
    pub kms_key_arn: Option<String>,
    pub tracing_config: Option<TracingIn>,
    pub revision_id: Option<String>,
    pub layers: Option<Vec<String>>,
    pub file_system_configs: Option<Value>,
    pub image_config: Option<Value>,
    pub ephemeral_storage: Option<EphemeralStorageIn>,
    pub snap_start: Option<Value>,
    pub logging_config: Option<LoggingIn>,
    pub capacity_provider_config: Option<Value>,
    pub durable_config: Option<Value>,
}

/// UpdateFunctionCode's body.
#[derive(Debug, Deserialize, Default)]
// Some members are accepted (they are part of the API) without Nimbus acting on them yet.
#[allow(dead_code)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(crate) struct UpdateCodeIn {
    pub zip_file: Option<String>,
    #[serde(rename = "S3Bucket")]
    pub s3_bucket: Option<String>,
    #[serde(rename = "S3Key")]
    pub s3_key: Option<String>,
    #[serde(rename = "S3ObjectVersion")]
    pub s3_object_version: Option<String>,
    pub image_uri: Option<String>,
    pub publish: Option<bool>,
    pub dry_run: Option<bool>,
    pub revision_id: Option<String>,
    pub architectures: Option<Vec<String>>,
    #[serde(rename = "SourceKMSKeyArn")]
    pub source_kms_key_arn: Option<String>,
    pub publish_to: Option<String>,
}

pub(crate) fn decode_zip(b64: &str) -> Result<Vec<u8>, LambdaError> {
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| {
            LambdaError::invalid_content(
                "Could not parse request body into json: ZipFile is not valid base64",
            )
        })
}

fn logging(l: LoggingIn) -> LoggingConfig {
    LoggingConfig {
        log_format: l.log_format,
        application_log_level: l.application_log_level,
        system_log_level: l.system_log_level,
        log_group: l.log_group,
    }
}

impl CreateFunctionIn {
    pub(crate) fn config(&mut self) -> ConfigChange {
        ConfigChange {
            runtime: self.runtime.take(),
            role: self.role.take(),
            handler: self.handler.take(),
            description: self.description.take(),
            timeout: self.timeout,
            memory_size: self.memory_size,
            environment: self
                .environment
                .take()
                .map(|e| e.variables.unwrap_or_default()),
            ephemeral_storage: self.ephemeral_storage.take().map(|e| e.size),
            tracing_mode: self.tracing_config.take().and_then(|t| t.mode),
            logging: self.logging_config.take().map(logging),
            dead_letter_target: self.dead_letter_config.take().map(|d| d.target_arn),
            layers: self.layers.take(),
        }
    }
}

impl UpdateConfigurationIn {
    pub(crate) fn config(&mut self) -> ConfigChange {
        ConfigChange {
            runtime: self.runtime.take(),
            role: self.role.take(),
            handler: self.handler.take(),
            description: self.description.take(),
            timeout: self.timeout,
            memory_size: self.memory_size,
            environment: self
                .environment
                .take()
                .map(|e| e.variables.unwrap_or_default()),
            ephemeral_storage: self.ephemeral_storage.take().map(|e| e.size),
            tracing_mode: self.tracing_config.take().and_then(|t| t.mode),
            logging: self.logging_config.take().map(logging),
            dead_letter_target: self.dead_letter_config.take().map(|d| d.target_arn),
            layers: self.layers.take(),
        }
    }
}

/// Renders `FunctionConfiguration`.
pub(crate) fn configuration(rec: &FunctionRecord, arn: &str, region: &str) -> Value {
    let mut c = json!({
        "FunctionName": rec.name,
        "FunctionArn": arn,
        "Runtime": rec.runtime,
        "Role": rec.role,
        "Handler": rec.handler,
        "CodeSize": rec.code_size,
        "Description": rec.description,
        "Timeout": rec.timeout,
        "MemorySize": rec.memory_size,
        "LastModified": rec.last_modified,
        "CodeSha256": rec.code_sha256,
        "Version": rec.version,
        "TracingConfig": { "Mode": rec.tracing_mode },
        "RevisionId": rec.revision_id,
        "State": rec.state.as_str(),
        "LastUpdateStatus": rec.last_update_status.as_str(),
        "PackageType": "Zip",
        "Architectures": rec.architectures,
        "EphemeralStorage": { "Size": rec.ephemeral_storage },
        "SnapStart": { "ApplyOn": "None", "OptimizationStatus": "Off" },
        "LoggingConfig": {
            "LogFormat": rec.logging.log_format.clone().unwrap_or_else(|| "Text".into()),
            "LogGroup": rec.log_group(),
        },
        "RuntimeVersionConfig": {
            "RuntimeVersionArn": format!("arn:aws:lambda:{region}::runtime:{}", runtime_hash(&rec.runtime)),
        },
    });
    let obj = c.as_object_mut();
    if let Some(o) = obj {
        if !rec.environment.is_empty() {
            o.insert(
                "Environment".into(),
                json!({ "Variables": rec.environment }),
            );
        }
        if let Some(r) = &rec.state_reason {
            o.insert("StateReason".into(), r.clone().into());
        }
        if let Some(r) = &rec.state_reason_code {
            o.insert("StateReasonCode".into(), r.clone().into());
        }
        if let Some(r) = &rec.last_update_status_reason {
            o.insert("LastUpdateStatusReason".into(), r.clone().into());
        }
        if let Some(r) = &rec.last_update_status_reason_code {
            o.insert("LastUpdateStatusReasonCode".into(), r.clone().into());
        }
        if let Some(t) = &rec.dead_letter_target {
            o.insert("DeadLetterConfig".into(), json!({ "TargetArn": t }));
        }
        if let Some(lc) = o.get_mut("LoggingConfig").and_then(Value::as_object_mut) {
            if let Some(l) = &rec.logging.application_log_level {
                lc.insert("ApplicationLogLevel".into(), l.clone().into());
            }
            if let Some(l) = &rec.logging.system_log_level {
                lc.insert("SystemLogLevel".into(), l.clone().into());
            }
        }
    }
    c
}

fn runtime_hash(runtime: &str) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let mut h: u64 = 0x9e3779b97f4a7c15;
    for i in 0..4u8 {
        for b in runtime.bytes().chain([i]) {
            h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
        }
        let _ = write!(out, "{h:016x}");
    }
    out
}
