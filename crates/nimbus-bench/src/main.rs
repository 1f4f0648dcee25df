//! `nimbus-bench`: measures Nimbus on this machine and prints a Markdown report.
//!
//! `nimbus-bench run --nimbus target/release/nimbus --noop target/release/noop-bootstrap` starts a
//! Nimbus server and a bare HTTP server (the loopback ceiling) as separate processes, then runs:
//! warm invoke latency and throughput at 1, 16 and 64 keep-alive clients (no-op `provided` and
//! no-op Python functions, and the ceiling), cold starts per runtime, and the memory held by idle
//! environments. `nimbus-bench ceiling` is the bare server. All runs are bounded in time and count.

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

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn children_rss_kb(parent: u32) -> (usize, u64) {
    let mut n = 0;
    let mut total = 0;
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let after = stat.rsplit(") ").next().unwrap_or("");
            let ppid: u32 = after
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            if ppid == parent {
                n += 1;
                total += rss_kb(pid);
            }
        }
    }
    (n, total)
}

fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

async fn run(nimbus: &str, noop: &str, secs: u64) -> anyhow::Result<()> {
    let dur = Duration::from_secs(secs);
    let data = std::env::temp_dir().join(format!("nimbus-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let mut cmd = Command::new(nimbus);
    cmd.args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("NIMBUS_LOG", "error");
    let (mut server, addr) = spawn_ready(cmd, "Nimbus listening on ")?;
    let mut ccmd = Command::new(std::env::current_exe()?);
    ccmd.arg("ceiling");
    let (mut ceiling, caddr) = spawn_ready(ccmd, "ceiling listening on ")?;

    let result = async {
        let noop_bin = std::fs::read(noop).with_context(|| format!("reading {noop}"))?;
        let provided = zip_of(&[("bootstrap", noop_bin.clone(), 0o755)])?;
        create(addr, "noop-provided", "provided.al2023", "noop", &provided, serde_json::json!({})).await?;
        let py = zip_of(&[("lambda_function.py", b"def lambda_handler(event, context):\n    return {}\n".to_vec(), 0o644)])?;
        let have_py = create(addr, "noop-python", "python3.11", "lambda_function.lambda_handler", &py, serde_json::json!({})).await.is_ok()
            && {
                let mut c = connect(addr).await?;
                let (st, h, _) = request(&mut c, "POST", "/2015-03-31/functions/noop-python/invocations", &[], b"{}").await?;
                st == 200 && !h.contains_key("x-amz-function-error")
            };

        println!("## Warm invoke: latency and throughput ({secs} s per cell, keep-alive clients, loopback)\n");
        println!("| target | clients | requests | errors | invocations/s | p50 ms | p99 ms |");
        println!("| --- | --- | --- | --- | --- | --- | --- |");
        let mut targets = vec![
            ("bare HTTP server (loopback ceiling)", caddr, "/".to_string()),
            ("no-op provided (Rust bootstrap)", addr, "/2015-03-31/functions/noop-provided/invocations".to_string()),
        ];
        if have_py {
            targets.push(("no-op python3.11", addr, "/2015-03-31/functions/noop-python/invocations".to_string()));
        }
        for (label, a, path) in &targets {
            // Warm up: enough environments for 64 clients.
            let _ = load(*a, path, 64, Duration::from_millis(500)).await?;
            for clients in [1usize, 16, 64] {
                let s = load(*a, path, clients, dur).await?;
                println!("| {label} | {clients} | {} | {} | {:.0} | {} | {} |", s.requests, s.errors, s.rps, ms(s.p50_us), ms(s.p99_us));
            }
        }

        println!("\n## Cold start to first response (a new function each time, sequential)\n");
        println!("| runtime | samples | p50 ms | p99 ms | max ms |");
        println!("| --- | --- | --- | --- | --- |");
        let node = zip_of(&[("index.js", b"exports.handler = async () => ({});\n".to_vec(), 0o644)])?;
        let mut cases: Vec<(&str, &str, &str, Vec<u8>)> = vec![("provided.al2023 (Rust no-op)", "provided.al2023", "noop", provided.clone())];
        for v in ["python3.9", "python3.10", "python3.11", "python3.12", "python3.13"] {
            cases.push((v, v, "lambda_function.lambda_handler", py.clone()));
        }
        for v in ["nodejs18.x", "nodejs20.x", "nodejs22.x"] {
            cases.push((v, v, "index.handler", node.clone()));
        }
        for (i, (label, runtime, handler, zip)) in cases.iter().enumerate() {
            let n = 15;
            let mut lat = Vec::new();
            for j in 0..n {
                let name = format!("cold-{i}-{j}");
                if create(addr, &name, runtime, handler, zip, serde_json::json!({})).await.is_err() {
                    break;
                }
                let t = Instant::now();
                let mut conn = connect(addr).await?;
                let (st, h, _) = request(&mut conn, "POST", &format!("/2015-03-31/functions/{name}/invocations"), &[], b"{}").await?;
                if st == 200 && !h.contains_key("x-amz-function-error") {
                    lat.push(t.elapsed().as_micros() as u64);
                }
            }
            if lat.is_empty() {
                println!("| {label} | 0 (runtime not available on this host) | | | |");
                continue;
            }
            lat.sort_unstable();
            println!("| {label} | {} | {} | {} | {} |", lat.len(), ms(percentile(&lat, 0.5)), ms(percentile(&lat, 0.99)), ms(*lat.last().unwrap_or(&0)));
        }

        println!("\n## Memory held by idle environments\n");
        let k = 300;
        create(addr, "idle-mem", "provided.al2023", "noop", &provided, serde_json::json!({"NOOP_SLEEP_MS": "1500"})).await?;
        let before_server = rss_kb(server.id());
        let (before_n, before_children) = children_rss_kb(server.id());
        let mut tasks = Vec::new();
        let t = Instant::now();
        for _ in 0..k {
            tasks.push(tokio::spawn(async move {
                call(addr, "POST", "/2015-03-31/functions/idle-mem/invocations", b"{}").await.map(|r| r.0)
            }));
        }
        let mut ok = 0;
        for t in tasks {
            if let Ok(Ok(200)) = t.await {
                ok += 1;
            }
        }
        let spread = t.elapsed();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after_server = rss_kb(server.id());
        let (after_n, after_children) = children_rss_kb(server.id());
        let envs = after_n.saturating_sub(before_n);
        println!("{k} concurrent invocations of a function that takes 1.5 s ({ok} succeeded in {:.2} s) left {envs} idle environments.\n", spread.as_secs_f64());
        println!("| measure | total | per environment |");
        println!("| --- | --- | --- |");
        let per = |kb: u64| if envs > 0 { format!("{:.1} KiB", kb as f64 / envs as f64) } else { "-".into() };
        let ds = after_server.saturating_sub(before_server);
        let dc = after_children.saturating_sub(before_children);
        println!("| Nimbus server RSS growth (platform overhead) | {:.1} MiB | {} |", ds as f64 / 1024.0, per(ds));
        println!("| runtime processes RSS (the no-op bootstrap itself) | {:.1} MiB | {} |", dc as f64 / 1024.0, per(dc));
        println!("| Nimbus server RSS total | {:.1} MiB | |", after_server as f64 / 1024.0);
        Ok::<(), anyhow::Error>(())
    }
    .await;
    unsafe_term(&server);
    let _ = server.wait();
    let _ = ceiling.kill();
    let _ = ceiling.wait();
    let _ = std::fs::remove_dir_all(&data);
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
            rt.block_on(run(&nimbus, &noop, secs))
        }
        _ => Err(anyhow!(
            "usage: nimbus-bench run [--nimbus PATH] [--noop PATH] [--seconds N] | nimbus-bench ceiling"
        )),
    }
}
