//! Function code: checking an uploaded zip and unpacking it once per code version.
//!
//! A zip is checked in full before it is stored ([`inspect_zip`]): every entry name stays
//! inside the task root (zip-slip), symbolic links are relative, use `..` only as leading
//! components, stay inside the root, and no entry lies beneath a link (so nothing can be written
//! through one), the entry count is capped and the declared unpacked size is within the limit.
//! Unpacking ([`unpack_once`]) checks the same again, writes directories and regular files first
//! (each file created new with `O_NOFOLLOW`, its parent verified to be a real directory) and the
//! links last, counts the bytes actually written against the limit, and syncs the tree before it
//! is renamed into place: a task root is complete, durable and link-safe, or absent.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

/// Lambda's limit on the unzipped size of a function (with layers): 250 MB.
pub const MAX_UNZIPPED_BYTES: u64 = 262_144_000;

/// The most entries a function's zip may hold (bounds the inodes one upload can create).
pub const MAX_ENTRIES: usize = 100_000;

/// The longest symbolic link target accepted (Linux's `PATH_MAX`).
const MAX_LINK_TARGET: u64 = 4095;

/// Why function code was refused or could not be unpacked. The messages are Lambda's where Lambda
/// has one.
#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    /// The bytes are not a zip archive Nimbus can read.
    #[error("Could not unzip uploaded file. Please check your file, then try to upload again.")]
    NotAZip,
    /// The entries' sizes (declared, or written while unpacking) add up to more than the limit.
    #[error("Unzipped size must be smaller than {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The archive holds more entries than [`MAX_ENTRIES`].
    #[error("The zip file holds more than {limit} entries")]
    TooManyEntries {
        /// The limit, in entries.
        limit: usize,
    },
    /// An entry's name or link target leaves the task root (zip-slip), or a link target is too
    /// long.
    #[error("The zip file entry '{0}' points outside the function's directory")]
    UnsafeEntry(String),
    /// An entry's path passes through a symbolic link of the same archive.
    #[error("The zip file entry '{0}' lies beneath a symbolic link")]
    BeneathLink(String),
    /// A path appears twice, or is a file or link in one entry and a directory in another.
    #[error("The zip file entry '{0}' appears more than once or conflicts with another entry")]
    Conflict(String),
    /// Reading the zip or writing the tree failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory the operation was on.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CodeError + '_ {
    move |source| CodeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What an inspected zip holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipSummary {
    /// How many entries will be unpacked (not counting the root `./`).
    pub entries: usize,
    /// The uncompressed sizes the entries declare, summed, in bytes; unpacking counts what is
    /// actually written against the limit again.
    pub declared_unzipped_bytes: u64,
}

/// One checked entry of a zip: where it goes and what it is.
#[derive(Debug)]
enum Kind {
    Dir,
    File,
    Link(String),
}

/// Every entry of a checked zip as (index in the archive, relative path, kind).
type Plan = Vec<(usize, PathBuf, Kind)>;

/// Reads and checks every entry of `archive`; returns the plan and the declared unpacked size.
fn plan<R: Read + std::io::Seek>(
    archive: &mut zip::ZipArchive<R>,
    limit: u64,
) -> Result<(Plan, u64), CodeError> {
    if archive.len() > MAX_ENTRIES {
        return Err(CodeError::TooManyEntries { limit: MAX_ENTRIES });
    }
    let mut total = 0u64;
    let mut out = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|_| CodeError::NotAZip)?;
        let name = entry_name(&entry);
        let enclosed = entry
            .enclosed_name()
            .ok_or_else(|| CodeError::UnsafeEntry(name.clone()))?;
        // `./bootstrap` is `bootstrap` (zip tools write such names); anything but names and
        // `.` is refused.
        if !enclosed
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(CodeError::UnsafeEntry(name));
        }
        let rel: PathBuf = enclosed
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect();
        if rel.as_os_str().is_empty() {
            if entry.is_dir() {
                continue; // `./` itself
            }
            return Err(CodeError::UnsafeEntry(name));
        }
        total = total.saturating_add(entry.size());
        if total > limit {
            return Err(CodeError::TooLarge { limit });
        }
        let is_symlink = entry.unix_mode().is_some_and(|m| m & 0o170000 == 0o120000);
        let kind = if entry.is_dir() {
            Kind::Dir
        } else if is_symlink {
            if entry.size() > MAX_LINK_TARGET {
                return Err(CodeError::UnsafeEntry(name));
            }
            let mut link = String::new();
            (&mut entry)
                .take(MAX_LINK_TARGET + 1)
                .read_to_string(&mut link)
                .map_err(|_| CodeError::NotAZip)?;
            if !symlink_stays_inside(&rel, Path::new(&link)) {
                return Err(CodeError::UnsafeEntry(name));
            }
            Kind::Link(link)
        } else {
            Kind::File
        };
        out.push((i, rel, kind));
    }
    // No entry may lie beneath a link, and no path may be two things (or one file twice).
    let links: HashSet<&Path> = out
        .iter()
        .filter(|(_, _, k)| matches!(k, Kind::Link(_)))
        .map(|(_, p, _)| p.as_path())
        .collect();
    let mut leaves: HashSet<&Path> = HashSet::new();
    for (_, p, k) in &out {
        if p.ancestors().skip(1).any(|a| links.contains(a)) {
            return Err(CodeError::BeneathLink(p.display().to_string()));
        }
        if !matches!(k, Kind::Dir) && !leaves.insert(p.as_path()) {
            return Err(CodeError::Conflict(p.display().to_string()));
        }
    }
    for (_, p, k) in &out {
        let under_leaf = p.ancestors().skip(1).any(|a| leaves.contains(a));
        let dir_on_leaf = matches!(k, Kind::Dir) && leaves.contains(p.as_path());
        if under_leaf || dir_on_leaf {
            return Err(CodeError::Conflict(p.display().to_string()));
        }
    }
    Ok((out, total))
}

/// Checks that `bytes` is a readable zip within the size and entry limits whose entries and
/// links all stay inside the task root and none of which lies beneath a link.
pub fn inspect_zip(bytes: &[u8], limit: u64) -> Result<ZipSummary, CodeError> {
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|_| CodeError::NotAZip)?;
    let (entries, total) = plan(&mut archive, limit)?;
    Ok(ZipSummary {
        entries: entries.len(),
        declared_unzipped_bytes: total,
    })
}

/// The argument that makes the Nimbus binary an unpack helper (see [`Unpacker::Helper`]).
pub const UNPACK_ARG: &str = "__unpack";

/// Who writes an unpacked tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unpacker {
    /// This process (as whatever user the server runs as).
    InProcess,
    /// A helper process of this binary (`/proc/self/exe __unpack`) running as `uid`, which owns
    /// nothing but the temporary directory it fills; the finished tree is then given to root
    /// (without following links) before it is renamed into place.
    Helper {
        /// The unprivileged uid the helper runs as.
        uid: u32,
    },
}

/// Unpacks the zip at `zip_path` into `dest` unless `dest` already exists. Returns `dest`.
pub fn unpack_once(zip_path: &Path, dest: &Path, limit: u64) -> Result<PathBuf, CodeError> {
    unpack_once_with(zip_path, dest, limit, &Unpacker::InProcess)
}

/// [`unpack_once`] by the given unpacker.
pub fn unpack_once_with(
    zip_path: &Path,
    dest: &Path,
    limit: u64,
    unpacker: &Unpacker,
) -> Result<PathBuf, CodeError> {
    if dest.is_dir() {
        return Ok(dest.to_path_buf());
    }
    let parent = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let tmp = parent.join(format!(
        ".{}.{}.{}",
        dest.file_name().and_then(|n| n.to_str()).unwrap_or("code"),
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let result = match unpacker {
        Unpacker::InProcess => std::fs::File::open(zip_path)
            .map_err(io(zip_path))
            .and_then(|f| {
                std::fs::create_dir(&tmp).map_err(io(&tmp))?;
                unpack_into(std::io::BufReader::new(f), &tmp, limit)
            }),
        Unpacker::Helper { uid } => unpack_by_helper(zip_path, &tmp, limit, *uid),
    };
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    match std::fs::rename(&tmp, dest) {
        Ok(()) => {
            sync_dir(parent)?;
            Ok(dest.to_path_buf())
        }
        Err(_) if dest.is_dir() => {
            // Someone else unpacked the same version concurrently.
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(dest.to_path_buf())
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(CodeError::Io {
                path: dest.to_path_buf(),
                source: e,
            })
        }
    }
}

fn sync_dir(dir: &Path) -> Result<(), CodeError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

/// Creates `rel`'s directories under `root`, one component at a time, refusing any component
/// that exists as something other than a real directory (never following a link).
fn make_dirs(root: &Path, rel: &Path, made: &mut HashSet<PathBuf>) -> Result<(), CodeError> {
    let mut at = root.to_path_buf();
    for c in rel.components() {
        at.push(c);
        if made.contains(&at) {
            continue;
        }
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(_) => return Err(CodeError::Conflict(rel.display().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                use std::os::unix::fs::PermissionsExt;
                std::fs::create_dir(&at).map_err(io(&at))?;
                std::fs::set_permissions(&at, std::fs::Permissions::from_mode(0o755))
                    .map_err(io(&at))?;
            }
            Err(e) => return Err(io(&at)(e)),
        }
        made.insert(at.clone());
    }
    Ok(())
}

/// Runs the unpack helper as `uid` into `tmp` (created here, owned by `uid`), then gives the
/// tree to root without following any link in it.
fn unpack_by_helper(zip_path: &Path, tmp: &Path, limit: u64, uid: u32) -> Result<(), CodeError> {
    use std::os::unix::fs::{PermissionsExt, lchown};
    use std::os::unix::process::CommandExt;
    std::fs::create_dir(tmp).map_err(io(tmp))?;
    std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(0o700)).map_err(io(tmp))?;
    lchown(tmp, Some(uid), Some(uid)).map_err(io(tmp))?;
    // The helper can open neither the stored zip nor a path in the data directory (both are
    // the server's alone): it reads the zip on stdin and gets its directory as stdout, an open
    // descriptor it changes into.
    let zip = std::fs::File::open(zip_path).map_err(io(zip_path))?;
    let dir = std::fs::File::open(tmp).map_err(io(tmp))?;
    let out = std::process::Command::new("/proc/self/exe")
        .arg0("nimbus-unpack")
        .arg(UNPACK_ARG)
        .arg(limit.to_string())
        .env_clear()
        .current_dir("/")
        .stdin(zip)
        .stdout(dir)
        .stderr(std::process::Stdio::piped())
        .uid(uid)
        .gid(uid)
        .output()
        .map_err(io(Path::new("/proc/self/exe")))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(match out.status.code() {
            Some(2) => CodeError::NotAZip,
            Some(3) => CodeError::TooLarge { limit },
            Some(4) => CodeError::TooManyEntries { limit: MAX_ENTRIES },
            Some(5) => CodeError::UnsafeEntry(msg),
            Some(6) => CodeError::BeneathLink(msg),
            Some(7) => CodeError::Conflict(msg),
            _ => CodeError::Io {
                path: tmp.to_path_buf(),
                source: std::io::Error::other(format!("the unpack helper failed: {msg}")),
            },
        });
    }
    // Give everything to root; `lchown` changes a link itself, never what it points at.
    let mut stack = vec![tmp.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).map_err(io(&p))?;
        lchown(&p, Some(0), Some(0)).map_err(io(&p))?;
        if m.file_type().is_dir() {
            for e in std::fs::read_dir(&p).map_err(io(&p))? {
                stack.push(e.map_err(io(&p))?.path());
            }
        }
    }
    std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(0o755)).map_err(io(tmp))?;
    sync_dir(tmp)
}

/// Entry point of `nimbus __unpack <limit>`: unpacks the zip on stdin into the directory open
/// as stdout (existing and empty) and exits: 0 done, 2 not a zip, 3 too large, 4 too many
/// entries, 5–7 an unsafe entry (named on stderr), 1 anything else.
pub fn helper_main() -> ! {
    let Some(limit) = std::env::args_os().nth(2) else {
        eprintln!("usage: nimbus __unpack <limit> <zip >dir");
        std::process::exit(1);
    };
    // SAFETY: fchdir on descriptor 1, which the parent opened as the target directory.
    if unsafe { libc::fchdir(1) } != 0 {
        eprintln!(
            "entering the target directory: {}",
            std::io::Error::last_os_error()
        );
        std::process::exit(1);
    }
    let limit: u64 = limit
        .to_str()
        .and_then(|l| l.parse().ok())
        .unwrap_or(MAX_UNZIPPED_BYTES);
    let mut zip = Vec::new();
    // The zip arrives on stdin; at most the upload limit (80 MB) is read.
    if let Err(e) = std::io::stdin()
        .take(80 * 1024 * 1024)
        .read_to_end(&mut zip)
    {
        eprintln!("reading the zip: {e}");
        std::process::exit(1);
    }
    let code = match unpack_into(std::io::Cursor::new(zip), Path::new("."), limit) {
        Ok(()) => 0,
        Err(e) => {
            let (code, msg) = match &e {
                CodeError::NotAZip => (2, String::new()),
                CodeError::TooLarge { .. } => (3, String::new()),
                CodeError::TooManyEntries { .. } => (4, String::new()),
                CodeError::UnsafeEntry(n) => (5, n.clone()),
                CodeError::BeneathLink(n) => (6, n.clone()),
                CodeError::Conflict(n) => (7, n.clone()),
                CodeError::Io { .. } => (1, e.to_string()),
            };
            eprintln!("{msg}");
            code
        }
    };
    std::process::exit(code)
}

/// Unpacks an archive into `root`, an existing empty directory.
fn unpack_into<R: Read + std::io::Seek>(
    reader: R,
    root: &Path,
    limit: u64,
) -> Result<(), CodeError> {
    use std::os::unix::fs::PermissionsExt;
    let mut archive = zip::ZipArchive::new(reader).map_err(|_| CodeError::NotAZip)?;
    let (entries, _) = plan(&mut archive, limit)?;
    let mut made: HashSet<PathBuf> = HashSet::new();
    made.insert(root.to_path_buf());
    let mut written = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    // Directories and regular files first; no link exists in the tree while they are written.
    for (i, rel, kind) in &entries {
        match kind {
            Kind::Dir => make_dirs(root, rel, &mut made)?,
            Kind::Link(_) => {}
            Kind::File => {
                if let Some(p) = rel.parent() {
                    make_dirs(root, p, &mut made)?;
                }
                let target = root.join(rel);
                let mut entry = archive.by_index(*i).map_err(|_| CodeError::NotAZip)?;
                let mode = entry.unix_mode();
                let mut out = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&target)
                    .map_err(io(&target))?;
                loop {
                    let n = entry.read(&mut buf).map_err(|_| CodeError::NotAZip)?;
                    if n == 0 {
                        break;
                    }
                    written += n as u64;
                    if written > limit {
                        return Err(CodeError::TooLarge { limit });
                    }
                    out.write_all(&buf[..n]).map_err(io(&target))?;
                }
                // Keep the permission bits the archive recorded (an executable `bootstrap`
                // must stay executable), without set-id bits; default to rw-r--r--; always
                // readable by everyone (environments run as other uids).
                // Nobody but the owner may write the code (it is shared by every function with
                // the same zip, and read-only at /var/task as on Lambda).
                let perm = mode.map(|m| m & 0o755).filter(|m| *m != 0).unwrap_or(0o644) | 0o444;
                out.set_permissions(std::fs::Permissions::from_mode(perm))
                    .map_err(io(&target))?;
            }
        }
    }
    // Links last: their parents are real directories made above (never a link, see `plan`).
    for (_, rel, kind) in &entries {
        if let Kind::Link(link) = kind {
            if let Some(p) = rel.parent() {
                make_dirs(root, p, &mut made)?;
            }
            let target = root.join(rel);
            std::os::unix::fs::symlink(link, &target).map_err(io(&target))?;
        }
    }
    // One `syncfs` makes every file and directory written above durable (far cheaper than an
    // fsync per file for a tree of thousands); the rename into place is synced after it.
    let dir = std::fs::File::open(root).map_err(io(root))?;
    use std::os::fd::AsRawFd;
    // SAFETY: `dir` is an open descriptor for the duration of the call.
    if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
        return Err(io(root)(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Whether a symlink at `entry` (relative to the root) pointing at `link` resolves inside the
/// root. `..` may appear only before the first name: after a name, which may itself be a link,
/// `..` would climb from wherever that link leads, which no check on names can bound.
fn symlink_stays_inside(entry: &Path, link: &Path) -> bool {
    if link.as_os_str().is_empty() || link.is_absolute() {
        return false;
    }
    let mut depth: i64 = entry.components().count() as i64 - 1;
    let mut seen_name = false;
    for c in link.components() {
        match c {
            Component::ParentDir if !seen_name => depth -= 1,
            Component::Normal(_) => {
                seen_name = true;
                depth += 1
            }
            Component::CurDir => {}
            _ => return false,
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

fn entry_name<R: Read>(entry: &zip::read::ZipFile<'_, R>) -> String {
    entry
        .name()
        .map(|n| n.into_owned())
        .unwrap_or_else(|_| "<undecodable name>".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use zip::write::SimpleFileOptions;

    fn zip_of(entries: &[(&str, &[u8], u32)]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, data, mode) in entries {
            w.start_file(*name, SimpleFileOptions::default().unix_permissions(*mode))
                .expect("start");
            w.write_all(data).expect("write");
        }
        w.finish().expect("finish").into_inner()
    }

    #[test]
    fn unpacks_with_modes_and_refuses_garbage() -> Result<(), CodeError> {
        let dir = tempfile::tempdir().map_err(io(Path::new("tmp")))?;
        let z = zip_of(&[
            ("bootstrap", b"#!/bin/sh\n", 0o755),
            ("lib/a.txt", b"a", 0o644),
        ]);
        assert_eq!(inspect_zip(&z, MAX_UNZIPPED_BYTES)?.entries, 2);
        let zp = dir.path().join("c.zip");
        std::fs::write(&zp, &z).map_err(io(&zp))?;
        let dest = unpack_once(&zp, &dir.path().join("task"), MAX_UNZIPPED_BYTES)?;
        use std::os::unix::fs::PermissionsExt;
        let m = std::fs::metadata(dest.join("bootstrap"))
            .map_err(io(&dest))?
            .permissions()
            .mode();
        assert_eq!(m & 0o777, 0o755);
        assert_eq!(
            std::fs::read(dest.join("lib/a.txt")).map_err(io(&dest))?,
            b"a"
        );
        assert!(matches!(
            inspect_zip(b"not a zip", MAX_UNZIPPED_BYTES),
            Err(CodeError::NotAZip)
        ));
        Ok(())
    }

    #[test]
    fn refuses_zip_slip_and_oversize() -> Result<(), CodeError> {
        let evil = zip_of(&[("../../etc/evil", b"x", 0o644)]);
        assert!(matches!(
            inspect_zip(&evil, MAX_UNZIPPED_BYTES),
            Err(CodeError::UnsafeEntry(_))
        ));
        let big = zip_of(&[("a", &[0u8; 2000], 0o644)]);
        assert!(matches!(
            inspect_zip(&big, 1000),
            Err(CodeError::TooLarge { .. })
        ));
        let dir = tempfile::tempdir().map_err(io(Path::new("tmp")))?;
        let zp = dir.path().join("big.zip");
        std::fs::write(&zp, &big).map_err(io(&zp))?;
        assert!(matches!(
            unpack_once(&zp, &dir.path().join("t"), 1000),
            Err(CodeError::TooLarge { .. })
        ));
        assert!(!dir.path().join("t").exists());
        Ok(())
    }

    /// A zip of (name, link target) symlinks and (name, data) files, in order.
    fn zip_with_links(entries: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, link, data) in entries {
            match link {
                Some(t) => w
                    .add_symlink(*name, *t, SimpleFileOptions::default())
                    .expect("link"),
                None => {
                    w.start_file(*name, SimpleFileOptions::default())
                        .expect("start");
                    w.write_all(data).expect("write");
                }
            }
        }
        w.finish().expect("finish").into_inner()
    }

    /// The reported escape: `a -> .`, `a/a/a/up -> ../../..`, then a file through `up`.
    #[test]
    fn refuses_writes_through_links() -> Result<(), CodeError> {
        let dir = tempfile::tempdir().map_err(io(Path::new("tmp")))?;
        let attacks = [
            zip_with_links(&[
                ("a", Some("."), b""),
                ("a/a/a/up", Some("../../.."), b""),
                ("a/a/a/up/escaped", None, b"pwned"),
            ]),
            // A link then a file beneath it.
            zip_with_links(&[("l", Some("d"), b""), ("l/x", None, b"x")]),
            // `..` after a name that is itself a link climbs out of the root.
            zip_with_links(&[("b", Some("."), b""), ("d/e", Some("../b/../.."), b"")]),
            zip_with_links(&[("abs", Some("/etc"), b"")]),
            zip_with_links(&[("up", Some(".."), b"")]),
            zip_with_links(&[("f", None, b"1"), ("f/x", None, b"")]),
        ];
        for (n, z) in attacks.iter().enumerate() {
            assert!(
                inspect_zip(z, MAX_UNZIPPED_BYTES).is_err(),
                "attack {n} passed inspection"
            );
            let zp = dir.path().join(format!("{n}.zip"));
            std::fs::write(&zp, z).map_err(io(&zp))?;
            let task = dir.path().join("tasks").join(n.to_string());
            assert!(unpack_once(&zp, &task, MAX_UNZIPPED_BYTES).is_err());
            assert!(!task.exists(), "attack {n} left a task root");
        }
        assert!(!dir.path().join("escaped").exists());
        assert!(!dir.path().join("tasks/escaped").exists());
        Ok(())
    }

    #[test]
    fn keeps_links_that_stay_inside() -> Result<(), CodeError> {
        let dir = tempfile::tempdir().map_err(io(Path::new("tmp")))?;
        let z = zip_with_links(&[
            ("node_modules/.bin/tool", Some("../pkg/bin/tool"), b""),
            ("node_modules/pkg/bin/tool", None, b"#!/bin/sh\n"),
            ("lib/libx.so", Some("libx.so.1"), b""),
            ("lib/libx.so.1", None, b"elf"),
        ]);
        assert_eq!(inspect_zip(&z, MAX_UNZIPPED_BYTES)?.entries, 4);
        let zp = dir.path().join("ok.zip");
        std::fs::write(&zp, &z).map_err(io(&zp))?;
        let task = unpack_once(&zp, &dir.path().join("task"), MAX_UNZIPPED_BYTES)?;
        assert_eq!(
            std::fs::read(task.join("lib/libx.so")).map_err(io(&task))?,
            b"elf"
        );
        assert_eq!(
            std::fs::read_link(task.join("node_modules/.bin/tool")).map_err(io(&task))?,
            Path::new("../pkg/bin/tool")
        );
        Ok(())
    }

    #[test]
    fn dot_slash_names_are_plain_names() -> Result<(), CodeError> {
        let dir = tempfile::tempdir().map_err(io(Path::new("tmp")))?;
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        w.add_directory("./", SimpleFileOptions::default())
            .expect("dir");
        w.start_file(
            "./bootstrap",
            SimpleFileOptions::default().unix_permissions(0o777),
        )
        .expect("start");
        w.write_all(b"#!/bin/sh\n").expect("write");
        let z = w.finish().expect("finish").into_inner();
        inspect_zip(&z, MAX_UNZIPPED_BYTES)?;
        let zp = dir.path().join("dot.zip");
        std::fs::write(&zp, &z).map_err(io(&zp))?;
        let task = unpack_once(&zp, &dir.path().join("task"), MAX_UNZIPPED_BYTES)?;
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(task.join("bootstrap"))
            .map_err(io(&task))?
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755, "group/other write bits are dropped");
        Ok(())
    }

    #[test]
    fn caps_the_entry_count() {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for i in 0..=MAX_ENTRIES {
            w.start_file(format!("{i}"), SimpleFileOptions::default())
                .expect("start");
        }
        let z = w.finish().expect("finish").into_inner();
        assert!(matches!(
            inspect_zip(&z, MAX_UNZIPPED_BYTES),
            Err(CodeError::TooManyEntries { .. })
        ));
    }

    #[test]
    fn symlinks_must_stay_inside() {
        assert!(!symlink_stays_inside(
            Path::new("d/e"),
            Path::new("../b/..")
        ));
        assert!(!symlink_stays_inside(Path::new("a"), Path::new("")));
        assert!(symlink_stays_inside(Path::new("a/b"), Path::new("../c")));
        assert!(!symlink_stays_inside(Path::new("a"), Path::new("../x")));
        assert!(!symlink_stays_inside(
            Path::new("a"),
            Path::new("/etc/passwd")
        ));
    }
}
