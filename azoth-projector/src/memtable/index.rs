//! [`Index`]: the memtable's hash index from key to its newest record in the arena.
//!
//! Open addressing with linear probing over one array of 16-byte slots, each holding the
//! key's hash beside the record's reference. A lookup reads one slot (usually one cache
//! line) and then the record, whose key and value sit together; a general-purpose map would
//! read a control byte, then a wide slot, then a separate value. Growing moves slots by
//! their stored hash without reading a key. Keys are never removed from a memtable (a delete
//! is a tombstone record), so probing needs no deletion marks.

use std::hash::BuildHasher;
use std::sync::Arc;

use parking_lot::Mutex;

use super::arena::{Arena, RecordRef};

/// Slots start at this many, and grow when more than half are taken.
const INITIAL_SLOTS: usize = 1024;

/// One slot: a key's hash and its newest record.
#[derive(Debug, Clone, Copy)]
struct Slot {
    hash: u64,
    record: u64,
}

/// No record has these bits (a chunk index that large is never reached).
const NO_RECORD: u64 = u64::MAX;

const EMPTY: Slot = Slot {
    hash: 0,
    record: NO_RECORD,
};

#[derive(Debug)]
pub(crate) struct Index {
    slots: Vec<Slot>,
    len: usize,
    hasher: foldhash::fast::RandomState,
    /// Slots to grow to at the first growth (see [`with_capacity`](Self::with_capacity)).
    grow_to: usize,
    pool: Arc<SlotPool>,
}

/// The slot array of a dropped index, kept for the next index of that size: a fresh array is
/// a page fault and a zeroed page per 4 KiB (a tenth of a bulk load's writer time), where a
/// kept one is only refilled. Holds one array, the largest given.
#[derive(Debug, Default)]
pub(crate) struct SlotPool {
    spare: Mutex<Option<Vec<Slot>>>,
}

impl SlotPool {
    /// An empty array of `len` slots, from the pool if it holds one that long.
    fn take(&self, len: usize) -> Vec<Slot> {
        let mut spare = self.spare.lock();
        match spare.take() {
            Some(mut slots) if slots.len() == len => {
                drop(spare);
                slots.fill(EMPTY);
                slots
            }
            other => {
                *spare = other;
                vec![EMPTY; len]
            }
        }
    }

    fn give(&self, slots: Vec<Slot>) {
        if slots.len() > INITIAL_SLOTS {
            let mut spare = self.spare.lock();
            if spare.as_ref().is_none_or(|kept| kept.len() <= slots.len()) {
                *spare = Some(slots);
            }
        }
    }
}

impl Drop for Index {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.slots));
    }
}

/// Where a probe for a key ended.
enum Probe {
    Found(usize),
    Vacant(usize),
}

impl Default for Index {
    fn default() -> Self {
        Self::with_capacity(0, Arc::default())
    }
}

impl Index {
    /// An empty index that, once it outgrows its first slots, grows straight to room for
    /// `keys` keys: a memtable that fills as the one before it rehashes once instead of about
    /// twice per key, and one that stays small (a read-mostly database just after a flush)
    /// keeps a small, cached slot array.
    pub(crate) fn with_capacity(keys: usize, pool: Arc<SlotPool>) -> Self {
        Self {
            slots: vec![EMPTY; INITIAL_SLOTS],
            len: 0,
            hasher: foldhash::fast::RandomState::default(),
            grow_to: keys.saturating_mul(2).next_power_of_two(),
            pool,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    fn probe(&self, key: &[u8], hash: u64, arena: &Arena) -> Probe {
        let mask = self.slots.len() - 1;
        let mut at = hash as usize & mask;
        loop {
            let slot = self.slots[at];
            if slot.record == NO_RECORD {
                return Probe::Vacant(at);
            }
            if slot.hash == hash && arena.key(RecordRef::from_bits(slot.record)) == key {
                return Probe::Found(at);
            }
            at = (at + 1) & mask;
        }
    }

    /// The newest record of `key`.
    pub(crate) fn get(&self, key: &[u8], arena: &Arena) -> Option<RecordRef> {
        match self.probe(key, self.hash(key), arena) {
            Probe::Found(at) => Some(RecordRef::from_bits(self.slots[at].record)),
            Probe::Vacant(_) => None,
        }
    }

    /// Points `key` at `record` (which the arena holds); returns the record it pointed at
    /// before, if any.
    pub(crate) fn insert(
        &mut self,
        key: &[u8],
        record: RecordRef,
        arena: &Arena,
    ) -> Option<RecordRef> {
        let hash = self.hash(key);
        match self.probe(key, hash, arena) {
            Probe::Found(at) => {
                let old = RecordRef::from_bits(self.slots[at].record);
                self.slots[at].record = record.to_bits();
                Some(old)
            }
            Probe::Vacant(at) => {
                self.slots[at] = Slot {
                    hash,
                    record: record.to_bits(),
                };
                self.len += 1;
                if self.len * 2 > self.slots.len() {
                    self.grow();
                }
                None
            }
        }
    }

    /// Makes room for `more` keys beyond those indexed, so that a group's inserts rehash at
    /// most once.
    pub(crate) fn reserve(&mut self, more: usize) {
        while (self.len + more) * 2 > self.slots.len() {
            self.grow();
        }
    }

    /// Asks the processor to bring the first slot of each key's probe into the cache, and
    /// goes on without waiting: the inserts that come later (after the event is encoded and
    /// logged, for a put) find the slots cached, and the misses of many keys overlap. The
    /// insert's cache miss on its slot was a quarter of a lone writer's put.
    pub(crate) fn prefetch<'k>(&self, keys: impl Iterator<Item = &'k [u8]>) {
        let mask = self.slots.len() - 1;
        for key in keys {
            prefetch(&self.slots[self.hash(key) as usize & mask]);
        }
    }

    /// Doubles the slots, placing every key again by its stored hash.
    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(std::mem::take(&mut self.grow_to));
        let old = std::mem::replace(&mut self.slots, self.pool.take(size));
        let mask = self.slots.len() - 1;
        for slot in old.into_iter().filter(|s| s.record != NO_RECORD) {
            let mut at = slot.hash as usize & mask;
            while self.slots[at].record != NO_RECORD {
                at = (at + 1) & mask;
            }
            self.slots[at] = slot;
        }
    }
}

/// A hint to bring `value` into the cache; nothing where the platform has no such hint.
#[inline]
fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it changes nothing the program can observe and
    // never faults (the address is a live reference besides), and SSE, which provides it,
    // is part of the x86_64 baseline.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(value).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

#[cfg(test)]
mod tests {
    use super::*;
    use azoth_core::OperationId;
    use std::collections::HashMap;

    #[test]
    fn finds_the_newest_record_of_every_key_through_growth() {
        let mut arena = Arena::default();
        let mut index = Index::default();
        let mut model: HashMap<Vec<u8>, RecordRef> = HashMap::new();
        for i in 0..50_000u64 {
            let key = format!("k{}", (i * 7919) % 20_000).into_bytes();
            let at = arena.push(&key, Some(&i.to_be_bytes()), OperationId::new(1, i));
            let before = index.insert(&key, at, &arena);
            assert_eq!(before, model.insert(key, at));
        }
        assert_eq!(index.len(), model.len());
        for (key, at) in &model {
            assert_eq!(index.get(key, &arena), Some(*at));
        }
        assert_eq!(index.get(b"absent", &arena), None);
        assert_eq!(index.get(b"", &arena), None);
        assert!(index.slots.len() >= 2 * index.len());
        let pool = Arc::new(SlotPool::default());
        let mut sized = Index::with_capacity(3000, Arc::clone(&pool));
        assert_eq!(sized.slots.len(), INITIAL_SLOTS);
        sized.reserve(INITIAL_SLOTS);
        assert_eq!(
            sized.slots.len(),
            8192,
            "the first growth goes to the expected size"
        );
        sized.reserve(5000);
        assert_eq!(sized.slots.len(), 16384, "later ones double");
        // A dropped index's array serves the next index of its size, emptied.
        for i in 0..3u64 {
            let key = i.to_be_bytes();
            let at = arena.push(&key, None, OperationId::new(1, i));
            sized.insert(&key, at, &arena);
        }
        drop(sized);
        let mut next = Index::with_capacity(8000, Arc::clone(&pool));
        next.reserve(INITIAL_SLOTS);
        assert_eq!(next.slots.len(), 16384);
        assert!(pool.spare.lock().is_none(), "taken from the pool");
        assert_eq!(next.len(), 0);
        assert_eq!(next.get(&1u64.to_be_bytes(), &arena), None);
    }
}
