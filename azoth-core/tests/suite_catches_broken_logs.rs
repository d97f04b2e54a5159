//! The conformance suite can fail: run its bodies against deliberately broken logs and check
//! that they panic.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use azoth_core::testing::{Harness, event_log};
use azoth_core::{
    AzothError, EventId, EventLog, EventLogIterator, EventLogStats, MemoryEventLog, Result,
};

/// A log that loses event 2: it accepts it, but neither `get` nor `iter_range` returns it.
#[derive(Default)]
struct SkipsAnId(MemoryEventLog);

/// A log that drops the last event of every batch of two or more while claiming the whole
/// batch was written.
#[derive(Default)]
struct DropsLastOfBatch(MemoryEventLog);

trait Broken {
    fn inner(&self) -> &MemoryEventLog;
    fn keeps(&self, _id: EventId) -> bool {
        true
    }
    fn batch(&self, first: EventId, events: &[Vec<u8>]) -> Result<()> {
        self.inner().append_batch_with_ids(first, events)
    }
}

impl Broken for SkipsAnId {
    fn inner(&self) -> &MemoryEventLog {
        &self.0
    }
    fn keeps(&self, id: EventId) -> bool {
        id != 2
    }
}

impl Broken for DropsLastOfBatch {
    fn inner(&self) -> &MemoryEventLog {
        &self.0
    }
    fn batch(&self, first: EventId, events: &[Vec<u8>]) -> Result<()> {
        if events.len() < 2 {
            return self.0.append_batch_with_ids(first, events);
        }
        self.0
            .append_batch_with_ids(first, &events[..events.len() - 1])?;
        // Take the lost event's id so that later appends still line up.
        self.0
            .append_with_id(first + events.len() as u64 - 1, b"")?;
        Ok(())
    }
}

/// Forwards the trait to the broken behaviour of a [`Broken`] log.
macro_rules! broken_event_log {
    ($ty:ty) => {
        impl EventLog for $ty {
            fn append_with_id(&self, event_id: EventId, event_bytes: &[u8]) -> Result<()> {
                self.inner().append_with_id(event_id, event_bytes)
            }
            fn append_batch_with_ids(&self, first: EventId, events: &[Vec<u8>]) -> Result<()> {
                self.batch(first, events)
            }
            fn next_event_id(&self) -> Result<EventId> {
                self.inner().next_event_id()
            }
            fn iter_range(
                &self,
                start: EventId,
                end: Option<EventId>,
            ) -> Result<Box<dyn EventLogIterator>> {
                let items: Vec<_> = self
                    .inner()
                    .iter_range(start, end)?
                    .filter(|item| item.as_ref().map_or(true, |(id, _)| self.keeps(*id)))
                    .collect();
                Ok(Box::new(items.into_iter()))
            }
            fn get(&self, event_id: EventId) -> Result<Option<Vec<u8>>> {
                if self.keeps(event_id) {
                    self.inner().get(event_id)
                } else {
                    Ok(None)
                }
            }
            fn delete_range(&self, start: EventId, end: EventId) -> Result<usize> {
                self.inner().delete_range(start, end)
            }
            fn rotate(&self) -> Result<PathBuf> {
                self.inner().rotate()
            }
            fn oldest_event_id(&self) -> Result<EventId> {
                self.inner().oldest_event_id()
            }
            fn newest_event_id(&self) -> Result<EventId> {
                self.inner().newest_event_id()
            }
            fn sync(&self) -> Result<()> {
                self.inner().sync()
            }
            fn stats(&self) -> Result<EventLogStats> {
                self.inner().stats()
            }
        }
    };
}

broken_event_log!(SkipsAnId);
broken_event_log!(DropsLastOfBatch);

fn fails<L: EventLog + Default + 'static>(body: fn(&Harness<L>)) -> bool {
    let harness = Harness::new(|_| Ok::<_, AzothError>(L::default()), true);
    catch_unwind(AssertUnwindSafe(|| body(&harness))).is_err()
}

#[test]
fn the_suite_catches_a_log_that_skips_an_id() {
    assert!(fails::<SkipsAnId>(event_log::ids_dense_from_one));
    assert!(fails::<SkipsAnId>(event_log::iter_range_bounds));
    assert!(fails::<SkipsAnId>(event_log::stats_consistent));
    assert!(fails::<SkipsAnId>(event_log::model));
}

#[test]
fn the_suite_catches_a_log_that_drops_part_of_a_batch() {
    assert!(fails::<DropsLastOfBatch>(event_log::batch_atomicity));
    assert!(fails::<DropsLastOfBatch>(event_log::ids_dense_from_one));
    assert!(fails::<DropsLastOfBatch>(
        event_log::concurrent_readers_see_whole_batches
    ));
    assert!(fails::<DropsLastOfBatch>(event_log::model));
}

#[test]
fn the_suite_passes_the_reference_log() {
    assert!(!fails::<MemoryEventLog>(event_log::ids_dense_from_one));
    assert!(!fails::<MemoryEventLog>(event_log::batch_atomicity));
}
