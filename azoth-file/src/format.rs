//! The on-disk format of segments: the segment header and the block frame.
//!
//! `FORMAT.md` beside this crate documents every byte; the diagrams are repeated here and the
//! offset constants are built from them. All integers are little-endian.
//!
//! Segment header (64 bytes, at offset 0 of every segment):
//!
//! ```text
//! 0       8         12      16               24                  56         60           64
//! +-------+---------+-------+----------------+-------------------+----------+------------+
//! | magic | version | flags | first_event_id | prev_hash [32]    | reserved | header_crc |
//! | 8 B   | u32     | u32   | u64            | chain hash        | u32 = 0  | u32        |
//! +-------+---------+-------+----------------+-------------------+----------+------------+
//! ```
//!
//! `header_crc` = crc32c of bytes `[0, 60)`.
//!
//! ```text
//! ```
//!
//! Block frame (one per append call, or one per write-out of the appends a write buffer
//! gathered), following the header back to back:
//!
//! ```text
//! 0            4           8          12               20      24
//! +------------+-----------+----------+----------------+-------+----------------------+------------+
//! | header_crc | frame_len | body_crc | first_event_id | count | count × (len u32 | bytes) | hash [32] |
//! | u32        | u32       | u32      | u64            | u32   |                          |           |
//! +------------+-----------+----------+----------------+-------+--------------------------+-----------+
//! ```
//!
//! - `header_crc` = crc32c of bytes `[4, 20)`: it vouches for `frame_len` before the frame is
//!   trusted, so a flipped length bit reads as damage, not as a short tail.
//! - `body_crc` = crc32c of bytes `[20, frame_len)`: count, events and hash.
//! - `hash` = BLAKE3(prev_hash ‖ bytes `[12, frame_len − 32)`): the chain hash of
//!   `azoth_core::chain`, whose input layout the frame repeats so it is hashed in one pass.

use azoth_core::{ChainHash, EventId};

/// The first 8 bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"AZOTHSEG";
/// The segment format version this build writes and reads.
pub const SEGMENT_VERSION: u32 = 1;

/// Offset of the magic bytes in the segment header.
pub const HDR_MAGIC: usize = 0;
/// Offset of the format version.
pub const HDR_VERSION: usize = HDR_MAGIC + 8;
/// Offset of the flags (0 in version 1).
pub const HDR_FLAGS: usize = HDR_VERSION + 4;
/// Offset of the id of the segment's first event.
pub const HDR_FIRST_ID: usize = HDR_FLAGS + 4;
/// Offset of the chain hash the segment continues from.
pub const HDR_PREV_HASH: usize = HDR_FIRST_ID + 8;
/// Offset of the reserved word (0 in version 1).
pub const HDR_RESERVED: usize = HDR_PREV_HASH + 32;
/// Offset of the crc32c of bytes `[0, HDR_CRC)`.
pub const HDR_CRC: usize = HDR_RESERVED + 4;
/// Length of the segment header; the first block starts here.
pub const SEGMENT_HEADER_LEN: usize = HDR_CRC + 4;

/// Offset of the crc32c of bytes `[FRAME_LEN, FRAME_COUNT)`.
pub const FRAME_HEADER_CRC: usize = 0;
/// Offset of the frame's total length.
pub const FRAME_LEN: usize = FRAME_HEADER_CRC + 4;
/// Offset of the crc32c of bytes `[FRAME_COUNT, frame_len)`.
pub const FRAME_BODY_CRC: usize = FRAME_LEN + 4;
/// Offset of the id of the block's first event; the chain-hashed bytes start here.
pub const FRAME_FIRST_ID: usize = FRAME_BODY_CRC + 4;
/// Offset of the number of events in the block.
pub const FRAME_COUNT: usize = FRAME_FIRST_ID + 8;
/// Offset of the first event's length prefix.
pub const FRAME_EVENTS: usize = FRAME_COUNT + 4;
/// Length of the block's chain hash, at the end of the frame.
pub const FRAME_HASH_LEN: usize = 32;
/// The fixed bytes of a frame around its events.
pub const FRAME_OVERHEAD: usize = FRAME_EVENTS + FRAME_HASH_LEN;
/// Bytes added per event: its length prefix.
pub const EVENT_PREFIX_LEN: usize = 4;
/// The largest frame: its length must fit the u32 `frame_len`.
pub const MAX_FRAME_LEN: usize = u32::MAX as usize;

/// The decoded segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The id of the segment's first event.
    pub first_event_id: EventId,
    /// The chain hash of the block before the segment's first block.
    pub prev_hash: ChainHash,
}

/// Why a header or frame did not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes end before the structure does: a torn write at a tail, or truncation.
    Incomplete,
    /// The bytes are there but fail a check.
    Corrupt(String),
}

impl SegmentHeader {
    /// Encodes the header.
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN] {
        let mut b = [0u8; SEGMENT_HEADER_LEN];
        b[HDR_MAGIC..HDR_VERSION].copy_from_slice(&SEGMENT_MAGIC);
        b[HDR_VERSION..HDR_FLAGS].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
        b[HDR_FIRST_ID..HDR_PREV_HASH].copy_from_slice(&self.first_event_id.to_le_bytes());
        b[HDR_PREV_HASH..HDR_RESERVED].copy_from_slice(&self.prev_hash);
        let crc = crc32c::crc32c(&b[..HDR_CRC]);
        b[HDR_CRC..SEGMENT_HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes a header from the start of `b`.
    ///
    /// # Errors
    /// `Incomplete` if `b` is shorter than a header; `Corrupt` for a wrong magic, version or crc.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() < SEGMENT_HEADER_LEN {
            return Err(DecodeError::Incomplete);
        }
        if b[HDR_MAGIC..HDR_VERSION] != SEGMENT_MAGIC {
            return Err(DecodeError::Corrupt("bad segment magic".into()));
        }
        let crc = read_u32(b, HDR_CRC);
        if crc != crc32c::crc32c(&b[..HDR_CRC]) {
            return Err(DecodeError::Corrupt(
                "segment header checksum mismatch".into(),
            ));
        }
        let version = read_u32(b, HDR_VERSION);
        if version != SEGMENT_VERSION {
            return Err(DecodeError::Corrupt(format!(
                "unsupported segment version {version} (this build reads {SEGMENT_VERSION})"
            )));
        }
        let mut prev_hash = [0u8; 32];
        prev_hash.copy_from_slice(&b[HDR_PREV_HASH..HDR_RESERVED]);
        Ok(Self {
            first_event_id: read_u64(b, HDR_FIRST_ID),
            prev_hash,
        })
    }
}

/// Reads a little-endian u32 at `at`; the caller has checked the bounds.
pub(crate) fn read_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

/// Reads a little-endian u64 at `at`; the caller has checked the bounds.
pub(crate) fn read_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// The encoded length of a block of `events`, or `None` if it does not fit a frame.
pub fn frame_len<E: AsRef<[u8]>>(events: &[E]) -> Option<usize> {
    let mut len = FRAME_OVERHEAD;
    for e in events {
        len = len.checked_add(EVENT_PREFIX_LEN + e.as_ref().len())?;
    }
    (len <= MAX_FRAME_LEN).then_some(len)
}

/// Encodes the block of `events` starting at `first_event_id`, following the chain hash
/// `prev`, into `buf` (cleared first, reused across calls so the hot path does not allocate)
/// and returns the block's chain hash.
///
/// The caller has checked the block fits ([`frame_len`]) and is not empty.
pub fn encode_frame<E: AsRef<[u8]>>(
    buf: &mut Vec<u8>,
    prev: &ChainHash,
    first_event_id: EventId,
    events: &[E],
) -> ChainHash {
    buf.clear();
    buf.resize(FRAME_EVENTS, 0);
    for e in events {
        let e = e.as_ref();
        // Checked by the caller through `frame_len`.
        buf.extend_from_slice(&(e.len() as u32).to_le_bytes());
        buf.extend_from_slice(e);
    }
    // Checked by the caller through `frame_len`.
    finish_frame(buf, prev, first_event_id, events.len() as u32)
}

/// Encodes a block whose event area (each event as `len u32 | bytes`, back to back) is
/// already laid out in `area`, holding `count` events: as [`encode_frame`] of those events.
/// The caller has checked that `FRAME_OVERHEAD + area.len()` fits a frame and `count > 0`.
pub fn encode_frame_area(
    buf: &mut Vec<u8>,
    prev: &ChainHash,
    first_event_id: EventId,
    count: u32,
    area: &[u8],
) -> ChainHash {
    buf.clear();
    buf.reserve(FRAME_OVERHEAD + area.len());
    buf.resize(FRAME_EVENTS, 0);
    buf.extend_from_slice(area);
    finish_frame(buf, prev, first_event_id, count)
}

/// Fills in the header of the frame in `buf` (header placeholder and event area written)
/// and appends its chain hash.
fn finish_frame(
    buf: &mut Vec<u8>,
    prev: &ChainHash,
    first_event_id: EventId,
    count: u32,
) -> ChainHash {
    let total = buf.len() + FRAME_HASH_LEN;
    buf[FRAME_LEN..FRAME_BODY_CRC].copy_from_slice(&(total as u32).to_le_bytes());
    buf[FRAME_FIRST_ID..FRAME_COUNT].copy_from_slice(&first_event_id.to_le_bytes());
    buf[FRAME_COUNT..FRAME_EVENTS].copy_from_slice(&count.to_le_bytes());
    let hash = chain_hash(prev, &buf[FRAME_FIRST_ID..]);
    buf.extend_from_slice(&hash);
    let body_crc = crc32c::crc32c(&buf[FRAME_COUNT..]);
    buf[FRAME_BODY_CRC..FRAME_FIRST_ID].copy_from_slice(&body_crc.to_le_bytes());
    let header_crc = crc32c::crc32c(&buf[FRAME_LEN..FRAME_COUNT]);
    buf[FRAME_HEADER_CRC..FRAME_LEN].copy_from_slice(&header_crc.to_le_bytes());
    hash
}

/// BLAKE3(prev ‖ hashed): equal to `azoth_core::block_hash` when `hashed` is a frame's bytes
/// `[FRAME_FIRST_ID, frame_len − 32)`.
pub fn chain_hash(prev: &ChainHash, hashed: &[u8]) -> ChainHash {
    let mut h = blake3::Hasher::new();
    h.update(prev);
    h.update(hashed);
    *h.finalize().as_bytes()
}

/// A decoded, checksum-verified block frame borrowing its bytes.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// The whole frame.
    pub bytes: &'a [u8],
    /// The id of the block's first event.
    pub first_event_id: EventId,
    /// How many events the block holds (at least 1).
    pub count: u32,
}

impl<'a> Frame<'a> {
    /// The frame's length in bytes.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// The id after the block's last event.
    pub fn end_event_id(&self) -> EventId {
        // Saturating: a damaged block may claim ids up to u64::MAX, and a reader compares
        // this end before it finds the block's first id wrong.
        self.first_event_id.saturating_add(u64::from(self.count))
    }

    /// The chain hash stored in the frame.
    pub fn hash(&self) -> ChainHash {
        let mut h = [0u8; 32];
        h.copy_from_slice(&self.bytes[self.bytes.len() - FRAME_HASH_LEN..]);
        h
    }

    /// The bytes the chain hash covers after `prev`.
    pub fn hashed_bytes(&self) -> &'a [u8] {
        &self.bytes[FRAME_FIRST_ID..self.bytes.len() - FRAME_HASH_LEN]
    }

    /// The events of the block, in order (validated by [`decode_frame`]).
    pub fn events(&self) -> FrameEvents<'a> {
        FrameEvents {
            rest: &self.bytes[FRAME_EVENTS..self.bytes.len() - FRAME_HASH_LEN],
        }
    }
}

/// The events of a frame; see [`Frame::events`].
#[derive(Debug, Clone)]
pub struct FrameEvents<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for FrameEvents<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.len() < EVENT_PREFIX_LEN {
            return None;
        }
        let len = read_u32(self.rest, 0) as usize;
        let end = EVENT_PREFIX_LEN.checked_add(len)?;
        let event = self.rest.get(EVENT_PREFIX_LEN..end)?;
        self.rest = &self.rest[end..];
        Some(event)
    }
}

/// Reads the frame length from a frame header, checking the header crc; needs
/// [`FRAME_EVENTS`] bytes.
///
/// # Errors
/// `Incomplete` if `b` is shorter than a frame header; `Corrupt` if the header fails its crc
/// or names an impossible length.
pub fn frame_header_len(b: &[u8]) -> Result<usize, DecodeError> {
    if b.len() < FRAME_EVENTS {
        return Err(DecodeError::Incomplete);
    }
    let header_crc = read_u32(b, FRAME_HEADER_CRC);
    if header_crc != crc32c::crc32c(&b[FRAME_LEN..FRAME_COUNT]) {
        return Err(DecodeError::Corrupt(
            "block header checksum mismatch".into(),
        ));
    }
    let len = read_u32(b, FRAME_LEN) as usize;
    if len < FRAME_OVERHEAD + EVENT_PREFIX_LEN {
        return Err(DecodeError::Corrupt(format!(
            "block length {len} is shorter than a block"
        )));
    }
    Ok(len)
}

/// Decodes and checks the frame at the start of `b` (crc checks only; the chain hash is checked
/// by `verify`).
///
/// # Errors
/// `Incomplete` if `b` ends before the frame does (every strict prefix of a valid frame);
/// `Corrupt` for any failed check.
pub fn decode_frame(b: &[u8]) -> Result<Frame<'_>, DecodeError> {
    let len = frame_header_len(b)?;
    if b.len() < len {
        return Err(DecodeError::Incomplete);
    }
    let bytes = &b[..len];
    let body_crc = read_u32(bytes, FRAME_BODY_CRC);
    if body_crc != crc32c::crc32c(&bytes[FRAME_COUNT..]) {
        return Err(DecodeError::Corrupt("block checksum mismatch".into()));
    }
    let count = read_u32(bytes, FRAME_COUNT);
    if count == 0 {
        return Err(DecodeError::Corrupt("block holds no events".into()));
    }
    // The length prefixes must tile the event area exactly.
    let mut rest = &bytes[FRAME_EVENTS..len - FRAME_HASH_LEN];
    for _ in 0..count {
        if rest.len() < EVENT_PREFIX_LEN {
            return Err(DecodeError::Corrupt(
                "event lengths overrun the block".into(),
            ));
        }
        let elen = read_u32(rest, 0) as usize;
        let end = EVENT_PREFIX_LEN + elen;
        if rest.len() < end {
            return Err(DecodeError::Corrupt(
                "event lengths overrun the block".into(),
            ));
        }
        rest = &rest[end..];
    }
    if !rest.is_empty() {
        return Err(DecodeError::Corrupt(
            "event lengths do not fill the block".into(),
        ));
    }
    Ok(Frame {
        bytes,
        first_event_id: read_u64(bytes, FRAME_FIRST_ID),
        count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use azoth_core::{GENESIS_HASH, block_hash};

    fn sample() -> (Vec<u8>, Vec<Vec<u8>>) {
        let events = vec![b"alpha".to_vec(), Vec::new(), vec![7u8; 40]];
        let mut buf = Vec::new();
        encode_frame(&mut buf, &[3u8; 32], 42, &events);
        (buf, events)
    }

    #[test]
    fn round_trip_and_chain_hash_matches_core() {
        let (buf, events) = sample();
        assert_eq!(Some(buf.len()), frame_len(&events));
        let f = decode_frame(&buf).unwrap();
        assert_eq!(f.first_event_id, 42);
        assert_eq!(f.count, 3);
        assert_eq!(f.end_event_id(), 45);
        let got: Vec<Vec<u8>> = f.events().map(<[u8]>::to_vec).collect();
        assert_eq!(got, events);
        assert_eq!(f.hash(), block_hash(&[3u8; 32], 42, &events));
        assert_eq!(chain_hash(&[3u8; 32], f.hashed_bytes()), f.hash());
    }

    #[test]
    fn trailing_bytes_are_not_part_of_the_frame() {
        let (mut buf, _) = sample();
        let len = buf.len();
        buf.extend_from_slice(&[0xAB; 10]);
        assert_eq!(decode_frame(&buf).unwrap().byte_len(), len);
    }

    #[test]
    fn every_strict_prefix_is_incomplete() {
        let (buf, _) = sample();
        for cut in 0..buf.len() {
            assert_eq!(
                decode_frame(&buf[..cut]).unwrap_err(),
                DecodeError::Incomplete,
                "prefix of {cut} bytes"
            );
        }
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let (buf, _) = sample();
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut b = buf.clone();
                b[byte] ^= 1 << bit;
                assert!(
                    matches!(decode_frame(&b), Err(DecodeError::Corrupt(_))),
                    "flip of bit {bit} in byte {byte} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn header_round_trip_prefixes_and_flips() {
        let h = SegmentHeader {
            first_event_id: 1,
            prev_hash: GENESIS_HASH,
        };
        let b = h.encode();
        assert_eq!(SegmentHeader::decode(&b).unwrap(), h);
        for cut in 0..b.len() {
            assert_eq!(
                SegmentHeader::decode(&b[..cut]).unwrap_err(),
                DecodeError::Incomplete
            );
        }
        for byte in 0..SEGMENT_HEADER_LEN {
            for bit in 0..8 {
                let mut c = b;
                c[byte] ^= 1 << bit;
                assert!(SegmentHeader::decode(&c).is_err(), "byte {byte} bit {bit}");
            }
        }
    }
}

#[cfg(test)]
mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // The decoders take any bytes without panicking, and accept nothing that is not a
        // well-formed frame (a short in-process stand-in for the cargo-fuzz target).
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = SegmentHeader::decode(&bytes);
            if let Ok(f) = decode_frame(&bytes) {
                prop_assert_eq!(f.events().count(), f.count as usize);
            }
        }

        #[test]
        fn round_trip(events in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..64), 1..8), first in 1u64..u64::MAX / 2) {
            let mut buf = Vec::new();
            let hash = encode_frame(&mut buf, &[9u8; 32], first, &events);
            let f = decode_frame(&buf).unwrap();
            prop_assert_eq!(f.first_event_id, first);
            prop_assert_eq!(f.hash(), hash);
            let got: Vec<Vec<u8>> = f.events().map(<[u8]>::to_vec).collect();
            prop_assert_eq!(got, events);
        }
    }
}
