//! The portable archive format: one sealed unit of a log, compressed, checksummed and
//! chained, written the same way by every log backend.
//!
//! An archive holds a unit's blocks verbatim (first event id, events) together with each
//! block's chain hash, so the hash chain ([`crate::chain`]) can be recomputed across units,
//! archives and backends. Blocks are grouped into zstd frames of about 256 KiB of raw bytes,
//! each with a crc32c; an index of the frames at the end of the file lets a reader find the
//! frame of any event by binary search without decompressing the others. `FORMAT.md` in this
//! crate gives the layout byte by byte.
//!
//! | file | what it holds |
//! | --- | --- |
//! | `archive/format.rs` | magic, version, offsets; header, index, trailer and block codecs |
//! | `archive/writer.rs` | [`ArchiveWriter`] |
//! | `archive/reader.rs` | [`ArchiveReader`]: `get`, `iter_from`, `verify` |

mod format;
mod reader;
mod writer;

pub use reader::ArchiveReader;
pub use writer::ArchiveWriter;

use crate::chain::ChainHash;
use crate::types::EventId;
use crate::verify::VerifyFailure;

/// The file name extension of archives, by convention: `<first event id, 20 digits>.azarc`.
pub const ARCHIVE_EXTENSION: &str = "azarc";

/// What an archive holds: its id range, its place in the hash chain and its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveSummary {
    /// The first event id (of the first block); 0 for an archive without blocks.
    pub first_event_id: EventId,
    /// The last event id; 0 for an archive without events.
    pub last_event_id: EventId,
    /// Events held.
    pub event_count: u64,
    /// The chain hash the archive's first block continues from.
    pub prev_hash: ChainHash,
    /// The chain hash of the archive's last block (`prev_hash` when it has no blocks): the
    /// hash the next unit continues from.
    pub last_hash: ChainHash,
    /// The file's size in bytes.
    pub bytes: u64,
}

/// What [`ArchiveReader::verify`] checked and the first failure it found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveVerify {
    /// Frames whose checksum, decompression and blocks checked out.
    pub frames_verified: u64,
    /// Blocks whose chain link checked out.
    pub blocks_verified: u64,
    /// Events in those blocks.
    pub events_verified: u64,
    /// The chain hash recomputed up to the last verified block (set when the archive checked
    /// out): the hash the next unit must continue from.
    pub last_hash: ChainHash,
    /// The first failure, in file order; `None` when everything checked out.
    pub first_failure: Option<VerifyFailure>,
}

impl ArchiveVerify {
    /// True when no failure was found.
    pub fn is_ok(&self) -> bool {
        self.first_failure.is_none()
    }
}

#[cfg(test)]
mod tests;
