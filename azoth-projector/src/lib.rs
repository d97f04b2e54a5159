//! The Azoth database: the group-commit writer, the key-value view derived from the log, and
//! the [`Database`] / [`AsyncDatabase`] handles.
//!
//! | module | what it holds |
//! | --- | --- |
//! | `config` | [`Config`], [`LogBackend`], [`StoreBackend`]: how a database is opened |
//! | `database` | [`Database`]: the blocking handle |
//! | `reads` | [`Range`], [`Events`]: the iterators both handles return, and reads they share |
//! | `async_database` | [`AsyncDatabase`]: the same database for tokio programs |
//! | `writer` | the write queue: leader/follower group commit |
//! | `engine` | the shared core: committing a group, replay on open, flush, close |
//! | `memtable` | recent writes, ordered, readable while the writer adds |
//! | `view` | active memtable → frozen memtables → canonical store; the flush |
//! | `projection` | [`Projection`]: the application's events → view writes |
//! | `replay` | replaying a stretch of the log through the projections into a view (open, rebuild, checks, read-only) |
//! | `backup` | [`Database::backup`] / [`Database::restore`]: consistent online backups, [`BackupOptions`] |
//! | `backup_manifest` | the backup manifest: magic, version, a checksum per file (`FORMAT.md`) |
//! | `read_only` | [`ReadOnlyDatabase`]: inspecting a directory (even a live one) without a lock or a write |
//! | `backend` | opening the log and store in the data directory, the lock, `verify`, the log's units |
//! | `lifecycle` | rotate, archive ([`ArchiveBoundary`]), compact ([`CompactionReport`]), verify with progress |
//! | `view_check` | [`verify_view`](Database::verify_view): the view against a replay of the log ([`ViewVerifyReport`]) |
//! | `retention` | [`RetentionPolicy`]: deleting old log units, never what the view or a subscription needs |
//! | `maintenance` | [`MaintenanceConfig`]: the optional background rotation, archival and retention thread |
//! | `stats` | [`DatabaseStats`], latency histograms, the Prometheus text |
//! | `subscription` | [`SubscribeFrom`], named handlers fed after commit, catch-up, durable positions, [`EventStream`] |
//! | `transaction` | [`Transaction`]: serializable optimistic transactions, `transact` |
//! | `validation` | key and value limits |
//!
//! ```
//! use azoth_projector::{Config, Database, ProjectionContext, SyncMode};
//!
//! let dir = tempfile::tempdir()?;
//! let config = Config::new(dir.path())
//!     .sync_mode(SyncMode::Never)
//!     .projection(|kind: &str, payload: &[u8], view: &mut ProjectionContext<'_>| {
//!         if kind == "UserRenamed" {
//!             view.put(b"user:1:name", payload)?;
//!         }
//!         Ok(())
//!     });
//! let db = Database::open_with(config)?;
//! let id = db.put(b"user:1:email", b"ada@example.com")?;
//! db.append_event("UserRenamed", b"Ada")?;
//! assert_eq!(db.get(b"user:1:name")?.as_deref(), Some(&b"Ada"[..]));
//! assert_eq!(db.scan_prefix(b"user:1:")?.len(), 2);
//! assert_eq!(db.get_events_since(id)?.len(), 1);
//! db.close()?;
//! # Ok::<(), azoth_core::AzothError>(())
//! ```
#![warn(missing_docs, clippy::print_stdout)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod async_database;
mod backend;
mod backup;
mod backup_manifest;
mod config;
mod database;
mod engine;
#[cfg(test)]
mod exposition_check;
mod lifecycle;
mod maintenance;
mod memtable;
mod projection;
mod read_only;
mod reads;
mod replay;
mod retention;
mod stats;
mod subscription;
mod transaction;
mod validation;
mod view;
mod view_check;
mod writer;

pub use async_database::AsyncDatabase;
pub use azoth_core::SyncMode;
pub use backup::{BackupOptions, BackupReport, RestoreReport};
pub use config::{
    Config, DEFAULT_ARCHIVE_COMPRESSION_LEVEL, DEFAULT_FLUSH_INTERVAL, DEFAULT_GROUP_COMMIT_CAP,
    DEFAULT_MEMTABLE_SIZE, DEFAULT_SEGMENT_SIZE, DEFAULT_TRANSACTION_ATTEMPTS,
    DEFAULT_WRITE_QUEUE_CAPACITY, LogBackend, StoreBackend,
};
pub use database::Database;
pub use lifecycle::{
    ArchiveBoundary, COMPACTION_LEVEL_LOG, COMPACTION_LEVEL_VIEW, CompactionReport,
};
pub use maintenance::{
    DEFAULT_MAINTENANCE_INTERVAL, DEFAULT_ROTATE_AFTER_AGE, MaintenanceConfig, MaintenanceStats,
};
pub use projection::{Projection, ProjectionContext, decode_payload, encode_payload};
pub use read_only::ReadOnlyDatabase;
pub use reads::{Events, Range};
pub use retention::{
    HeldBack, RetentionHold, RetentionHolder, RetentionPolicy, RetentionReport, RetentionStats,
};
pub use stats::{DatabaseStats, LatencySummary};
pub use subscription::{
    DeadLetter, EventStream, FailurePolicy, MAX_SUBSCRIPTION_NAME_LEN, StoredPosition,
    SubscribeFrom, SubscriptionConfig, SubscriptionMode, SubscriptionStats,
};
pub use transaction::Transaction;
pub use view_check::{ViewMismatch, ViewVerifyReport};
