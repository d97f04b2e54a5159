//! Opening the configured backends in the data directory, the directory lock, and
//! verification, which the `EventLog` trait does not carry.
//!
//! Layout of a data directory:
//!
//! ```text
//! <dir>/LOCK          exclusive lock: one open database per directory
//! <dir>/log/          the event log (file or LMDB backend)
//! <dir>/VIEW          name of the current view directory (absent: "view")
//! <dir>/view*/        the canonical store (LMDB view); `rebuild_view` writes a new one beside
//!                     it and switches VIEW atomically
//! <dir>/.verify-view-*/  a backup restored for `verify_view_from_backup`, removed after it
//!                     (and at the next open, after a crash)
//! <dir>/..verify-view-*.restoring-*/  that restore's staging directory, renamed to the
//!                     above when complete; a crash before leaves it, removed at the next open
//! ```

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use azoth_core::{
    AzothError, CanonicalStore, EventId, EventLog, Location, LogUnit, MemoryStore, Result,
    UnitState, VerifyFailure, VerifyProgress, VerifyReport, decode_event,
};
use azoth_file::{FileEventLog, FileLogOptions};
use azoth_lmdb::{LmdbEventLog, LmdbLogOptions, LmdbStore};

use crate::config::{Config, LogBackend, StoreBackend};

const VIEW_POINTER: &str = "VIEW";
const DEFAULT_VIEW_DIR: &str = "view";

/// The log as opened, keeping the concrete backend for `verify`.
#[derive(Clone)]
pub(crate) enum LogHandle {
    File(Arc<FileEventLog>),
    Lmdb(Arc<LmdbEventLog>),
    /// A log given by the caller; verified by decoding every event.
    Custom(Arc<dyn EventLog>),
}

impl LogHandle {
    pub(crate) fn log(&self) -> Arc<dyn EventLog> {
        match self {
            LogHandle::File(log) => Arc::clone(log) as Arc<dyn EventLog>,
            LogHandle::Lmdb(log) => Arc::clone(log) as Arc<dyn EventLog>,
            LogHandle::Custom(log) => Arc::clone(log),
        }
    }

    pub(crate) fn verify(&self) -> Result<VerifyReport> {
        self.verify_with_progress(&mut |_| {})
    }

    /// [`verify`](Self::verify), calling `progress` after each unit (once, for a custom log).
    pub(crate) fn verify_with_progress(
        &self,
        progress: &mut dyn FnMut(VerifyProgress),
    ) -> Result<VerifyReport> {
        match self {
            LogHandle::File(log) => log.verify_with_progress(progress),
            LogHandle::Lmdb(log) => log.verify_with_progress(progress),
            LogHandle::Custom(log) => verify_by_decoding(log.as_ref(), progress),
        }
    }

    /// The log's units, oldest first, the active one last. A custom log is one active unit
    /// (the trait does not show its units).
    pub(crate) fn units(&self) -> Result<Vec<LogUnit>> {
        match self {
            LogHandle::File(log) => Ok(log.units()),
            LogHandle::Lmdb(log) => log.units(),
            LogHandle::Custom(log) => {
                let stats = log.stats()?;
                Ok(vec![LogUnit {
                    first_event_id: stats.oldest_event_id,
                    end_event_id: stats.newest_event_id + 1,
                    bytes: stats.total_bytes,
                    state: UnitState::Active,
                    path: std::path::PathBuf::new(),
                }])
            }
        }
    }

    /// Archives the sealed units whose events are all at or below `up_to`.
    pub(crate) fn archive(&self, up_to: EventId) -> Result<Vec<std::path::PathBuf>> {
        match self {
            LogHandle::File(log) => log.archive(up_to),
            LogHandle::Lmdb(log) => log.archive(up_to),
            LogHandle::Custom(_) => Err(AzothError::Config(
                "a log given to open_with_backends has no archival".into(),
            )),
        }
    }
}

/// For logs without their own integrity check: every event decodes and ids are dense.
/// Progress is coarse: one call at the end, as one unit.
fn verify_by_decoding(
    log: &dyn EventLog,
    progress: &mut dyn FnMut(VerifyProgress),
) -> Result<VerifyReport> {
    let mut report = verify_events(log)?;
    report.segments_verified = 1;
    let bytes = log.stats()?.total_bytes;
    progress(VerifyProgress {
        bytes_done: bytes,
        bytes_total: bytes,
        segments_done: 1,
        segments_total: 1,
    });
    Ok(report)
}

fn verify_events(log: &dyn EventLog) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let mut expected = log.oldest_event_id()?;
    for item in log.iter_range(expected, None)? {
        let (id, bytes) = match item {
            Ok(pair) => pair,
            Err(e) => {
                report.first_failure = Some(VerifyFailure {
                    location: Location::default().at_event(expected),
                    detail: e.to_string(),
                });
                return Ok(report);
            }
        };
        let failure = if id != expected {
            Some(format!("expected event {expected}, found {id}"))
        } else {
            decode_event(&bytes).err().map(|e| e.to_string())
        };
        if let Some(detail) = failure {
            report.first_failure = Some(VerifyFailure {
                location: Location::default().at_event(id),
                detail,
            });
            return Ok(report);
        }
        report.events_verified += 1;
        expected = id + 1;
    }
    Ok(report)
}

/// Opens the log in `dir` read-only with default options, for checking a copy of a log
/// (a backup, a restore) without changing it.
pub(crate) fn open_log_read_only(backend: LogBackend, dir: &Path) -> Result<LogHandle> {
    Ok(match backend {
        LogBackend::File => LogHandle::File(Arc::new(FileEventLog::open_read_only(dir)?)),
        LogBackend::Lmdb => LogHandle::Lmdb(Arc::new(LmdbEventLog::open_read_only(dir)?)),
    })
}

/// Opens the configured log in `<dir>/log`.
pub(crate) fn open_log(config: &Config) -> Result<LogHandle> {
    let dir = config.dir.join("log");
    match config.log_backend {
        LogBackend::File => {
            let mut options = FileLogOptions::default()
                .segment_size(config.segment_size)
                .sync_mode(config.sync_mode)
                .compression_level(config.archive_compression_level)
                .write_buffer(config.log_write_buffer)
                .preallocate(config.log_preallocate);
            if let Some(archive_dir) = &config.archive_dir {
                options = options.archive_dir(archive_dir);
            }
            Ok(LogHandle::File(Arc::new(options.open(&dir)?)))
        }
        LogBackend::Lmdb => {
            let mut options = LmdbLogOptions::default()
                .sync_mode(config.sync_mode)
                .archive_level(config.archive_compression_level);
            if let Some(archive_dir) = &config.archive_dir {
                options = options.archive_dir(archive_dir);
            }
            Ok(LogHandle::Lmdb(Arc::new(options.open(&dir)?)))
        }
    }
}

/// Opens the configured store: the current view directory for LMDB, and removes view
/// directories a crashed `rebuild_view` left behind.
pub(crate) fn open_store(config: &Config) -> Result<Arc<dyn CanonicalStore>> {
    match config.store_backend {
        StoreBackend::Memory => Ok(Arc::new(MemoryStore::new())),
        StoreBackend::Lmdb => {
            let current = current_view_dir(&config.dir)?;
            remove_stale_views(&config.dir, &current);
            Ok(Arc::new(LmdbStore::open(config.dir.join(&current))?))
        }
    }
}

/// A fresh, empty store for `rebuild_view`, and the name of its directory (LMDB).
pub(crate) fn new_store(config: &Config) -> Result<(Arc<dyn CanonicalStore>, Option<String>)> {
    match config.store_backend {
        StoreBackend::Memory => Ok((Arc::new(MemoryStore::new()), None)),
        StoreBackend::Lmdb => {
            let current = current_view_dir(&config.dir)?;
            let next = next_view_name(&current);
            let path = config.dir.join(&next);
            if path.exists() {
                fs::remove_dir_all(&path)?;
            }
            Ok((Arc::new(LmdbStore::open(&path)?), Some(next)))
        }
    }
}

/// Makes `name` the current view directory: written to a temporary file, synced and renamed
/// over `VIEW`, so a crash leaves either the old or the new view current.
pub(crate) fn switch_view(dir: &Path, name: &str) -> Result<()> {
    let tmp = dir.join("VIEW.tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(name.as_bytes())?;
    file.sync_all()?;
    fs::rename(&tmp, dir.join(VIEW_POINTER))?;
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Removes a view directory no longer current (after a rebuild switched away from it).
pub(crate) fn remove_view(dir: &Path, name: &str) {
    if let Err(e) = fs::remove_dir_all(dir.join(name)) {
        tracing::warn!(view = name, error = %e, "could not remove an old view directory");
    }
}

/// The name of the current view directory: what `VIEW` says, or `view`.
pub(crate) fn current_view_dir(dir: &Path) -> Result<String> {
    match fs::read_to_string(dir.join(VIEW_POINTER)) {
        Ok(name) => {
            let name = name.trim().to_owned();
            if !is_view_name(&name) {
                return Err(AzothError::corruption(
                    Location::file(dir.join(VIEW_POINTER)),
                    format!("not a view directory name: {name:?}"),
                ));
            }
            Ok(name)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DEFAULT_VIEW_DIR.to_owned()),
        Err(e) => Err(e.into()),
    }
}

fn is_view_name(name: &str) -> bool {
    name == DEFAULT_VIEW_DIR
        || name
            .strip_prefix("view-")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn next_view_name(current: &str) -> String {
    let n: u64 = current
        .strip_prefix("view-")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    format!("view-{}", n + 1)
}

fn remove_stale_views(dir: &Path, current: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != current && is_view_name(&name) {
            remove_view(dir, &name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_names() {
        assert!(is_view_name("view"));
        assert!(is_view_name("view-12"));
        assert!(!is_view_name("view-"));
        assert!(!is_view_name("view-x"));
        assert!(!is_view_name("../etc"));
        assert_eq!(next_view_name("view"), "view-1");
        assert_eq!(next_view_name("view-7"), "view-8");
    }
}
