//! The Lambda control plane through its real REST API: every operation and every error case.

use crate::common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn health_and_account_settings() {
    let s = Server::start();
    let r = s
        .http
        .get(s.u("/_nimbus/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(r.status().as_u16(), 200);
    provided_fn(&s, "acct-a", json!({})).await;
    let (st, v, _) = s.get("/2016-08-19/account-settings/").await;
    assert_eq!(st, 200);
    assert_eq!(v["AccountLimit"]["ConcurrentExecutions"], 1000);
    assert_eq!(v["AccountLimit"]["CodeSizeUnzipped"], 262144000);
    assert_eq!(v["AccountLimit"]["CodeSizeZipped"], 52428800);
    assert_eq!(v["AccountUsage"]["FunctionCount"], 1);
    assert!(v["AccountUsage"]["TotalCodeSize"].as_u64().unwrap_or(0) > 0);
}

#[tokio::test]
async fn create_get_update_delete() {
    let s = Server::start();
    let zip = provided_zip();
    let created = s
        .create_ok(
            "crud",
            "provided.al2023",
            "h.run",
            &zip,
            json!({"Description": "d", "Environment": {"Variables": {"MY_VAR": "one"}}}),
        )
        .await;
    assert_eq!(created["FunctionName"], "crud");
    assert_eq!(
        created["FunctionArn"],
        "arn:aws:lambda:us-east-1:000000000000:function:crud"
    );
    assert_eq!(created["State"], "Pending");
    assert_eq!(created["StateReasonCode"], "Creating");
    assert_eq!(created["MemorySize"], 128);
    assert_eq!(created["Timeout"], 3);
    assert_eq!(created["Version"], "$LATEST");
    assert_eq!(created["PackageType"], "Zip");
    assert_eq!(created["CodeSize"], zip.len());
    use sha2_check::sha256_b64;
    assert_eq!(created["CodeSha256"], sha256_b64(&zip));
    assert_eq!(created["Environment"]["Variables"]["MY_VAR"], "one");

    // Active shortly after.
    let mut cfg = Value::Null;
    for _ in 0..100 {
        let (_, v, _) = s.get("/2015-03-31/functions/crud/configuration").await;
        cfg = v;
        if cfg["State"] == "Active" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(cfg["State"], "Active");
    assert_eq!(cfg["LastUpdateStatus"], "Successful");

    // GetFunction: Code.Location downloads the zip.
    let (st, full, _) = s.get("/2015-03-31/functions/crud").await;
    assert_eq!(st, 200);
    let loc = full["Code"]["Location"].as_str().expect("location");
    assert_eq!(full["Code"]["RepositoryType"], "S3");
    let bytes = s
        .http
        .get(loc)
        .send()
        .await
        .expect("download")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(bytes.as_ref(), zip.as_slice());

    // The same function by ARN, partial ARN and $LATEST.
    for r in [
        "arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Acrud",
        "000000000000%3Afunction%3Acrud",
        "crud%3A%24LATEST",
    ] {
        let (st, v, _) = s
            .get(&format!("/2015-03-31/functions/{r}/configuration"))
            .await;
        assert_eq!(st, 200, "{r}");
        assert_eq!(v["FunctionName"], "crud");
    }

    // UpdateFunctionConfiguration: new revision, values applied, and the next invoke sees them.
    let rev = cfg["RevisionId"].as_str().expect("rev").to_string();
    let r = s
        .http
        .put(s.u("/2015-03-31/functions/crud/configuration"))
        .json(&json!({"MemorySize": 256, "Timeout": 10, "Environment": {"Variables": {"MY_VAR": "two"}}, "RevisionId": rev}))
        .send()
        .await
        .expect("update");
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["MemorySize"], 256);
    assert_eq!(v["LastUpdateStatus"], "InProgress");
    assert_ne!(v["RevisionId"], rev.as_str());
    let out = s.invoke("crud", json!({})).await.json();
    assert_eq!(out["env"]["MY_VAR"], "two");
    assert_eq!(out["env"]["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");

    // A stale RevisionId is refused.
    let r = s
        .http
        .put(s.u("/2015-03-31/functions/crud/configuration"))
        .json(&json!({"Timeout": 11, "RevisionId": rev}))
        .send()
        .await
        .expect("update");
    assert_eq!(r.status().as_u16(), 412);
    assert_eq!(
        r.headers()["x-amzn-errortype"].to_str().ok(),
        Some("PreconditionFailedException")
    );

    // UpdateFunctionCode: new sha, and the new code runs.
    let zip2 = zip_of(&[
        ("bootstrap", PY_BOOTSTRAP, 0o755),
        ("extra.txt", "v2", 0o644),
    ]);
    let r = s
        .http
        .put(s.u("/2015-03-31/functions/crud/code"))
        .json(&json!({"ZipFile": b64(&zip2)}))
        .send()
        .await
        .expect("code");
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["CodeSha256"], sha256_b64(&zip2));
    let out = s.invoke("crud", json!({"read": "extra.txt"})).await.json();
    assert_eq!(out["read"].as_str(), Some("v2"));

    // Delete.
    let r = s
        .http
        .delete(s.u("/2015-03-31/functions/crud"))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status().as_u16(), 204);
    let (st, v, h) = s.get("/2015-03-31/functions/crud").await;
    assert_eq!(st, 404);
    assert_eq!(h["x-amzn-errortype"], "ResourceNotFoundException");
    assert_eq!(
        v["Message"],
        "Function not found: arn:aws:lambda:us-east-1:000000000000:function:crud"
    );
}

mod sha2_check {
    pub(super) fn sha256_b64(bytes: &[u8]) -> String {
        // SHA-256 via the sha256sum tool keeps this test independent of the server's code.
        use std::io::Write;
        let mut child = std::process::Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("sha256sum");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(bytes)
            .expect("write");
        let out = child.wait_with_output().expect("output");
        let hex = String::from_utf8_lossy(&out.stdout);
        let hex = hex.split_whitespace().next().expect("hex");
        let raw: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digit"))
            .collect();
        super::b64(&raw)
    }
}

#[tokio::test]
async fn list_functions_paginates() {
    let s = Server::start();
    let zip = provided_zip();
    for i in 0..7 {
        s.create_ok(
            &format!("list-{i}"),
            "provided.al2023",
            "h",
            &zip,
            json!({}),
        )
        .await;
    }
    let mut names = Vec::new();
    let mut marker: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &marker {
            Some(m) => format!("/2015-03-31/functions/?MaxItems=3&Marker={m}"),
            None => "/2015-03-31/functions/?MaxItems=3".into(),
        };
        let (st, v, _) = s.get(&path).await;
        assert_eq!(st, 200);
        pages += 1;
        let fns = v["Functions"].as_array().expect("functions");
        assert!(fns.len() <= 3);
        names.extend(
            fns.iter()
                .map(|f| f["FunctionName"].as_str().unwrap_or("").to_string()),
        );
        match v["NextMarker"].as_str() {
            Some(m) => marker = Some(m.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..7).map(|i| format!("list-{i}")).collect();
    assert_eq!(names, expected);
    let (st, _, h) = s.get("/2015-03-31/functions/?MaxItems=0").await;
    assert_eq!(st, 400);
    assert_eq!(h["x-amzn-errortype"], "ValidationException");
}

async fn expect_create_error(s: &Server, body: Value, status: u16, kind: &str, contains: &str) {
    let r = s
        .http
        .post(s.u("/2015-03-31/functions"))
        .json(&body)
        .send()
        .await
        .expect("create");
    let st = r.status().as_u16();
    let t = r
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    let msg = v["message"]
        .as_str()
        .or(v["Message"].as_str())
        .unwrap_or("")
        .to_string();
    assert_eq!((st, t.as_str()), (status, kind), "{body}: {v}");
    assert!(
        msg.contains(contains),
        "message {msg:?} should contain {contains:?}"
    );
}

fn base(name: &str) -> Value {
    json!({
        "FunctionName": name,
        "Runtime": "provided.al2023",
        "Handler": "h",
        "Role": "arn:aws:iam::000000000000:role/r",
        "Code": {"ZipFile": b64(&provided_zip())},
    })
}

fn with(mut v: Value, k: &str, x: Value) -> Value {
    v[k] = x;
    v
}

#[tokio::test]
async fn create_errors_are_aws_shaped() {
    let s = Server::start();
    provided_fn(&s, "dup", json!({})).await;
    expect_create_error(
        &s,
        base("dup"),
        409,
        "ResourceConflictException",
        "Function already exist: dup",
    )
    .await;
    expect_create_error(&s, with(base("t"), "Timeout", json!(901)), 400, "ValidationException",
        "Value '901' at 'timeout' failed to satisfy constraint: Member must have value less than or equal to 900").await;
    expect_create_error(
        &s,
        with(base("t"), "Timeout", json!(0)),
        400,
        "ValidationException",
        "greater than or equal to 1",
    )
    .await;
    expect_create_error(
        &s,
        with(base("m"), "MemorySize", json!(10241)),
        400,
        "ValidationException",
        "less than or equal to 10240",
    )
    .await;
    expect_create_error(
        &s,
        with(base("m"), "MemorySize", json!(64)),
        400,
        "ValidationException",
        "greater than or equal to 128",
    )
    .await;
    expect_create_error(
        &s,
        with(base("bad name!"), "FunctionName", json!("bad name!")),
        400,
        "ValidationException",
        "functionName",
    )
    .await;
    expect_create_error(
        &s,
        with(base("r"), "Runtime", json!("cobol85")),
        400,
        "ValidationException",
        "enum value set",
    )
    .await;
    expect_create_error(
        &s,
        with(base("r"), "Runtime", json!("python2.7")),
        400,
        "InvalidParameterValueException",
        "no longer supported",
    )
    .await;
    expect_create_error(
        &s,
        with(base("r"), "Runtime", json!("java21")),
        400,
        "InvalidParameterValueException",
        "java21",
    )
    .await;
    expect_create_error(
        &s,
        with(base("h"), "Handler", json!("has space")),
        400,
        "ValidationException",
        "handler",
    )
    .await;
    expect_create_error(
        &s,
        with(base("role"), "Role", json!("not-a-role")),
        400,
        "ValidationException",
        "role",
    )
    .await;
    expect_create_error(
        &s,
        with(
            base("e"),
            "Environment",
            json!({"Variables": {"AWS_REGION": "x"}}),
        ),
        400,
        "InvalidParameterValueException",
        "Reserved keys used in this request: AWS_REGION",
    )
    .await;
    expect_create_error(
        &s,
        with(
            base("e"),
            "Environment",
            json!({"Variables": {"1BAD": "x"}}),
        ),
        400,
        "ValidationException",
        "environment.variables",
    )
    .await;
    expect_create_error(
        &s,
        with(
            base("e"),
            "Environment",
            json!({"Variables": {"BIG": "x".repeat(4100)}}),
        ),
        400,
        "InvalidParameterValueException",
        "exceeded the 4KB limit",
    )
    .await;
    expect_create_error(
        &s,
        with(
            base("z"),
            "Code",
            json!({"ZipFile": b64(b"this is not a zip")}),
        ),
        400,
        "InvalidParameterValueException",
        "Could not unzip uploaded file",
    )
    .await;
    expect_create_error(
        &s,
        with(base("z"), "Code", json!({"S3Bucket": "b", "S3Key": "k"})),
        400,
        "InvalidParameterValueException",
        "ZipFile",
    )
    .await;
    expect_create_error(
        &s,
        with(base("u"), "Unknown", json!(1)),
        400,
        "InvalidRequestContentException",
        "Unknown",
    )
    .await;
    let r = s
        .http
        .post(s.u("/2015-03-31/functions"))
        .body("{not json")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(
        r.headers()["x-amzn-errortype"],
        "InvalidRequestContentException"
    );
    // Zip-slip is refused.
    let evil = zip_of(&[("../../escape", "x", 0o644)]);
    expect_create_error(
        &s,
        with(base("slip"), "Code", json!({"ZipFile": b64(&evil)})),
        400,
        "InvalidParameterValueException",
        "outside",
    )
    .await;
    // Nothing of the failed creates was stored.
    let (_, v, _) = s.get("/2015-03-31/functions/").await;
    assert_eq!(v["Functions"].as_array().map(|a| a.len()), Some(1));
}

#[tokio::test]
async fn unknown_functions_and_qualifiers() {
    let s = Server::start();
    provided_fn(&s, "q", json!({})).await;
    let (st, v, h) = s.get("/2015-03-31/functions/nope/configuration").await;
    assert_eq!(
        (st, h["x-amzn-errortype"].to_str().ok()),
        (404, Some("ResourceNotFoundException"))
    );
    assert_eq!(v["Type"], "User");
    let (st, v, _) = s
        .get("/2015-03-31/functions/q/configuration?Qualifier=7")
        .await;
    assert_eq!(st, 404);
    assert_eq!(
        v["Message"],
        "Function not found: arn:aws:lambda:us-east-1:000000000000:function:q:7"
    );
    let (st, _, h) = s
        .get("/2015-03-31/functions/q%3A1/configuration?Qualifier=2")
        .await;
    assert_eq!(
        (st, h["x-amzn-errortype"].to_str().ok()),
        (400, Some("InvalidParameterValueException"))
    );
    let r = s.invoke("nope", json!({})).await;
    assert_eq!(
        (r.status, r.error_type().as_deref()),
        (404, Some("ResourceNotFoundException"))
    );
    let r = s
        .http
        .delete(s.u("/2015-03-31/functions/nope"))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status().as_u16(), 404);
    let r = s
        .http
        .put(s.u("/2015-03-31/functions/nope/code"))
        .json(&json!({"ZipFile": b64(&provided_zip())}))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status().as_u16(), 404);
}
