//! Server lifecycle: restart persistence, crash safety of acknowledged changes, clean shutdown,
//! the CloudWatch Logs read API, metering and the CLI.

use std::time::Duration;

use crate::common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn restart_keeps_functions_logs_and_usage() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut s = Server::start_in(tmp.path(), None);
    provided_fn(
        &s,
        "keep",
        json!({"MemorySize": 512, "Environment": {"Variables": {"MY_VAR": "kept"}}}),
    )
    .await;
    let r = s.invoke("keep", json!({"print": "before-restart"})).await;
    assert_eq!(r.status, 200);
    s.log_messages("keep", "REPORT").await;
    let (_, before, _) = s.get("/2015-03-31/functions/keep/configuration").await;
    // Usage rows are committed in the background; wait until the first one is visible.
    for _ in 0..100 {
        let (_, usage, _) = s.get("/_nimbus/cost").await;
        if usage["total"]["requests"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.stop();

    let s = Server::start_in(tmp.path(), None);
    let (st, after, _) = s.get("/2015-03-31/functions/keep/configuration").await;
    assert_eq!(st, 200);
    assert_eq!(before, after, "configuration survives a restart unchanged");
    let out = s.invoke("keep", json!({})).await.json();
    assert_eq!(out["env"]["MY_VAR"], "kept");
    let logs = s.log_messages("keep", "before-restart").await;
    assert!(logs.iter().any(|l| l == "before-restart"));
    // The second invocation's usage row is committed in the background too.
    let mut cost = Value::Null;
    for _ in 0..100 {
        cost = s.get("/_nimbus/cost").await.1;
        if cost["functions"][0]["requests"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(cost["functions"][0]["function"], "keep");
    assert_eq!(cost["functions"][0]["requests"], 2);
}

#[tokio::test]
async fn a_clean_shutdown_commits_every_queued_log_and_usage_row() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut s = Server::start_in(tmp.path(), None);
    provided_fn(&s, "meter", json!({})).await;
    let n = 25;
    for i in 0..n {
        let r = s
            .invoke("meter", json!({"print": format!("line-{i}")}))
            .await;
        assert_eq!(r.status, 200);
    }
    // Stop at once: rows still queued in the background must be committed by the shutdown.
    let status = s.stop().expect("stopped");
    assert!(status.success(), "clean exit: {status:?}");

    let s = Server::start_in(tmp.path(), None);
    let (_, cost, _) = s.get("/_nimbus/cost").await;
    assert_eq!(cost["functions"][0]["requests"], n, "{cost}");
    let (_, v) = s
        .logs_api(
            "FilterLogEvents",
            json!({"logGroupName": "/aws/lambda/meter", "filterPattern": "REPORT"}),
        )
        .await;
    assert_eq!(v["events"].as_array().map(Vec::len), Some(n), "{v}");
}

#[tokio::test]
async fn acknowledged_creates_survive_kill_9() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut s = Server::start_in(tmp.path(), None);
    for i in 0..5 {
        provided_fn(&s, &format!("k{i}"), json!({})).await;
    }
    s.crash();
    let s = Server::start_in(tmp.path(), None);
    let (_, v, _) = s.get("/2015-03-31/functions/").await;
    assert_eq!(v["Functions"].as_array().map(|a| a.len()), Some(5));
    // Functions created just before the crash finish activating after the restart.
    let out = s.invoke("k4", json!({})).await;
    assert_eq!(out.status, 200);
    assert!(
        out.header("x-amz-function-error").is_none(),
        "{}",
        String::from_utf8_lossy(&out.body)
    );
}

#[tokio::test]
async fn shutdown_stops_every_environment() {
    let mut s = Server::start();
    provided_fn(&s, "bye", json!({})).await;
    let env = s.invoke("bye", json!({})).await.json()["env_id"]
        .as_str()
        .expect("env_id")
        .to_string();
    assert!(env_alive(&env));
    let status = s.stop().expect("stopped");
    assert!(status.success(), "clean exit: {status:?}");
    for _ in 0..50 {
        if !env_alive(&env) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!env_alive(&env), "runtime process left behind");
}

#[tokio::test]
async fn runtimes_die_with_a_crashed_server() {
    let mut s = Server::start();
    provided_fn(&s, "orphan", json!({})).await;
    let env = s.invoke("orphan", json!({})).await.json()["env_id"]
        .as_str()
        .expect("env_id")
        .to_string();
    s.crash();
    for _ in 0..100 {
        if !env_alive(&env) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!env_alive(&env), "runtime outlived a kill -9 of the server");
}

#[tokio::test]
async fn cloudwatch_logs_read_api() {
    let s = Server::start();
    provided_fn(&s, "cw", json!({})).await;
    s.invoke("cw", json!({"print": "needle in the logs"})).await;
    s.invoke("cw", json!({"print": "second line"})).await;
    s.log_messages("cw", "second line").await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let (st, v) = s
        .logs_api(
            "DescribeLogGroups",
            json!({"logGroupNamePrefix": "/aws/lambda/c"}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["logGroups"][0]["logGroupName"], "/aws/lambda/cw");
    assert_eq!(
        v["logGroups"][0]["arn"],
        "arn:aws:logs:us-east-1:000000000000:log-group:/aws/lambda/cw:*"
    );

    let (st, v) = s.logs_api("DescribeLogStreams", json!({"logGroupName": "/aws/lambda/cw", "orderBy": "LastEventTime", "descending": true})).await;
    assert_eq!(st, 200);
    let streams = v["logStreams"].as_array().expect("streams");
    assert_eq!(streams.len(), 1, "one environment, one stream");
    let stream = streams[0]["logStreamName"]
        .as_str()
        .expect("name")
        .to_string();
    assert!(stream.contains("/[$LATEST]"));

    let (st, v) = s.logs_api("GetLogEvents", json!({"logGroupName": "/aws/lambda/cw", "logStreamName": stream, "startFromHead": true})).await;
    assert_eq!(st, 200);
    let msgs: Vec<&str> = v["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(
        msgs[0].starts_with("INIT_START Runtime Version: "),
        "{msgs:?}"
    );
    assert_eq!(
        msgs.iter()
            .filter(|m| m.starts_with("START RequestId:"))
            .count(),
        2
    );
    assert_eq!(
        msgs.iter()
            .filter(|m| m.starts_with("REPORT RequestId:"))
            .count(),
        2
    );
    // Paging forward from the returned token yields nothing new and the same token.
    let fwd = v["nextForwardToken"].as_str().expect("token").to_string();
    let (_, v2) = s
        .logs_api(
            "GetLogEvents",
            json!({"logGroupName": "/aws/lambda/cw", "logStreamName": stream, "nextToken": fwd}),
        )
        .await;
    assert_eq!(v2["events"].as_array().map(|a| a.len()), Some(0));
    assert_eq!(v2["nextForwardToken"], fwd.as_str());
    // limit + backward paging.
    let (_, last2) = s
        .logs_api(
            "GetLogEvents",
            json!({"logGroupName": "/aws/lambda/cw", "logStreamName": stream, "limit": 2}),
        )
        .await;
    let last2: Vec<&str> = last2["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert_eq!(last2.len(), 2);
    assert!(
        last2[0].starts_with("END RequestId:") && last2[1].starts_with("REPORT RequestId:"),
        "{last2:?}"
    );

    let (st, v) = s
        .logs_api(
            "FilterLogEvents",
            json!({"logGroupName": "/aws/lambda/cw", "filterPattern": "needle"}),
        )
        .await;
    assert_eq!(st, 200);
    let events = v["events"].as_array().expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["message"], "needle in the logs");
    assert_eq!(events[0]["logStreamName"], stream.as_str());

    let (st, v) = s
        .logs_api(
            "GetLogEvents",
            json!({"logGroupName": "/aws/lambda/none", "logStreamName": "x"}),
        )
        .await;
    assert_eq!(st, 400);
    assert_eq!(v["__type"], "ResourceNotFoundException");
    let (st, v) = s
        .logs_api(
            "FilterLogEvents",
            json!({"logGroupName": "/aws/lambda/cw", "filterPattern": "{ $.x = 1 }"}),
        )
        .await;
    assert_eq!(st, 400);
    assert_eq!(v["__type"], "InvalidParameterException");
}

#[tokio::test]
async fn the_cli_drives_the_server() {
    let s = Server::start();
    let dir = tempfile::tempdir().expect("tmp");
    let boot = dir.path().join("bootstrap");
    std::fs::write(&boot, PY_BOOTSTRAP).expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&boot, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin())
            .args(args)
            .args(["--endpoint", &s.url])
            .output()
            .expect("run cli");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, out, err) = run(&[
        "deploy",
        dir.path().to_str().expect("utf8"),
        "--name",
        "cli-fn",
        "--runtime",
        "provided.al2023",
        "--env",
        "MY_VAR=from-cli",
        "--memory",
        "256",
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("created cli-fn"), "{out}");
    let (code, out, _) = run(&["invoke", "cli-fn", "--payload", r#"{"x":1}"#]);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(v["env"]["MY_VAR"], "from-cli");
    assert_eq!(v["env"]["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
    let (code, _, _) = run(&["invoke", "cli-fn", "--payload", r#"{"fail":true}"#]);
    assert_eq!(code, Some(1), "a function error exits 1");
    // Redeploy updates.
    std::fs::write(dir.path().join("new.txt"), "x").expect("write");
    let (code, out, _) = run(&[
        "deploy",
        dir.path().to_str().expect("utf8"),
        "--name",
        "cli-fn",
    ]);
    assert_eq!(code, Some(0));
    assert!(out.contains("updated cli-fn"), "{out}");
    let (_, out, _) = run(&["ls"]);
    assert!(
        out.contains("cli-fn") && out.contains("provided.al2023"),
        "{out}"
    );
    let (_, out, _) = run(&["logs", "cli-fn"]);
    assert!(
        out.contains("START RequestId:") && out.contains("REPORT RequestId:"),
        "{out}"
    );
    let (_, out, _) = run(&["cost"]);
    assert!(
        out.contains("cli-fn") && out.contains("before the free tier"),
        "{out}"
    );
    let (_, out, _) = run(&["doctor"]);
    assert!(
        out.contains("launcher:") && out.contains("provided.al2023"),
        "{out}"
    );
    let (code, out, _) = run(&["rm", "cli-fn"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("deleted cli-fn"));
    let (code, _, err) = run(&["invoke", "cli-fn"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("ResourceNotFoundException"), "{err}");
}

#[tokio::test]
async fn deploy_watch_redeploys_on_change() {
    let s = Server::start();
    let dir = tempfile::tempdir().expect("tmp");
    let boot = dir.path().join("bootstrap");
    std::fs::write(&boot, PY_BOOTSTRAP).expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&boot, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut watch = std::process::Command::new(bin())
        .args([
            "deploy",
            dir.path().to_str().expect("utf8"),
            "--name",
            "watched",
            "--runtime",
            "provided.al2023",
            "--watch",
            "--endpoint",
            &s.url,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("watch");
    let mut sha = String::new();
    for _ in 0..100 {
        let (st, v, _) = s.get("/2015-03-31/functions/watched/configuration").await;
        if st == 200 && v["State"] == "Active" {
            sha = v["CodeSha256"].as_str().unwrap_or("").to_string();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!sha.is_empty(), "first deploy happened");
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::write(dir.path().join("data.txt"), "changed").expect("write");
    let mut changed = false;
    for _ in 0..100 {
        let (_, v, _) = s.get("/2015-03-31/functions/watched/configuration").await;
        if v["CodeSha256"].as_str().is_some_and(|x| x != sha)
            && v["LastUpdateStatus"] == "Successful"
        {
            changed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(changed, "an edit redeployed the function");
    let out = s
        .invoke("watched", json!({"read": "data.txt"}))
        .await
        .json();
    assert_eq!(out["read"], "changed");
}

/// A runtime whose init takes two seconds, then answers every event.
const SLOW_INIT: &str = r#"#!/usr/bin/python3
import http.client, json, os, time
time.sleep(2)
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
conn = http.client.HTTPConnection(host, int(port))
while True:
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    r = conn.getresponse()
    r.read()
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    conn.request("POST", f"/2018-06-01/runtime/invocation/{rid}/response", "{}")
    conn.getresponse().read()
"#;

/// SIGTERM while an invocation is still cold starting: it finishes, and its usage row and
/// START/END/REPORT lines survive the restart.
#[tokio::test]
async fn a_shutdown_during_a_cold_start_keeps_the_invocation() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut s = Server::start_in(tmp.path(), None);
    s.create_ok(
        "coldstop",
        "provided.al2023",
        "x",
        &zip_of(&[("bootstrap", SLOW_INIT, 0o755)]),
        json!({}),
    )
    .await;
    let (_, v, _) = s.get("/2015-03-31/functions/coldstop").await;
    for _ in 0..100 {
        if v["Configuration"]["State"] == "Active" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let url = s.u("/2015-03-31/functions/coldstop/invocations");
    let http = s.http.clone();
    let call = tokio::spawn(async move { http.post(url).body("{}").send().await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    let status = s.stop().expect("status");
    assert!(status.success(), "clean exit: {status:?}");
    let r = call
        .await
        .expect("task")
        .expect("the in-flight invocation was answered");
    assert_eq!(r.status().as_u16(), 200);
    let s = Server::start_in(tmp.path(), None);
    let (_, cost, _) = s.get("/_nimbus/cost").await;
    assert_eq!(cost["functions"][0]["requests"], 1, "{cost}");
    let (_, v) = s
        .logs_api(
            "FilterLogEvents",
            json!({"logGroupName": "/aws/lambda/coldstop", "filterPattern": "REPORT"}),
        )
        .await;
    assert_eq!(v["events"].as_array().map(Vec::len), Some(1), "{v}");
}
