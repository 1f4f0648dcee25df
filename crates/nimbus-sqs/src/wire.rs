//! The SQS API over the JSON 1.0 protocol (`X-Amz-Target: AmazonSQS.<Operation>`), as current
//! AWS SDKs speak it: queue management, send (single and batch), receive with long polling,
//! delete (single and batch), visibility changes. Errors carry SQS's `__type` and the
//! `x-amzn-query-error` header SDKs use to name the error.

use std::collections::BTreeMap;

use crate::service::{
    MessageAttribute, QueueError, QueueService, Received, md5_of_attributes, md5_of_body,
};
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

struct SqsError {
    shape: &'static str,
    query_code: &'static str,
    message: String,
    status: StatusCode,
}

impl SqsError {
    fn new(shape: &'static str, query_code: &'static str, message: impl Into<String>) -> Self {
        SqsError {
            shape,
            query_code,
            message: message.into(),
            status: StatusCode::BAD_REQUEST,
        }
    }

    fn missing(param: &str) -> Self {
        SqsError::new(
            "MissingParameter",
            "MissingParameter",
            format!("The request must contain the parameter {param}."),
        )
    }
}

impl From<QueueError> for SqsError {
    fn from(e: QueueError) -> Self {
        let msg = e.to_string();
        match e {
            QueueError::NoQueue => SqsError::new(
                "QueueDoesNotExist",
                "AWS.SimpleQueueService.NonExistentQueue",
                msg,
            ),
            QueueError::NameExists(_) => {
                SqsError::new("QueueNameExists", "QueueAlreadyExists", msg)
            }
            QueueError::InvalidParameter(_) => {
                SqsError::new("InvalidParameterValue", "InvalidParameterValue", msg)
            }
            QueueError::InvalidAttribute(m) if m.starts_with("Unknown Attribute") => {
                SqsError::new("InvalidAttributeName", "InvalidAttributeName", msg)
            }
            QueueError::InvalidAttribute(_) => {
                SqsError::new("InvalidAttributeValue", "InvalidAttributeValue", msg)
            }
            QueueError::ReceiptHandleInvalid(_) => {
                SqsError::new("ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid", msg)
            }
            QueueError::EmptyBatch(_) => SqsError::new(
                "EmptyBatchRequest",
                "AWS.SimpleQueueService.EmptyBatchRequest",
                msg,
            ),
            QueueError::TooManyEntries(_) => SqsError::new(
                "TooManyEntriesInBatchRequest",
                "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
                msg,
            ),
            QueueError::DistinctIds(_) => SqsError::new(
                "BatchEntryIdsNotDistinct",
                "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
                msg,
            ),
            QueueError::Core(e) => SqsError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                ..SqsError::new("InternalError", "InternalError", e.to_string())
            },
        }
    }
}

impl IntoResponse for SqsError {
    fn into_response(self) -> Response {
        let fault = if self.status.is_server_error() {
            "Receiver"
        } else {
            "Sender"
        };
        let body = json!({
            "__type": format!("com.amazonaws.sqs#{}", self.shape),
            "message": self.message,
        });
        let mut r = (
            self.status,
            [(
                axum::http::header::CONTENT_TYPE,
                "application/x-amz-json-1.0",
            )],
            body.to_string(),
        )
            .into_response();
        if let Ok(v) = HeaderValue::from_str(&format!("{};{fault}", self.query_code)) {
            r.headers_mut().insert("x-amzn-query-error", v);
        }
        if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
            r.headers_mut().insert("x-amzn-requestid", v);
        }
        r
    }
}

type R = Result<Value, SqsError>;

fn ok(body: Value) -> Response {
    let mut r = (
        StatusCode::OK,
        [(
            axum::http::header::CONTENT_TYPE,
            "application/x-amz-json-1.0",
        )],
        body.to_string(),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        r.headers_mut().insert("x-amzn-requestid", v);
    }
    r
}

pub async fn handle(core: &QueueService, req: Request<Body>) -> Response {
    let op = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix("AmazonSQS."))
        .unwrap_or("")
        .to_string();
    let body = match axum::body::to_bytes(req.into_body(), 2 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => {
            return SqsError::new(
                "InvalidParameterValue",
                "InvalidParameterValue",
                "The request body could not be read.",
            )
            .into_response();
        }
    };
    let input: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return SqsError::new(
                    "InvalidParameterValue",
                    "InvalidParameterValue",
                    format!("The request body is not valid JSON: {e}"),
                )
                .into_response();
            }
        }
    };
    let result = match op.as_str() {
        "CreateQueue" => create_queue(core, &input).await,
        "GetQueueUrl" => get_queue_url(core, &input),
        "ListQueues" => list_queues(core, &input),
        "DeleteQueue" => delete_queue(core, &input).await,
        "PurgeQueue" => purge_queue(core, &input).await,
        "GetQueueAttributes" => get_attributes(core, &input),
        "SetQueueAttributes" => set_attributes(core, &input).await,
        "SendMessage" => send_message(core, &input).await,
        "SendMessageBatch" => send_batch(core, &input).await,
        "ReceiveMessage" => receive(core, &input).await,
        "DeleteMessage" => delete_message(core, &input).await,
        "DeleteMessageBatch" => delete_batch(core, &input).await,
        "ChangeMessageVisibility" => change_visibility(core, &input),
        other => Err(SqsError::new(
            "InvalidAction",
            "InvalidAction",
            format!("Nimbus does not implement the SQS operation '{other}'."),
        )),
    };
    match result {
        Ok(v) => ok(v),
        Err(e) => e.into_response(),
    }
}

async fn delete_queue(core: &QueueService, input: &Value) -> R {
    let q = with_queue(core, input)?;
    core.delete(&q).await?;
    Ok(json!({}))
}

async fn purge_queue(core: &QueueService, input: &Value) -> R {
    let q = with_queue(core, input)?;
    core.purge(&q).await?;
    Ok(json!({}))
}

fn str_of<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

fn int_of(v: &Value, k: &str) -> Result<Option<i64>, SqsError> {
    match v.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x.as_i64().map(Some).ok_or_else(|| {
            SqsError::new(
                "InvalidParameterValue",
                "InvalidParameterValue",
                format!("Value {x} for parameter {k} is invalid. Reason: must be an integer."),
            )
        }),
    }
}

fn with_queue(core: &QueueService, input: &Value) -> Result<String, SqsError> {
    let url = str_of(input, "QueueUrl").ok_or_else(|| SqsError::missing("QueueUrl"))?;
    Ok(core.name_of(url)?)
}

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

async fn create_queue(core: &QueueService, input: &Value) -> R {
    let name = str_of(input, "QueueName").ok_or_else(|| SqsError::missing("QueueName"))?;
    let url = core
        .create(name, string_map(input.get("Attributes")))
        .await?;
    Ok(json!({ "QueueUrl": url }))
}

fn get_queue_url(core: &QueueService, input: &Value) -> R {
    let name = str_of(input, "QueueName").ok_or_else(|| SqsError::missing("QueueName"))?;
    let name = core.name_of(name)?;
    Ok(json!({ "QueueUrl": core.url(&name) }))
}

fn list_queues(core: &QueueService, input: &Value) -> R {
    let urls = core.list(str_of(input, "QueueNamePrefix"));
    let max = int_of(input, "MaxResults")?.unwrap_or(1000).clamp(1, 1000) as usize;
    let start: usize = str_of(input, "NextToken")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let page: Vec<&String> = urls.iter().skip(start).take(max).collect();
    let mut out = Map::new();
    if !page.is_empty() {
        out.insert("QueueUrls".into(), json!(page));
    }
    if start + page.len() < urls.len() && input.get("MaxResults").is_some() {
        out.insert("NextToken".into(), json!((start + page.len()).to_string()));
    }
    Ok(Value::Object(out))
}

fn get_attributes(core: &QueueService, input: &Value) -> R {
    let q = with_queue(core, input)?;
    let all = core.attributes(&q)?;
    let names: Vec<String> = input
        .get("AttributeNames")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let picked: BTreeMap<&String, &String> = all
        .iter()
        .filter(|(k, _)| names.iter().any(|n| n == "All" || n == *k))
        .collect();
    if picked.is_empty() {
        return Ok(json!({}));
    }
    Ok(json!({ "Attributes": picked }))
}

async fn set_attributes(core: &QueueService, input: &Value) -> R {
    let q = with_queue(core, input)?;
    core.set_attributes(&q, string_map(input.get("Attributes")))
        .await?;
    Ok(json!({}))
}

fn message_attributes(v: Option<&Value>) -> Result<BTreeMap<String, MessageAttribute>, SqsError> {
    let mut out = BTreeMap::new();
    let Some(m) = v.and_then(Value::as_object) else {
        return Ok(out);
    };
    for (name, a) in m {
        let data_type = str_of(a, "DataType").ok_or_else(|| {
            SqsError::new(
                "InvalidParameterValue",
                "InvalidParameterValue",
                format!("The message attribute '{name}' must contain a non-empty attribute type."),
            )
        })?;
        let attr = MessageAttribute {
            data_type: data_type.to_string(),
            string_value: str_of(a, "StringValue").map(str::to_string),
            binary_value: str_of(a, "BinaryValue").map(str::to_string),
        };
        if attr.string_value.is_none() && attr.binary_value.is_none() {
            return Err(SqsError::new(
                "InvalidParameterValue",
                "InvalidParameterValue",
                format!(
                    "The message attribute '{name}' must contain a non-empty message attribute value."
                ),
            ));
        }
        out.insert(name.clone(), attr);
    }
    Ok(out)
}

fn sent(m: &crate::service::StoredMessage) -> Map<String, Value> {
    let mut o = Map::new();
    o.insert("MessageId".into(), json!(m.id));
    o.insert("MD5OfMessageBody".into(), json!(md5_of_body(&m.body)));
    if let Some(d) = md5_of_attributes(&m.attributes) {
        o.insert("MD5OfMessageAttributes".into(), json!(d));
    }
    o
}

async fn send_message(core: &QueueService, input: &Value) -> R {
    let q = with_queue(core, input)?;
    let body = str_of(input, "MessageBody").ok_or_else(|| SqsError::missing("MessageBody"))?;
    let attrs = message_attributes(input.get("MessageAttributes"))?;
    let delay = int_of(input, "DelaySeconds")?;
    let msgs = core
        .send(&q, vec![(body.to_string(), attrs, delay)])
        .await?;
    Ok(msgs
        .first()
        .map(|m| Value::Object(sent(m)))
        .unwrap_or(json!({})))
}

fn batch_entries(input: &Value) -> Result<Vec<Value>, SqsError> {
    let entries = input
        .get("Entries")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if entries.is_empty() {
        return Err(QueueError::EmptyBatch(
            "There should be at least one entry in the request.".into(),
        )
        .into());
    }
    if entries.len() > 10 {
        return Err(QueueError::TooManyEntries(format!(
            "Maximum number of entries per request are 10. You have sent {}.",
            entries.len()
        ))
        .into());
    }
    let mut ids: Vec<&str> = entries.iter().filter_map(|e| str_of(e, "Id")).collect();
    ids.sort_unstable();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        return Err(
            QueueError::DistinctIds("Id must be distinct among the batch entries.".into()).into(),
        );
    }
    Ok(entries)
}

async fn send_batch(core: &QueueService, input: &Value) -> R {
    let q = with_queue(core, input)?;
    let entries = batch_entries(input)?;
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for e in &entries {
        let id = str_of(e, "Id").unwrap_or("").to_string();
        let item = match (
            str_of(e, "MessageBody"),
            message_attributes(e.get("MessageAttributes")),
            int_of(e, "DelaySeconds"),
        ) {
            (Some(b), Ok(a), Ok(d)) => Ok((b.to_string(), a, d)),
            (None, _, _) => Err(SqsError::missing("MessageBody")),
            (_, Err(x), _) | (_, _, Err(x)) => Err(x),
        };
        match item {
            Ok(m) => match core.send(&q, vec![m]).await {
                Ok(msgs) => {
                    if let Some(m) = msgs.first() {
                        let mut o = sent(m);
                        o.insert("Id".into(), json!(id));
                        ok.push(Value::Object(o));
                    }
                }
                Err(err) => {
                    let e = SqsError::from(err);
                    failed.push(json!({"Id": id, "SenderFault": true, "Code": e.query_code, "Message": e.message}));
                }
            },
            Err(e) => failed.push(
                json!({"Id": id, "SenderFault": true, "Code": e.query_code, "Message": e.message}),
            ),
        }
    }
    Ok(json!({ "Successful": ok, "Failed": failed }))
}

fn render_received(r: &Received, system: &[String], attrs: &[String]) -> Value {
    let m = &r.message;
    let mut o = Map::new();
    o.insert("MessageId".into(), json!(m.id));
    o.insert("ReceiptHandle".into(), json!(r.receipt_handle));
    o.insert("MD5OfBody".into(), json!(md5_of_body(&m.body)));
    o.insert("Body".into(), json!(m.body));
    let want = |k: &str| system.iter().any(|s| s == "All" || s == k);
    let mut sys = Map::new();
    if want("SenderId") {
        sys.insert("SenderId".into(), json!("000000000000"));
    }
    if want("SentTimestamp") {
        sys.insert("SentTimestamp".into(), json!(m.sent_ms.to_string()));
    }
    if want("ApproximateReceiveCount") {
        sys.insert(
            "ApproximateReceiveCount".into(),
            json!(m.receive_count.to_string()),
        );
    }
    if want("ApproximateFirstReceiveTimestamp") {
        sys.insert(
            "ApproximateFirstReceiveTimestamp".into(),
            json!(m.first_receive_ms.unwrap_or(m.sent_ms).to_string()),
        );
    }
    if !sys.is_empty() {
        o.insert("Attributes".into(), Value::Object(sys));
    }
    let picked: BTreeMap<String, MessageAttribute> = m
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
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(d) = md5_of_attributes(&m.attributes) {
        o.insert("MD5OfMessageAttributes".into(), json!(d));
    }
    if !picked.is_empty() {
        let rendered: Map<String, Value> = picked
            .iter()
            .map(|(k, a)| {
                let mut v = Map::new();
                v.insert("DataType".into(), json!(a.data_type));
                if let Some(s) = &a.string_value {
                    v.insert("StringValue".into(), json!(s));
                }
                if let Some(b) = &a.binary_value {
                    v.insert("BinaryValue".into(), json!(b));
                }
                (k.clone(), Value::Object(v))
            })
            .collect();
        o.insert("MessageAttributes".into(), Value::Object(rendered));
    }
    Value::Object(o)
}

fn names(input: &Value, key: &str) -> Vec<String> {
    input
        .get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

async fn receive(core: &QueueService, input: &Value) -> R {
    let q = with_queue(core, input)?;
    let max = int_of(input, "MaxNumberOfMessages")?.unwrap_or(1);
    let got = core
        .receive(
            &q,
            usize::try_from(max).unwrap_or(0),
            int_of(input, "VisibilityTimeout")?,
            int_of(input, "WaitTimeSeconds")?,
        )
        .await?;
    if got.is_empty() {
        return Ok(json!({}));
    }
    let mut system = names(input, "AttributeNames");
    system.extend(names(input, "MessageSystemAttributeNames"));
    let attrs = names(input, "MessageAttributeNames");
    Ok(
        json!({ "Messages": got.iter().map(|r| render_received(r, &system, &attrs)).collect::<Vec<_>>() }),
    )
}

async fn delete_message(core: &QueueService, input: &Value) -> R {
    let q = with_queue(core, input)?;
    let handle =
        str_of(input, "ReceiptHandle").ok_or_else(|| SqsError::missing("ReceiptHandle"))?;
    core.delete_message(&q, handle).await?;
    Ok(json!({}))
}

async fn delete_batch(core: &QueueService, input: &Value) -> R {
    let q = with_queue(core, input)?;
    let entries = batch_entries(input)?;
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    // One commit for every entry with a handle.
    let with_handles: Vec<(&str, &str)> = entries
        .iter()
        .filter_map(|e| Some((str_of(e, "Id").unwrap_or(""), str_of(e, "ReceiptHandle")?)))
        .collect();
    let handles: Vec<&str> = with_handles.iter().map(|(_, h)| *h).collect();
    let mut outcomes = core.delete_messages(&q, &handles).await?.into_iter();
    for e in &entries {
        let id = str_of(e, "Id").unwrap_or("");
        if str_of(e, "ReceiptHandle").is_none() {
            failed.push(json!({"Id": id, "SenderFault": true, "Code": "MissingParameter", "Message": "The request must contain the parameter ReceiptHandle."}));
            continue;
        }
        match outcomes.next() {
            Some(Ok(())) => ok.push(json!({ "Id": id })),
            Some(Err(err)) => {
                let e = SqsError::from(err);
                failed.push(json!({"Id": id, "SenderFault": true, "Code": e.query_code, "Message": e.message}));
            }
            None => failed.push(json!({"Id": id, "SenderFault": false, "Code": "InternalError", "Message": "The entry was not processed."})),
        }
    }
    Ok(json!({ "Successful": ok, "Failed": failed }))
}

fn change_visibility(core: &QueueService, input: &Value) -> R {
    let q = with_queue(core, input)?;
    let handle =
        str_of(input, "ReceiptHandle").ok_or_else(|| SqsError::missing("ReceiptHandle"))?;
    let secs = int_of(input, "VisibilityTimeout")?
        .ok_or_else(|| SqsError::missing("VisibilityTimeout"))?;
    core.change_visibility(&q, handle, secs)?;
    Ok(json!({}))
}
