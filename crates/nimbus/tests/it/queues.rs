//! The built-in queue service through its SQS JSON API: durability across kill -9 and errors.

use std::time::Duration;

use crate::common::*;
use serde_json::{Value, json};

async fn sqs(s: &Server, op: &str, body: Value) -> (u16, Value, Option<String>) {
    let r = s
        .http
        .post(s.u("/"))
        .header("X-Amz-Target", format!("AmazonSQS.{op}"))
        .header("Content-Type", "application/x-amz-json-1.0")
        .body(body.to_string())
        .send()
        .await
        .expect("sqs");
    let st = r.status().as_u16();
    let q = r
        .headers()
        .get("x-amzn-query-error")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (st, r.json().await.unwrap_or(Value::Null), q)
}

#[tokio::test]
async fn sent_messages_survive_kill_9() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut s = Server::start_in(tmp.path(), None);
    let (_, v, _) = sqs(&s, "CreateQueue", json!({"QueueName": "jobs"})).await;
    let url = v["QueueUrl"].as_str().expect("url").to_string();
    for i in 0..50 {
        let (st, _, _) = sqs(
            &s,
            "SendMessage",
            json!({"QueueUrl": url, "MessageBody": format!("job-{i}")}),
        )
        .await;
        assert_eq!(st, 200);
    }
    // Received but not deleted: visible again after the restart.
    let (_, got, _) = sqs(
        &s,
        "ReceiveMessage",
        json!({"QueueUrl": url, "MaxNumberOfMessages": 10}),
    )
    .await;
    assert_eq!(got["Messages"].as_array().map(Vec::len), Some(10));
    s.crash();
    let s = Server::start_in(tmp.path(), None);
    let mut bodies = std::collections::BTreeSet::new();
    for _ in 0..10 {
        let (_, got, _) = sqs(
            &s,
            "ReceiveMessage",
            json!({"QueueUrl": url, "MaxNumberOfMessages": 10}),
        )
        .await;
        for m in got["Messages"].as_array().into_iter().flatten() {
            bodies.insert(m["Body"].as_str().unwrap_or("").to_string());
            sqs(
                &s,
                "DeleteMessage",
                json!({"QueueUrl": url, "ReceiptHandle": m["ReceiptHandle"]}),
            )
            .await;
        }
    }
    assert_eq!(
        bodies.len(),
        50,
        "every acknowledged message is still there"
    );
    let (_, attrs, _) = sqs(
        &s,
        "GetQueueAttributes",
        json!({"QueueUrl": url, "AttributeNames": ["ApproximateNumberOfMessages"]}),
    )
    .await;
    assert_eq!(attrs["Attributes"]["ApproximateNumberOfMessages"], "0");
}

#[tokio::test]
async fn errors_are_sqs_shaped() {
    let s = Server::start();
    let (st, v, q) = sqs(&s, "GetQueueUrl", json!({"QueueName": "missing"})).await;
    assert_eq!(st, 400);
    assert_eq!(v["__type"], "com.amazonaws.sqs#QueueDoesNotExist");
    assert_eq!(
        q.as_deref(),
        Some("AWS.SimpleQueueService.NonExistentQueue;Sender")
    );
    let (st, v, _) = sqs(&s, "CreateQueue", json!({"QueueName": "bad name"})).await;
    assert_eq!(
        (st, v["__type"].as_str()),
        (400, Some("com.amazonaws.sqs#InvalidParameterValue"))
    );
    let (_, _, _) = sqs(
        &s,
        "CreateQueue",
        json!({"QueueName": "q1", "Attributes": {"VisibilityTimeout": "5"}}),
    )
    .await;
    let (st, v, q) = sqs(
        &s,
        "CreateQueue",
        json!({"QueueName": "q1", "Attributes": {"VisibilityTimeout": "6"}}),
    )
    .await;
    assert_eq!(
        (st, v["__type"].as_str(), q.as_deref()),
        (
            400,
            Some("com.amazonaws.sqs#QueueNameExists"),
            Some("QueueAlreadyExists;Sender")
        )
    );
    let (st, v, _) = sqs(
        &s,
        "CreateQueue",
        json!({"QueueName": "q2", "Attributes": {"Bogus": "1"}}),
    )
    .await;
    assert_eq!(
        (st, v["__type"].as_str()),
        (400, Some("com.amazonaws.sqs#InvalidAttributeName"))
    );
    let url = s.u("/000000000000/q1");
    let (st, v, _) = sqs(
        &s,
        "ReceiveMessage",
        json!({"QueueUrl": url, "MaxNumberOfMessages": 11}),
    )
    .await;
    assert_eq!(
        (st, v["__type"].as_str()),
        (400, Some("com.amazonaws.sqs#InvalidParameterValue"))
    );
    let (st, v, _) = sqs(
        &s,
        "SendMessageBatch",
        json!({"QueueUrl": url, "Entries": []}),
    )
    .await;
    assert_eq!(
        (st, v["__type"].as_str()),
        (400, Some("com.amazonaws.sqs#EmptyBatchRequest"))
    );
    let (st, v, _) = sqs(&s, "SendMessageBatch", json!({"QueueUrl": url, "Entries": [{"Id": "a", "MessageBody": "x"}, {"Id": "a", "MessageBody": "y"}]})).await;
    assert_eq!(
        (st, v["__type"].as_str()),
        (400, Some("com.amazonaws.sqs#BatchEntryIdsNotDistinct"))
    );
    let (st, v, _) = sqs(&s, "SendMessage", json!({"QueueUrl": url})).await;
    assert_eq!(
        (st, v["__type"].as_str()),
        (400, Some("com.amazonaws.sqs#MissingParameter"))
    );
}

/// A runtime that logs each SQS record's body (`GOT <body>`) and succeeds.
const RECORD_LOGGER: &str = r#"#!/usr/bin/python3
import http.client, json, os
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
conn = http.client.HTTPConnection(host, int(port))
while True:
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    r = conn.getresponse()
    ev = json.loads(r.read())
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    for rec in ev["Records"]:
        print("GOT " + rec["body"], flush=True)
    conn.request("POST", f"/2018-06-01/runtime/invocation/{rid}/response", "null")
    conn.getresponse().read()
"#;

#[tokio::test]
async fn event_source_mappings_survive_a_restart_and_a_crash() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut s = Server::start_in(tmp.path(), None);
    let (_, v, _) = sqs(&s, "CreateQueue", json!({"QueueName": "feed"})).await;
    let url = v["QueueUrl"].as_str().expect("url").to_string();
    s.create_ok(
        "consumer",
        "provided.al2023",
        "x",
        &zip_of(&[("bootstrap", RECORD_LOGGER, 0o755)]),
        json!({}),
    )
    .await;
    let created = s
        .call_ok(
            "POST",
            "/2015-03-31/event-source-mappings/",
            json!({
                "FunctionName": "consumer",
                "EventSourceArn": "arn:aws:sqs:us-east-1:000000000000:feed",
            }),
        )
        .await;
    let uuid = created["UUID"].as_str().expect("uuid").to_string();
    let (st, _, _) = sqs(
        &s,
        "SendMessage",
        json!({"QueueUrl": url, "MessageBody": "before"}),
    )
    .await;
    assert_eq!(st, 200);
    let logs = s.log_messages("consumer", "GOT before").await;
    assert!(logs.iter().any(|l| l.contains("GOT before")), "{logs:?}");

    // A clean restart: the mapping is polled again.
    s.stop();
    let mut s = Server::start_in(tmp.path(), None);
    let (st, _, _) = sqs(
        &s,
        "SendMessage",
        json!({"QueueUrl": url, "MessageBody": "after-restart"}),
    )
    .await;
    assert_eq!(st, 200);
    let logs = s.log_messages("consumer", "GOT after-restart").await;
    assert!(
        logs.iter().any(|l| l.contains("GOT after-restart")),
        "{logs:?}"
    );
    let (_, got, _) = s
        .get(&format!("/2015-03-31/event-source-mappings/{uuid}"))
        .await;
    assert_eq!(got["State"], "Enabled", "{got}");

    // A crash with messages waiting: none is lost.
    s.crash();
    let s = Server::start_in(tmp.path(), None);
    for i in 0..5 {
        let (st, _, _) = sqs(
            &s,
            "SendMessage",
            json!({"QueueUrl": url, "MessageBody": format!("late-{i}")}),
        )
        .await;
        assert_eq!(st, 200);
    }
    for i in 0..5 {
        let want = format!("GOT late-{i}");
        let logs = s.log_messages("consumer", &want).await;
        assert!(
            logs.iter().any(|l| l.contains(&want)),
            "late-{i} was not delivered: {logs:?}"
        );
    }
}

#[tokio::test]
async fn a_backlog_scales_the_pollers_up() {
    let s = Server::start_with_config("");
    let (_, v, _) = sqs(&s, "CreateQueue", json!({"QueueName": "backlog"})).await;
    let url = v["QueueUrl"].as_str().expect("url").to_string();
    // Each batch takes a second: five pollers keep at most five environments busy.
    let slow = slow_record_logger(1.0);
    s.create_ok(
        "slow",
        "provided.al2023",
        "x",
        &zip_of(&[("bootstrap", &slow, 0o755)]),
        json!({}),
    )
    .await;
    for chunk in 0..6 {
        let entries: Vec<Value> = (0..10)
            .map(|i| json!({"Id": format!("{i}"), "MessageBody": format!("b-{chunk}-{i}")}))
            .collect();
        let (st, _, _) = sqs(
            &s,
            "SendMessageBatch",
            json!({"QueueUrl": url, "Entries": entries}),
        )
        .await;
        assert_eq!(st, 200);
    }
    s.call_ok(
        "POST",
        "/2015-03-31/event-source-mappings/",
        json!({
            "FunctionName": "slow",
            "EventSourceArn": "arn:aws:sqs:us-east-1:000000000000:backlog",
            "BatchSize": 1,
        }),
    )
    .await;
    let mut streams = 0;
    for _ in 0..100 {
        let (_, v) = s
            .logs_api(
                "DescribeLogStreams",
                json!({"logGroupName": "/aws/lambda/slow"}),
            )
            .await;
        streams = v["logStreams"].as_array().map(Vec::len).unwrap_or(0);
        if streams > 5 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        streams > 5,
        "the backlog of 60 one-second batches ran on {streams} environments: the pollers did not scale up"
    );
}

/// Receives everything visible (deleting it), in the order it came out, as (group, body, seq).
async fn drain_fifo(s: &Server, url: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for _ in 0..50 {
        let (st, got, _) = sqs(
            s,
            "ReceiveMessage",
            json!({"QueueUrl": url, "MaxNumberOfMessages": 10, "MessageSystemAttributeNames": ["All"]}),
        )
        .await;
        assert_eq!(st, 200, "{got}");
        let msgs = got["Messages"].as_array().cloned().unwrap_or_default();
        if msgs.is_empty() {
            break;
        }
        for m in &msgs {
            out.push((
                m["Attributes"]["MessageGroupId"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                m["Body"].as_str().unwrap_or("").to_string(),
                m["Attributes"]["SequenceNumber"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            ));
            let (st, _, _) = sqs(
                s,
                "DeleteMessage",
                json!({"QueueUrl": url, "ReceiptHandle": m["ReceiptHandle"]}),
            )
            .await;
            assert_eq!(st, 200);
        }
    }
    out
}

#[tokio::test]
async fn fifo_order_and_deduplication_survive_kill_9() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut s = Server::start_in(tmp.path(), None);
    let (st, v, _) = sqs(
        &s,
        "CreateQueue",
        json!({"QueueName": "orders.fifo", "Attributes": {"FifoQueue": "true"}}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let url = v["QueueUrl"].as_str().expect("url").to_string();
    let mut first_ids = std::collections::BTreeMap::new();
    let mut last_seq = String::new();
    for i in 0..30 {
        let group = format!("g{}", i % 3);
        let (st, sent, _) = sqs(
            &s,
            "SendMessage",
            json!({"QueueUrl": url, "MessageBody": format!("{group}-{i}"), "MessageGroupId": group,
                   "MessageDeduplicationId": format!("d{i}")}),
        )
        .await;
        assert_eq!(st, 200, "{sent}");
        let seq = sent["SequenceNumber"].as_str().expect("seq").to_string();
        assert_eq!(seq.len(), 20, "{seq}");
        assert!(seq > last_seq, "sequence numbers increase");
        last_seq = seq;
        first_ids.insert(i, sent["MessageId"].as_str().expect("id").to_string());
    }
    // g0's head in flight at the crash.
    let (_, got, _) = sqs(&s, "ReceiveMessage", json!({"QueueUrl": url})).await;
    assert_eq!(got["Messages"][0]["Body"], "g0-0");
    s.crash();

    let s = Server::start_in(tmp.path(), None);
    // A duplicate inside the window is answered with the original id and not enqueued.
    let (st, dup, _) = sqs(
        &s,
        "SendMessage",
        json!({"QueueUrl": url, "MessageBody": "dup", "MessageGroupId": "g1", "MessageDeduplicationId": "d4"}),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(
        dup["MessageId"].as_str(),
        first_ids.get(&4).map(String::as_str)
    );
    let (_, fresh, _) = sqs(
        &s,
        "SendMessage",
        json!({"QueueUrl": url, "MessageBody": "g1-late", "MessageGroupId": "g1", "MessageDeduplicationId": "late"}),
    )
    .await;
    assert!(
        fresh["SequenceNumber"].as_str().unwrap_or("") > last_seq.as_str(),
        "sequence numbers keep increasing after a crash: {fresh}"
    );
    let got = drain_fifo(&s, &url).await;
    assert_eq!(got.len(), 31, "{got:?}");
    for g in ["g0", "g1", "g2"] {
        let bodies: Vec<&str> = got
            .iter()
            .filter(|(grp, _, _)| grp == g)
            .map(|(_, b, _)| b.as_str())
            .collect();
        let mut want: Vec<String> = (0..30)
            .filter(|i| format!("g{}", i % 3) == g)
            .map(|i| format!("{g}-{i}"))
            .collect();
        if g == "g1" {
            want.push("g1-late".into());
        }
        assert_eq!(bodies, want, "group {g} in send order");
        let seqs: Vec<&str> = got
            .iter()
            .filter(|(grp, _, _)| grp == g)
            .map(|(_, _, s)| s.as_str())
            .collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    }
}

/// Sends a query-protocol request (form in, XML out), with a SigV4-shaped `Authorization`
/// naming `sqs` (the front door routes by the credential scope; signatures are not checked).
async fn query(s: &Server, path: &str, form: &[(&str, &str)]) -> (u16, String) {
    let body: String = form
        .iter()
        .map(|(k, v)| format!("{k}={}", percent(v)))
        .collect::<Vec<_>>()
        .join("&");
    let r = s
        .http
        .post(s.u(path))
        .header("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=test/20261207/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=x",
        )
        .body(body)
        .send()
        .await
        .expect("query");
    let st = r.status().as_u16();
    (st, r.text().await.unwrap_or_default())
}

fn percent(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn the_query_protocol_serves_the_same_operations() {
    let s = Server::start();
    let (st, xml) = query(
        &s,
        "/",
        &[
            ("Action", "CreateQueue"),
            ("Version", "2012-11-05"),
            ("QueueName", "q-xml.fifo"),
            ("Attribute.1.Name", "FifoQueue"),
            ("Attribute.1.Value", "true"),
            ("Attribute.2.Name", "ContentBasedDeduplication"),
            ("Attribute.2.Value", "true"),
            ("Tag.1.Key", "team"),
            ("Tag.1.Value", "a"),
        ],
    )
    .await;
    assert_eq!(st, 200, "{xml}");
    assert!(xml.contains("<CreateQueueResponse xmlns=\"http://queue.amazonaws.com/doc/2012-11-05/\"><CreateQueueResult><QueueUrl>"), "{xml}");
    // Queue-URL style: the queue from the path.
    let (st, xml) = query(
        &s,
        "/000000000000/q-xml.fifo",
        &[
            ("Action", "SendMessage"),
            ("MessageBody", "a & b"),
            ("MessageGroupId", "g"),
            ("MessageAttribute.1.Name", "k"),
            ("MessageAttribute.1.Value.DataType", "String"),
            ("MessageAttribute.1.Value.StringValue", "v"),
        ],
    )
    .await;
    assert_eq!(st, 200, "{xml}");
    assert!(
        xml.contains("<SequenceNumber>") && xml.contains("<MD5OfMessageAttributes>"),
        "{xml}"
    );
    let (st, xml) = query(
        &s,
        "/000000000000/q-xml.fifo",
        &[
            ("Action", "ReceiveMessage"),
            ("AttributeName.1", "All"),
            ("MessageAttributeName.1", "All"),
        ],
    )
    .await;
    assert_eq!(st, 200, "{xml}");
    assert!(xml.contains("<Body>a &amp; b</Body>"), "{xml}");
    assert!(
        xml.contains("<Attribute><Name>MessageGroupId</Name><Value>g</Value></Attribute>"),
        "{xml}"
    );
    assert!(
        xml.contains("<MessageAttribute><Name>k</Name><Value>"),
        "{xml}"
    );
    let (st, xml) = query(
        &s,
        "/000000000000/q-xml.fifo",
        &[("Action", "ListQueueTags")],
    )
    .await;
    assert_eq!(st, 200);
    assert!(
        xml.contains("<Tag><Key>team</Key><Value>a</Value></Tag>"),
        "{xml}"
    );
    // Errors are SQS's XML error document.
    let (st, xml) = query(
        &s,
        "/",
        &[("Action", "GetQueueUrl"), ("QueueName", "missing")],
    )
    .await;
    assert_eq!(st, 400);
    assert!(
        xml.contains("<Error><Type>Sender</Type><Code>AWS.SimpleQueueService.NonExistentQueue</Code><Message>The specified queue does not exist.</Message><Detail/></Error><RequestId>"),
        "{xml}"
    );
    let (st, xml) = query(
        &s,
        "/",
        &[("Action", "StartMessageMoveTask"), ("SourceArn", "x")],
    )
    .await;
    assert_eq!(st, 400);
    assert!(
        xml.contains("<Code>AWS.SimpleQueueService.UnsupportedOperation</Code>"),
        "{xml}"
    );
}

/// [`RECORD_LOGGER`], taking `seconds` over each batch (so that batches are in flight).
fn slow_record_logger(seconds: f64) -> String {
    RECORD_LOGGER.replace(
        "    for rec in ev[\"Records\"]:",
        &format!("    import time; time.sleep({seconds})\n    for rec in ev[\"Records\"]:"),
    )
}

/// How many times each body was logged as `GOT <body>`.
async fn deliveries(s: &Server, function: &str) -> std::collections::BTreeMap<String, usize> {
    let mut seen = std::collections::BTreeMap::new();
    for m in s.all_log_messages(function).await {
        if let Some(body) = m.trim_end().strip_prefix("GOT ") {
            *seen.entry(body.to_string()).or_default() += 1;
        }
    }
    seen
}

async fn in_queue(s: &Server, url: &str) -> u64 {
    let (_, v, _) = sqs(
        s,
        "GetQueueAttributes",
        json!({"QueueUrl": url, "AttributeNames": ["All"]}),
    )
    .await;
    let n = |k: &str| {
        v["Attributes"][k]
            .as_str()
            .and_then(|x| x.parse::<u64>().ok())
            .unwrap_or(0)
    };
    n("ApproximateNumberOfMessages") + n("ApproximateNumberOfMessagesNotVisible")
}

async fn map(s: &Server, function: &str, queue: &str, batch: u32) -> String {
    let created = s
        .call_ok(
            "POST",
            "/2015-03-31/event-source-mappings/",
            json!({
                "FunctionName": function,
                "EventSourceArn": format!("arn:aws:sqs:us-east-1:000000000000:{queue}"),
                "BatchSize": batch,
            }),
        )
        .await;
    created["UUID"].as_str().expect("uuid").to_string()
}

#[tokio::test]
async fn a_crash_with_batches_in_flight_loses_no_message() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut s = Server::start_in(tmp.path(), None);
    let (_, v, _) = sqs(
        &s,
        "CreateQueue",
        json!({"QueueName": "inflight", "Attributes": {"VisibilityTimeout": "2"}}),
    )
    .await;
    let url = v["QueueUrl"].as_str().expect("url").to_string();
    s.create_ok(
        "slow-consumer",
        "provided.al2023",
        "x",
        &zip_of(&[("bootstrap", &slow_record_logger(0.5), 0o755)]),
        json!({}),
    )
    .await;
    map(&s, "slow-consumer", "inflight", 5).await;
    let sent: Vec<String> = (0..40).map(|i| format!("m-{i}")).collect();
    for chunk in sent.chunks(10) {
        let entries: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(i, b)| json!({"Id": i.to_string(), "MessageBody": b}))
            .collect();
        let (st, v, _) = sqs(
            &s,
            "SendMessageBatch",
            json!({"QueueUrl": url, "Entries": entries}),
        )
        .await;
        assert_eq!(st, 200, "{v}");
    }
    // Some batches delivered, others in flight: then kill -9.
    eventually(
        Duration::from_secs(20),
        "a first batch to be handled",
        || async { (!deliveries(&s, "slow-consumer").await.is_empty()).then_some(()) },
    )
    .await;
    s.crash();
    let s = Server::start_in(tmp.path(), None);
    // Every message arrives (in-flight ones after their visibility timeout), and the queue ends
    // empty: acknowledged messages are never lost, and a batch is at least once.
    let seen = settle(
        Duration::from_secs(60),
        || deliveries(&s, "slow-consumer"),
        |seen| sent.iter().all(|b| seen.contains_key(b)),
    )
    .await;
    let missing: Vec<&String> = sent.iter().filter(|b| !seen.contains_key(*b)).collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    eprintln!("a crash with batches in flight: 40 messages, {duplicates} delivered twice");
    assert!(duplicates <= 40, "{seen:?}");
    let left = settle(Duration::from_secs(20), || in_queue(&s, &url), |n| *n == 0).await;
    assert_eq!(left, 0, "handled messages are deleted");
}

#[tokio::test]
async fn throttled_batches_go_back_to_the_queue() {
    let s = Server::start_with_config("");
    let (_, v, _) = sqs(
        &s,
        "CreateQueue",
        json!({"QueueName": "throttled", "Attributes": {"VisibilityTimeout": "1"}}),
    )
    .await;
    let url = v["QueueUrl"].as_str().expect("url").to_string();
    s.create_ok(
        "held-back",
        "provided.al2023",
        "x",
        &zip_of(&[("bootstrap", RECORD_LOGGER, 0o755)]),
        json!({}),
    )
    .await;
    // No concurrency at all: every invocation of the mapping is throttled.
    let r = s
        .http
        .put(s.u("/2017-10-31/functions/held-back/concurrency"))
        .json(&json!({"ReservedConcurrentExecutions": 0}))
        .send()
        .await
        .expect("put concurrency");
    assert_eq!(r.status().as_u16(), 200);
    map(&s, "held-back", "throttled", 10).await;
    for i in 0..5 {
        let (st, _, _) = sqs(
            &s,
            "SendMessage",
            json!({"QueueUrl": url, "MessageBody": format!("t-{i}")}),
        )
        .await;
        assert_eq!(st, 200);
    }
    // Throttled: received and returned, never handled, never deleted.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(deliveries(&s, "held-back").await.is_empty());
    assert_eq!(
        in_queue(&s, &url).await,
        5,
        "throttled batches stay in the queue"
    );
    // Concurrency back: every message is handled and deleted.
    let r = s
        .http
        .delete(s.u("/2017-10-31/functions/held-back/concurrency"))
        .send()
        .await
        .expect("delete concurrency");
    assert_eq!(r.status().as_u16(), 204);
    let seen = settle(
        Duration::from_secs(30),
        || deliveries(&s, "held-back"),
        |seen| seen.len() == 5,
    )
    .await;
    assert_eq!(seen.len(), 5, "{seen:?}");
    let left = settle(Duration::from_secs(20), || in_queue(&s, &url), |n| *n == 0).await;
    assert_eq!(left, 0);
}
