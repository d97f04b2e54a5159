//! [`Core`]: the state every handle shares — the view, the writer, the log — and the work
//! behind the handles: committing a group, replaying the log, flushing, closing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use azoth_core::{
    AzothError, CanonicalStore, DatabaseEvent, DirLock, EventId, EventLog, Location, OperationId,
    Result, StoreWrite, Timestamp, decode_event, encode_event_into,
};
use crossbeam_channel::{Receiver, Sender};
use parking_lot::{Mutex, RwLock};

use crate::backend::LogHandle;
use crate::config::Config;
use crate::memtable::PREFETCH_IN_APPLY_FROM;
use crate::projection::Projector;
use crate::stats::LatencyHistogram;
use crate::subscription::Subscriptions;
use crate::transaction::ReadSet;
use crate::view::View;
use crate::writer::{Draft, GroupCommitter, Ids, Outcome, Request, Submitted, Writer};

/// How many times `memtable_size` replay lets the memtable grow before it flushes. A running
/// database holds up to twice `memtable_size` in its active memtable (writers then stall for
/// a flush) besides the frozen one being flushed, so the unflushed tail it leaves replays
/// with no flush at all — a flush mid-replay was most of the open time — while a tail from
/// a larger memtable setting or a foreign writer still replays in bounded memory. The
/// background flusher takes the memtable down after the open.
const REPLAY_MEMTABLE_FACTOR: usize = 4;

/// Encoded-event buffers kept for the next group, at most this many...
const SPARE_BUFFERS: usize = 1024;
/// ...and none larger than this, so that one large event does not stay allocated.
const SPARE_BUFFER_BYTES: usize = 4096;
/// The group lists kept between groups hold at most this many entries' room: one huge batch
/// must not leave its lists allocated for good.
const KEPT_GROUP_ROOM: usize = 4096;

/// What only the group leader touches (and `rebuild_view`, to hold writers off).
pub(crate) struct Clock {
    pub(crate) next_id: EventId,
    last_timestamp: Timestamp,
    /// The group's encoded events, and its writes to the view: kept from group to group so
    /// that a commit allocates nothing for them.
    encoded: Vec<Vec<u8>>,
    writes: Vec<StoreWrite>,
    /// Encoding buffers of earlier groups, for the next one's events.
    spare: Vec<Vec<u8>>,
}

impl Clock {
    /// An empty buffer to encode an event into.
    fn buffer(&mut self) -> Vec<u8> {
        self.spare.pop().unwrap_or_default()
    }

    /// Keeps the group's encoding buffers (those the subscriptions did not take) for the next,
    /// and its lists, unless a large group left them large.
    fn recycle(&mut self) {
        for mut buf in self.encoded.drain(..) {
            if self.spare.len() < SPARE_BUFFERS && buf.capacity() <= SPARE_BUFFER_BYTES {
                buf.clear();
                self.spare.push(buf);
            }
        }
        if self.encoded.capacity() > KEPT_GROUP_ROOM {
            self.encoded = Vec::new();
        }
        if self.writes.capacity() > KEPT_GROUP_ROOM {
            self.writes = Vec::new();
        }
    }
}

pub(crate) struct Core {
    pub(crate) config: Config,
    /// Projections the view was built with that this open lacks (see
    /// `projection::missing_projections`): application events are refused while non-zero.
    missing_projections: usize,
    pub(crate) view: View,
    pub(crate) writer: Writer,
    log: RwLock<Option<LogHandle>>,
    pub(crate) clock: Mutex<Clock>,
    closed: AtomicBool,
    pub(crate) write_latency: LatencyHistogram,
    pub(crate) read_latency: LatencyHistogram,
    pub(crate) events_committed: AtomicU64,
    flusher: Mutex<Option<(Sender<()>, JoinHandle<()>)>>,
    /// The thread that leads commit groups for async callers (see `writer`).
    task_leader: Mutex<Option<JoinHandle<()>>>,
    /// Wakes the flusher early when the memtable is full.
    nudge: Mutex<Option<Sender<()>>>,
    /// `Database::transact` attempts share it; an attempt after repeated conflicts takes it
    /// exclusively, so that it cannot be starved.
    pub(crate) transact_gate: RwLock<()>,
    dir_lock: Mutex<Option<DirLock>>,
    /// Where committed groups are published, and the subscription threads.
    pub(crate) subscriptions: Subscriptions,
}

fn now_micros() -> Timestamp {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

impl Draft {
    fn into_event(self, operation_id: OperationId) -> DatabaseEvent {
        match self {
            Draft::Write(operation) => DatabaseEvent::WriteEvent {
                operation,
                operation_id,
            },
            Draft::App { kind, payload } => DatabaseEvent::AppEvent {
                kind,
                payload,
                operation_id,
            },
            Draft::Compaction { level } => DatabaseEvent::CompactionEvent {
                level,
                operation_id,
            },
            Draft::Read { key } => DatabaseEvent::ReadEvent { key, operation_id },
        }
    }
}

/// The same error for every caller of a failed group (`AzothError` is not `Clone`).
pub(crate) fn share_error(e: &AzothError) -> AzothError {
    match e {
        AzothError::Io(io) => AzothError::Io(std::io::Error::new(io.kind(), io.to_string())),
        AzothError::Corruption { location, detail } => AzothError::Corruption {
            location: location.clone(),
            detail: detail.clone(),
        },
        AzothError::InvalidEventId { expected, got } => AzothError::InvalidEventId {
            expected: *expected,
            got: *got,
        },
        AzothError::Locked { path } => AzothError::Locked { path: path.clone() },
        AzothError::Closed => AzothError::Closed,
        AzothError::Poisoned { detail } => AzothError::Poisoned {
            detail: detail.clone(),
        },
        AzothError::ReadOnly => AzothError::ReadOnly,
        AzothError::Encoding(s) => AzothError::Encoding(s.clone()),
        AzothError::Config(s) => AzothError::Config(s.clone()),
        AzothError::NotFound(s) => AzothError::NotFound(s.clone()),
        AzothError::ProjectionPanicked { kind, detail } => AzothError::ProjectionPanicked {
            kind: kind.clone(),
            detail: detail.clone(),
        },
        other => AzothError::Io(std::io::Error::other(other.to_string())),
    }
}

impl Core {
    /// Opens the view over `store` and replays the log's unflushed tail into it.
    pub(crate) fn open(
        config: Config,
        log: LogHandle,
        store: Arc<dyn CanonicalStore>,
        dir_lock: Option<DirLock>,
    ) -> Result<Arc<Self>> {
        let raw_log = log.log();
        let checkpoint = store.checkpoint()?;
        let next_id = raw_log.next_event_id()?;
        let newest = next_id.saturating_sub(1);
        if checkpoint > newest {
            return Err(AzothError::corruption(
                Location::default().at_event(checkpoint),
                format!(
                    "the view's checkpoint {checkpoint} is ahead of the log's newest event {newest}"
                ),
            ));
        }
        let last_timestamp = match raw_log.get(newest)? {
            Some(bytes) if newest > 0 => decode_event(&bytes)?.operation_id().timestamp,
            _ => 0,
        };
        let missing_projections = crate::projection::missing_projections(&config, store.as_ref())?;
        let writer = Writer::new(config.group_commit_cap, config.write_queue_capacity);
        let core = Arc::new(Self {
            missing_projections,
            view: View::new(Arc::clone(&store), checkpoint, config.memtable_size),
            writer,
            log: RwLock::new(Some(log)),
            clock: Mutex::new(Clock {
                next_id,
                last_timestamp,
                encoded: Vec::new(),
                writes: Vec::new(),
                spare: Vec::new(),
            }),
            closed: AtomicBool::new(false),
            write_latency: LatencyHistogram::new(),
            read_latency: LatencyHistogram::new(),
            events_committed: AtomicU64::new(0),
            flusher: Mutex::new(None),
            task_leader: Mutex::new(None),
            nudge: Mutex::new(None),
            transact_gate: RwLock::new(()),
            dir_lock: Mutex::new(dir_lock),
            subscriptions: Subscriptions::default(),
            config,
        });
        let replayed = core.replay_into(&core.view, raw_log.as_ref(), checkpoint + 1, next_id)?;
        if !core.config.projections.is_empty() {
            crate::projection::record_projections(store.as_ref(), core.config.projections.len())?;
        }
        tracing::info!(
            checkpoint,
            replayed,
            newest,
            "opened the database and replayed the log's unflushed tail"
        );
        core.start_flusher()?;
        core.start_task_leader()?;
        if core.view.active_bytes() > core.config.memtable_size {
            core.nudge_flusher();
        }
        Ok(core)
    }

    /// Replays events `[from, to)` of `log` into `view` through the projections; returns how
    /// many. Flushes `view` whenever its memtable outgrows [`REPLAY_MEMTABLE_FACTOR`] times
    /// the configured size, so replay memory stays bounded.
    pub(crate) fn replay_into(
        &self,
        view: &View,
        log: &dyn EventLog,
        from: EventId,
        to: EventId,
    ) -> Result<u64> {
        let projector = Projector {
            projections: &self.config.projections,
            view,
            max_value_len: self.config.max_value_len,
            missing_projections: self.missing_projections,
        };
        let flush_above = REPLAY_MEMTABLE_FACTOR.saturating_mul(self.config.memtable_size);
        crate::replay::replay(&projector, log, from, to, |view| {
            if view.active_bytes() > flush_above {
                view.flush(log)?;
            }
            Ok(())
        })
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(AzothError::Closed)
        } else {
            Ok(())
        }
    }

    pub(crate) fn log_handle(&self) -> Result<LogHandle> {
        self.log.read().clone().ok_or(AzothError::Closed)
    }

    pub(crate) fn log(&self) -> Result<Arc<dyn EventLog>> {
        Ok(self.log_handle()?.log())
    }

    /// Queues drafts as one atomic request and waits for its group to commit.
    pub(crate) fn write(&self, drafts: Vec<Draft>) -> Outcome {
        self.check_open()?;
        let timing = self.write_latency.start();
        let outcome = self.writer.submit(Request::new(drafts, None), self);
        self.write_latency.finish(timing);
        outcome
    }

    /// As [`write`](Self::write), for a transaction: the group leader validates `reads`
    /// before giving ids; a `Conflict` outcome means nothing was written.
    /// As [`write`](Self::write) for an async caller: the request is handed to the writer
    /// and the task awaits its outcome, never blocking its thread. Only when the queue is
    /// full (backpressure) does the request wait for room on tokio's blocking pool.
    pub(crate) async fn write_task(self: Arc<Self>, drafts: Vec<Draft>) -> Outcome {
        self.check_open()?;
        let timing = self.write_latency.start();
        let request = Request::new(drafts, None);
        let outcome = match self.writer.submit_task(request) {
            Submitted::Queued(rx) => rx.await.unwrap_or(Err(AzothError::Closed)),
            Submitted::Refused(e) => Err(e),
            Submitted::Full(request) => {
                let core = Arc::clone(&self);
                tokio::task::spawn_blocking(move || core.writer.submit(request, &*core))
                    .await
                    .map_err(|e| {
                        AzothError::Io(std::io::Error::other(format!(
                            "a database task failed: {e}"
                        )))
                    })?
            }
        };
        self.write_latency.finish(timing);
        outcome
    }

    /// Starts the thread that leads commit groups on behalf of async callers.
    fn start_task_leader(self: &Arc<Self>) -> Result<()> {
        let (wake_tx, wake_rx) = crossbeam_channel::unbounded::<()>();
        let core = Arc::downgrade(self);
        let handle = std::thread::Builder::new()
            .name("azoth-writer".into())
            .spawn(move || {
                while wake_rx.recv().is_ok() {
                    let Some(core) = core.upgrade() else { return };
                    core.writer.lead_tasks(&*core);
                }
            })?;
        self.writer.set_task_leader(Some(wake_tx));
        *self.task_leader.lock() = Some(handle);
        Ok(())
    }

    pub(crate) fn write_validated(&self, drafts: Vec<Draft>, reads: ReadSet) -> Outcome {
        self.check_open()?;
        let timing = self.write_latency.start();
        let outcome = self.writer.submit(Request::new(drafts, Some(reads)), self);
        self.write_latency.finish(timing);
        outcome
    }

    pub(crate) fn flush(&self) -> Result<()> {
        let log = self.log()?;
        self.view.flush(log.as_ref())
    }

    /// After a group: wake the flusher at the memtable size. At twice that size the flusher
    /// is behind: wait for its flush in progress and hand it this memtable, so that writing
    /// and flushing overlap (a writer that flushed itself left the flusher idle meanwhile);
    /// if the flusher's last flush failed, flush here, holding the writers back, so that
    /// memory does not grow without bound.
    fn after_group(&self) {
        let active = self.view.active_bytes();
        if active > self.config.memtable_size.saturating_mul(2) {
            let handed = match self.view.hand_over_to_flush() {
                Ok(handed) => handed,
                Err(e) => {
                    tracing::warn!(error = %e, "freezing the memtable failed");
                    false
                }
            };
            if handed {
                self.nudge_flusher();
            } else if let Err(e) = self.flush() {
                tracing::warn!(error = %e, "flush under memory pressure failed");
            }
        } else if active > self.config.memtable_size {
            self.nudge_flusher();
        }
    }

    /// Wakes the background flusher now rather than at its interval.
    fn nudge_flusher(&self) {
        if let Some(nudge) = self.nudge.lock().as_ref() {
            let _ = nudge.try_send(());
        }
    }

    fn start_flusher(self: &Arc<Self>) -> Result<()> {
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(1);
        let (nudge_tx, nudge_rx) = crossbeam_channel::bounded::<()>(1);
        let core = Arc::clone(self);
        let handle = std::thread::Builder::new()
            .name("azoth-flush".into())
            .spawn(move || core.flusher_loop(&stop_rx, &nudge_rx))?;
        *self.flusher.lock() = Some((stop_tx, handle));
        *self.nudge.lock() = Some(nudge_tx);
        Ok(())
    }

    fn flusher_loop(&self, stop: &Receiver<()>, nudge: &Receiver<()>) {
        let interval = self
            .config
            .flush_interval
            .unwrap_or(Duration::from_secs(3600 * 24 * 365));
        loop {
            crossbeam_channel::select! {
                recv(stop) -> _ => return,
                recv(nudge) -> _ => {}
                default(interval) => {}
            }
            if self.closed.load(Ordering::Acquire) {
                return;
            }
            if let Err(e) = self.flush() {
                tracing::warn!(error = %e, "background flush failed; it will be retried");
            }
        }
    }

    /// Flushes, stops the background thread, and drops the log and store, releasing their
    /// locks and the directory lock. Idempotent.
    pub(crate) fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.writer.close();
        // Every request is committed: the task leader has nothing left to lead.
        self.writer.set_task_leader(None);
        if let Some(handle) = self.task_leader.lock().take() {
            if handle.thread().id() != std::thread::current().id() && handle.join().is_err() {
                tracing::error!("the writer thread panicked");
            }
        }
        // Before the store closes: stopping stores each subscription's position.
        Subscriptions::close(self);
        if let Some((stop, handle)) = self.flusher.lock().take() {
            let _ = stop.try_send(());
            if handle.join().is_err() {
                tracing::error!("the flush thread panicked");
            }
        }
        self.nudge.lock().take();
        // Wait for work in progress under the commit clock (a `rebuild_view`, a retention
        // run), and keep it out until the directory is released: such work began before
        // `closed` was set, and must not go on in a directory another handle may open next.
        // Every holder checks `closed` once it has the clock.
        let clock = self.clock.lock();
        let flushed = self.flush();
        self.view.close();
        self.log.write().take();
        self.dir_lock.lock().take();
        drop(clock);
        tracing::info!("closed the database");
        flushed
    }
}

impl GroupCommitter for Core {
    /// Gives the group dense ids and one timestamp, encodes and projects each request's
    /// events (a request whose projection fails is left out, alone), appends the group as
    /// one block (the log syncs per its `SyncMode`), applies it to the memtable, and leaves
    /// each request its ids. If the append fails, every request of the group fails and
    /// nothing is applied.
    fn commit_group(&self, group: &mut [Request]) {
        let log = match self.log() {
            Ok(log) => log,
            Err(e) => {
                for request in group {
                    request.outcome = Some(Err(share_error(&e)));
                }
                return;
            }
        };
        let mut guard = self.clock.lock();
        let clock = &mut *guard;
        let timestamp = now_micros().max(clock.last_timestamp);
        let first = clock.next_id;
        let mut next = first;
        let projector = Projector {
            projections: &self.config.projections,
            view: &self.view,
            max_value_len: self.config.max_value_len,
            missing_projections: self.missing_projections,
        };
        let drafts: usize = group.iter().map(|r| r.drafts.len()).sum();
        if drafts < PREFETCH_IN_APPLY_FROM {
            // The keys' memtable slots load while the events are encoded and logged.
            self.view.prefetch(
                group
                    .iter()
                    .flat_map(|r| &r.drafts)
                    .filter_map(|d| match d {
                        Draft::Write(op) => Some(op.key()),
                        _ => None,
                    }),
            );
        }
        let mut encoded = std::mem::take(&mut clock.encoded);
        let mut writes = std::mem::take(&mut clock.writes);
        for request in group.iter_mut() {
            // Against the view and the writes staged before it in this group: the clock is
            // held, so nothing else changes either until this group is applied.
            if let Some(reads) = &request.reads {
                if let Err(e) = reads.validate(&self.view, &writes) {
                    request.outcome = Some(Err(e));
                    continue;
                }
            }
            let mark = (encoded.len(), writes.len());
            let start = next;
            let staged: Result<()> = std::mem::take(&mut request.drafts)
                .into_iter()
                .try_for_each(|draft| {
                    let event = draft.into_event(OperationId::new(timestamp, next));
                    let mut buf = clock.buffer();
                    encode_event_into(&event, &mut buf)?;
                    encoded.push(buf);
                    projector.project(event, &mut writes)?;
                    next += 1;
                    Ok(())
                });
            request.outcome = Some(match staged {
                Ok(()) => Ok(Ids {
                    timestamp,
                    first: start,
                    count: next - start,
                }),
                Err(e) => {
                    encoded.truncate(mark.0);
                    writes.truncate(mark.1);
                    next = start;
                    Err(e)
                }
            });
        }
        clock.encoded = encoded;
        if clock.encoded.is_empty() {
            clock.writes = writes;
            return;
        }
        if let Err(e) = log.append_batch_with_ids(first, &clock.encoded) {
            tracing::error!(error = %e, first, "appending a commit group failed");
            clock.next_id = log.next_event_id().unwrap_or(first);
            writes.clear();
            clock.writes = writes;
            clock.recycle();
            for request in group {
                if let Some(Ok(_)) = request.outcome {
                    request.outcome = Some(Err(share_error(&e)));
                }
            }
            return;
        }
        self.view.apply(&mut writes, next - 1);
        clock.writes = writes;
        clock.next_id = next;
        clock.last_timestamp = timestamp;
        // Under the clock, so groups reach subscribers in id order; never blocks.
        self.subscriptions.publish(first, &mut clock.encoded);
        clock.recycle();
        drop(guard);
        self.events_committed
            .fetch_add(next - first, Ordering::Relaxed);
        self.after_group();
    }
}
