//! cgroups for sandboxed environments, on cgroup v1 and v2 alike.
//!
//! At start-up [`CgroupLayout::detect`] finds, for each controller the sandbox needs (memory,
//! pids, cpu), which hierarchy holds it: a v1 mount of its own (`/sys/fs/cgroup/memory`) or the
//! v2 unified mount. Nimbus nests everything under the server's own cgroup, in a group named
//! `nimbus-<server pid>`, so it stays inside whatever limits the host gave the server; groups left
//! by a crashed server are swept at the next start. Each environment gets one child group per
//! hierarchy ([`EnvCgroup`]) with its memory limit (no swap), the 1,024-task PIDs limit and a CPU
//! weight proportional to memory; Max Memory Used and out-of-memory kills are read back from it.
//!
//! All paths come from `/proc/self/mountinfo` and `/proc/self/cgroup`, so tests point the same
//! code at a directory tree that imitates cgroupfs (the test double).

use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The controllers the sandbox uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    /// Memory limit (no swap), peak use and OOM kills.
    Memory,
    /// The task limit.
    Pids,
    /// CPU weight in proportion to memory.
    Cpu,
}

impl Controller {
    /// Every controller the sandbox needs.
    pub const ALL: [Controller; 3] = [Controller::Memory, Controller::Pids, Controller::Cpu];

    /// The controller's name in cgroupfs and `/proc/self/cgroup`.
    pub fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Cpu => "cpu",
        }
    }
}

/// The cgroup API a hierarchy speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// cgroup v1: one hierarchy per controller (or a few, co-mounted).
    V1,
    /// cgroup v2: the unified hierarchy.
    V2,
}

/// One place where Nimbus creates environment groups: a hierarchy and the server's group in it.
#[derive(Debug, Clone)]
struct Hierarchy {
    version: Version,
    /// `<mount>/<server's own cgroup>/nimbus-<pid>`.
    dir: PathBuf,
    controllers: Vec<Controller>,
}

/// Where each controller lives, and the server's groups in each hierarchy.
#[derive(Debug, Clone)]
pub struct CgroupLayout {
    hierarchies: Vec<Hierarchy>,
}

/// Limits for one environment.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The memory limit in bytes (`memory.max` or `memory.limit_in_bytes`); swap is capped at none.
    pub memory_bytes: u64,
    /// The most processes and threads at once (`pids.max`).
    pub max_tasks: u64,
    /// `MemorySize` in MiB, from which the CPU weight is derived (1,769 MB is one vCPU).
    pub memory_mb: u32,
}

/// Why the cgroups could not be found or set up.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// No mounted hierarchy offers this controller.
    #[error("no cgroup hierarchy offers the {0} controller")]
    Missing(&'static str),
    /// A cgroupfs file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory the operation was on.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CgroupError + '_ {
    move |source| CgroupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A parsed `/proc/self/mountinfo` cgroup line: mount point, version, v1 controllers.
#[derive(Debug, PartialEq)]
struct CgroupMount {
    mount_point: PathBuf,
    version: Version,
    options: Vec<String>,
}

fn parse_mountinfo(text: &str) -> Vec<CgroupMount> {
    let mut out = Vec::new();
    for line in text.lines() {
        // `<id> <parent> <maj:min> <root> <mount point> <opts> [optional...] - <fstype> <src> <super opts>`
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = left.split(' ').collect();
        let rfields: Vec<&str> = right.split(' ').collect();
        if fields.len() < 5 || rfields.len() < 3 {
            continue;
        }
        let version = match rfields[0] {
            "cgroup" => Version::V1,
            "cgroup2" => Version::V2,
            _ => continue,
        };
        out.push(CgroupMount {
            mount_point: PathBuf::from(unescape_mount(fields[4])),
            version,
            options: rfields[2].split(',').map(str::to_string).collect(),
        });
    }
    out
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape_mount(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v as char);
            i += 4;
            continue;
        }
        out.push(b[i] as char);
        i += 1;
    }
    out
}

/// `/proc/self/cgroup`: (hierarchy controllers, path). v2's line has empty controllers.
fn parse_proc_cgroup(text: &str) -> Vec<(Vec<String>, String)> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _id = it.next()?;
            let ctrls = it.next()?;
            let path = it.next()?;
            Some((
                ctrls
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect(),
                path.to_string(),
            ))
        })
        .collect()
}

fn join_cgroup_path(mount: &Path, path: &str) -> PathBuf {
    let rel = path.trim_start_matches('/');
    if rel.is_empty() {
        mount.to_path_buf()
    } else {
        mount.join(rel)
    }
}

impl CgroupLayout {
    /// Finds the controllers on this host and creates the server's groups.
    pub fn detect() -> Result<CgroupLayout, CgroupError> {
        let layout = Self::inspect()?;
        layout.sweep_stale();
        layout.create()?;
        Ok(layout)
    }

    /// Finds the controllers on this host without creating anything.
    pub fn inspect() -> Result<CgroupLayout, CgroupError> {
        let mi = Path::new("/proc/self/mountinfo");
        let pc = Path::new("/proc/self/cgroup");
        let mountinfo = std::fs::read_to_string(mi).map_err(io_err(mi))?;
        let own = std::fs::read_to_string(pc).map_err(io_err(pc))?;
        Self::from_tables(&mountinfo, &own, std::process::id(), Path::new(""))
    }

    /// Builds the layout from the two tables; `prefix` is prepended to every mount point (tests
    /// point it at a fake cgroupfs).
    fn from_tables(
        mountinfo: &str,
        own: &str,
        pid: u32,
        prefix: &Path,
    ) -> Result<CgroupLayout, CgroupError> {
        let mounts = parse_mountinfo(mountinfo);
        let own = parse_proc_cgroup(own);
        let rebase = |p: &Path| -> PathBuf {
            if prefix.as_os_str().is_empty() {
                p.to_path_buf()
            } else {
                prefix.join(p.strip_prefix("/").unwrap_or(p))
            }
        };
        let group = format!("nimbus-{pid}");
        let mut hierarchies: Vec<Hierarchy> = Vec::new();
        for c in Controller::ALL {
            // A controller is either bound to a v1 hierarchy or available in v2, never both.
            let v1 = mounts
                .iter()
                .find(|m| m.version == Version::V1 && m.options.iter().any(|o| o == c.name()));
            let found = if let Some(m) = v1 {
                let path = own
                    .iter()
                    .find(|(ctrls, _)| ctrls.iter().any(|x| x == c.name()))
                    .map(|(_, p)| p.as_str())
                    .unwrap_or("/");
                Some((
                    Version::V1,
                    join_cgroup_path(&rebase(&m.mount_point), path).join(&group),
                ))
            } else if let Some(m) = mounts.iter().find(|m| m.version == Version::V2) {
                let path = own
                    .iter()
                    .find(|(ctrls, _)| ctrls.is_empty())
                    .map(|(_, p)| p.as_str())
                    .unwrap_or("/");
                let base = join_cgroup_path(&rebase(&m.mount_point), path);
                let offered =
                    std::fs::read_to_string(base.join("cgroup.controllers")).unwrap_or_default();
                offered
                    .split_whitespace()
                    .any(|x| x == c.name())
                    .then(|| (Version::V2, base.join(&group)))
            } else {
                None
            };
            let Some((version, dir)) = found else {
                return Err(CgroupError::Missing(c.name()));
            };
            match hierarchies.iter_mut().find(|h| h.dir == dir) {
                Some(h) => h.controllers.push(c),
                None => hierarchies.push(Hierarchy {
                    version,
                    dir,
                    controllers: vec![c],
                }),
            }
        }
        Ok(CgroupLayout { hierarchies })
    }

    /// Which version holds each controller (for `nimbus doctor`).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for h in &self.hierarchies {
            for c in &h.controllers {
                parts.push(format!(
                    "{} (v{})",
                    c.name(),
                    if h.version == Version::V1 { 1 } else { 2 }
                ));
            }
        }
        parts.join(", ")
    }

    fn create(&self) -> Result<(), CgroupError> {
        for h in &self.hierarchies {
            match std::fs::create_dir(&h.dir) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err(&h.dir)(e)),
            }
            if h.version == Version::V2 {
                self.enable_v2(h)?;
            }
        }
        Ok(())
    }

    /// cgroup v2 hands controllers down through `cgroup.subtree_control`. A group that holds
    /// processes cannot delegate (the "no internal processes" rule): then the server moves
    /// itself into a sibling leaf `nimbus-<pid>-server` and delegation is tried again.
    fn enable_v2(&self, h: &Hierarchy) -> Result<(), CgroupError> {
        let want: String = h
            .controllers
            .iter()
            .map(|c| format!("+{}", c.name()))
            .collect::<Vec<_>>()
            .join(" ");
        let Some(parent) = h.dir.parent() else {
            return Ok(());
        };
        let parent_ctl = parent.join("cgroup.subtree_control");
        if let Err(e) = std::fs::write(&parent_ctl, &want) {
            if e.raw_os_error() != Some(libc::EBUSY) {
                return Err(io_err(&parent_ctl)(e));
            }
            let leaf = parent.join(format!(
                "{}-server",
                h.dir
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("nimbus")
            ));
            match std::fs::create_dir(&leaf) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err(&leaf)(e)),
            }
            let procs = leaf.join("cgroup.procs");
            std::fs::write(&procs, std::process::id().to_string()).map_err(io_err(&procs))?;
            std::fs::write(&parent_ctl, &want).map_err(io_err(&parent_ctl))?;
        }
        let own_ctl = h.dir.join("cgroup.subtree_control");
        std::fs::write(&own_ctl, &want).map_err(io_err(&own_ctl))
    }

    /// Removes `nimbus-<pid>` groups whose server is gone.
    fn sweep_stale(&self) {
        for h in &self.hierarchies {
            let Some(parent) = h.dir.parent() else {
                continue;
            };
            let Ok(entries) = std::fs::read_dir(parent) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name();
                let Some(pid) = name
                    .to_str()
                    .and_then(|n| n.strip_prefix("nimbus-"))
                    .and_then(|p| p.parse::<i32>().ok())
                else {
                    continue;
                };
                // SAFETY: kill with signal 0 only checks for existence.
                let alive = unsafe { libc::kill(pid, 0) } == 0
                    || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
                if !alive {
                    remove_tree(&e.path());
                }
            }
        }
    }

    /// Creates an environment's groups (limits come with [`EnvCgroup::set_limits`]).
    pub fn create_env(&self, name: &str) -> Result<EnvCgroup, CgroupError> {
        let mut env = EnvCgroup {
            dirs: Vec::new(),
            memory: None,
            snapshot: std::sync::Mutex::new(None),
            peak_file: std::sync::Mutex::new(None),
        };
        for h in &self.hierarchies {
            let dir = h.dir.join(name);
            if let Err(e) = std::fs::create_dir(&dir) {
                env.remove_now();
                return Err(io_err(&dir)(e));
            }
            env.dirs
                .push((dir.clone(), h.version, h.controllers.clone()));
            if h.controllers.contains(&Controller::Memory) {
                env.memory = Some((h.version, dir));
            }
        }
        Ok(env)
    }

    /// Removes the server's groups (at shutdown; environments must be gone).
    pub fn remove(&self) {
        for h in &self.hierarchies {
            remove_tree(&h.dir);
        }
    }
}

fn write(dir: &Path, file: &str, value: u64) -> Result<(), CgroupError> {
    let p = dir.join(file);
    std::fs::write(&p, value.to_string()).map_err(io_err(&p))
}

/// Removes a cgroup directory and its child groups (cgroupfs only allows `rmdir`). On v1 a
/// parent stays busy for a moment after its last child went, so that is retried briefly.
fn remove_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
    }
    for _ in 0..50 {
        match std::fs::remove_dir(dir) {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(Duration::from_millis(10))
            }
            _ => break,
        }
    }
}

/// What an environment's memory group recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MemoryStats {
    /// The highest memory use recorded, in bytes (`memory.peak` or `memory.max_usage_in_bytes`);
    /// `None` where the kernel does not keep it.
    pub peak_bytes: Option<u64>,
    /// How many processes the kernel killed for exceeding the limit (`oom_kill` in `memory.events`
    /// or `memory.oom_control`).
    pub oom_kills: u64,
}

/// One environment's groups.
#[derive(Debug)]
pub struct EnvCgroup {
    dirs: Vec<(PathBuf, Version, Vec<Controller>)>,
    memory: Option<(Version, PathBuf)>,
    /// Taken when the environment ends, before its groups are removed.
    snapshot: std::sync::Mutex<Option<MemoryStats>>,
    /// The peak-usage file, kept open: it is read after every invocation (for REPORT's Max
    /// Memory Used), and reopening it walks the cgroup file system each time.
    peak_file: std::sync::Mutex<Option<std::fs::File>>,
}

impl EnvCgroup {
    /// The `cgroup.procs` files the environment's init joins.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs
            .iter()
            .map(|(d, _, _)| d.join("cgroup.procs"))
            .collect()
    }

    /// Applies the function's limits: memory (no swap), tasks, and a CPU weight proportional
    /// to memory as Lambda gives CPU (1,769 MB = one vCPU).
    pub fn set_limits(&self, limits: Limits) -> Result<(), CgroupError> {
        for (dir, version, controllers) in &self.dirs {
            for c in controllers {
                match (c, version) {
                    (Controller::Memory, Version::V1) => {
                        write(dir, "memory.limit_in_bytes", limits.memory_bytes)?;
                        // Without swap accounting this file does not exist; nothing to cap then.
                        let _ = std::fs::write(
                            dir.join("memory.memsw.limit_in_bytes"),
                            limits.memory_bytes.to_string(),
                        );
                    }
                    (Controller::Memory, Version::V2) => {
                        write(dir, "memory.max", limits.memory_bytes)?;
                        let _ = std::fs::write(dir.join("memory.swap.max"), "0");
                    }
                    (Controller::Pids, _) => write(dir, "pids.max", limits.max_tasks)?,
                    (Controller::Cpu, Version::V1) => write(
                        dir,
                        "cpu.shares",
                        (u64::from(limits.memory_mb) * 1024 / 1769).clamp(2, 262_144),
                    )?,
                    (Controller::Cpu, Version::V2) => write(
                        dir,
                        "cpu.weight",
                        (u64::from(limits.memory_mb) * 100 / 1769).clamp(1, 10_000),
                    )?,
                }
            }
        }
        Ok(())
    }

    /// Removes the groups right away (nothing may be in them).
    pub fn remove_now(&self) {
        for (dir, _, _) in &self.dirs {
            let _ = std::fs::remove_dir(dir);
        }
    }

    /// Removes the groups of processes just reaped, blocking the thread for up to half a second
    /// while cgroup v1 still reports them busy.
    pub fn remove_blocking(&self) {
        for (dir, _, _) in &self.dirs {
            for _ in 0..50 {
                match std::fs::remove_dir(dir) {
                    Err(e) if e.kind() != ErrorKind::NotFound => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    _ => break,
                }
            }
        }
    }

    /// Current (or, once ended, final) peak memory and OOM-kill count.
    pub fn memory_stats(&self) -> MemoryStats {
        if let Some(s) = *self.snapshot.lock().unwrap_or_else(|e| e.into_inner()) {
            return s;
        }
        self.read_stats()
    }

    /// Current (or, once ended, final) peak memory: one `pread` of a file kept open.
    pub fn peak_bytes(&self) -> Option<u64> {
        use std::os::unix::fs::FileExt;
        if let Some(s) = *self.snapshot.lock().unwrap_or_else(|e| e.into_inner()) {
            return s.peak_bytes;
        }
        let (version, dir) = self.memory.as_ref()?;
        let name = match version {
            Version::V1 => "memory.max_usage_in_bytes",
            Version::V2 => "memory.peak",
        };
        let mut file = self.peak_file.lock().unwrap_or_else(|e| e.into_inner());
        if file.is_none() {
            *file = std::fs::File::open(dir.join(name)).ok();
        }
        let mut buf = [0u8; 32];
        let n = file.as_ref()?.read_at(&mut buf, 0).ok()?;
        std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
    }

    fn read_stats(&self) -> MemoryStats {
        let Some((version, dir)) = &self.memory else {
            return MemoryStats::default();
        };
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
        let (peak, events) = match version {
            Version::V1 => (
                read("memory.max_usage_in_bytes"),
                read("memory.oom_control"),
            ),
            Version::V2 => (read("memory.peak"), read("memory.events")),
        };
        MemoryStats {
            peak_bytes: peak.and_then(|p| p.trim().parse().ok()),
            oom_kills: events
                .as_deref()
                .and_then(|t| {
                    t.lines()
                        .find_map(|l| l.strip_prefix("oom_kill "))
                        .and_then(|v| v.trim().parse().ok())
                })
                .unwrap_or(0),
        }
    }

    /// Records the final statistics and removes the groups. Called once every process of the
    /// environment has been reaped; v1 may report the group busy for a moment after that.
    pub async fn finish(&self) {
        let stats = self.read_stats();
        *self.snapshot.lock().unwrap_or_else(|e| e.into_inner()) = Some(stats);
        self.peak_file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        for (dir, _, _) in &self.dirs {
            for attempt in 0..50 {
                match std::fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == ErrorKind::NotFound => break,
                    Err(e) if attempt == 49 => {
                        tracing::warn!(dir = %dir.display(), error = %e, "could not remove an environment cgroup");
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO_V1: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
38 31 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const OWN_V1: &str = "\
8:pids:/
4:memory:/process_api/b84c
1:cpu:/
0::/
";

    #[test]
    fn v1_controllers_nest_under_the_servers_own_groups() -> Result<(), Box<dyn std::error::Error>>
    {
        let root = tempfile::tempdir()?;
        let layout = CgroupLayout::from_tables(MOUNTINFO_V1, OWN_V1, 42, root.path())?;
        let dirs: Vec<_> = layout
            .hierarchies
            .iter()
            .map(|h| {
                (
                    h.version,
                    h.dir.strip_prefix(root.path()).map(Path::to_path_buf),
                )
            })
            .collect();
        assert_eq!(
            dirs,
            vec![
                (
                    Version::V1,
                    Ok(PathBuf::from(
                        "sys/fs/cgroup/memory/process_api/b84c/nimbus-42"
                    ))
                ),
                (
                    Version::V1,
                    Ok(PathBuf::from("sys/fs/cgroup/pids/nimbus-42"))
                ),
                (
                    Version::V1,
                    Ok(PathBuf::from("sys/fs/cgroup/cpu/nimbus-42"))
                ),
            ]
        );
        assert_eq!(layout.describe(), "memory (v1), pids (v1), cpu (v1)");
        Ok(())
    }

    #[test]
    fn v2_is_used_when_it_offers_the_controllers() -> Result<(), Box<dyn std::error::Error>> {
        let root = tempfile::tempdir()?;
        let mounts = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        let own = "0::/user.slice/session-1.scope\n";
        let base = root.path().join("sys/fs/cgroup/user.slice/session-1.scope");
        std::fs::create_dir_all(&base)?;
        std::fs::write(
            base.join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )?;
        let layout = CgroupLayout::from_tables(mounts, own, 7, root.path())?;
        assert_eq!(layout.hierarchies.len(), 1);
        assert_eq!(layout.hierarchies[0].version, Version::V2);
        assert_eq!(layout.hierarchies[0].dir, base.join("nimbus-7"));
        // Creating: the parent delegates, our group delegates, the env group gets limits.
        std::fs::create_dir_all(&layout.hierarchies[0].dir)?;
        layout.create()?;
        assert_eq!(
            std::fs::read_to_string(base.join("cgroup.subtree_control"))?,
            "+memory +pids +cpu"
        );
        let env = layout.create_env("e1")?;
        env.set_limits(Limits {
            memory_bytes: 128 << 20,
            max_tasks: 1024,
            memory_mb: 128,
        })?;
        let d = base.join("nimbus-7/e1");
        assert_eq!(std::fs::read_to_string(d.join("memory.max"))?, "134217728");
        assert_eq!(std::fs::read_to_string(d.join("memory.swap.max"))?, "0");
        assert_eq!(std::fs::read_to_string(d.join("pids.max"))?, "1024");
        assert_eq!(std::fs::read_to_string(d.join("cpu.weight"))?, "7");
        assert_eq!(env.procs_files(), vec![d.join("cgroup.procs")]);
        std::fs::write(d.join("memory.peak"), "5242880\n")?;
        std::fs::write(
            d.join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
        )?;
        assert_eq!(
            env.memory_stats(),
            MemoryStats {
                peak_bytes: Some(5 << 20),
                oom_kills: 1
            }
        );
        Ok(())
    }

    #[test]
    fn v1_memory_statistics_are_read_back() -> Result<(), Box<dyn std::error::Error>> {
        let root = tempfile::tempdir()?;
        let layout = CgroupLayout::from_tables(MOUNTINFO_V1, OWN_V1, 9, root.path())?;
        for h in &layout.hierarchies {
            std::fs::create_dir_all(&h.dir)?;
        }
        let env = layout.create_env("e2")?;
        env.set_limits(Limits {
            memory_bytes: 1 << 30,
            max_tasks: 1024,
            memory_mb: 1024,
        })?;
        let mem = root
            .path()
            .join("sys/fs/cgroup/memory/process_api/b84c/nimbus-9/e2");
        assert_eq!(
            std::fs::read_to_string(mem.join("memory.limit_in_bytes"))?,
            "1073741824"
        );
        assert_eq!(
            std::fs::read_to_string(root.path().join("sys/fs/cgroup/cpu/nimbus-9/e2/cpu.shares"))?,
            "592"
        );
        std::fs::write(mem.join("memory.max_usage_in_bytes"), "1048576\n")?;
        std::fs::write(
            mem.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
        )?;
        assert_eq!(env.memory_stats().peak_bytes, Some(1 << 20));
        assert_eq!(env.peak_bytes(), Some(1 << 20));
        assert_eq!(env.memory_stats().oom_kills, 0);
        assert_eq!(env.procs_files().len(), 3);
        Ok(())
    }

    #[test]
    fn a_missing_controller_is_reported_by_name() {
        let mounts = "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
        let err = CgroupLayout::from_tables(mounts, "1:cpu:/\n", 1, Path::new("/nonexistent"))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("no cgroup hierarchy offers the memory controller")
        );
    }

    #[test]
    fn mount_points_are_unescaped() {
        assert_eq!(unescape_mount("/a\\040b"), "/a b");
    }
}
