//! [`FileLogOptions`]: how a [`FileEventLog`](crate::FileEventLog) is opened.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use azoth_core::{Result, SyncMode};

use crate::fs::{FileSystem, StdFs};
use crate::log::FileEventLog;

/// What to do when the active segment ends in a damaged or incomplete block (a torn write).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// Cut the damaged tail off, log how many bytes (and events, when known) were dropped, and
    /// open. Only the unacknowledged tail of a crash is lost this way. With
    /// [`SyncMode::Always`], a damaged block followed by a whole block is not a torn write
    /// (each block was synced before the next was written): open then refuses with
    /// `Corruption` rather than cut acknowledged events. The default.
    #[default]
    TruncateTail,
    /// Refuse to open with [`AzothError::Corruption`](azoth_core::AzothError::Corruption)
    /// naming the damage, leaving the files untouched.
    Refuse,
}

/// The options of a [`FileEventLog`]; build with the setters, then [`open`](Self::open).
///
/// ```
/// use azoth_core::{EventLog, SyncMode};
/// use azoth_file::FileLogOptions;
///
/// let dir = tempfile::tempdir()?;
/// let log = FileLogOptions::default()
///     .segment_size(1 << 20)
///     .sync_mode(SyncMode::Never)
///     .open(dir.path())?;
/// log.append_with_id(1, b"hello")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct FileLogOptions {
    pub(crate) segment_size: u64,
    pub(crate) sync_mode: SyncMode,
    pub(crate) recovery_mode: RecoveryMode,
    pub(crate) archive_dir: Option<PathBuf>,
    pub(crate) compression_level: i32,
    pub(crate) write_buffer: usize,
    pub(crate) preallocate: u64,
    pub(crate) fs: Arc<dyn FileSystem>,
}

/// The default segment size: 64 MiB.
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 * 1024 * 1024;
/// The default zero-filled space kept ahead of the active segment's end under
/// [`SyncMode::Always`]: 1 MiB.
pub const DEFAULT_PREALLOCATE: u64 = 1024 * 1024;
/// The default zstd level of archives: 3.
pub const DEFAULT_COMPRESSION_LEVEL: i32 = 3;

impl Default for FileLogOptions {
    fn default() -> Self {
        Self {
            segment_size: DEFAULT_SEGMENT_SIZE,
            sync_mode: SyncMode::Always,
            recovery_mode: RecoveryMode::TruncateTail,
            archive_dir: None,
            compression_level: DEFAULT_COMPRESSION_LEVEL,
            write_buffer: 0,
            preallocate: DEFAULT_PREALLOCATE,
            fs: Arc::new(StdFs),
        }
    }
}

impl FileLogOptions {
    /// The size at which the active segment is sealed and a new one started (a block is never
    /// split, so a segment may end up to one block larger). Default: 64 MiB.
    pub fn segment_size(mut self, bytes: u64) -> Self {
        self.segment_size = bytes;
        self
    }

    /// When appends are made durable. Default: [`SyncMode::Always`].
    pub fn sync_mode(mut self, mode: SyncMode) -> Self {
        self.sync_mode = mode;
        self
    }

    /// What to do with a damaged tail at open. Default: [`RecoveryMode::TruncateTail`].
    pub fn recovery_mode(mut self, mode: RecoveryMode) -> Self {
        self.recovery_mode = mode;
        self
    }

    /// Where [`archive`](FileEventLog::archive) puts archives. Give the same directory at every
    /// open: archives are found only in the log directory and this one. Default: the log
    /// directory.
    pub fn archive_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.archive_dir = Some(dir.into());
        self
    }

    /// The zstd level of archives (1..=22). Default: 3.
    pub fn compression_level(mut self, level: i32) -> Self {
        self.compression_level = level;
        self
    }

    /// With [`SyncMode::Never`] or [`SyncMode::IntervalMs`], gather appended blocks in memory
    /// up to this many bytes and write them to the active segment in one `pwrite`, instead of
    /// one per block: for small appends the system call is most of the cost. The blocks are
    /// written out when the buffer is full, at every sync (the interval thread's included),
    /// at rotation, on close, and before any reader of this handle (or a read-only handle in
    /// this process) reads them, so readers still see every acknowledged block. The price:
    /// a crash of the process (not only of the machine) may lose what is gathered, and
    /// another process sees the gathered blocks only once they are written out. No effect
    /// with [`SyncMode::Always`], which writes and syncs every block before acknowledging it.
    /// Default: 0 (every block is written when appended).
    pub fn write_buffer(mut self, bytes: usize) -> Self {
        self.write_buffer = bytes;
        self
    }

    /// With [`SyncMode::Always`], keep up to this many bytes of zeros written ahead of the end
    /// of the active segment (no more than the segment holds, from 16 KiB on, so that a new
    /// segment's first appends write few), extended whenever an append of up to 64 KiB
    /// reaches them (a larger block grows the file: zeros ahead of it would double the bytes
    /// written for little).
    /// An append then overwrites blocks the file already has, so its `fdatasync` writes the
    /// data and flushes the device, and no longer writes the inode for a grown file length as
    /// well: on ext4 that was a third write, one after the other, in every sync (measured in
    /// `PERFORMANCE.md`). The zeros are cut off when the segment is sealed and on close; after
    /// a crash, open finds them after the last block and cuts them off (an all-zero tail is
    /// never counted as damage, see `FORMAT.md`). No effect with the other sync modes, whose
    /// appends do not sync. 0 turns it off. Default: [`DEFAULT_PREALLOCATE`] (1 MiB).
    pub fn preallocate(mut self, bytes: u64) -> Self {
        self.preallocate = bytes;
        self
    }

    /// Replaces the file-system layer (tests inject faults with it). Default: the real one.
    #[doc(hidden)]
    pub fn file_system(mut self, fs: Arc<dyn FileSystem>) -> Self {
        self.fs = fs;
        self
    }

    /// Opens (creating if needed) the log in `dir` for writing, taking its lock and repairing
    /// a torn tail per the recovery mode.
    ///
    /// # Errors
    /// [`Locked`](azoth_core::AzothError::Locked) if another writer holds `dir`;
    /// [`Config`](azoth_core::AzothError::Config) for invalid options;
    /// [`Corruption`](azoth_core::AzothError::Corruption) for damage that cannot be repaired
    /// (or any tail damage under [`RecoveryMode::Refuse`]); I/O errors.
    pub fn open(self, dir: impl AsRef<Path>) -> Result<FileEventLog> {
        FileEventLog::open_with(dir.as_ref(), self, false)
    }

    /// Opens the log in `dir` read-only: no lock, no repair, no writes. It follows a writer
    /// of the directory (in this process or another): `next_event_id`, `newest_event_id`,
    /// `iter_range`, `get`, `stats` and `verify` first take in the whole blocks appended and
    /// the segments rotated, archived or removed since; a block still being written is not yet
    /// visible (never an error). A unit the writer archives or removes while this opens (its
    /// file listed, then gone) is no error either: the directory is listed again.
    ///
    /// # Errors
    /// I/O errors; [`Corruption`](azoth_core::AzothError::Corruption) if the active segment's
    /// header is unreadable.
    pub fn open_read_only(self, dir: impl AsRef<Path>) -> Result<FileEventLog> {
        FileEventLog::open_with(dir.as_ref(), self, true)
    }
}
