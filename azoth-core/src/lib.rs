//! Azoth's core: the types, traits, errors, codecs and formats that every other crate of Azoth
//! shares, and no storage engine.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`types`] | `Key`, `Value`, `EventId`, `OperationId`, `Operation`, `Entry`, `DatabaseEvent` |
//! | [`error`] | [`AzothError`], [`Result`], [`DatabaseResult`], [`Location`] |
//! | [`event_log`] | the [`EventLog`] trait every log backend implements |
//! | [`store`] | the [`CanonicalStore`] trait: the durable key-value store under the view |
//! | [`handler`] | [`EventHandler`]: subscribers |
//! | [`sync_mode`] | [`SyncMode`]: when appends are made durable |
//! | [`dir_lock`] | [`DirLock`]: one writer per directory |
//! | [`codec`] | `DatabaseEvent` ⇄ bytes, versioned |
//! | [`chain`] | the hash chain linking every block to the one before it |
//! | [`verify`] | [`VerifyReport`]: what an integrity check found |
//! | [`log_unit`] | [`LogUnit`]: a backend's segment or archive, for lifecycle jobs |
//! | [`archive`] | the portable archive format: [`ArchiveWriter`], [`ArchiveReader`] |
//! | [`memory_log`] | [`MemoryEventLog`]: the reference `EventLog`, in memory |
//! | [`memory_store`] | [`MemoryStore`]: the reference `CanonicalStore`, in memory |
//! | `testing` | the backend conformance suites (feature `testing`) |
//!
//! The byte layouts of the event envelope, the hash chain and the archive are documented in
//! this crate's `FORMAT.md`.
//!
//! ```
//! use azoth_core::{decode_event, encode_event, DatabaseEvent, Operation, OperationId};
//!
//! let event = DatabaseEvent::WriteEvent {
//!     operation: Operation::Put { key: b"user:1".to_vec(), value: b"Ada".to_vec() },
//!     operation_id: OperationId::new(1_700_000_000_000_000, 1),
//! };
//! let bytes = encode_event(&event)?;
//! assert_eq!(decode_event(&bytes)?, event);
//! # Ok::<(), azoth_core::AzothError>(())
//! ```
#![warn(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod archive;
pub mod chain;
pub mod codec;
pub mod deleted_ranges;
pub mod dir_lock;
pub mod error;
pub mod event_log;
pub mod handler;
pub mod log_unit;
pub mod memory_log;
pub mod memory_store;
pub mod store;
pub mod sync_mode;
#[cfg(feature = "testing")]
pub mod testing;
pub mod types;
pub mod verify;

pub use archive::{ArchiveReader, ArchiveSummary, ArchiveVerify, ArchiveWriter};
pub use chain::{BlockHasher, ChainHash, GENESIS_HASH, block_hash};
pub use codec::{EVENT_FORMAT_VERSION, decode_event, encode_event, encode_event_into};
pub use deleted_ranges::DeletedRanges;
pub use dir_lock::{DirLock, LOCK_FILE};
pub use error::{AzothError, DatabaseResult, Location, Result};
pub use event_log::{EventLog, EventLogIterator, EventLogStats};
pub use handler::EventHandler;
pub use log_unit::{LogUnit, UnitState};
pub use memory_log::MemoryEventLog;
pub use memory_store::MemoryStore;
pub use store::{
    CanonicalStore, SortedWrites, StoreBatch, StoreIter, StoreStats, StoreWrite, StoreWriteRef,
    VersionedValue, prefix_successor,
};
pub use sync_mode::SyncMode;
pub use types::{
    DEFAULT_MAX_VALUE_LEN, DatabaseEvent, Entry, EventId, Key, MAX_KEY_LEN, Operation, OperationId,
    SequenceNumber, Timestamp, Value,
};
pub use verify::{VerifyFailure, VerifyProgress, VerifyReport};
