//! Resolved server settings (the user-facing config file is parsed by the binary and turned
//! into this).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::pricing::PriceSheet;

/// The resolved settings of one server; [`Settings::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the store, code blobs and unpacked task roots live.
    pub data_dir: PathBuf,
    /// The region Nimbus answers as, in ARNs and to functions (default `us-east-1`).
    pub region: String,
    /// The 12-digit account id Nimbus answers as (default `000000000000`).
    pub account_id: String,
    /// The address clients use to reach this server (for code download URLs and the
    /// `AWS_ENDPOINT_URL` given to functions).
    pub public_url: String,
    /// Account concurrency limit (concurrent invocations).
    pub account_concurrency: usize,
    /// Idle environments are stopped after this long.
    pub idle_timeout: Duration,
    /// Init phase limit (10 s on AWS).
    pub init_timeout: Duration,
    /// Explicit interpreter paths per runtime id.
    pub runtime_paths: BTreeMap<String, PathBuf>,
    /// The prices usage is metered at (AWS's x86 prices in us-east-1 by default).
    pub prices: PriceSheet,
    /// Which launcher runs environments.
    pub launcher: LauncherChoice,
    /// First uid handed to sandboxed environments (one per live environment).
    pub sandbox_uid_base: u32,
    /// Delays before the retries of an asynchronous event after function errors.
    pub async_retry_delays: Vec<Duration>,
    /// Backoff after a throttled asynchronous delivery: first delay, doubling up to the max.
    pub async_backoff_initial: Duration,
    /// The longest of those backoffs (default 5 minutes).
    pub async_backoff_max: Duration,
    /// How much runtime output one invocation may log.
    pub log_limits: nimbus_exec::LogLimits,
    /// Log bytes per second one function may store (its environments slow down past it).
    pub log_rate_bytes_per_sec: u64,
    /// Log bytes a function may store in a burst above the rate.
    pub log_burst_bytes: u64,
    /// Retention for log groups without their own policy (`None`: kept for ever, as on AWS).
    pub log_retention_days: Option<u32>,
    /// How often expired log events are deleted.
    pub log_sweep_interval: Duration,
    /// At shutdown, how long invocations in flight may run on before their environments are
    /// stopped.
    pub invocation_drain: Duration,
    /// Unpack code in a helper process of this binary (`__unpack`) as an unprivileged uid when
    /// the server is root. Set by the `nimbus` binary; libraries embedding the core without it
    /// leave it off.
    pub unpack_in_helper: bool,
    /// How sandboxed environments reach the network (`api` is filled in by the binary with the
    /// address it listens on).
    pub sandbox_network: nimbus_exec::NetworkConfig,
}

/// The launcher setting: `auto` sandboxes where the host allows it and falls back to plain
/// processes with a warning; `sandbox` refuses to start without the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LauncherChoice {
    /// Sandbox where the host allows it, else plain processes with a warning (but not as root).
    Auto,
    /// Always sandbox; refuse to start where the sandbox is unavailable.
    Sandbox,
    /// Plain processes without namespaces or cgroups (each as its own uid when the server is root).
    Process,
}

impl std::str::FromStr for LauncherChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(LauncherChoice::Auto),
            "sandbox" => Ok(LauncherChoice::Sandbox),
            "process" => Ok(LauncherChoice::Process),
            other => Err(format!(
                "unknown launcher '{other}': expected auto, sandbox or process"
            )),
        }
    }
}

impl Settings {
    /// The defaults, with data in `data_dir`.
    pub fn new(data_dir: PathBuf) -> Settings {
        Settings {
            data_dir,
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
            public_url: "http://127.0.0.1:4566".into(),
            account_concurrency: 1000,
            idle_timeout: Duration::from_secs(600),
            init_timeout: Duration::from_secs(10),
            runtime_paths: BTreeMap::new(),
            prices: PriceSheet::default(),
            launcher: LauncherChoice::Auto,
            sandbox_uid_base: 1_000_000,
            async_retry_delays: vec![Duration::from_secs(60), Duration::from_secs(120)],
            async_backoff_initial: Duration::from_secs(1),
            async_backoff_max: Duration::from_secs(300),
            log_limits: nimbus_exec::LogLimits::default(),
            log_rate_bytes_per_sec: 4 * 1024 * 1024,
            log_burst_bytes: 16 * 1024 * 1024,
            log_retention_days: None,
            log_sweep_interval: Duration::from_secs(600),
            invocation_drain: Duration::from_secs(10),
            sandbox_network: nimbus_exec::NetworkConfig::default(),
            unpack_in_helper: false,
        }
    }

    /// The unqualified function ARN: `arn:aws:lambda:{region}:{account_id}:function:{name}`.
    pub fn function_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:lambda:{}:{}:function:{}",
            self.region, self.account_id, name
        )
    }
}
