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
pub struct ConfigFile {
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
}

/// Timing of asynchronous retries (defaults are Lambda's; tests shorten them).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsyncSection {
    /// Delays before the retries after function errors, in seconds (default [60, 120]).
    pub retry_delays_secs: Option<Vec<f64>>,
    /// First backoff after a throttle, in milliseconds (default 1000), doubling up to the max.
    pub throttle_backoff_ms: Option<u64>,
    /// Longest backoff after throttles, in milliseconds (default 300000).
    pub throttle_backoff_max_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxSection {
    /// `auto` (default), `sandbox` or `process`.
    pub launcher: Option<String>,
    /// First uid/gid given to environments (each live environment holds its own).
    pub uid_base: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub region: Option<String>,
    pub account_id: Option<String>,
    pub account_concurrency: Option<usize>,
    pub idle_timeout_secs: Option<u64>,
    pub init_timeout_secs: Option<u64>,
    /// The URL clients use to reach this server, if not the listen address.
    pub public_url: Option<String>,
}

pub fn load(path: Option<&Path>, data_dir: &Path) -> anyhow::Result<ConfigFile> {
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

pub fn resolve(
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
    if let Some(u) = file.sandbox.uid_base {
        anyhow::ensure!(
            (1000..=u32::MAX - 65_536).contains(&u),
            "sandbox.uid_base must leave room for 65536 uids above 1000"
        );
        s.sandbox_uid_base = u;
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
