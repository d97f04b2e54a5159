//! [`Memtable`]: the recent writes of the view, in key order, readable while the writer adds.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use azoth_core::{EventId, Key, OperationId, StoreWrite, Value};
use parking_lot::RwLock;

/// Bytes counted per entry beyond its key (twice) and value: the B-tree and hash slots, the
/// `Vec` headers, the shared entry and the id. An estimate, so that many tiny entries still
/// count toward the flush threshold.
const ENTRY_OVERHEAD: usize = 128;

/// One key's newest state in a memtable: `value = None` is a tombstone, which hides any older
/// value in frozen memtables and the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemEntry {
    pub(crate) value: Option<Value>,
    pub(crate) operation_id: OperationId,
}

/// The ordered map serves scans; the hash index serves point reads. A B-tree of heap-allocated
/// keys costs a cache miss per comparison (about 17 for 100k keys), a hash lookup one or two,
/// so `get` is several times faster with the index. Both share each entry (`Arc`).
#[derive(Debug, Default)]
struct Maps {
    ordered: BTreeMap<Key, Arc<MemEntry>>,
    index: HashMap<Key, Arc<MemEntry>>,
}

/// The maps behind a read-write lock. The writer holds the write lock only to insert one
/// group, so readers wait at most for one group's inserts.
#[derive(Debug)]
pub(crate) struct Memtable {
    map: RwLock<Maps>,
    bytes: AtomicUsize,
    /// The last event applied here (even events that wrote nothing): the checkpoint this
    /// memtable gives the store when it is flushed.
    last_event: AtomicU64,
}

impl Memtable {
    pub(crate) fn new(last_event: EventId) -> Self {
        Self {
            map: RwLock::new(Maps::default()),
            bytes: AtomicUsize::new(0),
            last_event: AtomicU64::new(last_event),
        }
    }

    /// Inserts one group's writes in order (a later write of a key wins) and records the
    /// group's last event.
    pub(crate) fn apply(&self, writes: Vec<StoreWrite>, last_event: EventId) {
        if !writes.is_empty() {
            let mut map = self.map.write();
            let mut added = 0usize;
            let mut removed = 0usize;
            for w in writes {
                let entry = Arc::new(MemEntry {
                    value: w.value,
                    operation_id: w.operation_id,
                });
                let new_len = entry.value.as_ref().map_or(0, Vec::len);
                match map.index.get_mut(&w.key) {
                    Some(old) => {
                        removed += old.value.as_ref().map_or(0, Vec::len);
                        added += new_len;
                        *old = Arc::clone(&entry);
                        if let Some(slot) = map.ordered.get_mut(&w.key) {
                            *slot = entry;
                        }
                    }
                    None => {
                        added += 2 * w.key.len() + new_len + ENTRY_OVERHEAD;
                        map.index.insert(w.key.clone(), Arc::clone(&entry));
                        map.ordered.insert(w.key, entry);
                    }
                }
            }
            self.bytes.fetch_add(added, Ordering::Relaxed);
            self.bytes.fetch_sub(removed, Ordering::Relaxed);
        }
        self.last_event.fetch_max(last_event, Ordering::Release);
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<MemEntry> {
        self.map.read().index.get(key).map(|e| MemEntry::clone(e))
    }

    /// The entries with keys in `[start, end)`, copied out so that no lock is held afterwards.
    pub(crate) fn range(&self, start: Option<&[u8]>, end: Option<&[u8]>) -> Vec<(Key, MemEntry)> {
        let lower = start.map_or(Bound::Unbounded, Bound::Included);
        let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
        if let (Some(s), Some(e)) = (start, end) {
            if s >= e {
                return Vec::new();
            }
        }
        self.map
            .read()
            .ordered
            .range::<[u8], _>((lower, upper))
            .map(|(k, v)| (k.clone(), MemEntry::clone(v)))
            .collect()
    }

    /// Every entry as store writes, for a flush.
    pub(crate) fn to_store_writes(&self) -> Vec<StoreWrite> {
        self.map
            .read()
            .ordered
            .iter()
            .map(|(k, v)| StoreWrite {
                key: k.clone(),
                value: v.value.clone(),
                operation_id: v.operation_id,
            })
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.map.read().index.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.map.read().index.is_empty()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn last_event(&self) -> EventId {
        self.last_event.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(key: &str, value: Option<&str>, seq: u64) -> StoreWrite {
        StoreWrite {
            key: key.as_bytes().to_vec(),
            value: value.map(|v| v.as_bytes().to_vec()),
            operation_id: OperationId::new(1, seq),
        }
    }

    #[test]
    fn later_writes_win_and_tombstones_stay() {
        let m = Memtable::new(0);
        m.apply(vec![w("a", Some("1"), 1), w("b", Some("2"), 2)], 2);
        m.apply(vec![w("a", None, 3), w("c", Some("3"), 4)], 4);
        assert_eq!(m.get(b"a").unwrap().value, None);
        assert_eq!(m.get(b"b").unwrap().value.as_deref(), Some(&b"2"[..]));
        assert_eq!(m.len(), 3);
        assert_eq!(m.last_event(), 4);
        let keys: Vec<_> = m
            .range(Some(b"b"), None)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, vec![b"b".to_vec(), b"c".to_vec()]);
        assert!(m.range(Some(b"c"), Some(b"a")).is_empty());
        assert!(m.bytes() >= 3 * ENTRY_OVERHEAD);
    }

    #[test]
    fn an_empty_group_still_moves_the_checkpoint() {
        let m = Memtable::new(5);
        m.apply(Vec::new(), 9);
        assert!(m.is_empty());
        assert_eq!(m.last_event(), 9);
    }
}
