//! The exclusive lock that keeps a second writer, in this process or another, out of a
//! directory. Shared by the log backends, the canonical store and the database.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use fs2::FileExt;

use crate::error::{AzothError, Result};

/// The name of the lock file inside a locked directory.
pub const LOCK_FILE: &str = "LOCK";

/// Holds `dir/LOCK` locked exclusively (flock) until dropped.
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
    /// Takes the lock of `dir` (creating the directory and the lock file if needed) or fails
    /// at once.
    ///
    /// # Errors
    /// [`AzothError::Locked`] if another handle holds it; I/O errors.
    pub fn acquire(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
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
            tracing::warn!(path = %self.path.display(), error = %e, "unlocking a directory failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let held = DirLock::acquire(dir.path()).unwrap();
        assert!(matches!(
            DirLock::acquire(dir.path()),
            Err(AzothError::Locked { .. })
        ));
        drop(held);
        DirLock::acquire(dir.path()).unwrap();
    }
}
