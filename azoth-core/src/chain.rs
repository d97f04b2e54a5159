//! The hash chain that links every block of a log to the one before it.
//!
//! Each block (the events of one append call) has a hash computed over the previous block's
//! hash and its own content:
//!
//! ```text
//! hash(block) = BLAKE3( prev_hash[32] || first_event_id u64 LE || event_count u32 LE
//!                       || for each event: len u32 LE || bytes )
//! ```
//!
//! The first block of a log continues from [`GENESIS_HASH`] (32 zero bytes). Every unit
//! (segment, logical segment, archive) records the hash it continues from, so the chain can be
//! checked from the oldest unit still stored, across units, backends and archives: a changed
//! byte, a reordered or missing block, or a missing unit breaks it.

use crate::types::EventId;

/// A link of the chain: a BLAKE3 hash of 32 bytes.
pub type ChainHash = [u8; 32];

/// The hash the first block of a log continues from.
pub const GENESIS_HASH: ChainHash = [0u8; 32];

/// Computes a block's chain hash incrementally, without gathering its events first.
#[derive(Debug, Clone)]
pub struct BlockHasher {
    hasher: blake3::Hasher,
}

impl BlockHasher {
    /// Starts the hash of the block of `event_count` events beginning at `first_event_id`
    /// that follows the block whose hash is `prev`.
    pub fn new(prev: &ChainHash, first_event_id: EventId, event_count: u32) -> Self {
        let mut hasher = blake3::Hasher::new();
        hasher.update(prev);
        hasher.update(&first_event_id.to_le_bytes());
        hasher.update(&event_count.to_le_bytes());
        Self { hasher }
    }

    /// Adds the next event of the block.
    pub fn event(&mut self, bytes: &[u8]) -> &mut Self {
        // Lengths fit u32: every backend refuses events of 4 GiB or more.
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        self.hasher.update(&len.to_le_bytes());
        self.hasher.update(bytes);
        self
    }

    /// The block's hash.
    pub fn finish(&self) -> ChainHash {
        *self.hasher.finalize().as_bytes()
    }
}

/// The chain hash of the block holding `events` from `first_event_id` on, following `prev`.
pub fn block_hash<E: AsRef<[u8]>>(
    prev: &ChainHash,
    first_event_id: EventId,
    events: &[E],
) -> ChainHash {
    let count = u32::try_from(events.len()).unwrap_or(u32::MAX);
    let mut hasher = BlockHasher::new(prev, first_event_id, count);
    for event in events {
        hasher.event(event.as_ref());
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_equals_whole() {
        let events = [b"a".to_vec(), Vec::new(), vec![7u8; 1000]];
        let whole = block_hash(&GENESIS_HASH, 5, &events);
        let mut h = BlockHasher::new(&GENESIS_HASH, 5, 3);
        for e in &events {
            h.event(e);
        }
        assert_eq!(whole, h.finish());
    }

    #[test]
    fn every_input_matters() {
        let base = block_hash(&GENESIS_HASH, 1, &[b"ab".to_vec()]);
        assert_ne!(base, block_hash(&[1u8; 32], 1, &[b"ab".to_vec()]));
        assert_ne!(base, block_hash(&GENESIS_HASH, 2, &[b"ab".to_vec()]));
        assert_ne!(
            base,
            block_hash(&GENESIS_HASH, 1, &[b"a".to_vec(), b"b".to_vec()])
        );
        assert_ne!(base, block_hash(&GENESIS_HASH, 1, &[b"ac".to_vec()]));
    }
}
