//! The exclusive lock that keeps a second writer, in this process or another, out of a
//! directory.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use azoth_core::{AzothError, Result};
use fs2::FileExt;

/// The name of the lock file inside a store's or log's directory.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// Holds `dir/LOCK` locked exclusively until dropped.
///
/// `flock` locks belong to the open file description, so a second open of the same directory
/// fails even inside one process, before LMDB (whose own lock file does not exclude a second
/// writer process from *opening*) is touched.
#[derive(Debug)]
pub(crate) struct DirLock {
    file: File,
    path: PathBuf,
}

impl DirLock {
    /// Locks `dir`, creating the lock file if needed.
    ///
    /// # Errors
    /// [`AzothError::Locked`] if another handle holds the lock; I/O errors.
    pub(crate) fn acquire(dir: &Path) -> Result<Self> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        match file.try_lock_exclusive() {
            Ok(()) => Ok(Self { file, path }),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.raw_os_error() == fs2::lock_contended_error().raw_os_error() =>
            {
                Err(AzothError::Locked {
                    path: dir.to_path_buf(),
                })
            }
            Err(e) => Err(AzothError::Io(e)),
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        if let Err(e) = FileExt::unlock(&self.file) {
            tracing::warn!(path = %self.path.display(), error = %e, "unlocking failed");
        }
    }
}
