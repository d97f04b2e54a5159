//! [`MemoryStore`]: the [`CanonicalStore`] in memory, for tests, caches and as the oracle.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::error::Result;
use crate::store::{CanonicalStore, StoreBatch, StoreIter, StoreStats, VersionedValue};
use crate::types::{EventId, Key};

type Map = BTreeMap<Key, VersionedValue>;

/// A [`CanonicalStore`] held in memory: nothing survives the process.
///
/// The map sits behind an `Arc` and `apply` changes it copy-on-write
/// ([`Arc::make_mut`]): a [`range`](CanonicalStore::range) iterator keeps the snapshot it
/// started from, and the map is copied only when an apply meets a live iterator. Cloning gives
/// another handle to the same store.
///
/// ```
/// use azoth_core::{CanonicalStore, MemoryStore, OperationId, StoreBatch, StoreWrite};
///
/// let store = MemoryStore::new();
/// store.apply(&StoreBatch {
///     writes: vec![StoreWrite {
///         key: b"user:1".to_vec(),
///         value: Some(b"Ada".to_vec()),
///         operation_id: OperationId::new(10, 1),
///     }],
///     checkpoint: Some(1),
///     metadata: vec![],
/// })?;
/// let stored = store.get(b"user:1")?.expect("just written");
/// assert_eq!(stored.value, b"Ada");
/// assert_eq!(stored.operation_id.sequence, 1);
/// assert_eq!(store.checkpoint()?, 1);
/// # Ok::<(), azoth_core::AzothError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<RwLock<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    data: Arc<Map>,
    checkpoint: EventId,
    metadata: BTreeMap<String, Vec<u8>>,
    /// Key + value bytes of `data`, kept up to date by `apply`.
    bytes: u64,
}

impl MemoryStore {
    /// An empty store with checkpoint 0.
    pub fn new() -> Self {
        Self::default()
    }
}

fn entry_bytes(key: &[u8], value: &VersionedValue) -> u64 {
    (key.len() + value.value.len()) as u64
}

impl CanonicalStore for MemoryStore {
    fn get(&self, key: &[u8]) -> Result<Option<VersionedValue>> {
        Ok(self.inner.read().data.get(key).cloned())
    }

    fn range(&self, start: Option<&[u8]>, end: Option<&[u8]>) -> Result<StoreIter> {
        let snapshot = Arc::clone(&self.inner.read().data);
        Ok(Box::new(SnapshotIter {
            snapshot,
            from: start.map_or(Bound::Unbounded, |s| Bound::Included(s.to_vec())),
            end: end.map(<[u8]>::to_vec),
            buffer: VecDeque::new(),
            done: false,
        }))
    }

    fn apply(&self, batch: &StoreBatch) -> Result<()> {
        // One write lock for the whole batch: readers see it all or none of it.
        let mut guard = self.inner.write();
        let inner = &mut *guard;
        let data = Arc::make_mut(&mut inner.data);
        for write in &batch.writes {
            let old = match &write.value {
                Some(value) => {
                    let new = VersionedValue {
                        value: value.clone(),
                        operation_id: write.operation_id,
                    };
                    inner.bytes += entry_bytes(&write.key, &new);
                    data.insert(write.key.clone(), new)
                }
                None => data.remove(&write.key),
            };
            if let Some(old) = old {
                inner.bytes -= entry_bytes(&write.key, &old);
            }
        }
        if let Some(checkpoint) = batch.checkpoint {
            inner.checkpoint = checkpoint;
        }
        for (name, value) in &batch.metadata {
            match value {
                Some(value) => {
                    inner.metadata.insert(name.clone(), value.clone());
                }
                None => {
                    inner.metadata.remove(name);
                }
            }
        }
        Ok(())
    }

    fn checkpoint(&self) -> Result<EventId> {
        Ok(self.inner.read().checkpoint)
    }

    fn get_metadata(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.inner.read().metadata.get(name).cloned())
    }

    fn list_metadata(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let inner = self.inner.read();
        Ok(inner
            .metadata
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(name, _)| name.starts_with(prefix))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect())
    }

    fn sync(&self) -> Result<()> {
        Ok(())
    }

    fn stats(&self) -> Result<StoreStats> {
        let inner = self.inner.read();
        Ok(StoreStats {
            entries: inner.data.len() as u64,
            bytes: inner.bytes,
            checkpoint: inner.checkpoint,
        })
    }

    fn compact(&self) -> Result<u64> {
        Ok(0)
    }
}

/// How many entries a snapshot iterator copies out of the map at a time: large enough to
/// amortize the seek, small enough to keep memory bounded.
const CHUNK: usize = 128;

/// A `'static` iterator over one snapshot of the map, copying it out a chunk at a time.
struct SnapshotIter {
    snapshot: Arc<Map>,
    from: Bound<Key>,
    end: Option<Key>,
    buffer: VecDeque<(Key, VersionedValue)>,
    done: bool,
}

impl SnapshotIter {
    fn refill(&mut self) {
        let end = self
            .end
            .as_ref()
            .map_or(Bound::Unbounded, |e| Bound::Excluded(e.as_slice()));
        let from = match &self.from {
            Bound::Included(k) => Bound::Included(k.as_slice()),
            Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
            Bound::Unbounded => Bound::Unbounded,
        };
        // `BTreeMap::range` panics on an empty or inverted range; such a range has no entries.
        let empty = match (from, end) {
            (Bound::Included(s), Bound::Excluded(e)) => s >= e,
            (Bound::Excluded(s), Bound::Excluded(e)) => s >= e,
            _ => false,
        };
        if empty {
            self.done = true;
            return;
        }
        self.buffer.extend(
            self.snapshot
                .range::<[u8], _>((from, end))
                .take(CHUNK)
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        match self.buffer.back() {
            Some((last, _)) if self.buffer.len() == CHUNK => {
                self.from = Bound::Excluded(last.clone());
            }
            _ => self.done = true,
        }
    }
}

impl Iterator for SnapshotIter {
    type Item = Result<(Key, VersionedValue)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buffer.is_empty() && !self.done {
            self.refill();
        }
        self.buffer.pop_front().map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreWrite;
    use crate::types::OperationId;

    fn put(store: &MemoryStore, n: u32) {
        let writes = (0..n)
            .map(|i| StoreWrite {
                key: format!("k{i:05}").into_bytes(),
                value: Some(vec![1]),
                operation_id: OperationId::new(0, u64::from(i)),
            })
            .collect();
        store
            .apply(&StoreBatch {
                writes,
                ..StoreBatch::default()
            })
            .unwrap();
    }

    #[test]
    fn iterates_across_chunks() {
        let store = MemoryStore::new();
        put(&store, 1000);
        assert_eq!(store.range(None, None).unwrap().count(), 1000);
        let some: Vec<_> = store
            .range(Some(b"k00100"), Some(b"k00400"))
            .unwrap()
            .map(|r| r.unwrap().0)
            .collect();
        assert_eq!(some.len(), 300);
        assert_eq!(some[0], b"k00100");
        assert!(some.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(store.range(Some(b"z"), Some(b"a")).unwrap().count(), 0);
    }
}
