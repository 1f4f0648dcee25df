//! SQS's query protocol (form in, XML out), as older SDKs and tools speak it: `POST /` or
//! `POST /<account>/<queue>` with `Action=<Op>&Version=2012-11-05&…` and the protocol's
//! flattened member names (`Attribute.1.Name`, `MessageAttribute.1.Value.StringValue`,
//! `SendMessageBatchRequestEntry.1.Id`, `Tag.1.Key`, …). The form is turned into the JSON
//! protocol's shape by the front door's query codec (`nimbus_edge::protocol::query`, told
//! SQS's lists, maps and numbers by [`QueryShape`]) and decoded into the same typed
//! [`crate::api::Request`]; results and errors are rendered as SQS's XML (`<OpResponse xmlns=…><OpResult>…</OpResult><ResponseMetadata>…`,
//! `<ErrorResponse><Error><Type/><Code/><Message/><Detail/></Error><RequestId/>`).

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;
use nimbus_edge::protocol::query::{self, FormError, QueryShape, xml_response};
use nimbus_edge::protocol::request_id;
use serde_json::Value;

use crate::api::{self, SqsError};
use crate::service::QueueService;
use crate::wire::MAX_REQUEST_BYTES;

const XMLNS: &str = "http://queue.amazonaws.com/doc/2012-11-05/";

/// Form fields a request may carry (ten batch entries of ten attributes fit many times over).
pub const MAX_FIELDS: usize = 2000;

/// SQS's members, as its model gives them, for the query protocol's lists, maps and numbers.
struct Sqs;

impl QueryShape for Sqs {
    fn list_member(&self, flat: &str) -> Option<&'static str> {
        Some(match flat {
            "AttributeName" => "AttributeNames",
            "MessageAttributeName" => "MessageAttributeNames",
            "MessageSystemAttributeName" => "MessageSystemAttributeNames",
            "TagKey" => "TagKeys",
            "AWSAccountId" => "AWSAccountIds",
            "ActionName" => "Actions",
            "SendMessageBatchRequestEntry"
            | "DeleteMessageBatchRequestEntry"
            | "ChangeMessageVisibilityBatchRequestEntry" => "Entries",
            "StringListValue" => "StringListValues",
            "BinaryListValue" => "BinaryListValues",
            _ => return None,
        })
    }

    fn map_member(&self, flat: &str, op: &str) -> Option<(&'static str, &'static str)> {
        Some(match flat {
            "Attribute" => ("Attributes", "Name"),
            "MessageAttribute" => ("MessageAttributes", "Name"),
            "MessageSystemAttribute" => ("MessageSystemAttributes", "Name"),
            // `Tags.N` as well: the AWS SDK for Java 1.x sends TagQueue's tags so, and SQS
            // takes it.
            "Tag" | "Tags" if op == "CreateQueue" => ("tags", "Key"),
            "Tag" | "Tags" => ("Tags", "Key"),
            _ => return None,
        })
    }

    fn is_integer(&self, member: &str) -> bool {
        matches!(
            member,
            "DelaySeconds"
                | "MaxNumberOfMessages"
                | "VisibilityTimeout"
                | "WaitTimeSeconds"
                | "MaxResults"
        )
    }

    fn list_element(&self, member: &str, op: &str) -> String {
        match member {
            "QueueUrls" | "queueUrls" => "QueueUrl".into(),
            "Messages" => "Message".into(),
            "Failed" => "BatchResultErrorEntry".into(),
            "Successful" => format!("{op}ResultEntry"),
            "StringListValues" => "StringListValue".into(),
            "BinaryListValues" => "BinaryListValue".into(),
            other => other.trim_end_matches('s').into(),
        }
    }

    fn map_element(&self, member: &str) -> Option<(&'static str, &'static str)> {
        Some(match member {
            "Attributes" => ("Attribute", "Name"),
            "MessageAttributes" => ("MessageAttribute", "Name"),
            "Tags" => ("Tag", "Key"),
            _ => return None,
        })
    }

    fn has_result(&self, op: &str) -> bool {
        api::has_result(op)
    }
}

impl From<FormError> for SqsError {
    fn from(e: FormError) -> Self {
        match e {
            FormError::Missing(what) => SqsError::missing(&what),
            FormError::Invalid(msg) => SqsError::invalid(msg),
        }
    }
}

/// The operation and its members (in the JSON protocol's shape) from the form's fields.
/// `path` supplies `QueueUrl` for queue-URL-style requests (`POST /<account>/<queue>`).
pub fn decode_form(pairs: &[(String, String)], path: &str) -> Result<(String, Value), SqsError> {
    if pairs.len() > MAX_FIELDS {
        return Err(SqsError::invalid(format!(
            "The request has {} parameters; at most {MAX_FIELDS} are accepted.",
            pairs.len()
        )));
    }
    let (op, mut input) = query::decode_form(&Sqs, pairs)?;
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let takes_queue_url = !matches!(op.as_str(), "CreateQueue" | "GetQueueUrl" | "ListQueues");
    if takes_queue_url
        && segments.len() == 2
        && let Some(obj) = input.as_object_mut()
        && !obj.contains_key("QueueUrl")
    {
        obj.insert("QueueUrl".into(), Value::String(path.to_string()));
    }
    Ok((op, input))
}

/// SQS's XML response for a result (in the JSON protocol's shape).
pub fn render(op: &str, result: &Value, request_id: &str) -> String {
    query::render_result(&Sqs, XMLNS, op, result, request_id)
}

/// SQS's XML error document.
pub fn render_error(e: &SqsError, request_id: &str) -> String {
    query::render_error(e, XMLNS, request_id)
}

/// Serves one query-protocol request.
pub async fn handle(core: &QueueService, req: Request<Body>) -> Response {
    let id = request_id();
    let path = req.uri().path().to_string();
    let result = match query::read_form(req, MAX_REQUEST_BYTES, MAX_FIELDS).await {
        Ok(pairs) => match decode_form(&pairs, &path) {
            Ok((op, input)) => match api::Request::decode(&op, input) {
                Ok(r) => api::execute(core, r).await.map(|v| (op, v)),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        },
        Err(e) => Err(e.into()),
    };
    match result {
        Ok((op, v)) => xml_response(StatusCode::OK, render(&op, &v, &id), &id),
        Err(e) => xml_response(e.status, render_error(&e, &id), &id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn form(s: &str) -> Vec<(String, String)> {
        form_urlencoded::parse(s.as_bytes()).into_owned().collect()
    }

    /// An XML document as sorted `path=text` lines: element order aside, two documents with
    /// the same lines have the same structure and values.
    fn canonical(xml: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack: Vec<String> = Vec::new();
        let mut text = String::new();
        let mut rest = xml;
        while let Some(open) = rest.find('<') {
            text.push_str(&rest[..open]);
            let close = rest[open..]
                .find('>')
                .map(|c| open + c)
                .unwrap_or(rest.len() - 1);
            let tag = &rest[open + 1..close];
            rest = &rest[close + 1..];
            if tag.starts_with('?') || tag.starts_with('!') {
                continue;
            }
            if let Some(name) = tag.strip_prefix('/') {
                if text.trim().is_empty() {
                    text.clear();
                } else {
                    out.push(format!("{}={}", stack.join("/"), text.trim()));
                    text.clear();
                }
                assert_eq!(stack.pop().as_deref(), Some(name), "balanced");
            } else if let Some(name) = tag.strip_suffix('/') {
                out.push(format!("{}/{}=", stack.join("/"), name.trim()));
                text.clear();
            } else {
                text.clear();
                stack.push(tag.split_whitespace().next().unwrap_or("").to_string());
            }
        }
        out.sort();
        out
    }

    #[test]
    fn flattened_members_become_the_json_shape() {
        let (op, v) = decode_form(
            &form("Action=SendMessageBatch&Version=2012-11-05&QueueUrl=http%3A%2F%2Fh%2F0%2Fq\
                   &SendMessageBatchRequestEntry.2.Id=b&SendMessageBatchRequestEntry.2.MessageBody=two\
                   &SendMessageBatchRequestEntry.1.Id=a&SendMessageBatchRequestEntry.1.MessageBody=one%20%26\
                   &SendMessageBatchRequestEntry.1.DelaySeconds=5\
                   &SendMessageBatchRequestEntry.1.MessageAttribute.1.Name=k\
                   &SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.DataType=String\
                   &SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.StringValue=v"),
            "/",
        )
        .expect("decode");
        assert_eq!(op, "SendMessageBatch");
        assert_eq!(
            v,
            json!({"QueueUrl": "http://h/0/q", "Entries": [
                {"Id": "a", "MessageBody": "one &", "DelaySeconds": 5,
                 "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v"}}},
                {"Id": "b", "MessageBody": "two"}]})
        );
        let (_, v) = decode_form(
            &form("Action=CreateQueue&QueueName=q&Attribute.1.Name=VisibilityTimeout&Attribute.1.Value=5&Tag.1.Key=team&Tag.1.Value=a"),
            "/",
        )
        .expect("decode");
        assert_eq!(
            v,
            json!({"QueueName": "q", "Attributes": {"VisibilityTimeout": "5"}, "tags": {"team": "a"}})
        );
        let (_, v) = decode_form(
            &form("Action=ReceiveMessage&AttributeName.1=All&MessageAttributeName.1=k&MaxNumberOfMessages=10"),
            "/000000000000/q",
        )
        .expect("decode");
        assert_eq!(
            v,
            json!({"QueueUrl": "/000000000000/q", "AttributeNames": ["All"], "MessageAttributeNames": ["k"], "MaxNumberOfMessages": 10})
        );
        let (_, v) = decode_form(
            &form("Action=UntagQueue&QueueUrl=q&TagKey.1=a&TagKey.2=b"),
            "/",
        )
        .expect("decode");
        assert_eq!(v, json!({"QueueUrl": "q", "TagKeys": ["a", "b"]}));
        let (_, v) = decode_form(
            &form("Action=TagQueue&QueueUrl=q&Tags.1.Key=a&Tags.1.Value=b"),
            "/",
        )
        .expect("decode");
        assert_eq!(v, json!({"QueueUrl": "q", "Tags": {"a": "b"}}));
        // Typed decoding refuses what the operation does not have.
        let (op, v) =
            decode_form(&form("Action=DeleteQueue&QueueUrl=q&Bogus=1"), "/").expect("decode");
        assert_eq!(
            api::Request::decode(&op, v).expect_err("unknown").shape,
            "InvalidParameterValue"
        );
        assert!(decode_form(&form("Action=ListQueues&Attribute.0.Name=x"), "/").is_err());
        assert_eq!(
            decode_form(&form("QueueUrl=q"), "/")
                .expect_err("no action")
                .shape,
            "MissingParameter"
        );
        let flood: Vec<(String, String)> = (0..MAX_FIELDS + 1)
            .map(|i| (format!("F{i}"), String::new()))
            .collect();
        assert!(decode_form(&flood, "/").is_err());
    }

    // AWS's XML shapes, from the examples of the Amazon SQS API Reference (query protocol:
    // "SendMessage", "ReceiveMessage", "GetQueueAttributes", "SendMessageBatch",
    // "ListQueueTags", "ListQueues", "DeleteMessage", and "Common Errors"), values replaced.
    const SEND_MESSAGE: &str = include_str!("fixtures/send_message.xml");
    const RECEIVE_MESSAGE: &str = include_str!("fixtures/receive_message.xml");
    const GET_QUEUE_ATTRIBUTES: &str = include_str!("fixtures/get_queue_attributes.xml");
    const SEND_MESSAGE_BATCH: &str = include_str!("fixtures/send_message_batch.xml");
    const LIST_QUEUE_TAGS: &str = include_str!("fixtures/list_queue_tags.xml");
    const LIST_QUEUES: &str = include_str!("fixtures/list_queues.xml");
    const DELETE_MESSAGE: &str = include_str!("fixtures/delete_message.xml");
    const ERROR: &str = include_str!("fixtures/error.xml");

    const RID: &str = "27daac76-34dd-47df-bd01-1f6e873584a0";

    #[test]
    fn results_render_as_aws_xml() {
        let cases = [
            (
                "SendMessage",
                json!({"MD5OfMessageBody": "fafb00f5732ab283681e124bf8747ed1", "MD5OfMessageAttributes": "3ae8f24a165a8cedc005670c81a27295",
                       "MessageId": "5fea7756-0ea4-451a-a703-a558b933e274", "SequenceNumber": "18849496460467696128"}),
                SEND_MESSAGE,
            ),
            (
                "ReceiveMessage",
                json!({"Messages": [{"MessageId": "5fea7756-0ea4-451a-a703-a558b933e274", "ReceiptHandle": "MbZj6wDWli+JvwwJaBV+3dcjk2YW2vA3+STFFljTM8tJJg6HRG6PYSasuWXPJB+Cw",
                       "MD5OfBody": "fafb00f5732ab283681e124bf8747ed1", "Body": "This is a test message",
                       "Attributes": {"SenderId": "195004372649", "SentTimestamp": "1238099229000", "ApproximateReceiveCount": "5", "ApproximateFirstReceiveTimestamp": "1250700979248"},
                       "MD5OfMessageAttributes": "3ae8f24a165a8cedc005670c81a27295",
                       "MessageAttributes": {"city": {"StringValue": "Any City", "DataType": "String"}}}]}),
                RECEIVE_MESSAGE,
            ),
            (
                "GetQueueAttributes",
                json!({"Attributes": {"ReceiveMessageWaitTimeSeconds": "2", "VisibilityTimeout": "30", "DelaySeconds": "0"}}),
                GET_QUEUE_ATTRIBUTES,
            ),
            (
                "SendMessageBatch",
                json!({"Successful": [{"Id": "test_msg_001", "MessageId": "0a5231c7-8bff-4955-be2e-8dc7c50a25fa", "MD5OfMessageBody": "0e024d309850c78cba5eabbeff7cae71"}],
                       "Failed": [{"Id": "test_msg_002", "SenderFault": true, "Code": "InvalidParameterValue", "Message": "Bad value"}]}),
                SEND_MESSAGE_BATCH,
            ),
            (
                "ListQueueTags",
                json!({"Tags": {"QueueType": "Production", "Owner": "Developer123"}}),
                LIST_QUEUE_TAGS,
            ),
            (
                "ListQueues",
                json!({"QueueUrls": ["https://sqs.us-east-2.amazonaws.com/123456789012/MyQueue"]}),
                LIST_QUEUES,
            ),
            ("DeleteMessage", json!({}), DELETE_MESSAGE),
        ];
        for (op, result, fixture) in cases {
            assert_eq!(
                canonical(&render(op, &result, RID)),
                canonical(fixture),
                "{op}"
            );
        }
        let e = SqsError::from(crate::service::QueueError::NoQueue);
        assert_eq!(canonical(&render_error(&e, RID)), canonical(ERROR));
    }

    #[test]
    fn text_is_escaped() {
        let xml = render("SendMessage", &json!({"MessageId": "<a&b>\"'"}), RID);
        assert!(
            xml.contains("<MessageId>&lt;a&amp;b&gt;&quot;&apos;</MessageId>"),
            "{xml}"
        );
    }
}
