//! Azoth on LMDB (through `heed`): [`LmdbStore`], the canonical key-value store under the
//! view, and [`LmdbEventLog`], the event log for users who want events and state in LMDB.
//!
//! | file | what it holds |
//! | --- | --- |
//! | `env.rs` | one environment: map growth, the read gate, pooled read transactions |
//! | `env_format.rs` | the format record (magic and version) of every environment |
//! | `store.rs`, `store_options.rs`, `store_iter.rs`, `value.rs` | [`LmdbStore`] |
//! | `store_snapshot.rs` | [`LmdbStoreSnapshot`]: a read-only, lock-free view of a store directory |
//! | `log.rs`, `log_options.rs`, `log_format.rs`, `log_iter.rs`, `log_verify.rs`, `log_archive.rs` | [`LmdbEventLog`] |
//! | `log_copy.rs` | [`LmdbEventLog::copy_to`]: a consistent copy of a live log, for backups |
//! | `error.rs` | heed's errors as [`AzothError`](azoth_core::AzothError) |
//!
//! ```
//! use azoth_core::{CanonicalStore, OperationId, StoreBatch, StoreWrite};
//!
//! let dir = tempfile::tempdir()?;
//! let store = azoth_lmdb::LmdbStore::open(dir.path().join("view"))?;
//! let write = |key: &[u8], seq| StoreWrite {
//!     key: key.to_vec(),
//!     value: Some(b"v".to_vec()),
//!     operation_id: OperationId::new(0, seq),
//! };
//! store.apply(&StoreBatch {
//!     writes: vec![write(b"a:1", 1), write(b"a:2", 2), write(b"b:1", 3)],
//!     checkpoint: Some(3),
//!     metadata: vec![],
//! })?;
//! let keys: Vec<_> = store.scan_prefix(b"a:")?.map(|e| e.map(|(k, _)| k)).collect::<Result<_, _>>()?;
//! assert_eq!(keys, vec![b"a:1".to_vec(), b"a:2".to_vec()]);
//! # Ok::<(), azoth_core::AzothError>(())
//! ```
#![warn(missing_docs, clippy::print_stdout)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod env;
mod env_format;
mod error;
mod fsutil;
mod log;
mod log_archive;
mod log_copy;
mod log_format;
mod log_iter;
mod log_options;
mod log_verify;
mod store;
mod store_iter;
mod store_options;
mod store_snapshot;
mod value;

pub use log::LmdbEventLog;
pub use log_options::{DEFAULT_LOG_MAP_SIZE, LmdbLogOptions};
pub use store::LmdbStore;
pub use store_options::{DEFAULT_STORE_MAP_SIZE, LmdbStoreOptions};
pub use store_snapshot::LmdbStoreSnapshot;
