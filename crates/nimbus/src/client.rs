//! The command-line client: deploy, invoke, ls, rm, logs, cost and doctor, all over the
//! server's public APIs (the Lambda REST API, the CloudWatch Logs API and `/_nimbus/`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use serde_json::{Value, json};

pub(crate) struct DeploySpec {
    pub path: PathBuf,
    pub name: String,
    pub runtime: Option<String>,
    pub handler: Option<String>,
    pub memory: Option<i64>,
    pub timeout: Option<i64>,
    pub env: Vec<String>,
    pub role: String,
}

fn http() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(960))
        .build()?)
}

fn url(endpoint: &str, path: &str) -> String {
    format!("{}{}", endpoint.trim_end_matches('/'), path)
}

fn enc(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Turns an AWS error response into a readable error.
async fn check(resp: reqwest::Response) -> anyhow::Result<reqwest::Response> {
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status();
    let kind = resp
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("Error")
        .to_string();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let msg = body
        .get("message")
        .or_else(|| body.get("Message"))
        .and_then(Value::as_str)
        .unwrap_or("");
    Err(anyhow!("{kind} ({status}): {msg}"))
}

/// Zips a directory, keeping permission bits (an executable `bootstrap` stays executable).
fn zip_dir(dir: &Path) -> anyhow::Result<Vec<u8>> {
    use std::os::unix::fs::PermissionsExt;
    use zip::write::SimpleFileOptions;
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let entry = entry?;
            let p = entry.path();
            let ft = entry.file_type()?;
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                files.push(p);
            }
        }
    }
    files.sort();
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let bar = (total > 4 * 1024 * 1024).then(|| {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template("zipping {bar:40} {bytes}/{total_bytes}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for f in &files {
        let rel = f.strip_prefix(dir)?.to_string_lossy().replace('\\', "/");
        let mode = std::fs::metadata(f)?.permissions().mode() & 0o777;
        w.start_file(
            rel,
            SimpleFileOptions::default()
                .unix_permissions(mode)
                .compression_method(zip::CompressionMethod::Deflated),
        )?;
        let data = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        w.write_all(&data)?;
        if let Some(b) = &bar {
            b.inc(data.len() as u64);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(w.finish()?.into_inner())
}

fn package(path: &Path) -> anyhow::Result<Vec<u8>> {
    if path.is_dir() {
        zip_dir(path)
    } else {
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))
    }
}

fn env_map(env: &[String]) -> anyhow::Result<serde_json::Map<String, Value>> {
    let mut m = serde_json::Map::new();
    for kv in env {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow!("--env takes KEY=VALUE, got '{kv}'"))?;
        m.insert(k.to_string(), v.into());
    }
    Ok(m)
}

async fn wait_settled(c: &reqwest::Client, endpoint: &str, name: &str) -> anyhow::Result<Value> {
    for _ in 0..200 {
        let resp = check(
            c.get(url(
                endpoint,
                &format!("/2015-03-31/functions/{}/configuration", enc(name)),
            ))
            .send()
            .await?,
        )
        .await?;
        let cfg: Value = resp.json().await?;
        let state = cfg["State"].as_str().unwrap_or("");
        let update = cfg["LastUpdateStatus"].as_str().unwrap_or("");
        if state == "Failed" || update == "Failed" {
            bail!(
                "deployment failed: {}",
                cfg["StateReason"]
                    .as_str()
                    .or(cfg["LastUpdateStatusReason"].as_str())
                    .unwrap_or("unknown reason")
            );
        }
        if state == "Active" && update == "Successful" {
            return Ok(cfg);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the function did not become Active in time")
}

async fn deploy_once(
    c: &reqwest::Client,
    endpoint: &str,
    spec: &DeploySpec,
) -> anyhow::Result<Value> {
    let zip = package(&spec.path)?;
    let zip_b64 = base64::engine::general_purpose::STANDARD.encode(&zip);
    let env = env_map(&spec.env)?;
    let exists = c
        .get(url(
            endpoint,
            &format!("/2015-03-31/functions/{}", enc(&spec.name)),
        ))
        .send()
        .await?
        .status()
        .is_success();
    if !exists {
        let mut body = json!({
            "FunctionName": spec.name,
            "Role": spec.role,
            "Code": { "ZipFile": zip_b64 },
        });
        let rt = spec
            .runtime
            .clone()
            .ok_or_else(|| anyhow!("--runtime is required to create a function"))?;
        let handler = spec.handler.clone().unwrap_or_else(|| match rt.as_str() {
            r if r.starts_with("python") => "lambda_function.lambda_handler".into(),
            r if r.starts_with("nodejs") => "index.handler".into(),
            _ => "bootstrap".into(),
        });
        body["Runtime"] = rt.into();
        body["Handler"] = handler.into();
        if let Some(m) = spec.memory {
            body["MemorySize"] = m.into();
        }
        if let Some(t) = spec.timeout {
            body["Timeout"] = t.into();
        }
        if !env.is_empty() {
            body["Environment"] = json!({ "Variables": env });
        }
        check(
            c.post(url(endpoint, "/2015-03-31/functions"))
                .json(&body)
                .send()
                .await?,
        )
        .await?;
    } else {
        check(
            c.put(url(
                endpoint,
                &format!("/2015-03-31/functions/{}/code", enc(&spec.name)),
            ))
            .json(&json!({ "ZipFile": zip_b64 }))
            .send()
            .await?,
        )
        .await?;
        let mut change = serde_json::Map::new();
        if let Some(r) = &spec.runtime {
            change.insert("Runtime".into(), r.clone().into());
        }
        if let Some(h) = &spec.handler {
            change.insert("Handler".into(), h.clone().into());
        }
        if let Some(m) = spec.memory {
            change.insert("MemorySize".into(), m.into());
        }
        if let Some(t) = spec.timeout {
            change.insert("Timeout".into(), t.into());
        }
        if !env.is_empty() {
            change.insert("Environment".into(), json!({ "Variables": env }));
        }
        if !change.is_empty() {
            wait_settled(c, endpoint, &spec.name).await?;
            check(
                c.put(url(
                    endpoint,
                    &format!("/2015-03-31/functions/{}/configuration", enc(&spec.name)),
                ))
                .json(&Value::Object(change))
                .send()
                .await?,
            )
            .await?;
        }
    }
    let cfg = wait_settled(c, endpoint, &spec.name).await?;
    println!(
        "{} {} ({}, {} MB, {} s) code {} bytes, sha256 {}",
        if exists { "updated" } else { "created" },
        spec.name,
        cfg["Runtime"].as_str().unwrap_or(""),
        cfg["MemorySize"],
        cfg["Timeout"],
        cfg["CodeSize"],
        cfg["CodeSha256"].as_str().unwrap_or("")
    );
    Ok(cfg)
}

pub(crate) async fn deploy(endpoint: &str, spec: &DeploySpec, watch: bool) -> anyhow::Result<()> {
    let c = http()?;
    deploy_once(&c, endpoint, spec).await?;
    if !watch {
        return Ok(());
    }
    anyhow::ensure!(spec.path.is_dir(), "--watch needs a directory");
    use notify::Watcher;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev
            && !matches!(ev.kind, notify::EventKind::Access(_))
        {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(&spec.path, notify::RecursiveMode::Recursive)?;
    eprintln!(
        "watching {} for changes (Ctrl-C to stop)",
        spec.path.display()
    );
    while rx.recv().await.is_some() {
        // Let a burst of saves settle, then redeploy once.
        tokio::time::sleep(Duration::from_millis(150)).await;
        while rx.try_recv().is_ok() {}
        if let Err(e) = deploy_once(&c, endpoint, spec).await {
            eprintln!("redeploy failed: {e:#}");
        }
    }
    Ok(())
}

pub(crate) async fn invoke(
    endpoint: &str,
    name: &str,
    payload: Option<String>,
    is_async: bool,
    logs: bool,
) -> anyhow::Result<()> {
    let body = match payload {
        Some(p) if p.starts_with('@') => {
            std::fs::read(&p[1..]).with_context(|| format!("reading {}", &p[1..]))?
        }
        Some(p) => p.into_bytes(),
        None => b"{}".to_vec(),
    };
    let c = http()?;
    let resp = check(
        c.post(url(
            endpoint,
            &format!("/2015-03-31/functions/{}/invocations", enc(name)),
        ))
        .header(
            "X-Amz-Invocation-Type",
            if is_async { "Event" } else { "RequestResponse" },
        )
        .header(
            "X-Amz-Log-Type",
            if logs && !is_async { "Tail" } else { "None" },
        )
        .body(body)
        .send()
        .await?,
    )
    .await?;
    if is_async {
        println!(
            "accepted (request id {})",
            resp.headers()
                .get("x-amzn-requestid")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("?")
        );
        return Ok(());
    }
    let failed = resp.headers().contains_key("x-amz-function-error");
    if let Some(log) = resp
        .headers()
        .get("x-amz-log-result")
        .and_then(|v| v.to_str().ok())
    {
        let text = base64::engine::general_purpose::STANDARD.decode(log)?;
        eprint!("{}", String::from_utf8_lossy(&text));
    }
    let out = resp.bytes().await?;
    println!("{}", String::from_utf8_lossy(&out));
    if failed {
        std::process::exit(1);
    }
    Ok(())
}

pub(crate) async fn list(endpoint: &str) -> anyhow::Result<()> {
    let c = http()?;
    let mut table = comfy_table::Table::new();
    table.set_header([
        "NAME",
        "RUNTIME",
        "MEMORY",
        "TIMEOUT",
        "STATE",
        "LAST MODIFIED",
    ]);
    let mut marker: Option<String> = None;
    loop {
        let path = match &marker {
            Some(m) => format!("/2015-03-31/functions/?Marker={}", enc(m)),
            None => "/2015-03-31/functions/".to_string(),
        };
        let req = c.get(url(endpoint, &path));
        let page: Value = check(req.send().await?).await?.json().await?;
        for f in page["Functions"].as_array().into_iter().flatten() {
            table.add_row([
                f["FunctionName"].as_str().unwrap_or("").to_string(),
                f["Runtime"].as_str().unwrap_or("").to_string(),
                format!("{} MB", f["MemorySize"]),
                format!("{} s", f["Timeout"]),
                f["State"].as_str().unwrap_or("").to_string(),
                f["LastModified"].as_str().unwrap_or("").to_string(),
            ]);
        }
        match page["NextMarker"].as_str() {
            Some(m) => marker = Some(m.to_string()),
            None => break,
        }
    }
    println!("{table}");
    Ok(())
}

pub(crate) async fn remove(endpoint: &str, name: &str) -> anyhow::Result<()> {
    let c = http()?;
    check(
        c.delete(url(
            endpoint,
            &format!("/2015-03-31/functions/{}", enc(name)),
        ))
        .send()
        .await?,
    )
    .await?;
    println!("deleted {name}");
    Ok(())
}

pub(crate) async fn logs(endpoint: &str, name: &str, follow: bool) -> anyhow::Result<()> {
    let c = http()?;
    let group = format!("/aws/lambda/{name}");
    let mut token: Option<String> = None;
    loop {
        let mut body = json!({ "logGroupName": group, "limit": 1000 });
        if let Some(t) = &token {
            body["nextToken"] = t.clone().into();
        }
        let resp = c
            .post(url(endpoint, "/"))
            .header("X-Amz-Target", "Logs_20140328.FilterLogEvents")
            .header("Content-Type", "application/x-amz-json-1.1")
            .body(body.to_string())
            .send()
            .await?;
        if !resp.status().is_success() {
            let v: Value = resp.json().await.unwrap_or(Value::Null);
            if v["__type"] == "ResourceNotFoundException" && follow {
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
            bail!(
                "{}: {}",
                v["__type"].as_str().unwrap_or("error"),
                v["message"].as_str().unwrap_or("")
            );
        }
        let page: Value = resp.json().await?;
        let mut stdout = std::io::stdout().lock();
        let mut last_id: Option<String> = None;
        for e in page["events"].as_array().into_iter().flatten() {
            let ts = e["timestamp"].as_i64().unwrap_or(0);
            let when = chrono::DateTime::from_timestamp_millis(ts)
                .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
                .unwrap_or_default();
            writeln!(stdout, "{when} {}", e["message"].as_str().unwrap_or(""))?;
            last_id = e["eventId"]
                .as_str()
                .map(|s| s.trim_start_matches('0').to_string());
        }
        stdout.flush()?;
        match (page["nextToken"].as_str(), last_id) {
            (Some(t), _) => token = Some(t.to_string()),
            (None, Some(id)) => token = Some(if id.is_empty() { "0".into() } else { id }),
            (None, None) => {
                if !follow {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        if !follow && page["nextToken"].is_null() {
            break;
        }
    }
    Ok(())
}

fn money(v: &Value) -> String {
    format!("${:.6}", v.as_f64().unwrap_or(0.0))
}

pub(crate) async fn cost(endpoint: &str) -> anyhow::Result<()> {
    let c = http()?;
    let v: Value = check(c.get(url(endpoint, "/_nimbus/cost")).send().await?)
        .await?
        .json()
        .await?;
    let mut table = comfy_table::Table::new();
    table.set_header([
        "FUNCTION",
        "REQUESTS",
        "BILLED MS",
        "GB-SECONDS",
        "REQUESTS $",
        "DURATION $",
        "TOTAL $",
    ]);
    for f in v["functions"].as_array().into_iter().flatten() {
        table.add_row([
            f["function"].as_str().unwrap_or("").to_string(),
            f["requests"].to_string(),
            f["billedMs"].to_string(),
            format!("{:.4}", f["gbSeconds"].as_f64().unwrap_or(0.0)),
            money(&f["requestCost"]),
            money(&f["durationCost"]),
            money(&f["cost"]),
        ]);
    }
    println!("{table}");
    let t = &v["total"];
    println!(
        "total: {} requests, {:.4} GB-s: {} before the free tier, {} after it",
        t["requests"],
        t["gbSeconds"].as_f64().unwrap_or(0.0),
        money(&t["costBeforeFreeTier"]),
        money(&t["costAfterFreeTier"])
    );
    Ok(())
}

pub(crate) async fn doctor(endpoint: &str) -> anyhow::Result<()> {
    println!("this host can give environments:");
    for f in nimbus_exec::sandbox::host_report() {
        println!(
            "  {:<22} {} {}",
            f.name,
            if f.active { "yes" } else { "no " },
            f.detail
        );
    }
    let c = http()?;
    let answer = c.get(url(endpoint, "/_nimbus/status")).send().await;
    let Ok(answer) = answer else {
        println!("no Nimbus server answers at {endpoint}");
        return Ok(());
    };
    let v: Value = check(answer).await?.json().await?;
    println!("server at {endpoint}:");
    println!("  launcher:     {}", v["launcher"].as_str().unwrap_or(""));
    println!("  isolation:");
    for f in v["isolation"].as_array().into_iter().flatten() {
        println!(
            "    {:<22} {} {}",
            f["name"].as_str().unwrap_or(""),
            if f["active"].as_bool() == Some(true) {
                "yes"
            } else {
                "no "
            },
            f["detail"].as_str().unwrap_or("")
        );
    }
    println!("  data dir:     {}", v["dataDir"].as_str().unwrap_or(""));
    println!(
        "  environments: {} (in flight: {})",
        v["environments"], v["inflight"]
    );
    println!("  concurrency:  {}", v["accountConcurrency"]);
    println!("  runtimes:");
    for r in v["runtimes"].as_array().into_iter().flatten() {
        println!(
            "    {:<16} {} {}",
            r["runtime"].as_str().unwrap_or(""),
            if r["available"].as_bool() == Some(true) {
                "yes"
            } else {
                "no "
            },
            r["detail"].as_str().unwrap_or("")
        );
    }
    Ok(())
}
