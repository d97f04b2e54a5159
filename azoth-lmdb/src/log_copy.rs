//! [`LmdbEventLog::copy_to`]: a consistent copy of the log while it is written, for backups.

use std::path::{Path, PathBuf};

use azoth_core::archive::ARCHIVE_EXTENSION;
use azoth_core::{AzothError, Result};
use heed::CompactionOption;

use crate::LmdbEventLog;

impl LmdbEventLog {
    /// Copies the log into `dest` (a directory that must not exist yet or be empty), in the
    /// layout [`open`](Self::open) reads: `dest/env/data.mdb`, and `dest/archive/` holding the
    /// archives of archived segments. Returns the files written.
    ///
    /// The environment is copied by LMDB (`mdb_env_copy2`, compacting) from one read
    /// transaction, so the copy is the log as of one commit, taken while appends go on. The
    /// archives are copied after it: every segment the copy records as archived had its
    /// archive written before it was marked, so the copy finds all it needs (an archive made
    /// later is an unused extra). Archival and retention of this handle wait for the copy, so
    /// no archive the copied records name is deleted before it is copied. Ids, the hash chain
    /// and segment boundaries are kept.
    ///
    /// # Errors
    /// `Config` if `dest` is not empty; I/O and LMDB errors.
    pub fn copy_to(&self, dest: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
        let dest = dest.as_ref();
        if dest.exists() && std::fs::read_dir(dest)?.next().is_some() {
            return Err(AzothError::Config(format!(
                "cannot copy the log into {}: it is not empty",
                dest.display()
            )));
        }
        // Retention deletes a segment's records and then its archive: between the environment
        // copy and the archive copy that would leave the copy naming an archive it lacks.
        let _job = self.jobs.lock();
        let env_dir = dest.join("env");
        std::fs::create_dir_all(&env_dir)?;
        let data = env_dir.join("data.mdb");
        {
            let env = &self.shared.env;
            // The map must not move while LMDB copies from it (see `env.rs`).
            let _gate = env.gate();
            let file = env
                .env()
                .copy_to_path(&data, CompactionOption::Enabled)
                .map_err(|e| env.err(e))?;
            file.sync_all()?;
        }
        let mut written = vec![data];
        let archives = self.archive_dir();
        let entries = match std::fs::read_dir(&archives) {
            Ok(entries) => Some(entries),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        for entry in entries.into_iter().flatten() {
            let entry = entry?;
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some(ARCHIVE_EXTENSION) {
                continue;
            }
            let to = dest.join("archive").join(entry.file_name());
            std::fs::create_dir_all(dest.join("archive"))?;
            match std::fs::copy(&path, &to) {
                Ok(_) => {
                    std::fs::File::open(&to)?.sync_all()?;
                    written.push(to);
                }
                // Gone meanwhile: a stray archive no record names (the next open removes
                // those), or, for a read-only handle, retention by the writing process; the
                // restore's verify finds a copy that then lacks an archive it needs.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        crate::fsutil::sync_dir(&env_dir)?;
        crate::fsutil::sync_dir(dest)?;
        Ok(written)
    }
}
