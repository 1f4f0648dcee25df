//! Content-addressed blob files (function code zips), named by the hex SHA-256 of their bytes.
//! A blob is written to a temporary file, fsynced, renamed into place and its directory fsynced,
//! so a blob that was acknowledged is whole after a crash.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{Result, StoreError};

/// The directory of content-addressed blobs (mode `0700`; each blob `0600`).
#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
}

impl BlobStore {
    pub(crate) fn open(dir: &Path) -> Result<BlobStore> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| StoreError::io(dir, e))?;
        }
        Ok(BlobStore {
            dir: dir.to_path_buf(),
        })
    }

    /// The path a blob with this hex digest is (or would be) stored at.
    pub fn path(&self, sha256_hex: &str) -> PathBuf {
        self.dir.join(sha256_hex)
    }

    /// Stores `bytes` durably and returns their hex SHA-256.
    pub fn put(&self, bytes: &[u8]) -> Result<String> {
        let digest = hex::encode(Sha256::digest(bytes));
        let path = self.path(&digest);
        if path.exists() {
            return Ok(digest);
        }
        let tmp = self
            .dir
            .join(format!(".{digest}.{}.tmp", std::process::id()));
        let mut f = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| StoreError::io(&tmp, e))?
        };
        f.write_all(bytes).map_err(|e| StoreError::io(&tmp, e))?;
        f.sync_all().map_err(|e| StoreError::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| StoreError::io(&path, e))?;
        let d = std::fs::File::open(&self.dir).map_err(|e| StoreError::io(&self.dir, e))?;
        d.sync_all().map_err(|e| StoreError::io(&self.dir, e))?;
        Ok(digest)
    }

    /// Reads a whole blob; `BlobNotFound` if no blob has this digest.
    pub fn get(&self, sha256_hex: &str) -> Result<Vec<u8>> {
        let path = self.path(sha256_hex);
        std::fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                StoreError::BlobNotFound(sha256_hex.to_string())
            } else {
                StoreError::io(&path, e)
            }
        })
    }

    /// Deletes a blob; deleting one that does not exist is not an error.
    pub fn remove(&self, sha256_hex: &str) -> Result<()> {
        let path = self.path(sha256_hex);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(&path, e)),
        }
    }
}
