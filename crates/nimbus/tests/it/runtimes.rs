//! The managed runtimes (Python, Node.js) through the real server: the handler contract,
//! context, error payloads as AWS's runtimes report them, init errors and log output.

use crate::common::*;
use serde_json::json;

const PY: &str = r#"
import json, os, time
COUNT = 0
print("module loaded")

def lambda_handler(event, context):
    global COUNT
    COUNT += 1
    print("handling", json.dumps(event))
    if event.get("fail"):
        raise ValueError("bad value: " + str(event["fail"]))
    return {
        "count": COUNT,
        "event": event,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "aws_request_id": context.aws_request_id,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "remaining": context.get_remaining_time_in_millis(),
        "cwd": os.getcwd(),
        "exec_env": os.environ.get("AWS_EXECUTION_ENV"),
    }
"#;

const NODE: &str = r#"
let count = 0;
console.log("module loaded");
exports.handler = async (event, context) => {
  count += 1;
  console.log("handling", JSON.stringify(event));
  if (event.fail) { throw new TypeError("bad value: " + event.fail); }
  return {
    count, event,
    functionName: context.functionName,
    functionVersion: context.functionVersion,
    invokedFunctionArn: context.invokedFunctionArn,
    memoryLimitInMB: context.memoryLimitInMB,
    awsRequestId: context.awsRequestId,
    logStreamName: context.logStreamName,
    remaining: context.getRemainingTimeInMillis(),
    execEnv: process.env.AWS_EXECUTION_ENV,
  };
};
exports.big = async (event) => ({ n: event.blob.length, echo: event.blob.split("").reverse().join("") });
exports.floating = async () => {
  Promise.reject(new Error("nobody waits for me"));
  await new Promise((r) => setTimeout(r, 50));
  return "unreachable";
};
exports.callback = (event, context, callback) => {
  setTimeout(() => callback(null, { via: "callback", got: event }), 10);
};
"#;

const ESM: &str = r#"
export const handler = async (event) => ({ esm: true, got: event });
"#;

async fn python_runtime(runtime: &str) {
    let s = Server::start();
    if !runtime_available(&s, runtime).await {
        skip(runtime, "no interpreter on this host (see nimbus doctor)");
        return;
    }
    let zip = zip_of(&[("lambda_function.py", PY, 0o644)]);
    s.create_ok(
        "py",
        runtime,
        "lambda_function.lambda_handler",
        &zip,
        json!({"MemorySize": 256}),
    )
    .await;
    let r = s.invoke("py", json!({"k": "v"})).await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("x-amz-function-error").is_none(),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let v = r.json();
    assert_eq!(v["count"], 1);
    assert_eq!(v["event"]["k"], "v");
    assert_eq!(v["function_name"], "py");
    assert_eq!(v["function_version"], "$LATEST");
    assert_eq!(
        v["invoked_function_arn"],
        "arn:aws:lambda:us-east-1:000000000000:function:py"
    );
    assert_eq!(v["memory_limit_in_mb"], "256");
    assert_eq!(
        v["aws_request_id"],
        r.header("x-amzn-requestid").expect("id").as_str()
    );
    assert_eq!(v["log_group_name"], "/aws/lambda/py");
    let remaining = v["remaining"].as_i64().expect("remaining");
    assert!(remaining > 0 && remaining <= 3000, "{remaining}");
    assert_eq!(v["exec_env"], format!("AWS_Lambda_{runtime}"));
    // Warm reuse keeps module globals.
    assert_eq!(s.invoke("py", json!({})).await.json()["count"], 2);

    let r = s.invoke("py", json!({"fail": 7})).await;
    assert_eq!(
        r.header("x-amz-function-error").as_deref(),
        Some("Unhandled")
    );
    let e = r.json();
    assert_eq!(e["errorType"], "ValueError");
    assert_eq!(e["errorMessage"], "bad value: 7");
    assert_eq!(
        e["requestId"],
        r.header("x-amzn-requestid").expect("id").as_str()
    );
    let trace = e["stackTrace"].as_array().expect("stackTrace");
    assert!(
        trace.iter().any(|l| l
            .as_str()
            .is_some_and(|l| l.contains("lambda_function.py") && l.contains("lambda_handler"))),
        "{e}"
    );

    let logs = s.log_messages("py", "[ERROR] ValueError").await;
    assert!(logs.iter().any(|l| l == "module loaded"), "{logs:?}");
    assert!(
        logs.iter().any(|l| l == r#"handling {"k": "v"}"#),
        "{logs:?}"
    );

    // Init errors, as the AWS runtime reports them.
    let bad = zip_of(&[("app.py", "import nonexistent_module_xyz\n", 0o644)]);
    s.create_ok("py-import", runtime, "app.handler", &bad, json!({}))
        .await;
    let e = s.invoke("py-import", json!({})).await.json();
    assert_eq!(e["errorType"], "Runtime.ImportModuleError");
    assert_eq!(
        e["errorMessage"],
        "Unable to import module 'app': No module named 'nonexistent_module_xyz'"
    );
    let ok = zip_of(&[("app.py", "def other(e, c):\n    return 1\n", 0o644)]);
    s.create_ok("py-missing", runtime, "app.handler", &ok, json!({}))
        .await;
    let e = s.invoke("py-missing", json!({})).await.json();
    assert_eq!(e["errorType"], "Runtime.HandlerNotFound");
    assert_eq!(
        e["errorMessage"],
        "Handler 'handler' missing on module 'app'"
    );
    s.create_ok("py-malformed", runtime, "nodot", &ok, json!({}))
        .await;
    let e = s.invoke("py-malformed", json!({})).await.json();
    assert_eq!(e["errorType"], "Runtime.MalformedHandlerName");
}

#[tokio::test]
async fn python_3_11() {
    python_runtime("python3.11").await;
}

#[tokio::test]
async fn python_3_9() {
    python_runtime("python3.9").await;
}

#[tokio::test]
async fn python_3_13() {
    python_runtime("python3.13").await;
}

#[tokio::test]
async fn nodejs_20() {
    let s = Server::start();
    if !runtime_available(&s, "nodejs20.x").await {
        skip(
            "nodejs_20",
            "no Node.js 20 on this host (see nimbus doctor)",
        );
        return;
    }
    let zip = zip_of(&[("index.js", NODE, 0o644), ("esm.mjs", ESM, 0o644)]);
    s.create_ok("node", "nodejs20.x", "index.handler", &zip, json!({}))
        .await;
    let r = s.invoke("node", json!({"k": 1})).await;
    assert!(
        r.header("x-amz-function-error").is_none(),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let v = r.json();
    assert_eq!(v["count"], 1);
    assert_eq!(v["functionName"], "node");
    assert_eq!(v["functionVersion"], "$LATEST");
    assert_eq!(
        v["invokedFunctionArn"],
        "arn:aws:lambda:us-east-1:000000000000:function:node"
    );
    assert_eq!(v["memoryLimitInMB"], "128");
    assert_eq!(
        v["awsRequestId"],
        r.header("x-amzn-requestid").expect("id").as_str()
    );
    assert!(v["remaining"].as_i64().expect("remaining") > 0);
    assert_eq!(v["execEnv"], "AWS_Lambda_nodejs20.x");
    assert_eq!(s.invoke("node", json!({})).await.json()["count"], 2);

    let r = s.invoke("node", json!({"fail": "x"})).await;
    assert_eq!(
        r.header("x-amz-function-error").as_deref(),
        Some("Unhandled")
    );
    let e = r.json();
    assert_eq!(e["errorType"], "TypeError");
    assert_eq!(e["errorMessage"], "bad value: x");
    assert!(
        e["trace"].as_array().is_some_and(|t| !t.is_empty()),
        "Node reports `trace`: {e}"
    );
    assert!(e.get("stackTrace").is_none());

    let id = r.header("x-amzn-requestid").expect("id");
    let logs = s.log_messages("node", "Invoke Error").await;
    assert!(
        logs.iter()
            .any(|l| l.ends_with(&format!("\t{id}\tINFO\thandling {{\"fail\":\"x\"}}"))),
        "{logs:?}"
    );

    // Payloads of several TCP segments each way through the bootstrap's HTTP client.
    s.create_ok("node-big", "nodejs20.x", "index.big", &zip, json!({}))
        .await;
    let blob: String = (0..2_000_000)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let v = s.invoke("node-big", json!({ "blob": blob })).await.json();
    assert_eq!(v["n"], 2_000_000);
    assert_eq!(
        v["echo"]
            .as_str()
            .map(|e| e.chars().rev().collect::<String>()),
        Some(blob)
    );
    // An unhandled rejection during the invocation fails it as AWS's runtime does.
    s.create_ok(
        "node-float",
        "nodejs20.x",
        "index.floating",
        &zip,
        json!({}),
    )
    .await;
    let r = s.invoke("node-float", json!({})).await;
    assert_eq!(
        r.header("x-amz-function-error").as_deref(),
        Some("Unhandled")
    );
    assert_eq!(r.json()["errorType"], "Runtime.UnhandledPromiseRejection");

    s.create_ok("node-cb", "nodejs20.x", "index.callback", &zip, json!({}))
        .await;
    let v = s.invoke("node-cb", json!({"a": 1})).await.json();
    assert_eq!(v["via"], "callback");
    assert_eq!(v["got"]["a"], 1);

    s.create_ok("node-esm", "nodejs20.x", "esm.handler", &zip, json!({}))
        .await;
    let v = s.invoke("node-esm", json!({"b": 2})).await.json();
    assert_eq!(v["esm"], true);
    assert_eq!(v["got"]["b"], 2);

    s.create_ok(
        "node-missing",
        "nodejs20.x",
        "nope.handler",
        &zip,
        json!({}),
    )
    .await;
    let e = s.invoke("node-missing", json!({})).await.json();
    assert_eq!(e["errorType"], "Runtime.ImportModuleError");
    s.create_ok("node-nofn", "nodejs20.x", "index.absent", &zip, json!({}))
        .await;
    let e = s.invoke("node-nofn", json!({})).await.json();
    assert_eq!(e["errorType"], "Runtime.HandlerNotFound");
}

#[tokio::test]
async fn unavailable_runtimes_are_refused_clearly() {
    let s = Server::start();
    let (_, v, _) = s.get("/_nimbus/status").await;
    let missing = v["runtimes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["available"] == false)
        .and_then(|r| r["runtime"].as_str())
        .map(str::to_string);
    let Some(rt) = missing else {
        skip(
            "unavailable_runtimes_are_refused",
            "every managed runtime is available on this host",
        );
        return;
    };
    let (st, v) = s
        .create(json!({
            "FunctionName": "nope", "Runtime": rt, "Handler": "index.handler",
            "Role": "arn:aws:iam::000000000000:role/r", "Code": {"ZipFile": b64(&provided_zip())},
        }))
        .await;
    assert_eq!(st, 400);
    let msg = v["message"].as_str().expect("message");
    assert!(
        msg.contains(&rt) && msg.contains("not available on this host"),
        "{msg}"
    );
}

/// The root logger is configured like AWS's runtime whether the function imports `logging` at
/// module level or only inside its handler (the bootstrap configures it on first import).
#[tokio::test]
async fn python_logging_is_formatted_like_lambda() {
    let s = Server::start();
    if !runtime_available(&s, "python3.11").await {
        skip(
            "python_logging_is_formatted_like_lambda",
            "python3.11 has no interpreter on this host",
        );
        return;
    }
    // As on Lambda, the root logger keeps Python's default WARNING level in text format.
    let eager = "import logging\nlogger = logging.getLogger()\nlogger.setLevel(logging.INFO)\ndef handler(event, context):\n    logger.info('eager-%s', 1)\n    logger.debug('hidden')\n    return 1\n";
    let lazy = "def handler(event, context):\n    import logging\n    logging.getLogger().warning('lazy-%s', 2)\n    return 2\n";
    for (name, code, level, text) in [
        ("eager", eager, "INFO", "eager-1"),
        ("lazy", lazy, "WARNING", "lazy-2"),
    ] {
        let zip = zip_of(&[("app.py", code, 0o644)]);
        s.create_ok(name, "python3.11", "app.handler", &zip, json!({}))
            .await;
        let r = s.invoke(name, json!({})).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let id = r.header("x-amzn-requestid").expect("request id");
        let logs = s.log_messages(name, text).await;
        let line = logs
            .iter()
            .find(|l| l.contains(text))
            .unwrap_or_else(|| panic!("{name}: no log line in {logs:?}"));
        let parts: Vec<&str> = line.trim_end().split('\t').collect();
        assert_eq!(parts.len(), 4, "{line:?}");
        assert_eq!(parts[0], format!("[{level}]"));
        assert!(
            parts[1].ends_with('Z') && parts[1].contains('T'),
            "{line:?}"
        );
        assert_eq!(parts[2], id);
        assert_eq!(parts[3], text);
        assert!(
            !logs.iter().any(|l| l.contains("hidden")),
            "DEBUG is filtered"
        );
    }
}
