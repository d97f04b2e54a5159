//! The records of [`LmdbEventLog`](crate::LmdbEventLog) in its LMDB environment.
//!
//! Three named databases, every key a big-endian `u64` so that LMDB's byte order is id order
//! (a fourth, `system`, holds the format record of `env_format.rs`; `FORMAT.md` has it all):
//!
//! ```text
//! events    event id            -> | crc32c(event) u32 LE | event bytes ... |
//! blocks    first event id      -> | event count u32 LE | chain hash [32] |
//! segments  first event id      -> | state u8 | last event id u64 LE | prev chain hash [32] |
//! system    "gap/" first id BE  -> | end id u64 LE |     (one per hole `delete_range` made)
//! ```
//!
//! A *block* is the events of one append call, written in one transaction; its chain hash is
//! `azoth_core::block_hash(prev, first, events)`, so each block is linked to the one before it.
//! A *segment* is a run of blocks: the last one is active (state 0, `last` unused) and takes
//! appends; `rotate()` seals it (state 1, `last` set) and starts the next. An archived segment
//! (state 2) has its events and blocks moved to an archive file and keeps only this record.
//! `prev` is the chain hash the segment's first block continues from, so the chain is checked
//! across segments and archives. The per-event CRC lets a read name the damaged event; the
//! chain hash makes a changed byte anywhere tamper-evident.

use azoth_core::{ChainHash, EventId};

/// Bytes of the CRC before each stored event.
pub(crate) const EVENT_HEADER_LEN: usize = 4;

/// A database key for `id`.
pub(crate) fn id_key(id: EventId) -> [u8; 8] {
    id.to_be_bytes()
}

/// The id of a database key; `None` if the key is not 8 bytes.
pub(crate) fn key_id(key: &[u8]) -> Option<EventId> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

/// The stored form of `event` into `out` (cleared first).
pub(crate) fn encode_event(event: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&crc32c::crc32c(event).to_le_bytes());
    out.extend_from_slice(event);
}

/// The event of a stored value if its CRC matches.
pub(crate) fn decode_event(stored: &[u8]) -> Option<&[u8]> {
    let (crc, event) = stored.split_at_checked(EVENT_HEADER_LEN)?;
    (u32::from_le_bytes(crc.try_into().ok()?) == crc32c::crc32c(event)).then_some(event)
}

/// The prefix of the gap records in the `system` database: `delete_range` writes one for
/// each segment it removes from the middle of the log (with older segments left), so that
/// `verify` tells a hole retention made from a missing segment.
pub(crate) const GAP_PREFIX: &[u8] = b"gap/";

/// The `system` key of the gap starting at `first`.
pub(crate) fn gap_key(first: EventId) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..4].copy_from_slice(GAP_PREFIX);
    key[4..].copy_from_slice(&first.to_be_bytes());
    key
}

/// The ids `[first, end)` of a gap record; `None` if it is malformed.
pub(crate) fn decode_gap(key: &[u8], value: &[u8]) -> Option<(EventId, EventId)> {
    let first = key_id(key.strip_prefix(GAP_PREFIX)?)?;
    let end = u64::from_le_bytes(value.try_into().ok()?);
    (first < end).then_some((first, end))
}

/// A block record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockRecord {
    pub(crate) count: u32,
    pub(crate) hash: ChainHash,
}

impl BlockRecord {
    pub(crate) const LEN: usize = 36;

    pub(crate) fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..4].copy_from_slice(&self.count.to_le_bytes());
        out[4..].copy_from_slice(&self.hash);
        out
    }

    /// `None` for a malformed record, and for a count of 0: appends of no events write no
    /// block, and readers advance by the count.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != Self::LEN {
            return None;
        }
        let count = u32::from_le_bytes(bytes[..4].try_into().ok()?);
        Some(Self {
            count,
            hash: bytes[4..].try_into().ok()?,
        })
        .filter(|_| count > 0)
    }
}

/// Where a segment's events are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SegmentState {
    /// Takes appends.
    Active,
    /// Sealed, events in LMDB.
    Sealed,
    /// Sealed, events in an archive file.
    Archived,
}

/// A segment record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentRecord {
    pub(crate) state: SegmentState,
    /// The last event id of a sealed or archived segment.
    pub(crate) last: EventId,
    /// The chain hash the segment continues from.
    pub(crate) prev: ChainHash,
}

impl SegmentRecord {
    pub(crate) const LEN: usize = 41;

    pub(crate) fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[0] = match self.state {
            SegmentState::Active => 0,
            SegmentState::Sealed => 1,
            SegmentState::Archived => 2,
        };
        out[1..9].copy_from_slice(&self.last.to_le_bytes());
        out[9..].copy_from_slice(&self.prev);
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != Self::LEN {
            return None;
        }
        let state = match bytes[0] {
            0 => SegmentState::Active,
            1 => SegmentState::Sealed,
            2 => SegmentState::Archived,
            _ => return None,
        };
        Some(Self {
            state,
            last: u64::from_le_bytes(bytes[1..9].try_into().ok()?),
            prev: bytes[9..].try_into().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let b = BlockRecord {
            count: 7,
            hash: [3; 32],
        };
        assert_eq!(BlockRecord::decode(&b.encode()), Some(b));
        assert_eq!(BlockRecord::decode(&b.encode()[..35]), None);
        for state in [
            SegmentState::Active,
            SegmentState::Sealed,
            SegmentState::Archived,
        ] {
            let s = SegmentRecord {
                state,
                last: 99,
                prev: [9; 32],
            };
            assert_eq!(SegmentRecord::decode(&s.encode()), Some(s));
        }
        assert_eq!(key_id(&id_key(12345)), Some(12345));
    }

    #[test]
    fn every_bit_flip_of_an_event_is_detected() {
        let mut stored = Vec::new();
        encode_event(b"an event of some bytes", &mut stored);
        assert_eq!(decode_event(&stored), Some(&b"an event of some bytes"[..]));
        for i in 0..stored.len() * 8 {
            let mut damaged = stored.clone();
            damaged[i / 8] ^= 1 << (i % 8);
            assert_eq!(decode_event(&damaged), None, "bit {i}");
        }
    }
}
