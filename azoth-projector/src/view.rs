//! [`View`]: the key-value view as readers see it — the active memtable over the frozen ones
//! over the canonical store — and the flush that moves memtables into the store.

use std::collections::BTreeMap;
use std::iter::Peekable;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use azoth_core::{
    AzothError, CanonicalStore, Entry, EventId, EventLog, Key, Result, StoreBatch, StoreIter,
    StoreWrite,
};
use parking_lot::{Mutex, MutexGuard, RwLock};

use crate::memtable::{ChunkPool, MemEntry, Memtable, SlotPool};

/// The layers of the view. Readers hold the read lock for a whole lookup, so a flush cannot
/// drop a frozen memtable between the moment a reader passes it and the moment it reads the
/// store: every read sees one consistent state.
struct Tables {
    active: Arc<Memtable>,
    /// Newest first.
    frozen: Vec<Arc<Memtable>>,
    /// `None` once the database is closed.
    store: Option<Arc<dyn CanonicalStore>>,
}

pub(crate) struct View {
    tables: RwLock<Tables>,
    /// One flush at a time; taken before `tables`.
    flush_lock: Mutex<()>,
    checkpoint: AtomicU64,
    flushes: AtomicU64,
    /// Chunks and index slots of flushed memtables, for the next ones.
    chunks: Arc<ChunkPool>,
    slots: Arc<SlotPool>,
    /// Held by every metadata write (subscription positions, dead letters) and by
    /// `rebuild_view` while it carries the metadata over to the new store, so that no write
    /// lands in the old store after the copy.
    metadata_lock: Mutex<()>,
}

/// Sizes of the memtables, for stats and the flush trigger.
pub(crate) struct MemtableSizes {
    pub(crate) entries: u64,
    pub(crate) bytes: u64,
    pub(crate) frozen: usize,
}

impl View {
    /// A view over `store`, which reflects the log up to `checkpoint`. Memtables reuse up to
    /// `reuse_bytes` of the memory of flushed ones (the memtable size for a database).
    pub(crate) fn new(
        store: Arc<dyn CanonicalStore>,
        checkpoint: EventId,
        reuse_bytes: usize,
    ) -> Self {
        let chunks = Arc::new(ChunkPool::new(reuse_bytes));
        let slots = Arc::new(SlotPool::default());
        Self {
            tables: RwLock::new(Tables {
                active: Arc::new(Memtable::with_pools(
                    checkpoint,
                    Arc::clone(&chunks),
                    Arc::clone(&slots),
                    0,
                )),
                frozen: Vec::new(),
                store: Some(store),
            }),
            flush_lock: Mutex::new(()),
            checkpoint: AtomicU64::new(checkpoint),
            flushes: AtomicU64::new(0),
            chunks,
            slots,
            metadata_lock: Mutex::new(()),
        }
    }

    /// Applies one group's writes to the active memtable. Holding the tables' read lock keeps
    /// a freeze from splitting the group between two memtables.
    pub(crate) fn apply(&self, writes: &mut Vec<StoreWrite>, last_event: EventId) {
        let tables = self.tables.read();
        tables.active.apply(writes, last_event);
    }

    /// Brings the active memtable's index slots for `keys` into the cache ahead of a group's
    /// apply.
    pub(crate) fn prefetch<'k>(&self, keys: impl Iterator<Item = &'k [u8]>) {
        self.tables.read().active.prefetch(keys);
    }

    /// The newest state of `key`: `Some` with `value = None` for a tombstone in a memtable,
    /// `None` when the key is absent everywhere.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<MemEntry>> {
        let tables = self.tables.read();
        if let Some(entry) = tables.active.get(key) {
            return Ok(Some(entry));
        }
        for frozen in &tables.frozen {
            if let Some(entry) = frozen.get(key) {
                return Ok(Some(entry));
            }
        }
        let store = tables.store.as_ref().ok_or(AzothError::Closed)?;
        Ok(store.get(key)?.map(|v| MemEntry {
            value: Some(v.value),
            operation_id: v.operation_id,
        }))
    }

    /// A lazy iterator over the live entries with keys in `[start, end)`, in key order.
    ///
    /// The memtables' part of the range is copied when the iterator is made (it is bounded
    /// by the memtable size); the store's part streams from one store snapshot.
    pub(crate) fn range(&self, start: Option<&[u8]>, end: Option<&[u8]>) -> Result<ViewRange> {
        let tables = self.tables.read();
        let store = tables.store.as_ref().ok_or(AzothError::Closed)?;
        let overlay = if tables.frozen.is_empty() {
            // The usual case: one memtable, already in key order.
            tables.active.range(start, end)
        } else {
            let mut merged: BTreeMap<Key, MemEntry> = BTreeMap::new();
            // Oldest first, so newer layers overwrite older ones.
            for frozen in tables.frozen.iter().rev() {
                merged.extend(frozen.range(start, end));
            }
            merged.extend(tables.active.range(start, end));
            merged.into_iter().collect()
        };
        let store_iter = store.range(start, end)?;
        Ok(ViewRange {
            overlay: overlay.into_iter().peekable(),
            store: store_iter.peekable(),
        })
    }

    /// Every entry of the memtables (tombstones included) as writes, oldest memtable first,
    /// so that applying them in order to a fresh view over the same store gives the same
    /// state.
    pub(crate) fn memtable_writes(&self) -> Vec<StoreWrite> {
        let tables = self.tables.read();
        let mut writes = Vec::new();
        for memtable in tables.frozen.iter().rev().chain([&tables.active]) {
            writes.extend(
                memtable
                    .range(None, None)
                    .into_iter()
                    .map(|(key, entry)| StoreWrite {
                        key,
                        value: entry.value,
                        operation_id: entry.operation_id,
                    }),
            );
        }
        writes
    }

    pub(crate) fn store(&self) -> Result<Arc<dyn CanonicalStore>> {
        self.tables.read().store.clone().ok_or(AzothError::Closed)
    }

    /// Applies a batch of metadata changes (and no key writes) to the current store.
    pub(crate) fn apply_metadata(&self, metadata: Vec<(String, Option<Vec<u8>>)>) -> Result<()> {
        let _metadata = self.metadata_lock.lock();
        self.store()?.apply(&StoreBatch {
            metadata,
            ..StoreBatch::default()
        })
    }

    /// Sets one metadata value in the current store.
    pub(crate) fn put_metadata(&self, name: &str, value: &[u8]) -> Result<()> {
        self.apply_metadata(vec![(name.to_owned(), Some(value.to_vec()))])
    }

    /// Copies every metadata entry of the current store into `into` (a rebuilt store about to
    /// replace it), and holds metadata writes off until the returned guard is dropped: drop
    /// it only after the new store is in place.
    pub(crate) fn carry_metadata(&self, into: &dyn CanonicalStore) -> Result<MutexGuard<'_, ()>> {
        let held = self.metadata_lock.lock();
        let metadata: Vec<(String, Option<Vec<u8>>)> = self
            .store()?
            .list_metadata("")?
            .into_iter()
            .map(|(name, value)| (name, Some(value)))
            .collect();
        if !metadata.is_empty() {
            into.apply(&StoreBatch {
                metadata,
                ..StoreBatch::default()
            })?;
        }
        Ok(held)
    }

    pub(crate) fn checkpoint(&self) -> EventId {
        self.checkpoint.load(Ordering::Acquire)
    }

    pub(crate) fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// The active memtable's estimated bytes: the flush trigger, read after every group.
    pub(crate) fn active_bytes(&self) -> usize {
        self.tables.read().active.bytes()
    }

    pub(crate) fn sizes(&self) -> MemtableSizes {
        let tables = self.tables.read();
        let mut sizes = MemtableSizes {
            entries: tables.active.len() as u64,
            bytes: tables.active.bytes() as u64,
            frozen: tables.frozen.len(),
        };
        for frozen in &tables.frozen {
            sizes.entries += frozen.len() as u64;
            sizes.bytes += frozen.bytes() as u64;
        }
        sizes
    }

    /// Makes the active memtable frozen (newest of the frozen ones) and starts a fresh one,
    /// unless it holds nothing to flush. The next flush moves it into the store.
    fn freeze(&self) -> Result<()> {
        let mut tables = self.tables.write();
        if tables.store.is_none() {
            return Err(AzothError::Closed);
        }
        let active_last = tables.active.last_event();
        // An empty memtable is frozen only for events that changed nothing in the view (the
        // checkpoint must still move past them); one that merely follows a frozen memtable
        // would cost a flush, with a sync of the log, for nothing.
        let covered = tables
            .frozen
            .first()
            .map_or_else(|| self.checkpoint(), |newest| newest.last_event());
        if !tables.active.is_empty() || active_last > covered {
            let fresh = Arc::new(Memtable::with_pools(
                active_last,
                Arc::clone(&self.chunks),
                Arc::clone(&self.slots),
                tables.active.len(),
            ));
            let old = std::mem::replace(&mut tables.active, fresh);
            tables.frozen.insert(0, old);
        }
        Ok(())
    }

    /// For a writer that filled the active memtable faster than the flusher flushes: waits
    /// for the flush in progress, if any, then freezes the active memtable for the flusher to
    /// flush while writers go on. Returns false, freezing nothing, if a frozen memtable is
    /// still waiting (the last flush failed): the caller then flushes itself.
    pub(crate) fn hand_over_to_flush(&self) -> Result<bool> {
        let _flushing = self.flush_lock.lock();
        if !self.tables.read().frozen.is_empty() {
            return Ok(false);
        }
        self.freeze()?;
        Ok(true)
    }

    /// Moves everything in the memtables into the store: freeze the active memtable, sync the
    /// log (the write-ahead rule: the store may never be ahead of the durable log), apply the
    /// frozen memtables oldest first, each with its checkpoint in one store transaction, and
    /// drop them.
    ///
    /// A failed flush leaves the frozen memtable in place (reads still see it) and the next
    /// flush retries it.
    pub(crate) fn flush(&self, log: &dyn EventLog) -> Result<()> {
        let _flushing = self.flush_lock.lock();
        self.freeze()?;
        loop {
            let (oldest, store) = {
                let tables = self.tables.read();
                match (tables.frozen.last(), &tables.store) {
                    (Some(m), Some(s)) => (Arc::clone(m), Arc::clone(s)),
                    (None, _) => return Ok(()),
                    (_, None) => return Err(AzothError::Closed),
                }
            };
            let checkpoint = oldest.last_event();
            apply_after_log_sync(log, store.as_ref(), &oldest, checkpoint)?;
            self.checkpoint.store(checkpoint, Ordering::Release);
            self.flushes.fetch_add(1, Ordering::Relaxed);
            let mut tables = self.tables.write();
            tables.frozen.retain(|m| !Arc::ptr_eq(m, &oldest));
            tracing::debug!(checkpoint, "flushed a memtable");
        }
    }

    /// Swaps in a store that already reflects every event up to `checkpoint` (a rebuilt view),
    /// dropping the memtables; returns the old store.
    pub(crate) fn replace_store(
        &self,
        store: Arc<dyn CanonicalStore>,
        checkpoint: EventId,
    ) -> Option<Arc<dyn CanonicalStore>> {
        let _flushing = self.flush_lock.lock();
        let mut tables = self.tables.write();
        tables.active = Arc::new(Memtable::with_pools(
            checkpoint,
            Arc::clone(&self.chunks),
            Arc::clone(&self.slots),
            0,
        ));
        tables.frozen.clear();
        self.checkpoint.store(checkpoint, Ordering::Release);
        tables.store.replace(store)
    }

    /// Drops the store (after a final flush): every later read is `Closed`.
    pub(crate) fn close(&self) {
        let _flushing = self.flush_lock.lock();
        self.tables.write().store = None;
    }
}

/// Applies `frozen` with `checkpoint` to `store` once the log is durable up to it (the
/// write-ahead rule). The log's sync (disk time) runs on a thread of its own while the
/// memtable is sorted and the store builds its transaction (processor time), and the store
/// commits only after the sync has succeeded: a third of a bulk load's flush was the sync,
/// alone on the flush thread.
fn apply_after_log_sync(
    log: &dyn EventLog,
    store: &dyn CanonicalStore,
    frozen: &Memtable,
    checkpoint: EventId,
) -> Result<()> {
    std::thread::scope(|scope| {
        let syncing = std::thread::Builder::new()
            .name("azoth-log-sync".into())
            .spawn_scoped(scope, || log.sync());
        let mut syncing = match syncing {
            Ok(handle) => Some(handle),
            // No thread to spare: sync here, first.
            Err(_) => {
                log.sync()?;
                None
            }
        };
        // Called before the store's commit, perhaps more than once (a retried transaction):
        // a failed sync fails every call.
        let mut sync_failed = false;
        let mut synced = || {
            if let Some(handle) = syncing.take() {
                let outcome = handle.join().unwrap_or_else(|_| {
                    Err(AzothError::Io(std::io::Error::other(
                        "the log's sync panicked",
                    )))
                });
                sync_failed = outcome.is_err();
                return outcome;
            }
            if sync_failed {
                return Err(AzothError::Io(std::io::Error::other(
                    "the log's sync failed",
                )));
            }
            Ok(())
        };
        let applied = store.apply_sorted_after(&frozen.sorted(), checkpoint, &mut synced);
        if let Some(handle) = syncing.take() {
            // The store failed before its commit. The sync's own outcome is the log's to
            // report (a failed sync poisons it); joined here, a panic in it ends no further.
            let _ = handle.join();
        }
        applied
    })
}

/// The lazy iterator of [`View::range`]: merges the memtables' entries with the store's,
/// memtables winning, tombstones hiding store values.
pub(crate) struct ViewRange {
    overlay: Peekable<std::vec::IntoIter<(Key, MemEntry)>>,
    store: Peekable<StoreIter>,
}

impl ViewRange {
    fn from_overlay(key: Key, entry: MemEntry) -> Option<Entry> {
        entry.value.map(|value| Entry {
            key,
            value: Some(value),
            operation_id: entry.operation_id,
            is_deleted: false,
        })
    }
}

impl Iterator for ViewRange {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let store_first = match (self.overlay.peek(), self.store.peek()) {
                (None, None) => return None,
                (_, Some(Err(_))) => {
                    return match self.store.next() {
                        Some(Err(e)) => Some(Err(e)),
                        _ => None,
                    };
                }
                (None, Some(Ok(_))) => true,
                (Some(_), None) => false,
                (Some((ok, _)), Some(Ok((sk, _)))) => {
                    if sk < ok {
                        true
                    } else {
                        if sk == ok {
                            // The memtable's state is newer; skip the store's.
                            self.store.next();
                        }
                        false
                    }
                }
            };
            if store_first {
                return match self.store.next() {
                    Some(Ok((key, v))) => Some(Ok(Entry {
                        key,
                        value: Some(v.value),
                        operation_id: v.operation_id,
                        is_deleted: false,
                    })),
                    Some(Err(e)) => Some(Err(e)),
                    None => None,
                };
            }
            if let Some((key, entry)) = self.overlay.next() {
                if let Some(entry) = Self::from_overlay(key, entry) {
                    return Some(Ok(entry));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::atomic::AtomicBool;

    use azoth_core::{EventLogIterator, EventLogStats, MemoryEventLog, MemoryStore, OperationId};
    use azoth_lmdb::LmdbStore;

    use super::*;

    /// A log in memory whose `sync` fails while `failing` is set.
    struct SyncFails {
        inner: MemoryEventLog,
        failing: AtomicBool,
    }

    impl EventLog for SyncFails {
        fn append_with_id(&self, id: EventId, bytes: &[u8]) -> Result<()> {
            self.inner.append_with_id(id, bytes)
        }
        fn append_batch_with_ids(&self, first: EventId, events: &[Vec<u8>]) -> Result<()> {
            self.inner.append_batch_with_ids(first, events)
        }
        fn next_event_id(&self) -> Result<EventId> {
            self.inner.next_event_id()
        }
        fn iter_range(
            &self,
            start: EventId,
            end: Option<EventId>,
        ) -> Result<Box<dyn EventLogIterator>> {
            self.inner.iter_range(start, end)
        }
        fn get(&self, id: EventId) -> Result<Option<Vec<u8>>> {
            self.inner.get(id)
        }
        fn delete_range(&self, start: EventId, end: EventId) -> Result<usize> {
            self.inner.delete_range(start, end)
        }
        fn rotate(&self) -> Result<PathBuf> {
            self.inner.rotate()
        }
        fn oldest_event_id(&self) -> Result<EventId> {
            self.inner.oldest_event_id()
        }
        fn newest_event_id(&self) -> Result<EventId> {
            self.inner.newest_event_id()
        }
        fn sync(&self) -> Result<()> {
            if self.failing.load(Ordering::SeqCst) {
                return Err(AzothError::Io(std::io::Error::other("sync failed")));
            }
            self.inner.sync()
        }
        fn stats(&self) -> Result<EventLogStats> {
            self.inner.stats()
        }
    }

    /// A view over `store` with event 1 in the log and its write of `k` in the memtable.
    fn view_with_one_write(store: &Arc<dyn CanonicalStore>, sync_fails: bool) -> (View, SyncFails) {
        let view = View::new(Arc::clone(store), 0, 0);
        let log = SyncFails {
            inner: MemoryEventLog::new(),
            failing: AtomicBool::new(sync_fails),
        };
        log.append_batch_with_ids(1, &[b"event".to_vec()]).unwrap();
        let mut writes = vec![StoreWrite {
            key: b"k".to_vec(),
            value: Some(b"v".to_vec()),
            operation_id: OperationId::new(1, 1),
        }];
        view.apply(&mut writes, 1);
        (view, log)
    }

    fn a_failed_log_sync_leaves_the_store_behind(store: Arc<dyn CanonicalStore>) {
        let (view, log) = view_with_one_write(&store, true);

        assert!(
            view.flush(&log).is_err(),
            "the flush reports the failed sync"
        );
        assert_eq!(
            store.checkpoint().unwrap(),
            0,
            "the store is not ahead of the log"
        );
        assert!(store.get(b"k").unwrap().is_none());
        assert!(
            view.get(b"k").unwrap().is_some(),
            "the view still reads the write"
        );

        log.failing.store(false, Ordering::SeqCst);
        view.flush(&log).unwrap();
        assert_eq!(store.checkpoint().unwrap(), 1);
        assert!(store.get(b"k").unwrap().is_some());
    }

    #[test]
    fn a_memtable_handed_over_is_flushed_once_without_an_empty_one_after_it() {
        let store: Arc<dyn CanonicalStore> = Arc::new(MemoryStore::new());
        let (view, log) = view_with_one_write(&store, false);
        // A writer ahead of the flusher hands its memtable over; the flusher then flushes.
        assert!(view.hand_over_to_flush().unwrap());
        view.flush(&log).unwrap();
        assert_eq!(
            view.flushes(),
            1,
            "the empty memtable after it was not flushed"
        );
        assert_eq!(store.checkpoint().unwrap(), 1);
        // An empty memtable still carries the checkpoint past events that wrote nothing.
        log.append_batch_with_ids(2, &[b"no writes".to_vec()])
            .unwrap();
        view.apply(&mut Vec::new(), 2);
        view.flush(&log).unwrap();
        assert_eq!(store.checkpoint().unwrap(), 2);
    }

    #[test]
    fn a_failed_log_sync_leaves_the_memory_store_behind() {
        a_failed_log_sync_leaves_the_store_behind(Arc::new(MemoryStore::new()));
    }

    #[test]
    fn a_failed_log_sync_leaves_the_lmdb_store_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = LmdbStore::open(dir.path().join("view")).unwrap();
        a_failed_log_sync_leaves_the_store_behind(Arc::new(store));
    }
}
