//! The sparse index of a segment: where some blocks start, so a read seeks instead of scanning.
//!
//! An entry is kept for the first block and then for the first block starting at least
//! [`INDEX_INTERVAL`] bytes after the previous entry, so a lookup reads at most about that
//! much beyond the entry it finds. The index of the active segment lives in memory (rebuilt by
//! the open scan); a sealed segment's is written beside it as `<first id>.idx`:
//!
//! ```text
//! 0       8         12            16               24             32            40            72
//! +-------+---------+-------------+----------------+--------------+-------------+-------------+
//! | magic | version | entry_count | first_event_id | end_event_id | segment_len | last_hash   |
//! | 8 B   | u32     | u32         | u64            | u64 (excl.)  | u64         | [32]        |
//! +-------+---------+-------------+----------------+--------------+-------------+-------------+
//! 72: entry_count × (first_event_id u64 | offset u64), then crc32c u32 of everything before it
//! ```

use azoth_core::{ChainHash, EventId};

use crate::format::{DecodeError, read_u32, read_u64};

/// Bytes between index entries.
pub const INDEX_INTERVAL: u64 = 16 * 1024;
/// The first 8 bytes of an index file.
pub const INDEX_MAGIC: [u8; 8] = *b"AZOTHIDX";
/// The index format version.
pub const INDEX_VERSION: u32 = 1;
/// Offset of the version.
const IDX_VERSION: usize = 8;
/// Offset of the entry count.
const IDX_COUNT: usize = IDX_VERSION + 4;
/// Offset of the segment's first event id.
const IDX_FIRST_ID: usize = IDX_COUNT + 4;
/// Offset of the id after the segment's last event.
const IDX_END_ID: usize = IDX_FIRST_ID + 8;
/// Offset of the segment's length in bytes.
const IDX_SEGMENT_LEN: usize = IDX_END_ID + 8;
/// Offset of the chain hash of the segment's last block.
const IDX_LAST_HASH: usize = IDX_SEGMENT_LEN + 8;
/// Offset of the first entry.
const IDX_ENTRIES: usize = IDX_LAST_HASH + 32;
/// Bytes per entry.
const ENTRY_LEN: usize = 16;

/// Where one block starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// The block's first event id.
    pub first_id: EventId,
    /// The block's byte offset in the segment.
    pub offset: u64,
}

/// Adds an entry when a block starts far enough from the previous entry.
pub fn note(entries: &mut Vec<IndexEntry>, first_id: EventId, offset: u64) {
    if entries
        .last()
        .is_none_or(|last| offset >= last.offset + INDEX_INTERVAL)
    {
        entries.push(IndexEntry { first_id, offset });
    }
}

/// The offset of the last entry at or before `id`, or `None` if `id` precedes every entry.
pub fn seek(entries: &[IndexEntry], id: EventId) -> Option<u64> {
    let i = entries.partition_point(|e| e.first_id <= id);
    i.checked_sub(1).map(|i| entries[i].offset)
}

/// The persisted summary and index of a sealed segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentIndex {
    /// The segment's first event id.
    pub first_event_id: EventId,
    /// The id after the segment's last event.
    pub end_event_id: EventId,
    /// The segment's length in bytes.
    pub segment_len: u64,
    /// The chain hash of the segment's last block.
    pub last_hash: ChainHash,
    /// The sparse entries.
    pub entries: Vec<IndexEntry>,
}

impl SegmentIndex {
    /// Encodes the index file.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(IDX_ENTRIES + self.entries.len() * ENTRY_LEN + 4);
        b.extend_from_slice(&INDEX_MAGIC);
        b.extend_from_slice(&INDEX_VERSION.to_le_bytes());
        b.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        b.extend_from_slice(&self.first_event_id.to_le_bytes());
        b.extend_from_slice(&self.end_event_id.to_le_bytes());
        b.extend_from_slice(&self.segment_len.to_le_bytes());
        b.extend_from_slice(&self.last_hash);
        for e in &self.entries {
            b.extend_from_slice(&e.first_id.to_le_bytes());
            b.extend_from_slice(&e.offset.to_le_bytes());
        }
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes an index file.
    ///
    /// # Errors
    /// `Incomplete` or `Corrupt` for a file that is not a whole, valid index.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() < IDX_ENTRIES + 4 {
            return Err(DecodeError::Incomplete);
        }
        if b[..IDX_VERSION] != INDEX_MAGIC {
            return Err(DecodeError::Corrupt("bad index magic".into()));
        }
        let count = read_u32(b, IDX_COUNT) as usize;
        let end = count
            .checked_mul(ENTRY_LEN)
            .and_then(|n| n.checked_add(IDX_ENTRIES))
            .ok_or_else(|| DecodeError::Corrupt("index entry count overflows".into()))?;
        if b.len() != end + 4 {
            return Err(DecodeError::Corrupt("index length mismatch".into()));
        }
        if read_u32(b, end) != crc32c::crc32c(&b[..end]) {
            return Err(DecodeError::Corrupt("index checksum mismatch".into()));
        }
        if read_u32(b, IDX_VERSION) != INDEX_VERSION {
            return Err(DecodeError::Corrupt("unsupported index version".into()));
        }
        let mut last_hash = [0u8; 32];
        last_hash.copy_from_slice(&b[IDX_LAST_HASH..IDX_ENTRIES]);
        let entries = (0..count)
            .map(|i| {
                let at = IDX_ENTRIES + i * ENTRY_LEN;
                IndexEntry {
                    first_id: read_u64(b, at),
                    offset: read_u64(b, at + 8),
                }
            })
            .collect();
        Ok(Self {
            first_event_id: read_u64(b, IDX_FIRST_ID),
            end_event_id: read_u64(b, IDX_END_ID),
            segment_len: read_u64(b, IDX_SEGMENT_LEN),
            last_hash,
            entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let mut entries = Vec::new();
        note(&mut entries, 1, 64);
        note(&mut entries, 2, 100);
        note(&mut entries, 9, 64 + INDEX_INTERVAL);
        assert_eq!(entries.len(), 2);
        assert_eq!(seek(&entries, 0), None);
        assert_eq!(seek(&entries, 5), Some(64));
        assert_eq!(seek(&entries, 9), Some(64 + INDEX_INTERVAL));
        let idx = SegmentIndex {
            first_event_id: 1,
            end_event_id: 20,
            segment_len: 999,
            last_hash: [5; 32],
            entries,
        };
        let b = idx.encode();
        assert_eq!(SegmentIndex::decode(&b).unwrap(), idx);
        for cut in 0..b.len() {
            assert!(SegmentIndex::decode(&b[..cut]).is_err());
        }
        let mut c = b.clone();
        c[30] ^= 1;
        assert!(SegmentIndex::decode(&c).is_err());
    }
}
