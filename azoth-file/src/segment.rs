//! One segment file: its shared, published state and a buffered block reader over it.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use azoth_core::{AzothError, EventId, Location};
use parking_lot::RwLock;

use crate::format::{
    DecodeError, FRAME_EVENTS, Frame, SEGMENT_HEADER_LEN, SegmentHeader, decode_frame,
    frame_header_len,
};
use crate::index::{self, IndexEntry};

/// The first read of a reader: small, because a `get` or a tail read needs little.
const FIRST_CHUNK: usize = 16 * 1024;
/// The largest read: large enough to amortise the syscall over many blocks in a replay.
const MAX_CHUNK: usize = 256 * 1024;

/// A segment as readers and the writer share it.
///
/// The writer publishes `end_offset` and then `end_id` after a block is written (and synced per
/// the sync mode); readers read only below what they loaded, so they see whole, acknowledged
/// blocks and never wait for the writer.
#[derive(Debug)]
pub struct Segment {
    /// The id of the segment's first event (also its file name).
    pub first_id: EventId,
    /// The segment file.
    pub path: PathBuf,
    end_offset: AtomicU64,
    /// How much of the file is written; below `end_offset` while the writer gathers the
    /// active segment's newest blocks in memory (see the log's write buffer).
    written: AtomicU64,
    end_id: AtomicU64,
    sealed: AtomicBool,
    index: RwLock<Vec<IndexEntry>>,
}

impl Segment {
    /// A segment whose published state is `end_offset` bytes holding ids up to `end_id`.
    pub fn new(
        header: SegmentHeader,
        path: PathBuf,
        end_offset: u64,
        end_id: EventId,
        sealed: bool,
        index: Vec<IndexEntry>,
    ) -> Self {
        Self {
            first_id: header.first_event_id,
            path,
            end_offset: AtomicU64::new(end_offset),
            written: AtomicU64::new(end_offset),
            end_id: AtomicU64::new(end_id),
            sealed: AtomicBool::new(sealed),
            index: RwLock::new(index),
        }
    }

    /// The id after the last published event.
    pub fn end_id(&self) -> EventId {
        self.end_id.load(Ordering::Acquire)
    }

    /// The length of the published blocks, header included.
    pub fn end_offset(&self) -> u64 {
        self.end_offset.load(Ordering::Acquire)
    }

    /// How many bytes of the file are written: readers of the active segment make sure it
    /// reaches what they read (`Shared::read_limit`).
    pub fn written_offset(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// Records that the file now holds `written` bytes.
    pub fn set_written(&self, written: u64) {
        self.written.store(written, Ordering::Release);
    }

    /// True once sealed: immutable from then on.
    pub fn is_sealed(&self) -> bool {
        self.sealed.load(Ordering::Acquire)
    }

    /// Publishes a block just made durable (per the sync mode).
    pub fn publish(&self, end_offset: u64, end_id: EventId) {
        self.end_offset.store(end_offset, Ordering::Release);
        self.end_id.store(end_id, Ordering::Release);
    }

    /// Marks the segment sealed.
    pub fn seal(&self) {
        self.sealed.store(true, Ordering::Release);
    }

    /// Records a block start in the sparse index.
    pub fn note_block(&self, first_id: EventId, offset: u64) {
        let mut entries = self.index.write();
        index::note(&mut entries, first_id, offset);
    }

    /// A copy of the sparse index.
    pub fn index_entries(&self) -> Vec<IndexEntry> {
        self.index.read().clone()
    }

    /// Where to start reading to find `id`: the offset of an indexed block at or before it.
    pub fn seek(&self, id: EventId) -> u64 {
        index::seek(&self.index.read(), id).unwrap_or(SEGMENT_HEADER_LEN as u64)
    }
}

/// A failure reading blocks: an I/O error or a block that did not decode at `offset`.
#[derive(Debug)]
pub enum ScanError {
    /// The read failed.
    Io(io::Error),
    /// The block at `offset` is incomplete or corrupt.
    Decode {
        /// The block's offset in the file.
        offset: u64,
        /// What was wrong.
        error: DecodeError,
    },
}

impl ScanError {
    /// The error to report for this failure in `path`, where `event_id` was expected next.
    pub fn into_azoth(self, path: &Path, event_id: EventId) -> AzothError {
        match self {
            ScanError::Io(e) => AzothError::Io(e),
            ScanError::Decode { offset, error } => AzothError::corruption(
                Location::file(path).at_offset(offset).at_event(event_id),
                match error {
                    DecodeError::Incomplete => "block truncated".to_string(),
                    DecodeError::Corrupt(d) => d,
                },
            ),
        }
    }
}

/// Reads the header of the segment at `path`.
///
/// # Errors
/// I/O errors; `Corruption` naming the file for a missing or damaged header.
pub fn read_header(file: &File, path: &Path) -> azoth_core::Result<SegmentHeader> {
    let mut b = [0u8; SEGMENT_HEADER_LEN];
    let n = read_up_to(file, &mut b, 0)?;
    SegmentHeader::decode(&b[..n]).map_err(|e| {
        AzothError::corruption(
            Location::file(path).at_offset(0),
            match e {
                DecodeError::Incomplete => "segment header truncated".to_string(),
                DecodeError::Corrupt(d) => d,
            },
        )
    })
}

/// Reads into `buf` at `offset` until it is full or the file ends; returns the bytes read.
pub fn read_up_to(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Reads the blocks of one file from an offset up to a limit, through one reused buffer.
#[derive(Debug)]
pub struct BlockReader {
    file: File,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    buf_off: u64,
    /// Next block's position in `buf`.
    pos: usize,
    /// How much of `buf` holds file bytes.
    filled: usize,
    limit: u64,
    /// The size of the next read; doubles up to `MAX_CHUNK` as a scan goes on.
    chunk: usize,
}

impl BlockReader {
    /// Reads blocks of `file` from `start` up to byte `limit`.
    pub fn new(file: File, start: u64, limit: u64) -> Self {
        Self {
            file,
            buf: Vec::new(),
            buf_off: start,
            pos: 0,
            filled: 0,
            limit,
            chunk: FIRST_CHUNK,
        }
    }

    /// The offset of the next block.
    pub fn offset(&self) -> u64 {
        self.buf_off + self.pos as u64
    }

    /// Moves the limit (the writer published more, or a seal fixed it).
    pub fn set_limit(&mut self, limit: u64) {
        self.limit = limit;
    }

    /// The limit.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Makes at least `need` bytes from `pos` available if the limit allows; returns how many are.
    fn fill(&mut self, need: usize) -> io::Result<usize> {
        let avail = self.filled - self.pos;
        if avail >= need {
            return Ok(avail);
        }
        // Keep the unread tail, then read after it. The buffer keeps its length between
        // fills, so it is zeroed only when it grows, not on every read.
        self.buf.copy_within(self.pos..self.filled, 0);
        self.buf_off += self.pos as u64;
        self.filled = avail;
        self.pos = 0;
        let room = self.limit.saturating_sub(self.buf_off);
        let want = need
            .max(self.chunk)
            .min(usize::try_from(room).unwrap_or(usize::MAX));
        self.chunk = (self.chunk * 2).min(MAX_CHUNK);
        if want > self.filled {
            if self.buf.len() < want {
                self.buf.resize(want, 0);
            }
            let n = read_up_to(
                &self.file,
                &mut self.buf[self.filled..want],
                self.buf_off + self.filled as u64,
            )?;
            self.filled += n;
        }
        Ok(self.filled)
    }

    /// The next block and its offset; `Ok(None)` at the limit.
    ///
    /// # Errors
    /// [`ScanError`] for a read failure or a block that is incomplete before the limit or
    /// corrupt.
    pub fn next_frame(&mut self) -> Result<Option<(u64, Frame<'_>)>, ScanError> {
        let offset = self.offset();
        if offset >= self.limit {
            return Ok(None);
        }
        let decode_err = |error| ScanError::Decode { offset, error };
        let avail = self.fill(FRAME_EVENTS).map_err(ScanError::Io)?;
        if avail < FRAME_EVENTS {
            return Err(decode_err(DecodeError::Incomplete));
        }
        let len = frame_header_len(&self.buf[self.pos..self.filled]).map_err(decode_err)?;
        if offset + len as u64 > self.limit {
            return Err(decode_err(DecodeError::Incomplete));
        }
        let avail = self.fill(len).map_err(ScanError::Io)?;
        if avail < len {
            return Err(decode_err(DecodeError::Incomplete));
        }
        let start = self.pos;
        self.pos += len;
        let frame = decode_frame(&self.buf[start..start + len]).map_err(decode_err)?;
        Ok(Some((offset, frame)))
    }
}
