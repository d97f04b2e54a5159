//! [`ReadOnlyDatabase`]: inspecting a data directory, even one a running application holds,
//! without a lock and without writing anything.
//!
//! # How it reads
//!
//! An open [`Database`](crate::Database) takes the directory's exclusive `LOCK`, so a second
//! `Database` cannot open it. A `ReadOnlyDatabase` takes no lock:
//!
//! 1. It detects the log backend from what is on disk: `<dir>/log/env/data.mdb` is the LMDB
//!    log, segment files in `<dir>/log` are the file log (the configured
//!    [`LogBackend`] is not consulted: the directory knows better). It opens the log
//!    read-only (`FileEventLog::open_read_only` / `LmdbEventLog::open_read_only`); both follow
//!    a writer that goes on appending.
//! 2. It takes a snapshot of the current view store (`<dir>/VIEW` names it) with
//!    [`LmdbStoreSnapshot`]: one LMDB read transaction, opened `MDB_RDONLY`, without the
//!    store's lock. A directory without a view store (a `StoreBackend::Memory` database, or
//!    one never flushed) reads over an empty store from event 0.
//! 3. It replays the log's tail `(checkpoint, newest]` through the built-in projection and
//!    the configured projections into an in-memory memtable over that snapshot, exactly as an
//!    open does, but never flushes it.
//!
//! Reads then see one consistent state: the log's prefix up to [`position`]. The writer's
//! later flushes do not disturb it, because the store snapshot is pinned (a memtable over a
//! store that moved on would mix two points in time). [`refresh`] moves to the newest state:
//! if the store did not change it replays only the new events; if the writer flushed (or
//! compacted or rebuilt the view) it takes a new snapshot and replays the new tail.
//!
//! [`events_since`] reads the log directly and sees what the writer appended after the open,
//! so a tool can tail a live directory with it, without `refresh`.
//!
//! # Costs and limits
//!
//! - Memory: the replayed tail (at most what the writer has not flushed yet).
//! - The pinned snapshot keeps LMDB from reusing pages the writer freed since, so the view's
//!   data file grows while a handle lives without `refresh`. Tools should refresh or reopen
//!   rather than hold one handle for hours next to a busy writer.
//! - Nothing in the directory is written. LMDB records a reader in its shared `lock.mdb`
//!   reader table (that is how the writer knows which pages a reader still needs); that is
//!   LMDB's coordination file, not data.
//! - In one process, LMDB environments are shared (LMDB forbids opening one twice): a
//!   `ReadOnlyDatabase` opened beside the application's `Database` reads through the
//!   `Database`'s open environments. The other order has a cost: while a `ReadOnlyDatabase`
//!   of an LMDB directory is open, a `Database` opening that directory in the same process
//!   gets `Locked` (also a `Database` reopened after closing, if a `ReadOnlyDatabase` still
//!   holds the environments it shared). Tools in their own process are not affected.
//!
//! [`position`]: ReadOnlyDatabase::position
//! [`refresh`]: ReadOnlyDatabase::refresh
//! [`events_since`]: ReadOnlyDatabase::events_since

use std::path::{Path, PathBuf};
use std::sync::Arc;

use azoth_core::{
    AzothError, CanonicalStore, DatabaseEvent, Entry, EventId, Location, LogUnit, MemoryStore,
    OperationId, Result, VerifyProgress, VerifyReport,
};
use azoth_file::FileLogOptions;
use azoth_lmdb::{LmdbLogOptions, LmdbStoreSnapshot};
use parking_lot::{Mutex, RwLock};

use crate::backend::{self, LogHandle};
use crate::config::{Config, LogBackend};
use crate::projection::Projector;
use crate::reads::{Events, Range, live_entry, prefix_bounds};
use crate::stats::DatabaseStats;
use crate::view::View;

/// A read-only handle on a data directory: the reads of [`Database`](crate::Database) (`get`,
/// `scan`, `range`, `events_since`, `stats`, `verify` …) and no way to write.
///
/// It takes no lock and writes nothing to the directory, so it opens a directory that a
/// running application holds, as well as one nobody holds. Its view is the state as of the
/// open (or the last [`refresh`](Self::refresh)); [`events_since`](Self::events_since) follows
/// the writer. See the module documentation in `read_only.rs` for how and at what cost.
///
/// Cheap to clone; `Send + Sync`.
///
/// ```
/// use azoth_projector::{Config, Database, ReadOnlyDatabase, SyncMode};
///
/// let dir = tempfile::tempdir()?;
/// let db = Database::open_with(Config::new(dir.path()).sync_mode(SyncMode::Never))?;
/// db.put(b"k", b"v1")?;
///
/// // The database is still open (and holds the lock): inspect it anyway.
/// let ro = ReadOnlyDatabase::open(dir.path())?;
/// assert_eq!(ro.get(b"k")?.as_deref(), Some(&b"v1"[..]));
///
/// db.put(b"k", b"v2")?;
/// assert_eq!(ro.events_since(1)?.count(), 1); // the log follows the writer
/// assert_eq!(ro.refresh()?, 1);               // the view moves on request
/// assert_eq!(ro.get(b"k")?.as_deref(), Some(&b"v2"[..]));
/// # Ok::<(), azoth_core::AzothError>(())
/// ```
#[derive(Clone)]
pub struct ReadOnlyDatabase {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    log_backend: LogBackend,
    log: LogHandle,
    state: RwLock<State>,
    /// One refresh at a time.
    refreshing: Mutex<()>,
}

/// The view as of one point: the pinned store snapshot and the tail replayed over it.
#[derive(Clone)]
struct State {
    view: Arc<View>,
    /// Which store the snapshot reads (the environment directory); `None` for no store.
    store_id: Option<PathBuf>,
    /// The store snapshot's checkpoint.
    checkpoint: EventId,
    /// The last event the view reflects.
    position: EventId,
}

impl std::fmt::Debug for ReadOnlyDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadOnlyDatabase")
            .field("dir", &self.inner.config.dir)
            .field("log_backend", &self.inner.log_backend)
            .field("position", &self.position())
            .finish_non_exhaustive()
    }
}

impl ReadOnlyDatabase {
    /// Opens the data directory `dir` read-only, with no projections of the application's
    /// events (puts and deletes are projected as always).
    ///
    /// # Errors
    /// As [`open_with`](Self::open_with).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(Config::new(dir))
    }

    /// Opens the directory of `config` read-only. From `config` it takes the directory, the
    /// projections (give the application's, or its `AppEvent`s leave the view unchanged), the
    /// archive directory and the value limit; the log backend is detected from the directory, and nothing of the
    /// write path (sync mode, memtable size, flush interval) applies.
    ///
    /// # Errors
    /// [`NotFound`](AzothError::NotFound) if the directory does not exist or holds no Azoth
    /// log; `Corruption` if the view's checkpoint is ahead of the log or the tail does not
    /// replay; errors of the projections; I/O errors.
    pub fn open_with(config: Config) -> Result<Self> {
        let log_backend = detect_log_backend(&config.dir)?;
        let log_dir = config.dir.join("log");
        // Archives kept elsewhere are found only where the config says.
        let log = match log_backend {
            LogBackend::Lmdb => {
                let mut options = LmdbLogOptions::default();
                if let Some(archives) = &config.archive_dir {
                    options = options.archive_dir(archives);
                }
                LogHandle::Lmdb(Arc::new(options.open_read_only(&log_dir)?))
            }
            LogBackend::File => {
                let mut options = FileLogOptions::default();
                if let Some(archives) = &config.archive_dir {
                    options = options.archive_dir(archives);
                }
                LogHandle::File(Arc::new(options.open_read_only(&log_dir)?))
            }
        };
        let inner = Inner {
            config,
            log_backend,
            log,
            state: RwLock::new(State {
                view: Arc::new(View::new(Arc::new(MemoryStore::new()), 0, 0)),
                store_id: None,
                checkpoint: 0,
                position: 0,
            }),
            refreshing: Mutex::new(()),
        };
        let state = inner.load_state()?;
        tracing::info!(
            dir = %inner.config.dir.display(),
            checkpoint = state.checkpoint,
            position = state.position,
            "opened a data directory read-only"
        );
        *inner.state.write() = state;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The configuration this handle was opened with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The log backend found in the directory.
    pub fn log_backend(&self) -> LogBackend {
        self.inner.log_backend
    }

    /// The last event the view reflects: the log's newest event at the open or the last
    /// [`refresh`](Self::refresh).
    pub fn position(&self) -> EventId {
        self.inner.state.read().position
    }

    fn view(&self) -> Arc<View> {
        Arc::clone(&self.inner.state.read().view)
    }

    /// Moves the view to the log's newest event: replays what the writer appended since the
    /// open or the last refresh, and returns how many events that is. If the writer flushed,
    /// compacted or rebuilt the view meanwhile, the view is rebuilt over a fresh store
    /// snapshot (the work is the unflushed tail). Readers keep reading the old state until the
    /// new one is ready.
    ///
    /// # Errors
    /// As [`open_with`](Self::open_with); on error the handle keeps its previous state.
    pub fn refresh(&self) -> Result<u64> {
        let _one = self.inner.refreshing.lock();
        let current = self.inner.state.read().clone();
        let (store, store_id) = self.inner.open_store()?;
        let checkpoint = store.checkpoint()?;
        if store_id == current.store_id && checkpoint == current.checkpoint {
            // The store has not moved: the pinned snapshot stays good, only the tail grows.
            // The new events are replayed into a copy of the memtable, not into the view
            // readers read: they see the old state until the new one replaces it whole.
            drop(store);
            let next = self.inner.log.log().next_event_id()?;
            let view = Arc::new(View::new(
                current.view.store()?,
                current.checkpoint,
                self.inner.config.memtable_size,
            ));
            view.apply(&mut current.view.memtable_writes(), current.position);
            let replayed =
                self.inner
                    .replay(&view, current.position + 1, next.max(current.position + 1))?;
            *self.inner.state.write() = State {
                view,
                position: next.saturating_sub(1).max(current.position),
                ..current
            };
            return Ok(replayed);
        }
        let state = self.inner.build_state(store, store_id, checkpoint)?;
        let gained = state.position.saturating_sub(current.position);
        *self.inner.state.write() = state;
        Ok(gained)
    }

    /// The value of `key`, or `None`.
    ///
    /// # Errors
    /// Errors of the view store.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.get_entry(key)?.and_then(|e| e.value))
    }

    /// The live entry of `key` (value and the id of the operation that wrote it), or `None`.
    ///
    /// # Errors
    /// Errors of the view store.
    pub fn get_entry(&self, key: &[u8]) -> Result<Option<Entry>> {
        Ok(live_entry(key, self.view().get(key)?))
    }

    /// Whether `key` has a live value.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn exists(&self, key: &[u8]) -> Result<bool> {
        Ok(self.get_entry(key)?.is_some())
    }

    /// The live entries whose keys start with `prefix`, sorted by key.
    ///
    /// # Errors
    /// Errors of the view store.
    pub fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let (start, end) = prefix_bounds(prefix);
        self.range(start, end.as_deref())?.into_pairs()
    }

    /// The live entries with keys in `[start, end)` (`None` leaves a side open), sorted.
    ///
    /// # Errors
    /// Errors of the view store.
    pub fn scan(&self, start: Option<&[u8]>, end: Option<&[u8]>) -> Result<Vec<Entry>> {
        self.range(start, end)?.collect()
    }

    /// A lazy iterator over what [`scan`](Self::scan) returns.
    ///
    /// # Errors
    /// Errors of the view store (also as items).
    pub fn range(&self, start: Option<&[u8]>, end: Option<&[u8]>) -> Result<Range> {
        Ok(Range {
            inner: self.view().range(start, end)?,
        })
    }

    /// The events after `after` (strictly), lazily, in order, decoded; up to the log's newest
    /// event when called, which includes what the writer appended after this handle opened.
    ///
    /// # Errors
    /// Errors of the log (also as items, e.g. `Corruption`). Events already
    /// deleted when it is made are skipped (it starts at the oldest event left); events that
    /// retention deletes before the iterator reaches them are never skipped silently: it
    /// ends with an [`AzothError::EventsDeleted`]
    /// item naming them.
    pub fn events_since(&self, after: EventId) -> Result<Events> {
        Ok(Events {
            inner: self
                .inner
                .log
                .log()
                .iter_range(after.saturating_add(1), None)?,
        })
    }

    /// Every event the log holds, in order.
    ///
    /// # Errors
    /// As [`events_since`](Self::events_since).
    pub fn get_events(&self) -> Result<Vec<DatabaseEvent>> {
        self.events_since(0)?.into_events()
    }

    /// The events strictly after `operation_id`, in order.
    ///
    /// # Errors
    /// As [`events_since`](Self::events_since).
    pub fn get_events_since(&self, operation_id: OperationId) -> Result<Vec<DatabaseEvent>> {
        self.events_since(operation_id.sequence)?.into_events()
    }

    /// What a read-only handle can tell: the log (now), the view store's snapshot, the
    /// replayed memtable and the checkpoint. The writer's counters (groups, latencies,
    /// subscriptions) belong to the writing process and are zero here.
    ///
    /// # Errors
    /// Errors of the log or store reading their stats.
    pub fn stats(&self) -> Result<DatabaseStats> {
        let state = self.inner.state.read().clone();
        let sizes = state.view.sizes();
        Ok(DatabaseStats {
            log: self.inner.log.log().stats()?,
            store: state.view.store()?.stats()?,
            memtable_entries: sizes.entries,
            memtable_bytes: sizes.bytes,
            frozen_memtables: sizes.frozen,
            checkpoint: state.checkpoint,
            ..DatabaseStats::default()
        })
    }

    /// [`stats`](Self::stats) in the Prometheus text exposition format.
    ///
    /// # Errors
    /// As [`stats`](Self::stats).
    pub fn metrics_text(&self) -> Result<String> {
        Ok(self.stats()?.metrics_text())
    }

    /// The log's units as the directory holds them now (the writer's rotations, archivals
    /// and deletions included), oldest first, the active one last; as
    /// [`Database::log_units`](crate::Database::log_units).
    ///
    /// # Errors
    /// Errors reading the log.
    pub fn log_units(&self) -> Result<Vec<LogUnit>> {
        // Asking for the log's end first makes a read-only file log take in the writer's
        // changes (its unit list is read from the directory then).
        self.inner.log.log().next_event_id()?;
        self.inner.log.units()
    }

    /// Checks the log's integrity with its backend's verification, as
    /// [`Database::verify`](crate::Database::verify) does.
    ///
    /// # Errors
    /// I/O errors. Damage is not an error: it is the report's `first_failure`.
    pub fn verify(&self) -> Result<VerifyReport> {
        self.inner.log.verify()
    }

    /// [`verify`](Self::verify), calling `progress` after each unit checked (segment or
    /// archive, for both log backends).
    ///
    /// # Errors
    /// As [`verify`](Self::verify).
    pub fn verify_with_progress(
        &self,
        mut progress: impl FnMut(VerifyProgress),
    ) -> Result<VerifyReport> {
        self.inner.log.verify_with_progress(&mut progress)
    }
}

impl Inner {
    /// A snapshot of the current view store, and which store it is; an empty store when the
    /// directory has none.
    fn open_store(&self) -> Result<(Arc<dyn CanonicalStore>, Option<PathBuf>)> {
        let view_dir = self
            .config
            .dir
            .join(backend::current_view_dir(&self.config.dir)?);
        if !view_dir.join("CURRENT").is_file() {
            return Ok((Arc::new(MemoryStore::new()), None));
        }
        let snapshot = LmdbStoreSnapshot::open(&view_dir)?;
        let id = snapshot.env_path().to_path_buf();
        Ok((Arc::new(snapshot), Some(id)))
    }

    /// The state of a fresh open: store snapshot, then the log's newest, then the replay.
    fn load_state(&self) -> Result<State> {
        let (store, store_id) = self.open_store()?;
        let checkpoint = store.checkpoint()?;
        self.build_state(store, store_id, checkpoint)
    }

    fn build_state(
        &self,
        store: Arc<dyn CanonicalStore>,
        store_id: Option<PathBuf>,
        checkpoint: EventId,
    ) -> Result<State> {
        // After the snapshot: the writer syncs the log before it flushes, so the log read now
        // holds at least everything up to the snapshot's checkpoint.
        let next = self.log.log().next_event_id()?;
        let newest = next.saturating_sub(1);
        if checkpoint > newest {
            return Err(AzothError::corruption(
                Location::default().at_event(checkpoint),
                format!(
                    "the view's checkpoint {checkpoint} is ahead of the log's newest event {newest}"
                ),
            ));
        }
        let view = Arc::new(View::new(store, checkpoint, self.config.memtable_size));
        self.replay(&view, checkpoint.saturating_add(1), next)?;
        Ok(State {
            view,
            store_id,
            checkpoint,
            position: newest,
        })
    }

    /// Replays events `[from, to)` into `view` through the projections, never flushing (the
    /// store is read-only); returns how many.
    fn replay(&self, view: &View, from: EventId, to: EventId) -> Result<u64> {
        let projector = Projector {
            projections: &self.config.projections,
            view,
            max_value_len: self.config.max_value_len,
            // A read-only view is never stored: nothing to guard.
            missing_projections: 0,
        };
        crate::replay::replay(&projector, self.log.log().as_ref(), from, to, |_| Ok(()))
    }
}

/// Which log the data directory `dir` holds, from its files.
fn detect_log_backend(dir: &Path) -> Result<LogBackend> {
    if !dir.is_dir() {
        return Err(AzothError::NotFound(format!(
            "no data directory at {}",
            dir.display()
        )));
    }
    let log_dir = dir.join("log");
    if log_dir.join("env").join("data.mdb").is_file() {
        return Ok(LogBackend::Lmdb);
    }
    let has_segment = std::fs::read_dir(&log_dir)
        .map(|entries| {
            entries.flatten().any(|e| {
                e.file_name().to_str().is_some_and(|name| {
                    matches!(
                        azoth_file::file_name::parse(name),
                        Some((azoth_file::file_name::FileKind::Segment, _))
                    )
                })
            })
        })
        .unwrap_or(false);
    if has_segment {
        return Ok(LogBackend::File);
    }
    Err(AzothError::NotFound(format!(
        "{} is not an Azoth data directory: it holds no event log in {}",
        dir.display(),
        log_dir.display()
    )))
}
