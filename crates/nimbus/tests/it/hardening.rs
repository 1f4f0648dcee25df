//! Attack and fault paths, each against the real binary: zips that write through links,
//! browser requests to the AWS APIs, template bombs, connection floods and half-sent requests.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{Value, json};

/// A zip with symlink entries (name, Some(target)) and files (name, None, data), in order.
fn zip_with_links(entries: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    use zip::write::SimpleFileOptions;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, link, data) in entries {
        match link {
            Some(t) => w
                .add_symlink(*name, *t, SimpleFileOptions::default())
                .expect("link"),
            None => {
                w.start_file(*name, SimpleFileOptions::default().unix_permissions(0o755))
                    .expect("start");
                w.write_all(data).expect("write");
            }
        }
    }
    w.finish().expect("finish").into_inner()
}

#[tokio::test]
async fn zips_that_write_through_links_are_refused_before_anything_is_stored() {
    let s = Server::start();
    let marker = format!("nimbus-escape-{}", std::process::id());
    let escape = zip_with_links(&[
        ("bootstrap", None, PY_BOOTSTRAP.as_bytes()),
        ("a", Some("."), b""),
        ("a/a/a/up", Some("../../.."), b""),
        (&format!("a/a/a/up/{marker}"), None, b"pwned"),
    ]);
    let beneath = zip_with_links(&[
        ("bootstrap", None, PY_BOOTSTRAP.as_bytes()),
        ("l", Some("lib"), b""),
        ("l/x", None, b"x"),
    ]);
    let outside = zip_with_links(&[
        ("bootstrap", None, PY_BOOTSTRAP.as_bytes()),
        ("etc", Some("/etc"), b""),
    ]);
    for (n, z) in [escape, beneath, outside].iter().enumerate() {
        let name = format!("evil{n}");
        let (st, v) = s
            .create(json!({
                "FunctionName": name,
                "Runtime": "provided.al2023",
                "Handler": "x",
                "Role": "arn:aws:iam::000000000000:role/r",
                "Code": {"ZipFile": b64(z)},
            }))
            .await;
        assert_eq!(st, 400, "zip {n}: {v}");
        assert_eq!(v["Type"], "User", "{v}");
        let (st, _, h) = s.get(&format!("/2015-03-31/functions/{name}")).await;
        assert_eq!(st, 404, "zip {n} was stored");
        assert_eq!(
            h.get("x-amzn-errortype").and_then(|v| v.to_str().ok()),
            Some("ResourceNotFoundException")
        );
    }
    // The same zip as UpdateFunctionCode is refused too, and the function keeps its code.
    provided_fn(&s, "good", json!({})).await;
    let r = s
        .http
        .put(s.u("/2015-03-31/functions/good/code"))
        .json(&json!({"ZipFile": b64(&zip_with_links(&[("a", Some("."), b""), ("a/b", None, b"x")]))}))
        .send()
        .await
        .expect("update");
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(
        r.headers()["x-amzn-errortype"],
        "InvalidParameterValueException"
    );
    // The link chain leads three levels above the task root: beside the data directory.
    let parent = s.data_dir.parent().expect("parent");
    assert!(
        !parent.join(&marker).exists(),
        "a file escaped the code directory"
    );
    assert!(!walk(&s.data_dir).iter().any(|p| p.ends_with(&marker)));
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) && out.len() < 100_000 {
                stack.push(p.clone());
            }
            out.push(p.display().to_string());
        }
    }
    out
}

/// Sends raw bytes and returns the status line and body of the reply.
fn raw(url: &str, request: &str) -> (u16, String) {
    let addr = url.trim_start_matches("http://");
    let mut c = std::net::TcpStream::connect(addr).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(20))).ok();
    c.write_all(request.as_bytes()).expect("write");
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn create_request(host: &str, extra: &str, content_type: &str) -> String {
    let body = json!({
        "FunctionName": "fromweb",
        "Runtime": "provided.al2023",
        "Handler": "x",
        "Role": "arn:aws:iam::000000000000:role/r",
        "Code": {"ZipFile": b64(&provided_zip())},
    })
    .to_string();
    format!(
        "POST /2015-03-31/functions HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn web_pages_cannot_reach_the_aws_apis() {
    let s = Server::start_with_config(
        "[server]\nallowed_origins = [\"https://console.example\"]\nallowed_hosts = [\"nimbus.internal\"]\n",
    );
    let host = s.url.trim_start_matches("http://").to_string();
    // What `fetch(url, {method: "POST", mode: "no-cors", body})` sends from another site.
    let (st, text) = raw(
        &s.url,
        &create_request(
            &host,
            "Origin: https://evil.example\r\nSec-Fetch-Site: cross-site\r\n",
            "text/plain;charset=UTF-8",
        ),
    );
    assert_eq!(st, 403, "{text}");
    assert!(text.contains("AccessDeniedException"), "{text}");
    let (st, text) = raw(
        &s.url,
        &create_request(&host, "Sec-Fetch-Site: same-site\r\n", "application/json"),
    );
    assert_eq!(st, 403, "{text}");
    // A text/plain body is refused even without browser headers.
    let (st, text) = raw(&s.url, &create_request(&host, "", "text/plain"));
    assert_eq!(st, 415, "{text}");
    // DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1.
    let port = host.rsplit(':').next().expect("port");
    let (st, text) = raw(
        &s.url,
        &create_request(&format!("evil.example:{port}"), "", "application/json"),
    );
    assert_eq!(st, 403, "{text}");
    assert!(text.contains("allowed_hosts"), "{text}");
    let (st, _, _) = s.get("/2015-03-31/functions/fromweb").await;
    assert_eq!(st, 404, "a refused request created the function");
    // A configured host name and an allowed origin are served (with CORS for the origin).
    let (st, text) = raw(
        &s.url,
        &create_request(
            &format!("nimbus.internal:{port}"),
            "Origin: https://console.example\r\n",
            "application/json",
        ),
    );
    assert_eq!(st, 201, "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("access-control-allow-origin: https://console.example"),
        "{text}"
    );
    let (st, text) = raw(
        &s.url,
        &format!(
            "OPTIONS /2015-03-31/functions HTTP/1.1\r\nHost: {host}\r\nOrigin: https://console.example\r\nAccess-Control-Request-Method: POST\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(st, 200, "{text}");
    // Function URLs keep serving browsers from any site.
    let r = s
        .http
        .post(s.u("/2021-10-31/functions/fromweb/url"))
        .json(&json!({"AuthType": "NONE"}))
        .send()
        .await
        .expect("url");
    assert_eq!(r.status().as_u16(), 201);
    let v: Value = r.json().await.expect("json");
    let url = v["FunctionUrl"].as_str().expect("url");
    let url_id = match url.split_once("/_aws/lambda-url/") {
        Some((_, rest)) => rest.trim_end_matches('/').to_string(),
        None => url
            .split("//")
            .nth(1)
            .and_then(|h| h.split('.').next())
            .expect("url id")
            .to_string(),
    };
    wait_active(&s, "fromweb").await;
    let (st, text) = raw(
        &s.url,
        &format!(
            "POST /_aws/lambda-url/{url_id}/ HTTP/1.1\r\nHost: {host}\r\nOrigin: https://evil.example\r\nSec-Fetch-Site: cross-site\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
        ),
    );
    assert_eq!(st, 200, "{text}");
}

async fn wait_active(s: &Server, name: &str) {
    eventually(
        Duration::from_secs(20),
        "the function to be Active",
        || async {
            let (_, v, _) = s.get(&format!("/2015-03-31/functions/{name}")).await;
            (v["Configuration"]["State"] == "Active").then_some(())
        },
    )
    .await;
}

async fn call(s: &Server, method: &str, path: &str, body: Value) -> Value {
    s.call_ok(method, path, body).await
}

#[tokio::test]
async fn template_bombs_answer_500_and_the_server_stays_healthy() {
    let s = Server::start();
    let api = call(&s, "POST", "/restapis", json!({"name": "bombs"})).await;
    let id = api["id"].as_str().expect("id").to_string();
    let root = api["rootResourceId"].as_str().expect("root").to_string();
    let bombs = [
        (
            "deep",
            format!("#set($x = {}1{})", "(".repeat(100_000), ")".repeat(100_000)),
        ),
        (
            "loops",
            "#foreach($a in [1..999])#foreach($b in [1..999])#foreach($c in [1..999])$a#end#end#end"
                .to_string(),
        ),
        (
            "doubling",
            "#set($s = \"ab\")#foreach($i in [1..64])#set($s = $s.concat($s))#end$s".to_string(),
        ),
    ];
    for (path, template) in &bombs {
        let r = call(
            &s,
            "POST",
            &format!("/restapis/{id}/resources/{root}"),
            json!({"pathPart": path}),
        )
        .await;
        let rid = r["id"].as_str().expect("id");
        let m = format!("/restapis/{id}/resources/{rid}/methods/GET");
        call(&s, "PUT", &m, json!({"authorizationType": "NONE"})).await;
        call(
            &s,
            "PUT",
            &format!("{m}/integration"),
            json!({"type": "MOCK", "requestTemplates": {"application/json": "{\"statusCode\": 200}"}}),
        )
        .await;
        call(&s, "PUT", &format!("{m}/responses/200"), json!({})).await;
        call(
            &s,
            "PUT",
            &format!("{m}/integration/responses/200"),
            json!({"responseTemplates": {"application/json": template}}),
        )
        .await;
    }
    call(
        &s,
        "POST",
        &format!("/restapis/{id}/deployments"),
        json!({"stageName": "prod"}),
    )
    .await;
    for (path, _) in &bombs {
        let started = Instant::now();
        let r = s
            .http
            .get(s.u(&format!("/restapis/{id}/prod/_user_request_/{path}")))
            .send()
            .await
            .expect("bomb request");
        assert_eq!(r.status().as_u16(), 500, "{path}");
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["message"], "Internal server error");
        let (st, _, _) = s.get("/_nimbus/health").await;
        assert_eq!(st, 200, "server unhealthy after {path}");
        eprintln!("{path}: refused in {:?}", started.elapsed());
    }
}

#[tokio::test]
async fn connection_floods_are_capped_and_half_sent_requests_do_not_block_shutdown() {
    let mut s = Server::start_with_config(
        "[server]\nmax_connections = 40\nmax_connections_per_peer = 30\nheader_timeout_secs = 2\nshutdown_grace_secs = 3\n",
    );
    let addr = s.url.trim_start_matches("http://").to_string();
    // Hold more idle connections than the per-peer cap allows.
    let mut held = Vec::new();
    for _ in 0..60 {
        if let Ok(c) = std::net::TcpStream::connect(&addr) {
            held.push(c);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The connections over the cap were closed by the server: reading gives EOF at once.
    let mut closed = 0;
    for c in &mut held {
        c.set_read_timeout(Some(Duration::from_millis(50))).ok();
        let mut b = [0u8; 1];
        if matches!(c.read(&mut b), Ok(0)) {
            closed += 1;
        }
    }
    assert!(
        closed >= 30,
        "only {closed} of 60 connections over the cap were closed"
    );
    // The idle ones are closed after the header timeout, and the server serves again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(held);
    let (st, _, _) = s.get("/_nimbus/health").await;
    assert_eq!(st, 200);
    // A half-sent request must not hold SIGTERM up.
    let mut half = std::net::TcpStream::connect(&addr).expect("connect");
    half.write_all(
        b"POST /2015-03-31/functions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{",
    )
    .expect("write");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let status = s.stop().expect("status");
    assert!(
        status.success(),
        "the server did not shut down by itself: {status:?} after {:?}",
        started.elapsed()
    );
}

/// A runtime that floods stdout for `{"flood": seconds}`, then answers.
const FLOOD_BOOTSTRAP: &str = r#"#!/usr/bin/python3
import http.client, json, os, sys, time
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
conn = http.client.HTTPConnection(host, int(port))
line = ("x" * 1000 + "\n") * 64
while True:
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    r = conn.getresponse()
    ev = json.loads(r.read())
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    end = time.time() + ev.get("flood", 0)
    n = 0
    while time.time() < end:
        sys.stdout.write(line)
        n += 1
    sys.stdout.flush()
    conn.request("POST", f"/2018-06-01/runtime/invocation/{rid}/response", json.dumps({"chunks": n}))
    conn.getresponse().read()
"#;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn db_bytes(dir: &std::path::Path) -> u64 {
    ["nimbus.db", "nimbus.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

#[tokio::test]
async fn a_log_flood_is_bounded_in_memory_and_on_disk() {
    let s = Server::start_with_config(
        "[logs]\nmax_invocation_bytes = 2097152\nrate_bytes_per_sec = 1048576\nburst_bytes = 2097152\n",
    );
    s.create_ok(
        "flood",
        "provided.al2023",
        "x",
        &zip_of(&[("bootstrap", FLOOD_BOOTSTRAP, 0o755)]),
        json!({"Timeout": 30}),
    )
    .await;
    wait_active(&s, "flood").await;
    let r = s.invoke("flood", json!({})).await;
    assert_eq!(r.status, 200);
    let (rss0, db0) = (rss_kib(s.pid()), db_bytes(&s.data_dir));
    let r = s
        .invoke_raw("flood", br#"{"flood": 6}"#, &[("X-Amz-Log-Type", "Tail")])
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let tail = r.header("x-amz-log-result").expect("tail");
    assert!(b64_decode(&tail).len() <= 4096);
    let (rss1, db1) = (rss_kib(s.pid()), db_bytes(&s.data_dir));
    eprintln!(
        "flood: {} chunks of 64 KB; server RSS {rss0} -> {rss1} KiB, database {db0} -> {db1} bytes",
        r.json()["chunks"]
    );
    assert!(
        rss1.saturating_sub(rss0) < 150 * 1024,
        "server grew by {} KiB",
        rss1 - rss0
    );
    // Per invocation at most 2 MiB of output is stored (plus row overhead).
    assert!(
        db1.saturating_sub(db0) < 16 * 1024 * 1024,
        "database grew by {} bytes",
        db1 - db0
    );
    let msgs = s.log_messages("flood", "Log output truncated").await;
    assert!(
        msgs.iter().any(|m| m.contains("Log output truncated")),
        "no truncation marker"
    );
}

fn b64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .unwrap_or_default()
}

#[tokio::test]
async fn log_retention_policies() {
    let s = Server::start();
    provided_fn(&s, "ret", json!({})).await;
    wait_active(&s, "ret").await;
    assert_eq!(s.invoke("ret", json!({})).await.status, 200);
    s.log_messages("ret", "REPORT").await;
    let group = json!({"logGroupName": "/aws/lambda/ret"});
    let (st, v) = s
        .logs_api(
            "PutRetentionPolicy",
            json!({"logGroupName": "/aws/lambda/ret", "retentionInDays": 2}),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["__type"], "InvalidParameterException");
    let (st, v) = s
        .logs_api(
            "PutRetentionPolicy",
            json!({"logGroupName": "/aws/lambda/none", "retentionInDays": 7}),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["__type"], "ResourceNotFoundException");
    let (st, _) = s
        .logs_api(
            "PutRetentionPolicy",
            json!({"logGroupName": "/aws/lambda/ret", "retentionInDays": 7}),
        )
        .await;
    assert_eq!(st, 200);
    let (_, v) = s
        .logs_api(
            "DescribeLogGroups",
            json!({"logGroupNamePrefix": "/aws/lambda/ret"}),
        )
        .await;
    assert_eq!(v["logGroups"][0]["retentionInDays"], 7, "{v}");
    let (st, _) = s.logs_api("DeleteRetentionPolicy", group.clone()).await;
    assert_eq!(st, 200);
    let (_, v) = s
        .logs_api(
            "DescribeLogGroups",
            json!({"logGroupNamePrefix": "/aws/lambda/ret"}),
        )
        .await;
    assert!(v["logGroups"][0].get("retentionInDays").is_none(), "{v}");
    let (st, _) = s.logs_api("DeleteLogGroup", group).await;
    assert_eq!(st, 200);
}

/// The uid a function's runtime runs as (from its /proc/self/status).
async fn runtime_uid(s: &Server, name: &str) -> u32 {
    let r = s.invoke(name, json!({"read": "/proc/self/status"})).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    v["read"]
        .as_str()
        .and_then(|st| st.lines().find_map(|l| l.strip_prefix("Uid:")))
        .and_then(|ids| ids.split_whitespace().next())
        .and_then(|u| u.parse().ok())
        .unwrap_or_else(|| panic!("no uid in {v}"))
}

#[tokio::test]
async fn environments_never_run_as_root_and_servers_never_share_uids() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        skip(
            "environments_never_run_as_root_and_servers_never_share_uids",
            "needs root (environment uids are only handed out by a root server)",
        );
        return;
    }
    let a = Server::start();
    let b = Server::start();
    let mut uids = Vec::new();
    for s in [&a, &b] {
        provided_fn(s, "whoami", json!({})).await;
        wait_active(s, "whoami").await;
        uids.push(runtime_uid(s, "whoami").await);
    }
    assert!(
        uids.iter().all(|u| *u != 0),
        "an environment ran as root: {uids:?}"
    );
    assert_ne!(uids[0], uids[1], "two servers handed out the same uid");
    // The data directory is not readable by others.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&a.data_dir)
        .expect("data dir")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077 & !0o011, 0, "data dir mode {mode:o}");
    let db = std::fs::metadata(a.data_dir.join("nimbus.db"))
        .expect("db")
        .permissions()
        .mode();
    assert_eq!(db & 0o077, 0, "database mode {db:o}");
}

#[tokio::test]
async fn parallel_api_edits_are_all_stored() {
    let s = Server::start();
    let api = call(&s, "POST", "/restapis", json!({"name": "busy"})).await;
    let id = api["id"].as_str().expect("id").to_string();
    let root = api["rootResourceId"].as_str().expect("root").to_string();
    let edits = (0..30).map(|i| {
        let (s, id, root) = (&s, id.clone(), root.clone());
        async move {
            call(
                s,
                "POST",
                &format!("/restapis/{id}/resources/{root}"),
                json!({"pathPart": format!("r{i}")}),
            )
            .await
        }
    });
    futures_util::future::join_all(edits).await;
    let (_, v, _) = s.get(&format!("/restapis/{id}/resources?limit=500")).await;
    let n = v["item"].as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(n, 31, "30 resources and the root: {v}");
    let http = call(
        &s,
        "POST",
        "/v2/apis",
        json!({"name": "h", "protocolType": "HTTP"}),
    )
    .await;
    let hid = http["apiId"].as_str().expect("api id").to_string();
    let routes = (0..30).map(|i| {
        let (s, hid) = (&s, hid.clone());
        async move {
            call(
                s,
                "POST",
                &format!("/v2/apis/{hid}/routes"),
                json!({"routeKey": format!("GET /r{i}")}),
            )
            .await
        }
    });
    futures_util::future::join_all(routes).await;
    let (_, v, _) = s.get(&format!("/v2/apis/{hid}/routes")).await;
    assert_eq!(v["items"].as_array().map(Vec::len), Some(30), "{v}");
}

#[tokio::test]
async fn deleting_a_function_keeps_code_another_functions_version_runs() {
    let s = Server::start();
    // B's version 1 runs the shared code; B's $LATEST moves on to other code.
    provided_fn(&s, "b", json!({})).await;
    wait_active(&s, "b").await;
    let r = s
        .http
        .post(s.u("/2015-03-31/functions/b/versions"))
        .json(&json!({}))
        .send()
        .await
        .expect("publish");
    assert_eq!(r.status().as_u16(), 201);
    let other = zip_of(&[("bootstrap", &format!("{PY_BOOTSTRAP}\n# other\n"), 0o755)]);
    let r = s
        .http
        .put(s.u("/2015-03-31/functions/b/code"))
        .json(&json!({"ZipFile": b64(&other)}))
        .send()
        .await
        .expect("update");
    assert_eq!(r.status().as_u16(), 200);
    // A uses the same code as B:1, then is deleted.
    provided_fn(&s, "a", json!({})).await;
    wait_active(&s, "a").await;
    let r = s
        .http
        .delete(s.u("/2015-03-31/functions/a"))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status().as_u16(), 204);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = s.invoke_raw("b:1", b"{}", &[]).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let (st, v, _) = s.get("/2015-03-31/functions/b?Qualifier=1").await;
    assert_eq!(st, 200);
    let location = v["Code"]["Location"]
        .as_str()
        .expect("location")
        .to_string();
    let r = s.http.get(&location).send().await.expect("code");
    assert_eq!(r.status().as_u16(), 200, "B:1's code is gone");
}
