//! SQS's operations as typed requests and results, between the two wire codecs and the queue
//! service: the JSON protocol ([`crate::wire`]) and the query protocol ([`crate::query`]) both
//! decode into [`Request`] (structs that refuse unknown members) and render what [`execute`]
//! returns, so every operation and every error behaves the same on both. Errors are mapped to
//! SQS's error shapes and query codes once, here ([`SqsError`]).

use std::collections::{BTreeMap, HashSet};

use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::service::{
    MessageAttribute, Outgoing, QueueError, QueueService, Received, Sent, md5_of_attributes,
    md5_of_body, md5_of_system_attributes,
};

/// Entries a batch request may carry (SQS's limit).
pub const MAX_BATCH: usize = 10;
/// Message attributes a message may carry (SQS's limit).
pub const MAX_MESSAGE_ATTRIBUTES: usize = 10;
/// The largest SendMessageBatch, all bodies and attributes together.
pub const MAX_BATCH_BYTES: usize = 1_048_576;

/// An SQS error: its shape (`__type` in JSON), its query-protocol code (`awsQueryError`, also
/// in JSON's `x-amzn-query-error`), the message and the HTTP status.
#[derive(Debug, Clone)]
pub struct SqsError {
    /// SQS's error shape, the JSON protocol's `__type` (e.g. `QueueDoesNotExist`).
    pub shape: &'static str,
    /// The query protocol's error code (e.g. `AWS.SimpleQueueService.NonExistentQueue`), also sent
    /// as JSON's `x-amzn-query-error`; batch entries report it as their `Code`.
    pub query_code: &'static str,
    /// The human-readable message, worded as SQS words it.
    pub message: String,
    /// The HTTP status: 400 for the caller's errors, 500 for Nimbus's own (a 5xx also marks a batch
    /// entry as not the sender's fault).
    pub status: StatusCode,
}

impl SqsError {
    /// A client error (400) of this shape and query code.
    pub fn new(shape: &'static str, query_code: &'static str, message: impl Into<String>) -> Self {
        SqsError {
            shape,
            query_code,
            message: message.into(),
            status: StatusCode::BAD_REQUEST,
        }
    }

    /// `InvalidParameterValue` (400) with this message.
    pub fn invalid(message: impl Into<String>) -> Self {
        SqsError::new("InvalidParameterValue", "InvalidParameterValue", message)
    }

    /// `MissingParameter` (400) naming the wire member `param` (e.g. `ReceiptHandle`).
    pub fn missing(param: &str) -> Self {
        QueueError::MissingParameter(param.to_string()).into()
    }
}

impl nimbus_edge::protocol::AwsError for SqsError {
    fn code(&self) -> &str {
        self.shape
    }

    fn query_code(&self) -> &str {
        self.query_code
    }

    fn status(&self) -> StatusCode {
        self.status
    }

    fn message(&self) -> &str {
        &self.message
    }
}

impl From<QueueError> for SqsError {
    fn from(e: QueueError) -> Self {
        let msg = e.to_string();
        let (shape, code) = match e {
            QueueError::NoQueue => (
                "QueueDoesNotExist",
                "AWS.SimpleQueueService.NonExistentQueue",
            ),
            QueueError::NameExists(_) => ("QueueNameExists", "QueueAlreadyExists"),
            QueueError::InvalidParameter(_) => ("InvalidParameterValue", "InvalidParameterValue"),
            QueueError::MissingParameter(_) => ("MissingParameter", "MissingParameter"),
            QueueError::InvalidAttributeName(_) => ("InvalidAttributeName", "InvalidAttributeName"),
            QueueError::InvalidAttribute(_) => ("InvalidAttributeValue", "InvalidAttributeValue"),
            QueueError::ReceiptHandleInvalid(_) => {
                ("ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid")
            }
            QueueError::InvalidMessageContents(_) => {
                ("InvalidMessageContents", "InvalidMessageContents")
            }
            QueueError::EmptyBatch(_) => (
                "EmptyBatchRequest",
                "AWS.SimpleQueueService.EmptyBatchRequest",
            ),
            QueueError::TooManyEntries(_) => (
                "TooManyEntriesInBatchRequest",
                "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
            ),
            QueueError::DistinctIds(_) => (
                "BatchEntryIdsNotDistinct",
                "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
            ),
            QueueError::InvalidBatchEntryId(_) => (
                "InvalidBatchEntryId",
                "AWS.SimpleQueueService.InvalidBatchEntryId",
            ),
            QueueError::BatchRequestTooLong(_) => (
                "BatchRequestTooLong",
                "AWS.SimpleQueueService.BatchRequestTooLong",
            ),
            QueueError::OverLimit(_) => ("OverLimit", "OverLimit"),
            QueueError::Unsupported(_) => (
                "UnsupportedOperation",
                "AWS.SimpleQueueService.UnsupportedOperation",
            ),
            QueueError::Core(_) => {
                return SqsError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    ..SqsError::new("InternalError", "InternalError", msg)
                };
            }
        };
        SqsError::new(shape, code, msg)
    }
}

// ---- requests ----------------------------------------------------------------------------

/// CreateQueue's input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CreateQueue {
    /// `QueueName`: 1–80 of `[A-Za-z0-9_-]`, ending in `.fifo` for a FIFO queue.
    pub queue_name: String,
    /// `Attributes`: queue attributes by SQS name (`VisibilityTimeout`, `FifoQueue`,
    /// `RedrivePolicy`…); the ones not given take SQS's defaults.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// `tags` (lower case on the wire, as SQS spells it): at most 50, not compared when the queue
    /// already exists.
    #[serde(default, rename = "tags")]
    pub tags: BTreeMap<String, String>,
}

/// GetQueueUrl's input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct GetQueueUrl {
    /// `QueueName` of the queue to look up.
    pub queue_name: String,
    /// `QueueOwnerAWSAccountId`: any account other than Nimbus's own answers `QueueDoesNotExist`.
    #[serde(default, rename = "QueueOwnerAWSAccountId")]
    pub owner: Option<String>,
}

/// ListQueues' input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ListQueues {
    /// `QueueNamePrefix`: only queues whose name starts with it.
    pub queue_name_prefix: Option<String>,
    /// `NextToken` from a previous page (an offset into the sorted list).
    pub next_token: Option<String>,
    /// `MaxResults`, 1–1000; only when given is a `NextToken` returned.
    pub max_results: Option<i64>,
}

/// Operations that take only the queue.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct QueueOnly {
    /// `QueueUrl`: the queue's URL (a bare name or an ARN is taken too).
    pub queue_url: String,
}

/// ListDeadLetterSourceQueues' input: the queues whose redrive policy targets this one.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ListDeadLetterSourceQueues {
    /// `QueueUrl` of the dead-letter queue.
    pub queue_url: String,
    /// `NextToken` from a previous page.
    pub next_token: Option<String>,
    /// `MaxResults`, 1–1000; only when given is a `NextToken` returned.
    pub max_results: Option<i64>,
}

/// GetQueueAttributes' input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct GetQueueAttributes {
    /// `QueueUrl` of the queue.
    pub queue_url: String,
    /// `AttributeNames`: SQS attribute names or `All`; none asked, none returned; an unknown name
    /// is `InvalidAttributeName`.
    #[serde(default)]
    pub attribute_names: Vec<String>,
}

/// SetQueueAttributes' input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct SetQueueAttributes {
    /// `QueueUrl` of the queue.
    pub queue_url: String,
    /// `Attributes` to set, merged over the current ones; an empty `Policy` or `RedrivePolicy`
    /// removes it.
    pub attributes: BTreeMap<String, String>,
}

/// A message (or message system) attribute as sent: SQS's `MessageAttributeValue`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct AttributeValue {
    /// `DataType`: `String`, `Number` or `Binary`, optionally with a custom suffix (`Number.int`);
    /// required.
    pub data_type: Option<String>,
    /// `StringValue`, for `String` and `Number` types (a `Number` must parse as one).
    pub string_value: Option<String>,
    /// `BinaryValue`, base64, for the `Binary` type.
    pub binary_value: Option<String>,
    /// `StringListValues`: reserved by SQS; any value is refused.
    #[serde(default)]
    pub string_list_values: Vec<String>,
    /// `BinaryListValues`: reserved by SQS; any value is refused.
    #[serde(default)]
    pub binary_list_values: Vec<String>,
}

/// SendMessage's input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct SendMessage {
    /// `QueueUrl` of the queue.
    pub queue_url: String,
    /// `MessageBody`: XML 1.0 characters only, at most the queue's `MaximumMessageSize` with the
    /// attributes.
    pub message_body: String,
    /// `DelaySeconds`, 0–900, overriding the queue's; refused on FIFO queues.
    pub delay_seconds: Option<i64>,
    /// `MessageAttributes`, at most 10.
    #[serde(default)]
    pub message_attributes: BTreeMap<String, AttributeValue>,
    /// `MessageSystemAttributes`: only `AWSTraceHeader` is accepted.
    #[serde(default)]
    pub message_system_attributes: BTreeMap<String, AttributeValue>,
    /// `MessageDeduplicationId` (FIFO queues, unless content-based deduplication is on).
    pub message_deduplication_id: Option<String>,
    /// `MessageGroupId`: required on FIFO queues.
    pub message_group_id: Option<String>,
}

/// One entry of SendMessageBatch: SendMessage's members under an `Id`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct SendMessageBatchEntry {
    /// `Id`: the caller's entry id, 1–80 of `[A-Za-z0-9_-]`, distinct within the batch; echoed in
    /// the result.
    pub id: String,
    /// `MessageBody`; optional here so that a missing body fails only this entry.
    pub message_body: Option<String>,
    /// `DelaySeconds`, 0–900, overriding the queue's; refused on FIFO queues.
    pub delay_seconds: Option<i64>,
    /// `MessageAttributes`, at most 10.
    #[serde(default)]
    pub message_attributes: BTreeMap<String, AttributeValue>,
    /// `MessageSystemAttributes`: only `AWSTraceHeader` is accepted.
    #[serde(default)]
    pub message_system_attributes: BTreeMap<String, AttributeValue>,
    /// `MessageDeduplicationId` (FIFO queues, unless content-based deduplication is on).
    pub message_deduplication_id: Option<String>,
    /// `MessageGroupId`: required on FIFO queues.
    pub message_group_id: Option<String>,
}

/// SendMessageBatch's input: 1–10 entries of at most [`MAX_BATCH_BYTES`] together, each sent (and
/// failed) on its own.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct SendMessageBatch {
    /// `QueueUrl` of the queue.
    pub queue_url: String,
    /// `Entries`, 1–10.
    #[serde(default)]
    pub entries: Vec<SendMessageBatchEntry>,
}

/// ReceiveMessage's input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ReceiveMessage {
    /// `QueueUrl` of the queue.
    pub queue_url: String,
    /// `AttributeNames` (the older spelling): system attributes to return, merged with
    /// `MessageSystemAttributeNames`.
    #[serde(default)]
    pub attribute_names: Vec<String>,
    /// `MessageSystemAttributeNames`: system attributes to return (`SentTimestamp`,
    /// `ApproximateReceiveCount`… or `All`).
    #[serde(default)]
    pub message_system_attribute_names: Vec<String>,
    /// `MessageAttributeNames`: message attributes to return, by name, `prefix.*`, `.*` or `All`.
    #[serde(default)]
    pub message_attribute_names: Vec<String>,
    /// `MaxNumberOfMessages`, 1–10 (default 1).
    pub max_number_of_messages: Option<i64>,
    /// `VisibilityTimeout` in seconds for the messages received, 0–43200 (default: the queue's).
    pub visibility_timeout: Option<i64>,
    /// `WaitTimeSeconds` of long polling, 0–20 (default: the queue's
    /// `ReceiveMessageWaitTimeSeconds`).
    pub wait_time_seconds: Option<i64>,
    /// `ReceiveRequestAttemptId` (FIFO queues): a retry with the same id within five minutes gets
    /// the same messages; 1–128 ASCII letters, digits and punctuation.
    pub receive_request_attempt_id: Option<String>,
}

/// DeleteMessage's input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DeleteMessage {
    /// `QueueUrl` of the queue.
    pub queue_url: String,
    /// `ReceiptHandle` from the receive that handed the message out.
    pub receipt_handle: String,
}

/// One entry of ChangeMessageVisibilityBatch.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct HandleEntry {
    /// `Id`: the caller's entry id, 1–80 of `[A-Za-z0-9_-]`, distinct within the batch.
    pub id: String,
    /// `ReceiptHandle`; optional here so that a missing one fails only this entry.
    pub receipt_handle: Option<String>,
    /// `VisibilityTimeout` in seconds from now, 0–43200; optional here so that a missing one fails
    /// only this entry.
    pub visibility_timeout: Option<i64>,
}

/// One entry of DeleteMessageBatch.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DeleteMessageBatchEntry {
    /// `Id`: the caller's entry id, 1–80 of `[A-Za-z0-9_-]`, distinct within the batch.
    pub id: String,
    /// `ReceiptHandle`; optional here so that a missing one fails only this entry.
    pub receipt_handle: Option<String>,
}

/// DeleteMessageBatch's input: 1–10 entries, deleted in one commit.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DeleteMessageBatch {
    /// `QueueUrl` of the queue.
    pub queue_url: String,
    /// `Entries`, 1–10.
    #[serde(default)]
    pub entries: Vec<DeleteMessageBatchEntry>,
}

/// ChangeMessageVisibility's input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ChangeMessageVisibility {
    /// `QueueUrl` of the queue.
    pub queue_url: String,
    /// `ReceiptHandle` of the message in flight.
    pub receipt_handle: String,
    /// `VisibilityTimeout` in seconds from now, 0–43200 (0 makes the message visible at once).
    pub visibility_timeout: i64,
}

/// ChangeMessageVisibilityBatch's input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ChangeMessageVisibilityBatch {
    /// `QueueUrl` of the queue.
    pub queue_url: String,
    /// `Entries`, 1–10.
    #[serde(default)]
    pub entries: Vec<HandleEntry>,
}

/// TagQueue's input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct TagQueue {
    /// `QueueUrl` of the queue.
    pub queue_url: String,
    /// `Tags` to add or replace: at least one, at most 50 on the queue in all.
    pub tags: BTreeMap<String, String>,
}

/// UntagQueue's input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct UntagQueue {
    /// `QueueUrl` of the queue.
    pub queue_url: String,
    /// `TagKeys` to remove: 1–50.
    pub tag_keys: Vec<String>,
}

/// AddPermission's input: a labelled statement added to the queue's `Policy`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct AddPermission {
    /// `QueueUrl` of the queue.
    pub queue_url: String,
    /// `Label` of the statement, unique on the queue.
    pub label: String,
    /// `AWSAccountIds` granted: 1–7.
    #[serde(rename = "AWSAccountIds")]
    pub aws_account_ids: Vec<String>,
    /// `Actions` granted (`SendMessage`, `ReceiveMessage`… or `*`): 1–7.
    pub actions: Vec<String>,
}

/// RemovePermission's input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RemovePermission {
    /// `QueueUrl` of the queue.
    pub queue_url: String,
    /// `Label` of the statement to remove.
    pub label: String,
}

/// A decoded request.
#[derive(Debug)]
pub enum Request {
    /// `CreateQueue`.
    CreateQueue(CreateQueue),
    /// `GetQueueUrl`.
    GetQueueUrl(GetQueueUrl),
    /// `ListQueues`.
    ListQueues(ListQueues),
    /// `DeleteQueue`: the queue, its messages and deduplication entries.
    DeleteQueue(QueueOnly),
    /// `PurgeQueue`: every message, in flight or not.
    PurgeQueue(QueueOnly),
    /// `GetQueueAttributes`.
    GetQueueAttributes(GetQueueAttributes),
    /// `SetQueueAttributes`.
    SetQueueAttributes(SetQueueAttributes),
    /// `SendMessage`.
    SendMessage(SendMessage),
    /// `SendMessageBatch`.
    SendMessageBatch(SendMessageBatch),
    /// `ReceiveMessage`.
    ReceiveMessage(ReceiveMessage),
    /// `DeleteMessage`.
    DeleteMessage(DeleteMessage),
    /// `DeleteMessageBatch`.
    DeleteMessageBatch(DeleteMessageBatch),
    /// `ChangeMessageVisibility`.
    ChangeMessageVisibility(ChangeMessageVisibility),
    /// `ChangeMessageVisibilityBatch`.
    ChangeMessageVisibilityBatch(ChangeMessageVisibilityBatch),
    /// `TagQueue`.
    TagQueue(TagQueue),
    /// `UntagQueue`.
    UntagQueue(UntagQueue),
    /// `ListQueueTags`.
    ListQueueTags(QueueOnly),
    /// `AddPermission`.
    AddPermission(AddPermission),
    /// `RemovePermission`.
    RemovePermission(RemovePermission),
    /// `ListDeadLetterSourceQueues`.
    ListDeadLetterSourceQueues(ListDeadLetterSourceQueues),
}

/// SQS operations of the 2012-11-05 API that Nimbus does not serve: answered
/// `UnsupportedOperation` naming them.
const NOT_BUILT: &[&str] = &[
    "StartMessageMoveTask",
    "CancelMessageMoveTask",
    "ListMessageMoveTasks",
];

/// Operations whose result has members (the query protocol wraps them in `<OpResult>`).
pub fn has_result(op: &str) -> bool {
    matches!(
        op,
        "CreateQueue"
            | "GetQueueUrl"
            | "ListQueues"
            | "GetQueueAttributes"
            | "SendMessage"
            | "SendMessageBatch"
            | "ReceiveMessage"
            | "DeleteMessageBatch"
            | "ChangeMessageVisibilityBatch"
            | "ListQueueTags"
            | "ListDeadLetterSourceQueues"
    )
}

/// A serde error as SQS words it: a missing member → `MissingParameter`, anything else (an
/// unknown member, a wrong type) → `InvalidParameterValue`.
fn decode_error(e: serde_json::Error) -> SqsError {
    let text = e.to_string();
    if let Some(rest) = text.strip_prefix("missing field `")
        && let Some((name, _)) = rest.split_once('`')
    {
        return SqsError::missing(name);
    }
    if let Some(rest) = text.strip_prefix("unknown field `")
        && let Some((name, _)) = rest.split_once('`')
    {
        return SqsError::invalid(format!(
            "The request has an unknown parameter {name}, which is not valid for this action."
        ));
    }
    let what = text.split(" at line ").next().unwrap_or(&text);
    SqsError::invalid(format!("The request has an invalid parameter: {what}."))
}

fn typed<T: DeserializeOwned>(input: Value) -> Result<T, SqsError> {
    serde_json::from_value(input).map_err(decode_error)
}

impl Request {
    /// The request `op` names, from its members in the JSON protocol's shape (which the query
    /// codec builds from the form).
    pub fn decode(op: &str, input: Value) -> Result<Request, SqsError> {
        let input = if input.is_null() {
            Value::Object(Default::default())
        } else {
            input
        };
        if !input.is_object() {
            return Err(SqsError::invalid("The request body must be a JSON object."));
        }
        Ok(match op {
            "CreateQueue" => Request::CreateQueue(typed(input)?),
            "GetQueueUrl" => Request::GetQueueUrl(typed(input)?),
            "ListQueues" => Request::ListQueues(typed(input)?),
            "DeleteQueue" => Request::DeleteQueue(typed(input)?),
            "PurgeQueue" => Request::PurgeQueue(typed(input)?),
            "GetQueueAttributes" => Request::GetQueueAttributes(typed(input)?),
            "SetQueueAttributes" => Request::SetQueueAttributes(typed(input)?),
            "SendMessage" => Request::SendMessage(typed(input)?),
            "SendMessageBatch" => Request::SendMessageBatch(typed(input)?),
            "ReceiveMessage" => Request::ReceiveMessage(typed(input)?),
            "DeleteMessage" => Request::DeleteMessage(typed(input)?),
            "DeleteMessageBatch" => Request::DeleteMessageBatch(typed(input)?),
            "ChangeMessageVisibility" => Request::ChangeMessageVisibility(typed(input)?),
            "ChangeMessageVisibilityBatch" => Request::ChangeMessageVisibilityBatch(typed(input)?),
            "TagQueue" => Request::TagQueue(typed(input)?),
            "UntagQueue" => Request::UntagQueue(typed(input)?),
            "ListQueueTags" => Request::ListQueueTags(typed(input)?),
            "AddPermission" => Request::AddPermission(typed(input)?),
            "RemovePermission" => Request::RemovePermission(typed(input)?),
            "ListDeadLetterSourceQueues" => Request::ListDeadLetterSourceQueues(typed(input)?),
            other if NOT_BUILT.contains(&other) => {
                return Err(QueueError::Unsupported(other.to_string()).into());
            }
            other => {
                return Err(SqsError::new(
                    "InvalidAction",
                    "InvalidAction",
                    format!("The action {other} is not valid for this endpoint."),
                ));
            }
        })
    }
}

// ---- results -----------------------------------------------------------------------------

/// CreateQueue's and GetQueueUrl's result.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueueUrlResult {
    /// `QueueUrl`: `{public_url}/{account}/{name}`.
    pub queue_url: String,
}

/// ListQueues' result.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListQueuesResult {
    /// `QueueUrls` of this page, sorted by name (omitted when empty).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub queue_urls: Vec<String>,
    /// `NextToken` for the next page, when `MaxResults` was given and more remain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// ListDeadLetterSourceQueues' result (SQS spells its list `queueUrls`, in camel case).
#[derive(Debug, Serialize)]
pub struct DeadLetterSourcesResult {
    /// `queueUrls` of the source queues on this page (always present, even empty).
    #[serde(rename = "queueUrls")]
    pub queue_urls: Vec<String>,
    /// `NextToken` for the next page, when `MaxResults` was given and more remain.
    #[serde(rename = "NextToken", skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// GetQueueAttributes' result.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttributesResult {
    /// `Attributes` asked for, by SQS name, values as strings (omitted when empty).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

/// ListQueueTags' result.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagsResult {
    /// `Tags` of the queue (omitted when none).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// SendMessage's result, and each successful SendMessageBatch entry's.
#[derive(Debug, Serialize)]
pub struct SendResult {
    /// `MD5OfMessageBody`: hex MD5 of the body's UTF-8 bytes.
    #[serde(rename = "MD5OfMessageBody")]
    pub md5_of_message_body: String,
    /// `MD5OfMessageAttributes`, when the message has attributes (see [`md5_of_attributes`]).
    #[serde(
        rename = "MD5OfMessageAttributes",
        skip_serializing_if = "Option::is_none"
    )]
    pub md5_of_message_attributes: Option<String>,
    /// `MD5OfMessageSystemAttributes`, when an `AWSTraceHeader` was sent.
    #[serde(
        rename = "MD5OfMessageSystemAttributes",
        skip_serializing_if = "Option::is_none"
    )]
    pub md5_of_message_system_attributes: Option<String>,
    /// `MessageId` (a FIFO duplicate gets the original's).
    #[serde(rename = "MessageId")]
    pub message_id: String,
    /// `SequenceNumber` (FIFO queues): 20 digits, increasing per queue.
    #[serde(rename = "SequenceNumber", skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<String>,
}

/// A successful SendMessageBatch entry.
#[derive(Debug, Serialize)]
pub struct SendBatchResultEntry {
    /// `Id`: the entry id the caller gave.
    #[serde(rename = "Id")]
    pub id: String,
    /// The send's result members, flattened beside `Id`.
    #[serde(flatten)]
    pub sent: SendResult,
}

/// A failed batch entry (SQS's `BatchResultErrorEntry`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchResultErrorEntry {
    /// `Id`: the entry id the caller gave.
    pub id: String,
    /// `SenderFault`: false only for Nimbus's own (5xx) errors.
    pub sender_fault: bool,
    /// `Code`: the error's query-protocol code (e.g. `ReceiptHandleIsInvalid`).
    pub code: String,
    /// `Message`: why the entry failed.
    pub message: String,
}

/// A successful DeleteMessageBatch or ChangeMessageVisibilityBatch entry.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct IdEntry {
    /// `Id`: the entry id the caller gave.
    pub id: String,
}

/// A batch operation's result: every entry lands in exactly one of the two lists.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchResult<T> {
    /// `Successful` entries, in request order.
    pub successful: Vec<T>,
    /// `Failed` entries, in request order.
    pub failed: Vec<BatchResultErrorEntry>,
}

/// A message attribute as ReceiveMessage returns it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttributeOut {
    /// `StringValue`, for `String` and `Number` types.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub string_value: Option<String>,
    /// `BinaryValue`, base64, for the `Binary` type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binary_value: Option<String>,
    /// `DataType` as sent (custom suffix included).
    pub data_type: String,
}

/// A received message (SQS's `Message`).
#[derive(Debug, Serialize)]
pub struct MessageOut {
    /// `MessageId`.
    #[serde(rename = "MessageId")]
    pub message_id: String,
    /// `ReceiptHandle` for deleting the message or changing its visibility; valid until it is
    /// received again.
    #[serde(rename = "ReceiptHandle")]
    pub receipt_handle: String,
    /// `MD5OfBody`: hex MD5 of the body's UTF-8 bytes.
    #[serde(rename = "MD5OfBody")]
    pub md5_of_body: String,
    /// `Body` as sent.
    #[serde(rename = "Body")]
    pub body: String,
    /// `Attributes`: the system attributes asked for (omitted when none).
    #[serde(rename = "Attributes", skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// `MD5OfMessageAttributes`, over all the message's attributes, when it has any.
    #[serde(
        rename = "MD5OfMessageAttributes",
        skip_serializing_if = "Option::is_none"
    )]
    pub md5_of_message_attributes: Option<String>,
    /// `MessageAttributes` asked for (omitted when none).
    #[serde(
        rename = "MessageAttributes",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub message_attributes: BTreeMap<String, AttributeOut>,
}

/// ReceiveMessage's result.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReceiveResult {
    /// `Messages` received, 0–`MaxNumberOfMessages` (omitted when none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<MessageOut>,
}

fn to_value<T: Serialize>(v: T) -> Result<Value, SqsError> {
    serde_json::to_value(v).map_err(|e| SqsError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        ..SqsError::new("InternalError", "InternalError", e.to_string())
    })
}

fn empty() -> Value {
    Value::Object(Default::default())
}

// ---- execution ---------------------------------------------------------------------------

/// Runs a decoded request against the queue service; the result in the JSON protocol's shape.
pub async fn execute(core: &QueueService, req: Request) -> Result<Value, SqsError> {
    match req {
        Request::CreateQueue(r) => {
            let url = core.create(&r.queue_name, r.attributes, r.tags).await?;
            to_value(QueueUrlResult { queue_url: url })
        }
        Request::GetQueueUrl(r) => {
            if let Some(owner) = r.owner.as_deref()
                && owner != core.account_id()
            {
                return Err(QueueError::NoQueue.into());
            }
            let name = core.name_of(&r.queue_name)?;
            to_value(QueueUrlResult {
                queue_url: core.url(&name),
            })
        }
        Request::ListQueues(r) => {
            let urls = core.list(r.queue_name_prefix.as_deref());
            let (page, next) = paginate(urls, r.next_token.as_deref(), r.max_results)?;
            to_value(ListQueuesResult {
                queue_urls: page,
                next_token: next,
            })
        }
        Request::ListDeadLetterSourceQueues(r) => {
            let name = core.name_of(&r.queue_url)?;
            let urls = core.dead_letter_sources(&name)?;
            let (page, next) = paginate(urls, r.next_token.as_deref(), r.max_results)?;
            to_value(DeadLetterSourcesResult {
                queue_urls: page,
                next_token: next,
            })
        }
        Request::DeleteQueue(r) => {
            let name = core.name_of(&r.queue_url)?;
            core.delete(&name).await?;
            Ok(empty())
        }
        Request::PurgeQueue(r) => {
            let name = core.name_of(&r.queue_url)?;
            core.purge(&name).await?;
            Ok(empty())
        }
        Request::GetQueueAttributes(r) => {
            let name = core.name_of(&r.queue_url)?;
            let all = core.attributes(&name)?;
            for n in &r.attribute_names {
                if n != "All" && !known_queue_attribute(n) {
                    return Err(QueueError::InvalidAttributeName(n.clone()).into());
                }
            }
            let picked = all
                .into_iter()
                .filter(|(k, _)| r.attribute_names.iter().any(|n| n == "All" || n == k))
                .collect();
            to_value(AttributesResult { attributes: picked })
        }
        Request::SetQueueAttributes(r) => {
            let name = core.name_of(&r.queue_url)?;
            core.set_attributes(&name, r.attributes).await?;
            Ok(empty())
        }
        Request::SendMessage(r) => {
            let name = core.name_of(&r.queue_url)?;
            let out = outgoing(
                r.message_body,
                r.message_attributes,
                r.message_system_attributes,
                r.delay_seconds,
                r.message_group_id,
                r.message_deduplication_id,
            )?;
            let sent = core.send(&name, vec![out]).await?;
            let first = sent
                .first()
                .ok_or_else(|| SqsError::invalid("The message was not sent."))?;
            to_value(send_result(first))
        }
        Request::SendMessageBatch(r) => {
            let name = core.name_of(&r.queue_url)?;
            check_batch(r.entries.iter().map(|e| e.id.as_str()))?;
            let total: usize = r
                .entries
                .iter()
                .map(|e| {
                    e.message_body.as_ref().map_or(0, String::len)
                        + e.message_attributes
                            .iter()
                            .map(|(k, a)| {
                                k.len()
                                    + a.string_value.as_ref().map_or(0, String::len)
                                    + a.binary_value.as_ref().map_or(0, String::len)
                            })
                            .sum::<usize>()
                })
                .sum();
            if total > MAX_BATCH_BYTES {
                return Err(QueueError::BatchRequestTooLong(format!(
                    "Batch requests cannot be longer than {MAX_BATCH_BYTES} bytes. You have sent {total} bytes."
                ))
                .into());
            }
            let mut result = BatchResult {
                successful: Vec::new(),
                failed: Vec::new(),
            };
            for e in r.entries {
                let id = e.id.clone();
                let sent = match e.message_body {
                    None => Err(SqsError::missing("MessageBody")),
                    Some(body) => match outgoing(
                        body,
                        e.message_attributes,
                        e.message_system_attributes,
                        e.delay_seconds,
                        e.message_group_id,
                        e.message_deduplication_id,
                    ) {
                        Ok(out) => core.send(&name, vec![out]).await.map_err(SqsError::from),
                        Err(err) => Err(err),
                    },
                };
                match sent {
                    Ok(s) => {
                        if let Some(first) = s.first() {
                            result.successful.push(SendBatchResultEntry {
                                id,
                                sent: send_result(first),
                            });
                        }
                    }
                    Err(err) if err.status.is_server_error() => return Err(err),
                    Err(err) => result.failed.push(batch_error(id, &err)),
                }
            }
            to_value(result)
        }
        Request::ReceiveMessage(r) => {
            let name = core.name_of(&r.queue_url)?;
            if let Some(a) = r.receive_request_attempt_id.as_deref() {
                let ok = !a.is_empty()
                    && a.len() <= 128
                    && a.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b.is_ascii_punctuation());
                if !ok {
                    return Err(SqsError::invalid(format!(
                        "Value {a} for parameter ReceiveRequestAttemptId is invalid. Reason: ReceiveRequestAttemptId can only include alphanumeric and punctuation characters. 1 to 128 in length."
                    )));
                }
            }
            let max = r.max_number_of_messages.unwrap_or(1);
            let got = core
                .receive_attempt(
                    &name,
                    usize::try_from(max).unwrap_or(0),
                    r.visibility_timeout,
                    r.wait_time_seconds,
                    r.receive_request_attempt_id.as_deref(),
                )
                .await?;
            let mut system = r.attribute_names;
            system.extend(r.message_system_attribute_names);
            let messages = got
                .iter()
                .map(|m| message_out(m, &system, &r.message_attribute_names))
                .collect();
            to_value(ReceiveResult { messages })
        }
        Request::DeleteMessage(r) => {
            let name = core.name_of(&r.queue_url)?;
            core.delete_message(&name, &r.receipt_handle).await?;
            Ok(empty())
        }
        Request::DeleteMessageBatch(r) => {
            let name = core.name_of(&r.queue_url)?;
            check_batch(r.entries.iter().map(|e| e.id.as_str()))?;
            let handles: Vec<&str> = r
                .entries
                .iter()
                .filter_map(|e| e.receipt_handle.as_deref())
                .collect();
            // One commit for every entry with a handle.
            let mut outcomes = core.delete_messages(&name, &handles).await?.into_iter();
            let mut result = BatchResult {
                successful: Vec::new(),
                failed: Vec::new(),
            };
            for e in &r.entries {
                if e.receipt_handle.is_none() {
                    result.failed.push(batch_error(
                        e.id.clone(),
                        &SqsError::missing("ReceiptHandle"),
                    ));
                    continue;
                }
                match outcomes.next() {
                    Some(Ok(())) => result.successful.push(IdEntry { id: e.id.clone() }),
                    Some(Err(err)) => result.failed.push(batch_error(e.id.clone(), &err.into())),
                    None => result.failed.push(BatchResultErrorEntry {
                        id: e.id.clone(),
                        sender_fault: false,
                        code: "InternalError".into(),
                        message: "The entry was not processed.".into(),
                    }),
                }
            }
            to_value(result)
        }
        Request::ChangeMessageVisibility(r) => {
            let name = core.name_of(&r.queue_url)?;
            core.change_visibility(&name, &r.receipt_handle, r.visibility_timeout)?;
            Ok(empty())
        }
        Request::ChangeMessageVisibilityBatch(r) => {
            let name = core.name_of(&r.queue_url)?;
            check_batch(r.entries.iter().map(|e| e.id.as_str()))?;
            let mut result = BatchResult {
                successful: Vec::new(),
                failed: Vec::new(),
            };
            for e in &r.entries {
                let outcome = match (&e.receipt_handle, e.visibility_timeout) {
                    (None, _) => Err(SqsError::missing("ReceiptHandle")),
                    (_, None) => Err(SqsError::missing("VisibilityTimeout")),
                    (Some(h), Some(secs)) => core
                        .change_visibility(&name, h, secs)
                        .map_err(SqsError::from),
                };
                match outcome {
                    Ok(()) => result.successful.push(IdEntry { id: e.id.clone() }),
                    Err(err) => result.failed.push(batch_error(e.id.clone(), &err)),
                }
            }
            to_value(result)
        }
        Request::TagQueue(r) => {
            let name = core.name_of(&r.queue_url)?;
            if r.tags.is_empty() {
                return Err(SqsError::missing("Tags"));
            }
            if r.tags.len() > crate::service::MAX_TAGS {
                return Err(SqsError::invalid(format!(
                    "Too many tags added for queue {name}."
                )));
            }
            core.tag(&name, r.tags).await?;
            Ok(empty())
        }
        Request::UntagQueue(r) => {
            let name = core.name_of(&r.queue_url)?;
            if r.tag_keys.is_empty() {
                return Err(SqsError::missing("TagKeys"));
            }
            if r.tag_keys.len() > crate::service::MAX_TAGS {
                return Err(SqsError::invalid(format!(
                    "Too many tag keys given for queue {name}."
                )));
            }
            core.untag(&name, &r.tag_keys).await?;
            Ok(empty())
        }
        Request::ListQueueTags(r) => {
            let name = core.name_of(&r.queue_url)?;
            to_value(TagsResult {
                tags: core.tags(&name)?,
            })
        }
        Request::AddPermission(r) => {
            let name = core.name_of(&r.queue_url)?;
            core.add_permission(&name, &r.label, &r.aws_account_ids, &r.actions)
                .await?;
            Ok(empty())
        }
        Request::RemovePermission(r) => {
            let name = core.name_of(&r.queue_url)?;
            core.remove_permission(&name, &r.label).await?;
            Ok(empty())
        }
    }
}

fn known_queue_attribute(n: &str) -> bool {
    matches!(
        n,
        "Policy"
            | "VisibilityTimeout"
            | "MaximumMessageSize"
            | "MessageRetentionPeriod"
            | "ApproximateNumberOfMessages"
            | "ApproximateNumberOfMessagesNotVisible"
            | "CreatedTimestamp"
            | "LastModifiedTimestamp"
            | "QueueArn"
            | "ApproximateNumberOfMessagesDelayed"
            | "DelaySeconds"
            | "ReceiveMessageWaitTimeSeconds"
            | "RedrivePolicy"
            | "FifoQueue"
            | "ContentBasedDeduplication"
            | "KmsMasterKeyId"
            | "KmsDataKeyReusePeriodSeconds"
            | "DeduplicationScope"
            | "FifoThroughputLimit"
            | "RedriveAllowPolicy"
            | "SqsManagedSseEnabled"
    )
}

/// A page of `items` from `token` (an offset) of at most `max` (1–1000); a token is returned
/// only when `MaxResults` was given and more remain, as SQS does.
fn paginate(
    items: Vec<String>,
    token: Option<&str>,
    max: Option<i64>,
) -> Result<(Vec<String>, Option<String>), SqsError> {
    if let Some(m) = max
        && !(1..=1000).contains(&m)
    {
        return Err(SqsError::invalid(format!(
            "Value {m} for parameter MaxResults is invalid. Reason: MaxResults must be an integer between 1 and 1000."
        )));
    }
    let start: usize = match token {
        None => 0,
        Some(t) => t
            .parse()
            .map_err(|_| SqsError::invalid("Invalid NextToken value."))?,
    };
    let size = max.unwrap_or(1000) as usize;
    let total = items.len();
    let page: Vec<String> = items.into_iter().skip(start).take(size).collect();
    let next =
        (max.is_some() && start + page.len() < total).then(|| (start + page.len()).to_string());
    Ok((page, next))
}

/// Batch rules: 1–10 entries, ids of `[A-Za-z0-9_-]{1,80}`, distinct.
fn check_batch<'a>(ids: impl Iterator<Item = &'a str> + Clone) -> Result<(), SqsError> {
    let n = ids.clone().count();
    if n == 0 {
        return Err(QueueError::EmptyBatch(
            "There should be at least one entry in the request.".into(),
        )
        .into());
    }
    if n > MAX_BATCH {
        return Err(QueueError::TooManyEntries(format!(
            "Maximum number of entries per request are {MAX_BATCH}. You have sent {n}."
        ))
        .into());
    }
    let mut seen = HashSet::new();
    for id in ids {
        let ok = !id.is_empty()
            && id.len() <= 80
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(QueueError::InvalidBatchEntryId(
                "A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.".into(),
            )
            .into());
        }
        if !seen.insert(id) {
            return Err(QueueError::DistinctIds(
                "Id must be distinct among the batch entries.".into(),
            )
            .into());
        }
    }
    Ok(())
}

fn batch_error(id: String, e: &SqsError) -> BatchResultErrorEntry {
    BatchResultErrorEntry {
        id,
        sender_fault: !e.status.is_server_error(),
        code: e.query_code.to_string(),
        message: e.message.clone(),
    }
}

/// A message to send, from the wire's members (message attributes checked as SQS does).
fn outgoing(
    body: String,
    attributes: BTreeMap<String, AttributeValue>,
    system: BTreeMap<String, AttributeValue>,
    delay: Option<i64>,
    group: Option<String>,
    dedup_id: Option<String>,
) -> Result<Outgoing, SqsError> {
    if attributes.len() > MAX_MESSAGE_ATTRIBUTES {
        return Err(SqsError::invalid(format!(
            "Number of message attributes [{}] exceeds the allowed maximum [{MAX_MESSAGE_ATTRIBUTES}].",
            attributes.len()
        )));
    }
    let mut out = BTreeMap::new();
    for (name, a) in attributes {
        out.insert(name.clone(), message_attribute(&name, a, "message")?);
    }
    let mut trace_header = None;
    for (name, a) in system {
        if name != "AWSTraceHeader" {
            return Err(SqsError::invalid(format!(
                "Message system attribute name '{name}' is invalid."
            )));
        }
        let a = message_attribute(&name, a, "message system")?;
        trace_header = a.string_value;
    }
    Ok(Outgoing {
        body,
        attributes: out,
        delay,
        group,
        dedup_id,
        trace_header,
    })
}

fn message_attribute(
    name: &str,
    a: AttributeValue,
    what: &str,
) -> Result<MessageAttribute, SqsError> {
    let ok_name = !name.is_empty()
        && name.len() <= 256
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..");
    if !ok_name {
        return Err(SqsError::invalid(format!(
            "The {what} attribute name '{name}' is invalid."
        )));
    }
    let data_type = a.data_type.filter(|t| !t.is_empty()).ok_or_else(|| {
        SqsError::invalid(format!(
            "The {what} attribute '{name}' must contain a non-empty attribute type."
        ))
    })?;
    let base = data_type.split('.').next().unwrap_or("").to_string();
    let base = base.as_str();
    if !matches!(base, "String" | "Number" | "Binary") || data_type.len() > 256 {
        return Err(SqsError::invalid(format!(
            "The type of {what} (user) attribute '{name}' is invalid. You must use only the following supported type prefixes: Binary, Number, String."
        )));
    }
    if !a.string_list_values.is_empty() || !a.binary_list_values.is_empty() {
        return Err(SqsError::invalid(format!(
            "The {what} attribute '{name}' uses list values, which SQS does not support yet."
        )));
    }
    let attr = MessageAttribute {
        data_type,
        string_value: a.string_value.filter(|s| !s.is_empty()),
        binary_value: a.binary_value.filter(|s| !s.is_empty()),
    };
    let fits = if base == "Binary" {
        attr.binary_value.is_some()
    } else {
        attr.string_value.is_some()
    };
    if !fits {
        return Err(SqsError::invalid(format!(
            "The {what} attribute '{name}' must contain a non-empty {what} attribute value for {what} attribute type '{base}'."
        )));
    }
    if base == "Number"
        && attr
            .string_value
            .as_deref()
            .is_some_and(|v| v.parse::<f64>().is_err())
    {
        return Err(SqsError::invalid(format!(
            "Can't cast the value of {what} (user) attribute '{name}' to a number."
        )));
    }
    Ok(attr)
}

fn send_result(s: &Sent) -> SendResult {
    let m = &s.message;
    SendResult {
        md5_of_message_body: md5_of_body(&m.body),
        md5_of_message_attributes: md5_of_attributes(&m.attributes),
        md5_of_message_system_attributes: md5_of_system_attributes(m.trace_header.as_deref()),
        message_id: m.id.clone(),
        sequence_number: m.sequence.clone(),
    }
}

/// The system attributes SQS returns for these names (`All` or each by name).
pub fn system_attributes(
    m: &crate::service::StoredMessage,
    names: &[String],
) -> BTreeMap<String, String> {
    let want = |k: &str| names.iter().any(|s| s == "All" || s == k);
    let mut sys = BTreeMap::new();
    let mut put = |k: &str, v: Option<String>| {
        if want(k)
            && let Some(v) = v
        {
            sys.insert(k.to_string(), v);
        }
    };
    put("SenderId", Some("000000000000".into()));
    put("SentTimestamp", Some(m.sent_ms.to_string()));
    put("ApproximateReceiveCount", Some(m.receive_count.to_string()));
    put(
        "ApproximateFirstReceiveTimestamp",
        Some(m.first_receive_ms.unwrap_or(m.sent_ms).to_string()),
    );
    put("SequenceNumber", m.sequence.clone());
    put("MessageDeduplicationId", m.dedup_id.clone());
    put("MessageGroupId", m.group.clone());
    put("AWSTraceHeader", m.trace_header.clone());
    sys
}

fn message_out(r: &Received, system: &[String], attrs: &[String]) -> MessageOut {
    let m = &r.message;
    // The attributes the caller asked for; their digest is of those alone (an SDK checks it
    // against what it received), and absent when none is returned.
    let returned: BTreeMap<String, MessageAttribute> = m
        .attributes
        .iter()
        .filter(|(k, _)| {
            attrs.iter().any(|a| {
                a == "All"
                    || a == ".*"
                    || a == *k
                    || a.strip_suffix(".*").is_some_and(|p| k.starts_with(p))
            })
        })
        .map(|(k, a)| (k.clone(), a.clone()))
        .collect();
    let md5_of_message_attributes = md5_of_attributes(&returned);
    let message_attributes = returned
        .into_iter()
        .map(|(k, a)| {
            (
                k,
                AttributeOut {
                    string_value: a.string_value,
                    binary_value: a.binary_value,
                    data_type: a.data_type,
                },
            )
        })
        .collect();
    MessageOut {
        message_id: m.id.clone(),
        receipt_handle: r.receipt_handle.clone(),
        md5_of_body: md5_of_body(&m.body),
        body: m.body.clone(),
        attributes: system_attributes(m, system),
        md5_of_message_attributes,
        message_attributes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_requests_refuse_unknown_members_and_name_missing_ones() {
        let e = Request::decode(
            "SendMessage",
            json!({"QueueUrl": "q", "MessageBody": "b", "Bogus": 1}),
        )
        .expect_err("unknown member");
        assert_eq!(e.shape, "InvalidParameterValue");
        assert!(e.message.contains("Bogus"), "{}", e.message);
        let e = Request::decode("SendMessage", json!({"QueueUrl": "q"})).expect_err("missing");
        assert_eq!(
            (e.shape, e.message.as_str()),
            (
                "MissingParameter",
                "The request must contain the parameter MessageBody."
            )
        );
        let e = Request::decode(
            "ReceiveMessage",
            json!({"QueueUrl": "q", "MaxNumberOfMessages": "x"}),
        )
        .expect_err("type");
        assert_eq!(e.shape, "InvalidParameterValue");
        let e = Request::decode("StartMessageMoveTask", json!({})).expect_err("not built");
        assert_eq!(
            (e.shape, e.query_code),
            (
                "UnsupportedOperation",
                "AWS.SimpleQueueService.UnsupportedOperation"
            )
        );
        assert!(e.message.contains("StartMessageMoveTask"));
        assert!(matches!(
            Request::decode("CreateQueue", json!({"QueueName": "q", "tags": {"a": "b"}})),
            Ok(Request::CreateQueue(CreateQueue { tags, .. })) if tags.len() == 1
        ));
    }

    #[test]
    fn batch_rules() {
        assert_eq!(
            check_batch([].into_iter()).expect_err("empty").shape,
            "EmptyBatchRequest"
        );
        let many: Vec<String> = (0..11).map(|i| i.to_string()).collect();
        assert_eq!(
            check_batch(many.iter().map(String::as_str))
                .expect_err("11")
                .shape,
            "TooManyEntriesInBatchRequest"
        );
        assert_eq!(
            check_batch(["a", "a"].into_iter()).expect_err("dup").shape,
            "BatchEntryIdsNotDistinct"
        );
        assert_eq!(
            check_batch(["a b"].into_iter()).expect_err("id").shape,
            "InvalidBatchEntryId"
        );
        assert!(check_batch(["a", "b-1", "c_2"].into_iter()).is_ok());
    }

    #[test]
    fn message_attributes_are_checked() {
        let a = |t: &str, s: Option<&str>| AttributeValue {
            data_type: Some(t.into()),
            string_value: s.map(str::to_string),
            binary_value: None,
            string_list_values: vec![],
            binary_list_values: vec![],
        };
        assert!(message_attribute("n", a("String", Some("x")), "message").is_ok());
        assert!(message_attribute("n", a("Number.int", Some("12")), "message").is_ok());
        assert!(message_attribute("n", a("Number", Some("x")), "message").is_err());
        assert!(message_attribute("n", a("Text", Some("x")), "message").is_err());
        assert!(message_attribute("n", a("String", None), "message").is_err());
        assert!(message_attribute("bad name", a("String", Some("x")), "message").is_err());
    }
}
