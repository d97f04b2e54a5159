//! How a read-only [`FileEventLog`](crate::FileEventLog) follows the writer of its directory.
//!
//! A read-only handle has no writer to publish new blocks to it, so before it answers a
//! question about the log's ends or starts reading (`next_event_id`, `newest_event_id`,
//! `oldest_event_id`, `iter_range`, `get`, `stats`, `verify`), it looks at the directory
//! itself:
//!
//! - When the directory holds the same units as before (the common case), it reads the
//!   active segment from the end it knows, publishing every whole, valid block that continues
//!   the ids. It stops at the first block that is not whole or does not check out: that is a
//!   block the writer is still writing (`pwrite` is not atomic for readers), not yet visible,
//!   never an error. It is read again from the same offset next time.
//! - When the units changed (the writer rotated, archived, or retention removed segments),
//!   it opens the directory afresh, as the read-only open does ([`recover_read_only`]: a
//!   unit listed but gone when read was archived or deleted meanwhile, and the directory is
//!   listed again).
//!
//! A read-only handle may thus see a block a moment before the writer acknowledges it (the
//! block is written, its sync not yet returned). It never sees a torn block.

use std::fs::File;
use std::sync::Arc;

use azoth_core::{AzothError, Result};

use crate::log::Shared;
use crate::recovery::{self, recover};
use crate::segment::{BlockReader, ScanError, Segment};
use crate::unit::Unit;

/// Brings the units of a read-only handle up to what the directory holds now.
///
/// # Errors
/// I/O errors listing the directory or reading the active segment; errors of the fresh open
/// when the units changed.
pub(crate) fn refresh(shared: &Shared) -> Result<()> {
    let _one_at_a_time = shared.follow.lock();
    // A writer in this process may still gather its newest blocks in memory.
    crate::log::write_out_writer_of(&shared.dir)?;
    let listed = recovery::list_units(&shared.dir, &shared.options)?;
    let active = {
        let units = shared.units.read();
        let same = units.list.len() == listed.len()
            && units
                .list
                .iter()
                .zip(&listed)
                .all(|(unit, &(first, archived))| {
                    unit.first_id() == first && matches!(unit, Unit::Archive(_)) == archived
                });
        match (same, units.list.last()) {
            (true, Some(Unit::Segment(seg))) => Some(Arc::clone(seg)),
            _ => None,
        }
    };
    match active {
        Some(seg) => catch_up(&seg),
        None => {
            let rec = recover_read_only(&shared.dir, &shared.options)?;
            *shared.units.write() = rec.units;
            *shared.gaps.lock() = crate::gaps::load(&shared.dir);
            Ok(())
        }
    }
}

/// How many times a read-only open is tried again when a unit's file went away while it read
/// the directory (the writer archived or deleted it meanwhile).
const RELOAD_RETRIES: u32 = 16;

/// Opens the units of `dir` read-only: at the read-only open, and afresh when the units
/// changed. The writer archives and deletes units beside it, so a file listed a moment ago
/// may be gone when it is opened (`NotFound`): then the directory is listed again. Files
/// only go away that way: what a retry cannot list again is no longer part of the log, and
/// what stays missing after the retries is reported.
///
/// # Errors
/// As [`recover`]; `NotFound` only when files kept vanishing through every retry.
pub(crate) fn recover_read_only(
    dir: &std::path::Path,
    options: &crate::FileLogOptions,
) -> Result<recovery::Recovered> {
    let mut attempts = 0;
    loop {
        match recover(dir, options, true) {
            Err(AzothError::Io(e))
                if e.kind() == std::io::ErrorKind::NotFound && attempts < RELOAD_RETRIES =>
            {
                attempts += 1;
                tracing::debug!(dir = %dir.display(), attempts, "a listed unit went away while opening; listing again");
            }
            other => return other,
        }
    }
}

/// Publishes the whole blocks the writer appended to the active segment `seg` beyond what it
/// published before.
fn catch_up(seg: &Segment) -> Result<()> {
    let file = File::open(&seg.path)?;
    let len = file.metadata()?.len();
    let start = seg.end_offset();
    if len <= start {
        return Ok(());
    }
    let mut reader = BlockReader::new(file, start, len);
    let mut end_id = seg.end_id();
    loop {
        let (offset, first, end, byte_len) = match reader.next_frame() {
            Ok(Some((offset, frame))) => (
                offset,
                frame.first_event_id,
                frame.end_event_id(),
                frame.byte_len() as u64,
            ),
            Ok(None) => return Ok(()),
            Err(ScanError::Io(e)) => return Err(e.into()),
            Err(ScanError::Decode { offset, error }) => {
                tracing::trace!(segment = %seg.path.display(), offset, ?error, "a block not yet whole");
                return Ok(());
            }
        };
        if first != end_id {
            tracing::debug!(segment = %seg.path.display(), offset, first, expected = end_id, "a block that does not continue the ids; not following past it");
            return Ok(());
        }
        seg.note_block(first, offset);
        seg.publish(offset + byte_len, end);
        end_id = end;
    }
}
