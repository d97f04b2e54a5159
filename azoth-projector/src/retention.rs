//! Retention: deleting the oldest sealed and archived log units as a [`RetentionPolicy`]
//! allows, never past what the view or a subscription still needs.
//!
//! A run (`Database::apply_retention`) works in three steps:
//!
//! 1. The policy marks the oldest units it would delete: walking sealed and archived units
//!    oldest first, a unit is marked while deleting it still keeps every minimum the policy
//!    sets (events, bytes, age). The active unit is never marked.
//! 2. The *hold* is the lowest position something still reads the log from: the view's
//!    checkpoint (events after it are not in the canonical store yet), every durable
//!    subscription's stored position, every running event stream's position. A view that is
//!    rebuilt from the whole log at every open (the memory store, or backends given to
//!    `open_with_backends`, which may not persist) holds at 0. Only marked units whose last
//!    event is at or below the hold are deleted; the rest are *held back*, and the report
//!    and the stats say by whom.
//! 3. `EventLog::delete_range` deletes them, oldest first.
//!
//! The hold is taken and the units deleted under the commit clock, so no subscription can
//! start from a position below the hold in between: a subscription registers under the
//! clock, and its position counts from then on, before it is stored. Writers wait for the
//! deletion (file removal for the file log, one LMDB transaction for the LMDB log).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use azoth_core::{EventId, EventLog, LogUnit, Result, UnitState, decode_event};
use parking_lot::Mutex;

use crate::backend::LogHandle;
use crate::config::StoreBackend;
use crate::engine::Core;
use crate::subscription::Subscriptions;

/// Which log units retention deletes: the oldest sealed and archived units, as long as what
/// remains still holds at least every minimum set here. No minimum set keeps everything.
///
/// ```
/// use std::time::Duration;
/// use azoth_projector::RetentionPolicy;
///
/// // At least the newest million events, and at least a week of history.
/// let policy = RetentionPolicy::keep_all()
///     .keep_events(1_000_000)
///     .keep_age(Duration::from_secs(7 * 24 * 3600));
/// assert!(!policy.is_keep_all());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    keep_events: Option<u64>,
    keep_bytes: Option<u64>,
    keep_age: Option<Duration>,
}

impl RetentionPolicy {
    /// Deletes nothing. The default.
    pub fn keep_all() -> Self {
        Self::default()
    }

    /// Keeps at least the newest `events` events: a unit goes only if what remains after it
    /// still holds that many. Default: not set.
    pub fn keep_events(mut self, events: u64) -> Self {
        self.keep_events = Some(events);
        self
    }

    /// Keeps at least the newest `bytes` bytes of log (segments and archives as stored): a
    /// unit goes only if what remains after it still takes that many. For the LMDB log a
    /// segment's bytes are those of its event records, and the pages deletion frees are
    /// reused by later appends rather than returned to the file system. Default: not set.
    pub fn keep_bytes(mut self, bytes: u64) -> Self {
        self.keep_bytes = Some(bytes);
        self
    }

    /// Keeps at least the last `age` of history: a unit goes only if its newest event was
    /// committed more than `age` ago. Default: not set.
    pub fn keep_age(mut self, age: Duration) -> Self {
        self.keep_age = Some(age);
        self
    }

    /// True when no minimum is set, so nothing is ever deleted.
    pub fn is_keep_all(&self) -> bool {
        self.keep_events.is_none() && self.keep_bytes.is_none() && self.keep_age.is_none()
    }
}

/// What keeps retention from deleting log units.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RetentionHolder {
    /// The view's checkpoint: events after it are only in the memtable and the log.
    ViewCheckpoint,
    /// The view is rebuilt from the whole log at every open (the memory store, or backends
    /// given to `open_with_backends`), so it needs every event.
    ViewReplay,
    /// A durable subscription, running or not, by name: its stored position.
    Subscription(String),
    /// A running event stream (a non-durable subscription), by its generated name
    /// (`stream/<n>`).
    Stream(String),
}

impl std::fmt::Display for RetentionHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RetentionHolder::ViewCheckpoint => f.write_str("view checkpoint"),
            RetentionHolder::ViewReplay => f.write_str("view (replayed from the whole log)"),
            RetentionHolder::Subscription(name) => write!(f, "subscription {name:?}"),
            RetentionHolder::Stream(name) => write!(f, "event stream {name:?}"),
        }
    }
}

impl RetentionHolder {
    /// A short name for metric labels: `view_checkpoint`, `view_replay`,
    /// `subscription/<name>`, `stream/<name>` (subscription names never hold a `/`).
    pub fn label(&self) -> String {
        match self {
            RetentionHolder::ViewCheckpoint => "view_checkpoint".into(),
            RetentionHolder::ViewReplay => "view_replay".into(),
            RetentionHolder::Subscription(name) => format!("subscription/{name}"),
            RetentionHolder::Stream(name) => format!("stream/{name}"),
        }
    }
}

/// One holder and its position: it still needs every event after `position`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionHold {
    /// Who.
    pub holder: RetentionHolder,
    /// The last event it no longer needs.
    pub position: EventId,
}

/// What the policy would have deleted but retention kept, because something still needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeldBack {
    /// Units kept.
    pub units: usize,
    /// Events in them.
    pub events: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The last event the policy would have deleted.
    pub wanted_up_to: EventId,
    /// The holders whose positions are below `wanted_up_to`, lowest first.
    pub by: Vec<RetentionHold>,
}

/// What one retention run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetentionReport {
    /// Units (segments and archives) deleted.
    pub units_deleted: usize,
    /// Events deleted.
    pub events_deleted: u64,
    /// Bytes those units took.
    pub bytes_deleted: u64,
    /// The last event deleted, if any.
    pub deleted_up_to: Option<EventId>,
    /// The oldest event the log holds afterwards.
    pub oldest_event_id: EventId,
    /// The lowest position anything still reads the log from (every event after it is
    /// kept whatever the policy).
    pub hold_position: EventId,
    /// What the policy wanted deleted but was kept, and by whom; `None` when nothing was.
    pub held_back: Option<HeldBack>,
}

/// Retention in [`DatabaseStats`](crate::DatabaseStats): the current holds, and totals since
/// open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetentionStats {
    /// The configured policy.
    pub policy: RetentionPolicy,
    /// The lowest position anything still reads the log from.
    pub hold_position: EventId,
    /// Every holder and its position, lowest first.
    pub holds: Vec<RetentionHold>,
    /// Retention runs since open.
    pub runs: u64,
    /// Units deleted since open.
    pub units_deleted: u64,
    /// Events deleted since open.
    pub events_deleted: u64,
    /// Bytes deleted since open.
    pub bytes_deleted: u64,
    /// What the last run did, if there was one.
    pub last_run: Option<RetentionReport>,
}

/// Totals of the retention runs of one open database.
#[derive(Default)]
pub(crate) struct RetentionCounters {
    runs: AtomicU64,
    units: AtomicU64,
    events: AtomicU64,
    bytes: AtomicU64,
    last: Mutex<Option<RetentionReport>>,
}

impl RetentionCounters {
    fn record(&self, report: &RetentionReport) {
        self.runs.fetch_add(1, Ordering::Relaxed);
        self.units
            .fetch_add(report.units_deleted as u64, Ordering::Relaxed);
        self.events
            .fetch_add(report.events_deleted, Ordering::Relaxed);
        self.bytes
            .fetch_add(report.bytes_deleted, Ordering::Relaxed);
        *self.last.lock() = Some(report.clone());
    }

    /// The stats: totals, the last run, and the holds as of now.
    pub(crate) fn stats(&self, core: &Core) -> Result<RetentionStats> {
        let holds = holds(core)?;
        Ok(RetentionStats {
            policy: core.config.retention,
            hold_position: holds.first().map_or(EventId::MAX, |h| h.position),
            holds,
            runs: self.runs.load(Ordering::Relaxed),
            units_deleted: self.units.load(Ordering::Relaxed),
            events_deleted: self.events.load(Ordering::Relaxed),
            bytes_deleted: self.bytes.load(Ordering::Relaxed),
            last_run: self.last.lock().clone(),
        })
    }
}

/// Every holder and its position, lowest first (ties by holder order: view first).
pub(crate) fn holds(core: &Core) -> Result<Vec<RetentionHold>> {
    let mut holds = Vec::new();
    let custom = matches!(core.log_handle()?, LogHandle::Custom(_));
    let view_persists = !custom && core.config.store_backend == StoreBackend::Lmdb;
    holds.push(if view_persists {
        RetentionHold {
            holder: RetentionHolder::ViewCheckpoint,
            position: core.view.checkpoint(),
        }
    } else {
        RetentionHold {
            holder: RetentionHolder::ViewReplay,
            position: 0,
        }
    });
    let mut durable: Vec<(String, EventId)> = Subscriptions::durable_positions(core)?;
    for (name, is_durable, position) in Subscriptions::registered_positions(core) {
        if !is_durable {
            holds.push(RetentionHold {
                holder: RetentionHolder::Stream(name),
                position,
            });
        } else if let Some((_, stored)) = durable.iter_mut().find(|(n, _)| *n == name) {
            *stored = (*stored).min(position);
        } else {
            // Registered, its start position not stored yet.
            durable.push((name, position));
        }
    }
    for (name, position) in durable {
        holds.push(RetentionHold {
            holder: RetentionHolder::Subscription(name),
            position,
        });
    }
    holds.sort_by_key(|h| h.position);
    Ok(holds)
}

/// The commit time of event `id` in microseconds, or `None` if the log no longer holds it.
pub(crate) fn event_time(log: &dyn EventLog, id: EventId) -> Result<Option<u64>> {
    match log.get(id)? {
        Some(bytes) => Ok(Some(decode_event(&bytes)?.operation_id().timestamp)),
        None => Ok(None),
    }
}

pub(crate) fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The oldest units the policy would delete: a prefix of `units` (never the active one).
fn marked(policy: &RetentionPolicy, units: &[LogUnit], log: &dyn EventLog) -> Result<usize> {
    if policy.is_keep_all() {
        return Ok(0);
    }
    let mut events_left: u64 = units.iter().map(LogUnit::event_count).sum();
    let mut bytes_left: u64 = units.iter().map(|u| u.bytes).sum();
    let cutoff = policy
        .keep_age
        .map(|age| now_micros().saturating_sub(u64::try_from(age.as_micros()).unwrap_or(u64::MAX)));
    let mut count = 0;
    for unit in units {
        if unit.state == UnitState::Active {
            break;
        }
        events_left -= unit.event_count();
        bytes_left = bytes_left.saturating_sub(unit.bytes);
        if policy.keep_events.is_some_and(|min| events_left < min)
            || policy.keep_bytes.is_some_and(|min| bytes_left < min)
        {
            break;
        }
        if let (Some(cutoff), Some(last)) = (cutoff, unit.last_event_id()) {
            match event_time(log, last)? {
                Some(t) if t < cutoff => {}
                _ => break,
            }
        }
        count += 1;
    }
    Ok(count)
}

/// One retention run under `policy`; see the module documentation.
pub(crate) fn apply(
    core: &Core,
    counters: &RetentionCounters,
    policy: &RetentionPolicy,
) -> Result<RetentionReport> {
    core.check_open()?;
    let handle = core.log_handle()?;
    let log = handle.log();
    // Sealed units never change, and the callers hold the job lock, so no archival or other
    // deletion changes them either: what the policy marks here, outside the clock, still
    // stands when the deletion runs. Units sealed meanwhile are left for the next run.
    let units = handle.units()?;
    let wanted = marked(policy, &units, log.as_ref())?;
    // Under the clock: no subscription starts and no group commits while the hold is read
    // and the units go. The view checkpoint may still rise meanwhile (a flush), which only
    // makes the hold read here conservative.
    let clock = core.clock.lock();
    // `close` may have run while this waited for the clock.
    core.check_open()?;
    let holds = holds(core)?;
    let hold_position = holds.first().map_or(EventId::MAX, |h| h.position);
    let deletable = units[..wanted]
        .iter()
        .take_while(|u| u.last_event_id().is_none_or(|last| last <= hold_position))
        .count();
    let mut report = RetentionReport {
        hold_position,
        ..RetentionReport::default()
    };
    if deletable < wanted {
        let kept = &units[deletable..wanted];
        let wanted_up_to = kept
            .iter()
            .filter_map(LogUnit::last_event_id)
            .max()
            .unwrap_or(0);
        report.held_back = Some(HeldBack {
            units: kept.len(),
            events: kept.iter().map(LogUnit::event_count).sum(),
            bytes: kept.iter().map(|u| u.bytes).sum(),
            wanted_up_to,
            by: holds
                .iter()
                .filter(|h| h.position < wanted_up_to)
                .cloned()
                .collect(),
        });
    }
    let doomed = &units[..deletable];
    if let (Some(first), Some(last)) = (
        doomed.first().map(|u| u.first_event_id),
        doomed.iter().filter_map(LogUnit::last_event_id).max(),
    ) {
        let deleted = log.delete_range(first, last)?;
        report.units_deleted = doomed.len();
        report.events_deleted = deleted as u64;
        report.bytes_deleted = doomed.iter().map(|u| u.bytes).sum();
        report.deleted_up_to = Some(last);
    }
    drop(clock);
    report.oldest_event_id = log.oldest_event_id()?;
    if report.units_deleted > 0 {
        tracing::info!(
            units = report.units_deleted,
            events = report.events_deleted,
            bytes = report.bytes_deleted,
            oldest = report.oldest_event_id,
            "retention deleted log units"
        );
    }
    if let Some(held) = &report.held_back {
        let by: Vec<String> = held.by.iter().map(|h| h.holder.to_string()).collect();
        tracing::info!(
            units = held.units,
            events = held.events,
            by = ?by,
            "retention held back log units something still needs"
        );
    }
    counters.record(&report);
    Ok(report)
}
