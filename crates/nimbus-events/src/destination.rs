//! The invocation record asynchronous invocation sends to an `OnSuccess` / `OnFailure`
//! destination.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Lambda's invocation record (`version` 1.0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InvocationRecord {
    /// Always `1.0`.
    pub version: String,
    /// When the record was made, `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub timestamp: String,
    /// Which invocation, and why the record was sent.
    pub request_context: RecordRequestContext,
    /// The event, as JSON where it parses (else the text).
    pub request_payload: Value,
    /// The last invocation's response, absent when the function never ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_context: Option<RecordResponseContext>,
    /// The last invocation's answer, as JSON where it parses (else the text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_payload: Option<Value>,
}

/// The record's `requestContext`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecordRequestContext {
    /// The asynchronous invocation's request id.
    pub request_id: String,
    /// The qualified ARN of the function (`…:function:name:$LATEST`).
    pub function_arn: String,
    /// `Success`, `RetriesExhausted` or `EventAgeExceeded`.
    pub condition: String,
    /// How many times the function was invoked for the event.
    pub approximate_invoke_count: u32,
}

/// The record's `responseContext`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecordResponseContext {
    /// The Invoke status code (200).
    pub status_code: u16,
    /// The version that ran.
    pub executed_version: String,
    /// `Unhandled` when the last invocation failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_sample_round_trips() {
        let (expected, back) = crate::round_trip::<InvocationRecord>(include_str!(
            "../fixtures/invocation-record.json"
        ));
        assert_eq!(expected, back);
    }
}
