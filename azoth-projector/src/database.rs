//! [`Database`]: the blocking handle users call.

use std::path::Path;
use std::sync::Arc;

use azoth_core::{
    CanonicalStore, DatabaseEvent, Entry, EventId, EventLog, Operation, OperationId, Result,
};
use serde::Serialize;

use crate::async_database::AsyncDatabase;
use crate::backend::{self, LogHandle};
use crate::config::{Config, StoreBackend};
use crate::engine::Core;
use crate::lifecycle::Lifecycle;
use crate::maintenance;
use crate::projection::encode_payload;
use crate::reads::{Events, Range, live_entry, prefix_bounds};
use crate::stats::DatabaseStats;
use crate::subscription::Subscriptions;
use crate::validation::{check_key, check_operation, check_value};
use crate::view::View;
use crate::writer::Draft;

/// An open Azoth database: an event log and the key-value view derived from it.
///
/// A cheap handle: clones share one database, and it is `Send + Sync`, so threads share it
/// freely. Writes are group-committed: concurrent writers share one log block and one sync.
/// When a write returns, every later read on any handle sees it (read-your-writes).
///
/// The database closes when [`close`](Self::close) is called or the last handle is dropped:
/// the memtable is flushed, background work stops and the directory lock is released.
#[derive(Clone)]
pub struct Database {
    inner: Arc<Inner>,
}

/// Closes the database when the last handle goes.
struct Inner {
    core: Arc<Core>,
    /// Archival, retention and the maintenance thread (`lifecycle.rs`).
    lifecycle: Arc<Lifecycle>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.lifecycle.maintenance.stop();
        if let Err(e) = self.core.close() {
            tracing::error!(error = %e, "closing the database on drop failed");
        }
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("dir", &self.inner.core.config.dir)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Opens (creating if needed) the database in `dir` with the defaults: the file log in
    /// `dir/log`, the LMDB view in `dir/view`, [`SyncMode::Always`](azoth_core::SyncMode).
    ///
    /// # Errors
    /// [`Locked`](azoth_core::AzothError::Locked) if the directory is open elsewhere; I/O
    /// errors; `Corruption` found while replaying the log.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(Config::new(dir))
    }

    /// Opens the database `config` describes.
    ///
    /// # Errors
    /// As [`open`](Self::open); `Config` for invalid settings.
    pub fn open_with(config: Config) -> Result<Self> {
        let lock = azoth_core::DirLock::acquire(&config.dir)?;
        crate::view_check::remove_leftover_scratch(&config.dir);
        let log = backend::open_log(&config)?;
        let store = backend::open_store(&config)?;
        Self::from_parts(config, log, store, Some(lock))
    }

    /// Opens a database over a log and store the caller built (any [`EventLog`] and
    /// [`CanonicalStore`], e.g. the in-memory ones). `config`'s directory, backends, sync mode
    /// and segment size are not used; the caller's objects decide those. No directory lock is
    /// taken. [`verify`](Self::verify) checks that every event decodes and ids are dense.
    ///
    /// # Errors
    /// Errors of the log and store while replaying.
    pub fn open_with_backends(
        config: Config,
        log: Arc<dyn EventLog>,
        store: Arc<dyn CanonicalStore>,
    ) -> Result<Self> {
        Self::from_parts(config, LogHandle::Custom(log), store, None)
    }

    fn from_parts(
        config: Config,
        log: LogHandle,
        store: Arc<dyn CanonicalStore>,
        lock: Option<azoth_core::DirLock>,
    ) -> Result<Self> {
        let core = Core::open(config, log, store, lock)?;
        let lifecycle = Arc::new(Lifecycle::default());
        if let Err(e) = maintenance::start(&core, &lifecycle) {
            let _ = core.close();
            return Err(e);
        }
        Ok(Self {
            inner: Arc::new(Inner { core, lifecycle }),
        })
    }

    pub(crate) fn core(&self) -> &Core {
        &self.inner.core
    }

    /// Archival, retention and maintenance state.
    pub(crate) fn lifecycle(&self) -> &Lifecycle {
        &self.inner.lifecycle
    }

    /// The core, for a transaction to keep while it lives.
    pub(crate) fn shared_core(&self) -> Arc<Core> {
        Arc::clone(&self.inner.core)
    }

    /// The configuration this database was opened with.
    pub fn config(&self) -> &Config {
        &self.core().config
    }

    /// Sets `key` to `value`.
    ///
    /// # Errors
    /// `EmptyKey`, `KeyTooLarge`, `ValueTooLarge` (nothing written); `Closed`; errors of the
    /// log append.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<OperationId> {
        check_key(key)?;
        check_value(value, self.core().config.max_value_len)?;
        self.one(Draft::Write(Operation::Put {
            key: key.to_vec(),
            value: value.to_vec(),
        }))
    }

    /// Removes `key`; succeeds whether or not it exists (the delete is logged either way).
    ///
    /// # Errors
    /// `EmptyKey`, `KeyTooLarge`; `Closed`; errors of the log append.
    pub fn delete(&self, key: &[u8]) -> Result<OperationId> {
        check_key(key)?;
        self.one(Draft::Write(Operation::Delete { key: key.to_vec() }))
    }

    /// Applies `ops` atomically: one block of consecutive events, recovered whole or not at
    /// all, applied to the view together. Returns one id per operation, in order.
    ///
    /// # Errors
    /// Any bad key or value refuses the whole batch before anything is written; `Closed`;
    /// errors of the log append.
    pub fn batch(&self, ops: Vec<Operation>) -> Result<Vec<OperationId>> {
        let max = self.core().config.max_value_len;
        for op in &ops {
            check_operation(op, max)?;
        }
        self.core().check_open()?;
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self
            .core()
            .write(ops.into_iter().map(Draft::Write).collect())?
            .to_vec())
    }

    /// Appends the application's own event: `kind` names its type, `payload` is its
    /// encoding. The registered [projections](crate::Projection) turn it into view writes in
    /// the same commit.
    ///
    /// # Errors
    /// `Closed`; an error of a projection (nothing written); errors of the log append.
    pub fn append_event(&self, kind: &str, payload: &[u8]) -> Result<OperationId> {
        self.one(Draft::App {
            kind: kind.to_owned(),
            payload: payload.to_vec(),
        })
    }

    /// [`append_event`](Self::append_event) with `event` encoded by
    /// [`encode_payload`] (rmp-serde); read it back with
    /// [`decode_payload`](crate::decode_payload).
    ///
    /// # Errors
    /// `Encoding` if `event` does not serialize; as [`append_event`](Self::append_event).
    pub fn append_typed<T: Serialize + ?Sized>(
        &self,
        kind: &str,
        event: &T,
    ) -> Result<OperationId> {
        let payload = encode_payload(event)?;
        self.one(Draft::App {
            kind: kind.to_owned(),
            payload,
        })
    }

    fn one(&self, draft: Draft) -> Result<OperationId> {
        let ids = self.core().write(vec![draft])?;
        ids.first()
            .ok_or_else(|| azoth_core::AzothError::Config("a write returned no id".into()))
    }

    fn audit_read(&self, key: &[u8]) -> Result<()> {
        if self.core().config.read_auditing {
            self.one(Draft::Read { key: key.to_vec() })?;
        }
        Ok(())
    }

    /// The value of `key`, or `None`.
    ///
    /// # Errors
    /// `Closed`; errors of the canonical store.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.lookup(key)?.and_then(|e| e.value))
    }

    /// The view's newest state of `key` (a tombstone has no value), timed and audited.
    fn lookup(&self, key: &[u8]) -> Result<Option<crate::memtable::MemEntry>> {
        let core = self.core();
        core.check_open()?;
        let timing = core.read_latency.start();
        let found = core.view.get(key)?;
        core.read_latency.finish(timing);
        self.audit_read(key)?;
        Ok(found)
    }

    /// The live entry of `key` (value and the id of the operation that wrote it), or `None`.
    ///
    /// # Errors
    /// `Closed`; errors of the canonical store.
    pub fn get_entry(&self, key: &[u8]) -> Result<Option<Entry>> {
        Ok(live_entry(key, self.lookup(key)?))
    }

    /// Whether `key` has a live value.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub fn exists(&self, key: &[u8]) -> Result<bool> {
        Ok(self.get_entry(key)?.is_some())
    }

    /// The live entries whose keys start with `prefix`, sorted by key.
    ///
    /// # Errors
    /// `Closed`; errors of the canonical store.
    pub fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let (start, end) = prefix_bounds(prefix);
        self.range(start, end.as_deref())?.into_pairs()
    }

    /// The live entries with keys in `[start, end)` (`None` leaves a side open), sorted.
    ///
    /// # Errors
    /// `Closed`; errors of the canonical store.
    pub fn scan(&self, start: Option<&[u8]>, end: Option<&[u8]>) -> Result<Vec<Entry>> {
        self.range(start, end)?.collect()
    }

    /// A lazy iterator over what [`scan`](Self::scan) returns, for large results: the store's
    /// part streams from one snapshot; the memtables' part of the range is copied up front.
    ///
    /// # Errors
    /// `Closed`; errors of the canonical store (also as items).
    pub fn range(&self, start: Option<&[u8]>, end: Option<&[u8]>) -> Result<Range> {
        self.core().check_open()?;
        Ok(Range {
            inner: self.core().view.range(start, end)?,
        })
    }

    /// The events after `after` (strictly), lazily, in order, decoded.
    ///
    /// # Errors
    /// `Closed`; errors of the log (also as items, e.g. `Corruption`). Events already
    /// deleted when it is made are skipped (it starts at the oldest event left); events that
    /// retention deletes before the iterator reaches them are never skipped silently: it
    /// ends with an [`AzothError::EventsDeleted`](azoth_core::AzothError::EventsDeleted)
    /// item naming them.
    pub fn events_since(&self, after: EventId) -> Result<Events> {
        self.core().check_open()?;
        let log = self.core().log()?;
        Ok(Events {
            inner: log.iter_range(after.saturating_add(1), None)?,
        })
    }

    /// Every event the log holds, in order.
    ///
    /// # Errors
    /// As [`events_since`](Self::events_since).
    pub fn get_events(&self) -> Result<Vec<DatabaseEvent>> {
        self.events_since(0)?.into_events()
    }

    /// The events strictly after `operation_id`, in order.
    ///
    /// # Errors
    /// As [`events_since`](Self::events_since).
    pub fn get_events_since(&self, operation_id: OperationId) -> Result<Vec<DatabaseEvent>> {
        self.events_since(operation_id.sequence)?.into_events()
    }

    /// Moves the memtable into the canonical store now (the log is synced first), so the
    /// next open replays nothing.
    ///
    /// # Errors
    /// `Closed`; errors of the log sync or the store.
    pub fn flush(&self) -> Result<()> {
        self.core().check_open()?;
        self.core().flush()
    }

    /// Counts, sizes and latencies.
    ///
    /// # Errors
    /// `Closed`; errors of the log or store reading their stats.
    pub fn stats(&self) -> Result<DatabaseStats> {
        let core = self.core();
        core.check_open()?;
        let log = core.log()?.stats()?;
        let store = core.view.store()?.stats()?;
        let sizes = core.view.sizes();
        let (groups, requests) = core.writer.counts();
        let subscriptions = Subscriptions::stats(core, log.newest_event_id);
        Ok(DatabaseStats {
            log,
            store,
            memtable_entries: sizes.entries,
            memtable_bytes: sizes.bytes,
            frozen_memtables: sizes.frozen,
            checkpoint: core.view.checkpoint(),
            groups_committed: groups,
            requests_committed: requests,
            events_committed: core
                .events_committed
                .load(std::sync::atomic::Ordering::Relaxed),
            mean_group_size: if groups == 0 {
                0.0
            } else {
                requests as f64 / groups as f64
            },
            flushes: core.view.flushes(),
            write_latency: core.write_latency.summary(),
            read_latency: core.read_latency.summary(),
            subscriptions,
            retention: self.lifecycle().retention.stats(core)?,
            maintenance: self.lifecycle().maintenance.stats(),
        })
    }

    /// [`stats`](Self::stats) in the Prometheus text exposition format.
    ///
    /// # Errors
    /// As [`stats`](Self::stats).
    pub fn metrics_text(&self) -> Result<String> {
        Ok(self.stats()?.metrics_text())
    }

    /// Rebuilds the view from the log: replays every event, from the first, through the
    /// projections into a fresh store, carries the store's metadata (subscription positions
    /// and dead letters) over, then swaps it in.
    ///
    /// Writers wait while the rebuild runs; readers go on reading the old view until the
    /// swap, which takes one short exclusive lock. For the LMDB view the new store is built in
    /// a new directory and made current by atomically replacing the `VIEW` pointer file, so a
    /// crash during a rebuild leaves the old view in use. Use it after changing a projection.
    ///
    /// # Errors
    /// `Config` if the log no longer holds its first event; `Closed`; errors of the log and
    /// store; projection errors.
    pub fn rebuild_view(&self) -> Result<()> {
        let core = self.core();
        core.check_open()?;
        let clock = core.clock.lock();
        // `close` may have run while this waited for the clock.
        core.check_open()?;
        let log = core.log()?;
        let oldest = log.oldest_event_id()?;
        if oldest > 1 {
            return Err(azoth_core::AzothError::Config(format!(
                "cannot rebuild the view: the log starts at event {oldest}, not 1"
            )));
        }
        let (store, dir_name) = backend::new_store(&core.config)?;
        let fresh = View::new(Arc::clone(&store), 0, core.config.memtable_size);
        let replayed = core.replay_into(&fresh, log.as_ref(), 1, clock.next_id)?;
        fresh.flush(log.as_ref())?;
        let checkpoint = clock.next_id - 1;
        // Subscription positions and dead letters are not derived from the log: they come
        // along, and none is written between the copy and the swap.
        let metadata = core.view.carry_metadata(store.as_ref())?;
        // The rebuilt view holds what these projections wrote, and nothing of others.
        crate::projection::record_projections(store.as_ref(), core.config.projections.len())?;
        let old_dir = match (&dir_name, core.config.store_backend) {
            (Some(name), StoreBackend::Lmdb) => {
                backend::switch_view(&core.config.dir, name)?;
                Some(name)
            }
            _ => None,
        };
        let old = core.view.replace_store(store, checkpoint);
        drop(metadata);
        drop(old);
        drop(clock);
        if old_dir.is_some() {
            // The old view directory is removed on the next open (it is no longer current);
            // a reader may still hold a snapshot of it now.
            tracing::debug!("the previous view directory will be removed at the next open");
        }
        tracing::info!(replayed, checkpoint, "rebuilt the view from the log");
        Ok(())
    }

    /// Flushes, stops background work and releases the directory; every later call on any
    /// handle returns `Closed`. Closing twice is fine.
    ///
    /// # Errors
    /// Errors of the final flush (the log still holds everything; the next open replays it).
    pub fn close(&self) -> Result<()> {
        self.lifecycle().maintenance.stop();
        self.core().close()
    }

    /// The shared core, for subscription threads (`subscription.rs`) to hold.
    pub(crate) fn core_arc(&self) -> &Arc<Core> {
        &self.inner.core
    }

    /// An async handle to this database, for tokio programs.
    pub fn to_async(&self) -> AsyncDatabase {
        AsyncDatabase::from_database(self.clone())
    }
}
