//! What [`Database`](crate::Database) and [`ReadOnlyDatabase`](crate::ReadOnlyDatabase) read
//! the same way: the lazy iterators they hand out ([`Range`], [`Events`]) and the step from a
//! view lookup to an [`Entry`], so both handles answer a read alike.

use azoth_core::{
    DatabaseEvent, Entry, EventId, EventLogIterator, Result, decode_event, prefix_successor,
};

use crate::memtable::MemEntry;
use crate::view::ViewRange;

/// The lazy iterator of [`Database::range`](crate::Database::range): live entries in key
/// order.
pub struct Range {
    pub(crate) inner: ViewRange,
}

impl Range {
    /// The `(key, value)` pairs of the rest of the range, for `scan_prefix`.
    pub(crate) fn into_pairs(self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.map(|r| r.map(|e| (e.key, e.value.unwrap_or_default())))
            .collect()
    }
}

impl Iterator for Range {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next()
    }
}

/// The lazy iterator of [`Database::events_since`](crate::Database::events_since):
/// `(EventId, event)` in log order.
pub struct Events {
    pub(crate) inner: Box<dyn EventLogIterator>,
}

impl Events {
    /// The rest of the events without their ids, for `get_events` and `get_events_since`.
    pub(crate) fn into_events(self) -> Result<Vec<DatabaseEvent>> {
        self.map(|r| r.map(|(_, e)| e)).collect()
    }
}

impl Iterator for Events {
    type Item = Result<(EventId, DatabaseEvent)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.inner
            .next()
            .map(|r| r.and_then(|(id, bytes)| Ok((id, decode_event(&bytes)?))))
    }
}

/// The entry `get_entry` returns for what the view holds under `key`: `None` for a key never
/// written or deleted (a tombstone is not a live entry).
pub(crate) fn live_entry(key: &[u8], found: Option<MemEntry>) -> Option<Entry> {
    found.and_then(|e| {
        e.value.map(|value| Entry {
            key: key.to_vec(),
            value: Some(value),
            operation_id: e.operation_id,
            is_deleted: false,
        })
    })
}

/// The `[start, end)` bounds of the keys starting with `prefix` (both open for an empty one).
pub(crate) fn prefix_bounds(prefix: &[u8]) -> (Option<&[u8]>, Option<Vec<u8>>) {
    (
        (!prefix.is_empty()).then_some(prefix),
        prefix_successor(prefix),
    )
}
