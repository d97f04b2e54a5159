//! Checking the view against the log: [`Database::verify_view`] replays the log into a
//! scratch store and compares it, key by key, with the live view;
//! [`Database::verify_view_from_backup`] does the same from a backup's view when retention has
//! deleted the log's first events.
//!
//! The replay runs in two parts so that writers are not held for it: first up to the newest
//! event at the start, with writers going on; then, under the commit clock, the events they
//! committed meanwhile, and the comparison. The lifecycle job lock keeps retention from
//! deleting the log under the replay.

use std::path::Path;
use std::sync::Arc;

use azoth_core::{CanonicalStore, Entry, EventId, MemoryStore, Result};
use azoth_lmdb::LmdbStore;

use crate::database::Database;
use crate::view::View;

/// The name prefix of the scratch restores of `verify_view_from_backup` in the data directory.
const SCRATCH_PREFIX: &str = ".verify-view-";

/// Removes scratch restores a crash in the middle of `verify_view_from_backup` left in the
/// data directory `dir` (called at open, under the directory lock): the scratch directories,
/// and the restore's staging directories beside them (`.<scratch name>.restoring-…`), left
/// when the crash came before the restore renamed its staging directory.
pub(crate) fn remove_leftover_scratch(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(SCRATCH_PREFIX)
            || name
                .strip_prefix('.')
                .is_some_and(|n| n.starts_with(SCRATCH_PREFIX))
        {
            if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                tracing::warn!(dir = %entry.path().display(), error = %e, "could not remove a leftover scratch restore");
            }
        }
    }
}

/// What [`Database::verify_view`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ViewVerifyReport {
    /// The event the replay started after: 0 for a replay of the whole log, or the
    /// checkpoint of the backup's view ([`Database::verify_view_from_backup`]).
    pub base: EventId,
    /// True when the log still holds every event after `base`, so the view could be
    /// replayed and compared. When false (retention deleted them), nothing was compared.
    pub log_complete: bool,
    /// The oldest event the log holds.
    pub oldest_event_id: EventId,
    /// The last event replayed (the newest when the comparison ran).
    pub up_to: EventId,
    /// Events replayed.
    pub events_replayed: u64,
    /// Live entries compared (the union of both sides' keys).
    pub entries_compared: u64,
    /// Keys whose value or version differ, or that only one side has.
    pub mismatches: u64,
    /// The first of them, in key order.
    pub first_mismatch: Option<ViewMismatch>,
}

impl ViewVerifyReport {
    /// True when the log was complete and the view equals its replay.
    pub fn is_ok(&self) -> bool {
        self.log_complete && self.mismatches == 0
    }
}

/// A key on which the view and the replay of the log differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewMismatch {
    /// The key.
    pub key: Vec<u8>,
    /// What the replay gives (`None`: no live value).
    pub replayed: Option<Entry>,
    /// What the view holds (`None`: no live value).
    pub view: Option<Entry>,
}

impl Database {
    /// Checks that the view equals a replay of the log: replays every event, through the
    /// projections, into a scratch in-memory store and compares it, key by key, value and
    /// version, with the live view. Writers wait only while the events they committed
    /// during the replay are replayed and the views compared; readers never wait; archival
    /// and retention wait for the whole check. The scratch view is held in memory.
    ///
    /// If retention has deleted the log's first events, the view cannot be replayed: the
    /// report then says `log_complete: false` and compares nothing (see
    /// [`verify_view_from_backup`](Self::verify_view_from_backup)).
    ///
    /// ```
    /// use azoth_projector::{Config, Database, SyncMode};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let db = Database::open_with(Config::new(dir.path()).sync_mode(SyncMode::Never))?;
    /// db.put(b"a", b"1")?;
    /// db.flush()?;
    /// db.put(b"b", b"2")?;
    /// let report = db.verify_view()?;
    /// assert!(report.is_ok(), "{report:?}");
    /// assert_eq!(report.entries_compared, 2);
    /// # Ok::<(), azoth_core::AzothError>(())
    /// ```
    ///
    /// # Errors
    /// `Closed`; errors reading the log or the view; projection errors.
    pub fn verify_view(&self) -> Result<ViewVerifyReport> {
        self.compare_with_replay(Arc::new(MemoryStore::new()))
    }

    /// As [`verify_view`](Self::verify_view), replaying from a backup's view instead of from
    /// the first event: the backup (written by [`backup`](Self::backup)) is restored into a
    /// scratch directory inside the data directory, the log after its checkpoint is replayed
    /// onto its view, and the result is compared with the live view. This checks the view
    /// of a log whose first events retention has deleted, as long as the log still holds
    /// every event after the backup's checkpoint. The scratch directory is removed after.
    ///
    /// # Errors
    /// As [`verify_view`](Self::verify_view), and as [`restore`](Self::restore) for a
    /// missing or damaged backup.
    pub fn verify_view_from_backup(&self, backup: impl AsRef<Path>) -> Result<ViewVerifyReport> {
        self.core().check_open()?;
        let scratch = self.core().config.dir.join(format!(
            "{SCRATCH_PREFIX}{}-{}",
            std::process::id(),
            crate::retention::now_micros()
        ));
        let outcome = Database::restore(backup, &scratch).and_then(|_| {
            let store: Arc<dyn CanonicalStore> = Arc::new(LmdbStore::open(scratch.join("view"))?);
            self.compare_with_replay(store)
        });
        if let Err(e) = std::fs::remove_dir_all(&scratch) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %scratch.display(), error = %e, "could not remove the scratch restore");
            }
        }
        outcome
    }

    /// Replays the log after `store`'s checkpoint onto it and compares the result with the
    /// live view.
    fn compare_with_replay(&self, store: Arc<dyn CanonicalStore>) -> Result<ViewVerifyReport> {
        let core = self.core();
        core.check_open()?;
        let base = store.checkpoint()?;
        let _job = self.lifecycle().jobs.lock();
        let log = core.log()?;
        let oldest = log.oldest_event_id()?;
        let mut report = ViewVerifyReport {
            base,
            oldest_event_id: oldest,
            log_complete: oldest <= base.saturating_add(1),
            ..ViewVerifyReport::default()
        };
        if !report.log_complete {
            report.up_to = log.newest_event_id()?;
            return Ok(report);
        }
        let scratch = View::new(store, base, core.config.memtable_size);
        let early = core.clock.lock().next_id.max(base.saturating_add(1));
        report.events_replayed =
            core.replay_into(&scratch, log.as_ref(), base.saturating_add(1), early)?;
        let clock = core.clock.lock();
        report.up_to = clock.next_id - 1;
        report.events_replayed += core.replay_into(&scratch, log.as_ref(), early, clock.next_id)?;
        let mut replayed = scratch.range(None, None)?.peekable();
        let mut live = core.view.range(None, None)?.peekable();
        loop {
            let (r, l) = match (replayed.peek(), live.peek()) {
                (None, None) => break,
                (Some(Err(_)), _) | (_, Some(Err(_))) => {
                    // Take the error out of whichever side holds it.
                    if let Some(Err(e)) = replayed.next_if(Result::is_err) {
                        return Err(e);
                    }
                    if let Some(Err(e)) = live.next_if(Result::is_err) {
                        return Err(e);
                    }
                    continue;
                }
                (Some(Ok(r)), Some(Ok(l))) if r.key == l.key => (replayed.next(), live.next()),
                (Some(Ok(r)), Some(Ok(l))) if r.key < l.key => (replayed.next(), None),
                (Some(Ok(_)), Some(Ok(_))) => (None, live.next()),
                (Some(Ok(_)), None) => (replayed.next(), None),
                (None, Some(Ok(_))) => (None, live.next()),
            };
            let r = r.transpose()?;
            let l = l.transpose()?;
            report.entries_compared += 1;
            let same = matches!((&r, &l), (Some(r), Some(l))
                if r.value == l.value && r.operation_id == l.operation_id);
            if !same {
                report.mismatches += 1;
                if report.first_mismatch.is_none() {
                    let key = r.as_ref().or(l.as_ref()).map(|e| e.key.clone());
                    report.first_mismatch = Some(ViewMismatch {
                        key: key.unwrap_or_default(),
                        replayed: r,
                        view: l,
                    });
                }
            }
        }
        drop(clock);
        if !report.is_ok() {
            tracing::warn!(
                mismatches = report.mismatches,
                base,
                "the view differs from a replay of the log"
            );
        }
        Ok(report)
    }
}
