//! Function code: checking an uploaded zip and unpacking it once per code version.
//!
//! Unpacking refuses entries that would land outside the task root (zip-slip), symlinks that
//! point outside it, and archives whose real unpacked size exceeds the limit (the bytes written
//! are counted; declared sizes are not trusted). A code version is unpacked into a temporary
//! directory and renamed into place, so a task root is either complete or absent.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

/// Lambda's limit on the unzipped size of a function (with layers): 250 MB.
pub const MAX_UNZIPPED_BYTES: u64 = 262_144_000;

#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    #[error("Could not unzip uploaded file. Please check your file, then try to upload again.")]
    NotAZip,
    #[error("Unzipped size must be smaller than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("The zip file entry '{0}' points outside the function's directory")]
    UnsafeEntry(String),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
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
    pub entries: usize,
    pub declared_unzipped_bytes: u64,
}

/// Checks that `bytes` is a readable zip within the size limit and has no unsafe entry.
pub fn inspect_zip(bytes: &[u8], limit: u64) -> Result<ZipSummary, CodeError> {
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|_| CodeError::NotAZip)?;
    let mut total = 0u64;
    for i in 0..archive.len() {
        let entry = archive.by_index_raw(i).map_err(|_| CodeError::NotAZip)?;
        if entry.enclosed_name().is_none() {
            return Err(CodeError::UnsafeEntry(entry_name(&entry)));
        }
        total = total.saturating_add(entry.size());
        if total > limit {
            return Err(CodeError::TooLarge { limit });
        }
    }
    Ok(ZipSummary {
        entries: archive.len(),
        declared_unzipped_bytes: total,
    })
}

/// Unpacks the zip at `zip_path` into `dest` unless `dest` already exists. Returns `dest`.
pub fn unpack_once(zip_path: &Path, dest: &Path, limit: u64) -> Result<PathBuf, CodeError> {
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
    let result = unpack_into(zip_path, &tmp, limit);
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    match std::fs::rename(&tmp, dest) {
        Ok(()) => Ok(dest.to_path_buf()),
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

fn unpack_into(zip_path: &Path, root: &Path, limit: u64) -> Result<(), CodeError> {
    use std::os::unix::fs::PermissionsExt;
    let file = std::fs::File::open(zip_path).map_err(io(zip_path))?;
    let mut archive =
        zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|_| CodeError::NotAZip)?;
    std::fs::create_dir_all(root).map_err(io(root))?;
    let mut written = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|_| CodeError::NotAZip)?;
        let rel = entry
            .enclosed_name()
            .ok_or_else(|| CodeError::UnsafeEntry(entry_name(&entry)))?;
        let target = root.join(&rel);
        let mode = entry.unix_mode();
        let is_symlink = mode.is_some_and(|m| m & 0o170000 == 0o120000);
        if entry.is_dir() {
            std::fs::create_dir_all(&target).map_err(io(&target))?;
            continue;
        }
        if let Some(p) = target.parent() {
            std::fs::create_dir_all(p).map_err(io(p))?;
        }
        if is_symlink {
            let mut link = String::new();
            entry
                .read_to_string(&mut link)
                .map_err(|_| CodeError::NotAZip)?;
            if !symlink_stays_inside(&rel, Path::new(&link)) {
                return Err(CodeError::UnsafeEntry(entry_name(&entry)));
            }
            std::os::unix::fs::symlink(&link, &target).map_err(io(&target))?;
            continue;
        }
        let mut out = std::fs::File::create(&target).map_err(io(&target))?;
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
        // Keep the permission bits the archive recorded (an executable `bootstrap` must stay
        // executable), without set-id bits; default to rw-r--r--.
        let perm = mode.map(|m| m & 0o777).filter(|m| *m != 0).unwrap_or(0o644) | 0o400;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(perm))
            .map_err(io(&target))?;
    }
    Ok(())
}

/// Whether a symlink at `entry` (relative to the root) pointing at `link` resolves inside the root.
fn symlink_stays_inside(entry: &Path, link: &Path) -> bool {
    if link.is_absolute() {
        return false;
    }
    let mut depth: i64 = entry.components().count() as i64 - 1;
    for c in link.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
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

    #[test]
    fn symlinks_must_stay_inside() {
        assert!(symlink_stays_inside(Path::new("a/b"), Path::new("../c")));
        assert!(!symlink_stays_inside(Path::new("a"), Path::new("../x")));
        assert!(!symlink_stays_inside(
            Path::new("a"),
            Path::new("/etc/passwd")
        ));
    }
}
