//! The runtime catalog: which `Runtime` identifiers exist, which of them this host can run, and
//! the program an environment of each one starts.
//!
//! `provided.al2023` / `provided.al2` run the package's own executable `bootstrap`. The managed
//! runtimes (`python3.9`–`python3.13`, `nodejs18.x`/`20.x`/`22.x`) run the bootstraps bundled in
//! this crate (`runtimes/python/bootstrap.py`, `runtimes/node/bootstrap.js`) with a host
//! interpreter of the right version: found on `PATH`, under pyenv, or configured explicitly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const PYTHON_BOOTSTRAP: &str = include_str!("../runtimes/python/bootstrap.py");
const NODE_BOOTSTRAP: &str = include_str!("../runtimes/node/bootstrap.js");

/// Every runtime identifier Nimbus knows, in the order AWS lists them.
pub const KNOWN_RUNTIMES: &[&str] = &[
    "nodejs22.x",
    "nodejs20.x",
    "nodejs18.x",
    "python3.13",
    "python3.12",
    "python3.11",
    "python3.10",
    "python3.9",
    "provided.al2023",
    "provided.al2",
];

/// The kind of runtime, which decides how its process is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeFamily {
    /// `provided.*`: the code's own executable `bootstrap`.
    Provided,
    /// `python3.*`: the bundled Python bootstrap on a host Python interpreter.
    Python,
    /// `nodejs*.x`: the bundled Node.js bootstrap on a host `node`.
    Node,
}

/// Why a function's `Runtime` cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RuntimeError {
    /// Not one of [`KNOWN_RUNTIMES`].
    #[error("unknown runtime {0}")]
    Unknown(String),
    #[error(
        "The runtime {runtime} is not available on this host: {reason}. Install it or set its interpreter path under [runtimes] in the Nimbus config."
    )]
    /// Known, but this host has no interpreter of the right version.
    Unavailable {
        /// The `Runtime` identifier.
        runtime: String,
        /// Why no interpreter was found (or why the configured one was refused).
        reason: String,
    },
}

/// A runtime this host can start.
#[derive(Debug, Clone)]
pub struct ResolvedRuntime {
    /// The `Runtime` identifier, e.g. `python3.12`.
    pub id: String,
    /// How the runtime is started.
    pub family: RuntimeFamily,
    /// The interpreter for managed runtimes.
    pub interpreter: Option<PathBuf>,
    /// The bundled bootstrap script for managed runtimes.
    pub bootstrap: Option<PathBuf>,
}

impl ResolvedRuntime {
    /// The program and arguments that start this runtime, for code seen at `task_root` and the
    /// bundled bootstrap's directory seen at `runtime_dir` (where the launcher shows them).
    pub fn command(&self, task_root: &Path, runtime_dir: Option<&Path>) -> (PathBuf, Vec<String>) {
        match (&self.interpreter, &self.bootstrap) {
            (Some(interp), Some(script)) => {
                let mut args = Vec::new();
                if self.family == RuntimeFamily::Python {
                    // Unbuffered output; no `site` at start-up (the bootstrap adds the
                    // interpreter's site-packages itself, without the host's .pth files).
                    args.push("-S".to_string());
                    args.push("-u".to_string());
                }
                let script = match (runtime_dir, script.file_name()) {
                    (Some(dir), Some(name)) => dir.join(name),
                    _ => script.clone(),
                };
                args.push(script.display().to_string());
                (interp.clone(), args)
            }
            _ => (task_root.join("bootstrap"), Vec::new()),
        }
    }

    /// The bundled bootstrap's directory on the host (`/var/runtime` in a sandbox).
    pub fn runtime_dir(&self) -> Option<PathBuf> {
        self.bootstrap
            .as_ref()
            .and_then(|b| b.parent())
            .map(Path::to_path_buf)
    }

    /// The interpreter's installation directory when it is outside the system directories a
    /// sandbox shows anyway (a pyenv or nvm install under a home directory).
    pub fn install_dir(&self) -> Option<PathBuf> {
        let interp = std::fs::canonicalize(self.interpreter.as_ref()?).ok()?;
        let prefix = interp.parent()?.parent()?.to_path_buf();
        let system = ["/usr", "/bin", "/sbin", "/lib", "/lib64"];
        (!system.iter().any(|s| prefix.starts_with(s)) && prefix != Path::new("/"))
            .then_some(prefix)
    }

    /// `AWS_EXECUTION_ENV` (not set for `provided.*`).
    pub fn execution_env(&self) -> Option<String> {
        match self.family {
            RuntimeFamily::Provided => None,
            _ => Some(format!("AWS_Lambda_{}", self.id)),
        }
    }

    /// The version string of `INIT_START Runtime Version:`.
    pub fn version_label(&self) -> String {
        match self.family {
            RuntimeFamily::Provided => format!("{}.nimbus", self.id.replace('.', ":")),
            RuntimeFamily::Python => format!("python:{}.nimbus", &self.id["python".len()..]),
            RuntimeFamily::Node => format!(
                "nodejs:{}.nimbus",
                self.id.trim_start_matches("nodejs").trim_end_matches(".x")
            ),
        }
    }
}

/// The runtimes available on this host.
#[derive(Debug, Clone)]
pub struct RuntimeCatalog {
    available: BTreeMap<String, Result<ResolvedRuntime, String>>,
}

impl RuntimeCatalog {
    /// Probes the host for interpreters and writes the bundled bootstraps under `runtime_dir`.
    /// `overrides` maps a runtime id (`python3.12`, `nodejs20.x`) to an interpreter path.
    pub fn discover(
        runtime_dir: &Path,
        overrides: &BTreeMap<String, PathBuf>,
    ) -> std::io::Result<RuntimeCatalog> {
        Self::discover_with(runtime_dir, overrides, false)
    }

    /// [`RuntimeCatalog::discover`], keeping only interpreters that any user can reach
    /// (`for_others`): plain processes run as their own unprivileged uids cannot use an
    /// interpreter under a private home directory, which a sandbox would bind-mount.
    pub fn discover_with(
        runtime_dir: &Path,
        overrides: &BTreeMap<String, PathBuf>,
        for_others: bool,
    ) -> std::io::Result<RuntimeCatalog> {
        let py_dir = runtime_dir.join("python");
        let node_dir = runtime_dir.join("node");
        std::fs::create_dir_all(&py_dir)?;
        std::fs::create_dir_all(&node_dir)?;
        let py_script = py_dir.join("bootstrap.py");
        let node_script = node_dir.join("bootstrap.js");
        write_if_changed(&py_script, PYTHON_BOOTSTRAP)?;
        write_if_changed(&node_script, NODE_BOOTSTRAP)?;

        let mut available = BTreeMap::new();
        for id in KNOWN_RUNTIMES {
            let id = id.to_string();
            let resolved = if id.starts_with("provided") {
                Ok(ResolvedRuntime {
                    id: id.clone(),
                    family: RuntimeFamily::Provided,
                    interpreter: None,
                    bootstrap: None,
                })
            } else if let Some(ver) = id.strip_prefix("python") {
                find_python(ver, overrides.get(&id), for_others).map(|interp| ResolvedRuntime {
                    id: id.clone(),
                    family: RuntimeFamily::Python,
                    interpreter: Some(interp),
                    bootstrap: Some(py_script.clone()),
                })
            } else {
                let major = id.trim_start_matches("nodejs").trim_end_matches(".x");
                find_node(major, overrides.get(&id), for_others).map(|interp| ResolvedRuntime {
                    id: id.clone(),
                    family: RuntimeFamily::Node,
                    interpreter: Some(interp),
                    bootstrap: Some(node_script.clone()),
                })
            };
            available.insert(id, resolved);
        }
        Ok(RuntimeCatalog { available })
    }

    /// The runtime for a `Runtime` identifier, or why it cannot be used on this host.
    pub fn resolve(&self, id: &str) -> Result<&ResolvedRuntime, RuntimeError> {
        match self.available.get(id) {
            None => Err(RuntimeError::Unknown(id.to_string())),
            Some(Ok(r)) => Ok(r),
            Some(Err(reason)) => Err(RuntimeError::Unavailable {
                runtime: id.to_string(),
                reason: reason.clone(),
            }),
        }
    }

    /// Every known runtime with its interpreter or the reason it is unavailable.
    pub fn report(&self) -> Vec<(String, Result<String, String>)> {
        self.available
            .iter()
            .map(|(id, r)| {
                (
                    id.clone(),
                    r.as_ref()
                        .map(|rt| {
                            rt.interpreter
                                .as_ref()
                                .map(|p| p.display().to_string())
                                .unwrap_or_else(|| "bootstrap in the package".to_string())
                        })
                        .map_err(Clone::clone),
                )
            })
            .collect()
    }
}

fn write_if_changed(path: &Path, contents: &str) -> std::io::Result<()> {
    if std::fs::read_to_string(path).ok().as_deref() != Some(contents) {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, contents)?;
        std::fs::rename(&tmp, path)?;
    }
    Ok(())
}

/// Runs `interp args…` and returns its trimmed stdout if it succeeded.
fn probe(interp: &Path, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(interp)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn search_path(name: &str) -> Vec<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether every user may execute `p`: the file and each directory above it have the
/// others-execute bit.
fn reachable_by_others(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Ok(real) = p.canonicalize() else {
        return false;
    };
    real.ancestors()
        .all(|a| std::fs::metadata(a).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

const UNREACHABLE: &str =
    "(plain processes run as their own unprivileged uids, which cannot reach it)";

fn find_python(
    version: &str,
    configured: Option<&PathBuf>,
    for_others: bool,
) -> Result<PathBuf, String> {
    // Ask the interpreter for its version and its real executable: a pyenv shim found on PATH
    // is a shell script that execs the real binary, so launching `sys.executable` saves the
    // shim's start-up on every cold start. A virtualenv's python stands for its base interpreter
    // (functions must not see the venv's packages, and a sandbox shows only the base install).
    let real = |p: &Path| -> Option<PathBuf> {
        let out = probe(
            p,
            &[
                "-c",
                "import os, sys; print('%d.%d' % sys.version_info[:2]); print(os.path.realpath(getattr(sys, '_base_executable', sys.executable)))",
            ],
        )?;
        let mut lines = out.lines();
        (lines.next() == Some(version))
            .then(|| lines.next().map(PathBuf::from))
            .flatten()
            .filter(|p| p.is_file())
            .filter(|p| !for_others || reachable_by_others(p))
    };
    if let Some(p) = configured {
        return real(p).ok_or_else(|| {
            format!(
                "the configured interpreter {} is not Python {version}{}",
                p.display(),
                if for_others {
                    format!(", or it is not reachable by every user {UNREACHABLE}")
                } else {
                    String::new()
                }
            )
        });
    }
    let name = format!("python{version}");
    let mut candidates = search_path(&name);
    let pyenv_root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pyenv")));
    if let Some(root) = pyenv_root
        && let Ok(entries) = std::fs::read_dir(root.join("versions"))
    {
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{version}.")))
            })
            .collect();
        dirs.sort();
        candidates.extend(dirs.into_iter().rev().map(|d| d.join("bin").join(&name)));
    }
    candidates
        .iter()
        .find_map(|p| real(p))
        .ok_or_else(|| {
            if for_others {
                format!("no working {name} interpreter that every user can reach was found on PATH or under pyenv {UNREACHABLE}")
            } else {
                format!("no working {name} interpreter was found on PATH or under pyenv")
            }
        })
}

fn find_node(
    major: &str,
    configured: Option<&PathBuf>,
    for_others: bool,
) -> Result<PathBuf, String> {
    let check = |p: &Path| -> bool {
        (!for_others || reachable_by_others(p))
            && probe(p, &["--version"])
                .is_some_and(|v| v.trim_start_matches('v').split('.').next() == Some(major))
    };
    if let Some(p) = configured {
        return if check(p) {
            Ok(p.clone())
        } else {
            Err(format!(
                "the configured interpreter {} is not Node.js {major}",
                p.display()
            ))
        };
    }
    let mut candidates = search_path(&format!("node{major}"));
    candidates.extend(search_path("node"));
    candidates
        .into_iter()
        .find(|p| check(p))
        .ok_or_else(|| format!("no Node.js {major} interpreter (node) was found on PATH"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provided_is_always_available_and_unknown_is_refused() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let cat = RuntimeCatalog::discover(dir.path(), &BTreeMap::new())?;
        let p = cat
            .resolve("provided.al2023")
            .map_err(std::io::Error::other)?;
        assert_eq!(p.family, RuntimeFamily::Provided);
        let (prog, args) = p.command(Path::new("/var/task"), None);
        assert_eq!(prog, Path::new("/var/task/bootstrap"));
        assert!(args.is_empty());
        assert_eq!(
            cat.resolve("cobol1.0").err(),
            Some(RuntimeError::Unknown("cobol1.0".into()))
        );
        assert!(dir.path().join("python/bootstrap.py").is_file());
        Ok(())
    }

    #[test]
    fn a_misconfigured_interpreter_is_reported() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let mut o = BTreeMap::new();
        o.insert(
            "python3.12".to_string(),
            PathBuf::from("/nonexistent/python"),
        );
        let cat = RuntimeCatalog::discover(dir.path(), &o)?;
        assert!(matches!(
            cat.resolve("python3.12"),
            Err(RuntimeError::Unavailable { .. })
        ));
        Ok(())
    }
}
