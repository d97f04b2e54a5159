//! [`LmdbEventLog`]: the [`EventLog`] on LMDB.
//!
//! # Layout
//!
//! ```text
//! dir/
//!   LOCK        exclusive lock of the writer (flock)
//!   env/        the LMDB environment (data.mdb, lock.mdb); records in `log_format.rs`,
//!               the format record in `env_format.rs`, all of it in `FORMAT.md`
//!   archive/    archived segments (unless another directory is configured)
//! ```

use std::collections::HashMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use azoth_core::{
    AzothError, ChainHash, EventId, EventLog, EventLogIterator, EventLogStats, GENESIS_HASH,
    Location, LogUnit, Result, SyncMode, UnitState, VerifyFailure, VerifyProgress, VerifyReport,
    block_hash,
};
use heed::types::Bytes;
use heed::{CommitOrAbort, PutFlags, RoTxn};
use parking_lot::Mutex;

use crate::env::{EnvConfig, LmdbEnv};
use crate::env_format::{self, EnvKind, SYSTEM_DB};
use crate::error::TxnError;
use crate::log_format::{
    BlockRecord, GAP_PREFIX, SegmentRecord, SegmentState, decode_event, decode_gap, encode_event,
    gap_key, id_key, key_id,
};
use crate::log_iter::LogIter;
use crate::log_options::LmdbLogOptions;
use crate::store::Db;
use azoth_core::DirLock;

/// The environment and its databases, shared with iterators.
pub(crate) struct LogShared {
    pub(crate) env: LmdbEnv,
    pub(crate) events: Db,
    pub(crate) blocks: Db,
    pub(crate) segments: Db,
    /// The format record and the gap records (`log_format.rs`); `None` only in a read-only
    /// handle on an environment written before the format record existed.
    pub(crate) system: Option<Db>,
    pub(crate) archives: crate::log_archive::ArchiveCache,
}

impl LogShared {
    /// A `Corruption` at event `id` of the data file.
    pub(crate) fn corruption(&self, id: EventId, detail: impl Into<String>) -> AzothError {
        AzothError::corruption(Location::file(self.env.data_file()).at_event(id), detail)
    }

    /// Reads a segment record.
    pub(crate) fn segment_of(
        &self,
        txn: &RoTxn<'_>,
        id: EventId,
    ) -> Result<Option<(EventId, SegmentRecord)>> {
        let found = self
            .segments
            .get_lower_than_or_equal_to(txn, &id_key(id))
            .map_err(|e| self.env.err(e))?;
        found.map(|(k, v)| self.decode_segment(k, v)).transpose()
    }

    pub(crate) fn decode_segment(&self, k: &[u8], v: &[u8]) -> Result<(EventId, SegmentRecord)> {
        match (key_id(k), SegmentRecord::decode(v)) {
            // Ids start at 1, and a sealed segment holds `first..=last` with an id after it:
            // what callers compute from the record (`last + 1 - first`) cannot overflow.
            (Some(first), Some(rec))
                if first >= 1
                    && (rec.state == SegmentState::Active
                        || (first <= rec.last && rec.last < EventId::MAX)) =>
            {
                Ok((first, rec))
            }
            _ => Err(AzothError::corruption(
                Location::file(self.env.data_file()),
                "malformed segment record",
            )),
        }
    }

    /// The holes `[first, end)` that `delete_range` left in the middle of the log.
    pub(crate) fn gaps(&self, txn: &RoTxn<'_>) -> Result<Vec<(EventId, EventId)>> {
        let Some(system) = self.system else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for item in system
            .prefix_iter(txn, GAP_PREFIX)
            .map_err(|e| self.env.err(e))?
        {
            let (k, v) = item.map_err(|e| self.env.err(e))?;
            // A malformed record covers nothing: verify then reports the hole.
            out.extend(decode_gap(k, v));
        }
        Ok(out)
    }

    /// Every segment record, oldest first.
    fn segments(&self, txn: &RoTxn<'_>) -> Result<Vec<(EventId, SegmentRecord)>> {
        let mut out = Vec::new();
        for item in self.segments.iter(txn).map_err(|e| self.env.err(e))? {
            let (k, v) = item.map_err(|e| self.env.err(e))?;
            out.push(self.decode_segment(k, v)?);
        }
        Ok(out)
    }
}

/// What the writer knows about the log's ends.
#[derive(Debug, Clone)]
struct LogState {
    next_id: EventId,
    last_hash: ChainHash,
    active_start: EventId,
    active_prev: ChainHash,
    oldest: EventId,
    poisoned: Option<String>,
}

/// Syncs the environment every few milliseconds (`SyncMode::IntervalMs`) until dropped.
struct Syncer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Syncer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the LMDB log's sync thread panicked");
            }
        }
    }
}

/// The event log on LMDB: one block (one write transaction) per append call, the hash chain
/// per block, logical segments sealed by `rotate`, and an exclusive directory lock.
///
/// Readers (`get`, `iter_range`, from any thread) never wait for the writer. Iterators own a
/// snapshot, so a concurrent `archive` or `delete_range` does not change what they return;
/// like the store's, they keep the environment open until dropped.
///
/// ```
/// use azoth_core::EventLog;
///
/// let dir = tempfile::tempdir()?;
/// let log = azoth_lmdb::LmdbEventLog::open(dir.path())?;
/// log.append_batch_with_ids(1, &[b"one".to_vec(), b"two".to_vec()])?;
/// log.append_with_id(3, b"three")?;
/// assert_eq!(log.get(2)?, Some(b"two".to_vec()));
/// let ids: Vec<u64> = log.iter_range(1, None)?.map(|e| e.map(|(id, _)| id)).collect::<Result<_, _>>()?;
/// assert_eq!(ids, vec![1, 2, 3]);
/// assert!(log.verify()?.is_ok());
/// # Ok::<(), azoth_core::AzothError>(())
/// ```
pub struct LmdbEventLog {
    dir: PathBuf,
    pub(crate) shared: Arc<LogShared>,
    state: Mutex<LogState>,
    options: LmdbLogOptions,
    read_only: bool,
    /// The event bytes of sealed segments by first id, for [`units`](Self::units).
    sealed_bytes: Mutex<HashMap<EventId, u64>>,
    /// Held by `archive` and `delete_range`, the jobs that change sealed segments, and by
    /// `copy_to` so that they wait for a copy; taken before `state`.
    pub(crate) jobs: Mutex<()>,
    // Dropped before the environment: stops and joins the sync thread.
    _syncer: Option<Syncer>,
    _lock: Option<DirLock>,
}

impl std::fmt::Debug for LmdbEventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LmdbEventLog")
            .field("dir", &self.dir)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

impl LmdbEventLog {
    /// Opens (creating if needed) the log in `dir` with default options
    /// (`SyncMode::Always`).
    ///
    /// # Errors
    /// [`Locked`](AzothError::Locked) if another writer holds `dir`; I/O errors;
    /// `Corruption` if the environment's records are damaged.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        LmdbLogOptions::default().open(dir)
    }

    /// Opens the log in `dir` read-only, without the writer's lock.
    ///
    /// # Errors
    /// I/O errors (the log must exist); `Corruption`.
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<Self> {
        LmdbLogOptions::default().open_read_only(dir)
    }

    pub(crate) fn open_with(dir: &Path, options: LmdbLogOptions, read_only: bool) -> Result<Self> {
        // As the file log: an interval of 0 ms would be a sync without pause.
        if let SyncMode::IntervalMs(0) = options.sync_mode {
            return Err(AzothError::Config("sync interval of 0 ms".into()));
        }
        let lock = if read_only {
            None
        } else {
            std::fs::create_dir_all(dir)?;
            Some(DirLock::acquire(dir)?)
        };
        let env = LmdbEnv::open(
            &dir.join("env"),
            EnvConfig {
                map_size: options.map_size,
                max_dbs: 8,
                no_sync: !matches!(options.sync_mode, SyncMode::Always) && !read_only,
                read_only,
            },
        )?;
        let shared = Arc::new(open_databases(env, read_only)?);
        if !read_only {
            shared.env.clear_stale_readers();
            // A new log starts with its active segment continuing from the genesis hash.
            let empty = shared.env.read(|txn| shared.segments.is_empty(txn))?;
            if empty {
                let segments = shared.segments;
                let first = SegmentRecord {
                    state: SegmentState::Active,
                    last: 0,
                    prev: GENESIS_HASH,
                };
                shared.env.write(|txn| {
                    segments.put(txn, &id_key(1), &first.encode())?;
                    Ok(())
                })?;
            }
        }
        let state = load_state(&shared)?;
        if !read_only {
            let archive_dir = options
                .archive_dir
                .clone()
                .unwrap_or_else(|| dir.join("archive"));
            let oldest_segment = shared
                .env
                .read(|txn| Ok(shared.segments(txn)))??
                .first()
                .map(|(first, _)| *first);
            crate::log_archive::remove_leftovers(&archive_dir, oldest_segment);
        }
        let syncer = match options.sync_mode {
            SyncMode::IntervalMs(ms) if !read_only => Some(start_syncer(&shared, ms)),
            _ => None,
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            shared,
            state: Mutex::new(state),
            options,
            read_only,
            sealed_bytes: Mutex::new(HashMap::new()),
            jobs: Mutex::new(()),
            _syncer: syncer,
            _lock: lock,
        })
    }

    /// The directory of the LMDB environment.
    pub fn env_path(&self) -> &Path {
        self.shared.env.dir()
    }

    /// The name `rotate` gives the logical segment starting at `first`:
    /// `<dir>/env/segments/<first id, 20 digits>`. Segments live inside the environment's data
    /// file, so this path names the unit without existing on disk.
    pub fn segment_path(&self, first: EventId) -> PathBuf {
        self.env_path()
            .join("segments")
            .join(format!("{first:020}"))
    }

    /// The log's ends: the writer's copy, or for a read-only handle a fresh look at the
    /// environment, which another process may be appending to.
    fn state(&self) -> Result<LogState> {
        if self.read_only {
            load_state(&self.shared)
        } else {
            Ok(self.state.lock().clone())
        }
    }

    fn check_writable(&self, state: &LogState) -> Result<()> {
        if self.read_only {
            return Err(AzothError::ReadOnly);
        }
        if let Some(detail) = &state.poisoned {
            return Err(AzothError::Poisoned {
                detail: detail.clone(),
            });
        }
        Ok(())
    }

    /// Moves every sealed segment whose events all have ids `<= up_to` into the portable
    /// archive format (one `.azarc` file per segment, in the archive directory) and out of
    /// LMDB; returns the archives written. Archived events stay readable through `get` and
    /// `iter_range`, and `verify` checks them.
    ///
    /// # Errors
    /// I/O errors writing an archive (the segment then stays in LMDB); `Corruption` if a
    /// segment to archive is damaged; `ReadOnly`; `Poisoned`.
    pub fn archive(&self, up_to: EventId) -> Result<Vec<PathBuf>> {
        // Sealed segments never change, and the job lock keeps `delete_range` and other
        // archivals out, so the copy and its commit need not hold the writer's state lock:
        // appends go on while a segment is compressed.
        let _job = self.jobs.lock();
        self.check_writable(&self.state.lock())?;
        let shared = &self.shared;
        let segments = shared.env.read(|txn| Ok(shared.segments(txn)))??;
        let dir = self.archive_dir();
        let mut written = Vec::new();
        for (first, rec) in segments {
            if rec.state == SegmentState::Sealed && rec.last <= up_to {
                written.push(crate::log_archive::archive_segment(
                    shared,
                    &dir,
                    self.options.archive_level,
                    first,
                    rec,
                )?);
            }
        }
        Ok(written)
    }

    /// Checks every event's CRC and every block's chain hash, across segments, from the
    /// oldest segment still stored; reports the first failure with the file and event id.
    ///
    /// # Errors
    /// I/O errors reading the environment. Damage is reported in the returned report, not as
    /// an error.
    pub fn verify(&self) -> Result<VerifyReport> {
        self.verify_with_progress(|_| {})
    }

    /// [`verify`](Self::verify), calling `progress` after each segment.
    ///
    /// # Errors
    /// As [`verify`](Self::verify).
    pub fn verify_with_progress(
        &self,
        mut progress: impl FnMut(VerifyProgress),
    ) -> Result<VerifyReport> {
        crate::log_verify::verify(&self.shared, &self.archive_dir(), &mut progress)
    }

    /// The log's segments in id order, for lifecycle jobs: sealed and archived segments,
    /// then the active one last. A segment's bytes are those of its event records (keys and
    /// values), summed from one snapshot, or its archive file's size.
    ///
    /// # Errors
    /// Errors reading the environment; `Corruption` for a malformed segment record.
    pub fn units(&self) -> Result<Vec<LogUnit>> {
        let state = self.state()?;
        let shared = &self.shared;
        let txn = shared.env.snapshot()?;
        let segments = {
            let _gate = shared.env.gate();
            shared.segments(&txn)?
        };
        let archive_dir = self.archive_dir();
        // A sealed segment never changes: its size is summed once, then remembered until it
        // is archived or deleted.
        let mut sizes = self.sealed_bytes.lock();
        let mut out = Vec::with_capacity(segments.len());
        for (i, (first, rec)) in segments.iter().enumerate() {
            let next_first = segments.get(i + 1).map(|(next, _)| *next);
            let unit = match rec.state {
                SegmentState::Archived => LogUnit {
                    first_event_id: *first,
                    end_event_id: rec.last + 1,
                    bytes: crate::log_archive::archive_size(&archive_dir, *first).unwrap_or(0),
                    state: UnitState::Archived,
                    path: crate::log_archive::archive_path(&archive_dir, *first),
                },
                SegmentState::Sealed => LogUnit {
                    first_event_id: *first,
                    end_event_id: rec.last + 1,
                    bytes: match sizes.get(first) {
                        Some(bytes) => *bytes,
                        None => event_bytes(shared, &txn, *first, next_first)?,
                    },
                    state: UnitState::Sealed,
                    path: self.segment_path(*first),
                },
                SegmentState::Active => LogUnit {
                    first_event_id: *first,
                    end_event_id: state.next_id.max(*first),
                    bytes: event_bytes(shared, &txn, *first, next_first)?,
                    state: UnitState::Active,
                    path: self.segment_path(*first),
                },
            };
            out.push(unit);
        }
        *sizes = out
            .iter()
            .filter(|u| u.state == UnitState::Sealed)
            .map(|u| (u.first_event_id, u.bytes))
            .collect();
        Ok(out)
    }
}

/// The bytes of the event records (keys and values) with ids in `[first, end)` (`None`: to
/// the end of the log), read from `txn`.
pub(crate) fn event_bytes(
    shared: &LogShared,
    txn: &RoTxn<'_>,
    first: EventId,
    end: Option<EventId>,
) -> Result<u64> {
    let _gate = shared.env.gate();
    let lo = id_key(first);
    let hi = end.map(id_key);
    let bounds = (
        Bound::Included(&lo[..]),
        hi.as_ref()
            .map_or(Bound::Unbounded, |h| Bound::Excluded(&h[..])),
    );
    let mut bytes = 0u64;
    for item in shared
        .events
        .range(txn, &bounds)
        .map_err(|e| shared.env.err(e))?
    {
        let (k, v) = item.map_err(|e| shared.env.err(e))?;
        bytes += (k.len() + v.len()) as u64;
    }
    Ok(bytes)
}

fn open_databases(env: LmdbEnv, read_only: bool) -> Result<LogShared> {
    let data_file = env.data_file();
    let opened = if read_only {
        // The environment may be shared with this process's writer (`env.rs`), whose map may
        // grow: the gate keeps it still while the databases are looked up.
        let _gate = env.gate();
        let rtxn = env.env().read_txn().map_err(|e| env.err(e))?;
        env.env()
            .open_databases_and_commit(rtxn, |dbo, rtxn| -> std::result::Result<_, TxnError> {
                // An environment written before the format record existed has no `system`
                // database: accepted, and left as it is (a read-only open writes nothing).
                let system = dbo.open_database::<Bytes, Bytes>(rtxn, Some(SYSTEM_DB))?;
                if let Some(system) = &system {
                    env_format::check_in(EnvKind::Log, system, rtxn, &data_file)?;
                }
                let events = dbo.open_database::<Bytes, Bytes>(rtxn, Some("events"))?;
                let blocks = dbo.open_database::<Bytes, Bytes>(rtxn, Some("blocks"))?;
                let segments = dbo.open_database::<Bytes, Bytes>(rtxn, Some("segments"))?;
                Ok(CommitOrAbort::<_, ()>::Commit((
                    events, blocks, segments, system,
                )))
            })
            .map_err(|e| e.into_azoth(&data_file))?
    } else {
        let wtxn = env.env().write_txn().map_err(|e| env.err(e))?;
        env.env()
            .create_databases_and_commit(wtxn, |dbo, wtxn| -> std::result::Result<_, TxnError> {
                // Checked before the log's databases are created, in the same transaction: a
                // refused environment is left unchanged (an error aborts the transaction).
                let system = dbo.create_database::<Bytes, Bytes>(wtxn, Some(SYSTEM_DB))?;
                env_format::check_or_write(EnvKind::Log, &system, wtxn, &data_file)?;
                let events = dbo.create_database::<Bytes, Bytes>(wtxn, Some("events"))?;
                let blocks = dbo.create_database::<Bytes, Bytes>(wtxn, Some("blocks"))?;
                let segments = dbo.create_database::<Bytes, Bytes>(wtxn, Some("segments"))?;
                Ok(CommitOrAbort::<_, ()>::Commit((
                    Some(events),
                    Some(blocks),
                    Some(segments),
                    Some(system),
                )))
            })
            .map_err(|e| e.into_azoth(&data_file))?
    };
    let missing = || {
        AzothError::corruption(
            Location::file(env.data_file()),
            "the log's databases are missing",
        )
    };
    match opened {
        CommitOrAbort::Commit((Some(events), Some(blocks), Some(segments), system)) => {
            Ok(LogShared {
                events,
                blocks,
                segments,
                system,
                env,
                archives: Default::default(),
            })
        }
        _ => Err(missing()),
    }
}

/// Reads the log's ends from the environment.
fn load_state(shared: &LogShared) -> Result<LogState> {
    shared.env.read(|txn| Ok(load_state_in(shared, txn)))?
}

fn load_state_in(shared: &LogShared, txn: &RoTxn<'_>) -> Result<LogState> {
    let err = |e| shared.env.err(e);
    let first_segment = shared.segments.first(txn).map_err(err)?;
    let last_segment = shared.segments.last(txn).map_err(err)?;
    let (Some((fk, fv)), Some((lk, lv))) = (first_segment, last_segment) else {
        return Ok(LogState {
            next_id: 1,
            last_hash: GENESIS_HASH,
            active_start: 1,
            active_prev: GENESIS_HASH,
            oldest: 1,
            poisoned: None,
        });
    };
    let (oldest, _) = shared.decode_segment(fk, fv)?;
    let (active_start, active) = shared.decode_segment(lk, lv)?;
    let (mut next_id, mut last_hash) = (active_start, active.prev);
    if let Some((k, v)) = shared.blocks.last(txn).map_err(err)? {
        let first = key_id(k);
        let block = BlockRecord::decode(v);
        match (first, block) {
            (Some(first), Some(block)) if first >= active_start => {
                next_id = first.checked_add(u64::from(block.count)).ok_or_else(|| {
                    AzothError::corruption(
                        Location::file(shared.env.data_file()).at_event(first),
                        "block record's ids overflow",
                    )
                })?;
                last_hash = block.hash;
            }
            (Some(_), Some(_)) => {}
            _ => {
                return Err(AzothError::corruption(
                    Location::file(shared.env.data_file()),
                    "malformed block record",
                ));
            }
        }
    }
    Ok(LogState {
        next_id,
        last_hash,
        active_start,
        active_prev: active.prev,
        oldest: oldest.min(next_id),
        poisoned: None,
    })
}

fn start_syncer(shared: &Arc<LogShared>, ms: u64) -> Syncer {
    let (stop, stopped) = mpsc::channel::<()>();
    let shared = Arc::clone(shared);
    let period = Duration::from_millis(ms.max(1));
    let thread = std::thread::Builder::new()
        .name("azoth-lmdb-sync".into())
        .spawn(move || {
            loop {
                let stopping = !matches!(
                    stopped.recv_timeout(period),
                    Err(mpsc::RecvTimeoutError::Timeout)
                );
                if let Err(e) = shared.env.force_sync() {
                    tracing::error!(error = %e, "background sync of the LMDB log failed");
                }
                if stopping {
                    return;
                }
            }
        });
    match thread {
        Ok(thread) => Syncer {
            stop: Some(stop),
            thread: Some(thread),
        },
        Err(e) => {
            tracing::error!(error = %e, "could not start the sync thread; syncing at close only");
            Syncer {
                stop: None,
                thread: None,
            }
        }
    }
}

impl EventLog for LmdbEventLog {
    fn append_with_id(&self, event_id: EventId, event_bytes: &[u8]) -> Result<()> {
        self.append_batch_with_ids(event_id, std::slice::from_ref(&event_bytes.to_vec()))
    }

    fn append_batch_with_ids(&self, first_event_id: EventId, events: &[Vec<u8>]) -> Result<()> {
        let mut state = self.state.lock();
        self.check_writable(&state)?;
        if first_event_id != state.next_id {
            return Err(AzothError::InvalidEventId {
                expected: state.next_id,
                got: first_event_id,
            });
        }
        if events.is_empty() {
            return Ok(());
        }
        let count = u32::try_from(events.len()).map_err(|_| {
            AzothError::Config(format!("a block of {} events is too many", events.len()))
        })?;
        if let Some(big) = events.iter().find(|e| e.len() >= u32::MAX as usize) {
            return Err(AzothError::ValueTooLarge {
                len: big.len(),
                max: u32::MAX as usize - 1,
            });
        }
        let end = first_event_id
            .checked_add(u64::from(count))
            .ok_or_else(|| AzothError::Config("event ids overflow u64".into()))?;
        let hash = block_hash(&state.last_hash, first_event_id, events);
        let block = BlockRecord { count, hash }.encode();
        let (events_db, blocks_db) = (self.shared.events, self.shared.blocks);
        let mut buf = Vec::new();
        let written = self.shared.env.write(|txn| {
            for (id, event) in (first_event_id..).zip(events) {
                encode_event(event, &mut buf);
                // Ids only grow: APPEND skips the search and fills pages completely.
                events_db.put_with_flags(txn, PutFlags::APPEND, &id_key(id), &buf)?;
            }
            blocks_db.put_with_flags(txn, PutFlags::APPEND, &id_key(first_event_id), &block)?;
            Ok::<_, TxnError>(())
        });
        if let Err(e) = written {
            if matches!(e, AzothError::Io(_)) && matches!(self.options.sync_mode, SyncMode::Always)
            {
                // The commit's fsync may have failed: what the disk holds is unknown.
                state.poisoned = Some(e.to_string());
            }
            return Err(e);
        }
        state.next_id = end;
        state.last_hash = hash;
        Ok(())
    }

    fn next_event_id(&self) -> Result<EventId> {
        Ok(self.state()?.next_id)
    }

    fn iter_range(
        &self,
        start: EventId,
        end: Option<EventId>,
    ) -> Result<Box<dyn EventLogIterator>> {
        let state = self.state()?;
        let from = start.max(state.oldest).max(1);
        let to = end.map_or(state.next_id, |e| e.min(state.next_id));
        Ok(Box::new(LogIter::new(
            Arc::clone(&self.shared),
            self.archive_dir(),
            from,
            to,
        )?))
    }

    fn get(&self, event_id: EventId) -> Result<Option<Vec<u8>>> {
        let state = self.state()?;
        if event_id < state.oldest || event_id >= state.next_id {
            return Ok(None);
        }
        let shared = &self.shared;
        let found = shared.env.read(|txn| {
            Ok(shared
                .events
                .get(txn, &id_key(event_id))?
                .map(|stored| decode_event(stored).map(<[u8]>::to_vec)))
        })?;
        match found {
            Some(Some(event)) => Ok(Some(event)),
            Some(None) => Err(shared.corruption(event_id, "event checksum mismatch")),
            None => crate::log_archive::get_archived(shared, &self.archive_dir(), event_id),
        }
    }

    fn delete_range(&self, start: EventId, end: EventId) -> Result<usize> {
        let _job = self.jobs.lock();
        let mut state = self.state.lock();
        self.check_writable(&state)?;
        let shared = &self.shared;
        let segments = shared.env.read(|txn| Ok(shared.segments(txn)))??;
        let doomed: Vec<(EventId, SegmentRecord)> = segments
            .into_iter()
            .filter(|(first, rec)| {
                rec.state != SegmentState::Active && *first >= start && rec.last <= end
            })
            .collect();
        if doomed.is_empty() {
            return Ok(0);
        }
        let (events_db, blocks_db, segments_db) = (shared.events, shared.blocks, shared.segments);
        let system_db = shared.system;
        let oldest = shared.env.write(|txn| {
            for (first, rec) in &doomed {
                let (lo, hi) = (id_key(*first), id_key(rec.last));
                let range = (Bound::Included(&lo[..]), Bound::Included(&hi[..]));
                events_db.delete_range(txn, &range)?;
                blocks_db.delete_range(txn, &range)?;
                segments_db.delete(txn, &lo)?;
            }
            let oldest = segments_db.first(txn)?.and_then(|(k, _)| key_id(k));
            if let (Some(system), Some(oldest)) = (system_db, oldest) {
                // A segment removed with an older one left is a hole in the middle of the
                // log: recorded in the same transaction, so that `verify` passes over it.
                for (first, rec) in doomed.iter().filter(|(first, _)| *first > oldest) {
                    system.put(txn, &gap_key(*first), &(rec.last + 1).to_le_bytes())?;
                }
                // Holes now below the oldest segment are of no use any more.
                let mut stale = Vec::new();
                for item in system.prefix_iter(txn, GAP_PREFIX)? {
                    let (k, v) = item?;
                    if decode_gap(k, v).is_some_and(|(_, end)| end <= oldest) {
                        stale.push(k.to_vec());
                    }
                }
                for k in stale {
                    system.delete(txn, &k)?;
                }
            }
            Ok::<_, TxnError>(oldest)
        })?;
        state.oldest = oldest.unwrap_or(state.next_id).min(state.next_id);
        let archive_dir = self.archive_dir();
        if !matches!(self.options.sync_mode, SyncMode::Always)
            && doomed
                .iter()
                .any(|(_, rec)| rec.state == SegmentState::Archived)
        {
            // Without a sync per commit, power loss could undo the commit above but not the
            // removal of the files below, leaving segments the log lists as archived without
            // their archives: make the commit durable first.
            shared.env.force_sync()?;
        }
        for (first, rec) in &doomed {
            if rec.state == SegmentState::Archived {
                crate::log_archive::remove_archive(shared, &archive_dir, *first);
            }
        }
        let deleted: u64 = doomed.iter().map(|(first, rec)| rec.last + 1 - first).sum();
        Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
    }

    fn rotate(&self) -> Result<PathBuf> {
        let mut state = self.state.lock();
        self.check_writable(&state)?;
        if state.active_start == state.next_id {
            return Ok(self.segment_path(state.active_start));
        }
        let sealed = SegmentRecord {
            state: SegmentState::Sealed,
            last: state.next_id - 1,
            prev: state.active_prev,
        };
        let active = SegmentRecord {
            state: SegmentState::Active,
            last: 0,
            prev: state.last_hash,
        };
        let (sealed_key, active_key) = (id_key(state.active_start), id_key(state.next_id));
        let segments = self.shared.segments;
        self.shared.env.write(|txn| {
            segments.put(txn, &sealed_key, &sealed.encode())?;
            segments.put(txn, &active_key, &active.encode())?;
            Ok::<_, TxnError>(())
        })?;
        let sealed_path = self.segment_path(state.active_start);
        state.active_start = state.next_id;
        state.active_prev = state.last_hash;
        Ok(sealed_path)
    }

    fn oldest_event_id(&self) -> Result<EventId> {
        Ok(self.state()?.oldest)
    }

    fn newest_event_id(&self) -> Result<EventId> {
        Ok(self.state()?.next_id - 1)
    }

    fn sync(&self) -> Result<()> {
        if self.read_only {
            return Ok(());
        }
        self.shared.env.force_sync()
    }

    fn stats(&self) -> Result<EventLogStats> {
        let state = self.state()?;
        let shared = &self.shared;
        let segments = shared.env.read(|txn| Ok(shared.segments(txn)))??;
        let mut event_count = 0;
        let mut archive_bytes = 0;
        let mut holding = 0;
        for (first, rec) in &segments {
            let held = match rec.state {
                // `state` was read first: a rotation since may have started an active
                // segment after it.
                SegmentState::Active => state.next_id.saturating_sub(*first),
                _ => rec.last + 1 - first,
            };
            event_count += held;
            // Only units holding events count: an empty active segment is not one.
            if held > 0 {
                holding += 1;
            }
            if rec.state == SegmentState::Archived {
                archive_bytes +=
                    crate::log_archive::archive_size(&self.archive_dir(), *first).unwrap_or(0);
            }
        }
        Ok(EventLogStats {
            event_count,
            oldest_event_id: state.oldest,
            newest_event_id: state.next_id - 1,
            total_bytes: shared.env.file_size()? + archive_bytes,
            file_count: holding,
        })
    }
}

impl LmdbEventLog {
    /// Where archives are written.
    pub(crate) fn archive_dir(&self) -> PathBuf {
        self.options
            .archive_dir
            .clone()
            .unwrap_or_else(|| self.dir.join("archive"))
    }
}

impl Drop for LmdbEventLog {
    fn drop(&mut self) {
        if !self.read_only && !matches!(self.options.sync_mode, SyncMode::Always) {
            if let Err(e) = self.shared.env.force_sync() {
                tracing::error!(error = %e, "final sync of the LMDB log failed");
            }
        }
    }
}

/// A failure for the verify report.
pub(crate) fn failure(location: Location, detail: impl Into<String>) -> VerifyFailure {
    VerifyFailure {
        location,
        detail: detail.into(),
    }
}
