//! [`MemoryEventLog`]: the [`EventLog`] in memory, the reference behaviour and the test oracle.

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::deleted_ranges::DeletedRanges;
use crate::error::{AzothError, Result};
use crate::event_log::{EventLog, EventLogIterator, EventLogStats};
use crate::types::EventId;

/// An [`EventLog`] held in memory: nothing survives the process.
///
/// It implements the trait's contract exactly, units included: the log is divided into
/// logical units, [`rotate`](EventLog::rotate) seals the active one and returns a path
/// `memory://unit/<first event id, 20 digits>`, and [`delete_range`](EventLog::delete_range)
/// frees whole sealed units. Cloning gives another handle to the same log.
///
/// ```
/// use azoth_core::{EventLog, MemoryEventLog};
///
/// let log = MemoryEventLog::new();
/// log.append_with_id(1, b"first")?;
/// log.append_batch_with_ids(2, &[b"second".to_vec(), b"third".to_vec()])?;
/// assert_eq!(log.next_event_id()?, 4);
/// assert_eq!(log.get(2)?.as_deref(), Some(&b"second"[..]));
///
/// let sealed = log.rotate()?;
/// assert_eq!(sealed.to_str(), Some("memory://unit/00000000000000000001"));
/// assert_eq!(log.delete_range(0, 3)?, 3);
/// assert_eq!(log.oldest_event_id()?, 4);
/// assert_eq!(log.iter_range(1, None)?.count(), 0);
/// # Ok::<(), azoth_core::AzothError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryEventLog {
    inner: Arc<RwLock<Inner>>,
}

/// One logical unit: the events from `first_id` on.
#[derive(Debug)]
struct Unit {
    first_id: EventId,
    events: Vec<Arc<[u8]>>,
    bytes: u64,
}

impl Unit {
    fn new(first_id: EventId) -> Self {
        Self {
            first_id,
            events: Vec::new(),
            bytes: 0,
        }
    }

    /// One past the last id of this unit.
    fn end_id(&self) -> EventId {
        self.first_id + self.events.len() as u64
    }

    fn get(&self, id: EventId) -> Option<&Arc<[u8]>> {
        let index = id.checked_sub(self.first_id)?;
        self.events.get(usize::try_from(index).ok()?)
    }
}

#[derive(Debug)]
struct Inner {
    /// The sealed units in id order, possibly with gaps where units were deleted.
    sealed: Vec<Unit>,
    /// The unit taking appends; its `first_id` follows the last sealed unit.
    active: Unit,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            sealed: Vec::new(),
            active: Unit::new(1),
        }
    }
}

impl Inner {
    fn next_id(&self) -> EventId {
        self.active.end_id()
    }

    fn units(&self) -> impl Iterator<Item = &Unit> {
        self.sealed.iter().chain(std::iter::once(&self.active))
    }

    fn oldest_id(&self) -> EventId {
        self.units()
            .find(|u| !u.events.is_empty())
            .map_or_else(|| self.next_id(), |u| u.first_id)
    }

    /// The unit holding `id`, found by binary search over the sealed units.
    fn unit_of(&self, id: EventId) -> Option<&Unit> {
        if id >= self.active.first_id {
            return Some(&self.active);
        }
        let index = self.sealed.partition_point(|u| u.end_id() <= id);
        self.sealed.get(index).filter(|u| u.first_id <= id)
    }

    fn get(&self, id: EventId) -> Option<Arc<[u8]>> {
        self.unit_of(id)?.get(id).cloned()
    }

    /// The first stored id at or after `id`, if any is below `end`.
    fn first_stored_from(&self, id: EventId) -> Option<EventId> {
        let index = self.sealed.partition_point(|u| u.end_id() <= id);
        self.sealed[index..]
            .iter()
            .chain(std::iter::once(&self.active))
            .find(|u| u.end_id() > id && !u.events.is_empty())
            .map(|u| u.first_id.max(id))
    }

    fn check_next(&self, got: EventId) -> Result<()> {
        let expected = self.next_id();
        if got == expected {
            Ok(())
        } else {
            Err(AzothError::InvalidEventId { expected, got })
        }
    }
}

/// The path `rotate` reports for the unit starting at `first_id`.
fn unit_path(first_id: EventId) -> PathBuf {
    PathBuf::from(format!("memory://unit/{first_id:020}"))
}

impl MemoryEventLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of logical units holding events (sealed ones and a non-empty active one).
    pub fn unit_count(&self) -> usize {
        self.inner
            .read()
            .units()
            .filter(|u| !u.events.is_empty())
            .count()
    }
}

impl EventLog for MemoryEventLog {
    fn append_with_id(&self, event_id: EventId, event_bytes: &[u8]) -> Result<()> {
        let mut inner = self.inner.write();
        inner.check_next(event_id)?;
        inner.active.bytes += event_bytes.len() as u64;
        inner.active.events.push(Arc::from(event_bytes));
        Ok(())
    }

    fn append_batch_with_ids(&self, first_event_id: EventId, events: &[Vec<u8>]) -> Result<()> {
        // Converting before taking the lock keeps the critical section short; the whole batch
        // becomes visible under one write lock, so readers see all of it or none.
        let converted: Vec<Arc<[u8]>> = events.iter().map(|e| Arc::from(e.as_slice())).collect();
        let bytes: u64 = events.iter().map(|e| e.len() as u64).sum();
        let mut inner = self.inner.write();
        inner.check_next(first_event_id)?;
        inner.active.bytes += bytes;
        inner.active.events.extend(converted);
        Ok(())
    }

    fn next_event_id(&self) -> Result<EventId> {
        Ok(self.inner.read().next_id())
    }

    fn iter_range(
        &self,
        start: EventId,
        end: Option<EventId>,
    ) -> Result<Box<dyn EventLogIterator>> {
        // `end = None` means the newest event at the time of the call: a reader never sees a
        // batch appended while it iterates, so it never sees one in part.
        let inner = self.inner.read();
        let end = end.unwrap_or_else(|| inner.next_id());
        let deleted = DeletedRanges::between_units(
            inner
                .units()
                .filter(|u| !u.events.is_empty())
                .map(|u| (u.first_id, u.end_id())),
            inner.next_id(),
        );
        drop(inner);
        Ok(Box::new(MemoryIter {
            inner: Arc::clone(&self.inner),
            next: start,
            end,
            deleted,
        }))
    }

    fn get(&self, event_id: EventId) -> Result<Option<Vec<u8>>> {
        Ok(self.inner.read().get(event_id).map(|e| e.to_vec()))
    }

    fn delete_range(&self, start: EventId, end: EventId) -> Result<usize> {
        let mut inner = self.inner.write();
        let mut deleted = 0usize;
        inner.sealed.retain(|u| {
            let inside = !u.events.is_empty() && u.first_id >= start && u.end_id() - 1 <= end;
            if inside {
                deleted += u.events.len();
            }
            !inside
        });
        Ok(deleted)
    }

    fn rotate(&self) -> Result<PathBuf> {
        let mut inner = self.inner.write();
        let first_id = inner.active.first_id;
        if inner.active.events.is_empty() {
            return Ok(unit_path(first_id));
        }
        let next = inner.next_id();
        let sealed = std::mem::replace(&mut inner.active, Unit::new(next));
        inner.sealed.push(sealed);
        Ok(unit_path(first_id))
    }

    fn oldest_event_id(&self) -> Result<EventId> {
        Ok(self.inner.read().oldest_id())
    }

    fn newest_event_id(&self) -> Result<EventId> {
        Ok(self.inner.read().next_id() - 1)
    }

    fn sync(&self) -> Result<()> {
        Ok(())
    }

    fn stats(&self) -> Result<EventLogStats> {
        let inner = self.inner.read();
        let stored = || inner.units().filter(|u| !u.events.is_empty());
        Ok(EventLogStats {
            event_count: stored().map(|u| u.events.len() as u64).sum(),
            oldest_event_id: inner.oldest_id(),
            newest_event_id: inner.next_id() - 1,
            total_bytes: stored().map(|u| u.bytes).sum(),
            file_count: stored().count(),
        })
    }
}

/// Iterates a [`MemoryEventLog`] by looking each event up under a short read lock, so it holds
/// no copy of the log and never blocks the writer for long.
struct MemoryIter {
    inner: Arc<RwLock<Inner>>,
    next: EventId,
    end: EventId,
    /// What was already deleted at the start: the only ids it may skip.
    deleted: DeletedRanges,
}

impl Iterator for MemoryIter {
    type Item = Result<(EventId, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.end {
            return None;
        }
        let inner = self.inner.read();
        // Ids from the log's next id on are not written yet, not deleted.
        let limit = self.end.min(inner.next_id());
        let found = inner
            .first_stored_from(self.next)
            .map_or(limit, |id| id.min(limit));
        if let Err(e) = self.deleted.check_skip(self.next, found) {
            self.next = self.end;
            return Some(Err(e));
        }
        let event = inner.get(found).filter(|_| found < limit);
        let Some(event) = event else {
            self.next = self.end;
            return None;
        };
        self.next = found + 1;
        Some(Ok((found, event.to_vec())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleting_a_middle_unit_leaves_a_hole_that_reads_skip() {
        let log = MemoryEventLog::new();
        for id in 1..=6 {
            log.append_with_id(id, &[id as u8]).unwrap();
            if id % 2 == 0 {
                log.rotate().unwrap();
            }
        }
        assert_eq!(log.delete_range(3, 4).unwrap(), 2);
        assert_eq!(log.get(3).unwrap(), None);
        let ids: Vec<_> = log
            .iter_range(0, None)
            .unwrap()
            .map(|r| r.unwrap().0)
            .collect();
        assert_eq!(ids, vec![1, 2, 5, 6]);
        assert_eq!(log.stats().unwrap().event_count, 4);
    }
}
