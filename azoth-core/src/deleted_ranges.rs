//! The id ranges a log had already freed when a reader started, so that the reader can tell a
//! hole it may skip from events that retention deleted under it.
//!
//! `iter_range` skips ids deleted before it was called (everything before
//! `oldest_event_id()`, and holes a `delete_range` left in the middle), as a reader starting
//! then would. A reader that later finds ids missing that were there when it started must not
//! skip them silently: it reports [`AzothError::EventsDeleted`].

use crate::error::{AzothError, Result};
use crate::types::EventId;

/// The ranges `[from, to)` of ids a log no longer held when a reader started, in id order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeletedRanges {
    ranges: Vec<(EventId, EventId)>,
}

impl DeletedRanges {
    /// No ranges: every skip is an error.
    pub fn new() -> Self {
        Self::default()
    }

    /// The holes between stored units: `units` yields the `[first, end)` id range of every
    /// unit holding at least one event, in id order. Ids before the first unit (and all ids
    /// below `next_id` if there is none) count as deleted.
    pub fn between_units(
        units: impl IntoIterator<Item = (EventId, EventId)>,
        next_id: EventId,
    ) -> Self {
        let mut holes = Self::new();
        let mut covered = 0;
        for (first, end) in units {
            holes.push(covered, first);
            covered = covered.max(end);
        }
        holes.push(covered, next_id);
        holes
    }

    /// Records that `[from, to)` was already deleted; empty ranges are ignored. Ranges must
    /// come in id order.
    pub fn push(&mut self, from: EventId, to: EventId) {
        if from < to {
            self.ranges.push((from, to));
        }
    }

    /// Checks that a reader expecting `next` may go on at `found` (`found > next` when ids are
    /// missing): every id of `[next, found)` must lie in a recorded range.
    ///
    /// # Errors
    /// [`AzothError::EventsDeleted`] naming the first missing id not recorded here and `found`.
    pub fn check_skip(&self, next: EventId, found: EventId) -> Result<()> {
        let mut at = next;
        for &(from, to) in &self.ranges {
            if from <= at && at < to {
                at = to;
            }
        }
        if at >= found {
            Ok(())
        } else {
            Err(AzothError::EventsDeleted {
                from: at,
                to: found,
            })
        }
    }
}

/// True if `[start, end)` lies within `ranges` (in any order; ranges may abut): the check
/// both log backends make for the gaps `delete_range` recorded between their units.
pub fn ranges_cover(ranges: &[(EventId, EventId)], start: EventId, end: EventId) -> bool {
    let mut sorted = ranges.to_vec();
    sorted.sort_unstable();
    let mut at = start;
    for (from, to) in sorted {
        if from <= at && to > at {
            at = to;
        }
    }
    at >= end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_walks_abutting_ranges_in_any_order() {
        let ranges = [(40, 50), (20, 30), (10, 20)];
        assert!(ranges_cover(&ranges, 10, 30));
        assert!(ranges_cover(&ranges, 12, 18));
        assert!(!ranges_cover(&ranges, 25, 45));
        assert!(!ranges_cover(&ranges, 5, 15));
        assert!(ranges_cover(&ranges, 7, 7));
    }

    #[test]
    fn skips_inside_recorded_holes_pass_and_others_name_the_missing_ids() {
        // Units [3, 6) and [9, 12), next id 12: holes [0, 3) and [6, 9).
        let holes = DeletedRanges::between_units([(3, 6), (9, 12)], 12);
        assert!(holes.check_skip(0, 3).is_ok());
        assert!(holes.check_skip(6, 9).is_ok());
        assert!(holes.check_skip(5, 5).is_ok());
        match holes.check_skip(4, 9) {
            Err(AzothError::EventsDeleted { from: 4, to: 9 }) => {}
            other => panic!("skipping a stored unit gave {other:?}"),
        }
        match holes.check_skip(6, 12) {
            Err(AzothError::EventsDeleted { from: 9, to: 12 }) => {}
            other => panic!("skipping past a hole into a stored unit gave {other:?}"),
        }
    }

    #[test]
    fn a_log_without_units_has_deleted_everything_before_its_next_id() {
        let holes = DeletedRanges::between_units([], 7);
        assert!(holes.check_skip(1, 7).is_ok());
        assert!(holes.check_skip(1, 8).is_err());
    }
}
