//! The sandbox's init: the first process of an environment's PID namespace.
//!
//! The launcher clones a child into new mount, PID, IPC and UTS namespaces and executes the
//! Nimbus binary again as `nimbus __sandbox-init` (a fresh single-threaded process, so the setup
//! below is ordinary code rather than async-signal-safe code after a fork). Init works in two
//! stages, so that launchers can keep a few prepared ahead of demand: fd 3 is a seqpacket socket
//! whose first message ([`PrepareSpec`]) lets it join its cgroups (slow on cgroup v1: every
//! migration waits for an RCU grace period) and build the function-independent part of its root;
//! the second message ([`InitSpec`], with the log pipe attached as `SCM_RIGHTS`) names the
//! function. It reports on fd 4:
//!
//! - `P` once prepared,
//! - `R <phase timings>` once the runtime process has been started,
//! - `E <errno> <text>` if setup or the runtime's exec failed (errno 0 when there is none),
//! - `X <wait status>` when the runtime exits.
//!
//! Then it stays as the namespace's PID 1: it reaps orphans, and when the runtime exits it exits
//! too, which makes the kernel kill everything else in the namespace. The setup is one ordered
//! sequence, as Firecracker's jailer does it: cgroups, root file system, hostname, pivot, then
//! in the runtime's own process rlimits, `no_new_privs`, capabilities, uid/gid, Landlock and
//! seccomp, and exec.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::socket::MsgFlags;
use serde::{Deserialize, Serialize};

/// The hidden subcommand the Nimbus binary dispatches to [`main`].
pub const INIT_ARG: &str = "__sandbox-init";

/// The first message: what init does before it knows its function.
#[derive(Debug, Serialize, Deserialize)]
pub struct PrepareSpec {
    /// An empty host directory used as the mount point of the new root (shared by every
    /// environment: each mounts over it in its own mount namespace).
    pub root: PathBuf,
    /// `cgroup.procs` files to join.
    pub cgroup_procs: Vec<PathBuf>,
    /// The environment's host name (in its own UTS namespace).
    pub hostname: String,
}

/// The second message: the function to run (the log pipe's write end comes with it).
#[derive(Debug, Serialize, Deserialize)]
pub struct InitSpec {
    /// The function's unpacked code, mounted read-only at `/var/task`.
    pub task_root: PathBuf,
    /// Runtime files, mounted read-only at `/var/runtime`.
    pub runtime_dir: Option<PathBuf>,
    /// Host directories mounted read-only at the same path (a managed runtime's interpreter).
    pub ro_paths: Vec<PathBuf>,
    /// Size of `/tmp` in MiB.
    pub tmp_mb: u32,
    /// The uid the runtime runs as (the environment's own, from the pool).
    pub uid: u32,
    /// The gid the runtime runs as (equal to the uid); it has no supplementary groups.
    pub gid: u32,
    /// The executable, as a path inside the new root.
    pub program: String,
    /// Its arguments, without `argv[0]`.
    pub args: Vec<String>,
    /// The runtime's complete environment.
    pub env: Vec<(String, String)>,
    /// The working directory inside the new root.
    pub cwd: String,
    /// `RLIMIT_NOFILE` for the runtime.
    pub max_open_files: u64,
    /// `RLIMIT_NPROC` for the runtime's uid.
    pub max_processes: u64,
    /// Whether to apply the Landlock rules (read and execute anywhere, write only under `/tmp` and
    /// `/dev`) before `exec`.
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

/// Largest message on the launcher socket.
pub const MAX_MESSAGE: usize = 256 * 1024;

/// Receives the second message: the spec and the log pipe. `None` when the launcher closed the
/// socket instead (a prepared environment that is no longer wanted).
fn receive_spec(
    chan: &OwnedFd,
    buf: &mut [u8],
) -> Result<(Option<InitSpec>, Option<OwnedFd>), SetupError> {
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let msg = nix::sys::socket::recvmsg::<()>(
        chan.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .step(|| "reading the function spec".into())?;
    let mut fd = None;
    for c in msg
        .cmsgs()
        .step(|| "reading the attached log pipe".into())?
    {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
            for raw in fds {
                // SAFETY: the kernel just installed this descriptor for us.
                let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                fd.get_or_insert(owned);
            }
        }
    }
    let n = msg.bytes;
    if n == 0 {
        return Ok((None, None));
    }
    let spec: InitSpec = serde_json::from_slice(&iov[0][..n])
        .map_err(|e| SetupError::new("parsing the function spec", e, 0))?;
    Ok((Some(spec), fd))
}

fn run(status: &mut File) -> Result<i32, SetupError> {
    let t0 = std::time::Instant::now();
    let mut marks: Vec<(&str, u128)> = Vec::new();
    // 0. The first message.
    // SAFETY: fd 3 is the launcher's socket; nothing else owns it.
    let chan = unsafe { OwnedFd::from_raw_fd(3) };
    let mut buf = vec![0u8; MAX_MESSAGE];
    let n = nix::sys::socket::recv(chan.as_raw_fd(), &mut buf, MsgFlags::empty())
        .step(|| "reading the prepare message".into())?;
    let prep: PrepareSpec = serde_json::from_slice(&buf[..n])
        .map_err(|e| SetupError::new("parsing the prepare message", e, 0))?;

    // 1. cgroups: join the environment's groups before anything is started, then give the
    //    environment its own cgroup namespace (its /proc/self/cgroup shows "/").
    for procs in &prep.cgroup_procs {
        std::fs::write(procs, "0").step(|| format!("joining cgroup {}", procs.display()))?;
    }
    let _ = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP);
    // Under memory pressure the kernel must pick the runtime, never its init.
    let _ = std::fs::write("/proc/self/oom_score_adj", "-1000");
    marks.push(("cgroups", t0.elapsed().as_micros()));

    // 2. The function-independent part of the root, and the hostname.
    build_base(&prep.root)?;
    nix::unistd::sethostname(&prep.hostname).step(|| "setting the hostname".into())?;
    status
        .write_all(b"P\n")
        .step(|| "reporting readiness".into())?;

    // 3. The function (and the log pipe, which becomes stdout and stderr).
    let (spec, log_fd) = receive_spec(&chan, &mut buf)?;
    let Some(spec) = spec else {
        // The launcher let this prepared environment go unused.
        return Ok(0);
    };
    let t0 = std::time::Instant::now();
    marks.clear();
    if let Some(fd) = log_fd {
        for target in [1, 2] {
            // SAFETY: dup2 onto stdout/stderr of this process.
            if unsafe { libc::dup2(fd.as_raw_fd(), target) } < 0 {
                return Err(SetupError::new(
                    "placing the log pipe",
                    std::io::Error::last_os_error(),
                    0,
                ));
            }
        }
    }
    drop(chan);
    build_function(&prep.root, &spec)?;
    marks.push(("root", t0.elapsed().as_micros()));

    // 4. Pivot into the new root.
    pivot(&prep.root)?;
    marks.push(("pivot", t0.elapsed().as_micros()));

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
    marks.push(("spawn", t0.elapsed().as_micros()));
    let timings: String = marks.iter().map(|(k, v)| format!(" {k}={v}")).collect();
    status
        .write_all(format!("R{timings}\n").as_bytes())
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

/// The function-independent part of the root: a small tmpfs with the host's system directories,
/// a few files of `/etc`, `/opt`, this namespace's `/proc` and a minimal `/dev`.
fn build_base(root: &Path) -> Result<(), SetupError> {
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
    mkdir_p(&at("etc"))?;
    for e in ETC_ENTRIES {
        mirror(&Path::new("/etc").join(e), &at("etc").join(e))?;
    }
    mkdir_p(&at("opt"))?;

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

/// The function's part: its user in `/etc/passwd`, its code at `/var/task`, the runtime at
/// `/var/runtime`, the interpreter's install, and a `/tmp` of its ephemeral-storage size.
fn build_function(root: &Path, spec: &InitSpec) -> Result<(), SetupError> {
    let at = |p: &str| root.join(p.trim_start_matches('/'));
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

    mkdir_p(&at("var/task"))?;
    bind_ro(&spec.task_root, &at("var/task"))?;
    mkdir_p(&at("var/runtime"))?;
    if let Some(rt) = &spec.runtime_dir {
        bind_ro(rt, &at("var/runtime"))?;
    }
    for p in &spec.ro_paths {
        let inside = at(&p.to_string_lossy());
        mkdir_p(&inside)?;
        bind_ro(p, &inside)?;
    }

    mkdir_p(&at("tmp"))?;
    mount(
        Some("tmpfs"),
        &at("tmp"),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(format!("size={}m,mode=1777", spec.tmp_mb).as_str()),
    )
    .step(|| "mounting /tmp".into())?;
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
