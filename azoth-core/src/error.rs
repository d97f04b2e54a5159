//! The one error type of Azoth, and its `Result` aliases.

use std::fmt;
use std::path::PathBuf;

use crate::types::EventId;

/// Where damage or a failure was found: as much of file, byte offset and event id as is known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// The file (segment, archive, environment) holding the damage.
    pub file: Option<PathBuf>,
    /// The byte offset within `file` of the damaged block or record.
    pub offset: Option<u64>,
    /// The first event id of the damaged block, where it could be determined.
    pub event_id: Option<EventId>,
}

impl Location {
    /// A location in `file`.
    pub fn file(file: impl Into<PathBuf>) -> Self {
        Self {
            file: Some(file.into()),
            ..Self::default()
        }
    }

    /// This location with the byte offset set.
    pub fn at_offset(mut self, offset: u64) -> Self {
        self.offset = Some(offset);
        self
    }

    /// This location with the event id set.
    pub fn at_event(mut self, event_id: EventId) -> Self {
        self.event_id = Some(event_id);
        self
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::with_capacity(3);
        if let Some(file) = &self.file {
            parts.push(format!("file {}", file.display()));
        }
        if let Some(offset) = self.offset {
            parts.push(format!("offset {offset}"));
        }
        if let Some(event_id) = self.event_id {
            parts.push(format!("event {event_id}"));
        }
        if parts.is_empty() {
            f.write_str("unknown location")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// Every failure Azoth reports. Each variant a user can act on carries the facts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AzothError {
    /// An operating-system I/O error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),

    /// Stored data failed a checksum, the hash chain or a structural check.
    #[error("corruption at {location}: {detail}")]
    Corruption {
        /// Where the damage is.
        location: Location,
        /// What check failed.
        detail: String,
    },

    /// An append named an id other than the log's next id; nothing was written.
    #[error("invalid event id: expected {expected}, got {got}")]
    InvalidEventId {
        /// The id the log expected (`next_event_id()`).
        expected: EventId,
        /// The id the caller gave.
        got: EventId,
    },

    /// Another writer, in this process or another, holds the directory.
    #[error("{} is locked by another writer", path.display())]
    Locked {
        /// The locked directory.
        path: PathBuf,
    },

    /// A key is longer than the view accepts.
    #[error("key of {len} bytes is longer than the limit of {max} bytes")]
    KeyTooLarge {
        /// The key's length.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// A value is longer than the configured maximum.
    #[error("value of {len} bytes is longer than the limit of {max} bytes")]
    ValueTooLarge {
        /// The value's length.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// Keys must have at least one byte.
    #[error("empty key: keys must have at least one byte")]
    EmptyKey,

    /// An optimistic transaction read something that changed before it committed; nothing was
    /// written. Retry it (`Database::transact` does).
    #[error("transaction conflict: a key or prefix it read was changed by another commit")]
    Conflict,

    /// The database or log was closed.
    #[error("closed")]
    Closed,

    /// An earlier fsync failed, so what the OS holds for the file is unknown; the log refuses
    /// writes until it is reopened (and recovers from what is on disk).
    #[error("poisoned after a failed sync, reopen to recover: {detail}")]
    Poisoned {
        /// The failure that poisoned the log.
        detail: String,
    },

    /// The handle was opened read-only.
    #[error("opened read-only")]
    ReadOnly,

    /// Encoding or decoding an event or value failed.
    #[error("encoding error: {0}")]
    Encoding(String),

    /// Data was written by a newer format version than this build reads.
    #[error("unsupported {what} format version {found} (this build reads up to {supported})")]
    UnsupportedVersion {
        /// Which format.
        what: &'static str,
        /// The version found.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },

    /// A configuration or argument is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// Something the caller asked for does not exist (a subscription name, a backup …).
    #[error("not found: {0}")]
    NotFound(String),

    /// An application's projection panicked on an event. The event was not written, nor any
    /// other of its request; other requests of the same commit group were.
    #[error("a projection panicked on an event of kind {kind:?}: {detail}")]
    ProjectionPanicked {
        /// The event's kind, as given to `append_event`.
        kind: String,
        /// The panic's message, where it had one.
        detail: String,
    },

    /// A reader needed events that are no longer in the log: retention (`delete_range`)
    /// freed them after the reader started, or a subscription's position lies before the
    /// oldest event left. The ids `from..to` (end exclusive) are the ones missing; start a new
    /// reader at [`oldest_event_id`](crate::EventLog::oldest_event_id) to go on.
    #[error("events {from} to {} are no longer in the log (deleted by retention)", to.saturating_sub(1))]
    EventsDeleted {
        /// The first missing id: the one the reader expected next.
        from: EventId,
        /// The end (exclusive) of the missing ids: where the log goes on, or the reader's end.
        to: EventId,
    },
}

impl AzothError {
    /// A [`AzothError::Corruption`] at `location`.
    pub fn corruption(location: Location, detail: impl Into<String>) -> Self {
        Self::Corruption {
            location,
            detail: detail.into(),
        }
    }

    /// True for [`AzothError::Corruption`].
    pub fn is_corruption(&self) -> bool {
        matches!(self, Self::Corruption { .. })
    }
}

/// The result of Azoth operations.
pub type Result<T, E = AzothError> = std::result::Result<T, E>;

/// The name the async API of the seed documents use for [`Result`].
pub type DatabaseResult<T> = Result<T>;
