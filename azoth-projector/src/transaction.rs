//! [`Transaction`]: serializable, optimistic transactions.
//!
//! A transaction reads through the database's view (memtable → frozen memtables → store) and
//! records what it saw: the version (the [`OperationId`] of the write that produced the value,
//! `None` for an absent key) of every key it read, and for every prefix it scanned the keys
//! and versions it found. Its own writes are buffered and shadow the view for its later reads.
//! Nothing is written before [`Transaction::commit`].
//!
//! At commit, the read set goes with the writes to the writer. The group leader, holding the
//! clock, validates it before giving the group its ids: against the writes of the requests
//! before it in the same group, then against the current view. If anything it read changed —
//! a key's version, or the set of keys and versions under a scanned prefix (phantoms) — the
//! transaction fails with [`AzothError::Conflict`] and none of its writes happen; the other
//! requests of the group go on. A transaction that passes is one block of consecutive events,
//! one per operation, atomic in the log and in the view. So the committed transactions are
//! equivalent to running them one at a time in commit (`OperationId`) order.
//!
//! Blind writes (writes of keys the transaction did not read) are not conflicts: they commute
//! in that serial order. A write-write conflict is detected where it matters, when both
//! transactions read the key they overwrite (read-modify-write).

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use azoth_core::{
    AzothError, Entry, Key, Operation, OperationId, Result, StoreWrite, Value, prefix_successor,
};

use crate::database::Database;
use crate::engine::Core;
use crate::validation::{check_key, check_value};
use crate::view::View;
use crate::writer::Draft;

/// The first backoff after a conflict in [`Database::transact`]; it doubles per attempt.
const BACKOFF_BASE: Duration = Duration::from_micros(20);
/// The longest backoff in [`Database::transact`].
const BACKOFF_MAX: Duration = Duration::from_millis(5);
/// After this many conflicts, [`Database::transact`] runs its remaining attempts exclusively
/// among `transact` callers, so a hot key cannot starve one caller forever.
const EXCLUSIVE_AFTER: u32 = 4;

/// One scanned prefix and what the scan found in the view (before the transaction's own
/// writes were overlaid).
#[derive(Debug)]
struct ScanRecord {
    prefix: Key,
    seen: Vec<(Key, OperationId)>,
}

/// What a transaction read, validated by the group leader at commit.
#[derive(Debug, Default)]
pub(crate) struct ReadSet {
    keys: BTreeMap<Key, Option<OperationId>>,
    scans: Vec<ScanRecord>,
}

impl ReadSet {
    fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.scans.is_empty()
    }

    /// `Ok` if nothing this transaction read has changed: no write staged earlier in the
    /// group (`staged`) touches a key it read or a prefix it scanned, and the view still
    /// holds the versions it saw. The caller holds the clock, so the view does not change
    /// meanwhile.
    pub(crate) fn validate(&self, view: &View, staged: &[StoreWrite]) -> Result<()> {
        // An earlier request of this group wrote it: its version is new, whatever the value.
        for write in staged {
            if self.keys.contains_key(&write.key)
                || self
                    .scans
                    .iter()
                    .any(|scan| write.key.starts_with(&scan.prefix))
            {
                return Err(AzothError::Conflict);
            }
        }
        for (key, seen) in &self.keys {
            if current_version(view, key)? != *seen {
                return Err(AzothError::Conflict);
            }
        }
        for scan in &self.scans {
            let now = scan_view(view, &scan.prefix)?;
            let same = now.len() == scan.seen.len()
                && now
                    .iter()
                    .zip(&scan.seen)
                    .all(|(a, b)| a.key == b.0 && a.operation_id == b.1);
            if !same {
                return Err(AzothError::Conflict);
            }
        }
        Ok(())
    }
}

/// The version of `key`'s live value in the view; `None` when absent or deleted.
fn current_version(view: &View, key: &[u8]) -> Result<Option<OperationId>> {
    Ok(view
        .get(key)?
        .and_then(|e| e.value.is_some().then_some(e.operation_id)))
}

/// The view's live entries under `prefix`, in key order.
fn scan_view(view: &View, prefix: &[u8]) -> Result<Vec<Entry>> {
    let end = prefix_successor(prefix);
    let start = (!prefix.is_empty()).then_some(prefix);
    view.range(start, end.as_deref())?.collect()
}

/// A serializable, optimistic transaction: reads see the database and the transaction's own
/// writes; writes are buffered until [`commit`](Self::commit), which validates the reads and
/// writes everything as one atomic block, or fails with
/// [`Conflict`](AzothError::Conflict) and writes nothing.
///
/// Dropping a transaction without committing rolls it back (nothing was written).
/// Reads are not a snapshot: a read may see a commit that happened after the transaction
/// began. Such a transaction cannot commit (its earlier reads no longer validate), and a
/// key read twice with different versions fails at once with `Conflict`; use
/// [`Database::transact`], which retries.
///
/// ```
/// use azoth_projector::{Config, Database, SyncMode};
///
/// let dir = tempfile::tempdir()?;
/// let db = Database::open_with(Config::new(dir.path()).sync_mode(SyncMode::Never))?;
/// db.put(b"acct:alice", &100u64.to_le_bytes())?;
///
/// let mut txn = db.begin_transaction()?;
/// assert!(txn.exists(b"acct:alice")?);
/// txn.put(b"acct:bob", &0u64.to_le_bytes())?;
/// assert_eq!(txn.scan_prefix(b"acct:")?.len(), 2); // sees its own write
/// let ids = txn.commit()?;
/// assert_eq!(ids.len(), 1);
/// assert!(db.exists(b"acct:bob")?);
/// # Ok::<(), azoth_core::AzothError>(())
/// ```
pub struct Transaction {
    core: Arc<Core>,
    reads: ReadSet,
    /// The newest buffered state of each written key (`None`: deleted), for reads.
    writes: BTreeMap<Key, Option<Value>>,
    /// Every write in order: one event each at commit.
    ops: Vec<Operation>,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("keys_read", &self.reads.keys.len())
            .field("prefixes_scanned", &self.reads.scans.len())
            .field("operations", &self.ops.len())
            .finish()
    }
}

impl Transaction {
    /// The value of `key` as this transaction sees it: its own write if it wrote the key,
    /// else the database's. Records the version read.
    ///
    /// # Errors
    /// `Closed`; errors of the canonical store; `Conflict` if the key changed since this
    /// transaction last read it (it could not commit anyway).
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.core.check_open()?;
        if let Some(own) = self.writes.get(key) {
            return Ok(own.clone());
        }
        let entry = self.core.view.get(key)?;
        let (value, version) = match entry {
            Some(e) => match e.value {
                Some(v) => (Some(v), Some(e.operation_id)),
                None => (None, None),
            },
            None => (None, None),
        };
        match self.reads.keys.get(key) {
            Some(seen) if *seen != version => return Err(AzothError::Conflict),
            Some(_) => {}
            None => {
                self.reads.keys.insert(key.to_vec(), version);
            }
        }
        Ok(value)
    }

    /// Whether `key` has a live value, as this transaction sees it (recorded as a read).
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn exists(&mut self, key: &[u8]) -> Result<bool> {
        Ok(self.get(key)?.is_some())
    }

    /// The live entries whose keys start with `prefix`, sorted by key, including this
    /// transaction's own writes. The prefix is recorded: a commit by someone else that adds,
    /// changes or removes a key under it makes this transaction conflict (no phantoms).
    ///
    /// # Errors
    /// `Closed`; errors of the canonical store.
    pub fn scan_prefix(&mut self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.core.check_open()?;
        let found = scan_view(&self.core.view, prefix)?;
        let mut merged: BTreeMap<Key, Value> = BTreeMap::new();
        let mut seen = Vec::with_capacity(found.len());
        for entry in found {
            seen.push((entry.key.clone(), entry.operation_id));
            if let Some(value) = entry.value {
                merged.insert(entry.key, value);
            }
        }
        for (key, own) in self.writes.range(prefix.to_vec()..) {
            if !key.starts_with(prefix) {
                break;
            }
            match own {
                Some(value) => merged.insert(key.clone(), value.clone()),
                None => merged.remove(key),
            };
        }
        self.reads.scans.push(ScanRecord {
            prefix: prefix.to_vec(),
            seen,
        });
        Ok(merged.into_iter().collect())
    }

    /// Buffers setting `key` to `value`; written at commit.
    ///
    /// # Errors
    /// `EmptyKey`, `KeyTooLarge`, `ValueTooLarge` (nothing buffered).
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        check_key(key)?;
        check_value(value, self.core.config.max_value_len)?;
        self.writes.insert(key.to_vec(), Some(value.to_vec()));
        self.ops.push(Operation::Put {
            key: key.to_vec(),
            value: value.to_vec(),
        });
        Ok(())
    }

    /// Buffers removing `key`; written at commit (logged whether or not the key exists).
    ///
    /// # Errors
    /// `EmptyKey`, `KeyTooLarge` (nothing buffered).
    pub fn delete(&mut self, key: &[u8]) -> Result<()> {
        check_key(key)?;
        self.writes.insert(key.to_vec(), None);
        self.ops.push(Operation::Delete { key: key.to_vec() });
        Ok(())
    }

    /// Validates the reads and writes the buffered operations as one atomic block of
    /// consecutive events. Returns one id per operation, in order; a transaction without
    /// writes is validated, writes nothing and returns no ids.
    ///
    /// # Errors
    /// `Conflict` if something this transaction read or scanned was changed by another
    /// commit (nothing written); `Closed`; errors of the log append (nothing applied).
    pub fn commit(self) -> Result<Vec<OperationId>> {
        let Self {
            core, reads, ops, ..
        } = self;
        core.check_open()?;
        if ops.is_empty() {
            if !reads.is_empty() {
                // Holding the clock, no group is half-applied: the view is one moment.
                let _clock = core.clock.lock();
                reads.validate(&core.view, &[])?;
            }
            return Ok(Vec::new());
        }
        let drafts = ops.into_iter().map(Draft::Write).collect();
        if reads.is_empty() {
            // Blind writes depend on nothing: a plain atomic batch.
            return Ok(core.write(drafts)?.to_vec());
        }
        Ok(core.write_validated(drafts, reads)?.to_vec())
    }

    /// Discards the transaction: nothing is written. The same as dropping it.
    pub fn rollback(self) {}
}

/// A random number for backoff jitter; `RandomState` is seeded per instance, so this needs no
/// RNG dependency.
fn random() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0);
    hasher.finish()
}

/// Full jitter: a uniform wait in `[0, min(max, base · 2^attempt)]`.
fn backoff(attempt: u32) {
    let cap = BACKOFF_BASE
        .saturating_mul(1u32 << attempt.min(16))
        .min(BACKOFF_MAX);
    let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX).max(1);
    std::thread::sleep(Duration::from_nanos(random() % nanos));
}

impl Database {
    /// Begins a serializable, optimistic [`Transaction`].
    ///
    /// The seed's counter, by hand (see [`transact`](Self::transact) for the retrying form):
    ///
    /// ```
    /// use azoth_projector::{Database, Config, SyncMode};
    ///
    /// fn increment_counter(db: &Database, key: &[u8]) -> azoth_core::Result<u64> {
    ///     let mut txn = db.begin_transaction()?;
    ///     let current = match txn.get(key)? {
    ///         Some(v) => u64::from_le_bytes(v.try_into().map_err(|_| {
    ///             azoth_core::AzothError::Encoding("a counter is 8 bytes".into())
    ///         })?),
    ///         None => 0,
    ///     };
    ///     let new_val = current + 1;
    ///     txn.put(key, &new_val.to_le_bytes())?;
    ///     txn.commit()?;
    ///     Ok(new_val)
    /// }
    ///
    /// let dir = tempfile::tempdir()?;
    /// let db = Database::open_with(Config::new(dir.path()).sync_mode(SyncMode::Never))?;
    /// assert_eq!(increment_counter(&db, b"visits")?, 1);
    /// assert_eq!(increment_counter(&db, b"visits")?, 2);
    /// # Ok::<(), azoth_core::AzothError>(())
    /// ```
    ///
    /// # Errors
    /// `Closed`.
    pub fn begin_transaction(&self) -> Result<Transaction> {
        let core = self.shared_core();
        core.check_open()?;
        Ok(Transaction {
            core,
            reads: ReadSet::default(),
            writes: BTreeMap::new(),
            ops: Vec::new(),
        })
    }

    /// Runs `f` in a transaction and commits it; on [`Conflict`](AzothError::Conflict)
    /// (from `f`'s reads or from the commit) runs `f` again in a fresh transaction, after a
    /// jittered exponential backoff, up to
    /// [`Config::transaction_attempts`](crate::Config::transaction_attempts) times in all.
    /// After a few conflicts the remaining attempts run exclusively among `transact` callers
    /// of this database, so a hot key cannot starve a caller. `f` may run several times: keep
    /// side effects out of it. Do not call `transact` from inside `f`.
    ///
    /// The seed's counter: concurrent increments are never lost (ten threads × 1000 end at
    /// exactly 10 000, as `tests/transactions.rs` checks; fewer here to keep the doctest
    /// short):
    ///
    /// ```
    /// use azoth_core::{AzothError, Result};
    /// use azoth_projector::{Config, Database, SyncMode};
    ///
    /// fn increment_counter(db: &Database, key: &[u8]) -> Result<u64> {
    ///     db.transact(|txn| {
    ///         let current = match txn.get(key)? {
    ///             Some(v) => u64::from_le_bytes(
    ///                 v.try_into()
    ///                     .map_err(|_| AzothError::Encoding("a counter is 8 bytes".into()))?,
    ///             ),
    ///             None => 0,
    ///         };
    ///         txn.put(key, &(current + 1).to_le_bytes())?;
    ///         Ok(current + 1)
    ///     })
    /// }
    ///
    /// let dir = tempfile::tempdir()?;
    /// let db = Database::open_with(Config::new(dir.path()).sync_mode(SyncMode::Never))?;
    /// std::thread::scope(|s| {
    ///     for _ in 0..10 {
    ///         s.spawn(|| (0..100).try_for_each(|_| increment_counter(&db, b"visits").map(drop)));
    ///     }
    /// });
    /// assert_eq!(increment_counter(&db, b"visits")?, 1001);
    /// # Ok::<(), AzothError>(())
    /// ```
    ///
    /// A bank transfer that keeps the total constant however many run at once:
    ///
    /// ```
    /// use azoth_core::{AzothError, Result};
    /// use azoth_projector::{Config, Database, SyncMode};
    ///
    /// fn balance(v: Option<Vec<u8>>) -> Result<u64> {
    ///     v.map_or(Ok(0), |v| {
    ///         v.try_into()
    ///             .map(u64::from_le_bytes)
    ///             .map_err(|_| AzothError::Encoding("a balance is 8 bytes".into()))
    ///     })
    /// }
    ///
    /// /// Moves `amount` from `from` to `to`; `false` if `from` has too little.
    /// fn transfer(db: &Database, from: &[u8], to: &[u8], amount: u64) -> Result<bool> {
    ///     db.transact(|txn| {
    ///         let (a, b) = (balance(txn.get(from)?)?, balance(txn.get(to)?)?);
    ///         if a < amount {
    ///             return Ok(false);
    ///         }
    ///         txn.put(from, &(a - amount).to_le_bytes())?;
    ///         txn.put(to, &(b + amount).to_le_bytes())?;
    ///         Ok(true)
    ///     })
    /// }
    ///
    /// let dir = tempfile::tempdir()?;
    /// let db = Database::open_with(Config::new(dir.path()).sync_mode(SyncMode::Never))?;
    /// db.put(b"acct:a", &100u64.to_le_bytes())?;
    /// db.put(b"acct:b", &100u64.to_le_bytes())?;
    /// std::thread::scope(|s| {
    ///     s.spawn(|| (0..50).try_for_each(|_| transfer(&db, b"acct:a", b"acct:b", 3).map(drop)));
    ///     s.spawn(|| (0..50).try_for_each(|_| transfer(&db, b"acct:b", b"acct:a", 2).map(drop)));
    /// });
    /// let total: u64 = db
    ///     .scan_prefix(b"acct:")?
    ///     .into_iter()
    ///     .map(|(_, v)| balance(Some(v)))
    ///     .sum::<Result<u64>>()?;
    /// assert_eq!(total, 200);
    /// # Ok::<(), AzothError>(())
    /// ```
    ///
    /// # Errors
    /// `Conflict` when every attempt conflicted; any other error of `f` or of the commit,
    /// at once (not retried).
    pub fn transact<T>(&self, mut f: impl FnMut(&mut Transaction) -> Result<T>) -> Result<T> {
        let core = self.shared_core();
        let attempts = core.config.transaction_attempts.max(1);
        for attempt in 1..=attempts {
            // Shared for the first attempts, exclusive after: see the doc above.
            let result = if attempt > EXCLUSIVE_AFTER {
                let _gate = core.transact_gate.write();
                self.attempt(&mut f)
            } else {
                let _gate = core.transact_gate.read();
                self.attempt(&mut f)
            };
            match result {
                Err(AzothError::Conflict) if attempt < attempts => {
                    tracing::trace!(attempt, "transaction conflict; retrying");
                    backoff(attempt);
                }
                other => return other,
            }
        }
        Err(AzothError::Conflict)
    }

    fn attempt<T>(&self, f: &mut impl FnMut(&mut Transaction) -> Result<T>) -> Result<T> {
        let mut txn = self.begin_transaction()?;
        let value = f(&mut txn)?;
        txn.commit()?;
        Ok(value)
    }
}
