//! The storage trait every log backend implements.

use crate::error::Result;
use crate::types::EventId;

/// A stream of `(EventId, event bytes)` in increasing id order.
pub trait EventLogIterator: Iterator<Item = Result<(EventId, Vec<u8>)>> + Send {}

impl<T: Iterator<Item = Result<(EventId, Vec<u8>)>> + Send> EventLogIterator for T {}

/// An append-only log of opaque events with dense ids: where Azoth keeps its source of truth.
///
/// The log stores bytes; it neither knows nor checks what they encode. It is divided into
/// *units* (segments of the file log, logical segments of the LMDB log): one unit is active
/// and takes appends, the others are sealed and immutable. One block is written per append
/// call, so a batch is recovered whole or not at all.
///
/// Implementations are `Send + Sync`: one writer appends while any number of readers call
/// [`get`](EventLog::get) and [`iter_range`](EventLog::iter_range) from other threads; readers
/// see only whole, acknowledged blocks. The trait is object safe (`Box<dyn EventLog>`).
///
/// Both backends pass the conformance suite in `azoth_core::testing` (feature `testing`).
pub trait EventLog: Send + Sync {
    /// Appends one event whose id must be [`next_event_id`](EventLog::next_event_id).
    ///
    /// # Errors
    /// [`InvalidEventId`](crate::AzothError::InvalidEventId) if `event_id` is not the next id
    /// (nothing is written); I/O errors; `Poisoned` after a failed sync.
    fn append_with_id(&self, event_id: EventId, event_bytes: &[u8]) -> Result<()>;

    /// Appends `events` as one block with the ids `first_event_id`, `first_event_id + 1`, ….
    ///
    /// Atomic: after a crash the whole batch is there or none of it. An empty batch is a
    /// no-op (after the id check).
    ///
    /// # Errors
    /// [`InvalidEventId`](crate::AzothError::InvalidEventId) if `first_event_id` is not the
    /// next id (nothing is written); I/O errors; `Poisoned` after a failed sync.
    fn append_batch_with_ids(&self, first_event_id: EventId, events: &[Vec<u8>]) -> Result<()>;

    /// The id the next append must use: `newest_event_id() + 1`; 1 for an empty log.
    fn next_event_id(&self) -> Result<EventId>;

    /// Streams the events with ids in `[start, end)` in order, `end = None` meaning up to the
    /// newest event at the time of the call.
    ///
    /// Memory stays bounded whatever the range. Ids already deleted when `iter_range` is
    /// called are skipped, as a reader starting then would: iteration begins at
    /// `max(start, oldest_event_id())`, and a hole that `delete_range` left in the middle of
    /// the log is passed over. A `start` past the newest event yields nothing. Damage in the
    /// range is reported as a `Corruption` item naming where it is.
    ///
    /// Past that, the iterator never skips silently: it yields every event the log held in
    /// the range when it was created, in order with no gap, or, when `delete_range`
    /// (retention) frees events it has not reached yet, it yields one
    /// [`EventsDeleted`](crate::AzothError::EventsDeleted) item naming the missing ids and
    /// ends. (A backend that reads from a snapshot may still yield such events.)
    fn iter_range(&self, start: EventId, end: Option<EventId>)
    -> Result<Box<dyn EventLogIterator>>;

    /// The event with id `event_id`, or `None` if it was never appended or has been deleted.
    fn get(&self, event_id: EventId) -> Result<Option<Vec<u8>>>;

    /// Frees the whole sealed units lying inside `[start, end]` (both inclusive) and returns
    /// how many events were deleted.
    ///
    /// Never deletes events of the active unit, nor a unit only partly inside the range;
    /// [`oldest_event_id`](EventLog::oldest_event_id) moves forward when the oldest units go.
    fn delete_range(&self, start: EventId, end: EventId) -> Result<usize>;

    /// Seals the active unit, starts a new one, and returns the path of what it sealed.
    ///
    /// Rotating an empty active unit seals nothing new and returns the path of that unit.
    fn rotate(&self) -> Result<std::path::PathBuf>;

    /// The oldest id still stored; equals `next_event_id()` when the log holds no events.
    fn oldest_event_id(&self) -> Result<EventId>;

    /// The newest id stored; 0 for a log that never held an event.
    fn newest_event_id(&self) -> Result<EventId>;

    /// Makes every appended event durable.
    fn sync(&self) -> Result<()>;

    /// Counts and sizes of what the log holds.
    fn stats(&self) -> Result<EventLogStats>;
}

/// Statistics about the event log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventLogStats {
    /// Total number of events in storage.
    pub event_count: u64,
    /// Oldest event ID still in storage.
    pub oldest_event_id: EventId,
    /// Newest event ID in storage.
    pub newest_event_id: EventId,
    /// Total bytes used by event storage.
    pub total_bytes: u64,
    /// Number of log files (or logical units) holding events, archives included.
    pub file_count: usize,
}
