//! Validation of function configuration, with Lambda's error kinds and message texts:
//! model constraints are `ValidationException` ("1 validation error detected: …"), semantic
//! problems are `InvalidParameterValueException`.

use std::collections::BTreeMap;

use crate::error::{CoreError, Result};
use crate::model::{ConfigChange, LoggingConfig};

/// Runtimes Lambda has retired for create/update.
const DEPRECATED_RUNTIMES: &[&str] = &[
    "python2.7",
    "python3.6",
    "python3.7",
    "python3.8",
    "nodejs",
    "nodejs4.3",
    "nodejs4.3-edge",
    "nodejs6.10",
    "nodejs8.10",
    "nodejs10.x",
    "nodejs12.x",
    "nodejs14.x",
    "nodejs16.x",
    "dotnetcore1.0",
    "dotnetcore2.0",
    "dotnetcore2.1",
    "dotnetcore3.1",
    "ruby2.5",
    "ruby2.7",
    "go1.x",
    "java8",
    "provided",
];

/// Runtimes Lambda knows but Nimbus does not run yet.
const OTHER_AWS_RUNTIMES: &[&str] = &[
    "java11",
    "java17",
    "java21",
    "java8.al2",
    "dotnet6",
    "dotnet8",
    "ruby3.2",
    "ruby3.3",
    "ruby3.4",
    "nodejs24.x",
    "python3.14",
    "dotnet10",
    "java25",
];

/// Reserved environment variables (cannot be set by users).
pub const RESERVED_ENV: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

/// The smallest `MemorySize`, in MiB.
pub const MIN_MEMORY: i64 = 128;
/// The largest `MemorySize`, in MiB.
pub const MAX_MEMORY: i64 = 10240;
/// The longest `Timeout`, in seconds (15 minutes).
pub const MAX_TIMEOUT: i64 = 900;
/// The largest environment, in bytes of its variables' JSON text (Lambda's 4 KB).
pub const MAX_ENV_BYTES: usize = 4096;

fn one(value: impl std::fmt::Display, field: &str, constraint: &str) -> CoreError {
    CoreError::Validation(format!(
        "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {constraint}"
    ))
}

/// Classifies a runtime id: `Ok(())` if it is one Lambda accepts today.
pub fn runtime_id(runtime: &str, supported: &[&str]) -> Result<()> {
    if supported.contains(&runtime) || OTHER_AWS_RUNTIMES.contains(&runtime) {
        return Ok(());
    }
    if DEPRECATED_RUNTIMES.contains(&runtime) {
        return Err(CoreError::InvalidParameter(format!(
            "The runtime parameter of {runtime} is no longer supported for creating or updating AWS Lambda functions. We recommend you use a supported runtime while creating or updating functions."
        )));
    }
    let mut all: Vec<&str> = supported.to_vec();
    all.extend_from_slice(OTHER_AWS_RUNTIMES);
    Err(one(
        runtime,
        "runtime",
        &format!("Member must satisfy enum value set: [{}]", all.join(", ")),
    ))
}

/// Checks an execution role ARN's shape (`arn:aws:iam::<12 digits>:role/<path>`); the role itself
/// is not looked up.
pub fn role(role: &str) -> Result<()> {
    // arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+
    let ok = (|| {
        let rest = role.strip_prefix("arn:")?;
        let (partition, rest) = rest.split_once(':')?;
        if !partition.is_empty() && !partition.starts_with("aws") {
            return None;
        }
        let rest = rest.strip_prefix("iam::")?;
        let (acct, rest) = rest.split_once(':')?;
        if acct.len() != 12 || !acct.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let path = rest.strip_prefix("role")?;
        let path = path.strip_prefix('/').unwrap_or(path);
        (!path.is_empty()
            && path
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@-_/".contains(&b)))
        .then_some(())
    })();
    ok.ok_or_else(|| {
        one(
            role,
            "role",
            "Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*)?:iam::\\d{12}:role/?[a-zA-Z_0-9+=,.@\\-_/]+",
        )
    })
}

/// Checks a handler: 1–128 characters without whitespace.
pub fn handler(h: &str) -> Result<()> {
    if h.len() > 128 {
        return Err(one(
            h,
            "handler",
            "Member must have length less than or equal to 128",
        ));
    }
    if h.is_empty() || h.chars().any(char::is_whitespace) {
        return Err(one(
            h,
            "handler",
            "Member must satisfy regular expression pattern: [^\\s]+",
        ));
    }
    Ok(())
}

/// Checks `MemorySize`: [`MIN_MEMORY`]–[`MAX_MEMORY`] MiB.
pub fn memory(m: i64) -> Result<()> {
    if m < MIN_MEMORY {
        return Err(one(
            m,
            "memorySize",
            &format!("Member must have value greater than or equal to {MIN_MEMORY}"),
        ));
    }
    if m > MAX_MEMORY {
        return Err(one(
            m,
            "memorySize",
            &format!("Member must have value less than or equal to {MAX_MEMORY}"),
        ));
    }
    Ok(())
}

/// Checks `Timeout`: 1–[`MAX_TIMEOUT`] seconds.
pub fn timeout(t: i64) -> Result<()> {
    if t < 1 {
        return Err(one(
            t,
            "timeout",
            "Member must have value greater than or equal to 1",
        ));
    }
    if t > MAX_TIMEOUT {
        return Err(one(
            t,
            "timeout",
            &format!("Member must have value less than or equal to {MAX_TIMEOUT}"),
        ));
    }
    Ok(())
}

/// Checks `EphemeralStorage.Size`: 512–10240 MiB.
pub fn ephemeral_storage(size: i64) -> Result<()> {
    if !(512..=10240).contains(&size) {
        return Err(one(
            size,
            "ephemeralStorage.size",
            if size < 512 {
                "Member must have value greater than or equal to 512"
            } else {
                "Member must have value less than or equal to 10240"
            },
        ));
    }
    Ok(())
}

/// Checks a description: at most 256 characters.
pub fn description(d: &str) -> Result<()> {
    if d.chars().count() > 256 {
        return Err(one(
            d,
            "description",
            "Member must have length less than or equal to 256",
        ));
    }
    Ok(())
}

/// Checks environment variables: keys of `[A-Za-z][A-Za-z0-9_]+`, none reserved by Lambda
/// (`AWS_REGION`, `LAMBDA_TASK_ROOT`…), and at most [`MAX_ENV_BYTES`] as JSON.
pub fn environment(vars: &BTreeMap<String, String>) -> Result<()> {
    for key in vars.keys() {
        let mut chars = key.chars();
        let ok = key.len() >= 2
            && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(CoreError::Validation(
                "1 validation error detected: Value at 'environment.variables' failed to satisfy constraint: Map keys must satisfy constraint: [Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+]"
                    .into(),
            ));
        }
    }
    let reserved: Vec<&str> = vars
        .keys()
        .filter(|k| RESERVED_ENV.contains(&k.as_str()))
        .map(String::as_str)
        .collect();
    if !reserved.is_empty() {
        return Err(CoreError::InvalidParameter(format!(
            "Lambda was unable to configure your environment variables because the environment variables you have provided contains reserved keys that are currently not supported for modification. Reserved keys used in this request: {}",
            reserved.join(", ")
        )));
    }
    // Lambda measures the variables as their JSON text.
    let measured = serde_json::to_string(vars).unwrap_or_default();
    if measured.len() > MAX_ENV_BYTES {
        return Err(CoreError::InvalidParameter(format!(
            "Lambda was unable to configure your environment variables because the environment variables you have provided exceeded the 4KB limit. String measured: {measured}"
        )));
    }
    Ok(())
}

/// Checks `Architectures`: exactly one, `x86_64` or `arm64`.
pub fn architectures(a: &[String]) -> Result<()> {
    if a.len() != 1 {
        return Err(one(
            format!("[{}]", a.join(", ")),
            "architectures",
            "Member must have length less than or equal to 1",
        ));
    }
    if a[0] != "x86_64" && a[0] != "arm64" {
        return Err(one(
            format!("[{}]", a[0]),
            "architectures",
            "Member must satisfy constraint: [Member must satisfy enum value set: [x86_64, arm64]]",
        ));
    }
    Ok(())
}

/// Checks a `LoggingConfig`: known format and levels, and levels only with the `JSON` format.
pub fn logging(l: &LoggingConfig) -> Result<()> {
    if let Some(f) = &l.log_format
        && f != "JSON"
        && f != "Text"
    {
        return Err(one(
            f,
            "loggingConfig.logFormat",
            "Member must satisfy enum value set: [Text, JSON]",
        ));
    }
    if let Some(a) = &l.application_log_level
        && !["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"].contains(&a.as_str())
    {
        return Err(one(
            a,
            "loggingConfig.applicationLogLevel",
            "Member must satisfy enum value set: [TRACE, DEBUG, INFO, WARN, ERROR, FATAL]",
        ));
    }
    if let Some(s) = &l.system_log_level
        && !["DEBUG", "INFO", "WARN"].contains(&s.as_str())
    {
        return Err(one(
            s,
            "loggingConfig.systemLogLevel",
            "Member must satisfy enum value set: [DEBUG, INFO, WARN]",
        ));
    }
    if (l.application_log_level.is_some() || l.system_log_level.is_some())
        && l.log_format.as_deref() != Some("JSON")
    {
        return Err(CoreError::InvalidParameter(
            "Application and system log levels can only be set when LogFormat is JSON.".into(),
        ));
    }
    Ok(())
}

/// Validates every field present in a change.
pub fn config_change(c: &ConfigChange, supported_runtimes: &[&str]) -> Result<()> {
    if let Some(r) = &c.runtime {
        runtime_id(r, supported_runtimes)?;
    }
    if let Some(r) = &c.role {
        role(r)?;
    }
    if let Some(h) = &c.handler {
        handler(h)?;
    }
    if let Some(d) = &c.description {
        description(d)?;
    }
    if let Some(t) = c.timeout {
        timeout(t)?;
    }
    if let Some(m) = c.memory_size {
        memory(m)?;
    }
    if let Some(e) = &c.environment {
        environment(e)?;
    }
    if let Some(s) = c.ephemeral_storage {
        ephemeral_storage(s)?;
    }
    if let Some(l) = &c.logging {
        logging(l)?;
    }
    if let Some(t) = &c.tracing_mode
        && t != "Active"
        && t != "PassThrough"
    {
        return Err(one(
            t,
            "tracingConfig.mode",
            "Member must satisfy enum value set: [Active, PassThrough]",
        ));
    }
    if let Some(layers) = &c.layers
        && !layers.is_empty()
    {
        return Err(CoreError::InvalidParameter(
            "Layers are not supported by this Nimbus version yet; bundle the layer's files into the function's zip."
                .into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_match_lambda() {
        assert!(memory(128).is_ok() && memory(10240).is_ok());
        assert!(matches!(memory(127), Err(CoreError::Validation(_))));
        assert!(matches!(memory(10241), Err(CoreError::Validation(_))));
        assert!(timeout(900).is_ok());
        let Err(CoreError::Validation(m)) = timeout(3000) else {
            panic!("timeout 3000 must fail")
        };
        assert_eq!(
            m,
            "1 validation error detected: Value '3000' at 'timeout' failed to satisfy constraint: Member must have value less than or equal to 900"
        );
        assert!(matches!(timeout(0), Err(CoreError::Validation(_))));
    }

    #[test]
    fn environment_rules() {
        let mut v = BTreeMap::new();
        v.insert("GOOD_KEY".to_string(), "x".to_string());
        assert!(environment(&v).is_ok());
        v.insert("AWS_REGION".to_string(), "x".to_string());
        assert!(
            matches!(environment(&v), Err(CoreError::InvalidParameter(m)) if m.ends_with("AWS_REGION"))
        );
        let mut bad = BTreeMap::new();
        bad.insert("1abc".to_string(), "x".to_string());
        assert!(matches!(environment(&bad), Err(CoreError::Validation(_))));
        let mut big = BTreeMap::new();
        big.insert("BIG".to_string(), "x".repeat(4100));
        assert!(
            matches!(environment(&big), Err(CoreError::InvalidParameter(m)) if m.contains("4KB"))
        );
    }

    #[test]
    fn roles_runtimes_handlers() {
        assert!(role("arn:aws:iam::123456789012:role/lambda-role").is_ok());
        assert!(role("arn:aws:iam::123:role/x").is_err());
        assert!(role("not-an-arn").is_err());
        assert!(runtime_id("python3.12", &["python3.12"]).is_ok());
        assert!(matches!(
            runtime_id("python2.7", &[]),
            Err(CoreError::InvalidParameter(_))
        ));
        assert!(matches!(
            runtime_id("cobol", &[]),
            Err(CoreError::Validation(_))
        ));
        assert!(handler("index.handler").is_ok());
        assert!(handler("has space").is_err());
    }
}
