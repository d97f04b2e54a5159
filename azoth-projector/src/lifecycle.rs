//! The log lifecycle on [`Database`]: rotation, archival, retention, compaction and
//! verification, safe to run on a live database.
//!
//! - [`rotate`](Database::rotate) seals the active unit.
//! - [`archive`](Database::archive) / [`archive_by`](Database::archive_by) compress sealed
//!   units into the portable archive format; archived events stay readable by every reader
//!   (`events_since`, subscriptions, `rebuild_view`). Only sealed units are archived, so the
//!   active unit, which writers append to, is never touched.
//! - [`apply_retention`](Database::apply_retention) deletes the oldest units as the
//!   configured [`RetentionPolicy`](crate::RetentionPolicy) allows, never past what the view
//!   or a subscription needs (see `retention.rs`).
//! - [`compact`](Database::compact) flushes, compacts the view store, applies retention and
//!   logs a `CompactionEvent`.
//! - [`verify_with_progress`](Database::verify_with_progress) checks the whole chain
//!   (`view_check.rs` checks the view).
//!
//! Archival, retention and compaction take one job lock per database, so two of them (a
//! user's call and the maintenance thread, say) never interleave.

use std::path::PathBuf;
use std::time::Duration;

use azoth_core::{
    AzothError, EventId, LogUnit, OperationId, Result, UnitState, VerifyProgress, VerifyReport,
};
use parking_lot::Mutex;

use crate::backend::LogHandle;
use crate::database::Database;
use crate::engine::Core;
use crate::maintenance::MaintenanceState;
use crate::retention::{self, RetentionCounters, RetentionReport};
use crate::writer::Draft;

/// The CompactionEvent level of a compaction that changed only the view store.
pub const COMPACTION_LEVEL_VIEW: usize = 0;
/// The CompactionEvent level of a compaction that also deleted log units by retention.
pub const COMPACTION_LEVEL_LOG: usize = 1;

/// The lifecycle state of one open database: the job lock, retention totals and the
/// maintenance thread.
#[derive(Default)]
pub(crate) struct Lifecycle {
    /// One archival, retention or compaction at a time.
    pub(crate) jobs: Mutex<()>,
    pub(crate) retention: RetentionCounters,
    pub(crate) maintenance: MaintenanceState,
}

/// Which sealed units [`Database::archive_by`] archives. Whatever the boundary, only sealed
/// units are archived (never the active one), whole, oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArchiveBoundary {
    /// Units whose events all have ids at or below this one (as [`Database::archive`]).
    UpTo(EventId),
    /// Units whose newest event was committed at least this long ago.
    OlderThan(Duration),
    /// The oldest sealed units, until the units not yet archived (the active one included)
    /// take at most this many bytes.
    KeepUnarchivedBytes(u64),
}

impl ArchiveBoundary {
    /// The last event id to archive through, or `None` for nothing.
    fn resolve(self, core: &Core, units: &[LogUnit]) -> Result<Option<EventId>> {
        let sealed = units.iter().filter(|u| u.state == UnitState::Sealed);
        match self {
            ArchiveBoundary::UpTo(id) => Ok(Some(id)),
            ArchiveBoundary::OlderThan(age) => {
                let log = core.log()?;
                let cutoff = retention::now_micros()
                    .saturating_sub(u64::try_from(age.as_micros()).unwrap_or(u64::MAX));
                let mut up_to = None;
                for unit in sealed {
                    let Some(last) = unit.last_event_id() else {
                        continue;
                    };
                    // Commit times never decrease with ids: the first young unit ends it.
                    match retention::event_time(log.as_ref(), last)? {
                        Some(t) if t <= cutoff => up_to = Some(last),
                        _ => break,
                    }
                }
                Ok(up_to)
            }
            ArchiveBoundary::KeepUnarchivedBytes(limit) => {
                let mut unarchived: u64 = units
                    .iter()
                    .filter(|u| u.state != UnitState::Archived)
                    .map(|u| u.bytes)
                    .sum();
                let mut up_to = None;
                for unit in sealed {
                    if unarchived <= limit {
                        break;
                    }
                    unarchived = unarchived.saturating_sub(unit.bytes);
                    up_to = unit.last_event_id().or(up_to);
                }
                Ok(up_to)
            }
        }
    }
}

/// What [`Database::compact`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompactionReport {
    /// The level of the `CompactionEvent` logged: [`COMPACTION_LEVEL_VIEW`] (0) when only the
    /// view store was compacted, [`COMPACTION_LEVEL_LOG`] (1) when retention also deleted log
    /// units.
    pub level: usize,
    /// The view's checkpoint after the flush.
    pub checkpoint: EventId,
    /// Bytes of the view store before its compaction.
    pub view_bytes_before: u64,
    /// Bytes of the view store after it.
    pub view_bytes_after: u64,
    /// Bytes the store's compaction gave back to the file system.
    pub view_bytes_reclaimed: u64,
    /// What retention did.
    pub retention: RetentionReport,
    /// The id of the `CompactionEvent` appended.
    pub operation_id: OperationId,
}

impl Database {
    /// The log's units, oldest first, the active one last: which events each holds, its
    /// size, and whether it is active, sealed or archived. A log given to
    /// `open_with_backends` shows as one active unit.
    ///
    /// # Errors
    /// `Closed`; errors reading the log.
    pub fn log_units(&self) -> Result<Vec<LogUnit>> {
        self.core().check_open()?;
        self.core().log_handle()?.units()
    }

    /// Seals the active log unit and starts a new one; returns the path of the unit sealed
    /// (for the LMDB log, a name for the logical segment). Rotating an empty unit seals
    /// nothing and returns its path.
    ///
    /// # Errors
    /// `Closed`; `Poisoned`; I/O errors.
    pub fn rotate(&self) -> Result<PathBuf> {
        self.core().check_open()?;
        self.core().log()?.rotate()
    }

    /// Archives every sealed unit whose events all have ids at or below `up_to`, and returns
    /// the archives written. Archived events stay readable by `events_since`,
    /// `get_events_since`, subscriptions and `rebuild_view`, and `verify` checks them.
    ///
    /// # Errors
    /// `Closed`; `Config` for a log given to `open_with_backends` (it has no archival);
    /// `Corruption` if a unit to archive is damaged (it stays unarchived); I/O errors.
    /// Units archived before an error stay archived.
    pub fn archive(&self, up_to: EventId) -> Result<Vec<PathBuf>> {
        self.archive_by(ArchiveBoundary::UpTo(up_to))
    }

    /// Archives the sealed units `boundary` selects; see [`archive`](Self::archive).
    ///
    /// # Errors
    /// As [`archive`](Self::archive).
    pub fn archive_by(&self, boundary: ArchiveBoundary) -> Result<Vec<PathBuf>> {
        archive_by(self.core(), self.lifecycle(), boundary, &|| false)
    }

    /// Deletes the oldest sealed and archived log units as the configured
    /// [`RetentionPolicy`](crate::RetentionPolicy) allows, never an event that the view's
    /// checkpoint or any durable subscription (running or not) or running event stream still
    /// needs. The report says what was deleted, and what was held back and by whom.
    ///
    /// ```
    /// use azoth_projector::{Config, Database, RetentionPolicy, SyncMode};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let config = Config::new(dir.path())
    ///     .sync_mode(SyncMode::Never)
    ///     .retention(RetentionPolicy::keep_all().keep_events(10));
    /// let db = Database::open_with(config)?;
    /// for i in 0..50u32 {
    ///     db.put(&i.to_be_bytes(), b"v")?;
    ///     if i % 10 == 9 {
    ///         db.rotate()?; // five sealed units of ten events
    ///     }
    /// }
    /// // Archived units stay readable; the first two hold events 1..=20.
    /// assert_eq!(db.archive(20)?.len(), 2);
    /// // The view must have moved past events before retention may delete them.
    /// db.flush()?;
    /// let report = db.apply_retention()?;
    /// assert_eq!(report.units_deleted, 4); // ten events are kept
    /// assert_eq!(db.stats()?.log.oldest_event_id, 41);
    /// assert_eq!(db.get(&0u32.to_be_bytes())?.as_deref(), Some(&b"v"[..]));
    /// # Ok::<(), azoth_core::AzothError>(())
    /// ```
    ///
    /// # Errors
    /// `Closed`; I/O errors of the deletion.
    pub fn apply_retention(&self) -> Result<RetentionReport> {
        let lifecycle = self.lifecycle();
        let _job = lifecycle.jobs.lock();
        let policy = self.core().config.retention;
        retention::apply(self.core(), &lifecycle.retention, &policy)
    }

    /// Flushes the memtable, compacts the view store (giving free pages back to the file
    /// system), applies retention, and appends a `CompactionEvent` whose level says what
    /// changed: [`COMPACTION_LEVEL_VIEW`] (0) when only the view store was compacted,
    /// [`COMPACTION_LEVEL_LOG`] (1) when retention also deleted log units.
    ///
    /// ```
    /// use azoth_projector::{COMPACTION_LEVEL_VIEW, Config, Database, SyncMode};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let db = Database::open_with(Config::new(dir.path()).sync_mode(SyncMode::Never))?;
    /// db.put(b"k", b"v")?;
    /// db.delete(b"k")?;
    /// let report = db.compact()?;
    /// // The default policy keeps every event, so only the view store was compacted.
    /// assert_eq!(report.level, COMPACTION_LEVEL_VIEW);
    /// assert_eq!(report.checkpoint, 2);
    /// assert_eq!(report.operation_id.sequence, 3); // the CompactionEvent follows the writes
    /// # Ok::<(), azoth_core::AzothError>(())
    /// ```
    ///
    /// # Errors
    /// `Closed`; errors of the flush, the store's compaction, retention or the append.
    pub fn compact(&self) -> Result<CompactionReport> {
        self.flush()?;
        let core = self.core();
        let lifecycle = self.lifecycle();
        let _job = lifecycle.jobs.lock();
        let store = core.view.store()?;
        let view_bytes_before = store.stats()?.bytes;
        let view_bytes_reclaimed = store.compact()?;
        let view_bytes_after = store.stats()?.bytes;
        let policy = core.config.retention;
        let retention = retention::apply(core, &lifecycle.retention, &policy)?;
        let level = if retention.units_deleted > 0 {
            COMPACTION_LEVEL_LOG
        } else {
            COMPACTION_LEVEL_VIEW
        };
        let ids = core.write(vec![Draft::Compaction { level }])?;
        let operation_id = ids.first().ok_or_else(|| {
            AzothError::Config(
                "the compaction event was not written: the writer returned no operation id".into(),
            )
        })?;
        tracing::info!(
            level,
            view_bytes_reclaimed,
            log_units_deleted = retention.units_deleted,
            "compacted"
        );
        Ok(CompactionReport {
            level,
            checkpoint: core.view.checkpoint(),
            view_bytes_before,
            view_bytes_after,
            view_bytes_reclaimed,
            retention,
            operation_id,
        })
    }

    /// Checks the log's integrity with its backend's verification: every block's checksums
    /// and the hash chain across archives and live units (a log given to
    /// `open_with_backends`: every event decodes and ids are dense).
    ///
    /// # Errors
    /// `Closed`; I/O errors. Damage is not an error: it is the report's `first_failure`.
    pub fn verify(&self) -> Result<VerifyReport> {
        self.verify_with_progress(|_| {})
    }

    /// [`verify`](Self::verify), calling `progress` after each unit checked (for a log given
    /// to `open_with_backends`, once at the end). Archival and retention wait while it runs;
    /// writers and readers do not.
    ///
    /// # Errors
    /// As [`verify`](Self::verify).
    pub fn verify_with_progress(
        &self,
        mut progress: impl FnMut(VerifyProgress),
    ) -> Result<VerifyReport> {
        self.core().check_open()?;
        // No archival or retention meanwhile: a unit archived or deleted under the check
        // would otherwise look missing.
        let _job = self.lifecycle().jobs.lock();
        self.core()
            .log_handle()?
            .verify_with_progress(&mut progress)
    }
}

/// Archives what `boundary` selects one unit at a time, checking `stop` between units so the
/// maintenance thread can stop promptly.
pub(crate) fn archive_by(
    core: &Core,
    lifecycle: &Lifecycle,
    boundary: ArchiveBoundary,
    stop: &dyn Fn() -> bool,
) -> Result<Vec<PathBuf>> {
    core.check_open()?;
    let _job = lifecycle.jobs.lock();
    let handle = core.log_handle()?;
    if let LogHandle::Custom(_) = handle {
        return Err(AzothError::Config(
            "a log given to open_with_backends has no archival".into(),
        ));
    }
    let units = handle.units()?;
    let Some(up_to) = boundary.resolve(core, &units)? else {
        return Ok(Vec::new());
    };
    let mut written = Vec::new();
    for unit in units.iter().filter(|u| u.state == UnitState::Sealed) {
        let Some(last) = unit.last_event_id() else {
            continue;
        };
        if last > up_to || stop() {
            break;
        }
        written.extend(handle.archive(last)?);
    }
    if !written.is_empty() {
        tracing::info!(archives = written.len(), up_to, "archived sealed log units");
    }
    Ok(written)
}
