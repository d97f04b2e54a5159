//! The data model shared by every crate: keys, values, ids, operations, entries and events.

use serde::{Deserialize, Serialize};

/// A key of the key-value view: 1..=[`MAX_KEY_LEN`] bytes, ordered bytewise.
pub type Key = Vec<u8>;

/// A value of the key-value view.
pub type Value = Vec<u8>;

/// The position of an event in the log: dense, the first event is 1, and 0 means
/// "before the first event".
pub type EventId = u64;

/// Microseconds since the Unix epoch, taken when a write group commits.
pub type Timestamp = u64;

/// The sequence number of an operation; it equals the [`EventId`] of the operation's event.
pub type SequenceNumber = u64;

/// The longest key the view accepts, in bytes: LMDB's limit for keys.
pub const MAX_KEY_LEN: usize = 511;

/// The default largest value the view accepts, in bytes (16 MiB); configurable per database.
pub const DEFAULT_MAX_VALUE_LEN: usize = 16 * 1024 * 1024;

/// Identifies one committed operation: when its group committed and its place in the log.
///
/// Ordering is by `timestamp`, then `sequence`; since timestamps never decrease along the log,
/// this is commit order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct OperationId {
    /// Microseconds since the Unix epoch at commit.
    pub timestamp: Timestamp,
    /// The operation's [`EventId`].
    pub sequence: SequenceNumber,
}

impl OperationId {
    /// Builds an id from its two parts.
    pub const fn new(timestamp: Timestamp, sequence: SequenceNumber) -> Self {
        Self {
            timestamp,
            sequence,
        }
    }

    /// The id of the event this operation was logged as (the same number as `sequence`).
    pub const fn event_id(&self) -> EventId {
        self.sequence
    }
}

/// A change to the key-value view.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Operation {
    /// Set `key` to `value`.
    Put {
        /// The key written.
        #[serde(with = "serde_bytes")]
        key: Key,
        /// The value written.
        #[serde(with = "serde_bytes")]
        value: Value,
    },
    /// Remove `key`; succeeds whether or not the key exists.
    Delete {
        /// The key removed.
        #[serde(with = "serde_bytes")]
        key: Key,
    },
}

impl Operation {
    /// The key this operation changes.
    pub fn key(&self) -> &[u8] {
        match self {
            Operation::Put { key, .. } | Operation::Delete { key } => key,
        }
    }
}

/// A key with its value and the operation that wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry {
    /// The key.
    #[serde(with = "serde_bytes")]
    pub key: Key,
    /// The value; `None` for delete operations.
    pub value: Option<Value>,
    /// The operation that wrote this state of the key.
    pub operation_id: OperationId,
    /// True only where the entry describes a delete (events, history); reads of live state
    /// never return deleted entries.
    pub is_deleted: bool,
}

/// One event of the log, as the database and its subscribers see it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DatabaseEvent {
    /// A put or delete of the key-value view.
    WriteEvent {
        /// What was written.
        operation: Operation,
        /// When and where it was logged.
        operation_id: OperationId,
    },
    /// A read, logged only when read auditing is on.
    ReadEvent {
        /// The key read.
        #[serde(with = "serde_bytes")]
        key: Key,
        /// When and where the read was logged.
        operation_id: OperationId,
    },
    /// A compaction of the view or log ran; `level` says which kind (see `Database::compact`).
    CompactionEvent {
        /// The kind of compaction.
        level: usize,
        /// When and where it was logged.
        operation_id: OperationId,
    },
    /// The application's own domain event.
    AppEvent {
        /// The application's name for the event type, e.g. `"AccountOpened"`.
        kind: String,
        /// The application's encoding of the event.
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
        /// When and where it was logged.
        operation_id: OperationId,
    },
}

impl DatabaseEvent {
    /// The operation id every event carries.
    pub fn operation_id(&self) -> OperationId {
        match self {
            DatabaseEvent::WriteEvent { operation_id, .. }
            | DatabaseEvent::ReadEvent { operation_id, .. }
            | DatabaseEvent::CompactionEvent { operation_id, .. }
            | DatabaseEvent::AppEvent { operation_id, .. } => *operation_id,
        }
    }

    /// The id of this event in the log.
    pub fn event_id(&self) -> EventId {
        self.operation_id().sequence
    }
}
