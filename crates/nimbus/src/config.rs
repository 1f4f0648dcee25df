//! The user-facing config file (TOML). Unknown keys are refused, not dropped; the file is
//! resolved into the core's `Settings`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use nimbus_core::Settings;
use nimbus_core::pricing::PriceSheet;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    #[serde(default)]
    pub server: ServerSection,
    /// Interpreter path per runtime id, e.g. `"python3.12" = "/usr/bin/python3.12"`.
    #[serde(default)]
    pub runtimes: BTreeMap<String, PathBuf>,
    pub pricing: Option<PriceSheet>,
    #[serde(default)]
    pub sandbox: SandboxSection,
    #[serde(default, rename = "async")]
    pub async_invoke: AsyncSection,
    #[serde(default)]
    pub logs: LogsSection,
}

/// Bounds on what functions log.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogsSection {
    /// Runtime output one invocation may log, in bytes (default 16 MiB); the rest is dropped
    /// with a marker line.
    pub max_invocation_bytes: Option<u64>,
    /// Runtime output lines one invocation may log (default 200000).
    pub max_invocation_lines: Option<u64>,
    /// Log bytes per second one function may store (default 4 MiB); past it the function's
    /// output is slowed down, not dropped.
    pub rate_bytes_per_sec: Option<u64>,
    /// Burst above the rate, in bytes (default 16 MiB).
    pub burst_bytes: Option<u64>,
    /// Days log events are kept in groups without their own retention policy (default: for ever).
    pub retention_days: Option<u32>,
    /// Seconds between retention sweeps (default 600).
    pub sweep_interval_secs: Option<u64>,
}

/// Timing of asynchronous retries (defaults are Lambda's; tests shorten them).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AsyncSection {
    /// Delays before the retries after function errors, in seconds (default [60, 120]).
    pub retry_delays_secs: Option<Vec<f64>>,
    /// First backoff after a throttle, in milliseconds (default 1000), doubling up to the max.
    pub throttle_backoff_ms: Option<u64>,
    /// Longest backoff after throttles, in milliseconds (default 300000).
    pub throttle_backoff_max_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SandboxSection {
    /// `auto` (default), `sandbox` or `process`.
    pub launcher: Option<String>,
    /// First uid/gid given to environments (each live environment holds its own).
    pub uid_base: Option<u32>,
    /// `isolated` (default: own network namespace, outbound through the host), `loopback`
    /// (own namespace, no outbound access) or `host` (the host's network, shared).
    pub network: Option<String>,
    /// Whether private ranges (10/8, 172.16/12, 192.168/16, 100.64/10, 198.18/15) are
    /// unreachable from functions (default true).
    pub block_private_networks: Option<bool>,
    /// Destinations functions may reach despite the blocks (`a.b.c.d` or `a.b.c.d/n`).
    pub network_allow: Option<Vec<String>>,
    /// Addresses of the environments' veth pairs (default 100.64.0.0/10).
    pub network_subnet: Option<String>,
    /// Ports of the host's loopback functions may reach (at the same port of their own).
    pub host_ports: Option<Vec<u16>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServerSection {
    pub region: Option<String>,
    pub account_id: Option<String>,
    pub account_concurrency: Option<usize>,
    pub idle_timeout_secs: Option<u64>,
    pub init_timeout_secs: Option<u64>,
    /// The URL clients use to reach this server, if not the listen address.
    pub public_url: Option<String>,
    /// Origins whose web pages may call the AWS APIs (default: none; `*` allows any).
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Host names the AWS APIs answer to besides IP literals, `localhost` and the public URL's
    /// host (`*.example.com` for subdomains).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Open front-door connections in all (default 4096, capped by a quarter of the open-files
    /// limit).
    pub max_connections: Option<usize>,
    /// Open front-door connections from one peer address (default 1024).
    pub max_connections_per_peer: Option<usize>,
    /// Seconds a request's headers may take to arrive, also the keep-alive idle limit (30).
    pub header_timeout_secs: Option<u64>,
    /// Seconds in-flight requests may run on after SIGTERM before they are aborted (30).
    pub shutdown_grace_secs: Option<u64>,
    /// Seconds invocations still in flight after the front door closed (asynchronous deliveries,
    /// cold starts) may run on before their environments are stopped (10).
    pub invocation_drain_secs: Option<u64>,
}

/// The front door's settings from the `[server]` section.
pub(crate) fn edge(
    srv: &ServerSection,
    public_url: &str,
    nofile: u64,
) -> anyhow::Result<nimbus_edge::EdgeConfig> {
    use nimbus_edge::listener::ConnectionLimits;
    let mut limits = ConnectionLimits::default();
    if let Some(n) = srv.max_connections {
        anyhow::ensure!(n >= 1, "server.max_connections must be at least 1");
        limits.max_connections = n;
    }
    if let Some(n) = srv.max_connections_per_peer {
        anyhow::ensure!(n >= 1, "server.max_connections_per_peer must be at least 1");
        limits.max_per_peer = n;
    }
    if let Some(t) = srv.header_timeout_secs {
        anyhow::ensure!(t >= 1, "server.header_timeout_secs must be at least 1");
        limits.header_timeout = std::time::Duration::from_secs(t);
    }
    if let Some(t) = srv.shutdown_grace_secs {
        limits.shutdown_grace = std::time::Duration::from_secs(t);
    }
    for o in &srv.allowed_origins {
        anyhow::ensure!(
            o == "*" || o.starts_with("http://") || o.starts_with("https://"),
            "server.allowed_origins: '{o}' is not an origin (scheme://host[:port]) or *"
        );
    }
    let public_host = public_url
        .split_once("://")
        .map(|(_, rest)| rest.split(['/', ':']).next().unwrap_or("").to_string())
        .filter(|h| !h.is_empty());
    Ok(nimbus_edge::EdgeConfig {
        browsers: nimbus_edge::guard::BrowserPolicy {
            allowed_origins: srv.allowed_origins.clone(),
            allowed_hosts: srv.allowed_hosts.clone(),
            public_host,
        },
        limits: nimbus_edge::listener::limits_for(nofile, limits),
    })
}

pub(crate) fn load(path: Option<&Path>, data_dir: &Path) -> anyhow::Result<ConfigFile> {
    let (path, required) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => (data_dir.join("nimbus.toml"), false),
    };
    if !required && !path.exists() {
        return Ok(ConfigFile::default());
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading config {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config {}", path.display()))
}

pub(crate) fn resolve(
    file: ConfigFile,
    data_dir: PathBuf,
    public_url: String,
) -> anyhow::Result<Settings> {
    let mut s = Settings::new(data_dir);
    let srv = file.server;
    if let Some(r) = srv.region {
        s.region = r;
    }
    if let Some(a) = srv.account_id {
        anyhow::ensure!(
            a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()),
            "server.account_id must be 12 digits"
        );
        s.account_id = a;
    }
    if let Some(c) = srv.account_concurrency {
        anyhow::ensure!(c >= 1, "server.account_concurrency must be at least 1");
        s.account_concurrency = c;
    }
    if let Some(t) = srv.idle_timeout_secs {
        s.idle_timeout = std::time::Duration::from_secs(t);
    }
    if let Some(t) = srv.init_timeout_secs {
        s.init_timeout = std::time::Duration::from_secs(t);
    }
    s.public_url = srv.public_url.unwrap_or(public_url);
    if let Some(t) = srv.invocation_drain_secs {
        s.invocation_drain = std::time::Duration::from_secs(t);
    }
    s.runtime_paths = file.runtimes;
    if let Some(p) = file.pricing {
        s.prices = p;
    }
    if let Some(l) = file.sandbox.launcher {
        s.launcher = l
            .parse()
            .map_err(|e: String| anyhow::anyhow!("sandbox.launcher: {e}"))?;
    }
    let a = file.async_invoke;
    if let Some(d) = a.retry_delays_secs {
        anyhow::ensure!(
            !d.is_empty() && d.iter().all(|v| v.is_finite() && *v >= 0.0),
            "async.retry_delays_secs must be a non-empty list of non-negative numbers"
        );
        s.async_retry_delays = d
            .into_iter()
            .map(std::time::Duration::from_secs_f64)
            .collect();
    }
    if let Some(ms) = a.throttle_backoff_ms {
        anyhow::ensure!(ms >= 1, "async.throttle_backoff_ms must be at least 1");
        s.async_backoff_initial = std::time::Duration::from_millis(ms);
    }
    if let Some(ms) = a.throttle_backoff_max_ms {
        s.async_backoff_max = std::time::Duration::from_millis(ms.max(1));
    }
    let l = file.logs;
    if let Some(b) = l.max_invocation_bytes {
        anyhow::ensure!(b >= 1024, "logs.max_invocation_bytes must be at least 1024");
        s.log_limits.max_invocation_bytes = b;
    }
    if let Some(n) = l.max_invocation_lines {
        anyhow::ensure!(n >= 1, "logs.max_invocation_lines must be at least 1");
        s.log_limits.max_invocation_lines = n;
    }
    if let Some(r) = l.rate_bytes_per_sec {
        anyhow::ensure!(r >= 1024, "logs.rate_bytes_per_sec must be at least 1024");
        s.log_rate_bytes_per_sec = r;
    }
    if let Some(b) = l.burst_bytes {
        anyhow::ensure!(b >= 1024, "logs.burst_bytes must be at least 1024");
        s.log_burst_bytes = b;
    }
    if let Some(d) = l.retention_days {
        anyhow::ensure!(
            nimbus_core::logs::RETENTION_DAYS.contains(&d),
            "logs.retention_days must be one of CloudWatch Logs' values ({:?})",
            nimbus_core::logs::RETENTION_DAYS
        );
        s.log_retention_days = Some(d);
    }
    if let Some(t) = l.sweep_interval_secs {
        anyhow::ensure!(t >= 1, "logs.sweep_interval_secs must be at least 1");
        s.log_sweep_interval = std::time::Duration::from_secs(t);
    }
    if let Some(u) = file.sandbox.uid_base {
        anyhow::ensure!(
            (1000..=u32::MAX - 65_536).contains(&u),
            "sandbox.uid_base must leave room for 65536 uids above 1000"
        );
        s.sandbox_uid_base = u;
    }
    if let Some(m) = file.sandbox.network {
        s.sandbox_network.mode = m
            .parse()
            .map_err(|e: String| anyhow::anyhow!("sandbox.network: {e}"))?;
    }
    if let Some(b) = file.sandbox.block_private_networks {
        s.sandbox_network.block_private = b;
    }
    if let Some(list) = file.sandbox.network_allow {
        s.sandbox_network.allow = list
            .iter()
            .map(|c| c.parse())
            .collect::<Result<_, String>>()
            .map_err(|e| anyhow::anyhow!("sandbox.network_allow: {e}"))?;
    }
    if let Some(n) = file.sandbox.network_subnet {
        let c: nimbus_exec::Cidr = n
            .parse()
            .map_err(|e: String| anyhow::anyhow!("sandbox.network_subnet: {e}"))?;
        anyhow::ensure!(
            c.len <= 15,
            "sandbox.network_subnet must be a /15 or larger (two addresses for each of a server's 65536 environment uids)"
        );
        s.sandbox_network.subnet = c;
    }
    if let Some(ports) = file.sandbox.host_ports {
        anyhow::ensure!(
            ports.len() <= nimbus_exec::sandbox::net::MAX_HOST_PORTS,
            "sandbox.host_ports may list at most {} ports",
            nimbus_exec::sandbox::net::MAX_HOST_PORTS
        );
        anyhow::ensure!(
            ports
                .iter()
                .all(|p| *p != 0 && *p != nimbus_exec::sandbox::net::RUNTIME_API_PORT),
            "sandbox.host_ports: ports must be 1-65535 and not {} (the Runtime API's)",
            nimbus_exec::sandbox::net::RUNTIME_API_PORT
        );
        s.sandbox_network.host_ports = ports;
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<ConfigFile>("[server]\nregion = \"eu-west-1\"\n").is_ok());
        assert!(toml::from_str::<ConfigFile>("[server]\nregoin = \"x\"\n").is_err());
        assert!(
            toml::from_str::<ConfigFile>("[pricing]\nrequest_price_per_million = 0.3\n").is_ok()
        );
    }
}
