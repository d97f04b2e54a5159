//! Azoth: an embedded event-sourced database.
//!
//! The event log is the source of truth: every change is an event with a dense, ordered id.
//! The key-value view is derived from the log by replaying it, through the built-in
//! projection of puts and deletes and the application's own [`Projection`]s. This crate is the
//! one dependency an application adds: it re-exports the database ([`Database`],
//! [`AsyncDatabase`], [`Config`]), the shared types of `azoth-core`, and the backends as
//! [`file`](mod@file) and [`lmdb`].
//!
//! ```
//! use azoth::{Config, Database, SyncMode};
//!
//! let dir = tempfile::tempdir()?;
//! let db = Database::open_with(Config::new(dir.path()).sync_mode(SyncMode::Never))?;
//! db.put(b"user:1", b"Ada")?;
//! db.put(b"user:2", b"Grace")?;
//! assert_eq!(db.get(b"user:1")?.as_deref(), Some(&b"Ada"[..]));
//! assert_eq!(db.scan_prefix(b"user:")?.len(), 2);
//! db.close()?;
//! # Ok::<(), azoth::AzothError>(())
//! ```
#![warn(missing_docs)]

pub use azoth_core::*;
pub use azoth_file as file;
pub use azoth_lmdb as lmdb;
pub use azoth_projector::{
    ArchiveBoundary, AsyncDatabase, BackupOptions, BackupReport, CompactionReport, Config,
    Database, DatabaseStats, DeadLetter, EventStream, Events, FailurePolicy, HeldBack,
    LatencySummary, LogBackend, MaintenanceConfig, MaintenanceStats, Projection, ProjectionContext,
    Range, ReadOnlyDatabase, RestoreReport, RetentionHold, RetentionHolder, RetentionPolicy,
    RetentionReport, RetentionStats, StoreBackend, StoredPosition, SubscribeFrom,
    SubscriptionConfig, SubscriptionMode, SubscriptionStats, Transaction, ViewMismatch,
    ViewVerifyReport, decode_payload, encode_payload,
};
