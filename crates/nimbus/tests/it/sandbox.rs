//! Escape and abuse tests for the sandbox launcher. Each asserts containment *and* that the
//! platform keeps serving other functions afterwards. The functions run Python code sent in the
//! event (a `provided` bootstrap on the host's /usr/bin/python3), so every probe is written here.

use crate::common::*;
use serde_json::{Value, json};

/// A runtime that executes `event["code"]` and answers `{"result": …}` or `{"exception": …}`.
const EXEC_BOOTSTRAP: &str = r#"#!/usr/bin/python3
import http.client, json, os, sys
api = os.environ["AWS_LAMBDA_RUNTIME_API"]
host, port = api.split(":")
conn = http.client.HTTPConnection(host, int(port))
while True:
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    r = conn.getresponse()
    body = r.read()
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    ev = json.loads(body)
    scope = {"result": None}
    try:
        exec(ev["code"], scope)
        out = {"result": scope["result"]}
    except BaseException as e:
        out = {"exception": f"{type(e).__name__}: {e}"}
    conn.request("POST", f"/2018-06-01/runtime/invocation/{rid}/response",
                 json.dumps(out, default=str), {"Content-Type": "application/json"})
    conn.getresponse().read()
"#;

async fn exec_fn(s: &Server, name: &str, extra: Value, files: &[(&str, &str)]) {
    let mut entries = vec![("bootstrap", EXEC_BOOTSTRAP, 0o755)];
    entries.extend(files.iter().map(|(n, c)| (*n, *c, 0o644)));
    s.create_ok(name, "provided.al2023", "x", &zip_of(&entries), extra)
        .await;
}

async fn run(s: &Server, name: &str, code: &str) -> Invoked {
    s.invoke(name, json!({ "code": code })).await
}

async fn result(s: &Server, name: &str, code: &str) -> Value {
    let r = run(s, name, code).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert!(v.get("exception").is_none(), "{name} raised: {v}");
    v["result"].clone()
}

/// The platform still serves a healthy function.
async fn still_serving(s: &Server) {
    let v = result(s, "healthy", "result = 6 * 7").await;
    assert_eq!(v, 42, "the platform kept serving");
}

async fn start() -> Server {
    start_with("").await
}

async fn start_with(config: &str) -> Server {
    let s = Server::start_sandboxed(config);
    let (_, st, _) = s.get("/_nimbus/status").await;
    assert_eq!(st["launcher"], "sandbox");
    exec_fn(&s, "healthy", json!({}), &[]).await;
    s
}

#[tokio::test]
async fn the_environment_looks_like_lambda() {
    let s = start().await;
    exec_fn(&s, "look", json!({}), &[("data.txt", "mine")]).await;
    let v = result(
        &s,
        "look",
        r#"
import os
st = open("/proc/self/status").read()
field = lambda k: [l.split(":", 1)[1].strip() for l in st.splitlines() if l.startswith(k + ":")][0]
def writable(p):
    try:
        open(p, "w").close(); return True
    except OSError:
        return False
result = {
    "cwd": os.getcwd(), "task": os.environ["LAMBDA_TASK_ROOT"], "rt": os.environ["LAMBDA_RUNTIME_DIR"],
    "data": open("/var/task/data.txt").read(), "uid": os.getuid(), "CapEff": field("CapEff"),
    "CapBnd": field("CapBnd"), "NoNewPrivs": field("NoNewPrivs"), "Seccomp": field("Seccomp"),
    "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
    "task_writable": writable("/var/task/new"), "etc_writable": writable("/etc/x"),
    "tmp_writable": writable("/tmp/x"), "shadow": os.path.exists("/etc/shadow"),
    "user": open("/etc/passwd").read().splitlines()[-1].split(":")[0],
}
"#,
    )
    .await;
    assert_eq!(v["cwd"], "/var/task");
    assert_eq!(v["task"], "/var/task");
    assert_eq!(v["rt"], "/var/runtime");
    assert_eq!(v["data"], "mine");
    assert!(v["uid"].as_u64().is_some_and(|u| u >= 1_000_000), "{v}");
    assert_eq!(v["CapEff"], "0000000000000000");
    assert_eq!(v["CapBnd"], "0000000000000000");
    assert_eq!(v["NoNewPrivs"], "1");
    assert_eq!(v["Seccomp"], "2");
    // Its own PID namespace: its init (1) and itself; nothing of the host.
    assert_eq!(v["pids"][0], 1);
    assert!(v["pids"].as_array().is_some_and(|p| p.len() <= 3), "{v}");
    assert_eq!(v["task_writable"], false);
    assert_eq!(v["etc_writable"], false);
    assert_eq!(v["tmp_writable"], true);
    assert_eq!(v["shadow"], false);
    assert_eq!(v["user"], "sbx_user1051");
}

#[tokio::test]
async fn other_functions_and_the_data_directory_are_out_of_reach() {
    let s = start().await;
    exec_fn(&s, "victim", json!({}), &[("secret.txt", "victim-secret")]).await;
    exec_fn(&s, "intruder", json!({}), &[]).await;
    let v = result(
        &s,
        "victim",
        "open('/tmp/victim-tmp', 'w').write('tmp-secret'); result = open('/var/task/secret.txt').read()",
    )
    .await;
    assert_eq!(v, "victim-secret");
    // Every path of the host's data directory, as seen from the host.
    let mut host_paths: Vec<String> = Vec::new();
    for e in walk(&s.data_dir) {
        host_paths.push(e);
    }
    assert!(
        host_paths.iter().any(|p| p.ends_with("secret.txt")),
        "the victim's code is in the data directory: {host_paths:?}"
    );
    let code = format!(
        r#"
import os, json
paths = json.loads({paths:?})
reachable = [p for p in paths if os.path.exists(p)]
result = {{"reachable": reachable, "tmp": sorted(os.listdir("/tmp")),
          "task": sorted(os.listdir("/var/task")), "proc": sorted(p for p in os.listdir("/proc") if p.isdigit())}}
"#,
        paths = serde_json::to_string(&host_paths).expect("json")
    );
    let v = result(&s, "intruder", &code).await;
    assert_eq!(v["reachable"], json!([]), "host paths visible: {v}");
    assert_eq!(v["tmp"], json!([]), "another environment's /tmp is visible");
    assert_eq!(v["task"], json!(["bootstrap"]));
    still_serving(&s).await;
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        out.push(p.display().to_string());
        if e.file_type().is_ok_and(|t| t.is_dir()) && !p.ends_with("root") {
            out.extend(walk(&p));
        }
    }
    out
}

#[tokio::test]
async fn tmp_is_capped_at_ephemeral_storage() {
    let s = start().await;
    exec_fn(
        &s,
        "filler",
        json!({"MemorySize": 1024, "EphemeralStorage": {"Size": 512}}),
        &[],
    )
    .await;
    let v = result(
        &s,
        "filler",
        r#"
import os
chunk = b"x" * (1 << 20)
written = 0
err = None
try:
    with open("/tmp/fill", "wb") as f:
        for _ in range(700):
            f.write(chunk); f.flush(); written += 1
except OSError as e:
    err = e.strerror
os.remove("/tmp/fill")
st = os.statvfs("/tmp")
result = {"written_mb": written, "error": err, "size_mb": st.f_blocks * st.f_frsize >> 20}
"#,
    )
    .await;
    assert_eq!(v["error"], "No space left on device", "{v}");
    assert_eq!(v["size_mb"], 512);
    assert!(v["written_mb"].as_u64().is_some_and(|w| w <= 512), "{v}");
    still_serving(&s).await;
}

#[tokio::test]
async fn memory_past_the_limit_is_an_out_of_memory_kill() {
    let s = start().await;
    exec_fn(&s, "hog", json!({"MemorySize": 128}), &[]).await;
    let first = result(
        &s,
        "hog",
        "import os; result = os.environ['AWS_LAMBDA_LOG_STREAM_NAME']",
    )
    .await;
    let r = run(&s, "hog", "x = b'x' * (400 << 20); result = len(x)").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("x-amz-function-error").as_deref(),
        Some("Unhandled")
    );
    let v = r.json();
    assert_eq!(v["errorType"], "Runtime.OutOfMemory", "{v}");
    let id = r.header("x-amzn-requestid").expect("request id");
    assert_eq!(
        v["errorMessage"],
        format!("RequestId: {id} Error: Runtime exited with error: signal: killed")
    );
    let logs = s.log_messages("hog", "Runtime.OutOfMemory\t").await;
    let report = logs
        .iter()
        .find(|l| l.starts_with(&format!("REPORT RequestId: {id}")))
        .expect("REPORT line");
    assert!(report.contains("Max Memory Used: 128 MB"), "{report}");
    assert!(
        report.ends_with("Status: error\tError Type: Runtime.OutOfMemory\t")
            || report.contains("Status: error\tError Type: Runtime.OutOfMemory"),
        "{report}"
    );
    // The next invocation gets a fresh environment.
    let next = result(
        &s,
        "hog",
        "import os; result = os.environ['AWS_LAMBDA_LOG_STREAM_NAME']",
    )
    .await;
    assert_ne!(next, first);
    still_serving(&s).await;
}

#[tokio::test]
async fn a_fork_bomb_stops_at_the_process_limit() {
    let s = start().await;
    exec_fn(&s, "bomb", json!({"MemorySize": 3008, "Timeout": 60}), &[]).await;
    let v = result(
        &s,
        "bomb",
        r#"
import os, time
n = 0
err = None
try:
    while n < 5000:
        pid = os.fork()
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        n += 1
except OSError as e:
    err = e.strerror
result = {"forked": n, "error": err}
"#,
    )
    .await;
    assert_eq!(v["error"], "Resource temporarily unavailable", "{v}");
    assert!(v["forked"].as_u64().is_some_and(|n| n < 1024), "{v}");
    still_serving(&s).await;
}

#[tokio::test]
async fn open_files_stop_at_1024() {
    let s = start().await;
    exec_fn(&s, "files", json!({}), &[]).await;
    let v = result(
        &s,
        "files",
        r#"
import os
fds = []
err = None
try:
    for i in range(5000):
        fds.append(os.open(f"/tmp/f{i}", os.O_CREAT | os.O_WRONLY))
except OSError as e:
    err = e.strerror
n = len(fds)
for fd in fds:
    os.close(fd)
result = {"opened": n, "error": err}
"#,
    )
    .await;
    assert_eq!(v["error"], "Too many open files", "{v}");
    assert!(v["opened"].as_u64().is_some_and(|n| n < 1024), "{v}");
    still_serving(&s).await;
}

#[tokio::test]
async fn killing_the_runtime_from_inside_is_an_exit_error() {
    let s = start().await;
    exec_fn(&s, "suicide", json!({}), &[]).await;
    let r = run(
        &s,
        "suicide",
        "import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
    )
    .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["errorType"], "Runtime.ExitError", "{v}");
    assert!(
        v["errorMessage"]
            .as_str()
            .is_some_and(|m| m.ends_with("Runtime exited with error: signal: killed")),
        "{v}"
    );
    // Killing its init is not possible from inside either.
    let v = result(
        &s,
        "suicide",
        "import os, signal\ntry:\n    os.kill(1, signal.SIGKILL); result = 'sent'\nexcept OSError as e:\n    result = e.strerror",
    )
    .await;
    assert_eq!(v, "Operation not permitted");
    still_serving(&s).await;
}

#[tokio::test]
async fn mount_ptrace_and_namespaces_are_denied() {
    let s = start().await;
    exec_fn(&s, "escape", json!({}), &[]).await;
    let v = result(
        &s,
        "escape",
        r#"
import ctypes, ctypes.util, os
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
def call(f, *args):
    r = f(*args)
    return "ok" if r == 0 else os.strerror(ctypes.get_errno())
os.makedirs("/tmp/m", exist_ok=True)
result = {
    "mount": call(libc.mount, b"none", b"/tmp/m", b"tmpfs", 0, None),
    "ptrace_init": call(libc.ptrace, 16, 1, None, None),
    "unshare_user": call(libc.unshare, 0x10000000),
    "unshare_net": call(libc.unshare, 0x40000000),
    "chroot": call(libc.chroot, b"/tmp"),
    "setuid0": call(libc.setuid, 0),
    "sethostname": call(libc.sethostname, b"evil", 4),
    "io_uring_setup": call(libc.syscall, 425, 8, ctypes.create_string_buffer(120)),
    "bind_to_device": call(libc.setsockopt, __import__("socket").socket().fileno(), 1, 25, b"eth0", 4),
    "unicast_if": call(libc.setsockopt, __import__("socket").socket().fileno(), 0, 50, ctypes.byref(ctypes.c_int(2)), 4),
    "x32_getpid": os.strerror(ctypes.get_errno()) if libc.syscall(0x40000000 + 39) < 0 else "ok",
}
"#,
    )
    .await;
    for k in [
        "mount",
        "ptrace_init",
        "unshare_user",
        "unshare_net",
        "chroot",
        "setuid0",
        "sethostname",
        "io_uring_setup",
        "bind_to_device",
        "unicast_if",
    ] {
        assert_eq!(v[k], "Operation not permitted", "{k}: {v}");
    }
    assert_eq!(v["x32_getpid"], "Function not implemented", "{v}");
    still_serving(&s).await;
}

/// With the host's network shared (`sandbox.network = "host"`), every Runtime API is on the
/// host's loopback: each serves only its environment's uid.
#[tokio::test]
async fn another_environments_runtime_api_is_refused() {
    let s = start_with("[sandbox]\nnetwork = \"host\"\n").await;
    exec_fn(&s, "target", json!({}), &[]).await;
    exec_fn(&s, "thief", json!({}), &[]).await;
    // The target is warm and waiting on /next.
    let api = result(
        &s,
        "target",
        "import os; result = os.environ['AWS_LAMBDA_RUNTIME_API']",
    )
    .await;
    let api = api.as_str().expect("address").to_string();
    let code = format!(
        r#"
import http.client
try:
    c = http.client.HTTPConnection("{api}".split(":")[0], int("{api}".split(":")[1]), timeout=3)
    c.request("GET", "/2018-06-01/runtime/invocation/next")
    r = c.getresponse()
    result = {{"status": r.status, "request_id": r.getheader("Lambda-Runtime-Aws-Request-Id")}}
except Exception as e:
    result = {{"refused": type(e).__name__}}
"#
    );
    // Invoke the target meanwhile: if the thief could take its events, this would hang or fail.
    let v = result(&s, "thief", &code).await;
    assert!(
        v.get("refused").is_some(),
        "the thief reached the target's Runtime API: {v}"
    );
    let again = result(&s, "target", "result = 'still mine'").await;
    assert_eq!(again, "still mine");
    still_serving(&s).await;
}

#[tokio::test]
async fn functions_reach_the_network_and_the_nimbus_api() {
    let s = start().await;
    exec_fn(&s, "caller", json!({}), &[]).await;
    let v = result(
        &s,
        "caller",
        r#"
import os, urllib.request, json
url = os.environ["AWS_ENDPOINT_URL"] + "/2015-03-31/functions/"
with urllib.request.urlopen(url, timeout=5) as r:
    result = [f["FunctionName"] for f in json.load(r)["Functions"]]
"#,
    )
    .await;
    assert_eq!(v, json!(["caller", "healthy"]));
}

#[tokio::test]
async fn a_runtime_that_never_asks_for_work_times_out_its_init() {
    let s = start_with("[server]\ninit_timeout_secs = 1\n").await;
    s.create_ok(
        "silent",
        "provided.al2023",
        "x",
        &zip_of(&[("bootstrap", "#!/bin/sh\nexec sleep 3600\n", 0o755)]),
        json!({}),
    )
    .await;
    let r = s.invoke("silent", json!({})).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("x-amz-function-error").as_deref(),
        Some("Unhandled")
    );
    let logs = s.log_messages("silent", "INIT_REPORT").await;
    assert!(
        logs.iter()
            .any(|l| l.starts_with("INIT_REPORT") && l.contains("Status: timeout")),
        "{logs:?}"
    );
    still_serving(&s).await;
}

/// The server's cgroup directory in the v1 memory hierarchy (this host's layout), if any.
fn memory_group_of(pid: u32) -> Option<std::path::PathBuf> {
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let path = own.lines().find_map(|l| {
        let mut it = l.splitn(3, ':');
        let _ = it.next();
        let ctrls = it.next()?;
        let path = it.next()?;
        ctrls
            .split(',')
            .any(|c| c == "memory")
            .then(|| path.to_string())
    })?;
    let dir = std::path::Path::new("/sys/fs/cgroup/memory")
        .join(path.trim_start_matches('/'))
        .join(format!("nimbus-{pid}"));
    Some(dir)
}

#[tokio::test]
async fn cgroups_are_removed_after_a_stop_and_swept_after_a_crash() {
    let mut s = start().await;
    assert_eq!(result(&s, "healthy", "result = 1").await, 1);
    let Some(dir) = memory_group_of(s.pid()) else {
        eprintln!("no v1 memory hierarchy on this host; nothing to check");
        return;
    };
    assert!(
        dir.is_dir(),
        "{} exists while the server runs",
        dir.display()
    );
    s.crash();
    assert!(dir.is_dir(), "a crash leaves {} behind", dir.display());
    // The next server sweeps groups whose server is gone, and removes its own at a clean stop.
    let mut next = start().await;
    assert!(!dir.exists(), "{} was swept", dir.display());
    assert_eq!(result(&next, "healthy", "result = 2").await, 2);
    let own = memory_group_of(next.pid()).expect("group");
    assert!(own.is_dir());
    assert!(next.stop().is_some_and(|st| st.success()));
    let left: Vec<String> = std::fs::read_dir(&own)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        !own.exists(),
        "{} removed at a clean stop; groups left: {left:?}",
        own.display()
    );
}

#[tokio::test]
async fn doctor_reports_the_isolation_in_force() {
    let s = start().await;
    let out = std::process::Command::new(bin())
        .args(["doctor", "--endpoint", &s.url])
        .output()
        .expect("doctor");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("launcher:     sandbox"), "{text}");
    for feature in [
        "namespaces",
        "cgroups",
        "seccomp",
        "runtime-api-isolation",
        "network",
    ] {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(feature) && l.contains(" yes ")),
            "{feature}: {text}"
        );
    }
}

/// Runs the server as an unprivileged user (uid 65534), who cannot sandbox.
fn unprivileged_server(launcher: &str) -> (std::process::Child, tempfile::TempDir) {
    let tmp = tempfile::tempdir().expect("tmp");
    std::os::unix::fs::chown(tmp.path(), Some(65534), Some(65534)).expect("chown");
    let child = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", bin()])
        .args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--launcher",
            launcher,
            "--data-dir",
        ])
        .arg(tmp.path())
        .env("NIMBUS_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("setpriv");
    (child, tmp)
}

#[tokio::test]
async fn without_root_auto_falls_back_with_a_warning_and_sandbox_refuses() {
    use std::io::{BufRead, Read};
    let (mut child, _tmp) = unprivileged_server("auto");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("line");
    let url = line
        .trim()
        .trim_start_matches("Nimbus listening on ")
        .to_string();
    let status: Value = reqwest::get(format!("{url}/_nimbus/status"))
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    assert_eq!(status["launcher"], "process", "{status}");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    let mut err = String::new();
    let _ = child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err);
    assert!(err.contains("WITHOUT isolation"), "{err}");
    assert!(err.contains("not running as root"), "{err}");

    let (mut child, _tmp) = unprivileged_server("sandbox");
    let st = child.wait().expect("exit");
    assert!(!st.success());
    let mut err = String::new();
    let _ = child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err);
    assert!(
        err.contains("the sandbox launcher is required but unavailable"),
        "{err}"
    );
}

/// A host address that is not loopback (the host's own, reachable from the host).
fn host_address() -> Option<std::net::Ipv4Addr> {
    let out = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let inet = l.split_whitespace().skip_while(|w| *w != "inet").nth(1)?;
        inet.split('/').next()?.parse().ok()
    })
}

/// Code that tries TCP connections and reports, per target, "ok" or the error's text.
fn probe_code(targets: &[(&str, String)]) -> String {
    let list: Vec<String> = targets
        .iter()
        .map(|(k, t)| format!("({k:?}, {t:?})"))
        .collect();
    format!(
        r#"
import socket
def probe(t):
    h, p = t.rsplit(":", 1)
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect((h, int(p)))
        s.sendall(b"hi\n")
        data = s.recv(200).decode().strip()
        return "ok " + data
    except OSError as e:
        return type(e).__name__ + ": " + (e.strerror or str(e))
    finally:
        s.close()
result = {{k: probe(t) for k, t in [{}]}}
"#,
        list.join(", ")
    )
}

/// A listener that answers each connection with the peer's address, on a thread.
fn answering_listener(addr: &str) -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind(addr).expect("bind");
    let a = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let peer = c
                .peer_addr()
                .map(|p| p.ip().to_string())
                .unwrap_or_default();
            let mut c = c;
            let _ = std::io::Write::write_all(&mut c, format!("{peer}\n").as_bytes());
        }
    });
    a
}

#[tokio::test]
async fn functions_have_a_network_of_their_own() {
    let local = answering_listener("127.0.0.1:0");
    let any = answering_listener("0.0.0.0:0");
    // One port of the host's loopback opened to functions on purpose.
    let opened = answering_listener("127.0.0.1:0");
    let s = start_with(&format!("[sandbox]\nhost_ports = [{}]\n", opened.port())).await;
    exec_fn(&s, "net", json!({}), &[]).await;
    let mut targets = vec![
        ("opened", opened.to_string()),
        ("host_loopback", local.to_string()),
        ("metadata", "169.254.169.254:80".to_string()),
    ];
    if let Some(ip) = host_address() {
        targets.push(("host_address", format!("{ip}:{}", any.port())));
    }
    let v = result(&s, "net", &probe_code(&targets)).await;
    assert!(
        v["host_loopback"]
            .as_str()
            .is_some_and(|r| r.starts_with("ConnectionRefusedError")),
        "a host-only loopback service was reachable: {v}"
    );
    assert_eq!(v["opened"], "ok 127.0.0.1", "{v}");
    for k in ["metadata", "host_address"] {
        if let Some(r) = v.get(k) {
            let r = r.as_str().unwrap_or_default();
            assert!(
                r.starts_with("PermissionError"),
                "{k} must be refused at once: {v}"
            );
        }
    }
    // The environment sees its own sockets only, and what it listens on stays inside.
    let inside = result(
        &s,
        "net",
        r#"
import os, socket
global keep
keep = socket.socket()
keep.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
keep.bind(("0.0.0.0", 0))
keep.listen(1)
ports = set()
for line in open("/proc/net/tcp").read().splitlines()[1:]:
    f = line.split()
    if f[3] == "0A":
        ports.add(int(f[1].split(":")[1], 16))
result = {"listening": sorted(ports), "mine": keep.getsockname()[1],
          "runtime_api": os.environ["AWS_LAMBDA_RUNTIME_API"],
          "endpoint": os.environ["AWS_ENDPOINT_URL"],
          "interfaces": sorted(os.listdir("/sys/class/net")) if os.path.isdir("/sys/class/net") else None}
"#,
    )
    .await;
    assert_eq!(inside["runtime_api"], "127.0.0.1:9001", "{inside}");
    let api_port: u16 = s
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the server's port");
    assert_eq!(
        inside["endpoint"],
        format!("http://127.0.0.1:{api_port}"),
        "{inside}"
    );
    let mine = inside["mine"].as_u64().expect("the function's port") as u16;
    let listening: Vec<u64> = inside["listening"]
        .as_array()
        .expect("listening ports")
        .iter()
        .filter_map(|p| p.as_u64())
        .collect();
    assert!(
        !listening.contains(&u64::from(local.port()))
            && !listening.contains(&u64::from(any.port())),
        "the host's sockets are visible: {inside}"
    );
    let mut expected = vec![
        9001,
        u64::from(api_port),
        u64::from(opened.port()),
        u64::from(mine),
    ];
    expected.sort();
    assert_eq!(listening, expected, "{inside}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", mine)).is_err(),
        "a function's listener is reachable from the host"
    );
    // The Nimbus API is reachable from inside.
    let listed = result(
        &s,
        "net",
        r#"
import os, urllib.request, json
with urllib.request.urlopen(os.environ["AWS_ENDPOINT_URL"] + "/2015-03-31/functions/", timeout=5) as r:
    result = sorted(f["FunctionName"] for f in json.load(r)["Functions"])
"#,
    )
    .await;
    assert_eq!(listed, json!(["healthy", "net"]));
    still_serving(&s).await;
}

/// A stand-in for the internet: a network namespace behind a veth pair on the host, at a
/// public address (203.0.113.1, TEST-NET-3) and a private one (10.99.0.1), with a server that
/// answers each connection with the peer's address.
struct FakeInternet {
    ns: String,
    link: String,
    server: std::process::Child,
}

impl FakeInternet {
    fn create() -> Result<FakeInternet, String> {
        let id = std::process::id() % 100_000;
        let ns = format!("nbt-inet-{id}");
        let link = format!("nbtinet{id}");
        let ip = |args: &[&str]| -> Result<(), String> {
            let out = std::process::Command::new("ip")
                .args(args)
                .output()
                .map_err(|e| format!("ip: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "ip {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        };
        let _ = ip(&["netns", "del", &ns]);
        let _ = ip(&["link", "del", &link]);
        ip(&["netns", "add", &ns])?;
        let setup = (|| {
            ip(&[
                "link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            ip(&["addr", "add", "203.0.113.2/24", "dev", &link])?;
            ip(&["link", "set", &link, "up"])?;
            ip(&["route", "add", "10.99.0.1/32", "via", "203.0.113.1"])?;
            ip(&["-n", &ns, "addr", "add", "203.0.113.1/24", "dev", "eth0"])?;
            ip(&["-n", &ns, "addr", "add", "10.99.0.1/32", "dev", "lo"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&["-n", &ns, "route", "add", "default", "via", "203.0.113.2"])
        })();
        if let Err(e) = setup {
            let _ = ip(&["link", "del", &link]);
            let _ = ip(&["netns", "del", &ns]);
            return Err(e);
        }
        let server = std::process::Command::new("ip")
            .args(["netns", "exec", &ns, "python3", "-c"])
            .arg(
                "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('0.0.0.0',8080))\ns.listen(16)\nprint('ready',flush=True)\nwhile True:\n  c,a=s.accept()\n  c.sendall((a[0]+'\\n').encode())\n  c.close()\n",
            )
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting the server: {e}"))?;
        let mut me = FakeInternet { ns, link, server };
        let mut line = String::new();
        let stdout = me.server.stdout.take().ok_or("no stdout")?;
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
            .map_err(|e| format!("waiting for the server: {e}"))?;
        Ok(me)
    }
}

impl Drop for FakeInternet {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = std::process::Command::new("ip")
            .args(["route", "del", "10.99.0.1/32"])
            .output();
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.link])
            .output();
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.ns])
            .output();
    }
}

/// The host-side interface prefix the server reports (`veth nmb<k>-*`).
async fn veth_prefix(s: &Server) -> Option<String> {
    let (_, st, _) = s.get("/_nimbus/status").await;
    let text = st.to_string();
    let at = text.find("veth nmb")? + 5;
    let rest = &text[at..];
    Some(rest[..rest.find('*')?].to_string())
}

fn host_links() -> String {
    std::process::Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn outbound_traffic_reaches_public_addresses_only() {
    let test = "sandbox::outbound_traffic_reaches_public_addresses_only";
    let internet = match FakeInternet::create() {
        Ok(i) => i,
        Err(why) => return skip(test, &format!("cannot build a test network: {why}")),
    };
    let targets = [
        ("public", "203.0.113.1:8080".to_string()),
        ("private", "10.99.0.1:8080".to_string()),
    ];
    let mut s = start().await;
    let (_, st, _) = s.get("/_nimbus/status").await;
    if !st.to_string().contains("outbound through the host") {
        return skip(test, &format!("no outbound networking on this host: {st}"));
    }
    exec_fn(&s, "out", json!({}), &[]).await;
    let v = result(&s, "out", &probe_code(&targets)).await;
    // Masqueraded: the far end sees the host's address.
    assert_eq!(v["public"], "ok 203.0.113.2", "{v}");
    assert!(
        v["private"]
            .as_str()
            .is_some_and(|r| r.starts_with("PermissionError")),
        "a private address was reachable: {v}"
    );
    let prefix = veth_prefix(&s).await.expect("the veth prefix");
    assert!(host_links().contains(&prefix), "no veth {prefix}*");
    s.stop();
    assert!(
        !host_links().contains(&prefix),
        "veth pairs left after the server stopped: {}",
        host_links()
    );
    let tables = std::process::Command::new("nft")
        .args(["list", "tables"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let table = format!(
        "nimbus-{}",
        prefix.trim_start_matches("nmb").trim_end_matches('-')
    );
    assert!(
        !tables.lines().any(|l| l.ends_with(&format!(" {table}"))),
        "{table} left after the server stopped: {tables}"
    );

    // Allowed destinations punch a hole in the private ranges.
    let s = start_with("[sandbox]\nnetwork_allow = [\"10.99.0.1\"]\n").await;
    exec_fn(&s, "out", json!({}), &[]).await;
    let v = result(&s, "out", &probe_code(&targets)).await;
    assert_eq!(v["private"], "ok 203.0.113.2", "{v}");
    drop(s);

    // Loopback only: nothing leaves, the Nimbus API still answers.
    let s = start_with("[sandbox]\nnetwork = \"loopback\"\n").await;
    exec_fn(&s, "out", json!({}), &[]).await;
    let v = result(&s, "out", &probe_code(&targets)).await;
    assert!(
        v["public"]
            .as_str()
            .is_some_and(|r| r.starts_with("OSError: Network is unreachable")),
        "{v}"
    );
    still_serving(&s).await;
    drop(internet);
}

#[tokio::test]
async fn environments_cannot_reach_each_other() {
    // Even with private ranges allowed, one environment never reaches another.
    let s = start_with("[sandbox]\nblock_private_networks = false\n").await;
    let (_, st, _) = s.get("/_nimbus/status").await;
    if !st.to_string().contains("outbound through the host") {
        return skip(
            "sandbox::environments_cannot_reach_each_other",
            &format!("no outbound networking on this host: {st}"),
        );
    }
    exec_fn(&s, "listener", json!({}), &[]).await;
    exec_fn(&s, "prober", json!({}), &[]).await;
    let at = result(
        &s,
        "listener",
        r#"
import socket, threading
global keep
keep = socket.socket()
keep.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
keep.bind(("0.0.0.0", 0))
keep.listen(4)
def serve():
    while True:
        c, _ = keep.accept()
        c.sendall(b"inside\n")
        c.close()
threading.Thread(target=serve, daemon=True).start()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.connect(("203.0.113.1", 9))
result = "%s:%d" % (u.getsockname()[0], keep.getsockname()[1])
"#,
    )
    .await;
    let at = at.as_str().expect("address").to_string();
    assert!(
        at.starts_with("100."),
        "an address of the pairs' subnet: {at}"
    );
    // The listener answers on its own address from inside its namespace.
    let own = result(&s, "listener", &probe_code(&[("self", at.clone())])).await;
    assert_eq!(own["self"], "ok inside", "{own}");
    let v = result(&s, "prober", &probe_code(&[("other", at.clone())])).await;
    assert!(
        v["other"].as_str().is_some_and(|r| !r.starts_with("ok")),
        "one environment reached another at {at}: {v}"
    );
    still_serving(&s).await;
}

#[tokio::test]
async fn servers_on_one_host_take_network_slots_of_their_own() {
    let a = start_with("[sandbox]\nuid_base = 1000000\n").await;
    let b = start_with("[sandbox]\nuid_base = 2000000\n").await;
    let (pa, pb) = (veth_prefix(&a).await, veth_prefix(&b).await);
    let (Some(pa), Some(pb)) = (pa, pb) else {
        return skip(
            "sandbox::servers_on_one_host_take_network_slots_of_their_own",
            "no outbound networking on this host",
        );
    };
    assert_ne!(pa, pb, "two servers share interface names and a table");
    // Both serve functions with a network each.
    exec_fn(&a, "one", json!({}), &[]).await;
    exec_fn(&b, "two", json!({}), &[]).await;
    assert_eq!(result(&a, "one", "result = 1").await, 1);
    assert_eq!(result(&b, "two", "result = 2").await, 2);
}
