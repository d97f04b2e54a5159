//! [`Config`]: where the database lives and how it behaves, with documented defaults.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use azoth_core::{DEFAULT_MAX_VALUE_LEN, SyncMode};

use crate::maintenance::MaintenanceConfig;
use crate::projection::Projection;
use crate::retention::RetentionPolicy;
use crate::subscription::SubscriptionConfig;

/// Which [`EventLog`](azoth_core::EventLog) backend holds the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum LogBackend {
    /// `azoth_file::FileEventLog` in `<dir>/log`: segmented append-only files. The default.
    #[default]
    File,
    /// `azoth_lmdb::LmdbEventLog` in `<dir>/log`.
    Lmdb,
}

/// Which [`CanonicalStore`](azoth_core::CanonicalStore) holds the flushed view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum StoreBackend {
    /// `azoth_lmdb::LmdbStore` in `<dir>/view`. The default.
    #[default]
    Lmdb,
    /// `azoth_core::MemoryStore`: nothing is kept across opens, so every open replays the
    /// whole log into the view.
    Memory,
}

/// How a database is opened. Build it with [`Config::new`] and the setters; every setter's
/// documentation ends with its default.
///
/// ```
/// use std::time::Duration;
/// use azoth_projector::{Config, LogBackend, StoreBackend, SyncMode};
///
/// let config = Config::new("/tmp/azoth-doc-config")
///     .sync_mode(SyncMode::Never)
///     .log_backend(LogBackend::Lmdb)
///     .store_backend(StoreBackend::Memory)
///     .memtable_size(8 << 20)
///     .flush_interval(Some(Duration::from_secs(1)));
/// assert_eq!(config.dir(), std::path::Path::new("/tmp/azoth-doc-config"));
/// ```
#[derive(Clone)]
pub struct Config {
    pub(crate) dir: PathBuf,
    pub(crate) sync_mode: SyncMode,
    pub(crate) subscriptions: SubscriptionConfig,
    pub(crate) segment_size: u64,
    pub(crate) memtable_size: usize,
    pub(crate) flush_interval: Option<Duration>,
    pub(crate) group_commit_cap: usize,
    pub(crate) write_queue_capacity: usize,
    pub(crate) max_value_len: usize,
    pub(crate) read_auditing: bool,
    pub(crate) log_backend: LogBackend,
    pub(crate) store_backend: StoreBackend,
    pub(crate) projections: Vec<Arc<dyn Projection>>,
    pub(crate) allow_missing_projections: bool,
    pub(crate) transaction_attempts: u32,
    pub(crate) archive_dir: Option<PathBuf>,
    pub(crate) archive_compression_level: i32,
    pub(crate) log_write_buffer: usize,
    pub(crate) log_preallocate: u64,
    pub(crate) retention: RetentionPolicy,
    pub(crate) maintenance: Option<MaintenanceConfig>,
}

/// The default segment size of the file log: 64 MiB.
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 << 20;
/// The default memtable size: 64 MiB.
pub const DEFAULT_MEMTABLE_SIZE: usize = 64 << 20;
/// The default interval of background flushes: 5 s.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(5);
/// The shortest interval of background flushes: 1 ms, so that the flusher never spins.
const MIN_FLUSH_INTERVAL: Duration = Duration::from_millis(1);
/// The default most write requests one commit group takes: 1024.
pub const DEFAULT_GROUP_COMMIT_CAP: usize = 1024;
/// The default most write requests waiting for a group: 8192.
pub const DEFAULT_WRITE_QUEUE_CAPACITY: usize = 8192;
/// The default zstd level of archives: 3.
pub const DEFAULT_ARCHIVE_COMPRESSION_LEVEL: i32 = 3;
/// The default attempts of [`Database::transact`](crate::Database::transact): 16.
pub const DEFAULT_TRANSACTION_ATTEMPTS: u32 = 16;

impl Config {
    /// The defaults, with the data directory `dir` (created if missing).
    pub fn new(dir: impl AsRef<Path>) -> Self {
        Self {
            dir: dir.as_ref().to_path_buf(),
            sync_mode: SyncMode::Always,
            subscriptions: SubscriptionConfig::default(),
            segment_size: DEFAULT_SEGMENT_SIZE,
            memtable_size: DEFAULT_MEMTABLE_SIZE,
            flush_interval: Some(DEFAULT_FLUSH_INTERVAL),
            group_commit_cap: DEFAULT_GROUP_COMMIT_CAP,
            write_queue_capacity: DEFAULT_WRITE_QUEUE_CAPACITY,
            max_value_len: DEFAULT_MAX_VALUE_LEN,
            read_auditing: false,
            log_backend: LogBackend::File,
            store_backend: StoreBackend::Lmdb,
            projections: Vec::new(),
            allow_missing_projections: false,
            transaction_attempts: DEFAULT_TRANSACTION_ATTEMPTS,
            archive_dir: None,
            archive_compression_level: DEFAULT_ARCHIVE_COMPRESSION_LEVEL,
            log_write_buffer: 0,
            log_preallocate: azoth_file::DEFAULT_PREALLOCATE,
            retention: RetentionPolicy::keep_all(),
            maintenance: None,
        }
    }

    /// The data directory: the log lives in `<dir>/log`, the view in `<dir>/view`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// When appends are made durable. Default: [`SyncMode::Always`].
    pub fn sync_mode(mut self, mode: SyncMode) -> Self {
        self.sync_mode = mode;
        self
    }

    /// How subscriptions buffer, retry, handle failures and store their positions.
    /// Default: [`SubscriptionConfig::default`].
    pub fn subscriptions(mut self, config: SubscriptionConfig) -> Self {
        self.subscriptions = config;
        self
    }

    /// The size at which the file log starts a new segment, in bytes. Default: 64 MiB.
    pub fn segment_size(mut self, bytes: u64) -> Self {
        self.segment_size = bytes;
        self
    }

    /// The memtable size at which a background flush starts, in bytes (keys, values and a
    /// per-entry overhead). Writers stall for a flush at twice this size, which bounds memory.
    /// Default: 64 MiB.
    pub fn memtable_size(mut self, bytes: usize) -> Self {
        self.memtable_size = bytes.max(1);
        self
    }

    /// How often the background thread flushes the memtable whatever its size; `None` flushes
    /// only by size, on [`Database::flush`](crate::Database::flush) and on close. At least
    /// 1 ms, so that the thread never spins. Default: 5 s.
    pub fn flush_interval(mut self, interval: Option<Duration>) -> Self {
        self.flush_interval = interval.map(|d| d.max(MIN_FLUSH_INTERVAL));
        self
    }

    /// The most write requests one commit group takes (one log block, one sync). A group
    /// also stops at 64 MiB of keys, values and payloads, though it always takes one request.
    /// Default: 1024.
    pub fn group_commit_cap(mut self, requests: usize) -> Self {
        self.group_commit_cap = requests.max(1);
        self
    }

    /// The most write requests waiting for a group; writers beyond it wait (backpressure).
    /// Default: 8192.
    pub fn write_queue_capacity(mut self, requests: usize) -> Self {
        self.write_queue_capacity = requests.max(1);
        self
    }

    /// The largest value accepted, in bytes. Default: 16 MiB.
    pub fn max_value_len(mut self, bytes: usize) -> Self {
        self.max_value_len = bytes;
        self
    }

    /// Logs a `ReadEvent` for every `get`. Default: off.
    pub fn read_auditing(mut self, on: bool) -> Self {
        self.read_auditing = on;
        self
    }

    /// Which backend holds the log. Default: [`LogBackend::File`].
    pub fn log_backend(mut self, backend: LogBackend) -> Self {
        self.log_backend = backend;
        self
    }

    /// Which store holds the flushed view. Default: [`StoreBackend::Lmdb`].
    pub fn store_backend(mut self, backend: StoreBackend) -> Self {
        self.store_backend = backend;
        self
    }

    /// How many times [`Database::transact`](crate::Database::transact) runs its closure
    /// before it gives up with `Conflict` (at least 1). Default: 16.
    pub fn transaction_attempts(mut self, attempts: u32) -> Self {
        self.transaction_attempts = attempts.max(1);
        self
    }

    /// Where [`Database::archive`](crate::Database::archive) puts archives. Give the same
    /// directory at every open: the file log finds its archives only in the log directory and
    /// this one. One database per archive directory: both logs take every archive file in it
    /// for their own. Default: the file log's directory (`<dir>/log`); for the LMDB log,
    /// `<dir>/log/archive`.
    pub fn archive_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.archive_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// The zstd level of archives (1..=22; higher is smaller and slower). Default: 3.
    pub fn archive_compression_level(mut self, level: i32) -> Self {
        self.archive_compression_level = level;
        self
    }

    /// With [`SyncMode::Never`] or [`SyncMode::IntervalMs`] and the file log, gather log
    /// blocks in memory up to this many bytes and write them in one system call (see
    /// `azoth_file::FileLogOptions::write_buffer`): several times faster for small writes,
    /// but a crash of the process may lose what is gathered, and another process (a
    /// read-only handle elsewhere) sees it only once written (when the buffer fills, at a
    /// flush or a sync). 256 KiB is a good size. Default: 0 (every group is written at once).
    pub fn log_write_buffer(mut self, bytes: usize) -> Self {
        self.log_write_buffer = bytes;
        self
    }

    /// With [`SyncMode::Always`] and the file log, keep this many bytes of zeros written
    /// ahead of the log's end, so that each commit's `fdatasync` overwrites blocks the file
    /// has instead of growing it, and skips an inode write (see
    /// `azoth_file::FileLogOptions::preallocate`). 0 turns it off, which suits copy-on-write
    /// file systems, where an overwrite is no cheaper. Default: 1 MiB.
    pub fn log_preallocate(mut self, bytes: u64) -> Self {
        self.log_preallocate = bytes;
        self
    }

    /// Which sealed and archived log units
    /// [`Database::apply_retention`](crate::Database::apply_retention) (and
    /// [`compact`](crate::Database::compact), and the maintenance thread) delete. Whatever the
    /// policy, nothing the view or a durable subscription still needs is deleted.
    /// Default: [`RetentionPolicy::keep_all`].
    pub fn retention(mut self, policy: RetentionPolicy) -> Self {
        self.retention = policy;
        self
    }

    /// Runs the background maintenance thread (rotation, archival, retention) as `config`
    /// says. Default: off.
    pub fn maintenance(mut self, config: MaintenanceConfig) -> Self {
        self.maintenance = Some(config);
        self
    }

    /// Registers a projection that turns the application's events into view writes. Every
    /// projection sees every `AppEvent`, in registration order. Default: none.
    ///
    /// The view records how many projections it was opened with. A later open that
    /// registers none (a tool, or a program that forgot them) is refused with `Config` if it
    /// would have to project application events (replay a tail holding them, rebuild, or
    /// append one) — they would be left out of the view without a trace — unless
    /// [`allow_missing_projections`](Self::allow_missing_projections) says so.
    pub fn projection(mut self, projection: impl Projection) -> Self {
        self.projections.push(Arc::new(projection));
        self
    }

    /// Lets a database whose view was built with projections be opened with none and still
    /// replay, rebuild and append application events, which then change nothing in the
    /// view (a `rebuild_view` with the projections brings their writes back). For programs
    /// that drop their projections on purpose. Default: `false`.
    pub fn allow_missing_projections(mut self, allow: bool) -> Self {
        self.allow_missing_projections = allow;
        self
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("dir", &self.dir)
            .field("sync_mode", &self.sync_mode)
            .field("subscriptions", &self.subscriptions)
            .field("segment_size", &self.segment_size)
            .field("memtable_size", &self.memtable_size)
            .field("flush_interval", &self.flush_interval)
            .field("group_commit_cap", &self.group_commit_cap)
            .field("write_queue_capacity", &self.write_queue_capacity)
            .field("max_value_len", &self.max_value_len)
            .field("read_auditing", &self.read_auditing)
            .field("log_backend", &self.log_backend)
            .field("store_backend", &self.store_backend)
            .field("projections", &self.projections.len())
            .field("allow_missing_projections", &self.allow_missing_projections)
            .field("transaction_attempts", &self.transaction_attempts)
            .field("archive_dir", &self.archive_dir)
            .field("archive_compression_level", &self.archive_compression_level)
            .field("log_write_buffer", &self.log_write_buffer)
            .field("log_preallocate", &self.log_preallocate)
            .field("retention", &self.retention)
            .field("maintenance", &self.maintenance)
            .finish()
    }
}
