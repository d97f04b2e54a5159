//! The units of the log in order: sealed segments, archives, and the active segment last.

use std::path::PathBuf;
use std::sync::Arc;

use azoth_core::{ArchiveReader, EventId, Result};

use crate::segment::Segment;

/// A sealed segment replaced by an archive in the portable format of `azoth-core`.
#[derive(Debug)]
pub struct ArchiveUnit {
    /// The id of the archive's first event (also its file name).
    pub first_id: EventId,
    /// The id after its last event.
    pub end_id: EventId,
    /// The archive file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// The open reader; `None` when opening failed (the archive is damaged), in which case
    /// every read opens it again to report the damage.
    pub reader: Option<Arc<ArchiveReader>>,
}

impl ArchiveUnit {
    /// The reader, or the error that opening the archive gives.
    ///
    /// # Errors
    /// `Corruption` or I/O errors from opening the archive.
    pub fn reader(&self) -> Result<Arc<ArchiveReader>> {
        match &self.reader {
            Some(r) => Ok(Arc::clone(r)),
            None => ArchiveReader::open(&self.path).map(Arc::new),
        }
    }
}

/// One unit of the log.
#[derive(Debug, Clone)]
pub enum Unit {
    /// A segment file (sealed, or the active one).
    Segment(Arc<Segment>),
    /// An archived segment.
    Archive(Arc<ArchiveUnit>),
}

impl Unit {
    /// The id of the unit's first event.
    pub fn first_id(&self) -> EventId {
        match self {
            Unit::Segment(s) => s.first_id,
            Unit::Archive(a) => a.first_id,
        }
    }

    /// The id after the unit's last published event.
    pub fn end_id(&self) -> EventId {
        match self {
            Unit::Segment(s) => s.end_id(),
            Unit::Archive(a) => a.end_id,
        }
    }

    /// The bytes the unit takes on disk (published bytes for the active segment).
    pub fn bytes(&self) -> u64 {
        match self {
            Unit::Segment(s) => s.end_offset(),
            Unit::Archive(a) => a.bytes,
        }
    }
}

/// The units in id order; the last is the active segment.
#[derive(Debug, Default)]
pub struct Units {
    /// Sealed and archived units, then the active segment.
    pub list: Vec<Unit>,
}

impl Units {
    /// The unit holding `id`, or else the first unit after it (ids before it were deleted);
    /// `None` when no unit holds `id` or anything after it.
    pub fn locate(&self, id: EventId) -> Option<&Unit> {
        let i = self.list.partition_point(|u| u.first_id() <= id);
        if i > 0 && id < self.list[i - 1].end_id() {
            return Some(&self.list[i - 1]);
        }
        self.list[i..].iter().find(|u| u.end_id() > u.first_id())
    }

    /// The oldest stored id: the first id of the first unit holding events, or the next id.
    pub fn oldest_id(&self) -> EventId {
        self.list
            .iter()
            .find(|u| u.end_id() > u.first_id())
            .map_or_else(|| self.next_id(), Unit::first_id)
    }

    /// The id the next append gets.
    pub fn next_id(&self) -> EventId {
        self.list.last().map_or(1, Unit::end_id)
    }
}

impl crate::FileEventLog {
    /// The log's units in id order, for lifecycle jobs: sealed segments and archives, then
    /// the active segment last.
    pub fn units(&self) -> Vec<azoth_core::LogUnit> {
        use azoth_core::{LogUnit, UnitState};
        let units = self.shared.units.read();
        let active = units.list.len().saturating_sub(1);
        units
            .list
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let (state, path) = match u {
                    Unit::Segment(s) if i == active => (UnitState::Active, s.path.clone()),
                    Unit::Segment(s) => (UnitState::Sealed, s.path.clone()),
                    Unit::Archive(a) => (UnitState::Archived, a.path.clone()),
                };
                LogUnit {
                    first_event_id: u.first_id(),
                    end_event_id: u.end_id(),
                    bytes: u.bytes(),
                    state,
                    path,
                }
            })
            .collect()
    }
}
