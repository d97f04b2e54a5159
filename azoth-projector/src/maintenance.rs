//! The background maintenance thread: every interval it rotates the active log unit when it
//! is old or large enough, archives sealed units past a boundary, and applies retention.
//!
//! Off unless [`Config::maintenance`](crate::Config::maintenance) is given. It holds the
//! database's core, never a `Database` handle, so dropping the last handle still closes the
//! database; close and drop stop it first. A pass checks for the stop between its steps and
//! between archived units, so stopping waits at most for one unit's archival. A failed step
//! is logged (`tracing`) and counted in [`MaintenanceStats`]; the thread goes on with the
//! next step and the next interval.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use azoth_core::{Result, UnitState};
use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

use crate::engine::Core;
use crate::lifecycle::{ArchiveBoundary, Lifecycle, archive_by};
use crate::retention;

/// The default interval of the maintenance thread: 60 s.
pub const DEFAULT_MAINTENANCE_INTERVAL: Duration = Duration::from_secs(60);
/// The shortest interval between passes.
const MIN_INTERVAL: Duration = Duration::from_millis(1);
/// The default age at which the maintenance thread rotates the active unit: 1 h.
pub const DEFAULT_ROTATE_AFTER_AGE: Duration = Duration::from_secs(3600);

/// What the background maintenance thread does; give it to
/// [`Config::maintenance`](crate::Config::maintenance). Every setter's documentation ends
/// with its default.
///
/// ```
/// use std::time::Duration;
/// use azoth_projector::{ArchiveBoundary, Config, MaintenanceConfig, RetentionPolicy};
///
/// let config = Config::new("/tmp/azoth-doc-maintenance")
///     .retention(RetentionPolicy::keep_all().keep_age(Duration::from_secs(30 * 24 * 3600)))
///     .maintenance(
///         MaintenanceConfig::every(Duration::from_secs(300))
///             .archive(ArchiveBoundary::OlderThan(Duration::from_secs(24 * 3600))),
///     );
/// # drop(config);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaintenanceConfig {
    pub(crate) interval: Duration,
    pub(crate) rotate_after_age: Option<Duration>,
    pub(crate) rotate_after_bytes: Option<u64>,
    pub(crate) archive: Option<ArchiveBoundary>,
    pub(crate) retention: bool,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        Self {
            interval: DEFAULT_MAINTENANCE_INTERVAL,
            rotate_after_age: Some(DEFAULT_ROTATE_AFTER_AGE),
            rotate_after_bytes: None,
            archive: None,
            retention: true,
        }
    }
}

impl MaintenanceConfig {
    /// The defaults, with a pass every `interval` (at least 1 ms).
    pub fn every(interval: Duration) -> Self {
        Self::default().interval(interval)
    }

    /// How long between passes (the first comes one interval after open), at least 1 ms so
    /// the thread never spins. Default: 60 s.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(MIN_INTERVAL);
        self
    }

    /// Rotates the active unit when its first event was committed at least this long ago,
    /// so that old events become sealed and can be archived and retained; `None` never
    /// rotates by age. Default: 1 h.
    pub fn rotate_after_age(mut self, age: Option<Duration>) -> Self {
        self.rotate_after_age = age;
        self
    }

    /// Rotates the active unit when it holds at least this many bytes; `None` never rotates
    /// by size here. The file log also seals a segment by itself at
    /// [`Config::segment_size`](crate::Config::segment_size); the LMDB log only rotates when
    /// asked, so this is its size limit. Default: `None`.
    pub fn rotate_after_bytes(mut self, bytes: Option<u64>) -> Self {
        self.rotate_after_bytes = bytes;
        self
    }

    /// Archives the sealed units `boundary` selects on every pass. Default: no archival.
    pub fn archive(mut self, boundary: ArchiveBoundary) -> Self {
        self.archive = Some(boundary);
        self
    }

    /// Applies the configured [`RetentionPolicy`](crate::RetentionPolicy) on every pass.
    /// Default: on (with the default policy, which keeps everything, it deletes nothing).
    pub fn apply_retention(mut self, on: bool) -> Self {
        self.retention = on;
        self
    }
}

/// The maintenance thread in [`DatabaseStats`](crate::DatabaseStats).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MaintenanceStats {
    /// Whether the thread runs.
    pub enabled: bool,
    /// Passes completed since open.
    pub runs: u64,
    /// Steps that failed since open.
    pub failures: u64,
    /// Rotations it made.
    pub rotations: u64,
    /// Archives it wrote.
    pub archives_written: u64,
    /// Log units its retention runs deleted.
    pub units_deleted: u64,
    /// The most recent failure.
    pub last_error: Option<String>,
}

/// The thread's handle and counters, part of the database's lifecycle state.
#[derive(Default)]
pub(crate) struct MaintenanceState {
    thread: Mutex<Option<(Sender<()>, JoinHandle<()>)>>,
    stopping: AtomicBool,
    enabled: AtomicBool,
    runs: AtomicU64,
    failures: AtomicU64,
    rotations: AtomicU64,
    archives: AtomicU64,
    units_deleted: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl MaintenanceState {
    pub(crate) fn stats(&self) -> MaintenanceStats {
        MaintenanceStats {
            enabled: self.enabled.load(Ordering::Relaxed),
            runs: self.runs.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            rotations: self.rotations.load(Ordering::Relaxed),
            archives_written: self.archives.load(Ordering::Relaxed),
            units_deleted: self.units_deleted.load(Ordering::Relaxed),
            last_error: self.last_error.lock().clone(),
        }
    }

    fn fail(&self, step: &str, e: &dyn std::fmt::Display) {
        tracing::warn!(step, error = %e, "a maintenance step failed; it will be retried");
        self.failures.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock() = Some(format!("{step}: {e}"));
    }

    /// Stops the thread and waits for it (at most the current step). Idempotent.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        let Some((stop, handle)) = self.thread.lock().take() else {
            return;
        };
        let _ = stop.try_send(());
        if handle.join().is_err() {
            tracing::error!("the maintenance thread panicked");
        }
    }
}

/// Starts the maintenance thread if the configuration asks for it.
pub(crate) fn start(core: &Arc<Core>, lifecycle: &Arc<Lifecycle>) -> Result<()> {
    let Some(config) = core.config.maintenance else {
        return Ok(());
    };
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
    let (core, thread_lifecycle) = (Arc::clone(core), Arc::clone(lifecycle));
    let handle = std::thread::Builder::new()
        .name("azoth-maintenance".into())
        .spawn(move || run(&core, &thread_lifecycle, &config, &stop_rx))?;
    lifecycle.maintenance.enabled.store(true, Ordering::Relaxed);
    *lifecycle.maintenance.thread.lock() = Some((stop_tx, handle));
    Ok(())
}

fn run(core: &Core, lifecycle: &Lifecycle, config: &MaintenanceConfig, stop: &Receiver<()>) {
    let state = &lifecycle.maintenance;
    loop {
        crossbeam_channel::select! {
            recv(stop) -> _ => return,
            default(config.interval) => {}
        }
        if state.stopping.load(Ordering::Acquire) || core.check_open().is_err() {
            return;
        }
        // A panic in a pass (a bug) must not take the thread down with a poisoned state.
        let outcome = catch_unwind(AssertUnwindSafe(|| pass(core, lifecycle, config)));
        if outcome.is_err() {
            state.fail("pass", &"panicked");
        }
        state.runs.fetch_add(1, Ordering::Relaxed);
    }
}

/// One pass: rotate, archive, retention, each step's failure counted and logged.
fn pass(core: &Core, lifecycle: &Lifecycle, config: &MaintenanceConfig) {
    let state = &lifecycle.maintenance;
    let stopping = || state.stopping.load(Ordering::Acquire);
    match rotate_if_due(core, config) {
        Ok(true) => {
            state.rotations.fetch_add(1, Ordering::Relaxed);
        }
        Ok(false) => {}
        Err(e) => state.fail("rotate", &e),
    }
    if let Some(boundary) = config.archive {
        if stopping() {
            return;
        }
        match archive_by(core, lifecycle, boundary, &stopping) {
            Ok(written) => {
                state
                    .archives
                    .fetch_add(written.len() as u64, Ordering::Relaxed);
            }
            Err(e) => state.fail("archive", &e),
        }
    }
    if config.retention && !core.config.retention.is_keep_all() {
        if stopping() {
            return;
        }
        let _job = lifecycle.jobs.lock();
        match retention::apply(core, &lifecycle.retention, &core.config.retention) {
            Ok(report) => {
                state
                    .units_deleted
                    .fetch_add(report.units_deleted as u64, Ordering::Relaxed);
            }
            Err(e) => state.fail("retention", &e),
        }
    }
}

/// Rotates the active unit if it holds events and is old or large enough.
fn rotate_if_due(core: &Core, config: &MaintenanceConfig) -> Result<bool> {
    if config.rotate_after_age.is_none() && config.rotate_after_bytes.is_none() {
        return Ok(false);
    }
    let handle = core.log_handle()?;
    let units = handle.units()?;
    let Some(active) = units.last().filter(|u| u.state == UnitState::Active) else {
        return Ok(false);
    };
    if active.event_count() == 0 {
        return Ok(false);
    }
    let big = config
        .rotate_after_bytes
        .is_some_and(|limit| active.bytes >= limit);
    let old = match config.rotate_after_age {
        Some(age) if !big => {
            let log = handle.log();
            let cutoff = retention::now_micros()
                .saturating_sub(u64::try_from(age.as_micros()).unwrap_or(u64::MAX));
            retention::event_time(log.as_ref(), active.first_event_id)?.is_some_and(|t| t <= cutoff)
        }
        _ => false,
    };
    if !(big || old) {
        return Ok(false);
    }
    let sealed = handle.log().rotate()?;
    tracing::debug!(unit = %sealed.display(), big, old, "maintenance rotated the active unit");
    Ok(true)
}
