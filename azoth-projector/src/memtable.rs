//! [`Memtable`]: the recent writes of the view, in key order, readable while the writer adds.
//! Its records live in an [`arena`], found by key through an [`index`].

mod arena;
mod index;

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use azoth_core::{
    EventId, Key, OperationId, Result, SortedWrites, StoreWrite, StoreWriteRef, Value,
};
use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

pub(crate) use arena::ChunkPool;
use arena::{Arena, Record, RecordRef};
use index::Index;
pub(crate) use index::SlotPool;

/// Bytes counted per key beyond its records in the arena (and its key's heap copy, when the
/// key is too long to be stored inline): the ordered map's entry and its share of B-tree
/// nodes, the index slot with its share of empty slots. An estimate, so that many tiny
/// entries still count toward the flush threshold. Every record counts in full, overwritten
/// or not: the arena keeps them until the memtable is dropped.
const KEY_OVERHEAD: usize = 80;

/// Groups of at least this many writes prefetch their index slots when they are applied
/// (see [`Index::prefetch`]); smaller ones are prefetched by the committer, before their
/// events are encoded and logged ([`Memtable::prefetch`]).
pub(crate) const PREFETCH_IN_APPLY_FROM: usize = 16;

/// Keys up to this many bytes are stored inside the maps' slots, not behind a pointer.
const INLINE_KEY: usize = 30;

/// A memtable key: inline when short (most keys), so that hashing, the B-tree's comparisons
/// and rehashing read the slot itself instead of chasing a pointer to the heap — those cache
/// misses were most of an insert's cost — and copying a key into the second map allocates
/// nothing. Longer keys are shared between the two maps.
///
/// Equality, order and hash are those of the bytes (`[u8]`'s), as `Borrow<[u8]>` requires,
/// so the maps are searched with plain `&[u8]`.
#[derive(Clone)]
pub(crate) enum MemKey {
    Inline { len: u8, bytes: [u8; INLINE_KEY] },
    Shared(Arc<[u8]>),
}

impl MemKey {
    fn new(key: &[u8]) -> Self {
        if key.len() <= INLINE_KEY {
            let mut bytes = [0u8; INLINE_KEY];
            bytes[..key.len()].copy_from_slice(key);
            // INLINE_KEY < 256: the length fits.
            MemKey::Inline {
                len: key.len() as u8,
                bytes,
            }
        } else {
            MemKey::Shared(Arc::from(key))
        }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            MemKey::Inline { len, bytes } => &bytes[..usize::from(*len)],
            MemKey::Shared(b) => b,
        }
    }

    /// Heap bytes a key of these bytes holds beyond its slot.
    fn heap_len_of(key: &[u8]) -> usize {
        if key.len() <= INLINE_KEY {
            0
        } else {
            key.len()
        }
    }
}

impl Borrow<[u8]> for MemKey {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for MemKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for MemKey {}

impl PartialOrd for MemKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for MemKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (self, other) {
            (
                MemKey::Inline {
                    len: a_len,
                    bytes: a,
                },
                MemKey::Inline {
                    len: b_len,
                    bytes: b,
                },
            ) => {
                // The zero-padded arrays order as the keys do (where they differ, the shorter
                // key's padding is below the longer key's byte, as a prefix orders first);
                // equal arrays leave the lengths to decide. Two big-endian words compare the
                // first 16 bytes without a call to memcmp, which the B-tree makes per level.
                let word = |k: &[u8; INLINE_KEY], at: usize| {
                    let mut w = [0u8; 16];
                    let end = (at + 16).min(INLINE_KEY);
                    w[..end - at].copy_from_slice(&k[at..end]);
                    u128::from_be_bytes(w)
                };
                word(a, 0)
                    .cmp(&word(b, 0))
                    .then_with(|| word(a, 16).cmp(&word(b, 16)))
                    .then_with(|| a_len.cmp(b_len))
            }
            _ => self.as_slice().cmp(other.as_slice()),
        }
    }
}

impl Hash for MemKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl std::fmt::Debug for MemKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("MemKey").field(&self.as_slice()).finish()
    }
}

/// One key's newest state in a memtable: `value = None` is a tombstone, which hides any older
/// value in frozen memtables and the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemEntry {
    pub(crate) value: Option<Value>,
    pub(crate) operation_id: OperationId,
}

impl From<Record<'_>> for MemEntry {
    fn from(record: Record<'_>) -> Self {
        MemEntry {
            value: record.value.map(<[u8]>::to_vec),
            operation_id: record.operation_id,
        }
    }
}

/// The records in their arena, the hash index from each key to its newest record (point
/// reads: one probe), and the ordered map from each key to its first record (scans and
/// flushes). A B-tree alone costs a comparison per level on every `get`.
///
/// New keys wait in `unordered` until a scan or a flush needs the order: a writer only
/// appends their records' references, and ordering them is done in bulk (one sort, then a
/// bulk build or inserts), off the write path when no scan comes between writes. The B-tree
/// inserts were an eighth of a put.
#[derive(Debug)]
struct Maps {
    arena: Arena,
    index: Index,
    /// Each ordered key with its first record.
    ordered: BTreeMap<MemKey, RecordRef>,
    /// The first records of keys not yet ordered.
    unordered: Vec<RecordRef>,
}

impl Maps {
    fn entry(&self, key: &[u8]) -> Option<Record<'_>> {
        if self.index.len() == 0 {
            // A memtable just replaced by a flush: nothing to probe.
            return None;
        }
        self.index
            .get(key, &self.arena)
            .map(|at| self.arena.record(at))
    }

    /// The newest record of the key whose first record is `first`: that record itself when
    /// the key was written once (no probe of the index, which is a cache miss per key), else
    /// the index's (one probe, however often the key was overwritten).
    fn newest(&self, first: RecordRef) -> Record<'_> {
        match self.arena.next(first) {
            None => self.arena.record(first),
            Some(_) => {
                let key = self.arena.key(first);
                let newest = self.index.get(key, &self.arena).unwrap_or(first);
                self.arena.record(newest)
            }
        }
    }

    /// The newest records of the ordered keys in `range`, in key order, for a scan or a
    /// flush. The records lie in arena order, which for keys written in ascending order is
    /// key order.
    fn records<'a>(
        &'a self,
        range: (Bound<&'a [u8]>, Bound<&'a [u8]>),
    ) -> impl Iterator<Item = Record<'a>> + 'a {
        self.ordered
            .range::<[u8], _>(range)
            .map(|(_, &first)| self.newest(first))
    }
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
    #[cfg(test)]
    pub(crate) fn new(last_event: EventId) -> Self {
        Self::with_pools(last_event, Arc::default(), Arc::default(), 0)
    }

    /// An empty memtable whose arena and index reuse the memory in `chunks` and `slots`
    /// (what flushed memtables gave back), sized for `expected_keys` (the keys of the
    /// memtable it follows: growing the index as it fills rehashed every key about twice).
    pub(crate) fn with_pools(
        last_event: EventId,
        chunks: Arc<ChunkPool>,
        slots: Arc<SlotPool>,
        expected_keys: usize,
    ) -> Self {
        Self {
            map: RwLock::new(Maps {
                arena: Arena::new(chunks),
                index: Index::with_capacity(expected_keys, slots),
                ordered: BTreeMap::new(),
                unordered: Vec::new(),
            }),
            bytes: AtomicUsize::new(0),
            last_event: AtomicU64::new(last_event),
        }
    }

    /// Inserts one group's writes in order (a later write of a key wins), leaving `writes`
    /// empty for the caller to reuse, and records the group's last event.
    pub(crate) fn apply(&self, writes: &mut Vec<StoreWrite>, last_event: EventId) {
        if !writes.is_empty() {
            let mut guard = self.map.write();
            let maps = &mut *guard;
            maps.index.reserve(writes.len());
            if writes.len() >= PREFETCH_IN_APPLY_FROM {
                maps.index.prefetch(writes.iter().map(|w| w.key.as_slice()));
            }
            let mut added = 0usize;
            for w in writes.drain(..) {
                let value = w.value.as_deref();
                added += Arena::record_len(&w.key, value);
                let at = maps.arena.push(&w.key, value, w.operation_id);
                match maps.index.insert(&w.key, at, &maps.arena) {
                    Some(older) => maps.arena.link(older, at),
                    None => {
                        added += KEY_OVERHEAD + MemKey::heap_len_of(&w.key);
                        maps.unordered.push(at);
                    }
                }
            }
            self.bytes.fetch_add(added, Ordering::Relaxed);
        }
        self.last_event.fetch_max(last_event, Ordering::Release);
    }

    /// The maps with every key in the ordered map, for a scan or a flush.
    fn ordered(&self) -> RwLockReadGuard<'_, Maps> {
        {
            let maps = self.map.read();
            if maps.unordered.is_empty() {
                return maps;
            }
        }
        let mut guard = self.map.write();
        let maps = &mut *guard;
        if !maps.unordered.is_empty() {
            let mut keys: Vec<(MemKey, RecordRef)> = maps
                .unordered
                .drain(..)
                .map(|at| (MemKey::new(maps.arena.key(at)), at))
                .collect();
            maps.unordered.shrink_to_fit();
            // Stable and adaptive: keys that arrived in order sort in one pass. Each key is
            // new, so no two are equal.
            keys.sort_by(|a, b| a.0.cmp(&b.0));
            if maps.ordered.is_empty() {
                // Built bottom-up from sorted keys, without a search per key.
                maps.ordered = keys.into_iter().collect();
            } else {
                maps.ordered.extend(keys);
            }
        }
        RwLockWriteGuard::downgrade(guard)
    }

    /// Brings the index slots of `keys` into the cache ahead of their insert.
    pub(crate) fn prefetch<'k>(&self, keys: impl Iterator<Item = &'k [u8]>) {
        self.map.read().index.prefetch(keys);
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<MemEntry> {
        self.map.read().entry(key).map(MemEntry::from)
    }

    /// The entries with keys in `[start, end)`, in key order, copied out so that no lock is
    /// held afterwards.
    pub(crate) fn range(&self, start: Option<&[u8]>, end: Option<&[u8]>) -> Vec<(Key, MemEntry)> {
        let lower = start.map_or(Bound::Unbounded, Bound::Included);
        let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
        if let (Some(s), Some(e)) = (start, end) {
            if s >= e {
                return Vec::new();
            }
        }
        let maps = self.ordered();
        maps.records((lower, upper))
            .map(|r| (r.key.to_vec(), MemEntry::from(r)))
            .collect()
    }

    /// Every entry in key order, lent to the store for a flush.
    pub(crate) fn sorted(&self) -> SortedEntries<'_> {
        SortedEntries(self.ordered())
    }

    pub(crate) fn len(&self) -> usize {
        self.map.read().index.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn last_event(&self) -> EventId {
        self.last_event.load(Ordering::Acquire)
    }
}

/// A memtable's entries in key order, read in place by [`CanonicalStore::apply_sorted`]
/// (no copy of each key and value for the flush). Holds the memtable's read lock.
///
/// [`CanonicalStore::apply_sorted`]: azoth_core::CanonicalStore::apply_sorted
pub(crate) struct SortedEntries<'a>(RwLockReadGuard<'a, Maps>);

impl SortedWrites for SortedEntries<'_> {
    fn len(&self) -> usize {
        self.0.index.len()
    }

    fn for_each(&self, f: &mut dyn FnMut(StoreWriteRef<'_>) -> Result<()>) -> Result<()> {
        self.0
            .records((Bound::Unbounded, Bound::Unbounded))
            .try_for_each(|r| {
                f(StoreWriteRef {
                    key: r.key,
                    value: r.value,
                    operation_id: r.operation_id,
                })
            })
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

    fn sorted_keys(m: &Memtable) -> Vec<Vec<u8>> {
        let mut keys = Vec::new();
        m.sorted()
            .for_each(&mut |w| {
                keys.push(w.key.to_vec());
                Ok(())
            })
            .unwrap();
        keys
    }

    #[test]
    fn later_writes_win_and_tombstones_stay() {
        let m = Memtable::new(0);
        m.apply(&mut vec![w("a", Some("1"), 1), w("b", Some("2"), 2)], 2);
        m.apply(&mut vec![w("a", None, 3), w("c", Some("3"), 4)], 4);
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
        assert!(m.bytes() >= 3 * KEY_OVERHEAD);
    }

    #[test]
    fn scans_see_keys_added_between_them_in_order() {
        let m = Memtable::new(0);
        let mut model = std::collections::BTreeMap::new();
        for round in 0..20u64 {
            let mut writes: Vec<StoreWrite> = (0..50u64)
                .map(|i| {
                    let k = (i * 7919 + round * 31) % 300;
                    let key = if k % 3 == 0 {
                        format!("{k:0>40}")
                    } else {
                        format!("k{k}")
                    };
                    let value = (k % 7 != 0).then(|| format!("v{round}-{i}"));
                    model.insert(key.clone().into_bytes(), value.clone());
                    w(&key, value.as_deref(), round * 100 + i + 1)
                })
                .collect();
            m.apply(&mut writes, round);
            if round % 3 == 0 {
                let got: Vec<(Vec<u8>, Option<Vec<u8>>)> = m
                    .range(None, None)
                    .into_iter()
                    .map(|(k, e)| (k, e.value))
                    .collect();
                let want: Vec<(Vec<u8>, Option<Vec<u8>>)> = model
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone().map(String::into_bytes)))
                    .collect();
                assert_eq!(got, want, "round {round}");
            }
        }
        assert_eq!(sorted_keys(&m), model.keys().cloned().collect::<Vec<_>>());
        // A flush reads each key's newest state (keys written once and keys overwritten).
        let mut flushed = Vec::new();
        m.sorted()
            .for_each(&mut |w| {
                flushed.push((w.key.to_vec(), w.value.map(<[u8]>::to_vec)));
                Ok(())
            })
            .unwrap();
        let want: Vec<(Vec<u8>, Option<Vec<u8>>)> = model
            .into_iter()
            .map(|(k, v)| (k, v.map(String::into_bytes)))
            .collect();
        assert_eq!(flushed, want);
        // and its version: the last of the writes.
        let newest = m.get(b"k1").unwrap().operation_id;
        assert!(
            m.range(Some(b"k1"), Some(b"k1\0"))
                .iter()
                .all(|(_, e)| e.operation_id == newest)
        );
    }

    #[test]
    fn an_empty_group_still_moves_the_checkpoint() {
        let m = Memtable::new(5);
        m.apply(&mut Vec::new(), 9);
        assert!(m.is_empty());
        assert_eq!(m.last_event(), 9);
    }

    #[test]
    fn inline_keys_compare_as_their_bytes() {
        let keys: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![0, 0],
            vec![1],
            vec![0, 1],
            vec![255; 30],
            vec![255; 29],
            b"bench:k:\0\0\0\0\0\0\0\x01".to_vec(),
            b"bench:k:\0\0\0\0\0\0\x01\0".to_vec(),
            b"bench:k:\0\0\0\0\0\0\0\x01\0".to_vec(),
            [vec![7; 16], vec![0; 14]].concat(),
            [vec![7; 16], vec![0; 13]].concat(),
            [vec![7; 16], vec![0; 13], vec![1]].concat(),
            vec![9; 31],
        ];
        for a in &keys {
            for b in &keys {
                let (ka, kb) = (MemKey::new(a), MemKey::new(b));
                assert_eq!(ka.cmp(&kb), a.cmp(b), "{a:?} vs {b:?}");
                assert_eq!(ka == kb, a == b);
            }
        }
    }

    #[test]
    fn inline_and_shared_keys_order_as_bytes() {
        let long_a = "a".repeat(INLINE_KEY + 5);
        let long_b = format!("{}b", "a".repeat(INLINE_KEY));
        let m = Memtable::new(0);
        m.apply(
            &mut vec![
                w(&long_b, Some("2"), 1),
                w("ab", Some("1"), 2),
                w(&long_a, Some("3"), 3),
                w("", Some("0"), 4),
                w(&"a".repeat(INLINE_KEY), Some("4"), 5),
            ],
            5,
        );
        let keys: Vec<Vec<u8>> = m.range(None, None).into_iter().map(|(k, _)| k).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(keys.len(), 5);
        assert_eq!(
            m.get(long_a.as_bytes()).unwrap().value.as_deref(),
            Some(&b"3"[..])
        );
        assert_eq!(m.get(b"ab").unwrap().value.as_deref(), Some(&b"1"[..]));
        assert!(m.get(b"a").is_none());
        assert_eq!(sorted_keys(&m), sorted);
        assert_eq!(m.sorted().len(), 5);
    }
}
