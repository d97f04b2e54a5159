//! The archive's byte layout: constants, and encode/decode of header, index entries, trailer
//! and blocks. `FORMAT.md` describes the same layout in prose.
//!
//! ```text
//! +--------+---------+---------+-----+---------+-------+---------+
//! | header | frame 0 | frame 1 | ... | frame n | index | trailer |
//! | 64 B   | zstd    | zstd    |     | zstd    | 32 B  | 88 B    |
//! |        |         |         |     |         | × n+1 |         |
//! +--------+---------+---------+-----+---------+-------+---------+
//! ```
//!
//! All integers are little-endian.

use crate::chain::ChainHash;
use crate::types::EventId;

/// The first 8 bytes of every archive.
pub(crate) const MAGIC: [u8; 8] = *b"AZOTHARC";
/// The last 8 bytes before the trailer's checksum.
pub(crate) const END_MAGIC: [u8; 8] = *b"AZOTHEND";
/// The format version this build writes and the newest it reads.
pub(crate) const VERSION: u32 = 1;

// Header:
// 0      8   magic "AZOTHARC"
// 8      4   version u32
// 12     4   flags u32 (0)
// 16     8   first_event_id u64 (0 for an archive without blocks)
// 24    32   prev_hash: the chain hash the first block continues from
// 56     4   reserved (0)
// 60     4   crc32c of bytes 0..60
pub(crate) const HEADER_LEN: usize = 64;
const H_VERSION: usize = 8;
const H_FLAGS: usize = 12;
const H_FIRST: usize = 16;
const H_PREV: usize = 24;
const H_CRC: usize = 60;

// Index entry, one per frame:
// 0      8   first_event_id u64
// 8      8   offset u64 of the frame in the file
// 16     4   length u32 of the compressed frame
// 20     4   raw length u32 of the decompressed frame
// 24     4   event_count u32 of the frame
// 28     4   crc32c of the compressed frame
pub(crate) const INDEX_ENTRY_LEN: usize = 32;

// Trailer:
// 0      8   index_offset u64
// 8      8   frame_count u64
// 16     8   block_count u64
// 24     8   event_count u64
// 32     8   last_event_id u64 (0 if no events)
// 40    32   last_hash: the chain hash of the last block (prev_hash if no blocks)
// 72     4   reserved (0)
// 76     8   end magic "AZOTHEND"
// 84     4   crc32c of the index bytes followed by trailer bytes 0..84
pub(crate) const TRAILER_LEN: usize = 88;
const T_FRAMES: usize = 8;
const T_BLOCKS: usize = 16;
const T_EVENTS: usize = 24;
const T_LAST_ID: usize = 32;
const T_LAST_HASH: usize = 40;
const T_RESERVED: usize = 72;
const T_MAGIC: usize = 76;
const T_CRC: usize = 84;

// Block, inside a decompressed frame:
// 0      8   first_event_id u64
// 8      4   event_count u32
// 12    32   chain hash of this block
// 44         event_count × ( len u32 | bytes )
pub(crate) const BLOCK_HEADER_LEN: usize = 44;
pub(crate) const EVENT_LEN_LEN: usize = 4;

/// Raw (decompressed) bytes gathered before a frame is compressed and written.
pub(crate) const FRAME_TARGET_RAW: usize = 256 * 1024;

pub(crate) fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

pub(crate) fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

fn hash_at(bytes: &[u8], at: usize) -> ChainHash {
    let mut h = [0u8; 32];
    h.copy_from_slice(&bytes[at..at + 32]);
    h
}

/// The archive's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub first_event_id: EventId,
    pub prev_hash: ChainHash,
}

/// Why a header could not be read.
pub(crate) enum HeaderError {
    Magic,
    Checksum,
    Version(u32),
    Flags(u32),
}

impl Header {
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[..8].copy_from_slice(&MAGIC);
        b[H_VERSION..H_VERSION + 4].copy_from_slice(&VERSION.to_le_bytes());
        b[H_FIRST..H_FIRST + 8].copy_from_slice(&self.first_event_id.to_le_bytes());
        b[H_PREV..H_PREV + 32].copy_from_slice(&self.prev_hash);
        let crc = crc32c::crc32c(&b[..H_CRC]);
        b[H_CRC..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// `b` is exactly [`HEADER_LEN`] bytes.
    pub(crate) fn decode(b: &[u8]) -> Result<Self, HeaderError> {
        if b[..8] != MAGIC {
            return Err(HeaderError::Magic);
        }
        if crc32c::crc32c(&b[..H_CRC]) != u32_at(b, H_CRC) {
            return Err(HeaderError::Checksum);
        }
        let version = u32_at(b, H_VERSION);
        if version == 0 || version > VERSION {
            return Err(HeaderError::Version(version));
        }
        let flags = u32_at(b, H_FLAGS);
        if flags != 0 || u32_at(b, 56) != 0 {
            return Err(HeaderError::Flags(flags));
        }
        Ok(Self {
            first_event_id: u64_at(b, H_FIRST),
            prev_hash: hash_at(b, H_PREV),
        })
    }
}

/// Where one frame is and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub first_event_id: EventId,
    pub offset: u64,
    pub len: u32,
    pub raw_len: u32,
    pub event_count: u32,
    pub crc: u32,
}

impl IndexEntry {
    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.first_event_id.to_le_bytes());
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
        out.extend_from_slice(&self.raw_len.to_le_bytes());
        out.extend_from_slice(&self.event_count.to_le_bytes());
        out.extend_from_slice(&self.crc.to_le_bytes());
    }

    /// `b` is exactly [`INDEX_ENTRY_LEN`] bytes.
    pub(crate) fn decode(b: &[u8]) -> Self {
        Self {
            first_event_id: u64_at(b, 0),
            offset: u64_at(b, 8),
            len: u32_at(b, 16),
            raw_len: u32_at(b, 20),
            event_count: u32_at(b, 24),
            crc: u32_at(b, 28),
        }
    }

    /// One past the frame's last event id.
    pub(crate) fn end_id(&self) -> EventId {
        self.first_event_id
            .saturating_add(u64::from(self.event_count))
    }
}

/// The archive's trailer: totals, the chain's last link, and where the index is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Trailer {
    pub index_offset: u64,
    pub frame_count: u64,
    pub block_count: u64,
    pub event_count: u64,
    pub last_event_id: EventId,
    pub last_hash: ChainHash,
}

impl Trailer {
    /// The trailer's bytes; its checksum covers `index` too.
    pub(crate) fn encode(&self, index: &[u8]) -> [u8; TRAILER_LEN] {
        let mut b = [0u8; TRAILER_LEN];
        b[..8].copy_from_slice(&self.index_offset.to_le_bytes());
        b[T_FRAMES..T_FRAMES + 8].copy_from_slice(&self.frame_count.to_le_bytes());
        b[T_BLOCKS..T_BLOCKS + 8].copy_from_slice(&self.block_count.to_le_bytes());
        b[T_EVENTS..T_EVENTS + 8].copy_from_slice(&self.event_count.to_le_bytes());
        b[T_LAST_ID..T_LAST_ID + 8].copy_from_slice(&self.last_event_id.to_le_bytes());
        b[T_LAST_HASH..T_LAST_HASH + 32].copy_from_slice(&self.last_hash);
        b[T_MAGIC..T_MAGIC + 8].copy_from_slice(&END_MAGIC);
        let crc = crc32c::crc32c_append(crc32c::crc32c(index), &b[..T_CRC]);
        b[T_CRC..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Whether `b` (exactly [`TRAILER_LEN`] bytes) ends with the end magic.
    pub(crate) fn has_magic(b: &[u8]) -> bool {
        b[T_MAGIC..T_MAGIC + 8] == END_MAGIC && u32_at(b, T_RESERVED) == 0
    }

    /// Decodes `b` without checking the checksum (it needs the index: see [`Self::checks`]).
    pub(crate) fn decode(b: &[u8]) -> Self {
        Self {
            index_offset: u64_at(b, 0),
            frame_count: u64_at(b, T_FRAMES),
            block_count: u64_at(b, T_BLOCKS),
            event_count: u64_at(b, T_EVENTS),
            last_event_id: u64_at(b, T_LAST_ID),
            last_hash: hash_at(b, T_LAST_HASH),
        }
    }

    /// Whether the checksum of `trailer` (its bytes) matches `index` and itself.
    pub(crate) fn checks(trailer: &[u8], index: &[u8]) -> bool {
        crc32c::crc32c_append(crc32c::crc32c(index), &trailer[..T_CRC]) == u32_at(trailer, T_CRC)
    }
}

/// One block parsed out of a decompressed frame.
#[derive(Debug)]
pub(crate) struct Block {
    pub first_event_id: EventId,
    pub hash: ChainHash,
    pub events: Vec<Vec<u8>>,
}

/// Appends a block to a raw frame buffer.
pub(crate) fn encode_block<E: AsRef<[u8]>>(
    out: &mut Vec<u8>,
    first_event_id: EventId,
    count: u32,
    hash: &ChainHash,
    events: &[E],
) {
    out.extend_from_slice(&first_event_id.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(hash);
    for event in events {
        let event = event.as_ref();
        // The writer refused events of 4 GiB or more before getting here.
        let len = u32::try_from(event.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(event);
    }
}

/// Splits a decompressed frame into its blocks; `Err` carries the byte position within the
/// raw frame where parsing failed and why.
pub(crate) fn decode_blocks(raw: &[u8]) -> Result<Vec<Block>, (usize, &'static str)> {
    let mut blocks = Vec::new();
    let mut at = 0usize;
    while at < raw.len() {
        if raw.len() - at < BLOCK_HEADER_LEN {
            return Err((at, "block header cut short"));
        }
        let first_event_id = u64_at(raw, at);
        let count = u32_at(raw, at + 8);
        let hash = hash_at(raw, at + 12);
        at += BLOCK_HEADER_LEN;
        // Each event needs at least its length field; this bounds the allocation below.
        if (count as usize) > (raw.len() - at) / EVENT_LEN_LEN {
            return Err((at, "block claims more events than the frame holds"));
        }
        let mut events = Vec::with_capacity(count as usize);
        for _ in 0..count {
            if raw.len() - at < EVENT_LEN_LEN {
                return Err((at, "event length cut short"));
            }
            let len = u32_at(raw, at) as usize;
            at += EVENT_LEN_LEN;
            if raw.len() - at < len {
                return Err((at, "event cut short"));
            }
            events.push(raw[at..at + len].to_vec());
            at += len;
        }
        blocks.push(Block {
            first_event_id,
            hash,
            events,
        });
    }
    Ok(blocks)
}
