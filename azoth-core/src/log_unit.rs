//! [`LogUnit`]: one unit of a log backend (a segment, a logical segment, or an archive) as
//! the lifecycle jobs see it: which events it holds, how big it is, and what state it is in.

use std::path::PathBuf;

use crate::types::EventId;

/// The state of a [`LogUnit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnitState {
    /// The unit appends go to. Never archived or deleted.
    Active,
    /// Sealed: it never changes again, and may be archived or deleted.
    Sealed,
    /// Sealed and moved into the portable archive format; still readable.
    Archived,
}

/// One unit of a log: the events `[first_event_id, end_event_id)`, its size and state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogUnit {
    /// The id of its first event.
    pub first_event_id: EventId,
    /// The id after its last event (equal to `first_event_id` when it holds none).
    pub end_event_id: EventId,
    /// Its size in bytes: the file for segments and archives; for a logical segment inside a
    /// database (LMDB), the bytes of its event records.
    pub bytes: u64,
    /// Active, sealed or archived.
    pub state: UnitState,
    /// Where it lives: its file, or for a logical segment the name the backend gives it.
    pub path: PathBuf,
}

impl LogUnit {
    /// How many events it holds.
    pub fn event_count(&self) -> u64 {
        self.end_event_id.saturating_sub(self.first_event_id)
    }

    /// The id of its last event, or `None` when it holds none.
    pub fn last_event_id(&self) -> Option<EventId> {
        (self.end_event_id > self.first_event_id).then(|| self.end_event_id - 1)
    }
}
