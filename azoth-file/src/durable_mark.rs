//! The durable mark: where the segments begin that may not be on disk whole.
//!
//! Under `SyncMode::Never` sealing syncs nothing (an fsync there can force a whole segment to
//! disk), so after a power loss any segment sealed since the last `sync()` may have lost
//! pages, or its file may be missing. The `DURABLE` file records the first id of the oldest
//! such segment: every segment before it was made durable, by a sync at sealing or by a
//! `sync()`. Open scans the segments from the mark on like the active segment, and cuts the
//! log at the first block that is not whole, so that the log is again a prefix of what was
//! appended and `verify()` passes. Under `IntervalMs` sealing syncs, but the active
//! segment's blocks are not synced one by one, so the mark covers the active segment and
//! follows it at each rotation: there, a damaged block before whole ones is a power loss's,
//! not damage. Without a mark (a log last opened under `Always`) every sealed segment is
//! durable and every block of the active one was synced before the next was written.
//!
//! ```text
//! 0        8         12               20           24
//! +--------+---------+----------------+------------+
//! | magic  | version | first_event_id | crc32c     |
//! | 8 B    | u32 = 1 | u64            | of [0, 20) |
//! +--------+---------+----------------+------------+
//! ```

use std::path::Path;

use azoth_core::{EventId, Result};

use crate::fs::FileSystem;
use crate::log::write_atomically;

/// The file name of the mark in the log directory.
pub const DURABLE_FILE: &str = "DURABLE";

const MAGIC: [u8; 8] = *b"AZOTHDUR";
const VERSION: u32 = 1;
const LEN: usize = 24;

/// What the directory says about durability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// No mark: every sealed segment is durable.
    None,
    /// Segments from this id on may not be durable.
    From(EventId),
}

impl Mark {
    /// True when the segment starting at `first_id` may not be durable.
    pub fn covers(self, first_id: EventId) -> bool {
        match self {
            Mark::None => false,
            Mark::From(id) => first_id >= id,
        }
    }
}

/// Reads the mark of the log in `dir`. A mark that cannot be read (damaged, or of an unknown
/// version) is taken as covering every segment: a longer open, never a missed check.
///
/// # Errors
/// I/O errors other than a missing file.
pub fn load(dir: &Path) -> Result<Mark> {
    let bytes = match std::fs::read(dir.join(DURABLE_FILE)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Mark::None),
        Err(e) => return Err(e.into()),
    };
    Ok(decode(&bytes).map_or_else(
        || {
            tracing::warn!(dir = %dir.display(), "the durable mark is unreadable; checking every sealed segment");
            Mark::From(0)
        },
        Mark::From,
    ))
}

fn decode(bytes: &[u8]) -> Option<EventId> {
    if bytes.len() != LEN || bytes[..8] != MAGIC {
        return None;
    }
    let word = |at: usize| {
        bytes
            .get(at..at + 4)?
            .try_into()
            .ok()
            .map(u32::from_le_bytes)
    };
    let crc = word(20)?;
    if word(8)? != VERSION || crc32c::crc32c(&bytes[..20]) != crc {
        return None;
    }
    Some(u64::from_le_bytes(bytes[12..20].try_into().ok()?))
}

fn encode(first_id: EventId) -> [u8; LEN] {
    let mut bytes = [0u8; LEN];
    bytes[..8].copy_from_slice(&MAGIC);
    bytes[8..12].copy_from_slice(&VERSION.to_le_bytes());
    bytes[12..20].copy_from_slice(&first_id.to_le_bytes());
    let crc = crc32c::crc32c(&bytes[..20]);
    bytes[20..].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// Records durably that the segments before `first_id` are durable.
///
/// # Errors
/// I/O errors.
pub fn save(fs: &dyn FileSystem, dir: &Path, first_id: EventId) -> Result<()> {
    write_atomically(fs, dir, &dir.join(DURABLE_FILE), &encode(first_id), true)
}

/// Removes the mark (every segment is durable), durably.
///
/// # Errors
/// I/O errors.
pub fn clear(fs: &dyn FileSystem, dir: &Path) -> Result<()> {
    let path = dir.join(DURABLE_FILE);
    if path.exists() {
        fs.remove_file(&path)?;
        fs.sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_reads_back_and_any_changed_byte_is_refused() {
        let bytes = encode(4711);
        assert_eq!(decode(&bytes), Some(4711));
        for i in 0..LEN {
            let mut changed = bytes;
            changed[i] ^= 1;
            assert_eq!(decode(&changed), None, "byte {i}");
        }
        assert_eq!(decode(&bytes[..LEN - 1]), None);
        assert!(Mark::From(10).covers(10));
        assert!(!Mark::From(10).covers(9));
        assert!(!Mark::None.covers(1));
    }
}
