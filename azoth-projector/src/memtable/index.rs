//! [`Index`]: the memtable's hash index from key to its newest record in the arena.
//!
//! Open addressing with linear probing over one array of 8-byte slots, each holding 16 bits
//! of the key's hash beside the record's reference. A lookup reads one slot (usually one
//! cache line) and then the record, whose key and value sit together; a general-purpose map
//! would read a control byte, then a wide slot, then a separate value. Keys are never
//! removed from a memtable (a delete is a tombstone record), so probing needs no deletion
//! marks.

use std::hash::BuildHasher;

use super::arena::{Arena, RecordRef};

/// Slots start at this many, and double when more than half are taken.
const INITIAL_SLOTS: usize = 1024;

/// An empty slot. An occupied slot is never 0: its tag always has the low bit set.
const EMPTY: u64 = 0;

const REF_BITS: u32 = 48;
const REF_MASK: u64 = (1 << REF_BITS) - 1;

#[derive(Debug)]
pub(crate) struct Index {
    slots: Vec<u64>,
    len: usize,
    hasher: foldhash::fast::RandomState,
}

/// Where a probe for a key ended.
enum Probe {
    Found(usize),
    Vacant(usize),
}

impl Default for Index {
    fn default() -> Self {
        Self {
            slots: vec![EMPTY; INITIAL_SLOTS],
            len: 0,
            hasher: foldhash::fast::RandomState::default(),
        }
    }
}

impl Index {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The slot's tag for `hash`: its top 16 bits, low bit set so that no slot is `EMPTY`.
    fn tag(hash: u64) -> u64 {
        ((hash >> REF_BITS) | 1) << REF_BITS
    }

    fn probe(&self, key: &[u8], hash: u64, arena: &Arena) -> Probe {
        let mask = self.slots.len() - 1;
        let tag = Self::tag(hash);
        let mut at = hash as usize & mask;
        loop {
            let slot = self.slots[at];
            if slot == EMPTY {
                return Probe::Vacant(at);
            }
            if slot & !REF_MASK == tag && arena.key(RecordRef::from_bits(slot & REF_MASK)) == key {
                return Probe::Found(at);
            }
            at = (at + 1) & mask;
        }
    }

    /// The newest record of `key`.
    pub(crate) fn get(&self, key: &[u8], arena: &Arena) -> Option<RecordRef> {
        match self.probe(key, self.hash(key), arena) {
            Probe::Found(at) => Some(RecordRef::from_bits(self.slots[at] & REF_MASK)),
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
                let old = RecordRef::from_bits(self.slots[at] & REF_MASK);
                self.slots[at] = Self::tag(hash) | record.to_bits();
                Some(old)
            }
            Probe::Vacant(at) => {
                self.slots[at] = Self::tag(hash) | record.to_bits();
                self.len += 1;
                if self.len * 2 > self.slots.len() {
                    self.grow(arena);
                }
                None
            }
        }
    }

    /// Makes room for `more` keys beyond those indexed, so that a group's inserts rehash at
    /// most once.
    pub(crate) fn reserve(&mut self, more: usize, arena: &Arena) {
        while (self.len + more) * 2 > self.slots.len() {
            self.grow(arena);
        }
    }

    /// Doubles the slots, placing every key again (its hash is computed anew from the key in
    /// the arena: the slot keeps only 16 bits of it).
    fn grow(&mut self, arena: &Arena) {
        let doubled = vec![EMPTY; self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, doubled);
        let mask = self.slots.len() - 1;
        for slot in old.into_iter().filter(|&s| s != EMPTY) {
            let hash = self.hash(arena.key(RecordRef::from_bits(slot & REF_MASK)));
            let mut at = hash as usize & mask;
            while self.slots[at] != EMPTY {
                at = (at + 1) & mask;
            }
            self.slots[at] = slot;
        }
    }
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
    }
}
