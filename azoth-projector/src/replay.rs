//! Replaying a stretch of the log through the projections into a view: on open, in
//! `rebuild_view`, in `verify_view`, and in a [`ReadOnlyDatabase`](crate::ReadOnlyDatabase).

use azoth_core::{AzothError, EventId, EventLog, Location, Result, StoreWrite, decode_event};

use crate::projection::Projector;
use crate::view::View;

/// Events replayed per memtable insert.
const REPLAY_CHUNK: usize = 1024;

/// Replays events `[from, to)` of `log` into `projector`'s view; returns how many.
///
/// The log must give exactly those ids, densely: a gap or an early end is `Corruption`, since
/// a view that skipped an event would silently differ from the log. `after_chunk` runs after
/// each chunk has been applied, e.g. to flush a view that grew too large.
pub(crate) fn replay(
    projector: &Projector<'_>,
    log: &dyn EventLog,
    from: EventId,
    to: EventId,
    mut after_chunk: impl FnMut(&View) -> Result<()>,
) -> Result<u64> {
    if from >= to {
        return Ok(0);
    }
    let view = projector.view;
    let mut expected = from;
    let mut writes: Vec<StoreWrite> = Vec::new();
    let mut in_chunk = 0usize;
    for item in log.iter_range(from, Some(to))? {
        let (id, bytes) = item?;
        if id != expected {
            return Err(AzothError::corruption(
                Location::default().at_event(expected),
                format!("replay expected event {expected} but the log gave {id}"),
            ));
        }
        let event = decode_event(&bytes)
            .map_err(|e| AzothError::corruption(Location::default().at_event(id), e.to_string()))?;
        projector.project(event, &mut writes)?;
        expected += 1;
        in_chunk += 1;
        if in_chunk == REPLAY_CHUNK {
            view.apply(&mut writes, id);
            in_chunk = 0;
            after_chunk(view)?;
        }
    }
    if expected != to {
        return Err(AzothError::corruption(
            Location::default().at_event(expected),
            format!("replay stopped at event {expected}, before {to}"),
        ));
    }
    if in_chunk > 0 {
        view.apply(&mut writes, to - 1);
    }
    Ok(to - from)
}
