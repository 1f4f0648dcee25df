//! The sandboxed launcher: every environment in its own mount, PID, IPC and UTS namespaces, with
//! a minimal read-only root (`/var/task`, `/var/runtime`, the host's `/usr` and `/lib*`, a few
//! files of `/etc`), a private `/tmp` of the function's ephemeral-storage size, cgroup limits
//! (memory, 1,024 tasks, CPU weight by memory), its own unprivileged uid, no capabilities,
//! `no_new_privs`, seccomp and Landlock.
//!
//! The order of the setup is the order of this module's pieces: [`cgroup`] groups are created
//! here before the clone; the clone (from a dedicated spawner thread, off the async reactor)
//! makes the namespaces and executes the Nimbus binary as the environment's [`init`], which
//! joins the groups, builds and pivots into the root, and starts the runtime with limits,
//! credentials and filters ([`seccomp`]). Each environment's Runtime API only serves its own uid
//! ([`peer`]).
//!
//! Each environment also gets a network namespace of its own ([`net`]): outbound access
//! through the host, but no route to the host, its loopback, link-local or private addresses.
//!
//! [`SandboxLauncher::new`] refuses (with the reason) on hosts that cannot do this — not root, no
//! namespaces, a missing cgroup controller — and the caller falls back to the plain-process
//! launcher with a warning.

pub mod cgroup;
pub mod init;
pub mod net;
pub mod peer;
pub mod seccomp;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use tokio::io::AsyncBufReadExt;
use tokio::io::unix::AsyncFd;
use tokio::sync::oneshot;

use crate::launcher::{
    ExitFuture, GuestPaths, LaunchError, LaunchFuture, LaunchSpec, Launched, Launcher,
    ProcessControl,
};
use cgroup::{CgroupLayout, EnvCgroup, Limits};
use init::{InitSpec, PrepareSpec};

/// The hidden subcommand that probes whether this host can sandbox.
pub const PROBE_ARG: &str = "__sandbox-probe";

/// Tasks (processes and threads) one environment may hold, as on Lambda.
pub const MAX_TASKS: u64 = 1024;

/// How long an environment's init may take to set up before the launch is failed.
const SETUP_LIMIT: Duration = Duration::from_secs(10);

/// Sandbox settings.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Directory for the sandbox's own files (the shared root mount point).
    pub dir: PathBuf,
    /// The uids (and gids) handed to environments; each live environment holds one.
    pub uids: Arc<crate::uids::UidPool>,
    /// How many environments to keep prepared ahead of demand (cgroups joined, base root
    /// built), which takes the slow part of the setup off the cold-start path.
    pub prepared: usize,
    /// How environments reach the network.
    pub network: net::NetworkConfig,
}

/// One isolation feature and whether it is in force (for `nimbus doctor`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Feature {
    /// A short name, e.g. `cgroups` or `seccomp`.
    pub name: &'static str,
    /// Whether it is in force on this host.
    pub active: bool,
    /// What it does here, or why it is off.
    pub detail: String,
}

struct Inner {
    layout: CgroupLayout,
    root: PathBuf,
    uids: Arc<crate::uids::UidPool>,
    landlock: bool,
    peer_check: bool,
    features: Vec<Feature>,
    network: net::Network,
    /// Environments prepared ahead of demand (cgroups joined, base root built).
    pool: Mutex<Vec<Prepared>>,
    pool_target: usize,
    next_slot: std::sync::atomic::AtomicU64,
    /// Set at shutdown: nothing more is prepared.
    closed: AtomicBool,
}

enum Job {
    /// Prepare one now for a waiting launch.
    Prepare(oneshot::Sender<Result<Prepared, LaunchError>>),
    /// Top the pool up.
    Refill,
    /// Answers once every job sent before it is done.
    Barrier(mpsc::Sender<()>),
}

/// An init that joined its cgroups and built its base root, waiting for its function.
struct Prepared {
    pid: libc::pid_t,
    pidfd: OwnedFd,
    status: OwnedFd,
    chan: OwnedFd,
    cgroup: EnvCgroup,
    /// The uid the environment will run as (it also names and numbers its network).
    uid: u32,
    net: Option<net::EnvNet>,
}

impl Prepared {
    /// Discards an unused prepared environment: closing its socket makes init exit. Its
    /// network namespace (and the veth pair in it) goes when its last socket is closed.
    fn discard(self, inner: &Inner) {
        if let Some(n) = self.net {
            n.discard();
        }
        drop(self.chan);
        pidfd_kill(&self.pidfd);
        let mut ws = 0;
        // SAFETY: waitpid on our own child.
        unsafe { libc::waitpid(self.pid, &mut ws, 0) };
        self.cgroup.remove_blocking();
        inner.uids.release(self.uid);
    }
}

fn pidfd_kill(pidfd: &OwnedFd) {
    // SAFETY: pidfd_send_signal on a pidfd we own.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        );
    }
}

/// The sandboxed launcher.
pub struct SandboxLauncher {
    inner: Arc<Inner>,
    jobs: Mutex<mpsc::Sender<Job>>,
}

/// Why the sandbox cannot run on this host.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

impl SandboxLauncher {
    /// Probes the host and starts the spawner thread. Must be called inside a tokio runtime.
    pub fn new(config: &SandboxConfig) -> Result<SandboxLauncher, Unavailable> {
        let report = probe();
        if let Some(missing) = report.iter().find(|f| f.required() && !f.feature.active) {
            return Err(Unavailable(format!(
                "{}: {}",
                missing.feature.name, missing.feature.detail
            )));
        }
        let layout = CgroupLayout::detect().map_err(|e| Unavailable(format!("cgroups: {e}")))?;
        let root = config.dir.join("root");
        std::fs::create_dir_all(&root)
            .map_err(|e| Unavailable(format!("creating {}: {e}", root.display())))?;
        let mut features: Vec<Feature> = report.into_iter().map(|p| p.feature).collect();
        features.insert(
            2,
            Feature {
                name: "cgroups",
                active: true,
                detail: format!(
                    "{}; memory limit, 1024 tasks, CPU weight by memory",
                    layout.describe()
                ),
            },
        );
        let landlock = features.iter().any(|f| f.name == "landlock" && f.active);
        let peer_check = features
            .iter()
            .any(|f| f.name == "runtime-api-isolation" && f.active);
        let network = net::Network::start(&config.network, config.uids.base(), config.uids.count())
            .map_err(|e| Unavailable(format!("network: {e}")))?;
        if let Some(f) = features.iter_mut().find(|f| f.name == "network") {
            *f = network.feature.clone();
        }
        let inner = Arc::new(Inner {
            layout,
            root,
            uids: config.uids.clone(),
            landlock,
            peer_check,
            features,
            network,
            pool: Mutex::new(Vec::new()),
            pool_target: config.prepared,
            next_slot: std::sync::atomic::AtomicU64::new(0),
            closed: AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::channel::<Job>();
        let thread_inner = inner.clone();
        let mut local = net::Local::new()
            .map_err(|e| Unavailable(format!("starting the spawner's runtime: {e}")))?;
        std::thread::Builder::new()
            .name("nimbus-sandbox-spawner".into())
            .spawn(move || {
                let inner = thread_inner;
                while let Ok(job) = rx.recv() {
                    match job {
                        Job::Prepare(reply) => {
                            // A launch that gave up waiting leaves the environment unused.
                            if let Err(Ok(p)) = reply.send(prepare(&inner, &mut local)) {
                                p.discard(&inner);
                            }
                        }
                        Job::Barrier(done) => {
                            let _ = done.send(());
                        }
                        Job::Refill => loop {
                            let have = inner.pool.lock().unwrap_or_else(|e| e.into_inner()).len();
                            if have >= inner.pool_target || inner.closed.load(Ordering::Acquire) {
                                break;
                            }
                            match prepare(&inner, &mut local) {
                                Ok(p) => {
                                    inner.pool.lock().unwrap_or_else(|e| e.into_inner()).push(p)
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "preparing a sandbox failed");
                                    break;
                                }
                            }
                        },
                    }
                }
            })
            .map_err(|e| Unavailable(format!("starting the spawner thread: {e}")))?;
        let _ = tx.send(Job::Refill);
        Ok(SandboxLauncher {
            inner,
            jobs: Mutex::new(tx),
        })
    }

    /// What isolation is in force.
    pub fn features(&self) -> &[Feature] {
        &self.inner.features
    }
}

impl SandboxLauncher {
    fn send(&self, job: Job) -> bool {
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job)
            .is_ok()
    }

    /// A prepared environment: from the pool, or made now.
    async fn take_prepared(&self) -> Result<Prepared, LaunchError> {
        let pooled = self
            .inner
            .pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        if let Some(p) = pooled {
            return Ok(p);
        }
        let (reply, rx) = oneshot::channel();
        if !self.send(Job::Prepare(reply)) {
            return Err(LaunchError::Gone);
        }
        rx.await.map_err(|_| LaunchError::Gone)?
    }
}

impl Drop for SandboxLauncher {
    fn drop(&mut self) {
        self.shutdown();
        self.inner.layout.remove();
    }
}

struct Probed {
    feature: Feature,
    required: bool,
}

impl Probed {
    fn required(&self) -> bool {
        self.required
    }
}

fn feature(name: &'static str, active: bool, detail: impl Into<String>, required: bool) -> Probed {
    Probed {
        feature: Feature {
            name,
            active,
            detail: detail.into(),
        },
        required,
    }
}

/// Checks what this host offers, without changing anything (cgroups are checked by the layout
/// detection in [`SandboxLauncher::new`]).
fn probe() -> Vec<Probed> {
    let mut out = Vec::new();
    if !cfg!(target_os = "linux") {
        out.push(feature("linux", false, "the sandbox needs Linux", true));
        return out;
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    out.push(feature(
        "root",
        root,
        if root {
            "running as root".to_string()
        } else {
            "Nimbus is not running as root; namespaces, cgroups and uid changes need it".to_string()
        },
        true,
    ));
    let ns = if root {
        match std::process::Command::new("/proc/self/exe")
            .arg(PROBE_ARG)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .output()
        {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_string()),
            Err(e) => Err(format!("running the probe: {e}")),
        }
    } else {
        Err("needs root".to_string())
    };
    out.push(match ns {
        Ok(()) => feature(
            "namespaces",
            true,
            "mount, PID, IPC, UTS, network (and cgroup) namespaces; private /tmp, /proc and /dev",
            true,
        ),
        Err(e) => feature("namespaces", false, e, true),
    });
    out.push(feature(
        "credentials",
        root,
        "a uid per environment, no capabilities, no_new_privs, rlimits (1024 files, 1024 processes, no core dumps)",
        true,
    ));
    out.push(match seccomp::program() {
        Ok(_) => feature(
            "seccomp",
            true,
            "mount, namespaces, modules, kexec, reboot, ptrace, keyctl, bpf, perf_event_open, ... denied",
            true,
        ),
        Err(e) => feature("seccomp", false, e.to_string(), true),
    });
    // SAFETY: landlock_create_ruleset with LANDLOCK_CREATE_RULESET_VERSION only returns the ABI.
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    };
    out.push(if abi > 0 {
        feature(
            "landlock",
            true,
            format!("ABI v{abi}: writes only under /tmp and /dev"),
            false,
        )
    } else {
        feature(
            "landlock",
            false,
            format!(
                "not available on this kernel ({}); mount namespaces still confine the file system",
                std::io::Error::last_os_error()
            ),
            false,
        )
    });
    out.push(match loopback_peer_check() {
        Ok(()) => feature(
            "runtime-api-isolation",
            true,
            "each Runtime API serves only its environment's uid (sock_diag)",
            false,
        ),
        Err(e) => feature(
            "runtime-api-isolation",
            false,
            format!(
                "sock_diag is unavailable ({e}): environments could reach each other's Runtime API"
            ),
            false,
        ),
    });
    out.push(match net_probe() {
        Ok(nft) => feature(
            "network",
            true,
            format!(
                "a network namespace per environment, outbound through the host (nftables: {})",
                nft.display()
            ),
            false,
        ),
        Err(why) => feature("network", false, why, false),
    });
    out
}

/// Whether environments can have isolated networks with outbound access here.
fn net_probe() -> Result<PathBuf, String> {
    let nft = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join("nft"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            "nft is not installed (Debian: apt install nftables): environments get a network namespace with loopback only, no outbound access".to_string()
        })?;
    Ok(nft)
}

/// What this host offers the sandbox, checked without creating anything (`nimbus doctor`).
pub fn host_report() -> Vec<Feature> {
    let mut out: Vec<Feature> = probe().into_iter().map(|p| p.feature).collect();
    let cgroups = match CgroupLayout::inspect() {
        Ok(l) => Feature {
            name: "cgroups",
            active: true,
            detail: format!(
                "{}; memory limit, 1024 tasks, CPU weight by memory",
                l.describe()
            ),
        },
        Err(e) => Feature {
            name: "cgroups",
            active: false,
            detail: e.to_string(),
        },
    };
    out.insert(out.len().min(2), cgroups);
    out
}

fn loopback_peer_check() -> std::io::Result<()> {
    use std::net::{SocketAddr, TcpListener, TcpStream};
    let l = TcpListener::bind("127.0.0.1:0")?;
    let _c = TcpStream::connect(l.local_addr()?)?;
    let (_s, peer) = l.accept()?;
    match (peer, l.local_addr()?) {
        (SocketAddr::V4(p), SocketAddr::V4(local)) => peer::tcp_socket_uid(p, local).map(|_| ()),
        _ => Err(std::io::Error::other("not IPv4")),
    }
}

/// `nimbus __sandbox-probe`: can this process create the namespaces and mounts the sandbox uses?
pub fn probe_main() -> ! {
    use nix::sched::CloneFlags;
    let r = nix::sched::unshare(
        CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWIPC
            | CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWNET,
    )
    .map_err(|e| format!("unshare: {}", e.desc()))
    .and_then(|()| {
        nix::mount::mount(
            None::<&str>,
            "/",
            None::<&str>,
            nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(|e| format!("mount: {}", e.desc()))
    })
    .and_then(|()| {
        nix::mount::mount(
            Some("tmpfs"),
            "/tmp",
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some("size=64k"),
        )
        .map_err(|e| format!("mounting a tmpfs: {}", e.desc()))
    });
    match r {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1)
        }
    }
}

impl Launcher for SandboxLauncher {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    fn guest_paths(&self) -> Option<GuestPaths> {
        Some(GuestPaths {
            task_root: PathBuf::from("/var/task"),
            runtime_dir: PathBuf::from("/var/runtime"),
        })
    }

    fn features(&self) -> Vec<Feature> {
        self.inner.features.clone()
    }

    fn shutdown(&self) {
        // Stop preparing, and wait for a preparation already under way to land in the pool.
        self.inner.closed.store(true, Ordering::Release);
        let (done, wait) = mpsc::channel();
        if self.send(Job::Barrier(done)) {
            let _ = wait.recv_timeout(SETUP_LIMIT);
        }
        let pooled =
            std::mem::take(&mut *self.inner.pool.lock().unwrap_or_else(|e| e.into_inner()));
        for p in pooled {
            p.discard(&self.inner);
        }
        self.inner.network.stop();
        // Best effort: groups still busy are swept by the next start.
        self.inner.layout.remove();
    }

    fn guest_runtime_api(&self) -> Option<String> {
        self.inner
            .network
            .own_namespace()
            .then(|| format!("127.0.0.1:{}", net::RUNTIME_API_PORT))
    }

    fn guest_endpoint(&self) -> Option<String> {
        self.inner.network.guest_endpoint()
    }

    fn launch(&self, spec: LaunchSpec) -> LaunchFuture<'_> {
        Box::pin(async move {
            let inner = self.inner.clone();
            let t0 = std::time::Instant::now();
            let prepared = self.take_prepared().await?;
            let uid = prepared.uid;
            // Freed only after the environment's cgroup is empty and its network is gone (see
            // the exit future).
            let free_uid = move |inner: &Inner| inner.uids.release(uid);
            let taken_at = t0.elapsed();
            let program = spec.program.clone();
            let init = InitSpec {
                task_root: spec.task_root.clone(),
                runtime_dir: spec.runtime_dir.clone(),
                ro_paths: spec.ro_paths.clone(),
                tmp_mb: spec.ephemeral_mb,
                uid,
                gid: uid,
                program: spec.program.to_string_lossy().into_owned(),
                args: spec.args,
                env: spec.env,
                cwd: spec.cwd.to_string_lossy().into_owned(),
                max_open_files: spec.max_open_files,
                max_processes: MAX_TASKS,
                landlock: inner.landlock,
            };
            let limits = Limits {
                memory_bytes: u64::from(spec.memory_mb) << 20,
                max_tasks: MAX_TASKS,
                memory_mb: spec.memory_mb,
            };
            let Prepared {
                pid,
                pidfd,
                status,
                chan,
                cgroup,
                uid: _,
                net,
            } = prepared;
            // Inside a namespace of its own, only the environment can reach its Runtime API.
            let own_net = net.is_some();
            let control = Arc::new(SandboxProcess {
                pid,
                pidfd: Arc::new(pidfd),
                exited: AtomicBool::new(false),
                cgroup,
                uid: (inner.peer_check && !own_net).then_some(uid),
            });
            let (runtime_api, relays, veth) = match net {
                Some(n) => {
                    let (runtime_api, relays, veth) = n.into_parts();
                    (
                        Some(runtime_api),
                        inner.network.relay_all(relays),
                        Some(veth),
                    )
                }
                None => (None, Vec::new(), None),
            };
            // The function's limits, then its spec with the log pipe.
            let handed = control
                .cgroup
                .set_limits(limits)
                .map_err(|e| LaunchError::Setup(e.to_string()))
                .and_then(|()| send_spec(&chan, &init, &spec.output));
            drop(chan);
            drop(spec.output);
            let pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(status)
                .map_err(|e| LaunchError::Setup(format!("status pipe: {e}")));
            let watch = control.clone();
            let exit_inner = inner.clone();
            let (mut failure, mut status) = match (handed, pipe) {
                (Ok(()), Ok(p)) => (None, Some(tokio::io::BufReader::new(p))),
                (Err(e), p) => (Some(e), p.ok().map(tokio::io::BufReader::new)),
                (Ok(()), Err(e)) => (Some(e), None),
            };
            let mut line = String::new();
            if let (None, Some(st)) = (&failure, status.as_mut()) {
                failure = loop {
                    line.clear();
                    match tokio::time::timeout(SETUP_LIMIT, st.read_line(&mut line)).await {
                        Ok(Ok(0)) => {
                            break Some(LaunchError::Setup(
                                "the sandbox init exited during setup".into(),
                            ));
                        }
                        Ok(Ok(_)) if line.trim_end() == "P" => continue,
                        Ok(Ok(_)) if line.starts_with('R') => break None,
                        Ok(Ok(_)) => break Some(parse_failure(line.trim_end(), &program)),
                        Ok(Err(e)) => break Some(LaunchError::Setup(format!("status pipe: {e}"))),
                        Err(_) => {
                            break Some(LaunchError::Setup(format!(
                                "the sandbox setup took longer than {} s",
                                SETUP_LIMIT.as_secs()
                            )));
                        }
                    }
                };
            }
            tracing::debug!(
                take_us = taken_at.as_micros() as u64,
                ready_us = t0.elapsed().as_micros() as u64,
                init = line.trim_end().trim_start_matches('R').trim(),
                "sandbox launched"
            );
            // Top the pool up now that this launch no longer competes with it.
            self.send(Job::Refill);
            let exit: ExitFuture = Box::pin(async move {
                let raw = wait_exit(&watch, status.as_mut()).await;
                watch.exited.store(true, Ordering::Release);
                for r in &relays {
                    r.abort();
                }
                watch.cgroup.finish().await;
                if let Some(v) = &veth {
                    exit_inner.network.release(v).await;
                }
                free_uid(&exit_inner);
                ExitStatus::from_raw(raw)
            });
            if let Some(f) = failure {
                control.kill();
                let _ = exit.await;
                return Err(f);
            }
            Ok(Launched {
                control,
                exit,
                runtime_api,
            })
        })
    }
}

/// Sends the function's spec with the log pipe's write end attached.
fn send_spec(chan: &OwnedFd, spec: &InitSpec, output: &OwnedFd) -> Result<(), LaunchError> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    let body = serde_json::to_vec(spec)
        .map_err(|e| LaunchError::Setup(format!("encoding the sandbox spec: {e}")))?;
    if body.len() > init::MAX_MESSAGE {
        return Err(LaunchError::Setup(format!(
            "the sandbox spec is {} bytes, more than {}",
            body.len(),
            init::MAX_MESSAGE
        )));
    }
    let fds = [output.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [std::io::IoSlice::new(&body)];
    sendmsg::<()>(chan.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
        .map(drop)
        .map_err(|e| {
            LaunchError::Setup(format!(
                "handing the spec to the sandbox init: {}",
                e.desc()
            ))
        })
}

fn parse_failure(line: &str, program: &Path) -> LaunchError {
    let Some(rest) = line.strip_prefix("E ") else {
        return LaunchError::Setup(format!("unexpected status from the sandbox init: {line}"));
    };
    let (errno, text) = rest.split_once(' ').unwrap_or((rest, ""));
    match errno.parse::<i32>() {
        Ok(n) if n > 0 && text.starts_with("fork/exec ") => LaunchError::Spawn {
            program: program.to_path_buf(),
            source: std::io::Error::from_raw_os_error(n),
        },
        _ => LaunchError::Setup(text.to_string()),
    }
}

/// Waits for the init to exit and returns the runtime's wait status (SIGKILL when the init was
/// killed before it could report one).
async fn wait_exit(
    control: &SandboxProcess,
    mut status: Option<&mut tokio::io::BufReader<tokio::net::unix::pipe::Receiver>>,
) -> i32 {
    let mut reported = None;
    let mut line = String::new();
    // The status pipe closes when the init exits; read what it said until then.
    while let Some(status) = status.as_mut() {
        line.clear();
        match status.read_line(&mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if let Some(v) = line.trim_end().strip_prefix("X ") {
                    reported = v.parse::<i32>().ok();
                }
            }
        }
    }
    // SAFETY: the pidfd is owned by `control`, which outlives this registration.
    match unsafe {
        AsyncFd::register_with_interest(control.pidfd.clone(), tokio::io::Interest::READABLE)
    } {
        Ok(fd) => loop {
            if reap(control.pid) {
                break;
            }
            match fd.readable().await {
                Ok(mut g) => g.clear_ready(),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        },
        Err(_) => {
            while !reap(control.pid) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    reported.unwrap_or(libc::SIGKILL)
}

/// Reaps the init if it has exited.
fn reap(pid: libc::pid_t) -> bool {
    let mut ws = 0;
    // SAFETY: waitpid on our own child; WNOHANG never blocks.
    let r = unsafe { libc::waitpid(pid, &mut ws, libc::WNOHANG) };
    r == pid || (r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD))
}

struct SandboxProcess {
    pid: libc::pid_t,
    pidfd: Arc<OwnedFd>,
    exited: AtomicBool,
    cgroup: EnvCgroup,
    uid: Option<u32>,
}

impl ProcessControl for SandboxProcess {
    fn pid(&self) -> u32 {
        self.pid as u32
    }

    fn kill(&self) {
        if self.exited.load(Ordering::Acquire) {
            return;
        }
        // Killing the namespace's init kills every process in it. A pidfd cannot hit a reused pid.
        pidfd_kill(&self.pidfd);
    }

    fn peak_memory_bytes(&self) -> Option<u64> {
        self.cgroup.peak_bytes()
    }

    fn out_of_memory(&self) -> bool {
        self.cgroup.memory_stats().oom_kills > 0
    }

    fn runtime_uid(&self) -> Option<u32> {
        self.uid
    }
}

/// What the cloned child needs; everything is prepared before the clone.
struct ChildArgs {
    /// Become fds 0, 1, 2, 3 and 4.
    fds: [RawFd; 5],
    exe: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    /// The signal mask to restore before exec.
    mask: *const libc::sigset_t,
    /// Whether the clone makes a network namespace.
    new_net: bool,
}

/// The child side of the clone: runs on its own small stack in the parent's memory (CLONE_VM,
/// as posix_spawn does) until execve. Async-signal-safe calls only; nothing allocates.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` points at the parent's ChildArgs, alive until execve (CLONE_VFORK suspends
    // the parent until then); the calls below are async-signal-safe.
    unsafe {
        let a = &*(arg as *const ChildArgs);
        for (target, fd) in a.fds.iter().enumerate() {
            if libc::dup2(*fd, target as libc::c_int) < 0 {
                libc::_exit(126);
            }
        }
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        );
        libc::sigprocmask(libc::SIG_SETMASK, a.mask, std::ptr::null_mut());
        libc::execve(a.exe, a.argv, a.envp);
        libc::_exit(127)
    }
}

/// Clones the init into new mount, PID, IPC and UTS namespaces. CLONE_VM|CLONE_VFORK: no copy of
/// the server's page tables (and no copy-on-write faults in the server afterwards); the calling
/// thread waits until the child has executed the Nimbus binary. Signals stay blocked until then.
fn spawn_init(args: &ChildArgs) -> std::io::Result<(libc::pid_t, OwnedFd)> {
    const STACK: usize = 64 * 1024;
    let mut stack = vec![0u8; STACK];
    // The stack grows down: pass its (16-byte aligned) top.
    let top = (stack.as_mut_ptr() as usize + STACK) & !15;
    // SAFETY: sigset operations on local values.
    let (mut all, mut old): (libc::sigset_t, libc::sigset_t) =
        unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
    // SAFETY: as above.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
    }
    let child = ChildArgs {
        fds: args.fds,
        exe: args.exe,
        argv: args.argv,
        envp: args.envp,
        mask: &old,
        new_net: args.new_net,
    };
    let mut pidfd: libc::c_int = -1;
    let net = if args.new_net { libc::CLONE_NEWNET } else { 0 };
    let flags = net
        | libc::CLONE_VM
        | libc::CLONE_VFORK
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_PIDFD
        | libc::SIGCHLD;
    // SAFETY: the child runs `child_main` on `stack`, which outlives it (the parent is suspended
    // until the child executes); with CLONE_PIDFD the kernel writes the pidfd to `pidfd`.
    let pid = unsafe {
        libc::clone(
            child_main,
            top as *mut libc::c_void,
            flags,
            (&child as *const ChildArgs).cast_mut().cast(),
            &mut pidfd as *mut libc::c_int,
        )
    };
    let err = std::io::Error::last_os_error();
    // SAFETY: restoring this thread's mask.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    drop(stack);
    if pid < 0 {
        return Err(err);
    }
    // SAFETY: the kernel stored a fresh pidfd for the child.
    Ok((pid, unsafe { OwnedFd::from_raw_fd(pidfd) }))
}

fn pipe_cloexec() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fresh descriptors, which we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both were just created.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Duplicates `fd` to a number ≥ 10, so that placing the child's fds 0–4 cannot overwrite it.
fn high(fd: &OwnedFd) -> std::io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor we own.
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: just created.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// On the spawner thread: creates an environment's cgroups (without limits yet), then clones an
/// init into new namespaces and sends it its first message. The child only places its
/// descriptors, sets its parent-death signal and executes the Nimbus binary (async-signal-safe
/// calls only: the server is multi-threaded).
fn prepare(inner: &Inner, local: &mut net::Local) -> Result<Prepared, LaunchError> {
    let uid = inner.uids.take().ok_or_else(|| {
        LaunchError::Setup("every sandbox uid is in use (too many environments)".into())
    })?;
    match prepare_with(inner, local, uid) {
        Ok(p) => Ok(p),
        Err(e) => {
            inner.uids.release(uid);
            Err(e)
        }
    }
}

fn prepare_with(inner: &Inner, local: &mut net::Local, uid: u32) -> Result<Prepared, LaunchError> {
    let setup = |what: &str, e: std::io::Error| LaunchError::Setup(format!("{what}: {e}"));
    let slot = inner.next_slot.fetch_add(1, Ordering::Relaxed);
    let cgroup = inner
        .layout
        .create_env(&format!("e{slot}"))
        .map_err(|e| LaunchError::Setup(e.to_string()))?;
    let result = (|| {
        let first = serde_json::to_vec(&PrepareSpec {
            root: inner.root.clone(),
            cgroup_procs: cgroup.procs_files(),
            hostname: "localhost".into(),
        })
        .map_err(|e| LaunchError::Setup(format!("encoding the prepare message: {e}")))?;
        let (chan, child_chan) = nix::sys::socket::socketpair(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::SeqPacket,
            None,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| setup("socketpair", e.into()))?;
        nix::sys::socket::send(
            chan.as_raw_fd(),
            &first,
            nix::sys::socket::MsgFlags::empty(),
        )
        .map_err(|e| setup("sending the prepare message", e.into()))?;
        let (status_r, status_w) = pipe_cloexec().map_err(|e| setup("status pipe", e))?;
        let null = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .map(OwnedFd::from)
            .map_err(|e| setup("/dev/null", e))?;
        let (null, child_chan, status_w) = (
            high(&null).map_err(|e| setup("dup", e))?,
            high(&child_chan).map_err(|e| setup("dup", e))?,
            high(&status_w).map_err(|e| setup("dup", e))?,
        );
        let exe = c"/proc/self/exe";
        let arg0 = c"nimbus-init";
        let arg1 = std::ffi::CString::new(init::INIT_ARG)
            .map_err(|e| LaunchError::Setup(e.to_string()))?;
        let argv: [*const libc::c_char; 3] = [arg0.as_ptr(), arg1.as_ptr(), std::ptr::null()];
        let envp: [*const libc::c_char; 1] = [std::ptr::null()];
        let pid = spawn_init(&ChildArgs {
            fds: [
                null.as_raw_fd(),
                null.as_raw_fd(),
                null.as_raw_fd(),
                child_chan.as_raw_fd(),
                status_w.as_raw_fd(),
            ],
            exe: exe.as_ptr(),
            argv: argv.as_ptr(),
            envp: envp.as_ptr(),
            mask: std::ptr::null(),
            new_net: inner.network.own_namespace(),
        });
        let (pid, pidfd) = match pid {
            Ok(x) => x,
            Err(e) => return Err(setup("clone", e)),
        };
        drop((null, child_chan, status_w));
        Ok((pid, pidfd, status_r, chan))
    })();
    let (pid, pidfd, status, chan) = match result {
        Ok(x) => x,
        Err(e) => {
            cgroup.remove_now();
            return Err(e);
        }
    };
    match inner.network.prepare(local, pid, uid) {
        Ok(net) => Ok(Prepared {
            pid,
            pidfd,
            status,
            chan,
            cgroup,
            uid,
            net,
        }),
        Err(why) => {
            drop(chan);
            pidfd_kill(&pidfd);
            let mut ws = 0;
            // SAFETY: waitpid on our own child.
            unsafe { libc::waitpid(pid, &mut ws, 0) };
            cgroup.remove_blocking();
            Err(LaunchError::Setup(format!(
                "the environment's network: {why}"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_failures_become_launch_errors() {
        let bootstrap = Path::new("/var/task/bootstrap");
        match parse_failure(
            "E 13 fork/exec /var/task/bootstrap: Permission denied",
            bootstrap,
        ) {
            LaunchError::Spawn { program, source } => {
                assert_eq!(program, bootstrap);
                assert_eq!(source.raw_os_error(), Some(libc::EACCES));
            }
            other => panic!("unexpected {other:?}"),
        }
        match parse_failure("E 1 binding /x at /y: Operation not permitted", bootstrap) {
            LaunchError::Setup(text) => {
                assert_eq!(text, "binding /x at /y: Operation not permitted")
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            parse_failure("garbage", bootstrap),
            LaunchError::Setup(t) if t.contains("garbage")
        ));
    }
}
