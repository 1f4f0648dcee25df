//! The Nimbus core: the function control plane, the invoke service every trigger goes through,
//! logs and metering. The core speaks typed commands and results; it never sees HTTP or AWS's
//! JSON wire shapes (the edge crate owns those).

pub mod async_invoke;
pub mod clock;
pub mod cors;
pub mod error;
pub mod event_config;
pub mod event_sources;
pub mod functions;
pub mod iam;
pub mod invoke;
pub mod logs;
pub mod model;
pub mod names;
pub mod patterns;
pub mod policies;
pub mod pricing;
pub mod provisioned;
pub mod records;
pub mod settings;
pub mod sinks;
#[cfg(test)]
mod testing;
pub mod urls;
pub mod validate;
pub mod versions;

use std::sync::Arc;

pub use error::CoreError;
pub use functions::FunctionService;
pub use invoke::InvokeService;
pub use logs::LogService;
pub use settings::{LauncherChoice, Settings};

/// Picks the launcher: the sandbox where the host allows it (or where the settings demand it),
/// otherwise plain processes with a warning that says why.
/// The server's environment uids: reserved host-wide when it runs as root.
fn reserve_uids(settings: &Settings) -> Result<Arc<nimbus_exec::uids::UidPool>, CoreError> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    Ok(Arc::new(if root {
        nimbus_exec::uids::UidPool::reserve(settings.sandbox_uid_base, 65_536, &settings.data_dir)
            .map_err(CoreError::Internal)?
    } else {
        nimbus_exec::uids::UidPool::unreserved(settings.sandbox_uid_base, 65_536)
    }))
}

fn choose_launcher(
    settings: &Settings,
    uids: Arc<nimbus_exec::uids::UidPool>,
) -> Result<Arc<dyn nimbus_exec::Launcher>, CoreError> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let plain = |uids: Option<Arc<nimbus_exec::uids::UidPool>>| -> Result<Arc<dyn nimbus_exec::Launcher>, CoreError> {
        Ok(Arc::new(nimbus_exec::ProcessLauncher::new(uids).map_err(
            |e| CoreError::Internal(format!("starting the launcher: {e}")),
        )?))
    };
    if settings.launcher == LauncherChoice::Process {
        if root {
            tracing::warn!(
                "functions run as plain processes WITHOUT namespaces, cgroups or filters, each under its own uid ({}..)",
                uids.base()
            );
        }
        return plain(root.then_some(uids));
    }
    let config = nimbus_exec::SandboxConfig {
        dir: settings.data_dir.join("sandbox"),
        uids: uids.clone(),
        prepared: 2,
        network: settings.sandbox_network.clone(),
    };
    match nimbus_exec::SandboxLauncher::new(&config) {
        Ok(s) => {
            for f in s.features().iter().filter(|f| !f.active) {
                tracing::warn!("sandbox: {} is not available: {}", f.name, f.detail);
            }
            Ok(Arc::new(s))
        }
        Err(why) if settings.launcher == LauncherChoice::Sandbox => Err(CoreError::Internal(
            format!("the sandbox launcher is required but unavailable: {why}"),
        )),
        Err(why) if root => Err(CoreError::Internal(format!(
            "Nimbus runs as root but cannot sandbox functions on this host ({why}), and will not run them as plain processes without being told to. Fix the sandbox (`nimbus doctor` tells what is missing), run Nimbus as an unprivileged user, or opt in to plain processes (each under its own unprivileged uid, without namespaces or cgroups) with `--launcher process` or `sandbox.launcher = \"process\"`"
        ))),
        Err(why) => {
            tracing::warn!(
                "functions run as plain processes WITHOUT isolation, as this server's user: the sandbox is unavailable on this host ({why}); `nimbus doctor` tells more"
            );
            plain(None)
        }
    }
}

/// Everything the edge needs, wired together.
#[derive(Clone)]
pub struct Core {
    /// The server's settings (data directory, account, region, limits), fixed at start.
    pub settings: Arc<Settings>,
    /// The time every service measures by.
    pub clock: Arc<dyn clock::Clock>,
    /// Function URLs: their configurations and the lookup from URL id to function.
    pub urls: Arc<urls::FunctionUrls>,
    /// Resource-based policies of functions (AddPermission, GetPolicy, RemovePermission).
    pub policies: Arc<policies::Policies>,
    /// Where services take deliveries (destinations, dead-letter queues): registered by the
    /// binary as it composes the services.
    pub sinks: Arc<sinks::Sinks>,
    /// Asynchronous invocation configurations (retries, event age, destinations) per function and
    /// qualifier.
    pub event_configs: Arc<event_config::EventConfigs>,
    /// Event source mappings (the sources themselves are registered by the binary).
    pub event_sources: Arc<event_sources::EventSourceMappings>,
    /// The function control plane: functions, versions, aliases and their code.
    pub functions: Arc<FunctionService>,
    /// The invoke service every trigger goes through (synchronous, asynchronous, streamed).
    pub invoke: Arc<InvokeService>,
    /// Function logs: log groups, streams and events (CloudWatch Logs' model).
    pub logs: Arc<LogService>,
    /// The durable store every service keeps its records and code blobs in.
    pub store: nimbus_store::Store,
}

impl Core {
    /// Opens the store in the data directory, probes runtimes and starts the services.
    /// Must be called inside a tokio runtime.
    pub async fn start(settings: Settings) -> Result<Core, CoreError> {
        let settings = Arc::new(settings);
        let store = nimbus_store::Store::open(&settings.data_dir)?;
        // SAFETY: geteuid has no preconditions.
        let plain_as_root =
            settings.launcher == LauncherChoice::Process && unsafe { libc::geteuid() } == 0;
        let catalog = nimbus_exec::RuntimeCatalog::discover_with(
            &settings.data_dir.join("runtimes"),
            &settings.runtime_paths,
            plain_as_root,
        )
        .map_err(|e| CoreError::Internal(format!("preparing the runtimes: {e}")))?;
        let catalog = Arc::new(catalog);
        let logs = Arc::new(LogService::new(
            store.clone(),
            settings.log_rate_bytes_per_sec,
            settings.log_burst_bytes,
        ));
        let functions = Arc::new(FunctionService::open(
            settings.clone(),
            store.clone(),
            catalog.clone(),
        )?);
        let uids = reserve_uids(&settings)?;
        // SAFETY: geteuid has no preconditions.
        if settings.unpack_in_helper && unsafe { libc::geteuid() } == 0 {
            // The range's first uid unpacks code; it never runs an environment.
            let uid = uids
                .take()
                .ok_or_else(|| CoreError::Internal("no uid is left to unpack code as".into()))?;
            functions.set_unpacker(nimbus_exec::code::Unpacker::Helper { uid });
        }
        let launcher = choose_launcher(&settings, uids)?;
        let sinks = Arc::new(sinks::Sinks::new());
        let urls = Arc::new(urls::FunctionUrls::open(store.clone(), functions.clone())?);
        let policies = Arc::new(policies::Policies::open(store.clone(), functions.clone())?);
        let event_configs = Arc::new(event_config::EventConfigs::open(
            store.clone(),
            functions.clone(),
        )?);
        let invoke = InvokeService::new(
            settings.clone(),
            functions.clone(),
            launcher,
            logs.clone(),
            store.clone(),
            event_configs.clone(),
            sinks.clone(),
        )?;
        let event_sources = Arc::new(event_sources::EventSourceMappings::open(
            store.clone(),
            settings.clone(),
            functions.clone(),
            invoke.clone(),
        )?);
        spawn_log_retention(logs.clone(), settings.clone());
        Ok(Core {
            clock: Arc::new(clock::SystemClock),
            urls,
            policies,
            sinks,
            settings,
            event_configs,
            event_sources,
            functions,
            invoke,
            logs,
            store,
        })
    }
}

/// Deletes log events past their group's retention, in the background: a sweep shortly after
/// start, then one per `log_sweep_interval`. Deletions go in chunks on the blocking pool.
fn spawn_log_retention(logs: Arc<LogService>, settings: Arc<Settings>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(settings.log_sweep_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let logs = logs.clone();
            let default = settings.log_retention_days;
            let now = chrono::Utc::now().timestamp_millis();
            match tokio::task::spawn_blocking(move || logs.sweep(now, default)).await {
                Ok(Ok(n)) if n > 0 => tracing::info!(chunks = n, "expired log events"),
                Ok(Err(e)) => tracing::warn!(error = %e, "log retention sweep failed"),
                _ => {}
            }
        }
    });
}

impl Core {
    /// Stops every environment and flushes the store.
    pub async fn shutdown(&self) {
        // Pollers first: nothing new is taken from a source once environments stop.
        self.event_sources.shutdown().await;
        self.invoke.shutdown().await;
        let store = self.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.flush()).await;
    }
}
