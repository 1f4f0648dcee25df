//! `nimbus server`: resolve settings, start the core and the front door, and shut down cleanly
//! on Ctrl-C or SIGTERM (every environment stopped, the store flushed).

use std::path::PathBuf;

use anyhow::Context;
use nimbus_core::Core;

use crate::config;

pub(crate) async fn run(
    listen: String,
    data_dir: PathBuf,
    config_path: Option<PathBuf>,
    launcher: Option<String>,
) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("NIMBUS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating data dir {}", data_dir.display()))?;
    let data_dir = data_dir
        .canonicalize()
        .with_context(|| format!("resolving data dir {}", data_dir.display()))?;
    let file = config::load(config_path.as_deref(), &data_dir)?;
    let launcher_choice: Option<nimbus_core::LauncherChoice> = match &launcher {
        Some(l) => Some(
            l.parse()
                .map_err(|e: String| anyhow::anyhow!("--launcher: {e}"))?,
        ),
        None => None,
    };
    // The data directory is the server's alone. Plain processes run as root's per-environment
    // uids must still reach their code (tasks/) and bundled runtimes (runtimes/) by path, so
    // then others may traverse it (but not list it).
    let plain_as_root = launcher_choice.or_else(|| {
        file.sandbox.launcher.as_deref().and_then(|l| l.parse().ok())
    }) == Some(nimbus_core::LauncherChoice::Process)
        // SAFETY: geteuid has no preconditions.
        && unsafe { libc::geteuid() } == 0;
    restrict_data_dir(&data_dir, plain_as_root)?;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr()?;
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    let public_url = format!("http://{host}:{}", addr.port());
    let nofile = nimbus_edge::listener::raise_nofile_limit();
    let edge = config::edge(
        &file.server,
        file.server.public_url.as_deref().unwrap_or(&public_url),
        nofile,
    )?;
    let mut settings = config::resolve(file, data_dir, public_url.clone())?;
    if let Some(l) = launcher_choice {
        settings.launcher = l;
    }
    settings.unpack_in_helper = true;
    // Environments with a network of their own reach the API through a relay to this address.
    settings.sandbox_network.api = Some(addr);
    let core = Core::start(settings)
        .await
        .map_err(|e| anyhow::anyhow!("starting Nimbus: {e}"))?;
    let services = crate::compose::services(&core).await?;
    tracing::info!(launcher = core.invoke.launcher_name(), "environments start");
    for (id, r) in core.functions.catalog().report() {
        if let Err(why) = r {
            tracing::info!(runtime = %id, "runtime unavailable: {why}");
        }
    }
    println!("Nimbus listening on {public_url}");
    let shutdown = async {
        let ctrl_c = tokio::signal::ctrl_c();
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot watch SIGTERM");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
    };
    let serve_core = core.clone();
    nimbus_edge::serve(listener, serve_core, edge, services, shutdown).await?;
    core.shutdown().await;
    Ok(())
}

/// Sets the data directory's mode: 0700, or 0711 (with `tasks/` and `runtimes/` 0711) when
/// plain processes under their own uids need to reach their code.
fn restrict_data_dir(dir: &std::path::Path, traversable: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = if traversable { 0o711 } else { 0o700 };
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("restricting {}", dir.display()))?;
    if traversable {
        for sub in ["tasks", "runtimes"] {
            let p = dir.join(sub);
            std::fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o711))
                .with_context(|| format!("restricting {}", p.display()))?;
        }
    }
    Ok(())
}
