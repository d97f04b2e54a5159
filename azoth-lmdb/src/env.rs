//! One LMDB environment as Azoth uses it: reads from any thread that never wait for the
//! writer, a writer that grows the map when it is full, and a pool of read transactions.
//!
//! # Growing the map
//!
//! LMDB fails a write with `MDB_MAP_FULL` when the memory map is too small. The writer then
//! aborts its transaction, doubles the map with `mdb_env_set_mapsize` and retries, so the
//! error never reaches the caller. LMDB allows resizing an open environment only while this
//! process has no transaction *in progress*: resizing unmaps and remaps the file, so any
//! pointer into the old map (a cursor's page, a value being copied) would dangle. The `gate`
//! enforces that: every LMDB operation (a point read, one chunk of an iterator, a write
//! transaction) runs while holding the gate shared, and the resize holds it exclusively.
//!
//! Read transactions that stay *open* between operations (the pool below, and the snapshot
//! of a lazy iterator between two chunks) hold no cursor and no pointer into the map: LMDB
//! copies a read transaction's meta page into the transaction when it begins
//! (`mdb_txn_renew0`) and computes every page address from the environment's current map
//! (`mdb_page_get`). Their snapshot is made of pages below the old map size, all of which the
//! larger map still covers, so they stay valid across the resize. Holding the gate for the
//! whole life of an iterator instead would let a caller who keeps an iterator and then writes
//! deadlock itself.
//!
//! # The read-transaction pool
//!
//! Beginning an LMDB read transaction without thread-local storage takes the reader-table
//! mutex; that dominates a point read. Read transactions are therefore kept in a pool, tagged
//! with the commit generation they were begun at, and reused while no commit has happened
//! since. Every commit bumps the generation and empties the pool, so an apply that returned
//! is seen by every later read (read-your-writes), and no pooled snapshot pins pages older
//! than the last commit.
//!
//! # One environment per process
//!
//! LMDB forbids opening one environment twice in a process (its POSIX locks are per process,
//! so closing the second handle would drop the first one's locks), and heed refuses it. A
//! read-only open of an environment this process already has open (an operator's
//! `ReadOnlyDatabase` beside the application's `Database`) therefore shares the open
//! environment, gate and all, instead of opening it again: see [`LmdbEnv::open`]. A writable
//! open of an environment already open here is refused (`Locked`).

use std::collections::HashMap;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Weak};

use azoth_core::{AzothError, Result};
use heed::{Env, EnvFlags, EnvOpenOptions, RoTxn, RwTxn, WithoutTls};
use parking_lot::{Mutex, RwLock, RwLockReadGuard};

use crate::error::{TxnError, heed_error};

/// How many idle read transactions the pool keeps.
const POOL_CAPACITY: usize = 64;

/// Map sizes are rounded up to this, a multiple of every page size LMDB runs with.
const MAP_ALIGN: usize = 1 << 20;

/// A read-only snapshot that owns its environment (`'static`) and may move between threads.
pub(crate) type StaticTxn = RoTxn<'static, WithoutTls>;

/// How to open an environment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EnvConfig {
    /// The initial map size in bytes (rounded up to 1 MiB).
    pub(crate) map_size: usize,
    /// Named databases the environment may hold.
    pub(crate) max_dbs: u32,
    /// Commit without fsync (`MDB_NOSYNC`); `sync()` makes everything durable.
    pub(crate) no_sync: bool,
    /// Open read-only (`MDB_RDONLY`).
    pub(crate) read_only: bool,
}

/// The environments open in this process, by canonical directory, for read-only opens to
/// share (module docs).
static OPEN_ENVS: LazyLock<Mutex<HashMap<PathBuf, Weak<EnvState>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// An open LMDB environment with the gate, the writer lock and the read-transaction pool;
/// cheap to clone (every clone is the same environment).
#[derive(Clone)]
pub(crate) struct LmdbEnv(Arc<EnvState>);

impl Deref for LmdbEnv {
    type Target = EnvState;

    fn deref(&self) -> &EnvState {
        &self.0
    }
}

/// What an [`LmdbEnv`] shares between its clones.
pub(crate) struct EnvState {
    env: Env<WithoutTls>,
    /// The directory of the environment (holding `data.mdb` and `lock.mdb`).
    dir: PathBuf,
    /// Shared by every LMDB operation, exclusive for a resize (see the module docs).
    gate: RwLock<()>,
    /// Serializes writers, so that only the writer thread ever resizes.
    writer: Mutex<()>,
    /// Bumped after every commit.
    generation: AtomicU64,
    pool: Mutex<Vec<(u64, StaticTxn)>>,
    /// Off for read-only handles: their writer is another process, whose commits do not
    /// bump `generation`, so every read begins a fresh snapshot.
    pooling: bool,
}

impl std::fmt::Debug for LmdbEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LmdbEnv")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl LmdbEnv {
    /// Opens (creating if needed, unless read-only) the environment in `dir`.
    ///
    /// A read-only open of an environment this process already has open returns that
    /// environment (module docs): reads through it are safe beside its writer, and nothing is
    /// written through the read-only handle because its owner never begins a write.
    pub(crate) fn open(dir: &Path, config: EnvConfig) -> Result<Self> {
        if !config.read_only {
            std::fs::create_dir_all(dir)?;
        } else if !dir.join("data.mdb").is_file() {
            return Err(AzothError::NotFound(format!(
                "no LMDB environment in {}",
                dir.display()
            )));
        }
        let canonical = dir.canonicalize()?;
        let mut open_envs = OPEN_ENVS.lock();
        open_envs.retain(|_, env| env.strong_count() > 0);
        if config.read_only {
            if let Some(state) = open_envs.get(&canonical).and_then(Weak::upgrade) {
                return Ok(Self(state));
            }
        }
        let state = Arc::new(EnvState::open(dir, config)?);
        open_envs.insert(canonical, Arc::downgrade(&state));
        Ok(Self(state))
    }
}

impl EnvState {
    fn open(dir: &Path, config: EnvConfig) -> Result<Self> {
        let mut options = EnvOpenOptions::new().read_txn_without_tls();
        options
            .map_size(round_map_size(config.map_size))
            .max_dbs(config.max_dbs)
            .max_readers(1024);
        let mut flags = EnvFlags::empty();
        if config.no_sync {
            flags |= EnvFlags::NO_SYNC;
        }
        if config.read_only {
            flags |= EnvFlags::READ_ONLY;
        }
        // SAFETY: `NO_SYNC` only gives up durability across power loss until `force_sync`,
        // which `SyncMode::IntervalMs`/`Never` and a store's checkpointing accept by design;
        // `READ_ONLY` is a safe flag.
        unsafe {
            options.flags(flags);
        }
        // SAFETY: the memory map is only unsafe if the file is modified behind LMDB's back.
        // Azoth writes the file only through this environment, guarded by the directory lock
        // (`DirLock`) against a second writer, and never truncates or rewrites it in place
        // (compaction writes a new file beside it). A read-only handle in another process
        // goes through LMDB's own lock file; one in this process shares this environment.
        let env = unsafe { options.open(dir) }.map_err(|e| heed_error(e, dir))?;
        Ok(Self {
            env,
            dir: dir.to_path_buf(),
            gate: RwLock::new(()),
            writer: Mutex::new(()),
            generation: AtomicU64::new(0),
            pool: Mutex::new(Vec::new()),
            pooling: !config.read_only,
        })
    }

    /// The heed environment (for opening databases and copying).
    pub(crate) fn env(&self) -> &Env<WithoutTls> {
        &self.env
    }

    /// The environment's directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The data file.
    pub(crate) fn data_file(&self) -> PathBuf {
        self.dir.join("data.mdb")
    }

    /// Converts a heed error naming this environment's data file.
    pub(crate) fn err(&self, e: heed::Error) -> AzothError {
        heed_error(e, &self.data_file())
    }

    /// Holds the gate shared: LMDB operations may run, the map does not move.
    pub(crate) fn gate(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read()
    }

    /// Begins a new snapshot owning the environment. Takes the gate itself: call it without
    /// holding the gate.
    ///
    /// A read-only handle whose writer (another process) grew the map gets `MDB_MAP_RESIZED`;
    /// it then adopts the new size (`mdb_env_set_mapsize(0)`) and tries again.
    pub(crate) fn snapshot(&self) -> Result<StaticTxn> {
        let mut adopted = false;
        loop {
            let gate = self.gate.read();
            match self.env.clone().static_read_txn() {
                Ok(txn) => return Ok(txn),
                Err(heed::Error::Mdb(heed::MdbError::MapResized)) if !adopted => {
                    drop(gate);
                    self.adopt_map_size()?;
                    adopted = true;
                }
                Err(e) => return Err(self.err(e)),
            }
        }
    }

    /// Maps the environment at the size another process grew it to.
    fn adopt_map_size(&self) -> Result<()> {
        let _exclusive = self.gate.write();
        // SAFETY: as in `grow`: we hold the gate exclusively, so no LMDB operation of this
        // process is in progress; a read-only environment has no write transaction; idle read
        // transactions survive the remap (module docs). Size 0 means "the size recorded in
        // the file", which LMDB documents for exactly this case.
        unsafe { self.env.resize(0) }.map_err(|e| self.err(e))?;
        tracing::info!(dir = %self.dir.display(), size = self.env.info().map_size, "adopted a grown LMDB map");
        Ok(())
    }

    /// Runs `f` on a read snapshot at least as new as the last commit that returned.
    ///
    /// `f` must copy what it keeps out of the transaction.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&StaticTxn) -> heed::Result<R>) -> Result<R> {
        // Load the generation before beginning a transaction: a transaction tagged `g` sees
        // every commit up to `g` (and perhaps later ones, which only makes it retire early).
        let generation = self.generation.load(Ordering::Acquire);
        let pooled = if self.pooling {
            self.pool.lock().pop()
        } else {
            None
        };
        let txn = match pooled {
            Some((g, txn)) if g == generation => txn,
            stale => {
                drop(stale);
                self.snapshot()?
            }
        };
        let gate = self.gate.read();
        let result = f(&txn).map_err(|e| self.err(e));
        drop(gate);
        if self.pooling && self.generation.load(Ordering::Acquire) == generation {
            let mut pool = self.pool.lock();
            if pool.len() < POOL_CAPACITY {
                pool.push((generation, txn));
            }
        }
        result
    }

    /// Runs `f` in a write transaction and commits it, durably unless the environment was
    /// opened with `no_sync`. On `MDB_MAP_FULL` (from `f` or the commit) the transaction is
    /// aborted, the map doubled and `f` run again on a fresh transaction; `f` must therefore
    /// do the same thing each time it is called.
    pub(crate) fn write<R>(
        &self,
        mut f: impl FnMut(&mut RwTxn<'_>) -> std::result::Result<R, TxnError>,
    ) -> Result<R> {
        let _writer = self.writer.lock();
        loop {
            let outcome = {
                let _gate = self.gate.read();
                let mut txn = self.env.write_txn().map_err(|e| self.err(e))?;
                match f(&mut txn) {
                    // A failed commit aborts the transaction inside LMDB.
                    Ok(r) => txn.commit().map(|()| r).map_err(TxnError::from),
                    Err(e) => {
                        txn.abort();
                        Err(e)
                    }
                }
            };
            match outcome {
                Ok(r) => {
                    self.generation.fetch_add(1, Ordering::AcqRel);
                    // Retire the snapshots of the previous generation now, so that they do not
                    // keep LMDB from reusing the pages this commit freed.
                    let retired = std::mem::take(&mut *self.pool.lock());
                    drop(retired);
                    return Ok(r);
                }
                Err(e) if e.is_map_full() => self.grow()?,
                Err(e) => return Err(e.into_azoth(&self.data_file())),
            }
        }
    }

    /// Doubles the map. Called by the writer (holding `writer`) with no write transaction open.
    fn grow(&self) -> Result<()> {
        let _exclusive = self.gate.write();
        let old = self.env.info().map_size;
        let new = old
            .checked_mul(2)
            .ok_or_else(|| AzothError::Io(std::io::Error::other("LMDB map cannot grow further")))?;
        // SAFETY: LMDB requires that no transaction of this process is in progress during
        // `mdb_env_set_mapsize`. The write transaction was aborted above and only the writer
        // (we hold its lock) begins one; every other LMDB operation holds the gate shared, and
        // we hold it exclusively, so no cursor or pointer into the map is alive. Read
        // transactions left open between operations survive the remap (module docs).
        unsafe { self.env.resize(new) }.map_err(|e| self.err(e))?;
        tracing::info!(dir = %self.dir.display(), old, new, "LMDB map grown");
        Ok(())
    }

    /// Frees the reader slots of processes that died holding a read transaction (after a
    /// crash), so their snapshots stop keeping LMDB from reusing pages.
    pub(crate) fn clear_stale_readers(&self) {
        match self.env.clear_stale_readers() {
            Ok(0) => {}
            Ok(n) => tracing::info!(dir = %self.dir.display(), n, "cleared stale LMDB readers"),
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "checking LMDB readers failed")
            }
        }
    }

    /// Forces everything committed to disk (`mdb_env_sync(force)`).
    pub(crate) fn force_sync(&self) -> Result<()> {
        let _gate = self.gate.read();
        self.env.force_sync().map_err(|e| self.err(e))
    }

    /// The size of the data file.
    pub(crate) fn file_size(&self) -> Result<u64> {
        Ok(std::fs::metadata(self.data_file())?.len())
    }

    /// Drops every pooled snapshot (before the environment is replaced or closed).
    pub(crate) fn clear_pool(&self) {
        let retired = std::mem::take(&mut *self.pool.lock());
        drop(retired);
    }
}

/// Rounds `size` up to a multiple of [`MAP_ALIGN`] (at least one).
fn round_map_size(size: usize) -> usize {
    size.max(1).div_ceil(MAP_ALIGN).saturating_mul(MAP_ALIGN)
}

#[cfg(test)]
mod tests {
    use super::round_map_size;

    #[test]
    fn map_sizes_are_aligned() {
        assert_eq!(round_map_size(0), 1 << 20);
        assert_eq!(round_map_size(1), 1 << 20);
        assert_eq!(round_map_size((1 << 20) + 1), 2 << 20);
    }
}
