//! The canonical store: the durable key-value store under the view.

use crate::error::Result;
use crate::types::{EventId, Key, OperationId, Value};

/// A stored value with the version that wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VersionedValue {
    /// The value.
    pub value: Value,
    /// The operation that wrote it: its version, for optimistic transactions.
    pub operation_id: OperationId,
}

/// One change of a [`StoreBatch`]: `value = None` deletes the key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StoreWrite {
    /// The key.
    pub key: Key,
    /// The new value, or `None` to delete the key.
    pub value: Option<Value>,
    /// The operation that made this change.
    pub operation_id: OperationId,
}

/// Changes applied to a store in one atomic, durable transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreBatch {
    /// Key changes, applied in order (a later write of a key wins).
    pub writes: Vec<StoreWrite>,
    /// The new checkpoint: the last `EventId` the store now reflects. `None` keeps the old one.
    pub checkpoint: Option<EventId>,
    /// Named metadata to set (`Some`) or remove (`None`): subscription positions and the like.
    pub metadata: Vec<(String, Option<Vec<u8>>)>,
}

/// One change, borrowed: what [`SortedWrites`] lends a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreWriteRef<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The new value, or `None` to delete the key.
    pub value: Option<&'a [u8]>,
    /// The operation that made this change.
    pub operation_id: OperationId,
}

/// Changes with strictly ascending keys, lent to [`CanonicalStore::apply_sorted`] where they
/// lie (a flushed memtable), so that a store need not receive a copy of each. A store may
/// visit them more than once (it retries its transaction after growing its map).
pub trait SortedWrites {
    /// How many changes there are.
    fn len(&self) -> usize;

    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f` with every change in key order, stopping at and returning its first error.
    ///
    /// # Errors
    /// The first error `f` returns.
    fn for_each(&self, f: &mut dyn FnMut(StoreWriteRef<'_>) -> Result<()>) -> Result<()>;
}

/// A lazy, ordered stream of `(key, versioned value)`, owning what it needs (`'static`), so it
/// can outlive the borrow of the store that made it.
pub type StoreIter = Box<dyn Iterator<Item = Result<(Key, VersionedValue)>> + Send>;

/// Counts and sizes of a store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Keys stored.
    pub entries: u64,
    /// Bytes the store occupies (file size for LMDB, key + value bytes in memory).
    pub bytes: u64,
    /// The checkpoint: the last `EventId` applied.
    pub checkpoint: EventId,
}

/// The durable key-value store under the view (LMDB, or memory for tests and caches).
///
/// The store is the view's state as of its checkpoint; the log is its write-ahead log, so a
/// store needs to be durable only at [`apply`](CanonicalStore::apply). Readers run on any
/// thread concurrently with `apply` and are never serialized behind it. The trait is object
/// safe (`Arc<dyn CanonicalStore>`).
pub trait CanonicalStore: Send + Sync {
    /// The value and version of `key`, or `None` if absent.
    fn get(&self, key: &[u8]) -> Result<Option<VersionedValue>>;

    /// The entries with keys in `[start, end)` in key order; `None` leaves a side open.
    ///
    /// The iterator reads one consistent snapshot: applies that commit while it runs are not
    /// seen.
    fn range(&self, start: Option<&[u8]>, end: Option<&[u8]>) -> Result<StoreIter>;

    /// The entries whose keys start with `prefix`, in key order (a snapshot, like `range`).
    fn scan_prefix(&self, prefix: &[u8]) -> Result<StoreIter> {
        let end = prefix_successor(prefix);
        self.range(Some(prefix), end.as_deref())
    }

    /// Applies `batch` (writes, checkpoint, metadata) in one atomic transaction that is
    /// durable when this returns.
    fn apply(&self, batch: &StoreBatch) -> Result<()>;

    /// Applies `writes` (strictly ascending keys) with the new `checkpoint` in one atomic
    /// transaction that is durable when this returns: the same as [`apply`](Self::apply) of
    /// a batch of them. Stores override it to read the writes where they lie; this default
    /// copies them into a [`StoreBatch`].
    ///
    /// # Errors
    /// As [`apply`](Self::apply); nothing is applied on error.
    fn apply_sorted(&self, writes: &dyn SortedWrites, checkpoint: EventId) -> Result<()> {
        let mut batch = StoreBatch {
            writes: Vec::with_capacity(writes.len()),
            checkpoint: Some(checkpoint),
            metadata: Vec::new(),
        };
        writes.for_each(&mut |w| {
            batch.writes.push(StoreWrite {
                key: w.key.to_vec(),
                value: w.value.map(<[u8]>::to_vec),
                operation_id: w.operation_id,
            });
            Ok(())
        })?;
        self.apply(&batch)
    }

    /// As [`apply_sorted`](Self::apply_sorted), but calls `before_commit` before the
    /// transaction can become durable or visible, and applies nothing if it fails. A store
    /// calls it as late as it can, after the work that precedes its commit: the view's flush
    /// syncs the log meanwhile on another thread, and waits for that sync here (the store may
    /// never be ahead of the durable log). A store that retries a transaction may call it
    /// again; it must then return at once. This default calls it first.
    ///
    /// # Errors
    /// The error of `before_commit`, or as [`apply`](Self::apply); nothing is applied on error.
    fn apply_sorted_after(
        &self,
        writes: &dyn SortedWrites,
        checkpoint: EventId,
        before_commit: &mut dyn FnMut() -> Result<()>,
    ) -> Result<()> {
        before_commit()?;
        self.apply_sorted(writes, checkpoint)
    }

    /// The last `EventId` the store reflects; 0 for a new store.
    fn checkpoint(&self) -> Result<EventId>;

    /// The metadata value stored under `name`.
    fn get_metadata(&self, name: &str) -> Result<Option<Vec<u8>>>;

    /// Every metadata entry whose name starts with `prefix`, in name order.
    fn list_metadata(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>>;

    /// Sets one metadata value durably (a batch holding only that change).
    fn put_metadata(&self, name: &str, value: &[u8]) -> Result<()> {
        self.apply(&StoreBatch {
            metadata: vec![(name.to_owned(), Some(value.to_vec()))],
            ..StoreBatch::default()
        })
    }

    /// Makes everything applied durable (for stores opened with relaxed durability).
    fn sync(&self) -> Result<()>;

    /// Counts and sizes.
    fn stats(&self) -> Result<StoreStats>;

    /// Gives free space back to the file system where the store can; returns the bytes
    /// reclaimed (0 where there is nothing to do).
    fn compact(&self) -> Result<u64>;
}

/// The smallest key greater than every key starting with `prefix`; `None` if there is none
/// (an empty prefix, or one of only `0xFF` bytes).
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::prefix_successor;

    #[test]
    fn successor_of_prefixes() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(prefix_successor(&[0xFF, 0xFF]), None);
        assert_eq!(prefix_successor(b""), None);
    }
}
