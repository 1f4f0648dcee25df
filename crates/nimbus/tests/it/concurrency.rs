//! Reserved and account concurrency: the Put/Get/DeleteFunctionConcurrency API and throttling of
//! synchronous and asynchronous invocations.

use std::time::Duration;

use crate::common::*;
use serde_json::{Value, json};

async fn put_concurrency(s: &Server, name: &str, body: Value) -> (u16, Value, Option<String>) {
    let r = s
        .http
        .put(s.u(&format!("/2017-10-31/functions/{name}/concurrency")))
        .json(&body)
        .send()
        .await
        .expect("put");
    let st = r.status().as_u16();
    let t = r
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (st, r.json().await.unwrap_or(Value::Null), t)
}

async fn delete_concurrency(s: &Server, name: &str) -> u16 {
    s.http
        .delete(s.u(&format!("/2017-10-31/functions/{name}/concurrency")))
        .send()
        .await
        .expect("delete")
        .status()
        .as_u16()
}

/// Starts `n` invocations that sleep `secs` and waits until the server counts them in flight.
async fn hold(s: &Server, name: &str, n: usize, secs: f64) -> Vec<tokio::task::JoinHandle<u16>> {
    let (_, before, _) = s.get("/_nimbus/status").await;
    let base = before["inflight"].as_u64().unwrap_or(0) as usize;
    let mut tasks = Vec::new();
    for _ in 0..n {
        let url = s.u(&format!("/2015-03-31/functions/{name}/invocations"));
        let http = s.http.clone();
        let body = json!({ "sleep": secs }).to_string();
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .body(body)
                .send()
                .await
                .expect("invoke")
                .status()
                .as_u16()
        }));
    }
    for _ in 0..200 {
        let (_, st, _) = s.get("/_nimbus/status").await;
        if st["inflight"].as_u64().unwrap_or(0) as usize >= base + n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tasks
}

#[tokio::test]
async fn reserved_concurrency_api() {
    let s = Server::start();
    provided_fn(&s, "rc", json!({})).await;

    // Nothing reserved yet: an empty object.
    let (st, v, _) = s.get("/2019-09-30/functions/rc/concurrency").await;
    assert_eq!(st, 200);
    assert_eq!(v, json!({}));

    let (st, v, _) = put_concurrency(&s, "rc", json!({"ReservedConcurrentExecutions": 7})).await;
    assert_eq!(st, 200);
    assert_eq!(v, json!({"ReservedConcurrentExecutions": 7}));
    let (_, v, _) = s.get("/2019-09-30/functions/rc/concurrency").await;
    assert_eq!(v, json!({"ReservedConcurrentExecutions": 7}));
    let (_, v, _) = s.get("/2015-03-31/functions/rc").await;
    assert_eq!(v["Concurrency"]["ReservedConcurrentExecutions"], 7);
    let (_, v, _) = s.get("/2016-08-19/account-settings/").await;
    assert_eq!(v["AccountLimit"]["ConcurrentExecutions"], 1000);
    assert_eq!(v["AccountLimit"]["UnreservedConcurrentExecutions"], 993);

    // The account must keep 100 unreserved.
    let (st, v, t) = put_concurrency(&s, "rc", json!({"ReservedConcurrentExecutions": 901})).await;
    assert_eq!(
        (st, t.as_deref()),
        (400, Some("InvalidParameterValueException"))
    );
    assert_eq!(
        v["message"],
        "Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [100]."
    );
    let (st, _, _) = put_concurrency(&s, "rc", json!({"ReservedConcurrentExecutions": 900})).await;
    assert_eq!(st, 200);

    // Bad input.
    let (st, _, t) = put_concurrency(&s, "rc", json!({"ReservedConcurrentExecutions": -1})).await;
    assert_eq!((st, t.as_deref()), (400, Some("ValidationException")));
    let (st, _, t) = put_concurrency(&s, "rc", json!({})).await;
    assert_eq!((st, t.as_deref()), (400, Some("ValidationException")));
    let (st, _, t) = put_concurrency(&s, "rc:1", json!({"ReservedConcurrentExecutions": 1})).await;
    assert_eq!(
        (st, t.as_deref()),
        (400, Some("InvalidParameterValueException"))
    );
    let (st, _, t) = put_concurrency(&s, "nope", json!({"ReservedConcurrentExecutions": 1})).await;
    assert_eq!((st, t.as_deref()), (404, Some("ResourceNotFoundException")));
    let (st, _, _) = s.get("/2019-09-30/functions/nope/concurrency").await;
    assert_eq!(st, 404);

    // Delete: 204, and the reservation is gone.
    assert_eq!(delete_concurrency(&s, "rc").await, 204);
    let (_, v, _) = s.get("/2019-09-30/functions/rc/concurrency").await;
    assert_eq!(v, json!({}));
    let (_, v, _) = s.get("/2016-08-19/account-settings/").await;
    assert_eq!(v["AccountLimit"]["UnreservedConcurrentExecutions"], 1000);
    assert_eq!(delete_concurrency(&s, "nope").await, 404);
}

#[tokio::test]
async fn reserved_zero_throttles_every_invoke() {
    let s = Server::start();
    provided_fn(&s, "off", json!({})).await;
    put_concurrency(&s, "off", json!({"ReservedConcurrentExecutions": 0})).await;
    let r = s.invoke("off", json!({})).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.error_type().as_deref(), Some("TooManyRequestsException"));
    let v = r.json();
    assert_eq!(
        v["Reason"],
        "ReservedFunctionConcurrentInvocationLimitExceeded"
    );
    assert_eq!(v["message"], "Rate Exceeded.");
    assert_eq!(delete_concurrency(&s, "off").await, 204);
    assert_eq!(s.invoke("off", json!({})).await.status, 200);
}

#[tokio::test]
async fn a_reservation_caps_the_function_and_not_the_others() {
    let s = Server::start();
    provided_fn(&s, "capped", json!({})).await;
    provided_fn(&s, "free", json!({})).await;
    put_concurrency(&s, "capped", json!({"ReservedConcurrentExecutions": 1})).await;
    let held = hold(&s, "capped", 1, 1.5).await;
    let r = s.invoke("capped", json!({})).await;
    assert_eq!(r.status, 429);
    assert_eq!(
        r.json()["Reason"],
        "ReservedFunctionConcurrentInvocationLimitExceeded"
    );
    // Other functions are not affected.
    assert_eq!(s.invoke("free", json!({})).await.status, 200);
    for t in held {
        assert_eq!(t.await.expect("task"), 200);
    }
    assert_eq!(s.invoke("capped", json!({})).await.status, 200);
}

#[tokio::test]
async fn reservations_shrink_what_the_others_share() {
    // Limit 20: a tenth (2) must stay unreserved; reserving 17 leaves 3 for everyone else.
    let s = Server::start_with_config("[server]\naccount_concurrency = 20\n");
    provided_fn(&s, "big", json!({})).await;
    provided_fn(&s, "rest", json!({})).await;
    let (st, v, _) = put_concurrency(&s, "big", json!({"ReservedConcurrentExecutions": 19})).await;
    assert_eq!(st, 400, "{v}");
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.ends_with("minimum value of [2].")),
        "{v}"
    );
    let (st, _, _) = put_concurrency(&s, "big", json!({"ReservedConcurrentExecutions": 17})).await;
    assert_eq!(st, 200);
    let (_, v, _) = s.get("/2016-08-19/account-settings/").await;
    assert_eq!(v["AccountLimit"]["UnreservedConcurrentExecutions"], 3);
    let held = hold(&s, "rest", 3, 1.5).await;
    let r = s.invoke("rest", json!({})).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["Reason"], "ConcurrentInvocationLimitExceeded");
    // The reserved function still has its own capacity.
    assert_eq!(s.invoke("big", json!({})).await.status, 200);
    for t in held {
        assert_eq!(t.await.expect("task"), 200);
    }
}

#[tokio::test]
async fn throttled_async_events_wait_for_capacity() {
    let s = Server::start();
    provided_fn(&s, "queue", json!({})).await;
    put_concurrency(&s, "queue", json!({"ReservedConcurrentExecutions": 1})).await;
    for i in 0..3 {
        let r = s
            .invoke_raw(
                "queue",
                json!({"sleep": 0.3, "print": format!("event-{i}")})
                    .to_string()
                    .as_bytes(),
                &[("X-Amz-Invocation-Type", "Event")],
            )
            .await;
        assert_eq!(r.status, 202);
    }
    // All three run, one at a time: a single environment (one log stream) handles them.
    let mut seen = 0;
    for _ in 0..100 {
        let msgs = s.log_messages("queue", "event-").await;
        seen = msgs.iter().filter(|m| m.starts_with("event-")).count();
        if seen == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, 3, "every throttled event ran");
    let (_, v) = s
        .logs_api(
            "DescribeLogStreams",
            json!({"logGroupName": "/aws/lambda/queue"}),
        )
        .await;
    assert_eq!(
        v["logStreams"].as_array().map(Vec::len),
        Some(1),
        "never more than one environment: {v}"
    );
}
