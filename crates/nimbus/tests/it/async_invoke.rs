//! Asynchronous invocation: event invoke configs, retries counted exactly, destinations with
//! Lambda's invocation record, event-age expiry, and a kill -9 in the middle of 10,000 events.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{Value, json};

/// Short retry delays so the tests see retries in well under a second.
const FAST: &str = "[async]\nretry_delays_secs = [0.2, 0.2]\nthrottle_backoff_ms = 50\nthrottle_backoff_max_ms = 200\n";

/// A runtime that prints every event it receives as `RECORD <json>` (a destination sink).
const SINK: &str = r#"#!/usr/bin/python3
import http.client, json, os
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
conn = http.client.HTTPConnection(host, int(port))
while True:
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    r = conn.getresponse()
    body = r.read()
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    print("RECORD " + json.dumps(json.loads(body)), flush=True)
    conn.request("POST", f"/2018-06-01/runtime/invocation/{rid}/response", "null")
    conn.getresponse().read()
"#;

fn arn(name: &str) -> String {
    format!("arn:aws:lambda:us-east-1:000000000000:function:{name}")
}

async fn config_call(
    s: &Server,
    method: &str,
    name: &str,
    body: Option<Value>,
) -> (u16, Value, Option<String>) {
    let url = s.u(&format!("/2019-09-25/functions/{name}/event-invoke-config"));
    let req = match method {
        "PUT" => s.http.put(url),
        "POST" => s.http.post(url),
        "DELETE" => s.http.delete(url),
        _ => s.http.get(url),
    };
    let req = match body {
        Some(b) => req.json(&b),
        None => req,
    };
    let r = req.send().await.expect("request");
    let st = r.status().as_u16();
    let t = r
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (st, r.json().await.unwrap_or(Value::Null), t)
}

async fn invoke_event(s: &Server, name: &str, payload: Value) -> String {
    let r = s
        .invoke_raw(
            name,
            payload.to_string().as_bytes(),
            &[("X-Amz-Invocation-Type", "Event")],
        )
        .await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    r.header("x-amzn-requestid").expect("request id")
}

/// The records a sink function printed, once at least `n` arrived (or 20 s passed).
async fn records(s: &Server, sink: &str, n: usize) -> Vec<Value> {
    settle(
        Duration::from_secs(20),
        || async {
            s.all_log_messages(sink)
                .await
                .iter()
                .filter_map(|m| m.strip_prefix("RECORD "))
                .filter_map(|j| serde_json::from_str(j).ok())
                .collect::<Vec<Value>>()
        },
        |recs| recs.len() >= n,
    )
    .await
}

async fn sink_fn(s: &Server, name: &str) {
    s.create_ok(
        name,
        "provided.al2023",
        "x",
        &zip_of(&[("bootstrap", SINK, 0o755)]),
        json!({}),
    )
    .await;
}

#[tokio::test]
async fn event_invoke_config_api() {
    let s = Server::start();
    provided_fn(&s, "cfg", json!({})).await;
    let (st, _, t) = config_call(&s, "GET", "cfg", None).await;
    assert_eq!((st, t.as_deref()), (404, Some("ResourceNotFoundException")));

    let (st, v, _) = config_call(
        &s,
        "PUT",
        "cfg",
        Some(
            json!({"MaximumRetryAttempts": 1, "MaximumEventAgeInSeconds": 120,
                    "DestinationConfig": {"OnFailure": {"Destination": arn("sink")}}}),
        ),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["FunctionArn"], format!("{}:$LATEST", arn("cfg")));
    assert_eq!(v["MaximumRetryAttempts"], 1);
    assert_eq!(v["MaximumEventAgeInSeconds"], 120);
    assert_eq!(
        v["DestinationConfig"]["OnFailure"]["Destination"],
        arn("sink")
    );
    assert_eq!(v["DestinationConfig"]["OnSuccess"], json!({}));
    assert!(v["LastModified"].as_f64().is_some_and(|t| t > 1.6e9));
    let (_, got, _) = config_call(&s, "GET", "cfg", None).await;
    assert_eq!(got, v);

    // Update merges; Put replaces.
    let (_, v, _) = config_call(&s, "POST", "cfg", Some(json!({"MaximumRetryAttempts": 0}))).await;
    assert_eq!(v["MaximumRetryAttempts"], 0);
    assert_eq!(v["MaximumEventAgeInSeconds"], 120);
    let (_, v, _) = config_call(&s, "PUT", "cfg", Some(json!({"MaximumRetryAttempts": 2}))).await;
    assert!(v.get("MaximumEventAgeInSeconds").is_none(), "{v}");
    assert_eq!(v["DestinationConfig"]["OnFailure"], json!({}));

    let (_, v, _) = s
        .get("/2019-09-25/functions/cfg/event-invoke-config/list")
        .await;
    assert_eq!(
        v["FunctionEventInvokeConfigs"].as_array().map(Vec::len),
        Some(1)
    );

    // Bad input, AWS-shaped.
    for (body, want) in [
        (json!({"MaximumRetryAttempts": 3}), "ValidationException"),
        (
            json!({"MaximumEventAgeInSeconds": 59}),
            "ValidationException",
        ),
        (
            json!({"MaximumEventAgeInSeconds": 21601}),
            "ValidationException",
        ),
        (
            json!({"DestinationConfig": {"OnSuccess": {"Destination": "arn:aws:sns:us-east-1:000000000000:t"}}}),
            "InvalidParameterValueException",
        ),
        (json!({"Bogus": 1}), "InvalidRequestContentException"),
    ] {
        let (st, v, t) = config_call(&s, "PUT", "cfg", Some(body.clone())).await;
        assert_eq!((st, t.as_deref()), (400, Some(want)), "{body} → {v}");
    }
    let (st, _, _) = config_call(&s, "PUT", "nope", Some(json!({}))).await;
    assert_eq!(st, 404);
    let (st, _, _) = config_call(&s, "GET", "cfg:7", None).await;
    assert_eq!(st, 404);

    let (st, _, _) = config_call(&s, "DELETE", "cfg", None).await;
    assert_eq!(st, 204);
    let (st, _, _) = config_call(&s, "DELETE", "cfg", None).await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn retries_are_counted_exactly_and_failures_reach_the_destination() {
    let s = Server::start_with_config(FAST);
    provided_fn(&s, "flaky", json!({})).await;
    sink_fn(&s, "failures").await;
    let (st, v, _) = config_call(
        &s,
        "PUT",
        "flaky",
        Some(json!({"MaximumRetryAttempts": 1,
                    "DestinationConfig": {"OnFailure": {"Destination": arn("failures")}}})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let id = invoke_event(&s, "flaky", json!({"fail": true, "n": 7})).await;

    let recs = records(&s, "failures", 1).await;
    assert_eq!(recs.len(), 1, "one failure record: {recs:?}");
    let r = &recs[0];
    assert_eq!(r["version"], "1.0");
    assert_eq!(r["requestContext"]["requestId"], id);
    assert_eq!(
        r["requestContext"]["functionArn"],
        format!("{}:$LATEST", arn("flaky"))
    );
    assert_eq!(r["requestContext"]["condition"], "RetriesExhausted");
    assert_eq!(r["requestContext"]["approximateInvokeCount"], 2);
    assert_eq!(r["requestPayload"], json!({"fail": true, "n": 7}));
    assert_eq!(r["responseContext"]["statusCode"], 200);
    assert_eq!(r["responseContext"]["executedVersion"], "$LATEST");
    assert_eq!(r["responseContext"]["functionError"], "Unhandled");
    assert_eq!(r["responsePayload"]["errorType"], "Custom.Failure");
    assert!(r["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));

    // Exactly two attempts (the first and one retry), both with the event's request id.
    let starts = s.log_messages("flaky", "START").await;
    let attempts = starts
        .iter()
        .filter(|l| l.starts_with(&format!("START RequestId: {id}")))
        .count();
    assert_eq!(attempts, 2, "{starts:?}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let starts = s.log_messages("flaky", "START").await;
    assert_eq!(
        starts.iter().filter(|l| l.starts_with("START")).count(),
        2,
        "no third attempt"
    );
    let (_, st, _) = s.get("/_nimbus/status").await;
    assert_eq!(st["pendingEvents"], 0);
}

#[tokio::test]
async fn successes_reach_the_success_destination() {
    let s = Server::start_with_config(FAST);
    provided_fn(&s, "fine", json!({})).await;
    sink_fn(&s, "successes").await;
    config_call(
        &s,
        "PUT",
        "fine",
        Some(json!({"DestinationConfig": {"OnSuccess": {"Destination": arn("successes")}}})),
    )
    .await;
    let id = invoke_event(&s, "fine", json!({"k": "v"})).await;
    let recs = records(&s, "successes", 1).await;
    assert_eq!(recs.len(), 1, "{recs:?}");
    let r = &recs[0];
    assert_eq!(r["requestContext"]["condition"], "Success");
    assert_eq!(r["requestContext"]["requestId"], id);
    assert_eq!(r["requestContext"]["approximateInvokeCount"], 1);
    assert_eq!(r["requestPayload"], json!({"k": "v"}));
    assert_eq!(
        r["responseContext"],
        json!({"statusCode": 200, "executedVersion": "$LATEST"})
    );
    assert_eq!(r["responsePayload"]["event"], json!({"k": "v"}));
    assert_eq!(r["responsePayload"]["count"], 1);
}

#[tokio::test]
async fn function_errors_are_retried_twice_by_default() {
    let s = Server::start_with_config(FAST);
    provided_fn(&s, "twice", json!({})).await;
    let id = invoke_event(&s, "twice", json!({"fail": true})).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    while Instant::now() < deadline {
        let logs = s.log_messages("twice", "START").await;
        n = logs
            .iter()
            .filter(|l| l.starts_with(&format!("START RequestId: {id}")))
            .count();
        let (_, st, _) = s.get("/_nimbus/status").await;
        if n == 3 && st["pendingEvents"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(n, 3, "the first attempt and two retries");
}

#[tokio::test]
async fn events_older_than_the_maximum_age_go_to_the_failure_destination() {
    let s = Server::start_with_config(FAST);
    provided_fn(&s, "blocked", json!({})).await;
    sink_fn(&s, "expired").await;
    // Throttled forever: the event can only grow old.
    let r = s
        .http
        .put(s.u("/2017-10-31/functions/blocked/concurrency"))
        .json(&json!({"ReservedConcurrentExecutions": 0}))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status().as_u16(), 200);
    config_call(
        &s,
        "PUT",
        "blocked",
        Some(json!({"MaximumEventAgeInSeconds": 60,
                    "DestinationConfig": {"OnFailure": {"Destination": arn("expired")}}})),
    )
    .await;
    let id = invoke_event(&s, "blocked", json!({"old": true})).await;
    let deadline = Instant::now() + Duration::from_secs(75);
    let mut recs = Vec::new();
    while Instant::now() < deadline && recs.is_empty() {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let msgs = s.log_messages("expired", "RECORD ").await;
        recs = msgs
            .iter()
            .filter_map(|m| m.strip_prefix("RECORD "))
            .filter_map(|j| serde_json::from_str::<Value>(j).ok())
            .collect();
    }
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0]["requestContext"]["condition"], "EventAgeExceeded");
    assert_eq!(recs[0]["requestContext"]["requestId"], id);
    assert_eq!(recs[0]["requestContext"]["approximateInvokeCount"], 0);
    assert_eq!(recs[0]["requestPayload"], json!({"old": true}));
    assert!(recs[0].get("responsePayload").is_none());
}

/// A runtime that reports every event's `n` to a TCP collector in the test.
fn reporter(port: u16) -> String {
    format!(
        r#"#!/usr/bin/python3
import http.client, json, os, socket
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
conn = http.client.HTTPConnection(host, int(port))
while True:
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    r = conn.getresponse()
    body = r.read()
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    n = json.loads(body)["n"]
    with socket.create_connection(("127.0.0.1", {port})) as c:
        c.sendall(b"%d\n" % n)
        c.recv(1)
    conn.request("POST", f"/2018-06-01/runtime/invocation/{{rid}}/response", "null")
    conn.getresponse().read()
"#
    )
}

#[tokio::test]
async fn acknowledged_events_survive_kill_9() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    // The collector: one line per delivery.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (rd, mut wr) = sock.split();
                let mut line = String::new();
                if tokio::io::BufReader::new(rd)
                    .read_line(&mut line)
                    .await
                    .is_ok()
                    && let Ok(n) = line.trim().parse()
                {
                    let _ = tx.send(n);
                    let _ = wr.write_all(b"k").await;
                }
            });
        }
    });

    let tmp = tempfile::tempdir().expect("tmp");
    // Sandboxed functions reach the host's loopback only where it is opened to them.
    let cfg = tmp.path().join("nimbus.toml");
    std::fs::write(&cfg, format!("[sandbox]\nhost_ports = [{port}]\n")).expect("config");
    let mut s = Server::start_in(tmp.path(), Some(&cfg));
    s.create_ok(
        "counter",
        "provided.al2023",
        "x",
        &zip_of(&[("bootstrap", &reporter(port), 0o755)]),
        json!({"Timeout": 30}),
    )
    .await;
    let r = s
        .http
        .put(s.u("/2017-10-31/functions/counter/concurrency"))
        .json(&json!({"ReservedConcurrentExecutions": 20}))
        .send()
        .await
        .expect("concurrency");
    assert_eq!(r.status().as_u16(), 200);

    // 10,000 events from 32 senders; the server is killed once half are acknowledged, and the
    // events not acknowledged by then are sent again to the restarted server.
    let total = 10_000u64;
    let acked = std::sync::Arc::new(std::sync::Mutex::new(HashSet::new()));
    let send_all = |s: &Server, todo: Vec<u64>| {
        let todo = std::sync::Arc::new(std::sync::Mutex::new(todo));
        let url = s.u("/2015-03-31/functions/counter/invocations");
        (0..32)
            .map(|_| {
                let (acked, todo, url, http) =
                    (acked.clone(), todo.clone(), url.clone(), s.http.clone());
                tokio::spawn(async move {
                    loop {
                        let Some(n) = todo.lock().unwrap_or_else(|e| e.into_inner()).pop() else {
                            break;
                        };
                        let r = http
                            .post(&url)
                            .header("X-Amz-Invocation-Type", "Event")
                            .body(json!({ "n": n }).to_string())
                            .send()
                            .await;
                        match r {
                            Ok(r) if r.status().as_u16() == 202 => {
                                acked.lock().unwrap_or_else(|e| e.into_inner()).insert(n);
                            }
                            // The server is gone (killed): stop sending.
                            _ => break,
                        }
                    }
                })
            })
            .collect::<Vec<_>>()
    };
    let senders = send_all(&s, (0..total).rev().collect());
    while acked.lock().unwrap_or_else(|e| e.into_inner()).len() < (total / 2) as usize {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Events accepted but not yet delivered: what the kill puts at risk.
    let (_, st, _) = s.get("/_nimbus/status").await;
    let at_risk = st["pendingEvents"].as_u64().unwrap_or(0);
    s.crash();
    for t in senders {
        let _ = t.await;
    }
    let before_crash = acked.lock().unwrap_or_else(|e| e.into_inner()).len();
    assert!(before_crash as u64 >= total / 2);

    // Restart: send what was not acknowledged; every acknowledged event is delivered at least once.
    let s = Server::start_in(tmp.path(), Some(&cfg));
    let rest: Vec<u64> = {
        let a = acked.lock().unwrap_or_else(|e| e.into_inner());
        (0..total).filter(|n| !a.contains(n)).collect()
    };
    for t in send_all(&s, rest) {
        let _ = t.await;
    }
    let acked: HashSet<u64> = acked.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(
        acked.len() as u64,
        total,
        "every event acknowledged once the server is back"
    );
    let mut seen: HashSet<u64> = HashSet::new();
    let mut deliveries = 0u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline && !acked.is_subset(&seen) {
        match tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
            Ok(Some(n)) => {
                deliveries += 1;
                seen.insert(n);
            }
            Ok(None) => break,
            Err(_) => {}
        }
    }
    // Late duplicates still in flight.
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
        deliveries += 1;
    }
    let missing: Vec<u64> = acked.difference(&seen).copied().take(10).collect();
    println!(
        "kill -9 test: {} events acknowledged ({before_crash} before the kill, {at_risk} of them undelivered at the kill), {} deliveries of {} distinct events, {} duplicates",
        acked.len(),
        deliveries,
        seen.len(),
        deliveries - seen.len() as u64,
    );
    assert!(
        missing.is_empty(),
        "acknowledged but never delivered: {missing:?}"
    );
    drop(s);
}

async fn sqs(s: &Server, op: &str, body: Value) -> Value {
    let r = s
        .http
        .post(s.u("/"))
        .header("X-Amz-Target", format!("AmazonSQS.{op}"))
        .header("Content-Type", "application/x-amz-json-1.0")
        .body(body.to_string())
        .send()
        .await
        .expect("sqs");
    assert_eq!(r.status().as_u16(), 200, "{op}");
    r.json().await.expect("json")
}

/// Waits for one message on a queue.
async fn one_message(s: &Server, url: &str) -> Value {
    for _ in 0..20 {
        let v = sqs(
            s,
            "ReceiveMessage",
            json!({"QueueUrl": url, "WaitTimeSeconds": 1, "MessageAttributeNames": ["All"]}),
        )
        .await;
        if let Some(m) = v["Messages"].get(0) {
            return m.clone();
        }
    }
    panic!("no message arrived on {url}");
}

#[tokio::test]
async fn failed_events_reach_the_dead_letter_queue_and_queue_destinations() {
    let s = Server::start_with_config(FAST);
    let dlq = sqs(&s, "CreateQueue", json!({"QueueName": "dead"})).await["QueueUrl"]
        .as_str()
        .expect("url")
        .to_string();
    let dest = sqs(&s, "CreateQueue", json!({"QueueName": "outcomes"})).await["QueueUrl"]
        .as_str()
        .expect("url")
        .to_string();
    provided_fn(
        &s,
        "doomed",
        json!({"DeadLetterConfig": {"TargetArn": "arn:aws:sqs:us-east-1:000000000000:dead"}}),
    )
    .await;
    let (st, v, _) = config_call(
        &s,
        "PUT",
        "doomed",
        Some(json!({"MaximumRetryAttempts": 0,
                    "DestinationConfig": {"OnFailure": {"Destination": "arn:aws:sqs:us-east-1:000000000000:outcomes"}}})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let id = invoke_event(&s, "doomed", json!({"fail": true, "order": 42})).await;

    // The dead-letter queue gets the event itself, with the request id and error attached.
    let m = one_message(&s, &dlq).await;
    assert_eq!(
        serde_json::from_str::<Value>(m["Body"].as_str().expect("body")).ok(),
        Some(json!({"fail": true, "order": 42}))
    );
    let attrs = &m["MessageAttributes"];
    assert_eq!(attrs["RequestID"]["StringValue"], id);
    assert_eq!(attrs["ErrorCode"]["DataType"], "Number");
    assert!(
        attrs["ErrorMessage"]["StringValue"]
            .as_str()
            .is_some_and(|e| e.contains("Custom.Failure")),
        "{attrs}"
    );
    // The queue destination gets the invocation record.
    let m = one_message(&s, &dest).await;
    let record: Value = serde_json::from_str(m["Body"].as_str().expect("body")).expect("record");
    assert_eq!(record["requestContext"]["condition"], "RetriesExhausted");
    assert_eq!(record["requestContext"]["requestId"], id);
    assert_eq!(record["requestContext"]["approximateInvokeCount"], 1);
    assert_eq!(record["requestPayload"], json!({"fail": true, "order": 42}));
}

/// A dead-letter delivery that fails is not the end of the event: it is kept and delivered once
/// the queue can take it.
#[tokio::test]
async fn a_failed_dead_letter_delivery_keeps_the_event() {
    let s = Server::start_with_config(FAST);
    let dlq = sqs(
        &s,
        "CreateQueue",
        json!({"QueueName": "small", "Attributes": {"MaximumMessageSize": "1024"}}),
    )
    .await["QueueUrl"]
        .as_str()
        .expect("url")
        .to_string();
    provided_fn(
        &s,
        "doomed",
        json!({"DeadLetterConfig": {"TargetArn": "arn:aws:sqs:us-east-1:000000000000:small"}}),
    )
    .await;
    let (st, v, _) = config_call(
        &s,
        "PUT",
        "doomed",
        Some(json!({"MaximumRetryAttempts": 0})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let pad = "x".repeat(2000);
    let id = invoke_event(&s, "doomed", json!({"fail": true, "pad": pad})).await;
    // The event is larger than the queue takes: nothing arrives yet.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let v = sqs(&s, "ReceiveMessage", json!({"QueueUrl": dlq})).await;
    assert!(v["Messages"].as_array().is_none_or(Vec::is_empty), "{v}");
    // Once the queue takes larger messages, the kept event is delivered.
    sqs(
        &s,
        "SetQueueAttributes",
        json!({"QueueUrl": dlq, "Attributes": {"MaximumMessageSize": "262144"}}),
    )
    .await;
    let m = one_message(&s, &dlq).await;
    assert_eq!(m["MessageAttributes"]["RequestID"]["StringValue"], id);
}

/// How many START lines the function's log holds for `request_id`.
async fn starts(s: &Server, name: &str, request_id: &str) -> usize {
    let (_, v) = s
        .logs_api(
            "FilterLogEvents",
            json!({"logGroupName": format!("/aws/lambda/{name}"), "filterPattern": format!("\"START RequestId: {request_id}\"")}),
        )
        .await;
    v["events"].as_array().map(Vec::len).unwrap_or(0)
}

/// SIGTERM during a delivery is the server's doing, not the function's: even with
/// `MaximumRetryAttempts: 0` the event is kept and delivered again after the restart.
#[tokio::test]
async fn a_shutdown_during_a_delivery_keeps_the_event() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg = tmp.path().join("nimbus.toml");
    std::fs::write(&cfg, format!("{FAST}[server]\ninvocation_drain_secs = 1\n")).expect("config");
    let mut s = Server::start_in(tmp.path(), Some(&cfg));
    provided_fn(&s, "slow", json!({"Timeout": 60})).await;
    let (st, v, _) = config_call(&s, "PUT", "slow", Some(json!({"MaximumRetryAttempts": 0}))).await;
    assert_eq!(st, 200, "{v}");
    let id = invoke_event(&s, "slow", json!({"sleep": 30})).await;
    eventually(Duration::from_secs(20), "the delivery to start", || async {
        (starts(&s, "slow", &id).await > 0).then_some(())
    })
    .await;
    let status = s.stop().expect("status");
    assert!(status.success(), "clean exit: {status:?}");
    let s = Server::start_in(tmp.path(), Some(&cfg));
    eventually(
        Duration::from_secs(20),
        "the interrupted event to be delivered again after the restart",
        || async { (starts(&s, "slow", &id).await >= 2).then_some(()) },
    )
    .await;
}
