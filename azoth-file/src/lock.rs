//! The exclusive lock that keeps a second writer out of a log directory.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use azoth_core::{AzothError, Result};
use fs2::FileExt;

use crate::file_name::LOCK_FILE;

/// Holds the `LOCK` file of a directory locked (flock) until dropped.
///
/// flock locks belong to the open file description, so a second open in the same process
/// conflicts just as one in another process does, and the kernel drops the lock when the
/// process dies: a crashed writer never leaves a stale lock.
#[derive(Debug)]
pub struct DirLock {
    file: File,
    path: PathBuf,
}

impl DirLock {
    /// Takes the lock of `dir` or fails at once.
    ///
    /// # Errors
    /// [`AzothError::Locked`] if another handle holds it; I/O errors.
    pub fn acquire(dir: &Path) -> Result<Self> {
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
            Err(e) => Err(e.into()),
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        if let Err(e) = FileExt::unlock(&self.file) {
            tracing::warn!(path = %self.path.display(), error = %e, "unlocking the log directory failed");
        }
    }
}
