//! The sandbox's init: the first process of an environment's PID namespace.
//!
//! The launcher clones a child into new mount, PID, IPC and UTS namespaces and executes the
//! Nimbus binary again as `nimbus __sandbox-init` (a fresh single-threaded process, so the setup
//! below is ordinary code rather than async-signal-safe code after a fork). It reads its
//! [`InitSpec`] from fd 3 and reports on fd 4:
//!
//! - `R` once the runtime process has been started,
//! - `E <errno> <text>` if setup or the runtime's exec failed (errno 0 when there is none),
//! - `X <wait status>` when the runtime exits.
//!
//! Then it stays as the namespace's PID 1: it reaps orphans, and when the runtime exits it exits
//! too, which makes the kernel kill everything else in the namespace. The setup is one ordered
//! sequence, as Firecracker's jailer does it: cgroups, root file system, hostname, pivot, then
//! in the runtime's own process rlimits, `no_new_privs`, capabilities, uid/gid, Landlock and
//! seccomp, and exec.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use serde::{Deserialize, Serialize};

/// The hidden subcommand the Nimbus binary dispatches to [`main`].
pub const INIT_ARG: &str = "__sandbox-init";

/// Everything init needs, sent by the launcher as JSON on fd 3.
#[derive(Debug, Serialize, Deserialize)]
pub struct InitSpec {
    /// An empty host directory used as the mount point of the new root (shared by every
    /// environment: each mounts over it in its own mount namespace).
    pub root: PathBuf,
    /// The function's unpacked code, mounted read-only at `/var/task`.
    pub task_root: PathBuf,
    /// Runtime files, mounted read-only at `/var/runtime`.
    pub runtime_dir: Option<PathBuf>,
    /// Host directories mounted read-only at the same path (a managed runtime's interpreter).
    pub ro_paths: Vec<PathBuf>,
    /// Size of `/tmp` in MiB.
    pub tmp_mb: u32,
    /// `cgroup.procs` files to join.
    pub cgroup_procs: Vec<PathBuf>,
    pub uid: u32,
    pub gid: u32,
    pub hostname: String,
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: String,
    pub max_open_files: u64,
    pub max_processes: u64,
    pub landlock: bool,
}

/// System directories from the host, read-only.
const HOST_DIRS: &[&str] = &["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// The parts of the host's `/etc` a runtime needs (name resolution, TLS roots, the dynamic
/// linker's cache, time zones). Nothing else of `/etc` is visible.
const ETC_ENTRIES: &[&str] = &[
    "hosts",
    "resolv.conf",
    "nsswitch.conf",
    "gai.conf",
    "host.conf",
    "protocols",
    "services",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "ssl",
    "ca-certificates",
    "ca-certificates.conf",
    "pki",
    "localtime",
    "alternatives",
    "mime.types",
];

/// Device nodes bound from the host into the private `/dev`.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom"];

#[derive(Debug)]
struct SetupError {
    step: String,
    errno: i32,
    detail: String,
}

impl SetupError {
    fn new(step: impl Into<String>, e: impl std::fmt::Display, errno: i32) -> SetupError {
        SetupError {
            step: step.into(),
            errno,
            detail: e.to_string(),
        }
    }
}

trait Step<T> {
    fn step(self, what: impl FnOnce() -> String) -> Result<T, SetupError>;
}

impl<T> Step<T> for nix::Result<T> {
    fn step(self, what: impl FnOnce() -> String) -> Result<T, SetupError> {
        self.map_err(|e| SetupError::new(what(), e.desc(), e as i32))
    }
}

impl<T> Step<T> for std::io::Result<T> {
    fn step(self, what: impl FnOnce() -> String) -> Result<T, SetupError> {
        self.map_err(|e| {
            let errno = e.raw_os_error().unwrap_or(0);
            SetupError::new(what(), e, errno)
        })
    }
}

/// Entry point of `nimbus __sandbox-init`. Never returns.
pub fn main() -> ! {
    // SAFETY: fd 4 is the status pipe the launcher placed there; nothing else owns it.
    let mut status = unsafe { File::from_raw_fd(4) };
    // The runtime must not inherit the status pipe.
    // SAFETY: fcntl on an fd we own.
    unsafe { libc::fcntl(4, libc::F_SETFD, libc::FD_CLOEXEC) };
    let code = match run(&mut status) {
        Ok(code) => code,
        Err(e) => {
            let line = format!("E {} {}: {}\n", e.errno, e.step, e.detail);
            let _ = status.write_all(line.replace('\n', " ").trim_end().as_bytes());
            let _ = status.write_all(b"\n");
            1
        }
    };
    std::process::exit(code)
}

fn run(status: &mut File) -> Result<i32, SetupError> {
    // 0. The spec.
    // SAFETY: fd 3 is the spec pipe the launcher placed there; nothing else owns it.
    let mut spec_pipe = unsafe { File::from_raw_fd(3) };
    let mut raw = String::new();
    spec_pipe
        .read_to_string(&mut raw)
        .step(|| "reading the sandbox spec".into())?;
    drop(spec_pipe);
    let spec: InitSpec = serde_json::from_str(&raw)
        .map_err(|e| SetupError::new("parsing the sandbox spec", e, 0))?;

    // 1. cgroups: join the environment's groups before anything is started, then give the
    //    environment its own cgroup namespace (its /proc/self/cgroup shows "/").
    for procs in &spec.cgroup_procs {
        std::fs::write(procs, "0").step(|| format!("joining cgroup {}", procs.display()))?;
    }
    let _ = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP);
    // Under memory pressure the kernel must pick the runtime, never its init.
    let _ = std::fs::write("/proc/self/oom_score_adj", "-1000");

    // 2. The root file system, 3. hostname, 4. pivot.
    build_root(&spec)?;
    nix::unistd::sethostname(&spec.hostname).step(|| "setting the hostname".into())?;
    pivot(&spec.root)?;

    // 5. The runtime process: its own session, limits, no privileges, filters, exec.
    let seccomp = super::seccomp::program()
        .map_err(|e| SetupError::new("building the seccomp filter", e, 0))?;
    let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(63);
    let mut cmd = std::process::Command::new(&spec.program);
    cmd.args(&spec.args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.cwd);
    let (uid, gid) = (spec.uid, spec.gid);
    let (nofile, nproc, landlock) = (spec.max_open_files, spec.max_processes, spec.landlock);
    // SAFETY: init is single-threaded, so the closure may allocate; it runs in the forked child.
    unsafe {
        cmd.pre_exec(move || {
            child_setup(uid, gid, nofile, nproc, last_cap, landlock)?;
            super::seccomp::apply(&seccomp)?;
            Ok(())
        });
    }
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let errno = e.raw_os_error().unwrap_or(0);
            let _ = writeln!(status, "E {errno} fork/exec {}: {e}", spec.program);
            return Ok(1);
        }
    };
    let runtime = child.id() as libc::pid_t;
    status
        .write_all(b"R\n")
        .step(|| "reporting the start".into())?;

    // 6. PID 1: reap everything; leave with the runtime.
    loop {
        let mut ws: libc::c_int = 0;
        // SAFETY: waitpid writes the status into `ws`.
        let pid = unsafe { libc::waitpid(-1, &mut ws, 0) };
        if pid == runtime {
            let _ = writeln!(status, "X {ws}");
            return Ok(0);
        }
        if pid < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINTR) {
                let _ = writeln!(status, "X {}", libc::SIGKILL);
                return Ok(0);
            }
        }
    }
}

/// The runtime's own setup between fork and exec, in this order: session, OOM score, rlimits,
/// `no_new_privs`, capability bounding set, uid/gid (which clears every capability), Landlock.
fn child_setup(
    uid: u32,
    gid: u32,
    nofile: u64,
    nproc: u64,
    last_cap: u32,
    landlock: bool,
) -> std::io::Result<()> {
    let check = |r: libc::c_int| {
        if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    // SAFETY: plain syscalls on this (single-threaded) process.
    unsafe {
        check(libc::setsid())?;
        let _ = std::fs::write("/proc/self/oom_score_adj", "0");
        let lim = |n: u64| libc::rlimit {
            rlim_cur: n,
            rlim_max: n,
        };
        check(libc::setrlimit(libc::RLIMIT_NOFILE, &lim(nofile)))?;
        check(libc::setrlimit(libc::RLIMIT_CORE, &lim(0)))?;
        // Per uid, and every environment has its own uid: a second bound on processes beside
        // the PIDs cgroup.
        check(libc::setrlimit(libc::RLIMIT_NPROC, &lim(nproc)))?;
        check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
        for cap in 0..=last_cap {
            let _ = libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0);
        }
        let _ = libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        );
        check(libc::setgroups(0, std::ptr::null()))?;
        check(libc::setresgid(gid, gid, gid))?;
        check(libc::setresuid(uid, uid, uid))?;
    }
    if landlock {
        restrict_filesystem()?;
    }
    Ok(())
}

/// Landlock, where the kernel has it: reading and executing anywhere in the (already minimal)
/// root, writing only under `/tmp` and `/dev`; no signals or abstract sockets outside the
/// environment. Best effort: older kernels enforce what they know.
fn restrict_filesystem() -> std::io::Result<()> {
    use landlock::{
        ABI, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, Scope, path_beneath_rules,
    };
    let abi = ABI::V6;
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.scope(Scope::from_all(abi)))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules(["/"], AccessFs::from_read(abi))))
        .and_then(|r| {
            r.add_rules(path_beneath_rules(
                ["/tmp", "/dev"],
                AccessFs::from_all(abi),
            ))
        })
        .and_then(|r| r.restrict_self());
    status.map(|_| ()).map_err(std::io::Error::other)
}

fn mkdir_p(p: &Path) -> Result<(), SetupError> {
    std::fs::create_dir_all(p).step(|| format!("creating {}", p.display()))
}

fn touch(p: &Path) -> Result<(), SetupError> {
    File::create(p)
        .map(drop)
        .step(|| format!("creating {}", p.display()))
}

/// A read-only, nosuid, nodev bind mount (a bind mount takes its flags only on a remount).
fn bind_ro(src: &Path, dst: &Path) -> Result<(), SetupError> {
    mount(
        Some(src),
        dst,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .step(|| format!("binding {} at {}", src.display(), dst.display()))?;
    mount(
        None::<&str>,
        dst,
        None::<&str>,
        MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV,
        None::<&str>,
    )
    .step(|| format!("making {} read-only", dst.display()))
}

/// Mirrors a host entry into the new root: a symlink stays a symlink (merged-/usr systems link
/// `/bin` to `usr/bin`), a directory or file is bound read-only.
fn mirror(host: &Path, inside: &Path) -> Result<(), SetupError> {
    let Ok(meta) = std::fs::symlink_metadata(host) else {
        return Ok(());
    };
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(host).step(|| format!("reading {}", host.display()))?;
        // A relative link that stays inside, or a link into /usr (mirrored too), is kept;
        // any other link would dangle, so what it points at is bound instead.
        let stays = (target.is_relative()
            && !target
                .components()
                .any(|c| c == std::path::Component::ParentDir))
            || target.starts_with("/usr");
        if stays {
            return std::os::unix::fs::symlink(&target, inside)
                .step(|| format!("linking {}", inside.display()));
        }
        let Ok(real) = std::fs::canonicalize(host) else {
            return Ok(());
        };
        return mirror(&real, inside);
    }
    if meta.is_dir() {
        mkdir_p(inside)?;
    } else {
        touch(inside)?;
    }
    bind_ro(host, inside)
}

fn build_root(spec: &InitSpec) -> Result<(), SetupError> {
    let root = spec.root.as_path();
    let at = |p: &str| root.join(p.trim_start_matches('/'));
    // Nothing mounted from here on may propagate back to the host's mount namespace.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .step(|| "making mounts private".into())?;
    // The new root: a small tmpfs holding only mount points, links and generated files.
    mount(
        Some("tmpfs"),
        root,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("size=1m,nr_inodes=4096,mode=755"),
    )
    .step(|| format!("mounting the root tmpfs at {}", root.display()))?;

    // The host's system directories, read-only.
    for d in HOST_DIRS {
        mirror(&Path::new("/").join(d), &at(d))?;
    }

    // /etc: a few host files, and our own passwd/group naming the sandbox user.
    mkdir_p(&at("etc"))?;
    for e in ETC_ENTRIES {
        mirror(&Path::new("/etc").join(e), &at("etc").join(e))?;
    }
    let write = |p: PathBuf, text: String| {
        std::fs::write(&p, text).step(|| format!("writing {}", p.display()))
    };
    write(
        at("etc/passwd"),
        format!(
            "root:x:0:0:root:/root:/sbin/nologin\nsbx_user1051:x:{}:{}::/home/sbx_user1051:/sbin/nologin\n",
            spec.uid, spec.gid
        ),
    )?;
    write(
        at("etc/group"),
        format!("root:x:0:\nsbx_user1051:x:{}:\n", spec.gid),
    )?;
    write(at("etc/hostname"), format!("{}\n", spec.hostname))?;

    // The function's code and the runtime, read-only; /opt for layers.
    mkdir_p(&at("var/task"))?;
    bind_ro(&spec.task_root, &at("var/task"))?;
    mkdir_p(&at("var/runtime"))?;
    if let Some(rt) = &spec.runtime_dir {
        bind_ro(rt, &at("var/runtime"))?;
    }
    mkdir_p(&at("opt"))?;
    for p in &spec.ro_paths {
        let inside = at(&p.to_string_lossy());
        mkdir_p(&inside)?;
        bind_ro(p, &inside)?;
    }

    // A private /tmp of the function's ephemeral storage size.
    mkdir_p(&at("tmp"))?;
    mount(
        Some("tmpfs"),
        &at("tmp"),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(format!("size={}m,mode=1777", spec.tmp_mb).as_str()),
    )
    .step(|| "mounting /tmp".into())?;

    // /proc of this PID namespace only.
    mkdir_p(&at("proc"))?;
    mount(
        Some("proc"),
        &at("proc"),
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .step(|| "mounting /proc".into())?;

    // A minimal /dev (no /dev/shm, as on Lambda).
    mkdir_p(&at("dev"))?;
    mount(
        Some("tmpfs"),
        &at("dev"),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("size=64k,nr_inodes=64,mode=755"),
    )
    .step(|| "mounting /dev".into())?;
    for d in DEVICES {
        let inside = at("dev").join(d);
        touch(&inside)?;
        let host = Path::new("/dev").join(d);
        mount(
            Some(&host),
            &inside,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .step(|| format!("binding {}", host.display()))?;
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(target, at("dev").join(name))
            .step(|| format!("linking /dev/{name}"))?;
    }
    Ok(())
}

/// Makes the prepared tree the root, drops the host's root from view, and makes the root
/// file system itself read-only.
fn pivot(root: &Path) -> Result<(), SetupError> {
    nix::unistd::chdir(root).step(|| "entering the new root".into())?;
    // pivot_root(".", ".") stacks the old root on top of the new one; detaching the top
    // mount leaves only the new root, with no directory needed for the old one.
    nix::unistd::pivot_root(".", ".").step(|| "pivot_root".into())?;
    umount2(".", MntFlags::MNT_DETACH).step(|| "detaching the host root".into())?;
    nix::unistd::chdir("/").step(|| "entering /".into())?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        None::<&str>,
    )
    .step(|| "making the root read-only".into())
}
