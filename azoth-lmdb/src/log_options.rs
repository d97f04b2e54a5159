//! [`LmdbLogOptions`]: how an [`LmdbEventLog`](crate::LmdbEventLog) is opened.

use std::path::{Path, PathBuf};

use azoth_core::{Result, SyncMode};

use crate::LmdbEventLog;

/// The default initial map size of the log: 256 MiB. It doubles whenever full.
pub const DEFAULT_LOG_MAP_SIZE: usize = 256 << 20;

/// Options for opening an [`LmdbEventLog`]; finish with [`open`](LmdbLogOptions::open).
///
/// ```
/// use azoth_core::SyncMode;
///
/// let dir = tempfile::tempdir()?;
/// let log = azoth_lmdb::LmdbLogOptions::default().sync_mode(SyncMode::Never).open(dir.path())?;
/// # drop(log);
/// # Ok::<(), azoth_core::AzothError>(())
/// ```
#[derive(Debug, Clone)]
pub struct LmdbLogOptions {
    pub(crate) sync_mode: SyncMode,
    pub(crate) map_size: usize,
    pub(crate) archive_dir: Option<PathBuf>,
    pub(crate) archive_level: i32,
}

impl Default for LmdbLogOptions {
    fn default() -> Self {
        Self {
            sync_mode: SyncMode::Always,
            map_size: DEFAULT_LOG_MAP_SIZE,
            archive_dir: None,
            archive_level: 3,
        }
    }
}

impl LmdbLogOptions {
    /// When appends are durable: `Always` commits with an fsync before an append returns;
    /// `IntervalMs(n)` commits without one and a background thread syncs every `n` ms;
    /// `Never` leaves it to the OS. Every mode survives a process crash (LMDB's commit is
    /// atomic); only `Always` survives power loss for every acknowledged append.
    ///
    /// `IntervalMs` and `Never` commit with LMDB's `MDB_NOSYNC`, and LMDB documents that a
    /// power loss can then corrupt the environment, not only lose its last transactions: the
    /// file system may write a transaction's meta page before its data pages. Where power
    /// loss matters and appends must not sync one by one, the file log (`azoth-file`) is the
    /// backend to use: after a power loss it opens with a prefix of the log.
    /// Default: `SyncMode::Always`.
    pub fn sync_mode(mut self, mode: SyncMode) -> Self {
        self.sync_mode = mode;
        self
    }

    /// The initial size of the memory map in bytes (rounded up to 1 MiB); it doubles
    /// whenever an append needs more. Default: [`DEFAULT_LOG_MAP_SIZE`] (256 MiB).
    pub fn map_size(mut self, bytes: usize) -> Self {
        self.map_size = bytes;
        self
    }

    /// Where `archive()` writes archive files. One log per archive directory: at open the log
    /// removes temporary archives there and archives older than its oldest segment (left by
    /// a crash in the middle of `delete_range`). Default: `<dir>/archive`.
    pub fn archive_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.archive_dir = Some(dir.into());
        self
    }

    /// The zstd level of archives. Default: 3.
    pub fn archive_level(mut self, level: i32) -> Self {
        self.archive_level = level;
        self
    }

    /// Opens (creating if needed) the log in `dir` for writing.
    ///
    /// # Errors
    /// [`Locked`](azoth_core::AzothError::Locked) if another writer holds `dir`; I/O errors;
    /// `Corruption` if the environment's records are damaged.
    pub fn open(self, dir: impl AsRef<Path>) -> Result<LmdbEventLog> {
        LmdbEventLog::open_with(dir.as_ref(), self, false)
    }

    /// Opens the log in `dir` read-only, without taking the writer's lock: for tools that
    /// inspect a live directory.
    ///
    /// # Errors
    /// I/O errors (the log must exist); `Corruption`.
    pub fn open_read_only(self, dir: impl AsRef<Path>) -> Result<LmdbEventLog> {
        LmdbEventLog::open_with(dir.as_ref(), self, true)
    }
}
