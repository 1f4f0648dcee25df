//! Invoke through the real API: invocation types, payload limits, warm reuse, scale-out,
//! timeouts, crashes, init errors, the log tail and the environment's contract.

use std::time::{Duration, Instant};

use crate::common::*;
use base64::Engine;
use serde_json::json;

#[tokio::test]
async fn invocation_types_and_runtime_contract() {
    let s = Server::start();
    provided_fn(
        &s,
        "types",
        json!({"MemorySize": 256, "Environment": {"Variables": {"MY_VAR": "v"}}}),
    )
    .await;
    let r = s.invoke("types", json!({"hello": "world"})).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("x-amz-executed-version").as_deref(),
        Some("$LATEST")
    );
    assert!(r.header("x-amz-function-error").is_none());
    assert!(r.header("x-amzn-requestid").is_some());
    let out = r.json();
    assert_eq!(out["event"]["hello"], "world");
    let h = &out["headers"];
    assert_eq!(
        h["Lambda-Runtime-Aws-Request-Id"],
        r.header("x-amzn-requestid").expect("id").as_str()
    );
    let deadline: i64 = h["Lambda-Runtime-Deadline-Ms"]
        .as_str()
        .expect("deadline")
        .parse()
        .expect("int");
    let now = chrono_ms();
    assert!(
        deadline > now && deadline <= now + 3_100,
        "deadline {deadline} vs now {now}"
    );
    assert_eq!(
        h["Lambda-Runtime-Invoked-Function-Arn"],
        "arn:aws:lambda:us-east-1:000000000000:function:types"
    );
    assert!(
        h["Lambda-Runtime-Trace-Id"]
            .as_str()
            .expect("trace")
            .starts_with("Root=1-")
    );
    let env = &out["env"];
    assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "types");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_VERSION"], "$LATEST");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
    assert_eq!(env["AWS_LAMBDA_LOG_GROUP_NAME"], "/aws/lambda/types");
    assert_eq!(env["AWS_REGION"], "us-east-1");
    assert_eq!(env["_HANDLER"], "handler.run");
    assert_eq!(env["TZ"], ":UTC");
    assert_eq!(env["MY_VAR"], "v");
    assert_eq!(env["AWS_LAMBDA_INITIALIZATION_TYPE"], "on-demand");
    let stream = env["AWS_LAMBDA_LOG_STREAM_NAME"].as_str().expect("stream");
    let (date, rest) = stream.split_at(11);
    assert_eq!(date.len(), 11);
    assert!(
        rest.starts_with("[$LATEST]") && rest.len() == 9 + 32,
        "{stream}"
    );
    assert_eq!(env["LAMBDA_TASK_ROOT"], out["cwd"]);

    // Client context reaches the runtime decoded.
    let cc = base64::engine::general_purpose::STANDARD.encode(r#"{"custom":{"k":"v"}}"#);
    let r = s
        .invoke_raw("types", b"{}", &[("X-Amz-Client-Context", &cc)])
        .await;
    assert_eq!(
        r.json()["headers"]["Lambda-Runtime-Client-Context"],
        r#"{"custom":{"k":"v"}}"#
    );

    let r = s
        .invoke_raw("types", b"{}", &[("X-Amz-Invocation-Type", "DryRun")])
        .await;
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());

    let r = s
        .invoke_raw(
            "types",
            br#"{"print":"async-marker"}"#,
            &[("X-Amz-Invocation-Type", "Event")],
        )
        .await;
    assert_eq!(r.status, 202);
    assert!(r.body.is_empty());
    let logs = s.log_messages("types", "async-marker").await;
    assert!(logs.iter().any(|l| l == "async-marker"), "{logs:?}");

    let r = s
        .invoke_raw("types", b"{}", &[("X-Amz-Invocation-Type", "Sometimes")])
        .await;
    assert_eq!(
        (r.status, r.error_type().as_deref()),
        (400, Some("ValidationException"))
    );
    // An empty payload is an empty event.
    let r = s.invoke_raw("types", b"", &[]).await;
    assert_eq!(r.json()["event"], json!({}));
}

fn chrono_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[tokio::test]
async fn payload_limits_and_bad_payloads() {
    let s = Server::start();
    provided_fn(&s, "limits", json!({})).await;
    let mut big = vec![b' '; 6_291_457];
    big[0] = b'"';
    big[6_291_456] = b'"';
    let r = s.invoke_raw("limits", &big, &[]).await;
    assert_eq!(r.status, 413);
    assert_eq!(
        r.error_type().as_deref(),
        Some("RequestEntityTooLargeException")
    );
    assert_eq!(
        r.json()["message"],
        "Request must be smaller than 6291456 bytes for the InvokeFunction operation"
    );
    let mut big = vec![b' '; 1_048_577];
    big[0] = b'"';
    big[1_048_576] = b'"';
    let r = s
        .invoke_raw("limits", &big, &[("X-Amz-Invocation-Type", "Event")])
        .await;
    assert_eq!(
        (r.status, r.error_type().as_deref()),
        (413, Some("RequestEntityTooLargeException"))
    );
    let r = s.invoke_raw("limits", b"{not json", &[]).await;
    assert_eq!(
        (r.status, r.error_type().as_deref()),
        (400, Some("InvalidRequestContentException"))
    );
    // A response over 6 MB is the function's error, as on Lambda.
    let r = s.invoke("limits", json!({"big": 6_300_000})).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("x-amz-function-error").as_deref(),
        Some("Unhandled")
    );
    assert_eq!(r.json()["errorType"], "Function.ResponseSizeTooLarge");
}

#[tokio::test]
async fn function_errors_are_returned_verbatim() {
    let s = Server::start();
    provided_fn(&s, "errs", json!({})).await;
    let r = s.invoke("errs", json!({"fail": true})).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("x-amz-function-error").as_deref(),
        Some("Unhandled")
    );
    assert_eq!(
        r.body,
        br#"{"errorMessage": "it failed", "errorType": "Custom.Failure"}"#.to_vec()
    );
    // The environment stays warm after a function error.
    let a = s.invoke("errs", json!({})).await.json();
    assert_eq!(a["count"], 2);
}

#[tokio::test]
async fn warm_reuse_and_scale_out() {
    let s = Server::start();
    provided_fn(&s, "warm", json!({})).await;
    let a = s.invoke("warm", json!({})).await.json();
    let b = s.invoke("warm", json!({})).await.json();
    assert_eq!(a["env_id"], b["env_id"], "warm environment reused");
    assert_eq!(b["count"], 2, "state persists across warm invokes");

    // Four concurrent slow invokes need four environments and run in parallel.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = s.u("/2015-03-31/functions/warm/invocations");
        let http = s.http.clone();
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .body(r#"{"sleep":0.6}"#)
                .send()
                .await
                .expect("invoke");
            r.json::<serde_json::Value>().await.expect("json")
        }));
    }
    let mut pids = Vec::new();
    for t in tasks {
        pids.push(
            t.await.expect("task")["env_id"]
                .as_str()
                .expect("env_id")
                .to_string(),
        );
    }
    let elapsed = started.elapsed();
    pids.sort();
    pids.dedup();
    assert_eq!(pids.len(), 4, "one environment per concurrent invocation");
    assert!(
        elapsed < Duration::from_millis(2400),
        "ran in parallel: {elapsed:?}"
    );
    let (_, st, _) = s.get("/_nimbus/status").await;
    assert_eq!(st["environments"], 4);
}

#[tokio::test]
async fn timeout_kills_the_environment() {
    let s = Server::start();
    provided_fn(&s, "slow", json!({"Timeout": 1})).await;
    let first = s.invoke("slow", json!({})).await.json();
    let r = s.invoke("slow", json!({"sleep": 5})).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("x-amz-function-error").as_deref(),
        Some("Unhandled")
    );
    let v = r.json();
    assert_eq!(v["errorType"], "Sandbox.Timedout");
    let id = r.header("x-amzn-requestid").expect("id");
    assert_eq!(
        v["errorMessage"],
        format!("RequestId: {id} Error: Task timed out after 1.00 seconds")
    );
    let old = first["env_id"].as_str().expect("env_id");
    for _ in 0..50 {
        if !env_alive(old) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!env_alive(old), "the timed-out runtime was killed");
    let next = s.invoke("slow", json!({})).await.json();
    assert_ne!(next["env_id"], first["env_id"], "a fresh environment");
    let logs = s.log_messages("slow", "Status: timeout").await;
    assert!(
        logs.iter()
            .any(|l| l.ends_with(&format!("{id} Task timed out after 1.00 seconds"))),
        "{logs:?}"
    );
    assert!(
        logs.iter()
            .any(|l| l.starts_with(&format!("REPORT RequestId: {id}"))
                && l.contains("Status: timeout")),
        "{logs:?}"
    );
}

#[tokio::test]
async fn crash_is_runtime_exit_error() {
    let s = Server::start();
    provided_fn(&s, "crash", json!({})).await;
    let first = s.invoke("crash", json!({})).await.json();
    let r = s.invoke("crash", json!({"exit": 1})).await;
    let id = r.header("x-amzn-requestid").expect("id");
    assert_eq!(
        r.header("x-amz-function-error").as_deref(),
        Some("Unhandled")
    );
    let v = r.json();
    assert_eq!(v["errorType"], "Runtime.ExitError");
    assert_eq!(
        v["errorMessage"],
        format!("RequestId: {id} Error: Runtime exited with error: exit status 1")
    );
    let next = s.invoke("crash", json!({})).await.json();
    assert_ne!(next["env_id"], first["env_id"]);
    assert_eq!(next["count"], 1);
}

#[tokio::test]
async fn init_failures() {
    let s = Server::start();
    provided_fn(
        &s,
        "init-err",
        json!({"Environment": {"Variables": {"INIT_MODE": "error"}}}),
    )
    .await;
    let r = s.invoke("init-err", json!({})).await;
    assert_eq!(
        r.header("x-amz-function-error").as_deref(),
        Some("Unhandled")
    );
    assert_eq!(
        r.body,
        br#"{"errorMessage": "cannot start", "errorType": "Custom.InitFailed"}"#.to_vec()
    );
    let logs = s.log_messages("init-err", "REPORT").await;
    assert!(
        logs.iter()
            .any(|l| l.starts_with("INIT_REPORT Init Duration:")
                && l.contains("Phase: init\tStatus: error\tError Type: Custom.InitFailed")),
        "{logs:?}"
    );

    provided_fn(
        &s,
        "init-exit",
        json!({"Environment": {"Variables": {"INIT_MODE": "exit"}}}),
    )
    .await;
    let r = s.invoke("init-exit", json!({})).await;
    let id = r.header("x-amzn-requestid").expect("id");
    let v = r.json();
    assert_eq!(v["errorType"], "Runtime.ExitError");
    assert_eq!(
        v["errorMessage"],
        format!("RequestId: {id} Error: Runtime exited with error: exit status 3")
    );

    let no_bootstrap = zip_of(&[("handler.py", "x = 1", 0o644)]);
    s.create_ok("no-boot", "provided.al2", "h", &no_bootstrap, json!({}))
        .await;
    let r = s.invoke("no-boot", json!({})).await;
    let v = r.json();
    assert_eq!(v["errorType"], "Runtime.InvalidEntrypoint");
    assert!(
        v["errorMessage"]
            .as_str()
            .expect("msg")
            .contains("Couldn't find valid bootstrap(s)"),
        "{v}"
    );

    let not_exec = zip_of(&[("bootstrap", PY_BOOTSTRAP, 0o644)]);
    s.create_ok("not-exec", "provided.al2", "h", &not_exec, json!({}))
        .await;
    let v = s.invoke("not-exec", json!({})).await.json();
    assert_eq!(v["errorType"], "Runtime.InvalidEntrypoint");
    assert!(
        v["errorMessage"]
            .as_str()
            .expect("msg")
            .contains("permission denied"),
        "{v}"
    );
}

#[tokio::test]
async fn init_time_limit() {
    let s = Server::start_with_config("[server]\ninit_timeout_secs = 1\n");
    provided_fn(
        &s,
        "hang",
        json!({"Environment": {"Variables": {"INIT_MODE": "hang"}}}),
    )
    .await;
    let r = s.invoke("hang", json!({})).await;
    let v = r.json();
    assert_eq!(v["errorType"], "Sandbox.Timedout");
    let logs = s.log_messages("hang", "REPORT").await;
    assert!(
        logs.iter()
            .any(|l| l.starts_with("INIT_REPORT") && l.contains("Status: timeout")),
        "{logs:?}"
    );
}

#[tokio::test]
async fn log_tail_format() {
    let s = Server::start();
    provided_fn(&s, "tail", json!({})).await;
    let r = s
        .invoke_raw(
            "tail",
            br#"{"print":"hello from the function"}"#,
            &[("X-Amz-Log-Type", "Tail")],
        )
        .await;
    let id = r.header("x-amzn-requestid").expect("id");
    let tail = base64::engine::general_purpose::STANDARD
        .decode(r.header("x-amz-log-result").expect("log result"))
        .expect("base64");
    let text = String::from_utf8(tail).expect("utf8");
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| *l == format!("START RequestId: {id} Version: $LATEST"))
        .expect("START");
    let printed = lines
        .iter()
        .position(|l| *l == "hello from the function")
        .expect("printed line");
    let end = lines
        .iter()
        .position(|l| *l == format!("END RequestId: {id}"))
        .expect("END");
    let report = lines
        .iter()
        .position(|l| l.starts_with(&format!("REPORT RequestId: {id}\t")))
        .expect("REPORT");
    assert!(start < printed && printed < end && end < report, "{text}");
    let fields: Vec<&str> = lines[report].split('\t').collect();
    assert!(
        fields[1].starts_with("Duration: ") && fields[1].ends_with(" ms"),
        "{fields:?}"
    );
    let dur = fields[1]
        .trim_start_matches("Duration: ")
        .trim_end_matches(" ms");
    assert_eq!(dur.split('.').nth(1).map(str::len), Some(2), "two decimals");
    assert!(fields[2].starts_with("Billed Duration: ") && fields[2].ends_with(" ms"));
    assert!(
        fields[2]
            .trim_start_matches("Billed Duration: ")
            .trim_end_matches(" ms")
            .parse::<u64>()
            .is_ok()
    );
    assert_eq!(fields[3], "Memory Size: 128 MB");
    assert!(fields[4].starts_with("Max Memory Used: ") && fields[4].ends_with(" MB"));
    assert!(
        fields[5].starts_with("Init Duration: "),
        "cold start shows Init Duration"
    );
    assert!(lines[report].ends_with('\t'));
    // A warm invoke has no Init Duration.
    let r = s
        .invoke_raw("tail", b"{}", &[("X-Amz-Log-Type", "Tail")])
        .await;
    let text = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(r.header("x-amz-log-result").expect("log"))
            .expect("b64"),
    )
    .expect("utf8");
    assert!(
        text.contains("REPORT RequestId:") && !text.contains("Init Duration"),
        "{text}"
    );
}

#[tokio::test]
async fn logs_arrive_while_the_invocation_runs() {
    let s = Server::start();
    provided_fn(&s, "live", json!({"Timeout": 10})).await;
    s.invoke("live", json!({})).await;
    let url = s.u("/2015-03-31/functions/live/invocations");
    let http = s.http.clone();
    let running = tokio::spawn(async move {
        http.post(url)
            .body(r#"{"print":"live-line","sleep":2}"#)
            .send()
            .await
            .expect("invoke")
            .status()
            .as_u16()
    });
    let logs = s.log_messages("live", "live-line").await;
    assert!(logs.iter().any(|l| l == "live-line"));
    assert!(
        !running.is_finished(),
        "the line was visible before the invocation ended"
    );
    assert_eq!(running.await.expect("task"), 200);
}

#[tokio::test]
async fn account_concurrency_throttles() {
    let s = Server::start_with_config("[server]\naccount_concurrency = 2\n");
    provided_fn(&s, "busy", json!({})).await;
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let url = s.u("/2015-03-31/functions/busy/invocations");
        let http = s.http.clone();
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .body(r#"{"sleep":1.5}"#)
                .send()
                .await
                .expect("invoke")
                .status()
                .as_u16()
        }));
    }
    // Wait until both are running, then a third is throttled.
    for _ in 0..100 {
        let (_, st, _) = s.get("/_nimbus/status").await;
        if st["inflight"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = s.invoke("busy", json!({})).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.error_type().as_deref(), Some("TooManyRequestsException"));
    let v = r.json();
    assert_eq!(v["Reason"], "ConcurrentInvocationLimitExceeded");
    assert_eq!(v["message"], "Rate Exceeded.");
    assert!(r.header("retry-after").is_some());
    for t in tasks {
        assert_eq!(t.await.expect("task"), 200);
    }
    // Capacity is back once they finish.
    assert_eq!(s.invoke("busy", json!({})).await.status, 200);
    let (_, v, _) = s.get("/2016-08-19/account-settings/").await;
    assert_eq!(v["AccountLimit"]["ConcurrentExecutions"], 2);
}

#[tokio::test]
async fn idle_environments_are_reaped() {
    let s = Server::start_with_config("[server]\nidle_timeout_secs = 1\n");
    provided_fn(&s, "idle", json!({})).await;
    let env = s.invoke("idle", json!({})).await.json()["env_id"]
        .as_str()
        .expect("env_id")
        .to_string();
    assert!(env_alive(&env));
    let mut reaped = false;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if !env_alive(&env) {
            reaped = true;
            break;
        }
    }
    assert!(reaped, "the idle environment was stopped");
    let (_, st, _) = s.get("/_nimbus/status").await;
    assert_eq!(st["environments"], 0);
    let again = s.invoke("idle", json!({})).await.json();
    assert_ne!(
        again["env_id"].as_str(),
        Some(env.as_str()),
        "a cold start after reaping"
    );
}
