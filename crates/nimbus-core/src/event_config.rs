//! Asynchronous invocation settings per function and qualifier (`$LATEST`, a version or an alias) (`PutFunctionEventInvokeConfig`
//! and friends): how often an event is retried after function errors, how old it may grow, and
//! where its outcome is sent. Stored as records (kind `event-invoke-config`) and kept in memory.

use std::sync::Arc;

use nimbus_store::Store;
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::functions::FunctionService;
use crate::names::FunctionRef;
use crate::records::RecordMap;

const KIND: &str = "event-invoke-config";

/// Lambda's default `MaximumRetryAttempts` when nothing is configured.
pub const DEFAULT_MAX_RETRIES: u32 = 2;
/// Lambda's default `MaximumEventAgeInSeconds`: six hours.
pub const DEFAULT_MAX_EVENT_AGE_SECS: u32 = 21_600;

/// A function's (or qualifier's) asynchronous invocation settings, as stored
/// (`FunctionEventInvokeConfig`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventInvokeConfig {
    /// The unqualified function name.
    pub function: String,
    /// `$LATEST`, a version number or an alias name.
    pub qualifier: String,
    /// `MaximumRetryAttempts` after function errors, 0–2 (`None`: the default, 2).
    pub maximum_retry_attempts: Option<u32>,
    /// `MaximumEventAgeInSeconds`, 60–21600 (`None`: the default, 6 hours).
    pub maximum_event_age_seconds: Option<u32>,
    /// `DestinationConfig.OnSuccess.Destination`: the ARN of a function or queue.
    pub on_success: Option<String>,
    /// `DestinationConfig.OnFailure.Destination`: the ARN of a function or queue.
    pub on_failure: Option<String>,
    /// Epoch seconds.
    pub last_modified: f64,
}

impl EventInvokeConfig {
    /// `MaximumRetryAttempts` in force (the default when unset).
    pub fn max_retries(&self) -> u32 {
        self.maximum_retry_attempts.unwrap_or(DEFAULT_MAX_RETRIES)
    }

    /// `MaximumEventAgeInSeconds` in force (the default when unset).
    pub fn max_age_secs(&self) -> u32 {
        self.maximum_event_age_seconds
            .unwrap_or(DEFAULT_MAX_EVENT_AGE_SECS)
    }
}

/// The settings a request carries; `None` means "not given".
#[derive(Debug, Clone, Default)]
pub struct EventConfigInput {
    /// `MaximumRetryAttempts`, checked to be 0–2.
    pub maximum_retry_attempts: Option<i64>,
    /// `MaximumEventAgeInSeconds`, checked to be 60–21600.
    pub maximum_event_age_seconds: Option<i64>,
    /// `DestinationConfig.OnSuccess.Destination` ARN.
    pub on_success: Option<String>,
    /// `DestinationConfig.OnFailure.Destination` ARN.
    pub on_failure: Option<String>,
}

/// Where an outcome goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Destination {
    /// A Lambda function (name, optional qualifier).
    Function {
        /// The unqualified function name.
        name: String,
        /// The version or alias (`None`: `$LATEST`).
        qualifier: Option<String>,
    },
    /// A target delivered through the sink registry (a queue), by ARN.
    Sink {
        /// The target's ARN (today an SQS queue's).
        arn: String,
    },
}

/// Parses a destination ARN: a function (optionally qualified) or an SQS queue. Topics, event
/// buses and buckets are refused until those services exist in Nimbus.
pub fn parse_destination(arn: &str) -> Result<Destination> {
    let parts: Vec<&str> = arn.split(':').collect();
    if parts.len() < 6 || parts[0] != "arn" {
        return Err(CoreError::InvalidParameter(format!(
            "The destination ARN {arn} is invalid."
        )));
    }
    match parts[2] {
        "lambda" if parts[5] == "function" && (7..=8).contains(&parts.len()) => {
            let r = crate::names::parse_function_ref(arn)?;
            Ok(Destination::Function {
                name: r.name,
                qualifier: r.qualifier,
            })
        }
        "sqs" if parts.len() == 6 && !parts[5].is_empty() => Ok(Destination::Sink {
            arn: arn.to_string(),
        }),
        "sns" | "events" | "s3" => Err(CoreError::InvalidParameter(format!(
            "The destination ARN {arn} is not supported yet: Nimbus delivers asynchronous invocation records to Lambda functions and queues; {} destinations arrive with that service.",
            parts[2]
        ))),
        _ => Err(CoreError::InvalidParameter(format!(
            "The destination ARN {arn} is invalid."
        ))),
    }
}

fn check_range(v: i64, field: &str, min: i64, max: i64) -> Result<u32> {
    if v < min {
        return Err(CoreError::Validation(format!(
            "1 validation error detected: Value '{v}' at '{field}' failed to satisfy constraint: Member must have value greater than or equal to {min}"
        )));
    }
    if v > max {
        return Err(CoreError::Validation(format!(
            "1 validation error detected: Value '{v}' at '{field}' failed to satisfy constraint: Member must have value less than or equal to {max}"
        )));
    }
    Ok(v as u32)
}

/// The asynchronous invocation settings of all functions, keyed `{function}:{qualifier}`.
pub struct EventConfigs {
    functions: Arc<FunctionService>,
    map: RecordMap<EventInvokeConfig>,
}

fn key(function: &str, qualifier: &str) -> String {
    format!("{function}:{qualifier}")
}

impl EventConfigs {
    /// Loads the stored settings; `functions` resolves the functions and qualifiers requests name.
    pub fn open(store: Store, functions: Arc<FunctionService>) -> Result<EventConfigs> {
        Ok(EventConfigs {
            functions,
            map: RecordMap::open(store, KIND)?,
        })
    }

    /// The function and qualifier a request names: both must exist (`$LATEST`, a version or an
    /// alias).
    fn target(&self, r: &FunctionRef) -> Result<(String, String)> {
        let rec = self.functions.resolve(r)?;
        Ok((
            rec.name.clone(),
            r.qualifier.clone().unwrap_or_else(|| "$LATEST".into()),
        ))
    }

    fn not_configured(&self, function: &str, qualifier: &str) -> CoreError {
        CoreError::NotFound(format!(
            "The function {}:{qualifier} doesn't have an EventInvokeConfig",
            self.functions.arn(function)
        ))
    }

    /// The settings in force for an invocation (defaults when none are configured).
    pub fn effective(&self, function: &str, qualifier: Option<&str>) -> Option<EventInvokeConfig> {
        self.map.get(&key(function, qualifier.unwrap_or("$LATEST")))
    }

    fn validate(input: &EventConfigInput) -> Result<(Option<u32>, Option<u32>)> {
        let retries = input
            .maximum_retry_attempts
            .map(|v| check_range(v, "maximumRetryAttempts", 0, 2))
            .transpose()?;
        let age = input
            .maximum_event_age_seconds
            .map(|v| check_range(v, "maximumEventAgeInSeconds", 60, 21_600))
            .transpose()?;
        for d in [&input.on_success, &input.on_failure].into_iter().flatten() {
            parse_destination(d)?;
        }
        Ok((retries, age))
    }

    async fn save(&self, c: EventInvokeConfig) -> Result<EventInvokeConfig> {
        self.map.put(key(&c.function, &c.qualifier), c).await
    }

    fn now() -> f64 {
        chrono::Utc::now().timestamp_millis() as f64 / 1000.0
    }

    /// PutFunctionEventInvokeConfig: replaces every setting (omitted ones are removed).
    pub async fn put(&self, r: &FunctionRef, input: EventConfigInput) -> Result<EventInvokeConfig> {
        let _edit = self.map.edit().await;
        let (function, qualifier) = self.target(r)?;
        let (retries, age) = Self::validate(&input)?;
        self.save(EventInvokeConfig {
            function,
            qualifier,
            maximum_retry_attempts: retries,
            maximum_event_age_seconds: age,
            on_success: input.on_success,
            on_failure: input.on_failure,
            last_modified: Self::now(),
        })
        .await
    }

    /// UpdateFunctionEventInvokeConfig: changes only the settings given.
    pub async fn update(
        &self,
        r: &FunctionRef,
        input: EventConfigInput,
    ) -> Result<EventInvokeConfig> {
        let _edit = self.map.edit().await;
        let (function, qualifier) = self.target(r)?;
        let (retries, age) = Self::validate(&input)?;
        let mut c = self
            .effective(&function, Some(&qualifier))
            .ok_or_else(|| self.not_configured(&function, &qualifier))?;
        if retries.is_some() {
            c.maximum_retry_attempts = retries;
        }
        if age.is_some() {
            c.maximum_event_age_seconds = age;
        }
        if input.on_success.is_some() {
            c.on_success = input.on_success;
        }
        if input.on_failure.is_some() {
            c.on_failure = input.on_failure;
        }
        c.last_modified = Self::now();
        self.save(c).await
    }

    /// GetFunctionEventInvokeConfig: `NotFound` when nothing is configured for the function and
    /// qualifier.
    pub fn get(&self, r: &FunctionRef) -> Result<EventInvokeConfig> {
        let (function, qualifier) = self.target(r)?;
        self.effective(&function, Some(&qualifier))
            .ok_or_else(|| self.not_configured(&function, &qualifier))
    }

    /// DeleteFunctionEventInvokeConfig: `NotFound` when nothing is configured.
    pub async fn delete(&self, r: &FunctionRef) -> Result<()> {
        let (function, qualifier) = self.target(r)?;
        if self.effective(&function, Some(&qualifier)).is_none() {
            return Err(self.not_configured(&function, &qualifier));
        }
        self.map.remove(&key(&function, &qualifier)).await
    }

    /// ListFunctionEventInvokeConfigs.
    pub fn list(&self, r: &FunctionRef) -> Result<Vec<EventInvokeConfig>> {
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

    /// Forgets a deleted function's settings.
    pub fn forget(&self, function: &str) {
        self.map.remove_prefix(&format!("{function}:"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_are_parsed_or_refused_clearly() {
        assert_eq!(
            parse_destination("arn:aws:lambda:us-east-1:000000000000:function:sink").ok(),
            Some(Destination::Function {
                name: "sink".into(),
                qualifier: None
            })
        );
        assert_eq!(
            parse_destination("arn:aws:sqs:us-east-1:000000000000:q").ok(),
            Some(Destination::Sink {
                arn: "arn:aws:sqs:us-east-1:000000000000:q".into()
            })
        );
        assert!(matches!(
            parse_destination("arn:aws:sns:us-east-1:000000000000:t"),
            Err(CoreError::InvalidParameter(m)) if m.contains("not supported yet")
        ));
        assert!(matches!(
            parse_destination("nope"),
            Err(CoreError::InvalidParameter(m)) if m.contains("invalid")
        ));
    }

    #[test]
    fn ranges_are_checked_with_aws_messages() {
        assert!(matches!(
            check_range(3, "maximumRetryAttempts", 0, 2),
            Err(CoreError::Validation(m)) if m.ends_with("less than or equal to 2")
        ));
        assert!(matches!(
            check_range(59, "maximumEventAgeInSeconds", 60, 21_600),
            Err(CoreError::Validation(m)) if m.ends_with("greater than or equal to 60")
        ));
        assert_eq!(check_range(2, "x", 0, 2).ok(), Some(2));
    }
}
