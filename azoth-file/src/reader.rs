//! The cross-segment streaming iterator behind `iter_range` and `get`.
//!
//! It holds one open segment and one buffer at a time (memory bounded by the read chunk and
//! the largest block), reads with `pread` on its own file handle, and looks up the next unit
//! under the units lock only when it moves between units, so it never holds the writer up.

use std::collections::VecDeque;
use std::fs::File;
use std::sync::Arc;

use azoth_core::{AzothError, DeletedRanges, EventId, Location, Result};

use crate::log::Shared;
use crate::segment::{BlockReader, Segment};
use crate::unit::{ArchiveUnit, Unit};

/// How many times a reader looks again for a unit whose file went away as it opened it.
const MOVED_RETRIES: u32 = 16;
/// The events of an archive, from the core archive reader.
type ArchiveEvents = Box<dyn Iterator<Item = Result<(EventId, Vec<u8>)>> + Send>;

/// Where the iterator is reading.
enum Cursor {
    Segment {
        seg: Arc<Segment>,
        reader: BlockReader,
    },
    Archive {
        unit: Arc<ArchiveUnit>,
        events: ArchiveEvents,
    },
}

impl std::fmt::Debug for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cursor::Segment { seg, reader } => f
                .debug_struct("Segment")
                .field("path", &seg.path)
                .field("offset", &reader.offset())
                .finish(),
            Cursor::Archive { unit, .. } => {
                f.debug_struct("Archive").field("path", &unit.path).finish()
            }
        }
    }
}

/// Streams `(id, bytes)` from `start` to `end` (exclusive) across units.
#[derive(Debug)]
pub struct FileLogIter {
    shared: Arc<Shared>,
    next: EventId,
    end: EventId,
    cur: Option<Cursor>,
    pending: VecDeque<(EventId, Vec<u8>)>,
    done: bool,
    /// The ids already deleted when the iterator was made: the only ones it may skip.
    deleted: DeletedRanges,
}

impl FileLogIter {
    /// An iterator over `[start, end)`, `end = None` meaning the newest event published now.
    pub(crate) fn new(shared: Arc<Shared>, start: EventId, end: Option<EventId>) -> Self {
        let units = shared.units.read();
        let published = units.next_id();
        let end = end.map_or(published, |e| e.min(published));
        let deleted = DeletedRanges::between_units(
            units
                .list
                .iter()
                .filter(|u| u.end_id() > u.first_id())
                .map(|u| (u.first_id(), u.end_id())),
            published,
        );
        drop(units);
        Self {
            shared,
            next: start,
            end,
            cur: None,
            pending: VecDeque::new(),
            done: false,
            deleted,
        }
    }

    fn fail(&mut self, e: AzothError) -> Option<Result<(EventId, Vec<u8>)>> {
        self.done = true;
        self.pending.clear();
        Some(Err(e))
    }

    /// Opens the unit holding `self.next` (or the first after it); false when none is left.
    fn open_next_unit(&mut self) -> Result<bool> {
        let mut attempts = 0;
        loop {
            match self.try_open_next_unit() {
                // Archived or deleted between the lookup and the open: look again. Archival
                // and retention may move several units in a row while a reader looks, so a
                // few times; a file that stays missing is an error.
                Err(AzothError::Io(e))
                    if e.kind() == std::io::ErrorKind::NotFound && attempts < MOVED_RETRIES =>
                {
                    attempts += 1;
                    // A read-only handle learns of the change only by looking again.
                    if self.shared.read_only {
                        crate::follow::refresh(&self.shared)?;
                    }
                }
                other => return other,
            }
        }
    }

    fn try_open_next_unit(&mut self) -> Result<bool> {
        let unit = {
            let units = self.shared.units.read();
            match units.locate(self.next) {
                Some(u) => u.clone(),
                None => {
                    self.deleted.check_skip(self.next, self.end)?;
                    return Ok(false);
                }
            }
        };
        // Retention may have freed units since the iterator was made: never skip them.
        self.deleted
            .check_skip(self.next, unit.first_id().min(self.end))?;
        if unit.first_id() >= self.end {
            return Ok(false);
        }
        self.next = self.next.max(unit.first_id());
        match unit {
            Unit::Segment(seg) => {
                let limit = self.shared.read_limit(&seg)?;
                let file = File::open(&seg.path)?;
                let reader = BlockReader::new(file, seg.seek(self.next), limit);
                self.cur = Some(Cursor::Segment { seg, reader });
            }
            Unit::Archive(unit) => {
                let events = Box::new(unit.reader()?.iter_from(self.next));
                self.cur = Some(Cursor::Archive { unit, events });
            }
        }
        Ok(true)
    }

    /// Reads the next event of the current archive into `pending`; false at its end.
    fn read_archive(&mut self) -> Result<bool> {
        let Some(Cursor::Archive { unit, events }) = &mut self.cur else {
            return Ok(false);
        };
        let location = || Location::file(&unit.path).at_event(self.next);
        match events.next() {
            Some(Ok((id, bytes))) => {
                if id != self.next {
                    return Err(AzothError::corruption(
                        location(),
                        format!("expected event {}, the archive gave {id}", self.next),
                    ));
                }
                if id < self.end {
                    self.pending.push_back((id, bytes));
                }
                self.next += 1;
                Ok(true)
            }
            Some(Err(e)) => Err(e),
            None if self.next < unit.end_id.min(self.end) => Err(AzothError::corruption(
                location(),
                format!(
                    "archive ends before event {} (it should hold events up to {})",
                    self.next,
                    unit.end_id - 1
                ),
            )),
            None => Ok(false),
        }
    }

    /// Reads the next block of the current unit into `pending`; false at the unit's end.
    fn read_block(&mut self) -> Result<bool> {
        let cur = match &mut self.cur {
            None => return Ok(false),
            Some(Cursor::Archive { .. }) => return self.read_archive(),
            Some(Cursor::Segment { seg, reader }) => (seg, reader),
        };
        let (seg, reader) = cur;
        loop {
            let frame = match reader.next_frame() {
                Ok(Some((offset, frame))) => (offset, frame),
                Ok(None) => {
                    // The writer may have published more since this cursor started.
                    if !seg.is_sealed() && seg.end_offset() > reader.limit() {
                        let limit = self.shared.read_limit(seg)?;
                        if limit > reader.limit() {
                            reader.set_limit(limit);
                            continue;
                        }
                    }
                    if seg.is_sealed() && self.next < seg.end_id().min(self.end) {
                        return Err(AzothError::corruption(
                            Location::file(&seg.path)
                                .at_offset(reader.offset())
                                .at_event(self.next),
                            format!(
                                "segment ends before event {} (it should hold events up to {})",
                                self.next,
                                seg.end_id() - 1
                            ),
                        ));
                    }
                    return Ok(false);
                }
                Err(e) => return Err(e.into_azoth(&seg.path, self.next)),
            };
            let (offset, frame) = frame;
            if frame.end_event_id() <= self.next {
                continue;
            }
            if frame.first_event_id > self.next {
                return Err(AzothError::corruption(
                    Location::file(&seg.path)
                        .at_offset(offset)
                        .at_event(self.next),
                    format!(
                        "expected event {}, found a block starting at {}",
                        self.next, frame.first_event_id
                    ),
                ));
            }
            for (id, event) in (frame.first_event_id..).zip(frame.events()) {
                if id >= self.next && id < self.end {
                    self.pending.push_back((id, event.to_vec()));
                }
            }
            self.next = frame.end_event_id();
            return Ok(true);
        }
    }
}

impl Iterator for FileLogIter {
    type Item = Result<(EventId, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(Ok(item));
            }
            if self.done || self.next >= self.end {
                return None;
            }
            if self.cur.is_none() {
                match self.open_next_unit() {
                    Ok(true) => {}
                    Ok(false) => {
                        self.done = true;
                        return None;
                    }
                    Err(e) => return self.fail(e),
                }
            }
            match self.read_block() {
                Ok(true) => {}
                Ok(false) => self.cur = None,
                Err(e) => return self.fail(e),
            }
        }
    }
}
