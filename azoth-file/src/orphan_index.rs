//! Index files whose segment is gone: what a crash between the steps that remove a sealed
//! segment leaves.
//!
//! Archival and `delete_range` remove a segment's file, then its index (and a writable open
//! finishing an archival cut short does the same, as does cutting the log back after a power
//! loss); a crash between the two leaves `<id>.idx` with no `<id>.seg`. No unit is made of an
//! index alone, so such a file is never read, but it would stay forever. A writable open
//! removes it once it is sure the index is a leftover of those steps:
//!
//! - no `<id>.seg` exists (not merely: none was listed),
//! - the index is whole and names the id its file name does (a damaged name is not a
//!   leftover), and
//! - the ids it describes are accounted for without it: held by a unit (an archive, or the
//!   active segment after the log was cut back and appended again), before the oldest unit
//!   (retention from the front), in a gap `GAPS` records (retention from the middle), or past
//!   the log's end (cut back).
//!
//! An index over ids the log cannot account for (a segment missing for no recorded reason) is
//! kept for whoever investigates, with a warning; `verify()` reports the missing segment. A
//! read-only open never lists indexes as units, so it ignores them all.

use std::path::Path;

use azoth_core::{EventId, deleted_ranges::ranges_cover};

use crate::file_name::{self, FileKind, SEGMENT_EXT};
use crate::fs::FileSystem;
use crate::index::SegmentIndex;
use crate::unit::Units;

/// Removes the index files in `dir` left by a removal of their segment cut short (see the
/// module docs); `units` are the log's units as the open found them, `gaps` the recorded gaps.
/// Best effort: a leftover index does no harm, so failing to remove one (or to list the
/// directory) is logged and does not fail the open. The removal is not made durable either:
/// if a crash undoes it, the next open removes the file again.
pub(crate) fn remove_orphan_indexes(
    fs: &dyn FileSystem,
    dir: &Path,
    units: &Units,
    gaps: &[(EventId, EventId)],
) {
    let names = match fs.list_dir(dir) {
        Ok(names) => names,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "listing the directory for leftover indexes failed");
            return;
        }
    };
    for name in names {
        let Some((FileKind::Index, id)) = name.to_str().and_then(file_name::parse) else {
            continue;
        };
        let path = dir.join(&name);
        match std::fs::symlink_metadata(file_name::unit_path(dir, id, SEGMENT_EXT)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // Its segment is there (or cannot be told): it is no leftover.
            _ => continue,
        }
        let index = std::fs::read(&path)
            .ok()
            .and_then(|bytes| SegmentIndex::decode(&bytes).ok());
        let Some(index) = index.filter(|i| i.first_event_id == id) else {
            tracing::warn!(index = %path.display(), "an index without its segment that does not describe the ids of its name; kept");
            continue;
        };
        if let Some((start, end)) = unaccounted(units, gaps, id, index.end_event_id) {
            tracing::warn!(
                index = %path.display(),
                missing_from = start,
                missing_to = end,
                "an index without its segment, whose ids the log misses; kept"
            );
            continue;
        }
        match fs.remove_file(&path) {
            Ok(()) => {
                tracing::info!(index = %path.display(), "removed the index of a segment already removed");
            }
            Err(e) => {
                tracing::warn!(index = %path.display(), error = %e, "removing the index of a segment already removed failed");
            }
        }
    }
}

/// The first range of ids in `[first, end)` that no unit holds, that lies between units and
/// that no recorded gap explains: ids missing from the log. `None` when there is none.
fn unaccounted(
    units: &Units,
    gaps: &[(EventId, EventId)],
    first: EventId,
    end: EventId,
) -> Option<(EventId, EventId)> {
    units.list.windows(2).find_map(|pair| {
        let (before, after) = (pair[0].end_id(), pair[1].first_id());
        let (start, stop) = (first.max(before), end.min(after));
        (start < stop && !ranges_cover(gaps, start, stop)).then_some((start, stop))
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::format::SegmentHeader;
    use crate::segment::Segment;
    use crate::unit::Unit;

    fn sealed(first: EventId, end: EventId) -> Unit {
        let header = SegmentHeader {
            first_event_id: first,
            prev_hash: azoth_core::GENESIS_HASH,
        };
        Unit::Segment(Arc::new(Segment::new(
            header,
            format!("{first}.seg").into(),
            64,
            end,
            true,
            Vec::new(),
        )))
    }

    #[test]
    fn only_ids_between_units_and_outside_every_gap_are_unaccounted() {
        let units = Units {
            list: vec![sealed(101, 201), sealed(301, 401), sealed(501, 550)],
        };
        let gaps = [(201, 301)];
        // Before the oldest unit, held by a unit, in a gap, past the end.
        for (first, end) in [(1, 101), (101, 201), (201, 301), (550, 600), (520, 560)] {
            assert_eq!(
                unaccounted(&units, &gaps, first, end),
                None,
                "{first}..{end}"
            );
        }
        assert_eq!(unaccounted(&units, &gaps, 401, 501), Some((401, 501)));
        assert_eq!(unaccounted(&units, &gaps, 450, 460), Some((450, 460)));
        assert_eq!(unaccounted(&units, &gaps, 1, 600), Some((401, 501)));
        assert_eq!(unaccounted(&units, &[], 201, 301), Some((201, 301)));
    }
}
