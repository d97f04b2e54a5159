//! [`Arena`]: the memtable's records — key, value and operation id — packed one after another
//! in large chunks.
//!
//! One allocation per megabyte instead of one per value: a write copies its value in (the
//! caller's buffer is freed on the writer's own thread, at once), a lookup finds key and value
//! side by side (one cache miss where a separate value allocation was a second one), and
//! dropping a flushed memtable frees a few chunks instead of one allocation per entry, on
//! whichever thread drops it.

use std::sync::Arc;

use azoth_core::OperationId;
use parking_lot::Mutex;

/// Small records are packed into chunks of this size.
const CHUNK: usize = 1 << 20;

/// A record larger than this gets a chunk of its own, so that a large value neither wastes
/// the rest of a chunk nor makes chunks grow.
const OWN_CHUNK_ABOVE: usize = CHUNK / 4;

/// Bits of a [`RecordRef`] that hold the offset inside a chunk (`CHUNK` is 2^20).
const OFFSET_BITS: u32 = 20;

/// A record's header: timestamp (u64), sequence (u64), value length (u64, `u64::MAX` for a
/// tombstone), key length (u64) and the next record of the same key (u64, `u64::MAX` for
/// none yet), each in native byte order. The key and then the value follow it.
const HEADER: usize = 40;

/// Where in the header the link to the key's next record is.
const NEXT_AT: usize = 32;

const NO_NEXT: u64 = u64::MAX;

const TOMBSTONE: u64 = u64::MAX;

/// Where a record starts: its chunk (high bits) and its offset in the chunk (low 20 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordRef(u64);

impl RecordRef {
    pub(crate) fn to_bits(self) -> u64 {
        self.0
    }

    pub(crate) fn from_bits(bits: u64) -> Self {
        Self(bits)
    }

    fn new(chunk: usize, offset: usize) -> Self {
        Self(((chunk as u64) << OFFSET_BITS) | offset as u64)
    }

    fn chunk(self) -> usize {
        (self.0 >> OFFSET_BITS) as usize
    }

    fn offset(self) -> usize {
        (self.0 & ((1 << OFFSET_BITS) - 1)) as usize
    }
}

/// One record as stored: borrowed from the arena.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record<'a> {
    pub(crate) key: &'a [u8],
    /// `None` is a tombstone.
    pub(crate) value: Option<&'a [u8]>,
    pub(crate) operation_id: OperationId,
}

/// Standard chunks of dropped arenas, kept for the next ones: a chunk fresh from the system
/// costs a page fault and a zeroed page for every 4 KiB written into it, which was a tenth of
/// a bulk load. Keeps at most the bytes it was made for (the memtable size), so an idle
/// database holds no more than one memtable's worth.
#[derive(Debug, Default)]
pub(crate) struct ChunkPool {
    free: Mutex<Vec<Vec<u8>>>,
    keep: usize,
}

impl ChunkPool {
    /// A pool keeping up to `bytes` of chunks.
    pub(crate) fn new(bytes: usize) -> Self {
        Self {
            free: Mutex::new(Vec::new()),
            keep: bytes / CHUNK,
        }
    }

    fn take(&self) -> Vec<u8> {
        self.free
            .lock()
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(CHUNK))
    }

    fn give(&self, chunks: impl Iterator<Item = Vec<u8>>) {
        let mut free = self.free.lock();
        for mut chunk in chunks {
            if chunk.capacity() == CHUNK && free.len() < self.keep {
                chunk.clear();
                free.push(chunk);
            }
        }
    }
}

/// Append-only storage of records. Chunks never move once written (a chunk's capacity is
/// reserved up front and never exceeded), so a [`RecordRef`] stays valid for the arena's life.
/// Dropped, it gives its standard chunks back to its pool.
#[derive(Debug, Default)]
pub(crate) struct Arena {
    chunks: Vec<Vec<u8>>,
    /// The chunk small records go into; `None` before the first.
    current: Option<usize>,
    pool: Arc<ChunkPool>,
}

impl Drop for Arena {
    fn drop(&mut self) {
        self.pool.give(self.chunks.drain(..));
    }
}

fn word(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[at..at + 8]);
    u64::from_ne_bytes(w)
}

impl Arena {
    /// An empty arena taking its chunks from `pool`.
    pub(crate) fn new(pool: Arc<ChunkPool>) -> Self {
        Self {
            chunks: Vec::new(),
            current: None,
            pool,
        }
    }

    /// The bytes a record of this key and value takes.
    pub(crate) fn record_len(key: &[u8], value: Option<&[u8]>) -> usize {
        HEADER + key.len() + value.map_or(0, <[u8]>::len)
    }

    /// Appends a record and returns where it is.
    pub(crate) fn push(
        &mut self,
        key: &[u8],
        value: Option<&[u8]>,
        operation_id: OperationId,
    ) -> RecordRef {
        let len = Self::record_len(key, value);
        let chunk = if len > OWN_CHUNK_ABOVE {
            self.chunks.push(Vec::with_capacity(len));
            self.chunks.len() - 1
        } else {
            match self.current {
                Some(c) if self.chunks[c].capacity() - self.chunks[c].len() >= len => c,
                _ => {
                    self.chunks.push(self.pool.take());
                    self.current = Some(self.chunks.len() - 1);
                    self.chunks.len() - 1
                }
            }
        };
        let buf = &mut self.chunks[chunk];
        let offset = buf.len();
        buf.extend_from_slice(&operation_id.timestamp.to_ne_bytes());
        buf.extend_from_slice(&operation_id.sequence.to_ne_bytes());
        let value_len = value.map_or(TOMBSTONE, |v| v.len() as u64);
        buf.extend_from_slice(&value_len.to_ne_bytes());
        buf.extend_from_slice(&(key.len() as u64).to_ne_bytes());
        buf.extend_from_slice(&NO_NEXT.to_ne_bytes());
        buf.extend_from_slice(key);
        if let Some(v) = value {
            buf.extend_from_slice(v);
        }
        RecordRef::new(chunk, offset)
    }

    #[cfg(test)]
    fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// The record at `at`, which [`push`](Self::push) returned.
    pub(crate) fn record(&self, at: RecordRef) -> Record<'_> {
        let buf = &self.chunks[at.chunk()][at.offset()..];
        let value_len = word(buf, 16);
        let key_len = word(buf, 24) as usize;
        let key = &buf[HEADER..HEADER + key_len];
        let value = (value_len != TOMBSTONE).then(|| {
            let start = HEADER + key_len;
            &buf[start..start + value_len as usize]
        });
        Record {
            key,
            value,
            operation_id: OperationId::new(word(buf, 0), word(buf, 8)),
        }
    }

    /// Links the record at `older` to `newer`, a later record of the same key.
    pub(crate) fn link(&mut self, older: RecordRef, newer: RecordRef) {
        let at = older.offset() + NEXT_AT;
        self.chunks[older.chunk()][at..at + 8].copy_from_slice(&newer.to_bits().to_ne_bytes());
    }

    /// The record linked after `at` by [`link`](Self::link): a later record of its key.
    pub(crate) fn next(&self, at: RecordRef) -> Option<RecordRef> {
        let next = word(&self.chunks[at.chunk()], at.offset() + NEXT_AT);
        (next != NO_NEXT).then_some(RecordRef::from_bits(next))
    }

    /// Only the key of the record at `at` (what a hash probe compares).
    pub(crate) fn key(&self, at: RecordRef) -> &[u8] {
        let buf = &self.chunks[at.chunk()][at.offset()..];
        let key_len = word(buf, 24) as usize;
        &buf[HEADER..HEADER + key_len]
    }

    #[cfg(test)]
    fn allocated(&self) -> usize {
        self.chunks.iter().map(Vec::capacity).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_arenas_give_standard_chunks_back_up_to_the_pool_size() {
        let pool = Arc::new(ChunkPool::new(2 * CHUNK));
        let fill = |arena: &mut Arena| {
            let value = vec![1u8; 1000];
            for i in 0..3000u64 {
                arena.push(&i.to_be_bytes(), Some(&value), OperationId::new(1, i));
            }
            arena.push(
                b"big",
                Some(&vec![2u8; OWN_CHUNK_ABOVE + 1]),
                OperationId::new(1, 0),
            );
        };
        let mut first = Arena::new(Arc::clone(&pool));
        fill(&mut first);
        assert_eq!(first.chunk_count(), 4);
        drop(first);
        // Three standard chunks and one of its own: two kept, emptied.
        assert_eq!(pool.free.lock().len(), 2);
        assert!(
            pool.free
                .lock()
                .iter()
                .all(|c| c.is_empty() && c.capacity() == CHUNK)
        );
        let mut second = Arena::new(Arc::clone(&pool));
        let at = second.push(b"k", Some(b"v"), OperationId::new(2, 3));
        assert_eq!(pool.free.lock().len(), 1);
        assert_eq!(second.record(at).value, Some(&b"v"[..]));
    }

    #[test]
    fn records_read_back_as_written_across_chunks() {
        let mut arena = Arena::default();
        let big = vec![7u8; OWN_CHUNK_ABOVE + 1];
        let mut refs = Vec::new();
        for i in 0..20_000u64 {
            let key = format!("key-{i}");
            let value = match i % 1000 {
                0 | 7 | 300 => None,
                1 => Some(&big[..]),
                _ => Some(&key.as_bytes()[..i as usize % key.len()]),
            };
            let at = arena.push(key.as_bytes(), value, OperationId::new(i, i + 1));
            let value = value.map(<[u8]>::to_vec);
            refs.push((at, key, value));
        }
        for (i, (at, key, value)) in refs.iter().enumerate() {
            let record = arena.record(*at);
            assert_eq!(record.key, key.as_bytes());
            assert_eq!(arena.key(*at), key.as_bytes());
            assert_eq!(record.value.map(<[u8]>::to_vec), *value);
            assert_eq!(
                record.operation_id,
                OperationId::new(i as u64, i as u64 + 1)
            );
            assert_eq!(RecordRef::from_bits(at.to_bits()), *at);
        }
        // 20 records in chunks of their own, the rest packed into a few.
        assert!((21..30).contains(&arena.chunk_count()));
        let (first, second, third) = (refs[3].0, refs[1001].0, refs[19_999].0);
        assert_eq!(arena.next(first), None);
        arena.link(first, second);
        arena.link(second, third);
        assert_eq!(arena.next(first), Some(second));
        assert_eq!(arena.next(second), Some(third));
        assert_eq!(arena.next(third), None);
        assert_eq!(arena.record(first).key, refs[3].1.as_bytes());
        assert!(arena.allocated() >= 20 * OWN_CHUNK_ABOVE);
    }
}
