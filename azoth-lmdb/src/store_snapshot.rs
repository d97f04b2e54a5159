//! [`LmdbStoreSnapshot`]: a read-only, lock-free, point-in-time view of an [`LmdbStore`]
//! directory, for tools that inspect a directory a running application holds.
//!
//! [`LmdbStore`]: crate::LmdbStore

use std::path::{Path, PathBuf};
use std::sync::Arc;

use azoth_core::{
    AzothError, CanonicalStore, EventId, Location, MAX_KEY_LEN, Result, StoreBatch, StoreIter,
    StoreStats, VersionedValue,
};
use parking_lot::Mutex;

use crate::env::StaticTxn;
use crate::store::{
    CHECKPOINT_KEY, CURRENT_FILE, StoreEnv, env_name, metadata_with_prefix, named_metadata,
    read_current, short_value,
};
use crate::store_iter::RangeIter;
use crate::value;

/// One LMDB read transaction over the live environment of a store directory, held for the
/// life of the snapshot: every read (`get`, `range`, `checkpoint`) sees the same state, the
/// one the store had when [`open`](Self::open) ran, whatever the writer commits meanwhile.
///
/// It takes no lock and writes nothing to the store's files: the environment is opened with
/// `MDB_RDONLY` (LMDB still records the reader in its shared `lock.mdb` reader table, which
/// is how the writer knows not to reuse the pages the snapshot reads). In a process that has
/// the store open already, the open environment is shared.
///
/// Holding a snapshot keeps LMDB from reusing the pages the writer freed since, so the data
/// file grows while a snapshot lives: take a new one (open again) rather than keeping one
/// for hours next to a busy writer. [`apply`](CanonicalStore::apply) and
/// [`compact`](CanonicalStore::compact) return [`ReadOnly`](AzothError::ReadOnly).
///
/// ```
/// use azoth_core::{CanonicalStore, OperationId, StoreBatch, StoreWrite};
/// use azoth_lmdb::{LmdbStore, LmdbStoreSnapshot};
///
/// let dir = tempfile::tempdir()?;
/// let store = LmdbStore::open(dir.path())?;
/// let put = |seq| StoreBatch {
///     writes: vec![StoreWrite { key: b"k".to_vec(), value: Some(vec![seq as u8]), operation_id: OperationId::new(0, seq) }],
///     checkpoint: Some(seq),
///     metadata: vec![],
/// };
/// store.apply(&put(1))?;
/// let snapshot = LmdbStoreSnapshot::open(dir.path())?;
/// store.apply(&put(2))?;
/// assert_eq!(snapshot.checkpoint()?, 1);
/// assert_eq!(snapshot.get(b"k")?.map(|v| v.value), Some(vec![1]));
/// # Ok::<(), azoth_core::AzothError>(())
/// ```
pub struct LmdbStoreSnapshot {
    dir: PathBuf,
    generation: u64,
    store: Arc<StoreEnv>,
    txn: Arc<Mutex<StaticTxn>>,
}

impl std::fmt::Debug for LmdbStoreSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LmdbStoreSnapshot")
            .field("dir", &self.dir)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl LmdbStoreSnapshot {
    /// Opens the store in `dir` (an [`LmdbStore`](crate::LmdbStore) directory) read-only and
    /// takes a snapshot of its live environment.
    ///
    /// # Errors
    /// [`NotFound`](AzothError::NotFound) if `dir` holds no store; `Corruption` if its
    /// `CURRENT` file or environment is damaged; I/O errors.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.join(CURRENT_FILE).is_file() {
            return Err(AzothError::NotFound(format!(
                "no LMDB store in {} (no {CURRENT_FILE} file)",
                dir.display()
            )));
        }
        // A compaction may switch CURRENT and remove the old environment between our read of
        // CURRENT and the open: read it again and retry once.
        let mut attempts = 0;
        loop {
            let generation = read_current(dir)?;
            match StoreEnv::open_read_only(&dir.join(env_name(generation))) {
                Ok(store) => {
                    let store = Arc::new(store);
                    let txn = store.env.snapshot()?;
                    return Ok(Self {
                        dir: dir.to_path_buf(),
                        generation,
                        store,
                        txn: Arc::new(Mutex::new(txn)),
                    });
                }
                Err(AzothError::NotFound(_)) if attempts == 0 => attempts += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The generation of the environment the snapshot reads (compaction makes a new one).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The directory of the environment the snapshot reads.
    pub fn env_path(&self) -> &Path {
        self.store.env.dir()
    }

    /// Runs `f` on the pinned transaction, holding the gate.
    fn read<R>(&self, f: impl FnOnce(&StaticTxn) -> heed::Result<R>) -> Result<R> {
        let txn = self.txn.lock();
        let _gate = self.store.env.gate();
        f(&txn).map_err(|e| self.store.env.err(e))
    }
}

impl CanonicalStore for LmdbStoreSnapshot {
    fn get(&self, key: &[u8]) -> Result<Option<VersionedValue>> {
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return Ok(None);
        }
        let found = self.read(|txn| Ok(self.store.state.get(txn, key)?.map(value::decode)))?;
        match found {
            None => Ok(None),
            Some(Some(v)) => Ok(Some(v)),
            Some(None) => Err(short_value(&self.store.env, key)),
        }
    }

    fn range(&self, start: Option<&[u8]>, end: Option<&[u8]>) -> Result<StoreIter> {
        Ok(Box::new(RangeIter::new(
            Arc::clone(&self.store),
            Arc::clone(&self.txn),
            start,
            end,
        )))
    }

    fn apply(&self, _batch: &StoreBatch) -> Result<()> {
        Err(AzothError::ReadOnly)
    }

    fn checkpoint(&self) -> Result<EventId> {
        let raw = self.read(|txn| {
            Ok(self
                .store
                .system
                .get(txn, CHECKPOINT_KEY)?
                .map(<[u8]>::to_vec))
        })?;
        match raw {
            None => Ok(0),
            Some(bytes) => <[u8; 8]>::try_from(bytes.as_slice())
                .map(u64::from_be_bytes)
                .map_err(|_| {
                    AzothError::corruption(
                        Location::file(self.store.env.data_file()),
                        "the checkpoint is not 8 bytes",
                    )
                }),
        }
    }

    fn get_metadata(&self, name: &str) -> Result<Option<Vec<u8>>> {
        if name.is_empty() || name.len() > MAX_KEY_LEN {
            return Ok(None);
        }
        self.read(|txn| {
            Ok(self
                .store
                .metadata
                .get(txn, name.as_bytes())?
                .map(<[u8]>::to_vec))
        })
    }

    fn list_metadata(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let raw = self.read(|txn| metadata_with_prefix(&self.store.metadata, txn, prefix))?;
        named_metadata(raw)
    }

    fn sync(&self) -> Result<()> {
        // Nothing was written through the snapshot.
        Ok(())
    }

    fn stats(&self) -> Result<StoreStats> {
        let entries = self.read(|txn| self.store.state.len(txn))?;
        Ok(StoreStats {
            entries,
            bytes: self.store.env.file_size()?,
            checkpoint: self.checkpoint()?,
        })
    }

    fn compact(&self) -> Result<u64> {
        Err(AzothError::ReadOnly)
    }
}
