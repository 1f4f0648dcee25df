//! Launchers start a runtime process for an environment. The trait is the seam where the
//! sandboxed launcher plugs in; [`ProcessLauncher`] is the plain-process implementation: its own
//! session (so the whole process group can be killed), rlimits (1024 open files, no core dumps)
//! and a parent-death signal so nothing outlives a crashed server.
//!
//! Processes are forked from one dedicated spawner thread: fork/exec stays off the async reactor,
//! and the parent-death signal (which Linux ties to the forking *thread*) is tied to a thread
//! that lives as long as the server.
//!
//! A server running as root never runs plain processes as root: given a uid pool, each
//! environment runs as a uid of its own (no supplementary groups), its Runtime API answers only
//! that uid, and when it ends every process still running as that uid is killed before the uid
//! is handed out again.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use tokio::sync::oneshot;

/// Everything a launcher needs to start one runtime process.
#[derive(Debug)]
pub struct LaunchSpec {
    /// The executable, as the process sees it (a guest path under a sandbox).
    pub program: PathBuf,
    /// Its arguments, without `argv[0]`.
    pub args: Vec<String>,
    /// The complete environment (nothing is inherited from the server).
    pub env: Vec<(String, String)>,
    /// The working directory, as the process sees it (the task root).
    pub cwd: PathBuf,
    /// `MemorySize` in MiB; the sandbox enforces it through cgroups, the plain-process launcher
    /// does not.
    pub memory_mb: u32,
    /// Where the process's stdout and stderr go (the write end of the environment's log pipe).
    pub output: OwnedFd,
    /// `RLIMIT_NOFILE` for the process.
    pub max_open_files: u64,
    /// The environment's id (names its cgroups).
    pub name: String,
    /// The unpacked code on the host (`/var/task` in a sandbox).
    pub task_root: PathBuf,
    /// Runtime files on the host (`/var/runtime` in a sandbox).
    pub runtime_dir: Option<PathBuf>,
    /// Host directories the runtime needs at their own path (a managed runtime's interpreter).
    pub ro_paths: Vec<PathBuf>,
    /// `/tmp` size in MiB.
    pub ephemeral_mb: u32,
}

/// Where a launcher's processes see the code and the runtime files, when not at their host paths.
#[derive(Debug, Clone)]
pub struct GuestPaths {
    /// Where the code appears (`/var/task`).
    pub task_root: PathBuf,
    /// Where the runtime files appear (`/var/runtime`).
    pub runtime_dir: PathBuf,
}

/// Why a runtime process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// `fork` or `exec` failed.
    #[error("fork/exec {program}: {source}")]
    Spawn {
        /// The program that was to run.
        program: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Building the sandbox failed (namespaces, mounts, cgroups, network); which step and why.
    #[error("sandbox setup failed: {0}")]
    Setup(String),
    /// The launcher's worker thread has stopped (the server is shutting down).
    #[error("the launcher has shut down")]
    Gone,
}

/// A future that resolves when the process exits.
pub type ExitFuture = Pin<Box<dyn std::future::Future<Output = ExitStatus> + Send>>;

/// What a launch yields.
pub struct Launched {
    /// Control over the process.
    pub control: Arc<dyn ProcessControl>,
    /// Resolves when it exits.
    pub exit: ExitFuture,
    /// The Runtime API's listener, when the launcher made it (inside the environment's own
    /// network namespace); otherwise the environment listens on the host's loopback.
    pub runtime_api: Option<std::net::TcpListener>,
}

/// What a launch yields, or why it failed.
pub type SpawnReply = Result<Launched, LaunchError>;

/// The future a launcher returns.
pub type LaunchFuture<'a> = Pin<Box<dyn std::future::Future<Output = SpawnReply> + Send + 'a>>;

/// Control over a launched process (and everything it started).
pub trait ProcessControl: Send + Sync {
    /// The process id, in the server's PID namespace.
    fn pid(&self) -> u32;
    /// Kills the process and its descendants (SIGKILL).
    fn kill(&self);
    /// Peak memory use in bytes, if the launcher can tell.
    fn peak_memory_bytes(&self) -> Option<u64>;
    /// Whether the kernel killed a process of this environment for exceeding its memory.
    fn out_of_memory(&self) -> bool {
        false
    }
    /// The uid the runtime runs as, when it is the environment's own: its Runtime API then
    /// serves only that uid.
    fn runtime_uid(&self) -> Option<u32> {
        None
    }
}

/// Starts runtime processes.
pub trait Launcher: Send + Sync + 'static {
    /// A short name for logs and `nimbus doctor`.
    fn name(&self) -> &'static str;
    /// Starts the process; resolves once it has been forked.
    fn launch(&self, spec: LaunchSpec) -> LaunchFuture<'_>;
    /// Where processes see the code and runtime files; `None` means at their host paths.
    fn guest_paths(&self) -> Option<GuestPaths> {
        None
    }
    /// `AWS_LAMBDA_RUNTIME_API` inside environments, when the launcher provides the listener
    /// itself ([`Launched::runtime_api`]).
    fn guest_runtime_api(&self) -> Option<String> {
        None
    }
    /// `AWS_ENDPOINT_URL` inside environments, when it differs from the server's public URL.
    fn guest_endpoint(&self) -> Option<String> {
        None
    }
    /// Releases what the launcher holds ahead of demand (at server shutdown).
    fn shutdown(&self) {}
    /// What isolation is in force (for `nimbus doctor`).
    fn features(&self) -> Vec<crate::sandbox::Feature> {
        vec![crate::sandbox::Feature {
            name: "isolation",
            active: false,
            detail: "plain processes: rlimits (1024 files, no core dumps) and a session per environment; no namespaces, cgroups or filters".into(),
        }]
    }
}

struct SpawnJob {
    spec: LaunchSpec,
    reply: oneshot::Sender<SpawnReply>,
}

/// The plain-process launcher.
pub struct ProcessLauncher {
    jobs: std::sync::Mutex<mpsc::Sender<SpawnJob>>,
    uids: Option<Arc<crate::uids::UidPool>>,
}

impl ProcessLauncher {
    /// Starts the spawner thread. Must be called inside a tokio runtime. With `uids`, each
    /// environment runs as its own uid from the pool (required when the server is root).
    pub fn new(uids: Option<Arc<crate::uids::UidPool>>) -> std::io::Result<ProcessLauncher> {
        // SAFETY: geteuid has no preconditions.
        if uids.is_none() && unsafe { libc::geteuid() } == 0 {
            return Err(std::io::Error::other(
                "plain processes never run as root: give the launcher a uid pool",
            ));
        }
        let (tx, rx) = mpsc::channel::<SpawnJob>();
        let handle = tokio::runtime::Handle::current();
        let pool = uids.clone();
        std::thread::Builder::new()
            .name("nimbus-spawner".into())
            .spawn(move || {
                let _guard = handle.enter();
                while let Ok(job) = rx.recv() {
                    let _ = job.reply.send(spawn_plain(job.spec, pool.as_ref()));
                }
            })?;
        Ok(ProcessLauncher {
            jobs: std::sync::Mutex::new(tx),
            uids,
        })
    }
}

impl Launcher for ProcessLauncher {
    fn name(&self) -> &'static str {
        "process"
    }

    fn features(&self) -> Vec<crate::sandbox::Feature> {
        let detail = match &self.uids {
            Some(p) => format!(
                "plain processes, each as its own uid ({}..{}), rlimits (1024 files, no core dumps) and a session per environment; no namespaces, cgroups or filters",
                p.base(),
                u64::from(p.base()) + u64::from(p.count())
            ),
            None => "plain processes as the server's user: rlimits (1024 files, no core dumps) and a session per environment; no namespaces, cgroups or filters".into(),
        };
        vec![crate::sandbox::Feature {
            name: "isolation",
            active: false,
            detail,
        }]
    }

    fn launch(&self, spec: LaunchSpec) -> LaunchFuture<'_> {
        Box::pin(async move {
            let (reply, rx) = oneshot::channel();
            {
                let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
                jobs.send(SpawnJob { spec, reply })
                    .map_err(|_| LaunchError::Gone)?;
            }
            rx.await.map_err(|_| LaunchError::Gone)?
        })
    }
}

struct PlainProcess {
    pid: u32,
    /// The environment's own uid, when the launcher has a pool.
    uid: Option<u32>,
    exited: AtomicBool,
    memory: std::sync::Mutex<MemoryProbe>,
}

/// Peak-memory sampling for the plain launcher. `/proc/<pid>/status` (VmHWM, the true peak) is
/// costly for the kernel to render, so it is read at most once a second; in between, the cheap
/// `/proc/<pid>/statm` resident size raises the peak. Both files stay open and are re-read.
#[derive(Default)]
struct MemoryProbe {
    status: Option<std::fs::File>,
    statm: Option<std::fs::File>,
    last_status: Option<std::time::Instant>,
    peak: u64,
}

fn reread(f: &mut std::fs::File, buf: &mut String) -> Option<()> {
    use std::io::{Read, Seek};
    buf.clear();
    f.seek(std::io::SeekFrom::Start(0)).ok()?;
    f.read_to_string(buf).ok()?;
    Some(())
}

impl ProcessControl for PlainProcess {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn kill(&self) {
        // The runtime is a session leader, so its pid is also its process group id; killing the
        // group takes its children with it. After the leader was reaped the group may live on.
        let pgid = nix::unistd::Pid::from_raw(self.pid as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        if !self.exited.load(Ordering::Acquire) {
            let _ = nix::sys::signal::kill(pgid, nix::sys::signal::Signal::SIGKILL);
        }
        // Processes that left the group (a new session) still run as the environment's uid.
        if let Some(uid) = self.uid {
            kill_uid(uid);
        }
    }

    fn runtime_uid(&self) -> Option<u32> {
        self.uid
    }

    fn peak_memory_bytes(&self) -> Option<u64> {
        let mut m = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        let mut buf = String::with_capacity(1536);
        let due = m
            .last_status
            .is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(1));
        if due {
            if m.status.is_none() {
                m.status = std::fs::File::open(format!("/proc/{}/status", self.pid)).ok();
            }
            if let Some(f) = m.status.as_mut()
                && reread(f, &mut buf).is_some()
                && let Some(kb) = buf
                    .lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                m.peak = m.peak.max(kb * 1024);
                m.last_status = Some(std::time::Instant::now());
            }
        } else {
            if m.statm.is_none() {
                m.statm = std::fs::File::open(format!("/proc/{}/statm", self.pid)).ok();
            }
            if let Some(f) = m.statm.as_mut()
                && reread(f, &mut buf).is_some()
                && let Some(pages) = buf
                    .split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            {
                // SAFETY: sysconf has no preconditions.
                let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
                m.peak = m.peak.max(pages * page);
            }
        }
        (m.peak > 0).then_some(m.peak)
    }
}

/// SIGKILLs every process whose real or effective uid is `uid`; returns how many were found.
fn kill_uid(uid: u32) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut found = 0;
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let owned = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .is_some_and(|ids| {
                ids.split_whitespace()
                    .take(2)
                    .any(|id| id.parse::<u32>() == Ok(uid))
            });
        let zombie = status
            .lines()
            .find_map(|l| l.strip_prefix("State:"))
            .is_some_and(|st| st.trim_start().starts_with('Z'));
        if owned && !zombie {
            found += 1;
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    found
}

/// Kills what is left of an environment's uid until nothing is, then frees the uid.
async fn reclaim_uid(pool: Arc<crate::uids::UidPool>, uid: u32) {
    for _ in 0..200 {
        let left = tokio::task::spawn_blocking(move || kill_uid(uid))
            .await
            .unwrap_or(1);
        if left == 0 {
            pool.release(uid);
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // Never handed out again: something of the old environment survives SIGKILL.
    tracing::error!(
        uid,
        "processes of an environment's uid survive SIGKILL; the uid is retired"
    );
}

fn spawn_plain(spec: LaunchSpec, uids: Option<&Arc<crate::uids::UidPool>>) -> SpawnReply {
    use std::os::unix::process::CommandExt;
    let uid = match uids {
        Some(pool) => Some(pool.take().ok_or_else(|| {
            LaunchError::Setup("every environment uid is in use (too many environments)".into())
        })?),
        None => None,
    };
    let give_back = |uid: Option<u32>| {
        if let (Some(pool), Some(u)) = (uids, uid) {
            pool.release(u);
        }
    };
    let stderr = match spec.output.try_clone() {
        Ok(f) => f,
        Err(source) => {
            give_back(uid);
            return Err(LaunchError::Spawn {
                program: spec.program.clone(),
                source,
            });
        }
    };
    let mut cmd = std::process::Command::new(&spec.program);
    cmd.args(&spec.args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::from(spec.output))
        .stderr(Stdio::from(stderr));
    if let Some(u) = uid {
        // std drops the supplementary groups too when it changes the uid as root.
        cmd.uid(u).gid(u);
    }
    let nofile = spec.max_open_files;
    let own_uid = uid.is_some();
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe libc calls
    // (no allocation, no locks).
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) < 0
            {
                return Err(std::io::Error::last_os_error());
            }
            let files = libc::rlimit {
                rlim_cur: nofile,
                rlim_max: nofile,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &files) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let core = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::setrlimit(libc::RLIMIT_CORE, &core) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Processes per uid: exact when the environment has a uid of its own (as in the
            // sandbox), so a fork bomb stops at 1024 and the uid can be reclaimed.
            if own_uid {
                let procs = libc::rlimit {
                    rlim_cur: 1024,
                    rlim_max: 1024,
                };
                if libc::setrlimit(libc::RLIMIT_NPROC, &procs) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = match tokio::process::Command::from(cmd)
        .kill_on_drop(false)
        .spawn()
    {
        Ok(c) => c,
        Err(source) => {
            give_back(uid);
            return Err(LaunchError::Spawn {
                program: spec.program.clone(),
                source,
            });
        }
    };
    let pid = child.id().unwrap_or(0);
    let pool = uids.cloned();
    let control = Arc::new(PlainProcess {
        pid,
        uid,
        exited: AtomicBool::new(false),
        memory: std::sync::Mutex::new(MemoryProbe::default()),
    });
    let watch = control.clone();
    let exit: ExitFuture = Box::pin(async move {
        let status = match child.wait().await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(pid, error = %e, "waiting for runtime process failed");
                std::os::unix::process::ExitStatusExt::from_raw(0xff00)
            }
        };
        watch.exited.store(true, Ordering::Release);
        if let (Some(pool), Some(u)) = (pool, uid) {
            reclaim_uid(pool, u).await;
        }
        status
    });
    Ok(Launched {
        control,
        exit,
        runtime_api: None,
    })
}

/// Renders an exit status the way Lambda reports it (Go's `ExitError` text):
/// `exit status 1`, `signal: killed`.
pub fn describe_exit(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    match status.signal() {
        Some(sig) => {
            let name = match sig {
                libc::SIGKILL => "killed",
                libc::SIGTERM => "terminated",
                libc::SIGSEGV => "segmentation fault",
                libc::SIGABRT => "aborted",
                libc::SIGBUS => "bus error",
                libc::SIGILL => "illegal instruction",
                libc::SIGFPE => "floating point exception",
                libc::SIGINT => "interrupt",
                libc::SIGPIPE => "broken pipe",
                libc::SIGHUP => "hangup",
                _ => return format!("signal: {sig}"),
            };
            format!("signal: {name}")
        }
        None => "exit status unknown".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn exit_statuses_render_like_lambda() {
        assert_eq!(
            describe_exit(&ExitStatus::from_raw(1 << 8)),
            "exit status 1"
        );
        assert_eq!(describe_exit(&ExitStatus::from_raw(9)), "signal: killed");
        assert_eq!(
            describe_exit(&ExitStatus::from_raw(11)),
            "signal: segmentation fault"
        );
    }
}
