//! The lazy range iterator of [`LmdbStore`](crate::LmdbStore): a `'static` snapshot read in
//! chunks.

use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::Arc;

use parking_lot::Mutex;

use azoth_core::{AzothError, Key, Location, Result, VersionedValue};

use crate::env::StaticTxn;
use crate::store::StoreEnv;
use crate::value;

/// Entries copied out of the map per chunk: enough to amortize the seek, few enough to keep
/// memory bounded.
const CHUNK: usize = 256;

/// The snapshot an iterator reads: its own, or one a [`LmdbStoreSnapshot`] pins and shares
/// (an LMDB read transaction may move between threads but not be used by two at once, hence
/// the mutex).
///
/// [`LmdbStoreSnapshot`]: crate::LmdbStoreSnapshot
pub(crate) enum IterTxn {
    Owned(StaticTxn),
    Shared(Arc<Mutex<StaticTxn>>),
}

/// Iterates `[from, end)` of one snapshot.
///
/// The iterator owns a read transaction (its snapshot) but no cursor: each chunk opens a fresh
/// cursor positioned after the last key returned, copies up to [`CHUNK`] entries out and
/// closes it, holding the environment's gate only meanwhile. No self-referential borrow is
/// needed, and the map can grow between chunks.
pub(crate) struct RangeIter {
    store: Arc<StoreEnv>,
    txn: Option<IterTxn>,
    from: Bound<Vec<u8>>,
    end: Option<Vec<u8>>,
    buffer: VecDeque<(Key, VersionedValue)>,
}

impl RangeIter {
    /// An iterator over `[start, end)` of `txn`'s snapshot.
    pub(crate) fn new(
        store: Arc<StoreEnv>,
        txn: impl Into<IterTxn>,
        start: Option<&[u8]>,
        end: Option<&[u8]>,
    ) -> Self {
        // LMDB refuses zero-length keys even as bounds: an empty start is no bound, and an
        // empty end bounds an empty range.
        let start = start.filter(|s| !s.is_empty());
        let empty = end.is_some_and(<[u8]>::is_empty)
            || matches!((start, end), (Some(s), Some(e)) if s >= e);
        Self {
            store,
            txn: (!empty).then(|| txn.into()),
            from: start.map_or(Bound::Unbounded, |s| Bound::Included(s.to_vec())),
            end: end.map(<[u8]>::to_vec),
            buffer: VecDeque::new(),
        }
    }

    /// Copies the next chunk into `buffer`; drops the snapshot when the range is exhausted.
    fn fill(&mut self) -> Result<()> {
        let taken = {
            let shared_guard;
            let txn: &StaticTxn = match &self.txn {
                None => return Ok(()),
                Some(IterTxn::Owned(txn)) => txn,
                Some(IterTxn::Shared(txn)) => {
                    shared_guard = txn.lock();
                    &shared_guard
                }
            };
            let env = &self.store.env;
            let _gate = env.gate();
            let bounds = (
                self.from.as_ref().map(Vec::as_slice),
                self.end
                    .as_deref()
                    .map_or(Bound::Unbounded, Bound::Excluded),
            );
            let iter = self
                .store
                .state
                .range(txn, &bounds)
                .map_err(|e| env.err(e))?;
            let mut taken = 0;
            for item in iter.take(CHUNK) {
                let (key, stored) = item.map_err(|e| env.err(e))?;
                let Some(versioned) = value::decode(stored) else {
                    if !self.buffer.is_empty() {
                        // Hand out the good entries first; the next chunk starts at the damage.
                        break;
                    }
                    return Err(AzothError::corruption(
                        Location::file(env.data_file()),
                        format!(
                            "stored value of key {key:02x?} is shorter than its version header"
                        ),
                    ));
                };
                self.buffer.push_back((key.to_vec(), versioned));
                taken += 1;
            }
            taken
        };
        if taken == 0 {
            self.txn = None;
        } else if let Some((last, _)) = self.buffer.back() {
            self.from = Bound::Excluded(last.clone());
        }
        Ok(())
    }
}

impl From<StaticTxn> for IterTxn {
    fn from(txn: StaticTxn) -> Self {
        Self::Owned(txn)
    }
}

impl From<Arc<Mutex<StaticTxn>>> for IterTxn {
    fn from(txn: Arc<Mutex<StaticTxn>>) -> Self {
        Self::Shared(txn)
    }
}

impl Iterator for RangeIter {
    type Item = Result<(Key, VersionedValue)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buffer.is_empty() {
            if let Err(e) = self.fill() {
                self.txn = None;
                return Some(Err(e));
            }
        }
        self.buffer.pop_front().map(Ok)
    }
}
