//! [`LmdbStore`]: the canonical key-value store on LMDB.
//!
//! # Layout
//!
//! ```text
//! dir/
//!   LOCK                      exclusive lock of the writer (flock)
//!   CURRENT                   the name of the live environment, e.g. "env-00000000000000000000"
//!   env-<generation:020>/     the LMDB environment: data.mdb, lock.mdb
//! ```
//!
//! The environment holds three named databases: `state` (key → 16-byte version + value, see
//! `value.rs`), `metadata` (name → bytes) and `system` (the checkpoint and the format record
//! of `env_format.rs`); `FORMAT.md` describes them byte by byte. Compaction writes a
//! compacted copy as the next generation and switches `CURRENT` with an atomic rename, so a
//! crash at any moment leaves either the old or the new environment live, whole.

use std::io::Write;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use azoth_core::{
    AzothError, CanonicalStore, EventId, Location, MAX_KEY_LEN, Result, SortedWrites, StoreBatch,
    StoreIter, StoreStats, StoreWrite, StoreWriteRef, VersionedValue, prefix_successor,
};
use heed::types::Bytes;
use heed::{CommitOrAbort, CompactionOption, Database, PutFlags};
use parking_lot::{Mutex, RwLock};

use crate::env::{EnvConfig, LmdbEnv, StaticTxn};
use crate::env_format::{self, EnvKind, SYSTEM_DB};
use crate::error::TxnError;
use crate::store_iter::RangeIter;
use crate::store_options::LmdbStoreOptions;
use crate::{fsutil, value};
use azoth_core::DirLock;

/// A database of raw bytes, valid for the life of its environment.
pub(crate) type Db = Database<'static, Bytes, Bytes>;

/// The key of the checkpoint in the `system` database.
pub(crate) const CHECKPOINT_KEY: &[u8] = b"checkpoint";

/// The file naming the live environment.
pub(crate) const CURRENT_FILE: &str = "CURRENT";

/// One generation of the store's environment with its databases.
pub(crate) struct StoreEnv {
    pub(crate) env: LmdbEnv,
    pub(crate) state: Db,
    pub(crate) metadata: Db,
    pub(crate) system: Db,
}

impl StoreEnv {
    /// Opens the environment in `dir` read-only, without creating anything (its databases
    /// must exist); shares it if this process has it open (see `env.rs`).
    pub(crate) fn open_read_only(dir: &Path) -> Result<Self> {
        let env = LmdbEnv::open(
            dir,
            EnvConfig {
                map_size: crate::DEFAULT_STORE_MAP_SIZE,
                max_dbs: 4,
                no_sync: false,
                read_only: true,
            },
        )?;
        // The environment may be shared with this process's store (`env.rs`), whose map may
        // grow: the gate keeps it still while the databases are looked up.
        let gate = env.gate();
        let rtxn = env.env().read_txn().map_err(|e| env.err(e))?;
        let data_file = env.data_file();
        let opened = env
            .env()
            .open_databases_and_commit(rtxn, |dbo, rtxn| -> std::result::Result<_, TxnError> {
                let state = dbo.open_database::<Bytes, Bytes>(rtxn, Some("state"))?;
                let metadata = dbo.open_database::<Bytes, Bytes>(rtxn, Some("metadata"))?;
                let system = dbo.open_database::<Bytes, Bytes>(rtxn, Some(SYSTEM_DB))?;
                // Read-only: an environment without the record is accepted and left as it is.
                if let Some(system) = &system {
                    env_format::check_in(EnvKind::Store, system, rtxn, &data_file)?;
                }
                Ok(CommitOrAbort::<_, ()>::Commit((state, metadata, system)))
            })
            .map_err(|e| e.into_azoth(&data_file))?;
        drop(gate);
        match opened {
            CommitOrAbort::Commit((Some(state), Some(metadata), Some(system))) => Ok(Self {
                env,
                state,
                metadata,
                system,
            }),
            _ => Err(AzothError::corruption(
                Location::file(env.data_file()),
                "the store's databases are missing",
            )),
        }
    }

    fn open(dir: &Path, options: &LmdbStoreOptions) -> Result<Self> {
        let env = LmdbEnv::open(
            dir,
            EnvConfig {
                map_size: options.map_size,
                max_dbs: 4,
                no_sync: !options.durable_apply,
                read_only: false,
            },
        )?;
        let wtxn = env.env().write_txn().map_err(|e| env.err(e))?;
        let data_file = env.data_file();
        let created = env
            .env()
            .create_databases_and_commit(wtxn, |dbo, wtxn| -> std::result::Result<_, TxnError> {
                let state = dbo.create_database::<Bytes, Bytes>(wtxn, Some("state"))?;
                let metadata = dbo.create_database::<Bytes, Bytes>(wtxn, Some("metadata"))?;
                let system = dbo.create_database::<Bytes, Bytes>(wtxn, Some(SYSTEM_DB))?;
                // In the same transaction as the databases: a refused environment is left
                // unchanged (an error drops, and so aborts, the transaction).
                env_format::check_or_write(EnvKind::Store, &system, wtxn, &data_file)?;
                Ok(CommitOrAbort::<_, ()>::Commit((state, metadata, system)))
            })
            .map_err(|e| e.into_azoth(&data_file))?;
        let (state, metadata, system) = match created {
            CommitOrAbort::Commit(dbs) => dbs,
            CommitOrAbort::Abort(()) => {
                return Err(AzothError::Config(
                    "creating the databases was aborted".into(),
                ));
            }
        };
        Ok(Self {
            env,
            state,
            metadata,
            system,
        })
    }
}

/// The canonical key-value store on LMDB: the durable state under the view.
///
/// One LMDB environment; an [`apply`](CanonicalStore::apply) is one write transaction
/// holding the writes, the checkpoint and the metadata, durable when it returns. Reads run on
/// any thread, never wait for the writer, and reuse pooled read transactions between commits.
/// The map grows by itself; `MDB_MAP_FULL` never reaches the caller.
///
/// Iterators own a snapshot of the environment (`'static`): the environment stays open until
/// the last one is dropped, even after the store is, and opening the same directory again in
/// this process meanwhile fails with [`Locked`](AzothError::Locked).
///
/// ```
/// use azoth_core::{CanonicalStore, OperationId, StoreBatch, StoreWrite};
///
/// let dir = tempfile::tempdir()?;
/// let store = azoth_lmdb::LmdbStore::open(dir.path())?;
/// store.apply(&StoreBatch {
///     writes: vec![StoreWrite {
///         key: b"user:1".to_vec(),
///         value: Some(b"Ada".to_vec()),
///         operation_id: OperationId::new(1, 1),
///     }],
///     checkpoint: Some(1),
///     metadata: vec![],
/// })?;
/// assert_eq!(store.get(b"user:1")?.map(|v| v.value), Some(b"Ada".to_vec()));
/// assert_eq!(store.checkpoint()?, 1);
/// # Ok::<(), azoth_core::AzothError>(())
/// ```
pub struct LmdbStore {
    dir: PathBuf,
    options: LmdbStoreOptions,
    current: RwLock<Arc<StoreEnv>>,
    /// Serializes `apply` and `compact`; holds the live generation.
    apply_lock: Mutex<u64>,
    _lock: DirLock,
}

impl std::fmt::Debug for LmdbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LmdbStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl LmdbStore {
    /// Opens (creating if needed) the store in `dir` with default options.
    ///
    /// # Errors
    /// [`Locked`](AzothError::Locked) if another handle holds `dir`; I/O errors; `Corruption`
    /// if LMDB finds the file damaged.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        LmdbStoreOptions::default().open(dir)
    }

    pub(crate) fn open_with(dir: &Path, options: LmdbStoreOptions) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let lock = DirLock::acquire(dir)?;
        let generation = read_current(dir)?;
        remove_stale_generations(dir, generation);
        let env_dir = dir.join(env_name(generation));
        if dir.join(CURRENT_FILE).exists() && !env_dir.join("data.mdb").exists() {
            // Creating an empty store here would silently drop the view's state.
            return Err(AzothError::corruption(
                Location::file(&env_dir),
                "CURRENT names an environment that does not exist",
            ));
        }
        let store_env = StoreEnv::open(&env_dir, &options)?;
        store_env.env.clear_stale_readers();
        if !dir.join(CURRENT_FILE).exists() {
            write_current(dir, generation)?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            options,
            current: RwLock::new(Arc::new(store_env)),
            apply_lock: Mutex::new(generation),
            _lock: lock,
        })
    }

    /// The directory of the live LMDB environment.
    pub fn env_path(&self) -> PathBuf {
        self.current.read().env.dir().to_path_buf()
    }

    fn live(&self) -> Arc<StoreEnv> {
        Arc::clone(&self.current.read())
    }
}

/// The order in which to apply `writes`: by key, and for equal keys in batch order, so the
/// later write of a key still wins. B-tree inserts in key order find the pages they touch
/// still in cache instead of jumping around the tree; checking costs one pass for a batch that
/// is already sorted (a memtable's is).
fn key_order(writes: &[StoreWrite]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..writes.len()).collect();
    if !writes.windows(2).all(|w| w[0].key <= w[1].key) {
        // Stable: equal keys keep their order.
        order.sort_by(|&a, &b| writes[a].key.cmp(&writes[b].key));
    }
    order
}

/// Writes one change in `txn`: a delete; a put with `MDB_APPEND` when `append` says its key
/// lies past every key stored before it (full pages, no search from the root); else a put
/// whose value is written straight into the reserved page (no staging copy). `staged` is
/// the appended value's buffer, kept from one change to the next.
fn write_change(
    state: &Db,
    txn: &mut heed::RwTxn<'_>,
    change: StoreWriteRef<'_>,
    append: bool,
    staged: &mut Vec<u8>,
) -> std::result::Result<(), TxnError> {
    let Some(v) = change.value else {
        state.delete(txn, change.key)?;
        return Ok(());
    };
    let header = value::header(change.operation_id);
    if append {
        staged.clear();
        staged.extend_from_slice(&header);
        staged.extend_from_slice(v);
        state.put_with_flags(txn, PutFlags::APPEND, change.key, staged)?;
    } else {
        state.put_reserved(txn, change.key, value::HEADER_LEN + v.len(), |out| {
            out.write_all(&header)?;
            out.write_all(v)
        })?;
    }
    Ok(())
}

/// Whether `writes`, taken in `order`, are all puts with strictly ascending keys.
fn are_ascending_puts(writes: &[StoreWrite], order: &[usize]) -> bool {
    writes.iter().all(|w| w.value.is_some())
        && order
            .windows(2)
            .all(|w| writes[w[0]].key < writes[w[1]].key)
}

/// Refuses keys LMDB cannot hold, before LMDB sees them.
fn check_key(key: &[u8]) -> Result<()> {
    if key.is_empty() {
        Err(AzothError::EmptyKey)
    } else if key.len() > MAX_KEY_LEN {
        Err(AzothError::KeyTooLarge {
            len: key.len(),
            max: MAX_KEY_LEN,
        })
    } else {
        Ok(())
    }
}

pub(crate) fn short_value(env: &LmdbEnv, key: &[u8]) -> AzothError {
    AzothError::corruption(
        Location::file(env.data_file()),
        format!("stored value of key {key:02x?} is shorter than its version header"),
    )
}

impl CanonicalStore for LmdbStore {
    fn get(&self, key: &[u8]) -> Result<Option<VersionedValue>> {
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            // Such a key can never have been stored.
            return Ok(None);
        }
        let current = self.current.read();
        let found = current
            .env
            .read(|txn| Ok(current.state.get(txn, key)?.map(value::decode)))?;
        match found {
            None => Ok(None),
            Some(Some(v)) => Ok(Some(v)),
            Some(None) => Err(short_value(&current.env, key)),
        }
    }

    fn range(&self, start: Option<&[u8]>, end: Option<&[u8]>) -> Result<StoreIter> {
        let live = self.live();
        let txn = live.env.snapshot()?;
        Ok(Box::new(RangeIter::new(live, txn, start, end)))
    }

    fn apply(&self, batch: &StoreBatch) -> Result<()> {
        for write in &batch.writes {
            check_key(&write.key)?;
        }
        for (name, _) in &batch.metadata {
            check_key(name.as_bytes())?;
        }
        if batch.writes.is_empty() && batch.checkpoint.is_none() && batch.metadata.is_empty() {
            return Ok(());
        }
        let order = key_order(&batch.writes);
        let _apply = self.apply_lock.lock();
        let live = self.live();
        let (state, metadata, system) = (live.state, live.metadata, live.system);
        let ascending_puts = are_ascending_puts(&batch.writes, &order);
        let mut staged = Vec::new();
        live.env.write(|txn| {
            // Puts of keys past the last stored one (time-ordered or sequential keys, the bulk
            // of a flush) append: LMDB fills each page and searches no tree. Half-full pages
            // and a search from the root per key were most of a flush's cost.
            let append = ascending_puts
                && match (state.last(txn)?, order.first()) {
                    (Some((last, _)), Some(&i)) => batch.writes[i].key.as_slice() > last,
                    (None, _) => true,
                    (_, None) => false,
                };
            for write in order.iter().map(|&i| &batch.writes[i]) {
                let change = StoreWriteRef {
                    key: &write.key,
                    value: write.value.as_deref(),
                    operation_id: write.operation_id,
                };
                write_change(&state, txn, change, append, &mut staged)?;
            }
            if let Some(checkpoint) = batch.checkpoint {
                system.put(txn, CHECKPOINT_KEY, &checkpoint.to_be_bytes())?;
            }
            for (name, v) in &batch.metadata {
                match v {
                    Some(v) => metadata.put(txn, name.as_bytes(), v)?,
                    None => {
                        metadata.delete(txn, name.as_bytes())?;
                    }
                }
            }
            Ok(())
        })
    }

    fn apply_sorted(&self, writes: &dyn SortedWrites, checkpoint: EventId) -> Result<()> {
        self.apply_sorted_after(writes, checkpoint, &mut || Ok(()))
    }

    fn apply_sorted_after(
        &self,
        writes: &dyn SortedWrites,
        checkpoint: EventId,
        before_commit: &mut dyn FnMut() -> Result<()>,
    ) -> Result<()> {
        let _apply = self.apply_lock.lock();
        let live = self.live();
        let (state, system) = (live.state, live.system);
        let mut staged = Vec::new();
        live.env.write(|txn| {
            // Past the last stored key, puts append (see `apply`); the keys ascend, so once
            // one is past it every later one is too.
            let last_stored = state.last(txn)?.map(|(last, _)| last.to_vec());
            let mut past_end = last_stored.is_none();
            // LMDB's own errors (a full map is retried after growing it) pass through the
            // visitor in this slot.
            let mut lmdb_error: Option<TxnError> = None;
            let mut put = |w: StoreWriteRef<'_>| -> std::result::Result<(), TxnError> {
                check_key(w.key)?;
                past_end = past_end || last_stored.as_deref().is_some_and(|last| w.key > last);
                write_change(&state, txn, w, past_end, &mut staged)
            };
            let visited = writes.for_each(&mut |w| {
                put(w).map_err(|e| match e {
                    TxnError::Azoth(e) => e,
                    heed => {
                        lmdb_error = Some(heed);
                        AzothError::Closed
                    }
                })
            });
            if let Some(e) = lmdb_error.take() {
                return Err(e);
            }
            visited?;
            system.put(txn, CHECKPOINT_KEY, &checkpoint.to_be_bytes())?;
            // Last before the commit: the transaction's pages are built while the caller's
            // work (the log's sync) runs.
            before_commit()?;
            Ok(())
        })
    }

    fn checkpoint(&self) -> Result<EventId> {
        let current = self.current.read();
        let raw = current
            .env
            .read(|txn| Ok(current.system.get(txn, CHECKPOINT_KEY)?.map(<[u8]>::to_vec)))?;
        match raw {
            None => Ok(0),
            Some(bytes) => match <[u8; 8]>::try_from(bytes.as_slice()) {
                Ok(b) => Ok(u64::from_be_bytes(b)),
                Err(_) => Err(AzothError::corruption(
                    Location::file(current.env.data_file()),
                    "the checkpoint is not 8 bytes",
                )),
            },
        }
    }

    fn get_metadata(&self, name: &str) -> Result<Option<Vec<u8>>> {
        if name.is_empty() || name.len() > MAX_KEY_LEN {
            return Ok(None);
        }
        let current = self.current.read();
        current.env.read(|txn| {
            Ok(current
                .metadata
                .get(txn, name.as_bytes())?
                .map(<[u8]>::to_vec))
        })
    }

    fn list_metadata(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let current = self.current.read();
        let raw = current
            .env
            .read(|txn| metadata_with_prefix(&current.metadata, txn, prefix))?;
        named_metadata(raw)
    }

    fn sync(&self) -> Result<()> {
        self.current.read().env.force_sync()
    }

    fn stats(&self) -> Result<StoreStats> {
        let entries = {
            let current = self.current.read();
            current.env.read(|txn| current.state.len(txn))?
        };
        let live = self.live();
        Ok(StoreStats {
            entries,
            bytes: live.env.file_size()?,
            checkpoint: self.checkpoint()?,
        })
    }

    fn compact(&self) -> Result<u64> {
        let mut generation = self.apply_lock.lock();
        let old = self.live();
        let old_size = old.env.file_size()?;
        let next = generation.saturating_add(1);
        let tmp = self.dir.join(format!("{}.tmp", env_name(next)));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)?;
        {
            // No writer can run (we hold the apply lock); the gate keeps the map still.
            let _gate = old.env.gate();
            let file = old
                .env
                .env()
                .copy_to_path(tmp.join("data.mdb"), CompactionOption::Enabled)
                .map_err(|e| old.env.err(e))?;
            file.sync_all()?;
        }
        let next_dir = self.dir.join(env_name(next));
        std::fs::rename(&tmp, &next_dir)?;
        fsutil::sync_dir(&self.dir)?;
        let new_env = StoreEnv::open(&next_dir, &self.options)?;
        let new_size = new_env.env.file_size()?;
        // The switch: after this rename the compacted copy is the store. Once `CURRENT` names
        // it, this process switches too, even if making the rename durable fails: applies
        // must go to the generation a reopen reads.
        let synced = match write_current(&self.dir, next) {
            Ok(()) => Ok(()),
            Err(CurrentError::BeforeRename(e)) => return Err(e),
            Err(CurrentError::AfterRename(e)) => Err(e),
        };
        old.env.clear_pool();
        *self.current.write() = Arc::new(new_env);
        *generation = next;
        // Iterators still reading the old generation keep its files open; unlinking them is
        // safe on Unix and the space returns when the last one is dropped.
        let old_dir = old.env.dir().to_path_buf();
        drop(old);
        if let Err(e) = std::fs::remove_dir_all(&old_dir) {
            tracing::warn!(dir = %old_dir.display(), error = %e, "removing the old environment failed");
        }
        synced?;
        tracing::info!(old_size, new_size, "store compacted");
        Ok(old_size.saturating_sub(new_size))
    }
}

/// The directory name of generation `generation`.
pub(crate) fn env_name(generation: u64) -> String {
    format!("env-{generation:020}")
}

/// The live generation named by `CURRENT`; 0 for a new store.
pub(crate) fn read_current(dir: &Path) -> Result<u64> {
    let path = dir.join(CURRENT_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    text.trim()
        .strip_prefix("env-")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            AzothError::corruption(Location::file(path), format!("bad CURRENT {text:?}"))
        })
}

/// How pointing `CURRENT` at a generation failed: before its rename (`CURRENT` still names
/// the old generation) or after it (it names the new one, perhaps not durably).
enum CurrentError {
    BeforeRename(AzothError),
    AfterRename(AzothError),
}

impl From<CurrentError> for AzothError {
    fn from(e: CurrentError) -> Self {
        match e {
            CurrentError::BeforeRename(e) | CurrentError::AfterRename(e) => e,
        }
    }
}

/// Points `CURRENT` at `generation` atomically and durably.
fn write_current(dir: &Path, generation: u64) -> std::result::Result<(), CurrentError> {
    let tmp = dir.join(format!("{CURRENT_FILE}.tmp"));
    let staged = (|| -> Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(format!("{}\n", env_name(generation)).as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, dir.join(CURRENT_FILE))?;
        Ok(())
    })();
    staged.map_err(CurrentError::BeforeRename)?;
    fsutil::sync_dir(dir).map_err(|e| CurrentError::AfterRename(e.into()))
}

/// Removes environments of other generations and a half-written `CURRENT.tmp`, left by an
/// interrupted compaction (the rename that would have switched to them never happened).
fn remove_stale_generations(dir: &Path, live: u64) {
    let tmp = dir.join(format!("{CURRENT_FILE}.tmp"));
    if let Err(e) = std::fs::remove_file(&tmp) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %tmp.display(), error = %e, "removing an interrupted CURRENT.tmp failed");
        }
    }
    let live_name = env_name(live);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("env-") && name != live_name {
            if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                tracing::warn!(dir = %entry.path().display(), error = %e, "removing a stale environment failed");
            }
        }
    }
}

/// The metadata entries whose names start with `prefix`, in name order: what
/// `list_metadata` reads, on the store and on its snapshots alike.
pub(crate) fn metadata_with_prefix(
    metadata: &Db,
    txn: &StaticTxn,
    prefix: &str,
) -> heed::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    // LMDB refuses a zero-length key, even as a bound: an empty prefix is no bound.
    let end = prefix_successor(prefix.as_bytes());
    let bounds = (
        Some(prefix.as_bytes())
            .filter(|p| !p.is_empty())
            .map_or(Bound::Unbounded, Bound::Included),
        end.as_deref().map_or(Bound::Unbounded, Bound::Excluded),
    );
    let mut out = Vec::new();
    for item in metadata.range(txn, &bounds)? {
        let (k, v) = item?;
        out.push((k.to_vec(), v.to_vec()));
    }
    Ok(out)
}

/// Metadata entries with their names as text.
///
/// # Errors
/// `Encoding` if a stored name is not UTF-8.
pub(crate) fn named_metadata(raw: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Vec<(String, Vec<u8>)>> {
    raw.into_iter()
        .map(|(k, v)| {
            String::from_utf8(k)
                .map(|name| (name, v))
                .map_err(|e| AzothError::Encoding(format!("metadata name: {e}")))
        })
        .collect()
}
