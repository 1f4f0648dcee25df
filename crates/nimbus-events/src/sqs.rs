//! The event a queue → function mapping delivers (Lambda's SQS event): one record per message.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `{"Records": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqsEvent {
    /// The batch, in the order the messages were received.
    #[serde(rename = "Records")]
    pub records: Vec<SqsRecord>,
}

/// One message of the batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SqsRecord {
    /// The message's id (SQS's `MessageId`).
    pub message_id: String,
    /// The receipt handle of this receipt (what deletes the message).
    pub receipt_handle: String,
    /// The message body, as sent.
    pub body: String,
    /// System attributes (`ApproximateReceiveCount`, `SentTimestamp`, `SenderId`,
    /// `ApproximateFirstReceiveTimestamp`, and on FIFO queues `SequenceNumber`,
    /// `MessageGroupId`, `MessageDeduplicationId`), all as strings.
    pub attributes: BTreeMap<String, String>,
    /// The message attributes, lower camel case as in the event (not the API's casing).
    pub message_attributes: BTreeMap<String, SqsMessageAttribute>,
    /// SQS's MD5 of the message attributes; `null` when there are none.
    #[serde(default)]
    pub md5_of_message_attributes: Option<String>,
    /// MD5 of the body (hex).
    pub md5_of_body: String,
    /// Always `aws:sqs`.
    pub event_source: String,
    /// The queue's ARN.
    #[serde(rename = "eventSourceARN")]
    pub event_source_arn: String,
    /// The queue's region.
    pub aws_region: String,
}

/// One message attribute as the event carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SqsMessageAttribute {
    /// A `String` value (also `Number` values, as text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_value: Option<String>,
    /// A `Binary` value, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary_value: Option<String>,
    /// Always present, always empty (reserved by SQS).
    #[serde(default)]
    pub string_list_values: Vec<String>,
    /// Always present, always empty (reserved by SQS).
    #[serde(default)]
    pub binary_list_values: Vec<String>,
    /// `String`, `Number` or `Binary`, with an optional `.custom` suffix.
    pub data_type: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_sample_round_trips() {
        let (mut expected, back) =
            crate::round_trip::<SqsEvent>(include_str!("../fixtures/sqs-event.json"));
        // Live events carry `md5OfMessageAttributes: null` for messages without attributes; the
        // documented sample predates the member.
        for r in expected["Records"].as_array_mut().expect("records") {
            r["md5OfMessageAttributes"] = serde_json::Value::Null;
        }
        assert_eq!(expected, back);
    }

    #[test]
    fn unknown_members_are_refused() {
        let bad = r#"{"Records": [], "Extra": 1}"#;
        assert!(serde_json::from_str::<SqsEvent>(bad).is_err());
    }
}
