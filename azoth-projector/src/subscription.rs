//! Subscriptions: named handlers fed with the log's events, in order, at least once.
//!
//! Each subscription runs on its own thread with a bounded channel. The writer publishes
//! every committed group (the encoded events, shared behind one `Arc`, so publishing costs
//! one allocation and a `try_send` per subscriber) and never waits: when a channel is full
//! the subscription is marked *lagging* and nothing more is sent to it. The thread then
//! reads the log from its own position (catch-up) and rejoins live delivery when it has
//! reached the end. A subscriber keeps its position (the last event its handler finished),
//! so a batch that overlaps what it has handled is trimmed and a batch that leaves a gap is
//! preceded by a read of the gap from the log: nothing is lost, nothing is delivered twice
//! within a run, order is the log's.
//!
//! Positions are durable: they are written to the canonical store's metadata under
//! `sub/<name>` in batches (every [`SubscriptionConfig::checkpoint_events`] events or
//! [`SubscriptionConfig::checkpoint_interval`]), never ahead of what the handler finished,
//! and after the log has been synced up to them (the write-ahead rule), so
//! [`SubscribeFrom::Stored`] resumes after a restart with no gap (at least once: events
//! after the last stored position are delivered again).

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use azoth_core::{
    AzothError, DatabaseEvent, DatabaseResult, EventHandler, EventId, Result, SyncMode,
    decode_event,
};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use parking_lot::{Mutex, RwLock};

use crate::async_database::AsyncDatabase;
use crate::database::Database;
use crate::engine::Core;

/// Metadata names of durable positions: `sub/<name>`.
const POSITION_PREFIX: &str = "sub/";
/// Metadata names of dead letters: `subdead/<name>/<event id, 20 digits>`. A prefix apart
/// from `sub/`, so listing positions never lists dead letters.
const DEAD_PREFIX: &str = "subdead/";
/// Metadata names of dead letters' events: `subdeadev/<name>/<event id, 20 digits>`, holding
/// the event as the log encodes it, so the dead letter can be handled later even after
/// retention has removed the event from the log.
const DEAD_EVENT_PREFIX: &str = "subdeadev/";
/// The longest subscription name, in bytes.
pub const MAX_SUBSCRIPTION_NAME_LEN: usize = 200;
/// How long a retry backoff sleeps at a time, so an `unsubscribe` is not kept waiting.
const SLEEP_SLICE: Duration = Duration::from_millis(5);
/// How long an idle stream reader waits at a time before it looks whether its consumer is
/// gone, so that a dropped stream ends even when no event follows.
const STREAM_CHECK: Duration = Duration::from_millis(100);

/// Tells a stream's reader that its consumer has dropped the stream.
type ConsumerGone = Box<dyn Fn() -> bool + Send>;

/// Where a new subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscribeFrom {
    /// From the first event the log holds.
    Beginning,
    /// After the newest event committed when `subscribe` is called: only new events.
    Now,
    /// Strictly after this event.
    After(EventId),
    /// After the position stored by an earlier run of the subscription with this name; from
    /// the beginning if none is stored.
    Stored,
}

/// What a subscription does with an event its handler keeps failing on (an `Err` or a
/// panic after every retry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Stop the subscription: its mode becomes [`SubscriptionMode::Failed`], its position
    /// stays before the event, and subscribing again under the same name (from
    /// [`SubscribeFrom::Stored`]) retries it. The default.
    #[default]
    Stop,
    /// Record the event as a dead letter ([`Database::dead_letters`](crate::Database::dead_letters))
    /// and go on with the next one.
    DeadLetter,
}

/// Whether [`Database::unsubscribe_with`](crate::Database::unsubscribe_with) keeps the stored
/// position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StoredPosition {
    /// Keep it: a later `subscribe(.., SubscribeFrom::Stored)` resumes there. The default.
    #[default]
    Keep,
    /// Remove it (and so release the log it held for retention).
    Forget,
}

/// How subscriptions behave; set with [`Config::subscriptions`](crate::Config::subscriptions).
/// Every setter's documentation ends with its default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionConfig {
    pub(crate) channel_capacity: usize,
    pub(crate) max_retries: u32,
    pub(crate) retry_backoff: Duration,
    pub(crate) max_retry_backoff: Duration,
    pub(crate) on_failure: FailurePolicy,
    pub(crate) checkpoint_events: u64,
    pub(crate) checkpoint_interval: Duration,
}

impl Default for SubscriptionConfig {
    fn default() -> Self {
        Self {
            channel_capacity: 1024,
            max_retries: 3,
            retry_backoff: Duration::from_millis(10),
            max_retry_backoff: Duration::from_secs(1),
            on_failure: FailurePolicy::Stop,
            checkpoint_events: 1024,
            checkpoint_interval: Duration::from_millis(200),
        }
    }
}

impl SubscriptionConfig {
    /// Commit groups a subscription's channel holds before the subscription falls back to
    /// reading the log. Default: 1024.
    pub fn channel_capacity(mut self, groups: usize) -> Self {
        self.channel_capacity = groups.max(1);
        self
    }

    /// Retries of a failing event before the [`FailurePolicy`] applies. Default: 3.
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// The first retry's wait; each next retry waits twice as long, up to `max`.
    /// Default: 10 ms, up to 1 s.
    pub fn retry_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.retry_backoff = first;
        self.max_retry_backoff = max.max(first);
        self
    }

    /// What happens to an event the handler keeps failing on. Default: [`FailurePolicy::Stop`].
    pub fn on_failure(mut self, policy: FailurePolicy) -> Self {
        self.on_failure = policy;
        self
    }

    /// Stores the position after this many handled events, or after `interval`, whichever
    /// comes first. Default: 1024 events or 200 ms.
    pub fn checkpoint_every(mut self, events: u64, interval: Duration) -> Self {
        self.checkpoint_events = events.max(1);
        self.checkpoint_interval = interval;
        self
    }
}

/// What a subscription is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SubscriptionMode {
    /// Fed by the writer through its channel.
    Live,
    /// Reading the log from its own position (it started behind, or fell behind).
    CatchUp,
    /// Stopped on an event its handler kept failing on (or on an error reading the log).
    Failed,
}

impl SubscriptionMode {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Live,
            1 => Self::CatchUp,
            _ => Self::Failed,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            Self::Live => 0,
            Self::CatchUp => 1,
            Self::Failed => 2,
        }
    }
}

/// The state of one subscription, in [`DatabaseStats`](crate::DatabaseStats).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscriptionStats {
    /// The subscription's name.
    pub name: String,
    /// The last event its handler finished (0: none).
    pub position: EventId,
    /// The last position written to the store.
    pub durable_position: EventId,
    /// Events committed after `position`.
    pub lag: u64,
    /// Live, catching up, or failed.
    pub mode: SubscriptionMode,
    /// Events handled since it was subscribed.
    pub delivered: u64,
    /// Failed handler calls (errors and panics), retries included.
    pub errors: u64,
    /// Events recorded as dead letters since it was subscribed.
    pub dead_letters: u64,
    /// Why it failed, when `mode` is `Failed`.
    pub failure: Option<String>,
}

/// An event a handler kept failing on, recorded under [`FailurePolicy::DeadLetter`] with the
/// event itself, so it can be inspected or handled again later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The event's id.
    pub event_id: EventId,
    /// The last error (or panic message) of the handler.
    pub error: String,
    /// The event the handler failed on. `None` only for dead letters recorded before events
    /// were kept with them; read those with
    /// [`Database::events_since`](crate::Database::events_since)`(event_id - 1)`.
    pub event: Option<DatabaseEvent>,
}

/// A committed group, as published to subscriptions: consecutive encoded events.
#[derive(Clone)]
pub(crate) struct Batch {
    first: EventId,
    events: Arc<Vec<Vec<u8>>>,
}

/// What the writer and the subscription's thread share.
struct Shared {
    name: String,
    durable: bool,
    /// The writer found the channel full: it sends nothing more until the thread clears this.
    lagging: AtomicBool,
    /// Cleared by `unsubscribe` (under `gate`): no handler call starts after that.
    active: AtomicBool,
    /// Held around every handler call and every checkpoint, so `unsubscribe` can wait for
    /// an in-flight call and know that none follows.
    gate: Mutex<()>,
    thread: Mutex<Option<ThreadId>>,
    position: AtomicU64,
    durable_position: AtomicU64,
    mode: AtomicU8,
    delivered: AtomicU64,
    errors: AtomicU64,
    dead_letters: AtomicU64,
    failure: Mutex<Option<String>>,
}

struct Live {
    tx: Sender<Batch>,
    shared: Arc<Shared>,
}

struct Running {
    shared: Arc<Shared>,
    handle: Option<JoinHandle<()>>,
}

/// The subscriptions of one database: the writer's publish list and the running threads.
#[derive(Default)]
pub(crate) struct Subscriptions {
    /// What the writer publishes to; read-locked once per group.
    live: RwLock<Vec<Live>>,
    running: Mutex<HashMap<String, Running>>,
    closed: AtomicBool,
    streams: AtomicU64,
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_SUBSCRIPTION_NAME_LEN || name.contains('/') {
        return Err(AzothError::Config(format!(
            "a subscription name must be 1..={MAX_SUBSCRIPTION_NAME_LEN} bytes without '/': {name:?}"
        )));
    }
    Ok(())
}

fn position_key(name: &str) -> String {
    format!("{POSITION_PREFIX}{name}")
}

fn decode_position(name: &str, bytes: &[u8]) -> Result<EventId> {
    let array: [u8; 8] = bytes.try_into().map_err(|_| {
        AzothError::Encoding(format!(
            "the stored position of subscription {name:?} is {} bytes, not 8",
            bytes.len()
        ))
    })?;
    Ok(u64::from_be_bytes(array))
}

/// The message of a caught panic, naming what panicked.
fn panic_message(what: &str, panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        format!("{what} panicked: {s}")
    } else if let Some(s) = panic.downcast_ref::<String>() {
        format!("{what} panicked: {s}")
    } else {
        format!("{what} panicked")
    }
}

impl Subscriptions {
    /// Sends a committed group to every live subscription. Never blocks: a full channel marks
    /// its subscription lagging, and it reads the group from the log instead. The caller
    /// holds the commit clock, so groups are published in id order.
    pub(crate) fn publish(&self, first: EventId, events: &mut Vec<Vec<u8>>) {
        let live = self.live.read();
        if live.is_empty() || events.is_empty() {
            // Left to the caller, who reuses the buffers.
            return;
        }
        let batch = Batch {
            first,
            events: Arc::new(std::mem::take(events)),
        };
        for sub in live.iter() {
            if sub.shared.lagging.load(Ordering::Acquire) {
                continue;
            }
            if let Err(TrySendError::Full(_)) = sub.tx.try_send(batch.clone()) {
                sub.shared.lagging.store(true, Ordering::Release);
            }
        }
    }

    /// The stored position of `name`, if any.
    pub(crate) fn stored_position(core: &Core, name: &str) -> Result<Option<EventId>> {
        check_name(name)?;
        core.view
            .store()?
            .get_metadata(&position_key(name))?
            .map(|b| decode_position(name, &b))
            .transpose()
    }

    pub(crate) fn subscribe(
        core: &Arc<Core>,
        name: &str,
        handler: Arc<dyn EventHandler>,
        from: SubscribeFrom,
    ) -> Result<()> {
        check_name(name)?;
        Self::start(core, name.to_owned(), true, handler, from, None)
    }

    /// A non-durable subscription under a generated name, for [`EventStream`]s. The name
    /// holds a `/`, which no subscription name may: a stream never takes the name of an
    /// application's subscription, nor can `unsubscribe` stop it.
    pub(crate) fn subscribe_stream(
        core: &Arc<Core>,
        handler: Arc<dyn EventHandler>,
        after: EventId,
        consumer_gone: ConsumerGone,
    ) -> Result<()> {
        let n = core.subscriptions.streams.fetch_add(1, Ordering::Relaxed);
        Self::start(
            core,
            format!("stream/{n}"),
            false,
            handler,
            SubscribeFrom::After(after),
            Some(consumer_gone),
        )
    }

    fn start(
        core: &Arc<Core>,
        name: String,
        durable: bool,
        handler: Arc<dyn EventHandler>,
        from: SubscribeFrom,
        consumer_gone: Option<ConsumerGone>,
    ) -> Result<()> {
        core.check_open()?;
        let subs = &core.subscriptions;
        let mut running = subs.running.lock();
        if let Some(existing) = running.get(&name) {
            let finished = existing.handle.as_ref().is_none_or(JoinHandle::is_finished);
            if !finished {
                return Err(AzothError::Config(format!(
                    "subscription {name:?} is already running"
                )));
            }
        }
        let store = core.view.store()?;
        let stored = if durable {
            store
                .get_metadata(&position_key(&name))?
                .map(|b| decode_position(&name, &b))
                .transpose()?
        } else {
            None
        };
        let (tx, rx) = crossbeam_channel::bounded(core.config.subscriptions.channel_capacity);
        // Registering under the commit clock gives `Now` an exact cut: every group after the
        // position read here is published to the new channel.
        let clock = core.clock.lock();
        // `close` may have run while this waited for the clock.
        core.check_open()?;
        let newest = clock.next_id.saturating_sub(1);
        let position = match from {
            SubscribeFrom::Beginning => 0,
            SubscribeFrom::Now => newest,
            SubscribeFrom::After(id) => id,
            SubscribeFrom::Stored => stored.unwrap_or(0),
        };
        // A stream has no failure state its consumer could read: refuse at once to start
        // after events retention has deleted (under the clock, so retention cannot run
        // between this check and the stream becoming a hold).
        if !durable && position != 0 {
            let oldest = core.log()?.oldest_event_id()?;
            if position.saturating_add(1) < oldest {
                return Err(AzothError::EventsDeleted {
                    from: position + 1,
                    to: oldest,
                });
            }
        }
        let shared = Arc::new(Shared {
            name: name.clone(),
            durable,
            // Starts by reading the log from its position up to the end, then goes live.
            lagging: AtomicBool::new(true),
            active: AtomicBool::new(true),
            gate: Mutex::new(()),
            thread: Mutex::new(None),
            position: AtomicU64::new(position),
            durable_position: AtomicU64::new(stored.unwrap_or(0)),
            mode: AtomicU8::new(SubscriptionMode::CatchUp.as_u8()),
            delivered: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            dead_letters: AtomicU64::new(0),
            failure: Mutex::new(None),
        });
        subs.live.write().push(Live {
            tx,
            shared: Arc::clone(&shared),
        });
        drop(clock);
        // Stored at once, so the position holds the log for retention and a restart resumes
        // here even if no event arrives before it.
        if durable && stored != Some(position) {
            if let Err(e) = core
                .view
                .put_metadata(&position_key(&name), &position.to_be_bytes())
            {
                subs.remove_live(&shared);
                return Err(e);
            }
            shared.durable_position.store(position, Ordering::Release);
        }
        let runner = Runner {
            core: Arc::clone(core),
            shared: Arc::clone(&shared),
            handler,
            rx,
            consumer_gone,
            position,
            since_checkpoint: 0,
            last_checkpoint: Instant::now(),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("azoth-sub-{name}"))
            .spawn(move || runner.run());
        let handle = match spawned {
            Ok(handle) => handle,
            Err(e) => {
                subs.remove_live(&shared);
                return Err(e.into());
            }
        };
        *shared.thread.lock() = Some(handle.thread().id());
        running.insert(
            name,
            Running {
                shared,
                handle: Some(handle),
            },
        );
        Ok(())
    }

    fn remove_live(&self, shared: &Arc<Shared>) {
        self.live
            .write()
            .retain(|l| !Arc::ptr_eq(&l.shared, shared));
    }

    /// Stops `name`: no handler call starts after this returns, and one in flight is waited
    /// for (unless this is called from the handler itself).
    pub(crate) fn unsubscribe(core: &Core, name: &str, keep: StoredPosition) -> Result<()> {
        check_name(name)?;
        let running = core.subscriptions.running.lock().remove(name);
        let Some(running) = running else {
            // Not running: forgetting a position kept by an earlier run is still asked for.
            if keep == StoredPosition::Forget && Self::stored_position(core, name)?.is_some() {
                return forget_position(core, name);
            }
            return Err(AzothError::NotFound(format!("subscription {name:?}")));
        };
        core.subscriptions.remove_live(&running.shared);
        stop(core, running, keep)
    }

    /// Stops every subscription, keeping positions; called on close, before the store goes.
    pub(crate) fn close(core: &Core) {
        core.subscriptions.closed.store(true, Ordering::Release);
        let all: Vec<Running> = core
            .subscriptions
            .running
            .lock()
            .drain()
            .map(|(_, r)| r)
            .collect();
        core.subscriptions.live.write().clear();
        for running in all {
            let name = running.shared.name.clone();
            if let Err(e) = stop(core, running, StoredPosition::Keep) {
                tracing::warn!(subscription = %name, error = %e, "storing the position on close failed");
            }
        }
    }

    pub(crate) fn stats(core: &Core, newest: EventId) -> Vec<SubscriptionStats> {
        let running = core.subscriptions.running.lock();
        let mut out: Vec<SubscriptionStats> = running
            .values()
            .filter(|r| r.shared.durable)
            .map(|r| {
                let s = &r.shared;
                let position = s.position.load(Ordering::Acquire);
                SubscriptionStats {
                    name: s.name.clone(),
                    position,
                    durable_position: s.durable_position.load(Ordering::Acquire),
                    lag: newest.saturating_sub(position),
                    mode: SubscriptionMode::from_u8(s.mode.load(Ordering::Acquire)),
                    delivered: s.delivered.load(Ordering::Relaxed),
                    errors: s.errors.load(Ordering::Relaxed),
                    dead_letters: s.dead_letters.load(Ordering::Relaxed),
                    failure: s.failure.lock().clone(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Every stored durable position, by name (running or not), for retention.
    pub(crate) fn durable_positions(core: &Core) -> Result<Vec<(String, EventId)>> {
        core.view
            .store()?
            .list_metadata(POSITION_PREFIX)?
            .into_iter()
            .map(|(key, bytes)| {
                let name = key.strip_prefix(POSITION_PREFIX).unwrap_or(&key).to_owned();
                let position = decode_position(&name, &bytes)?;
                Ok((name, position))
            })
            .collect()
    }

    /// The in-memory position of every registered subscription, whether durable, for
    /// retention: event streams hold the log only this way, and a durable subscription also
    /// holds it this way until its start position is stored. Read from the publish list,
    /// which `start` joins under the commit clock, so a caller holding the clock sees every
    /// subscription registered before it (and takes no lock `start` holds while it waits for
    /// the clock).
    pub(crate) fn registered_positions(core: &Core) -> Vec<(String, bool, EventId)> {
        core.subscriptions
            .live
            .read()
            .iter()
            .map(|l| {
                (
                    l.shared.name.clone(),
                    l.shared.durable,
                    l.shared.position.load(Ordering::Acquire),
                )
            })
            .collect()
    }

    pub(crate) fn lowest_durable_position(core: &Core) -> Result<Option<EventId>> {
        let mut lowest: Option<EventId> = None;
        for (key, bytes) in core.view.store()?.list_metadata(POSITION_PREFIX)? {
            let position = decode_position(&key, &bytes)?;
            lowest = Some(lowest.map_or(position, |l| l.min(position)));
        }
        Ok(lowest)
    }

    pub(crate) fn dead_letters(core: &Core, name: &str) -> Result<Vec<DeadLetter>> {
        check_name(name)?;
        let prefix = format!("{DEAD_PREFIX}{name}/");
        let store = core.view.store()?;
        store
            .list_metadata(&prefix)?
            .into_iter()
            .map(|(key, bytes)| {
                let digits = key.strip_prefix(&prefix).unwrap_or(&key);
                let event_id = digits
                    .parse::<EventId>()
                    .map_err(|e| AzothError::Encoding(format!("dead letter name {key:?}: {e}")))?;
                let event = store
                    .get_metadata(&dead_event_key(name, event_id))?
                    .map(|encoded| decode_event(&encoded))
                    .transpose()?;
                Ok(DeadLetter {
                    event_id,
                    error: String::from_utf8_lossy(&bytes).into_owned(),
                    event,
                })
            })
            .collect()
    }
}

fn dead_event_key(name: &str, id: EventId) -> String {
    format!("{DEAD_EVENT_PREFIX}{name}/{id:020}")
}

fn forget_position(core: &Core, name: &str) -> Result<()> {
    core.view.apply_metadata(vec![(position_key(name), None)])
}

fn stop(core: &Core, mut running: Running, keep: StoredPosition) -> Result<()> {
    let shared = &running.shared;
    let own_thread = *shared.thread.lock() == Some(std::thread::current().id());
    shared.active.store(false, Ordering::Release);
    if !own_thread {
        // Waits for a handler call or checkpoint in flight; none starts after it.
        drop(shared.gate.lock());
        if let Some(handle) = running.handle.take() {
            if handle.join().is_err() {
                tracing::error!(subscription = %shared.name, "the subscription thread panicked");
            }
        }
    }
    if !shared.durable {
        return Ok(());
    }
    match keep {
        StoredPosition::Forget => forget_position(core, &shared.name),
        StoredPosition::Keep => {
            let position = shared.position.load(Ordering::Acquire);
            if position > shared.durable_position.load(Ordering::Acquire) {
                store_position(core, &shared.name, position)?;
                shared.durable_position.store(position, Ordering::Release);
            }
            Ok(())
        }
    }
}

/// Writes a position, after syncing the log up to it: a stored position must never name an
/// event a crash could take back.
fn store_position(core: &Core, name: &str, position: EventId) -> Result<()> {
    if core.config.sync_mode != SyncMode::Always {
        core.log()?.sync()?;
    }
    core.view
        .put_metadata(&position_key(name), &position.to_be_bytes())
}

/// Why a subscription thread stops.
enum Halt {
    /// Unsubscribed, closed, or the handler returned `Closed`.
    Stopped,
    /// The handler kept failing (policy `Stop`), or the log could not be read.
    Failed(String),
}

impl From<AzothError> for Halt {
    fn from(e: AzothError) -> Self {
        match e {
            AzothError::Closed => Halt::Stopped,
            other => Halt::Failed(other.to_string()),
        }
    }
}

struct Runner {
    core: Arc<Core>,
    shared: Arc<Shared>,
    handler: Arc<dyn EventHandler>,
    rx: Receiver<Batch>,
    /// A stream's: its consumer dropped it, so the reader ends.
    consumer_gone: Option<ConsumerGone>,
    position: EventId,
    since_checkpoint: u64,
    last_checkpoint: Instant,
}

impl Runner {
    fn run(mut self) {
        // A panic outside the handler (which has its own catch) would end the thread with
        // the subscription still listed as running: it fails visibly instead.
        let outcome =
            catch_unwind(AssertUnwindSafe(|| self.deliver_all())).unwrap_or_else(|panic| {
                Halt::Failed(panic_message("the subscription thread", panic.as_ref()))
            });
        let shared = Arc::clone(&self.shared);
        // Stored before the mode says `Failed`, so whoever sees a failed subscription also
        // finds its position stored (checkpoint does nothing for streams).
        if let Err(e) = self.checkpoint(true) {
            tracing::warn!(subscription = %shared.name, error = %e, "storing the position failed");
        }
        if let Halt::Failed(reason) = outcome {
            tracing::error!(subscription = %shared.name, position = self.position, %reason, "subscription failed");
            self.core.subscriptions.remove_live(&shared);
            *shared.failure.lock() = Some(reason);
            shared
                .mode
                .store(SubscriptionMode::Failed.as_u8(), Ordering::Release);
        }
        if !shared.durable {
            // Nobody unsubscribes a stream: it ends when its receiver goes.
            self.core.subscriptions.remove_live(&shared);
            let mut running = self.core.subscriptions.running.lock();
            if running
                .get(&shared.name)
                .is_some_and(|r| Arc::ptr_eq(&r.shared, &shared))
            {
                running.remove(&shared.name);
            }
        }
    }

    fn deliver_all(&mut self) -> Halt {
        let mut wait = self
            .core
            .config
            .subscriptions
            .checkpoint_interval
            .max(Duration::from_millis(1));
        if self.consumer_gone.is_some() {
            wait = wait.min(STREAM_CHECK);
        }
        loop {
            if !self.shared.active.load(Ordering::Acquire) {
                return Halt::Stopped;
            }
            if self.consumer_gone.as_ref().is_some_and(|gone| gone()) {
                return Halt::Stopped;
            }
            if self.shared.lagging.load(Ordering::Acquire) {
                if let Err(h) = self.catch_up() {
                    return h;
                }
                continue;
            }
            match self.rx.recv_timeout(wait) {
                Ok(batch) => {
                    if let Err(h) = self.deliver_batch(&batch) {
                        return h;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Halt::Stopped,
            }
            if let Err(e) = self.checkpoint(false) {
                tracing::warn!(subscription = %self.shared.name, error = %e, "storing the position failed; will retry");
            }
        }
    }

    /// Reads the log from the position to its end, then rejoins live delivery.
    fn catch_up(&mut self) -> std::result::Result<(), Halt> {
        self.set_mode(SubscriptionMode::CatchUp);
        // Cleared before draining and reading: every group dropped by the drain was appended
        // before it, so the read below sees it; every group published after the clear is in
        // the channel, and what overlaps the read is trimmed by position.
        self.shared.lagging.store(false, Ordering::Release);
        while self.rx.try_recv().is_ok() {}
        self.read_log(None)?;
        self.set_mode(SubscriptionMode::Live);
        Ok(())
    }

    fn set_mode(&self, mode: SubscriptionMode) {
        self.shared.mode.store(mode.as_u8(), Ordering::Release);
    }

    /// Delivers the log's events after the position, up to `end` (exclusive) or its end.
    fn read_log(&mut self, end: Option<EventId>) -> std::result::Result<(), Halt> {
        let log = self.core.log()?;
        let iter = log.iter_range(self.position.saturating_add(1), end)?;
        for item in iter {
            let (id, bytes) = item?;
            if id <= self.position {
                continue;
            }
            self.deliver(id, &bytes)?;
            if let Err(e) = self.checkpoint(false) {
                tracing::warn!(subscription = %self.shared.name, error = %e, "storing the position failed; will retry");
            }
        }
        Ok(())
    }

    fn deliver_batch(&mut self, batch: &Batch) -> std::result::Result<(), Halt> {
        if batch.first > self.position.saturating_add(1) {
            // Groups were skipped while the subscription was lagging: read them from the log.
            self.set_mode(SubscriptionMode::CatchUp);
            self.read_log(Some(batch.first))?;
            self.set_mode(SubscriptionMode::Live);
        }
        for (offset, bytes) in (0u64..).zip(batch.events.iter()) {
            let id = batch.first + offset;
            if id <= self.position {
                continue;
            }
            self.deliver(id, bytes)?;
        }
        Ok(())
    }

    /// Calls the handler on one event, with retries, and advances the position.
    fn deliver(&mut self, id: EventId, bytes: &[u8]) -> std::result::Result<(), Halt> {
        // A subscription from the beginning (position 0) starts at the oldest event left; any
        // other must not go on past events it never saw (retention deleted them).
        if id != self.position.saturating_add(1) && self.position != 0 {
            let gone = AzothError::EventsDeleted {
                from: self.position.saturating_add(1),
                to: id,
            };
            return Err(Halt::Failed(gone.to_string()));
        }
        let event: DatabaseEvent = decode_event(bytes)
            .map_err(|e| Halt::Failed(format!("event {id} does not decode: {e}")))?;
        let config = &self.core.config.subscriptions;
        let mut attempt: u32 = 0;
        let mut backoff = config.retry_backoff;
        loop {
            let outcome = {
                let _gate = self.shared.gate.lock();
                if !self.shared.active.load(Ordering::Acquire) {
                    return Err(Halt::Stopped);
                }
                let outcome = catch_unwind(AssertUnwindSafe(|| self.handler.handle(&event)));
                if matches!(outcome, Ok(Ok(()))) {
                    // Under the gate, so an `unsubscribe` that waited for this call stores
                    // a position that includes it.
                    self.shared.position.store(id, Ordering::Release);
                }
                outcome
            };
            let error = match outcome {
                Ok(Ok(())) => break,
                Ok(Err(AzothError::Closed)) => return Err(Halt::Stopped),
                Ok(Err(e)) => e.to_string(),
                Err(panic) => panic_message("handler", panic.as_ref()),
            };
            self.shared.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(subscription = %self.shared.name, event = id, attempt, %error, "handler failed");
            if attempt >= config.max_retries {
                match config.on_failure {
                    FailurePolicy::Stop => {
                        return Err(Halt::Failed(format!("event {id}: {error}")));
                    }
                    FailurePolicy::DeadLetter => {
                        self.dead_letter(id, bytes, &error)?;
                        break;
                    }
                }
            }
            attempt += 1;
            self.sleep(backoff)?;
            backoff = backoff.saturating_mul(2).min(config.max_retry_backoff);
        }
        self.position = id;
        self.shared.position.store(id, Ordering::Release);
        self.shared.delivered.fetch_add(1, Ordering::Relaxed);
        self.since_checkpoint += 1;
        Ok(())
    }

    fn dead_letter(&self, id: EventId, bytes: &[u8], error: &str) -> std::result::Result<(), Halt> {
        if self.shared.durable {
            let name = &self.shared.name;
            // One store transaction: a dead letter is never listed without its event.
            self.core.view.apply_metadata(vec![
                (
                    format!("{DEAD_PREFIX}{name}/{id:020}"),
                    Some(error.as_bytes().to_vec()),
                ),
                (dead_event_key(name, id), Some(bytes.to_vec())),
            ])?;
        }
        self.shared.dead_letters.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Sleeps in short slices, so an unsubscribe during a backoff does not wait for it.
    fn sleep(&self, total: Duration) -> std::result::Result<(), Halt> {
        // `None`: longer than the clock can count, so until the subscription stops.
        let until = Instant::now().checked_add(total);
        loop {
            if !self.shared.active.load(Ordering::Acquire) {
                return Err(Halt::Stopped);
            }
            let now = Instant::now();
            let left = match until {
                Some(until) if now >= until => return Ok(()),
                Some(until) => until - now,
                None => SLEEP_SLICE,
            };
            std::thread::sleep(left.min(SLEEP_SLICE));
        }
    }

    /// Stores the position when enough events or time have passed (or `force`).
    fn checkpoint(&mut self, force: bool) -> Result<()> {
        if !self.shared.durable || self.since_checkpoint == 0 {
            return Ok(());
        }
        let config = &self.core.config.subscriptions;
        let due = force
            || self.since_checkpoint >= config.checkpoint_events
            || self.last_checkpoint.elapsed() >= config.checkpoint_interval;
        if !due {
            return Ok(());
        }
        let _gate = self.shared.gate.lock();
        // After an unsubscribe the unsubscriber owns the stored position (it may forget it).
        if !self.shared.active.load(Ordering::Acquire) {
            return Ok(());
        }
        store_position(&self.core, &self.shared.name, self.position)?;
        self.shared
            .durable_position
            .store(self.position, Ordering::Release);
        self.since_checkpoint = 0;
        self.last_checkpoint = Instant::now();
        Ok(())
    }
}

/// Events from a position, for tokio consumers: what
/// [`AsyncDatabase::events_from`](crate::AsyncDatabase::events_from) returns. It reads the log
/// from the position and then follows new commits; it ends (`None`) when the database closes.
/// Dropping it stops the reading. Read it with [`next`](Self::next), or as a
/// [`futures_core::Stream`] with any stream combinator library.
#[derive(Debug)]
pub struct EventStream {
    rx: tokio::sync::mpsc::Receiver<(EventId, DatabaseEvent)>,
}

impl EventStream {
    pub(crate) fn start(core: &Arc<Core>, after: EventId, buffer: usize) -> Result<Self> {
        let (tx, rx) = tokio::sync::mpsc::channel(buffer.max(1));
        let watch = tx.clone();
        let weak = Arc::downgrade(core);
        let handler = move |event: &DatabaseEvent| -> Result<()> {
            // Waiting here is fine: this is the stream's own subscription thread, and the
            // writer never waits for it (it falls back to the log). It waits in short sleeps
            // rather than `blocking_send`, so closing the database is not held up by a
            // consumer that stopped reading.
            let mut item = (event.event_id(), event.clone());
            loop {
                match tx.try_send(item) {
                    Ok(()) => return Ok(()),
                    Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {
                        return Err(AzothError::Closed);
                    }
                    Err(tokio::sync::mpsc::error::TrySendError::Full(back)) => {
                        match weak.upgrade() {
                            Some(core) if core.check_open().is_ok() => {}
                            _ => return Err(AzothError::Closed),
                        }
                        item = back;
                        std::thread::sleep(SLEEP_SLICE);
                    }
                }
            }
        };
        Subscriptions::subscribe_stream(
            core,
            Arc::new(handler),
            after,
            Box::new(move || watch.is_closed()),
        )?;
        Ok(Self { rx })
    }

    /// The next event and its id, or `None` once the database has closed.
    pub async fn next(&mut self) -> Option<(EventId, DatabaseEvent)> {
        self.rx.recv().await
    }

    /// The underlying receiver, e.g. for `tokio_stream::wrappers::ReceiverStream`.
    pub fn into_receiver(self) -> tokio::sync::mpsc::Receiver<(EventId, DatabaseEvent)> {
        self.rx
    }
}

/// The [`futures_core::Stream`] of events, for `StreamExt` combinators and `select!` loops;
/// the same items as [`EventStream::next`].
impl futures_core::Stream for EventStream {
    type Item = (EventId, DatabaseEvent);

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl Database {
    /// Starts the subscription `name`: `handler` receives every event after the position
    /// `from` names, in order, on the subscription's own thread, and then every event
    /// committed later. Writers never wait for it; a handler that falls behind is fed from
    /// the log until it has caught up.
    ///
    /// The position (the last event the handler finished) is stored under `name` at once and
    /// then in batches (see [`SubscriptionConfig::checkpoint_every`]), so after a restart
    /// [`SubscribeFrom::Stored`] resumes where it stopped: events after the last stored
    /// position are delivered again (at least once). A failing handler is retried, then
    /// stopped or dead-lettered per [`SubscriptionConfig::on_failure`]; a panic counts as a
    /// failure and harms only this subscription. A handler returning
    /// [`AzothError::Closed`] ends its subscription quietly.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use azoth_projector::{Config, Database, SubscribeFrom, SyncMode};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let db = Database::open_with(Config::new(dir.path()).sync_mode(SyncMode::Never))?;
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let sink = Arc::clone(&seen);
    /// db.subscribe("audit", move |e: &azoth_core::DatabaseEvent| {
    ///     sink.lock().unwrap().push(e.event_id());
    ///     Ok(())
    /// }, SubscribeFrom::Beginning)?;
    /// db.put(b"k", b"v")?;
    /// while seen.lock().unwrap().len() < 1 {
    ///     std::thread::sleep(std::time::Duration::from_millis(1));
    /// }
    /// db.unsubscribe("audit")?;
    /// assert_eq!(*seen.lock().unwrap(), vec![1]);
    /// # Ok::<(), azoth_core::AzothError>(())
    /// ```
    ///
    /// # Errors
    /// `Config` if the name is empty, longer than [`MAX_SUBSCRIPTION_NAME_LEN`] or holds a
    /// `/`, or if a subscription of that name is running; `Closed`; errors of the store
    /// reading or writing the position; I/O errors starting the thread.
    pub fn subscribe(
        &self,
        name: &str,
        handler: impl EventHandler,
        from: SubscribeFrom,
    ) -> Result<()> {
        Subscriptions::subscribe(self.core_arc(), name, Arc::new(handler), from)
    }

    /// Stops the subscription `name` and keeps its stored position: no handler call starts
    /// after this returns, and a call in flight is waited for (unless this is called from
    /// that handler). The position of the last event handled is stored.
    ///
    /// # Errors
    /// `NotFound` if no subscription of that name is running (a failed one still counts as
    /// running until unsubscribed); errors of the store writing the position.
    pub fn unsubscribe(&self, name: &str) -> Result<()> {
        Subscriptions::unsubscribe(self.core_arc(), name, StoredPosition::Keep)
    }

    /// [`unsubscribe`](Self::unsubscribe), keeping or forgetting the stored position.
    /// Forgetting also works for a subscription that is not running but has a position
    /// stored by an earlier run.
    ///
    /// # Errors
    /// As [`unsubscribe`](Self::unsubscribe).
    pub fn unsubscribe_with(&self, name: &str, position: StoredPosition) -> Result<()> {
        Subscriptions::unsubscribe(self.core_arc(), name, position)
    }

    /// The position stored for the subscription `name` (the last event its handler
    /// finished, as of its last checkpoint), or `None`.
    ///
    /// # Errors
    /// `Config` for an invalid name; `Closed`; errors of the store.
    pub fn subscription_position(&self, name: &str) -> Result<Option<EventId>> {
        self.core_arc().check_open()?;
        Subscriptions::stored_position(self.core_arc(), name)
    }

    /// The events the subscription `name` gave up on under [`FailurePolicy::DeadLetter`],
    /// in id order; they survive restarts.
    ///
    /// # Errors
    /// `Config` for an invalid name; `Closed`; errors of the store; `Encoding` for a
    /// damaged entry.
    pub fn dead_letters(&self, name: &str) -> Result<Vec<DeadLetter>> {
        self.core_arc().check_open()?;
        Subscriptions::dead_letters(self.core_arc(), name)
    }

    /// The lowest position stored by any durable subscription, running or not, or `None`
    /// if there is none: retention must keep every event after it.
    ///
    /// # Errors
    /// `Closed`; errors of the store; `Encoding` for a damaged position.
    pub fn lowest_durable_position(&self) -> Result<Option<EventId>> {
        self.core_arc().check_open()?;
        Subscriptions::lowest_durable_position(self.core_arc())
    }
}

async fn on_blocking_pool<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        AzothError::Io(std::io::Error::other(format!(
            "a database task failed: {e}"
        )))
    })?
}

impl AsyncDatabase {
    /// Starts the subscription `name` (the seed API): from its stored position if an
    /// earlier run stored one, otherwise from now (only events committed from here on).
    /// Errors are logged (`tracing`), not returned; use
    /// [`subscribe_from`](Self::subscribe_from) to choose the start and see errors.
    pub async fn subscribe(&self, name: String, handler: Box<dyn EventHandler>) {
        let db = self.database().clone();
        let started = on_blocking_pool(move || {
            let from = if db.subscription_position(&name)?.is_some() {
                SubscribeFrom::Stored
            } else {
                SubscribeFrom::Now
            };
            Subscriptions::subscribe(db.core_arc(), &name, Arc::from(handler), from)
        })
        .await;
        if let Err(e) = started {
            tracing::error!(error = %e, "subscribe failed");
        }
    }

    /// Stops the subscription `name`, keeping its position, as [`Database::unsubscribe`]
    /// (the seed API). Errors (such as no subscription of that name) are logged, not
    /// returned.
    pub async fn unsubscribe(&self, name: &str) {
        let db = self.database().clone();
        let name = name.to_owned();
        if let Err(e) = on_blocking_pool(move || db.unsubscribe(&name)).await {
            tracing::warn!(error = %e, "unsubscribe failed");
        }
    }

    /// Starts the subscription `name` from `from`, as [`Database::subscribe`].
    ///
    /// # Errors
    /// As [`Database::subscribe`].
    pub async fn subscribe_from(
        &self,
        name: String,
        handler: Box<dyn EventHandler>,
        from: SubscribeFrom,
    ) -> DatabaseResult<()> {
        let db = self.database().clone();
        on_blocking_pool(move || {
            Subscriptions::subscribe(db.core_arc(), &name, Arc::from(handler), from)
        })
        .await
    }

    /// The events strictly after `after`, then every event committed later, as an
    /// [`EventStream`]: the log is read from `after` (live and archived parts alike, as
    /// the log's `iter_range` serves them), and new commits follow without polling.
    ///
    /// # Errors
    /// `Closed`; [`EventsDeleted`](AzothError::EventsDeleted) if retention has deleted events
    /// after `after` (a stream never skips them; `after = 0` starts at the oldest event
    /// left); I/O errors starting the reader thread.
    pub async fn events_from(&self, after: EventId) -> DatabaseResult<EventStream> {
        let db = self.database().clone();
        on_blocking_pool(move || EventStream::start(db.core_arc(), after, 1024)).await
    }
}
