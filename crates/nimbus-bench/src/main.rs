//! `nimbus-bench`: measures Nimbus on this machine and prints a Markdown report.
//!
//! `nimbus-bench run --nimbus target/release/nimbus --noop target/release/noop-bootstrap` starts two
//! Nimbus servers (sandbox and plain-process launchers) and a bare HTTP server (the loopback
//! ceiling) as separate processes, then runs: warm invoke latency and throughput at 1, 16 and 64
//! keep-alive clients, cold starts per runtime under both launchers, the environment creation
//! rate, and the memory held by 1,000 idle sandboxed environments (`--only` picks sections). `nimbus-bench ceiling` is the bare server. All runs are bounded in time and count.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;

struct Stats {
    requests: usize,
    errors: usize,
    rps: f64,
    p50_us: u64,
    p99_us: u64,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> anyhow::Result<Sender> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}

async fn request(
    send: &mut Sender,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<(u16, hyper::HeaderMap, Bytes)> {
    send.ready().await?;
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Full::new(Bytes::copy_from_slice(body)))?;
    let resp = send.send_request(req).await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, headers, body))
}

async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> anyhow::Result<(u16, Bytes)> {
    let mut s = connect(addr).await?;
    let (st, _, b) = request(&mut s, method, path, &[], body).await?;
    Ok((st, b))
}

/// A `provided` runtime that reports, per event, how long after `sent` (a Python expression
/// over the event `body`, in ns since the epoch) it got the event, to a collector on `port`.
fn latency_reporter(port: u16, sent: &str) -> String {
    format!(
        "#!/usr/bin/python3\nimport http.client, json, os, socket, time\nhost, port = os.environ['AWS_LAMBDA_RUNTIME_API'].split(':')\nconn = http.client.HTTPConnection(host, int(port))\nwhile True:\n    conn.request('GET', '/2018-06-01/runtime/invocation/next')\n    r = conn.getresponse()\n    body = r.read()\n    got = time.time_ns()\n    rid = r.getheader('Lambda-Runtime-Aws-Request-Id')\n    sent = {sent}\n    with socket.create_connection(('127.0.0.1', {port})) as c:\n        c.sendall(b'%d\\n' % (got - sent))\n    conn.request('POST', '/2018-06-01/runtime/invocation/%s/response' % rid, 'null')\n    conn.getresponse().read()\n"
    )
}

/// One SQS JSON-protocol call that must succeed.
async fn sqs_call(conn: &mut Sender, op: &str, body: String) -> anyhow::Result<serde_json::Value> {
    let target = format!("AmazonSQS.{op}");
    let (st, _, b) = request(
        conn,
        "POST",
        "/",
        &[
            ("X-Amz-Target", target.as_str()),
            ("Content-Type", "application/x-amz-json-1.0"),
        ],
        body.as_bytes(),
    )
    .await?;
    anyhow::ensure!(st == 200, "{op}: {st} {}", String::from_utf8_lossy(&b));
    Ok(serde_json::from_slice(&b)?)
}

/// `clients` keep-alive connections send `path` back to back for `dur`.
async fn load(
    addr: SocketAddr,
    path: &str,
    clients: usize,
    dur: Duration,
) -> anyhow::Result<Stats> {
    let start = Instant::now();
    let deadline = start + dur;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let path = path.to_string();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(100_000);
            let mut errors = 0;
            let mut s = match connect(addr).await {
                Ok(s) => s,
                Err(_) => return (lat, 1),
            };
            while Instant::now() < deadline {
                let t = Instant::now();
                match request(&mut s, "POST", &path, &[], b"{}").await {
                    Ok((200, h, _)) if !h.contains_key("x-amz-function-error") => {
                        lat.push(t.elapsed().as_micros() as u64)
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        all.extend(l);
        errors += e;
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort_unstable();
    Ok(Stats {
        requests: all.len(),
        errors,
        rps: all.len() as f64 / secs,
        p50_us: percentile(&all, 0.5),
        p99_us: percentile(&all, 0.99),
    })
}

fn spawn_ready(mut cmd: Command, prefix: &str) -> anyhow::Result<(Child, SocketAddr)> {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?;
    let out = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line)?;
    let url = line
        .trim()
        .strip_prefix(prefix)
        .ok_or_else(|| anyhow!("unexpected line {line:?}"))?;
    let addr: SocketAddr = url.trim_start_matches("http://").parse()?;
    Ok((child, addr))
}

fn zip_of(files: &[(&str, Vec<u8>, u32)]) -> anyhow::Result<Vec<u8>> {
    use std::io::Write;
    use zip::write::SimpleFileOptions;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data, mode) in files {
        w.start_file(*name, SimpleFileOptions::default().unix_permissions(*mode))?;
        w.write_all(data)?;
    }
    Ok(w.finish()?.into_inner())
}

async fn create(
    addr: SocketAddr,
    name: &str,
    runtime: &str,
    handler: &str,
    zip: &[u8],
    env: serde_json::Value,
) -> anyhow::Result<()> {
    use base64::Engine;
    let body = serde_json::json!({
        "FunctionName": name, "Runtime": runtime, "Handler": handler,
        "Role": "arn:aws:iam::000000000000:role/bench", "MemorySize": 128, "Timeout": 30,
        "Code": {"ZipFile": base64::engine::general_purpose::STANDARD.encode(zip)},
        "Environment": {"Variables": env},
    });
    let (st, b) = call(
        addr,
        "POST",
        "/2015-03-31/functions",
        body.to_string().as_bytes(),
    )
    .await?;
    anyhow::ensure!(
        st == 201,
        "create {name}: {st} {}",
        String::from_utf8_lossy(&b)
    );
    // Wait until Active.
    for _ in 0..200 {
        let (_, b) = call(
            addr,
            "GET",
            &format!("/2015-03-31/functions/{name}/configuration"),
            b"",
        )
        .await?;
        let v: serde_json::Value = serde_json::from_slice(&b)?;
        if v["State"] == "Active" {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(anyhow!("{name} never became Active"))
}

/// Memory of a process: (RSS, PSS) in KiB, from `smaps_rollup`.
fn mem_kb(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("Rss:"), field("Pss:"))
}

/// Every descendant of `root`, by parent links in /proc.
fn descendants(root: u32) -> Vec<(u32, u32)> {
    let mut parent_of: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let after = stat.rsplit(") ").next().unwrap_or("");
            if let Some(ppid) = after.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut out: Vec<(u32, u32)> = Vec::new();
    let mut frontier = vec![(root, 0u32)];
    while let Some((p, depth)) = frontier.pop() {
        for (c, pp) in &parent_of {
            if *pp == p {
                out.push((*c, depth + 1));
                frontier.push((*c, depth + 1));
            }
        }
    }
    out
}

fn mem_available_kb() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

struct Servers {
    sandbox: (Child, SocketAddr),
    plain: (Child, SocketAddr),
    extra: Vec<Child>,
    dirs: Vec<std::path::PathBuf>,
}

fn start_server(
    nimbus: &str,
    launcher: &str,
    tag: &str,
    config: &str,
) -> anyhow::Result<((Child, SocketAddr), std::path::PathBuf)> {
    let data = std::env::temp_dir().join(format!(
        "nimbus-bench-{}-{launcher}{tag}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data)?;
    std::fs::write(data.join("nimbus.toml"), config)?;
    let mut cmd = Command::new(nimbus);
    cmd.args([
        "server",
        "--listen",
        "127.0.0.1:0",
        "--launcher",
        launcher,
        "--data-dir",
    ])
    .arg(&data)
    .env("NIMBUS_LOG", "error");
    Ok((spawn_ready(cmd, "Nimbus listening on ")?, data))
}

/// Sequential cold starts: a new function each time, time to the first response.
async fn cold_starts(
    addr: SocketAddr,
    tag: &str,
    runtime: &str,
    handler: &str,
    zip: &[u8],
    n: usize,
) -> anyhow::Result<Vec<u64>> {
    let mut lat = Vec::new();
    for j in 0..n {
        let name = format!("cold-{tag}-{j}");
        if create(addr, &name, runtime, handler, zip, serde_json::json!({}))
            .await
            .is_err()
        {
            break;
        }
        let t = Instant::now();
        let mut conn = connect(addr).await?;
        let (st, h, _) = request(
            &mut conn,
            "POST",
            &format!("/2015-03-31/functions/{name}/invocations"),
            &[],
            b"{}",
        )
        .await?;
        if st == 200 && !h.contains_key("x-amz-function-error") {
            lat.push(t.elapsed().as_micros() as u64);
        }
    }
    lat.sort_unstable();
    Ok(lat)
}

/// `k` concurrent invocations of a function that sleeps `sleep_ms`: each needs its own new
/// environment, so all `k` were created within (slowest response − sleep).
async fn burst(
    addr: SocketAddr,
    name: &str,
    k: usize,
    sleep_ms: u64,
) -> anyhow::Result<(usize, Duration)> {
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..k {
        let path = format!("/2015-03-31/functions/{name}/invocations");
        tasks.push(tokio::spawn(async move {
            call(addr, "POST", &path, b"{}").await.map(|r| r.0)
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if let Ok(Ok(200)) = t.await {
            ok += 1;
        }
    }
    Ok((
        ok,
        t.elapsed().saturating_sub(Duration::from_millis(sleep_ms)),
    ))
}

async fn run(
    nimbus: &str,
    noop: &str,
    secs: u64,
    only: &str,
    sls: Option<&str>,
) -> anyhow::Result<()> {
    let want = |s: &str| only.is_empty() || only.split(',').any(|o| o == s);
    let dur = Duration::from_secs(secs);
    // The async latency handler reports to a collector on the host's loopback, opened to
    // sandboxed functions for it.
    let collector = std::net::TcpListener::bind("127.0.0.1:0")?;
    let collector_port = collector.local_addr()?.port();
    let opened = format!("[sandbox]\nhost_ports = [{collector_port}]\n");
    let (sandbox, d1) = start_server(nimbus, "sandbox", "", &opened)?;
    let (plain, d2) = start_server(nimbus, "process", "", "")?;
    let mut servers = Servers {
        sandbox,
        plain,
        extra: Vec::new(),
        dirs: vec![d1, d2],
    };
    let addr = servers.sandbox.1;
    let paddr = servers.plain.1;
    let mut ccmd = Command::new(std::env::current_exe()?);
    ccmd.arg("ceiling");
    let (mut ceiling, caddr) = spawn_ready(ccmd, "ceiling listening on ")?;

    let result = async {
        let noop_bin = std::fs::read(noop).with_context(|| format!("reading {noop}"))?;
        let provided = zip_of(&[("bootstrap", noop_bin.clone(), 0o755)])?;
        let py = zip_of(&[("lambda_function.py", b"def lambda_handler(event, context):\n    return {}\n".to_vec(), 0o644)])?;
        let node = zip_of(&[("index.js", b"exports.handler = async () => ({});\n".to_vec(), 0o644)])?;

        if want("warm") {
            for a in [addr, paddr] {
                create(a, "noop-provided", "provided.al2023", "noop", &provided, serde_json::json!({})).await?;
            }
            let have_py = create(addr, "noop-python", "python3.11", "lambda_function.lambda_handler", &py, serde_json::json!({})).await.is_ok();
            println!("## Warm invoke: latency and throughput ({secs} s per cell, keep-alive clients, loopback)\n");
            println!("| target | clients | requests | errors | invocations/s | p50 ms | p99 ms |");
            println!("| --- | --- | --- | --- | --- | --- | --- |");
            let mut targets = vec![
                ("bare HTTP server (loopback ceiling)", caddr, "/".to_string()),
                ("no-op provided, sandbox", addr, "/2015-03-31/functions/noop-provided/invocations".to_string()),
                ("no-op provided, plain process", paddr, "/2015-03-31/functions/noop-provided/invocations".to_string()),
            ];
            if have_py {
                targets.push(("no-op python3.11, sandbox", addr, "/2015-03-31/functions/noop-python/invocations".to_string()));
            }
            for (label, a, path) in &targets {
                // Warm up: enough environments for 64 clients.
                let _ = load(*a, path, 64, Duration::from_millis(500)).await?;
                for clients in [1usize, 16, 64] {
                    let s = load(*a, path, clients, dur).await?;
                    println!("| {label} | {clients} | {} | {} | {:.0} | {} | {} |", s.requests, s.errors, s.rps, ms(s.p50_us), ms(s.p99_us));
                }
            }
            println!();
        }

        if want("cold") {
            println!("## Cold start to first response (a new function each time, sequential; same run, both launchers)\n");
            println!("| runtime | plain p50 ms | plain p99 ms | sandbox p50 ms | sandbox p99 ms | sandbox max ms | samples |");
            println!("| --- | --- | --- | --- | --- | --- | --- |");
            let mut cases: Vec<(&str, &str, &str, Vec<u8>)> = vec![("provided.al2023 (Rust no-op)", "provided.al2023", "noop", provided.clone())];
            for v in ["python3.9", "python3.10", "python3.11", "python3.12", "python3.13"] {
                cases.push((v, v, "lambda_function.lambda_handler", py.clone()));
            }
            for v in ["nodejs18.x", "nodejs20.x", "nodejs22.x"] {
                cases.push((v, v, "index.handler", node.clone()));
            }
            for (i, (label, runtime, handler, zip)) in cases.iter().enumerate() {
                let n = 15;
                let p = cold_starts(paddr, &format!("{i}"), runtime, handler, zip, n).await?;
                let s = cold_starts(addr, &format!("{i}"), runtime, handler, zip, n).await?;
                if s.is_empty() || p.is_empty() {
                    println!("| {label} | runtime not available on this host | | | | | |");
                    continue;
                }
                println!("| {label} | {} | {} | {} | {} | {} | {} + {} |",
                    ms(percentile(&p, 0.5)), ms(percentile(&p, 0.99)),
                    ms(percentile(&s, 0.5)), ms(percentile(&s, 0.99)), ms(*s.last().unwrap_or(&0)), p.len(), s.len());
            }
            println!();
        }

        if want("network") {
            println!("## Sandboxed cold start and environment creation by network mode (same run)\n");
            println!("Each mode on a server of its own: `isolated` (the default: a network namespace, a veth pair, NAT), `loopback` (a namespace without outbound access), `host` (the host's network, shared).\n");
            println!("| network | cold p50 ms | cold p99 ms | samples | 200 concurrent cold starts within | environments/s | warm 1 client p50 ms | warm 16 clients invocations/s |");
            println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
            let mut modes = vec![("isolated", addr)];
            for mode in ["loopback", "host"] {
                let ((child, a), dir) = start_server(nimbus, "sandbox", &format!("-{mode}"), &format!("[sandbox]\nnetwork = \"{mode}\"\n"))?;
                servers.dirs.push(dir);
                servers.extra.push(child);
                modes.push((mode, a));
            }
            for (mode, a) in modes {
                let lat = cold_starts(a, &format!("net-{mode}"), "provided.al2023", "noop", &provided, 30).await?;
                create(a, "net-burst", "provided.al2023", "noop", &provided, serde_json::json!({"NOOP_SLEEP_MS": "500"})).await?;
                let (ok, within) = burst(a, "net-burst", 200, 500).await?;
                create(a, "net-warm", "provided.al2023", "noop", &provided, serde_json::json!({})).await?;
                let path = "/2015-03-31/functions/net-warm/invocations";
                let _ = load(a, path, 16, Duration::from_millis(500)).await?;
                let one = load(a, path, 1, dur).await?;
                let many = load(a, path, 16, dur).await?;
                println!("| {mode} | {} | {} | {} | {ok} in {:.0} ms | {:.0} | {} | {:.0} |", ms(percentile(&lat, 0.5)), ms(percentile(&lat, 0.99)), lat.len(), within.as_secs_f64() * 1000.0, ok as f64 / within.as_secs_f64().max(1e-3), ms(one.p50_us), many.rps);
            }
            println!();
        }

        if want("rate") {
            println!("## Environment creation rate (200 concurrent invocations of a function that sleeps 500 ms)\n");
            println!("| launcher | environments | created within | environments/s |");
            println!("| --- | --- | --- | --- |");
            for (label, a) in [("plain process", paddr), ("sandbox", addr)] {
                create(a, "burst", "provided.al2023", "noop", &provided, serde_json::json!({"NOOP_SLEEP_MS": "500"})).await?;
                let (ok, within) = burst(a, "burst", 200, 500).await?;
                println!("| {label} | {ok} | {:.0} ms | {:.0} |", within.as_secs_f64() * 1000.0, ok as f64 / within.as_secs_f64().max(1e-3));
            }
            println!();
        }

        if want("gateway") {
            println!("## Through the HTTP gateway vs direct Invoke (sandbox launcher, same function, same run)\n");
            create(addr, "gw-noop", "provided.al2023", "noop", &provided, serde_json::json!({})).await?;
            let body = serde_json::json!({"name": "bench", "protocolType": "HTTP", "target": "arn:aws:lambda:us-east-1:000000000000:function:gw-noop"}).to_string();
            let (st, b) = call(addr, "POST", "/v2/apis", body.as_bytes()).await?;
            anyhow::ensure!(st == 201, "create api: {st} {}", String::from_utf8_lossy(&b));
            let api: serde_json::Value = serde_json::from_slice(&b)?;
            let id = api["apiId"].as_str().unwrap_or_default().to_string();
            println!("| path | clients | requests | errors | requests/s | p50 ms | p99 ms |");
            println!("| --- | --- | --- | --- | --- | --- | --- |");
            let paths = [
                ("direct Invoke", "/2015-03-31/functions/gw-noop/invocations".to_string()),
                ("HTTP API (payload 2.0)", format!("/restapis/{id}/$default/_user_request_/items")),
            ];
            for (label, path) in &paths {
                let _ = load(addr, path, 16, Duration::from_millis(500)).await?;
                for clients in [1usize, 16] {
                    let st = load(addr, path, clients, dur).await?;
                    println!("| {label} | {clients} | {} | {} | {:.0} | {} | {} |", st.requests, st.errors, st.rps, ms(st.p50_us), ms(st.p99_us));
                }
            }
            println!();
        }

        if want("serverless-offline") {
            serverless_offline(addr, sls, dur).await?;
        }

        if want("async") {
            println!("## Asynchronous invocation (sandbox launcher)\n");
            // Accept rate: a function that is throttled (reserved concurrency 0) so that nothing is
            // delivered while events are accepted; every 202 follows a committed write.
            create(addr, "async-held", "provided.al2023", "noop", &provided, serde_json::json!({})).await?;
            call(addr, "PUT", "/2017-10-31/functions/async-held/concurrency", br#"{"ReservedConcurrentExecutions": 0}"#).await?;
            let n = 20_000usize;
            let clients = 64usize;
            let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let t = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..clients {
                let next = next.clone();
                tasks.push(tokio::spawn(async move {
                    let mut conn = connect(addr).await?;
                    let mut ok = 0usize;
                    while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                        let (st, _, _) = request(&mut conn, "POST", "/2015-03-31/functions/async-held/invocations", &[("X-Amz-Invocation-Type", "Event")], b"{\"k\":1}").await?;
                        if st == 202 {
                            ok += 1;
                        }
                    }
                    Ok::<usize, anyhow::Error>(ok)
                }));
            }
            let mut accepted = 0;
            for t in tasks {
                accepted += t.await??;
            }
            let secs = t.elapsed().as_secs_f64();
            println!("| measure | value |");
            println!("| --- | --- |");
            println!("| events accepted durably ({clients} keep-alive clients, {n} events) | {accepted} in {secs:.2} s = **{:.0} events/s** |", accepted as f64 / secs);
            call(addr, "DELETE", "/2015-03-31/functions/async-held", b"").await?;

            // Event → handler latency: the handler reports when it got each event.
            collector.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(collector.try_clone()?)?;
            let port = collector_port;
            let script = latency_reporter(port, "json.loads(body)['t']");
            let zip = zip_of(&[("bootstrap", script.into_bytes(), 0o755)])?;
            create(addr, "async-latency", "provided.al2023", "x", &zip, serde_json::json!({})).await?;
            let mut lat = Vec::new();
            let mut conn = connect(addr).await?;
            for i in 0..201 {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
                let body = format!("{{\"t\": {now}}}");
                let (st, _, _) = request(&mut conn, "POST", "/2015-03-31/functions/async-latency/invocations", &[("X-Amz-Invocation-Type", "Event")], body.as_bytes()).await?;
                anyhow::ensure!(st == 202, "async invoke: {st}");
                let (mut sock, _) = tokio::time::timeout(Duration::from_secs(30), listener.accept()).await??;
                let mut line = String::new();
                use tokio::io::AsyncReadExt;
                sock.read_to_string(&mut line).await?;
                let ns: u64 = line.trim().parse()?;
                if i > 0 {
                    // The first event also started the environment.
                    lat.push(ns / 1000);
                }
            }
            lat.sort_unstable();
            println!("| event → handler start, warm environment, one at a time ({} events) | p50 **{} ms**, p99 {} ms |", lat.len(), ms(percentile(&lat, 0.5)), ms(percentile(&lat, 0.99)));
            println!();
        }

        if want("esm") {
            println!("## SQS and SQS → Lambda event source mappings (sandbox launcher, same run)\n");
            let mut c = connect(addr).await?;
            let url = sqs_call(&mut c, "CreateQueue", serde_json::json!({"QueueName": "bench-rates"}).to_string()).await?["QueueUrl"].as_str().unwrap_or_default().to_string();
            // SendMessage rate: 16 keep-alive clients, one message per request.
            let clients = 16usize;
            let t = Instant::now();
            let deadline = t + dur;
            let mut tasks = Vec::new();
            for _ in 0..clients {
                let url = url.clone();
                tasks.push(tokio::spawn(async move {
                    let mut conn = connect(addr).await?;
                    let mut n = 0usize;
                    while Instant::now() < deadline {
                        let body = serde_json::json!({"QueueUrl": url, "MessageBody": "x"}).to_string();
                        let (st, _, _) = request(&mut conn, "POST", "/", &[("X-Amz-Target", "AmazonSQS.SendMessage"), ("Content-Type", "application/x-amz-json-1.0")], body.as_bytes()).await?;
                        if st == 200 { n += 1; }
                    }
                    Ok::<usize, anyhow::Error>(n)
                }));
            }
            let mut sent = 0;
            for t in tasks { sent += t.await??; }
            let send_rate = sent as f64 / t.elapsed().as_secs_f64();
            // Receive (10 at a time) + DeleteMessageBatch until the queue is empty.
            let t = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..clients {
                let url = url.clone();
                tasks.push(tokio::spawn(async move {
                    let mut conn = connect(addr).await?;
                    let mut n = 0usize;
                    loop {
                        let body = serde_json::json!({"QueueUrl": url, "MaxNumberOfMessages": 10}).to_string();
                        let (_, _, b) = request(&mut conn, "POST", "/", &[("X-Amz-Target", "AmazonSQS.ReceiveMessage"), ("Content-Type", "application/x-amz-json-1.0")], body.as_bytes()).await?;
                        let v: serde_json::Value = serde_json::from_slice(&b)?;
                        let msgs = v["Messages"].as_array().cloned().unwrap_or_default();
                        if msgs.is_empty() { break; }
                        let entries: Vec<serde_json::Value> = msgs.iter().enumerate().map(|(i, m)| serde_json::json!({"Id": i.to_string(), "ReceiptHandle": m["ReceiptHandle"]})).collect();
                        let body = serde_json::json!({"QueueUrl": url, "Entries": entries}).to_string();
                        request(&mut conn, "POST", "/", &[("X-Amz-Target", "AmazonSQS.DeleteMessageBatch"), ("Content-Type", "application/x-amz-json-1.0")], body.as_bytes()).await?;
                        n += msgs.len();
                    }
                    Ok::<usize, anyhow::Error>(n)
                }));
            }
            let mut drained = 0;
            for t in tasks { drained += t.await??; }
            let drain_rate = drained as f64 / t.elapsed().as_secs_f64();

            // Through a mapping to the no-op function: 5,000 messages queued while the mapping is
            // disabled, then the time until the queue is empty.
            let n = 5_000usize;
            create(addr, "esm-noop", "provided.al2023", "noop", &provided, serde_json::json!({})).await?;
            let qurl = sqs_call(&mut c, "CreateQueue", serde_json::json!({"QueueName": "bench-esm"}).to_string()).await?["QueueUrl"].as_str().unwrap_or_default().to_string();
            let (st, b) = call(addr, "POST", "/2015-03-31/event-source-mappings/", serde_json::json!({"FunctionName": "esm-noop", "EventSourceArn": "arn:aws:sqs:us-east-1:000000000000:bench-esm", "BatchSize": 10, "Enabled": false}).to_string().as_bytes()).await?;
            anyhow::ensure!(st == 202, "create mapping: {st} {}", String::from_utf8_lossy(&b));
            let uuid = serde_json::from_slice::<serde_json::Value>(&b)?["UUID"].as_str().unwrap_or_default().to_string();
            for chunk in 0..n / 10 {
                let entries: Vec<serde_json::Value> = (0..10).map(|i| serde_json::json!({"Id": i.to_string(), "MessageBody": format!("m{}", chunk * 10 + i)})).collect();
                sqs_call(&mut c, "SendMessageBatch", serde_json::json!({"QueueUrl": qurl, "Entries": entries}).to_string()).await?;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let t = Instant::now();
            let (st, _) = call(addr, "PUT", &format!("/2015-03-31/event-source-mappings/{uuid}"), br#"{"Enabled": true}"#).await?;
            anyhow::ensure!(st == 202, "enable mapping: {st}");
            let left = |v: &serde_json::Value| -> u64 {
                let a = &v["Attributes"];
                let n = |k: &str| a[k].as_str().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
                n("ApproximateNumberOfMessages") + n("ApproximateNumberOfMessagesNotVisible")
            };
            loop {
                let v = sqs_call(&mut c, "GetQueueAttributes", serde_json::json!({"QueueUrl": qurl, "AttributeNames": ["All"]}).to_string()).await?;
                if left(&v) == 0 || t.elapsed() > Duration::from_secs(120) { break; }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let esm_rate = n as f64 / t.elapsed().as_secs_f64();
            call(addr, "DELETE", &format!("/2015-03-31/event-source-mappings/{uuid}"), b"").await?;

            // Message → handler latency, one at a time through a BatchSize 1 mapping.
            collector.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(collector.try_clone()?)?;
            let script = latency_reporter(collector_port, "int(json.loads(body)['Records'][0]['body'])");
            let zip = zip_of(&[("bootstrap", script.into_bytes(), 0o755)])?;
            create(addr, "esm-latency", "provided.al2023", "x", &zip, serde_json::json!({})).await?;
            let lurl = sqs_call(&mut c, "CreateQueue", serde_json::json!({"QueueName": "bench-esm-latency"}).to_string()).await?["QueueUrl"].as_str().unwrap_or_default().to_string();
            let (st, _) = call(addr, "POST", "/2015-03-31/event-source-mappings/", serde_json::json!({"FunctionName": "esm-latency", "EventSourceArn": "arn:aws:sqs:us-east-1:000000000000:bench-esm-latency", "BatchSize": 1}).to_string().as_bytes()).await?;
            anyhow::ensure!(st == 202, "create latency mapping: {st}");
            tokio::time::sleep(Duration::from_millis(500)).await;
            let mut lat = Vec::new();
            for i in 0..201 {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
                sqs_call(&mut c, "SendMessage", serde_json::json!({"QueueUrl": lurl, "MessageBody": now.to_string()}).to_string()).await?;
                let (mut sock, _) = tokio::time::timeout(Duration::from_secs(30), listener.accept()).await??;
                let mut line = String::new();
                use tokio::io::AsyncReadExt;
                sock.read_to_string(&mut line).await?;
                let ns: u64 = line.trim().parse()?;
                if i > 0 {
                    lat.push(ns / 1000);
                }
            }
            lat.sort_unstable();
            println!("| measure | value |");
            println!("| --- | --- |");
            println!("| SendMessage, {clients} keep-alive clients, {secs} s | {sent} messages = **{send_rate:.0} messages/s** |");
            println!("| ReceiveMessage (10) + DeleteMessageBatch, {clients} clients, until empty | {drained} messages = **{drain_rate:.0} messages/s** |");
            println!("| through a mapping to the no-op `provided` function (BatchSize 10, 5 pollers): {n} queued messages drained | **{esm_rate:.0} messages/s** |");
            println!("| message → handler start, BatchSize 1, warm, one at a time ({} messages) | p50 **{} ms**, p99 {} ms |", lat.len(), ms(percentile(&lat, 0.5)), ms(percentile(&lat, 0.99)));
            println!();
        }

        if want("idle") {
            let k = 1000;
            println!("## {k} idle environments (sandbox launcher, a fresh server)\n");
            // A server of its own, so nothing from the sections above is counted.
            let ((idle_child, addr), dir) = start_server(nimbus, "sandbox", "-idle", "")?;
            servers.dirs.push(dir);
            servers.extra.push(idle_child);
            create(addr, "idle-mem", "provided.al2023", "noop", &provided, serde_json::json!({"NOOP_SLEEP_MS": "3000"})).await?;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let server_pid = servers.extra.last().map(Child::id).unwrap_or(0);
            let before_server = mem_kb(server_pid);
            let before_avail = mem_available_kb();
            let (ok, within) = burst(addr, "idle-mem", k, 3000).await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let after_server = mem_kb(server_pid);
            let after_avail = mem_available_kb();
            let procs = descendants(server_pid);
            let (mut inits, mut init_rss, mut init_pss, mut rt, mut rt_rss, mut rt_pss) = (0u64, 0, 0, 0u64, 0, 0);
            for (pid, depth) in &procs {
                let (r, p) = mem_kb(*pid);
                if *depth == 1 { inits += 1; init_rss += r; init_pss += p; } else { rt += 1; rt_rss += r; rt_pss += p; }
            }
            let (_, st) = call(addr, "GET", "/_nimbus/status", b"").await?;
            let st: serde_json::Value = serde_json::from_slice(&st)?;
            let envs = st["environments"].as_u64().unwrap_or(0);
            println!("{k} concurrent invocations of a function that sleeps 3 s: {ok} succeeded; environments created within {:.2} s; {envs} environments alive afterwards ({inits} init processes, {rt} runtime processes).\n", within.as_secs_f64());
            println!("| measure | total | per environment |");
            println!("| --- | --- | --- |");
            let per = |kb: u64| if envs > 0 { format!("{:.1} KiB", kb as f64 / envs as f64) } else { "-".into() };
            let mib = |kb: u64| format!("{:.1} MiB", kb as f64 / 1024.0);
            let ds = after_server.0.saturating_sub(before_server.0);
            println!("| Nimbus server RSS growth | {} | {} |", mib(ds), per(ds));
            println!("| sandbox init processes (PSS) | {} | {} |", mib(init_pss), per(init_pss));
            println!("| sandbox init processes (RSS, shared pages counted in each) | {} | {} |", mib(init_rss), per(init_rss));
            println!("| platform overhead = server growth + init PSS | {} | {} |", mib(ds + init_pss), per(ds + init_pss));
            println!("| runtime processes (PSS; the no-op bootstrap itself) | {} | {} |", mib(rt_pss), per(rt_pss));
            println!("| runtime processes (RSS) | {} | {} |", mib(rt_rss), per(rt_rss));
            let dm = before_avail.saturating_sub(after_avail);
            println!("| host MemAvailable drop (everything: processes, page tables, cgroups, namespaces, mounts) | {} | {} |", mib(dm), per(dm));
            println!("| Nimbus server RSS total | {} | |", mib(after_server.0));
        }
        Ok::<(), anyhow::Error>(())
    }
    .await;
    for child in [&mut servers.sandbox.0, &mut servers.plain.0]
        .into_iter()
        .chain(servers.extra.iter_mut())
    {
        unsafe_term(child);
        let _ = child.wait();
    }
    for d in &servers.dirs {
        let _ = std::fs::remove_dir_all(d);
    }
    let _ = ceiling.kill();
    let _ = ceiling.wait();
    result
}

/// The same Node.js no-op handler behind Nimbus's HTTP API gateway and behind serverless-offline's
/// HTTP emulation (`sls` is a directory whose `node_modules` holds serverless 3 and
/// serverless-offline, as `scripts/bench-serverless-offline` installs them).
async fn serverless_offline(
    addr: SocketAddr,
    sls: Option<&str>,
    dur: Duration,
) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    println!(
        "## Through the HTTP gateway: Nimbus vs serverless-offline (same Node.js handler, same run)\n"
    );
    let Some(sls) = sls else {
        println!(
            "Skipped: run `scripts/bench-serverless-offline` (it installs serverless 3 and serverless-offline from npm).\n"
        );
        return Ok(());
    };
    let handler = b"exports.handler = async () => ({ statusCode: 200, body: 'ok' });\n";
    // Nimbus: an HTTP API (quick create) in front of a nodejs20.x function.
    let zip = zip_of(&[("index.js", handler.to_vec(), 0o644)])?;
    create(
        addr,
        "sls-noop",
        "nodejs20.x",
        "index.handler",
        &zip,
        serde_json::json!({}),
    )
    .await?;
    let body = serde_json::json!({"name": "sls", "protocolType": "HTTP", "target": "arn:aws:lambda:us-east-1:000000000000:function:sls-noop"}).to_string();
    let (st, b) = call(addr, "POST", "/v2/apis", body.as_bytes()).await?;
    anyhow::ensure!(
        st == 201,
        "create api: {st} {}",
        String::from_utf8_lossy(&b)
    );
    let api: serde_json::Value = serde_json::from_slice(&b)?;
    let id = api["apiId"].as_str().unwrap_or_default().to_string();

    // serverless-offline: a service with the same handler on an `httpApi` event for any method.
    let dir = std::env::temp_dir().join(format!("nimbus-bench-sls-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("handler.js"), handler)?;
    std::fs::write(
        dir.join("serverless.yml"),
        "service: slsbench\nframeworkVersion: '3'\nprovider:\n  name: aws\n  runtime: nodejs20.x\nplugins:\n  - serverless-offline\nfunctions:\n  noop:\n    handler: handler.handler\n    events:\n      - httpApi:\n          path: /noop\n          method: '*'\n",
    )?;
    // Absolute: serverless runs in the service directory.
    let modules = std::fs::canonicalize(std::path::Path::new(sls).join("node_modules"))
        .with_context(|| format!("{sls}/node_modules (run scripts/bench-serverless-offline)"))?;
    let _ = std::fs::remove_file(dir.join("node_modules"));
    std::os::unix::fs::symlink(&modules, dir.join("node_modules"))?;
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
    };
    let (http_port, lambda_port) = (free_port()?, free_port()?);
    let mut child = Command::new("node")
        .arg(modules.join("serverless/bin/serverless.js"))
        .args([
            "offline",
            "start",
            "--host",
            "127.0.0.1",
            "--httpPort",
            &http_port.to_string(),
            "--lambdaPort",
            &lambda_port.to_string(),
        ])
        .current_dir(&dir)
        // serverless 3 loads plugins with require(); Node 20.19+ would load ESM through it.
        .env("NODE_OPTIONS", "--no-experimental-require-module")
        .env("SLS_TELEMETRY_DISABLED", "1")
        .env("SLS_NOTIFICATIONS_MODE", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .context("starting serverless-offline (node)")?;
    let pgid = child.id();
    let sls_addr: SocketAddr = format!("127.0.0.1:{http_port}").parse()?;
    let result = async {
        let mut ready = false;
        for _ in 0..300 {
            if let Ok((200, _)) = call(sls_addr, "POST", "/noop", b"{}").await {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::ensure!(
            ready,
            "serverless-offline did not answer on {sls_addr} within 30 s"
        );
        println!("| gateway | clients | requests | errors | requests/s | p50 ms | p99 ms |");
        println!("| --- | --- | --- | --- | --- | --- | --- |");
        let targets = [
            (
                "Nimbus HTTP API (sandbox launcher)",
                addr,
                format!("/restapis/{id}/$default/_user_request_/noop"),
            ),
            (
                "serverless-offline 13 (serverless 3)",
                sls_addr,
                "/noop".to_string(),
            ),
        ];
        for (label, a, path) in &targets {
            let _ = load(*a, path, 16, Duration::from_millis(500)).await?;
            for clients in [1usize, 16] {
                let st = load(*a, path, clients, dur).await?;
                println!(
                    "| {label} | {clients} | {} | {} | {:.0} | {} | {} |",
                    st.requests,
                    st.errors,
                    st.rps,
                    ms(st.p50_us),
                    ms(st.p99_us)
                );
            }
        }
        println!();
        Ok(())
    }
    .await;
    // serverless-offline does not always stop on SIGTERM: give it 3 s, then SIGKILL the group.
    let signal = |sig: &str| {
        // `--`: util-linux's kill would read `-<pgid>` as a signal.
        let _ = Command::new("kill")
            .args(["-s", sig, "--"])
            .arg(format!("-{pgid}"))
            .status();
    };
    signal("TERM");
    for _ in 0..30 {
        if child.try_wait().ok().flatten().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    signal("KILL");
    let _ = child.wait();
    // serverless re-launches itself detached (its own process group): stop whatever still runs
    // in the service directory.
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let cwd = std::fs::read_link(entry.path().join("cwd"));
        if cwd.is_ok_and(|c| c == dir) {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(entry.file_name())
                .status();
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn unsafe_term(child: &Child) {
    // SIGTERM lets the server stop its environments.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
}

async fn ceiling() -> anyhow::Result<()> {
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("ceiling listening on http://{}", listener.local_addr()?);
    loop {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        tokio::spawn(async move {
            let svc = service_fn(|_req| async {
                Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                    Bytes::from_static(b"{}"),
                )))
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match args.get(1).map(String::as_str) {
        Some("ceiling") => rt.block_on(ceiling()),
        Some("load") => {
            // nimbus-bench load ADDR PATH CLIENTS SECONDS
            let addr: SocketAddr = args.get(2).ok_or_else(|| anyhow!("ADDR"))?.parse()?;
            let path = args.get(3).cloned().unwrap_or_else(|| "/".into());
            let clients: usize = args.get(4).map(|c| c.parse()).transpose()?.unwrap_or(16);
            let secs: u64 = args.get(5).map(|c| c.parse()).transpose()?.unwrap_or(3);
            let s = rt.block_on(load(addr, &path, clients, Duration::from_secs(secs)))?;
            println!(
                "{} requests, {} errors, {:.0}/s, p50 {} ms, p99 {} ms",
                s.requests,
                s.errors,
                s.rps,
                ms(s.p50_us),
                ms(s.p99_us)
            );
            Ok(())
        }
        Some("run") => {
            let get = |flag: &str, default: &str| {
                args.iter()
                    .position(|a| a == flag)
                    .and_then(|i| args.get(i + 1))
                    .cloned()
                    .unwrap_or_else(|| default.to_string())
            };
            let nimbus = get("--nimbus", "target/release/nimbus");
            let noop = get("--noop", "target/release/noop-bootstrap");
            let secs: u64 = get("--seconds", "3").parse()?;
            let only = get("--only", "");
            let sls = get("--serverless-offline", "");
            let sls = Some(sls.as_str()).filter(|s| !s.is_empty());
            rt.block_on(run(&nimbus, &noop, secs, &only, sls))
        }
        _ => Err(anyhow!(
            "usage: nimbus-bench run [--nimbus PATH] [--noop PATH] [--seconds N] [--only warm,cold,network,rate,gateway,serverless-offline,async,esm,idle] [--serverless-offline NODE_PROJECT_DIR] | nimbus-bench ceiling"
        )),
    }
}
