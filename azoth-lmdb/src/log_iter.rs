//! The streaming iterator of [`LmdbEventLog`](crate::LmdbEventLog): a `'static` snapshot read
//! in chunks, continuing into archive files where segments were archived.

use std::collections::VecDeque;
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::Arc;

use azoth_core::{AzothError, EventId, Result};

use crate::env::StaticTxn;
use crate::log::LogShared;
use crate::log_archive::{self, ArchivedEvents};
use crate::log_format::{SegmentState, decode_event, id_key, key_id};

/// Events copied out of the map per chunk.
const CHUNK: usize = 1024;

/// Streams `[next, end)`.
///
/// Like the store's iterator it owns a read transaction (a snapshot, so a concurrent
/// `archive` or `delete_range` does not pull events from under it) and opens a fresh cursor
/// per chunk while holding the gate. Memory is bounded by one chunk.
pub(crate) struct LogIter {
    shared: Arc<LogShared>,
    archive_dir: PathBuf,
    txn: Option<StaticTxn>,
    next: EventId,
    end: EventId,
    buffer: VecDeque<(EventId, Vec<u8>)>,
    archived: Option<ArchivedEvents>,
}

impl LogIter {
    pub(crate) fn new(
        shared: Arc<LogShared>,
        archive_dir: PathBuf,
        next: EventId,
        end: EventId,
    ) -> Result<Self> {
        let txn = if next < end {
            Some(shared.env.snapshot()?)
        } else {
            None
        };
        Ok(Self {
            shared,
            archive_dir,
            txn,
            next,
            end,
            buffer: VecDeque::new(),
            archived: None,
        })
    }

    /// Fills `buffer` with the next events, or finishes.
    fn fill(&mut self) -> Result<()> {
        while self.buffer.is_empty() && self.next < self.end {
            let Some(txn) = &self.txn else { return Ok(()) };
            let shared = &self.shared;
            let env = &shared.env;
            let _gate = env.gate();
            let (lo, hi) = (id_key(self.next), id_key(self.end));
            let bounds = (Bound::Included(&lo[..]), Bound::Excluded(&hi[..]));
            for item in shared
                .events
                .range(txn, &bounds)
                .map_err(|e| env.err(e))?
                .take(CHUNK)
            {
                let (k, v) = item.map_err(|e| env.err(e))?;
                if key_id(k) != Some(self.next) {
                    break;
                }
                let Some(event) = decode_event(v) else {
                    if self.buffer.is_empty() {
                        return Err(shared.corruption(self.next, "event checksum mismatch"));
                    }
                    // Hand out the good events first; the next chunk starts at the damage.
                    break;
                };
                self.buffer.push_back((self.next, event.to_vec()));
                self.next += 1;
            }
            if !self.buffer.is_empty() {
                return Ok(());
            }
            // `next` is not in LMDB: archived, deleted, or missing.
            match shared.segment_of(txn, self.next)? {
                Some((first, rec))
                    if rec.state == SegmentState::Archived && rec.last >= self.next =>
                {
                    let to = (rec.last + 1).min(self.end);
                    let opened =
                        log_archive::read_archived(shared, &self.archive_dir, first, self.next, to);
                    let events = match opened {
                        Ok(events) => events,
                        Err(AzothError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                            // Retention may have deleted the segment, archive and all, after
                            // this iterator's snapshot: the events it needs are gone, and
                            // skipping them would hide that. An archive the log still lists
                            // is really missing.
                            drop(_gate);
                            let key = id_key(first);
                            let listed =
                                env.read(|txn| Ok(shared.segments.get(txn, &key)?.is_some()))?;
                            if listed {
                                return Err(AzothError::Io(e));
                            }
                            return Err(AzothError::EventsDeleted {
                                from: self.next,
                                to,
                            });
                        }
                        Err(e) => return Err(e),
                    };
                    self.archived = Some(events);
                    return Ok(());
                }
                Some((_, rec)) if rec.state == SegmentState::Active || rec.last >= self.next => {
                    return Err(shared.corruption(self.next, "event missing from its segment"));
                }
                _ => {
                    // A deleted segment: continue at the next one still stored.
                    let after = shared
                        .segments
                        .get_greater_than(txn, &id_key(self.next))
                        .map_err(|e| env.err(e))?
                        .and_then(|(k, _)| key_id(k));
                    self.next = after.unwrap_or(self.end).min(self.end);
                }
            }
        }
        Ok(())
    }
}

impl Iterator for LogIter {
    type Item = Result<(EventId, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(archived) = &mut self.archived {
            match archived.next() {
                Some(Ok((id, event))) => {
                    self.next = id + 1;
                    return Some(Ok((id, event)));
                }
                Some(Err(e)) => {
                    self.archived = None;
                    self.txn = None;
                    self.next = self.end;
                    return Some(Err(e));
                }
                None => self.archived = None,
            }
            return self.next();
        }
        if self.buffer.is_empty() {
            if let Err(e) = self.fill() {
                self.txn = None;
                self.next = self.end;
                return Some(Err(e));
            }
            if self.archived.is_some() {
                return self.next();
            }
        }
        let item = self.buffer.pop_front().map(Ok);
        if item.is_none() {
            self.txn = None;
        }
        item
    }
}
