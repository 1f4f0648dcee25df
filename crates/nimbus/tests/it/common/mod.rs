//! Test harness: starts the real `nimbus` binary on a free loopback port with its own data
//! directory, reads the port back from its first stdout line, and stops it on drop.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

pub(crate) struct Server {
    child: Option<Child>,
    pub url: String,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub http: reqwest::Client,
}

/// Records a test skipped for want of a host capability: printed, and appended to the file
/// `NIMBUS_SKIP_LOG` names (scripts/test counts and lists them), so a skip is never a silent pass.
pub(crate) fn skip(test: &str, reason: &str) {
    eprintln!("SKIPPED: {test}: {reason}");
    if let Some(path) = std::env::var_os("NIMBUS_SKIP_LOG") {
        use std::io::Write as _;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{test}: {reason}");
        }
    }
}

/// Polls `probe` (every 50 ms) until it gives `Some`, and returns that; panics naming `what`
/// after `within`. The one way the tests wait for something that happens in the background.
pub(crate) async fn eventually<T, F, Fut>(within: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `probe` (every 50 ms) until the value it gives is `done`, or `within` passes; returns
/// the last value either way, for the test to assert on (so a failure shows what was seen).
pub(crate) async fn settle<T, F, Fut>(
    within: Duration,
    mut probe: F,
    done: impl Fn(&T) -> bool,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let deadline = Instant::now() + within;
    loop {
        let v = probe().await;
        if done(&v) || Instant::now() > deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_nimbus")
}

impl Server {
    pub(crate) fn start() -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let mut s = Server::start_in(&dir, None);
        s._tmp = Some(tmp);
        s
    }

    pub(crate) fn start_with_config(config: &str) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let cfg = dir.join("nimbus.toml");
        std::fs::write(&cfg, config).expect("write config");
        let mut s = Server::start_in(&dir, Some(&cfg));
        s._tmp = Some(tmp);
        s
    }

    /// A server that must use the sandbox launcher (it refuses to start without it), whatever
    /// `NIMBUS_LAUNCHER` the suite runs with.
    pub(crate) fn start_sandboxed(config: &str) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let cfg = dir.join("nimbus.toml");
        std::fs::write(&cfg, config).expect("write config");
        let mut s = Server::launch(&dir, Some(&cfg), Some("sandbox"));
        s._tmp = Some(tmp);
        s
    }

    pub(crate) fn start_in(dir: &Path, config: Option<&Path>) -> Server {
        Server::launch(dir, config, None)
    }

    fn launch(dir: &Path, config: Option<&Path>, launcher: Option<&str>) -> Server {
        let mut cmd = Command::new(bin());
        if let Some(l) = launcher {
            cmd.env("NIMBUS_LAUNCHER", l);
        }
        cmd.arg("server")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(dir)
            .env("NIMBUS_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        let mut child = cmd.spawn().expect("start nimbus");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read listen line");
        let url = line
            .trim()
            .strip_prefix("Nimbus listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_string();
        Server {
            child: Some(child),
            url,
            data_dir: dir.to_path_buf(),
            _tmp: None,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Stops the server with SIGTERM and waits for it.
    pub(crate) fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        // SAFETY: kill has no memory-safety preconditions; the pid is our own child's.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                return Some(st);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server with SIGKILL (a crash).
    pub(crate) fn crash(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub(crate) fn u(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    pub(crate) async fn create(&self, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.u("/2015-03-31/functions"))
            .json(&body)
            .send()
            .await
            .expect("create");
        let st = r.status().as_u16();
        (st, r.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn create_ok(
        &self,
        name: &str,
        runtime: &str,
        handler: &str,
        zip: &[u8],
        extra: Value,
    ) -> Value {
        let mut body = json!({
            "FunctionName": name,
            "Runtime": runtime,
            "Handler": handler,
            "Role": "arn:aws:iam::000000000000:role/lambda-role",
            "Code": { "ZipFile": b64(zip) },
        });
        if let (Some(o), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                o.insert(k.clone(), v.clone());
            }
        }
        let (st, v) = self.create(body).await;
        assert_eq!(st, 201, "create {name}: {v}");
        v
    }

    /// A JSON request that must succeed (a 2xx status); returns the body.
    pub(crate) async fn call_ok(&self, method: &str, path: &str, body: Value) -> Value {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let r = self
            .http
            .request(m, self.u(path))
            .json(&body)
            .send()
            .await
            .expect("request");
        let st = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!((200..300).contains(&st), "{method} {path}: {st} {v}");
        v
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, Value, reqwest::header::HeaderMap) {
        let r = self.http.get(self.u(path)).send().await.expect("get");
        let st = r.status().as_u16();
        let h = r.headers().clone();
        (st, r.json().await.unwrap_or(Value::Null), h)
    }

    pub(crate) async fn invoke_raw(
        &self,
        name: &str,
        payload: &[u8],
        headers: &[(&str, &str)],
    ) -> Invoked {
        let mut req = self
            .http
            .post(self.u(&format!("/2015-03-31/functions/{name}/invocations")))
            .body(payload.to_vec());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.expect("invoke");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.bytes().await.expect("body").to_vec();
        Invoked {
            status,
            headers,
            body,
        }
    }

    pub(crate) async fn invoke(&self, name: &str, payload: Value) -> Invoked {
        self.invoke_raw(name, payload.to_string().as_bytes(), &[])
            .await
    }

    pub(crate) async fn logs_api(&self, op: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.u("/"))
            .header("X-Amz-Target", format!("Logs_20140328.{op}"))
            .header("Content-Type", "application/x-amz-json-1.1")
            .body(body.to_string())
            .send()
            .await
            .expect("logs");
        let st = r.status().as_u16();
        (st, r.json().await.unwrap_or(Value::Null))
    }

    /// All log messages of a function so far.
    pub(crate) async fn all_log_messages(&self, name: &str) -> Vec<String> {
        let (st, v) = self
            .logs_api(
                "FilterLogEvents",
                json!({ "logGroupName": format!("/aws/lambda/{name}") }),
            )
            .await;
        if st != 200 {
            return Vec::new();
        }
        v["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["message"].as_str().map(str::to_string))
            .collect()
    }

    /// All log messages of a function so far, waiting until `until` appears (or 10 s).
    pub(crate) async fn log_messages(&self, name: &str, until: &str) -> Vec<String> {
        settle(
            Duration::from_secs(10),
            || self.all_log_messages(name),
            |msgs: &Vec<String>| msgs.iter().any(|m| m.contains(until)),
        )
        .await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) struct Invoked {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Invoked {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
    pub(crate) fn error_type(&self) -> Option<String> {
        self.header("x-amzn-errortype")
    }
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A zip of (name, contents, mode) entries.
pub(crate) fn zip_of(entries: &[(&str, &str, u32)]) -> Vec<u8> {
    use zip::write::SimpleFileOptions;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data, mode) in entries {
        w.start_file(*name, SimpleFileOptions::default().unix_permissions(*mode))
            .expect("start");
        w.write_all(data.as_bytes()).expect("write");
    }
    w.finish().expect("finish").into_inner()
}

/// A `provided` runtime written in Python (stdlib only) whose behaviour the event controls:
/// `{"sleep": s}`, `{"exit": code}`, `{"fail": true}`, `{"print": "text"}`, `{"big": n}`.
/// It answers with its pid, an invocation counter, the event and the runtime headers.
/// `INIT_MODE` (env) = `error` | `exit` | `hang` makes init fail.
pub(crate) const PY_BOOTSTRAP: &str = r#"#!/usr/bin/python3
import http.client, json, os, sys, time
api = os.environ["AWS_LAMBDA_RUNTIME_API"]
host, port = api.split(":")
conn = http.client.HTTPConnection(host, int(port))
mode = os.environ.get("INIT_MODE", "")
print("init", os.environ["AWS_LAMBDA_FUNCTION_NAME"], flush=True)
if mode == "error":
    conn.request("POST", "/2018-06-01/runtime/init/error",
                 json.dumps({"errorMessage": "cannot start", "errorType": "Custom.InitFailed"}),
                 {"Lambda-Runtime-Function-Error-Type": "Custom.InitFailed"})
    conn.getresponse().read()
    sys.exit(1)
if mode == "exit":
    sys.exit(3)
if mode == "hang":
    time.sleep(3600)
count = 0
keys = ["AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_REGION", "_HANDLER",
        "LAMBDA_TASK_ROOT", "TZ", "AWS_LAMBDA_INITIALIZATION_TYPE", "MY_VAR"]
while True:
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    r = conn.getresponse()
    body = r.read()
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    hdrs = {k: r.getheader(k) for k in ["Lambda-Runtime-Aws-Request-Id", "Lambda-Runtime-Deadline-Ms",
            "Lambda-Runtime-Invoked-Function-Arn", "Lambda-Runtime-Trace-Id", "Lambda-Runtime-Client-Context"]}
    ev = json.loads(body)
    count += 1
    if "print" in ev:
        print(ev["print"], flush=True)
    if "sleep" in ev:
        time.sleep(ev["sleep"])
    if "exit" in ev:
        sys.exit(ev["exit"])
    if ev.get("fail"):
        conn.request("POST", f"/2018-06-01/runtime/invocation/{rid}/error",
                     json.dumps({"errorMessage": "it failed", "errorType": "Custom.Failure"}),
                     {"Lambda-Runtime-Function-Error-Type": "Custom.Failure"})
    else:
        out = {"pid": os.getpid(), "env_id": os.environ["AWS_LAMBDA_LOG_STREAM_NAME"],
               "count": count, "event": ev, "headers": hdrs,
               "env": {k: os.environ.get(k) for k in keys}, "cwd": os.getcwd()}
        if "read" in ev:
            try:
                out["read"] = open(ev["read"]).read()
            except OSError as e:
                out["read_error"] = str(e)
        if "big" in ev:
            out = {"big": "x" * ev["big"]}
        conn.request("POST", f"/2018-06-01/runtime/invocation/{rid}/response", json.dumps(out),
                     {"Content-Type": "application/json"})
    conn.getresponse().read()
"#;

pub(crate) fn provided_zip() -> Vec<u8> {
    zip_of(&[("bootstrap", PY_BOOTSTRAP, 0o755)])
}

pub(crate) async fn provided_fn(s: &Server, name: &str, extra: Value) -> Value {
    s.create_ok(
        name,
        "provided.al2023",
        "handler.run",
        &provided_zip(),
        extra,
    )
    .await
}

/// Whether the host has a working interpreter for a managed runtime (per the server).
pub(crate) async fn runtime_available(s: &Server, runtime: &str) -> bool {
    let (_, v, _) = s.get("/_nimbus/status").await;
    v["runtimes"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| r["runtime"] == runtime && r["available"] == true)
}

/// Whether any live process belongs to the environment with this id (its log stream name, as
/// the test runtime reports it in `env_id`). Found through the host's /proc, so it works for
/// sandboxed environments (whose pids are their own namespace's) and plain processes alike.
pub(crate) fn env_alive(env_id: &str) -> bool {
    let needle = format!("AWS_LAMBDA_LOG_STREAM_NAME={env_id}");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.flatten().any(|e| {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<i64>().ok()) else {
            return false;
        };
        std::fs::read(format!("/proc/{pid}/environ"))
            .map(|env| env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()))
            .unwrap_or(false)
            && pid_alive(pid)
    })
}

pub(crate) fn pid_alive(pid: i64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
}
