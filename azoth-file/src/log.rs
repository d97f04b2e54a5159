//! [`FileEventLog`]: the segmented file log, and its [`EventLog`] implementation.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use azoth_core::{
    AzothError, ChainHash, EventId, EventLog, EventLogIterator, EventLogStats, Result, SyncMode,
};
use crossbeam_channel::{Receiver, Sender, bounded};
use parking_lot::{Mutex, RwLock};

use crate::file_name::{self, INDEX_EXT, SEGMENT_EXT, TEMP_EXT};
use crate::format::{
    FRAME_OVERHEAD, MAX_FRAME_LEN, SEGMENT_HEADER_LEN, encode_frame, encode_frame_area, frame_len,
};
use crate::fs::WritableFile;
use crate::index::SegmentIndex;
use crate::options::FileLogOptions;
use crate::reader::FileLogIter;
use crate::recovery::{create_segment, recover};
use crate::segment::Segment;
use crate::unit::{Unit, Units};
use azoth_core::DirLock;

/// The largest frame buffer kept between appends.
const KEEP_BUFFER: usize = 16 * 1024 * 1024;

/// The writable logs open in this process, by canonical directory. A read-only handle opened
/// beside one of them asks it to write its gathered tail out first (see [`Tail`]), so that it
/// sees every block the writer acknowledged, as readers of the writer's own handle do.
/// (Another process sees the gathered blocks once they are written out: at the write-buffer
/// size, a sync, a rotation or the writer's close.)
static WRITERS: Mutex<Vec<(PathBuf, std::sync::Weak<Shared>)>> = Mutex::new(Vec::new());

fn canonical(dir: &Path) -> PathBuf {
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// Writes out the gathered tail of the writable log open on `dir` in this process, if any:
/// for a read-only handle about to read the directory's files.
///
/// # Errors
/// The write's I/O error.
pub(crate) fn write_out_writer_of(dir: &Path) -> Result<()> {
    let dir = canonical(dir);
    let writer = WRITERS
        .lock()
        .iter()
        .find(|(d, _)| *d == dir)
        .and_then(|(_, w)| w.upgrade());
    match writer {
        Some(shared) => shared.write_out_tail(None),
        None => Ok(()),
    }
}

/// The state readers and the writer share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    pub(crate) units: RwLock<Units>,
    pub(crate) options: FileLogOptions,
    /// Id ranges `delete_range` removed from the middle of the log (see `gaps`).
    pub(crate) gaps: Mutex<Vec<(EventId, EventId)>>,
    /// Held by archival and retention (see `FileEventLog::maintenance_guard`).
    maintenance: Mutex<()>,
    /// Why the log refuses writes, once a sync failed: the first failure's detail. Read by
    /// every append, with one atomic load.
    poisoned: std::sync::OnceLock<String>,
    /// Held through every `fdatasync` of the active segment's file (see
    /// [`Shared::sync_active`]).
    active_sync: Mutex<()>,
    /// The active segment's file and its blocks not yet written to it; `None` for a
    /// read-only handle. Taken after the writer's lock, never before it.
    tail: Mutex<Option<Tail>>,
    /// No writer: the units follow the directory (see `follow`).
    pub(crate) read_only: bool,
    /// One refresh of a read-only handle at a time.
    pub(crate) follow: Mutex<()>,
}

/// The active segment's file and the blocks appended but not yet written to it.
///
/// With `SyncMode::Never` and `IntervalMs` and a write buffer set
/// ([`FileLogOptions::write_buffer`]), appends gather their events in `pending` and they
/// reach the file as one block in one write: when `pending` would outgrow the write buffer,
/// at every sync (the interval thread's included), at rotation, on drop, and whenever a
/// reader of this log needs bytes past what is written (readers never see less than every
/// acknowledged event). Gathered appends become one block: each append was whole or absent
/// and stays so inside the larger block, and the block's chain hash is computed once instead
/// of once per append (that hash was a third of a small put). With `Always`, or without a
/// write buffer, every append is its own block, written when it is appended (and with
/// `Always` synced before it is acknowledged), so `pending` stays empty.
#[derive(Debug)]
pub(crate) struct Tail {
    file: Arc<dyn WritableFile>,
    seg: Arc<Segment>,
    /// The file offset where the next block goes: every byte before it is written.
    written: u64,
    /// The chain hash of the last block written.
    last_hash: ChainHash,
    /// The event area (`len u32 | bytes` per event) of the gathered events.
    pending: Vec<u8>,
    /// The id of the first gathered event, and how many there are.
    pending_first: EventId,
    pending_count: u32,
    /// The block under construction at write-out, reused.
    frame: Vec<u8>,
    /// The file's length: the written blocks, then any zeros written ahead of them
    /// ([`FileLogOptions::preallocate`]); for a mapped file, or after zeros failed to be
    /// written ahead, the most it may have grown to.
    file_len: u64,
    /// Set when the writer's handle is dropped: its directory lock is gone, and another
    /// writer may own the file, so gathered events left over are never written from then on.
    closed: bool,
}

/// The active segment's file as the writer should use it, and the most its length may grow
/// to past the log's end: under `SyncMode::Never` and `IntervalMs`, with up to its first
/// `segment_size` bytes allocated (as writes reach them) and written through a memory map
/// (see [`crate::fs::MappedFile`]) where possible; as it is
/// under `Always`, whose fsync per append outweighs the write (and whose zeros ahead are
/// written for real, see [`Tail::zero_ahead`]). `written` is where the log ends in the file.
fn map_active(
    options: &FileLogOptions,
    file: Arc<dyn WritableFile>,
    written: u64,
) -> (Arc<dyn WritableFile>, u64) {
    if options.sync_mode != SyncMode::Always && options.segment_size > written {
        if let Some(mapped) = file.mapped(options.segment_size) {
            return (mapped, options.segment_size);
        }
    }
    (file, written)
}

/// Only blocks up to this size have zeros written ahead of them ([`Tail::zero_ahead`]). The
/// zeros are written to disk too (by the next sync), doubling the bytes a segment takes to
/// write: for small blocks the inode write this saves costs more than that, for large ones
/// (bulk loads) less; measured, zeros ahead of 150 KB blocks made a bulk load 20 % slower.
/// A large block past the zeros grows the file as without preallocation.
const PREALLOCATE_BLOCKS_UP_TO: usize = 64 * 1024;

/// The least [`Tail::zero_ahead`] writes ahead, at the start of a segment.
const FIRST_ZEROS_AHEAD: u64 = 16 * 1024;

/// Zeros to write ahead of the log end from ([`Tail::zero_ahead`]).
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

impl Tail {
    /// Makes sure the file holds zeros (or blocks) up to `block_end` plus `ahead` bytes, short
    /// of `limit` (the segment size: the segment is sealed there), before a block ending at
    /// `block_end` is written. Overwriting zeros instead of growing the file lets the block's
    /// `fdatasync` skip writing the inode. On failure nothing is lost: the zeros written so
    /// far are harmless (the file may reach `target` now, so sealing and close cut them off),
    /// and the append fails before its block is written.
    fn zero_ahead(&mut self, block_end: u64, ahead: u64, limit: u64) -> std::io::Result<()> {
        if ahead == 0 || block_end <= self.file_len {
            return Ok(());
        }
        // No more zeros than the segment holds already (from 16 KiB on), so that the first
        // appends of a new segment, and a log that stays small, write and sync few zeros.
        let ahead = ahead.min(block_end.max(FIRST_ZEROS_AHEAD));
        let target = block_end.saturating_add(ahead).min(limit);
        let mut at = self.file_len.max(block_end);
        while at < target {
            let n = (target - at).min(ZEROS.len() as u64);
            // `n` is at most `ZEROS.len()`.
            if let Err(e) = self.file.write_all_at(&ZEROS[..n as usize], at) {
                self.file_len = self.file_len.max(target);
                return Err(e);
            }
            at += n;
        }
        self.file_len = self.file_len.max(at);
        Ok(())
    }

    /// Cuts off the zeros written ahead of the last block, so that the file ends where the
    /// log does (at sealing and at close).
    fn cut_zeros(&mut self) -> std::io::Result<()> {
        if self.file_len > self.written {
            self.file.set_len(self.written)?;
            self.file_len = self.written;
        }
        Ok(())
    }

    /// The end of the block the gathered events will make, where the next append starts.
    fn end(&self) -> u64 {
        if self.pending_count == 0 {
            self.written
        } else {
            self.written + (FRAME_OVERHEAD + self.pending.len()) as u64
        }
    }

    /// Writes the gathered events to the file as one block. On failure they stay gathered
    /// (more may join them) and a retry writes their block at the same offset, over whatever
    /// part of the failed write reached the file; a crash before a retry succeeds leaves a
    /// torn block there, which recovery cuts off, and gathered events were not durable yet.
    fn write_out(&mut self) -> std::io::Result<()> {
        if self.pending_count == 0 {
            return Ok(());
        }
        if self.closed {
            // Written now, they would land over whatever the next writer put there.
            return Err(std::io::Error::other(
                "the log was closed before its gathered events were written",
            ));
        }
        let hash = encode_frame_area(
            &mut self.frame,
            &self.last_hash,
            self.pending_first,
            self.pending_count,
            &self.pending,
        );
        self.file.write_all_at(&self.frame, self.written)?;
        self.seg.note_block(self.pending_first, self.written);
        self.written += self.frame.len() as u64;
        self.file_len = self.file_len.max(self.written);
        self.last_hash = hash;
        self.seg.set_written(self.written);
        self.pending.clear();
        self.pending_count = 0;
        if self.pending.capacity() > KEEP_BUFFER {
            self.pending = Vec::new();
        }
        if self.frame.capacity() > KEEP_BUFFER {
            self.frame = Vec::new();
        }
        Ok(())
    }
}

impl Shared {
    fn poison(&self, detail: String) {
        tracing::error!(dir = %self.dir.display(), %detail, "event log poisoned");
        // The first failure's detail stays: later ones are its consequences.
        let _ = self.poisoned.set(detail);
    }

    /// How far a reader may read `seg`: a block boundary at or past everything published
    /// when it asks, with those bytes on the file — the gathered events of the writer's
    /// active segment are written out first. (A published end may fall inside a block the
    /// gathered events later make, so readers must not stop there; they stop at an id.)
    pub(crate) fn read_limit(&self, seg: &Arc<Segment>) -> Result<u64> {
        let published = seg.end_offset();
        let written = seg.written_offset();
        if written >= published {
            return Ok(written);
        }
        let mut tail = self.tail.lock();
        match tail.as_mut() {
            Some(t) if Arc::ptr_eq(&t.seg, seg) => {
                t.write_out()?;
                Ok(t.written)
            }
            // Sealed meanwhile: whole on its file.
            Some(_) => Ok(seg.end_offset().max(seg.written_offset())),
            // A read-only handle publishes only whole blocks it found on the file.
            None => Ok(published),
        }
    }

    /// Writes the gathered tail out, if `seg` is `None` or the active segment.
    pub(crate) fn write_out_tail(&self, seg: Option<&Arc<Segment>>) -> Result<()> {
        let mut tail = self.tail.lock();
        if let Some(t) = tail.as_mut() {
            if seg.is_none_or(|s| Arc::ptr_eq(s, &t.seg)) {
                t.write_out()?;
            }
        }
        Ok(())
    }

    /// Cuts off the zeros written ahead of the active segment's last block.
    fn cut_zeros(&self) -> Result<()> {
        if let Some(t) = self.tail.lock().as_mut() {
            t.cut_zeros()?;
        }
        Ok(())
    }

    /// `fdatasync`s the active segment's `file`; a failure poisons the log (`what` says which
    /// sync failed). Linux reports a failed write-back to only one of the `fdatasync`s of an
    /// open file that run at the time: an append's under `Always` could return success while
    /// a `sync()` beside it took the error, and the append's block would be acknowledged
    /// without being on disk. So these syncs run one at a time, and one that succeeds still
    /// fails if one before it poisoned the log.
    fn sync_active(&self, file: &dyn WritableFile, what: &str) -> Result<()> {
        let _one_at_a_time = self.active_sync.lock();
        if let Err(e) = file.sync_data() {
            self.poison(format!("{what} failed: {e}"));
            return Err(e.into());
        }
        self.check_poisoned()
    }

    fn check_poisoned(&self) -> Result<()> {
        match self.poisoned.get() {
            Some(detail) => Err(AzothError::Poisoned {
                detail: detail.clone(),
            }),
            None => Ok(()),
        }
    }
}

/// The writer's side: the one place appends happen.
#[derive(Debug)]
struct Writer {
    seg: Arc<Segment>,
    file: Arc<dyn WritableFile>,
    /// The end of the appended blocks, the one the [`Tail`] gathers included.
    offset: u64,
    next_id: EventId,
    /// The frame under construction, reused so appends do not allocate.
    buf: Vec<u8>,
    /// Segments sealed without a sync (`SyncMode::Never`) since the last `sync()`, which
    /// must make them durable too, and the directory that holds their successors.
    unsynced: Vec<PathBuf>,
}

/// Stops the interval sync thread when dropped.
#[derive(Debug)]
struct Syncer {
    stop: Sender<()>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for Syncer {
    fn drop(&mut self) {
        let _ = self.stop.send(());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The segmented append-only file event log: Azoth's default log backend.
///
/// See the crate documentation for the design and `FORMAT.md` for the bytes.
#[derive(Debug)]
pub struct FileEventLog {
    pub(crate) shared: Arc<Shared>,
    writer: Option<Mutex<Writer>>,
    /// One `sync()` at a time: each syncs the sealed segments it took outside the writer's
    /// lock, and a second must not return before those are durable.
    syncing: Mutex<()>,
    // Dropped after the writer, so the lock outlives every write.
    _syncer: Option<Syncer>,
    _lock: Option<DirLock>,
}

impl FileEventLog {
    /// Opens (creating if needed) the log in `dir` with the default options.
    ///
    /// # Errors
    /// As [`FileLogOptions::open`].
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        FileLogOptions::default().open(dir)
    }

    /// Opens the log in `dir` read-only (no lock, no repair); see
    /// [`FileLogOptions::open_read_only`].
    ///
    /// # Errors
    /// As [`FileLogOptions::open_read_only`].
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<Self> {
        FileLogOptions::default().open_read_only(dir)
    }

    pub(crate) fn open_with(dir: &Path, options: FileLogOptions, read_only: bool) -> Result<Self> {
        if options.segment_size < SEGMENT_HEADER_LEN as u64 {
            return Err(AzothError::Config(format!(
                "segment size {} is smaller than a segment header",
                options.segment_size
            )));
        }
        if let SyncMode::IntervalMs(0) = options.sync_mode {
            return Err(AzothError::Config("sync interval of 0 ms".into()));
        }
        let lock = if read_only {
            None
        } else {
            std::fs::create_dir_all(dir)?;
            Some(DirLock::acquire(dir)?)
        };
        if read_only {
            write_out_writer_of(dir)?;
        }
        // A read-only open shares the directory with a writer that may archive or delete
        // units between listing it and reading them: it lists again, as `follow` does.
        let rec = if read_only {
            crate::follow::recover_read_only(dir, &options)?
        } else {
            recover(dir, &options, false)?
        };
        let writer = if read_only {
            None
        } else {
            let Some(Unit::Segment(seg)) = rec.units.list.last().cloned() else {
                return Err(AzothError::NotFound("active segment".into()));
            };
            let file = options.fs.open_writable(&seg.path, false)?;
            let (file, file_len) = map_active(&options, file, rec.offset);
            Some((
                Writer {
                    next_id: seg.end_id(),
                    seg,
                    file,
                    offset: rec.offset,
                    buf: Vec::new(),
                    unsynced: Vec::new(),
                },
                file_len,
            ))
        };
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            units: RwLock::new(rec.units),
            gaps: Mutex::new(crate::gaps::load(dir)),
            maintenance: Mutex::new(()),
            options,
            poisoned: std::sync::OnceLock::new(),
            active_sync: Mutex::new(()),
            tail: Mutex::new(writer.as_ref().map(|(w, file_len)| Tail {
                file: Arc::clone(&w.file),
                seg: Arc::clone(&w.seg),
                written: w.offset,
                last_hash: rec.last_hash,
                pending: Vec::new(),
                pending_first: w.next_id,
                pending_count: 0,
                frame: Vec::new(),
                // Open cut any zeros a crash left after the last block; a map allocates more.
                file_len: *file_len,
                closed: false,
            })),
            read_only,
            follow: Mutex::new(()),
        });
        if !read_only {
            let mut writers = WRITERS.lock();
            writers.retain(|(_, w)| w.strong_count() > 0);
            writers.push((canonical(dir), Arc::downgrade(&shared)));
        }
        let syncer = match (shared.options.sync_mode, read_only) {
            (SyncMode::IntervalMs(ms), false) => Some(spawn_syncer(&shared, ms)?),
            _ => None,
        };
        Ok(Self {
            shared,
            writer: writer.map(|(w, _)| Mutex::new(w)),
            syncing: Mutex::new(()),
            _syncer: syncer,
            _lock: lock,
        })
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// For a read-only handle, takes in what the writer appended, rotated or removed since
    /// (see `follow.rs`); nothing for the writer's handle, which knows already.
    pub(crate) fn follow(&self) -> Result<()> {
        if self.shared.read_only {
            crate::follow::refresh(&self.shared)?;
        }
        Ok(())
    }

    /// Serializes the jobs that remove units (archival, retention) with each other. They do
    /// not take the writer: sealed units never change, so appends and rotation go on meanwhile.
    pub(crate) fn maintenance_guard(&self) -> Result<impl Drop + '_> {
        if self.writer.is_none() {
            return Err(AzothError::ReadOnly);
        }
        Ok(self.shared.maintenance.lock())
    }

    fn writer(&self) -> Result<parking_lot::MutexGuard<'_, Writer>> {
        self.writer
            .as_ref()
            .map(Mutex::lock)
            .ok_or(AzothError::ReadOnly)
    }

    fn append_block<E: AsRef<[u8]>>(&self, first_event_id: EventId, events: &[E]) -> Result<()> {
        let mut w = self.writer()?;
        self.shared.check_poisoned()?;
        if first_event_id != w.next_id {
            return Err(AzothError::InvalidEventId {
                expected: w.next_id,
                got: first_event_id,
            });
        }
        if events.is_empty() {
            return Ok(());
        }
        let max = u32::MAX as usize;
        if let Some(e) = events.iter().find(|e| e.as_ref().len() >= max) {
            return Err(AzothError::ValueTooLarge {
                len: e.as_ref().len(),
                max: max - 1,
            });
        }
        let Some(len) = frame_len(events) else {
            return Err(AzothError::Config(format!(
                "a block of {} events does not fit the 4 GiB block limit",
                events.len()
            )));
        };
        let w = &mut *w;
        let always = self.shared.options.sync_mode == SyncMode::Always;
        // The event area of a gathered block, bounded so that the block fits a frame.
        let gather = if always {
            0
        } else {
            self.shared
                .options
                .write_buffer
                .min(MAX_FRAME_LEN - FRAME_OVERHEAD)
        };
        let area = len - FRAME_OVERHEAD;
        let end = {
            let mut tail = self.shared.tail.lock();
            let Some(tail) = tail.as_mut() else {
                return Err(AzothError::ReadOnly);
            };
            if tail.pending.len() + area > gather {
                // Before these events join: if the write fails, this append fails and has
                // changed nothing; the gathered (acknowledged) events stay for a retry.
                tail.write_out()?;
            }
            if area <= gather {
                if tail.pending_count == 0 {
                    tail.pending_first = first_event_id;
                }
                for e in events {
                    let e = e.as_ref();
                    // Checked above: every event is shorter than u32::MAX.
                    tail.pending
                        .extend_from_slice(&(e.len() as u32).to_le_bytes());
                    tail.pending.extend_from_slice(e);
                }
                // Bounded by `gather`, itself below the frame limit.
                tail.pending_count += events.len() as u32;
            } else {
                let block_offset = tail.written;
                if always && len <= PREALLOCATE_BLOCKS_UP_TO {
                    let options = &self.shared.options;
                    let block_end = block_offset + len as u64;
                    tail.zero_ahead(block_end, options.preallocate, options.segment_size)?;
                }
                let hash = encode_frame(&mut w.buf, &tail.last_hash, first_event_id, events);
                if let Err(e) = w.file.write_all_at(&w.buf, block_offset) {
                    // Readers never see past the published end, so the log stays consistent;
                    // cut any partial write off so the next block lands on a clean end.
                    if let Err(e2) = w.file.set_len(block_offset) {
                        self.shared.poison(format!(
                            "write failed ({e}) and truncating it failed ({e2})"
                        ));
                    }
                    tail.file_len = block_offset;
                    return Err(e.into());
                }
                w.seg.note_block(first_event_id, block_offset);
                tail.written = block_offset + len as u64;
                tail.file_len = tail.file_len.max(tail.written);
                tail.last_hash = hash;
                w.seg.set_written(tail.written);
                if w.buf.capacity() > KEEP_BUFFER {
                    // One huge batch should not pin its buffer for the life of the log.
                    w.buf = Vec::new();
                }
            }
            tail.end()
        };
        if always {
            self.shared.sync_active(w.file.as_ref(), "fdatasync")?;
        }
        w.offset = end;
        w.next_id += events.len() as u64;
        w.seg.publish(w.offset, w.next_id);
        if w.offset >= self.shared.options.segment_size {
            if let Err(e) = self.rotate_locked(w) {
                // The block is written and acknowledged; rotation is retried on the next append.
                tracing::warn!(error = %e, "rotating a full segment failed");
            }
        }
        Ok(())
    }

    /// `fdatasync`s segments sealed without a sync; one that is gone (archived or deleted
    /// since) made its own changes durable. A failed sync poisons the log.
    fn sync_sealed(&self, sealed: &[PathBuf]) -> Result<()> {
        let fs = self.shared.options.fs.as_ref();
        for path in sealed {
            let synced = match fs.open_writable(path, false) {
                Ok(f) => f.sync_data(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => return Err(e.into()),
            };
            if let Err(e) = synced {
                self.shared
                    .poison(format!("fdatasync of a sealed segment failed: {e}"));
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// The part of `sync()` after the writer's lock: the segments `sealed_meanwhile` and the
    /// active segment's `file` (whose first event is `active_first_id`) synced, then, when
    /// segments were sealed without a sync (`any_sealed`), the directory synced and the
    /// durable mark moved to the active segment.
    fn sync_active_and_dir(
        &self,
        file: &dyn WritableFile,
        active_first_id: EventId,
        any_sealed: bool,
        sealed_meanwhile: &[PathBuf],
    ) -> Result<()> {
        self.sync_sealed(sealed_meanwhile)?;
        self.shared.sync_active(file, "fdatasync")?;
        if any_sealed {
            let fs = self.shared.options.fs.as_ref();
            fs.sync_dir(&self.shared.dir)?;
            // Every segment before the one just synced is durable now: an open after a power
            // loss need not check them (see `durable_mark`). Had it been sealed meanwhile, it
            // and its successors stay for the next `sync()`.
            crate::durable_mark::save(fs, &self.shared.dir, active_first_id)?;
        }
        Ok(())
    }

    /// Seals the active segment (sync, index file) and starts the next one.
    fn rotate_locked(&self, w: &mut Writer) -> Result<PathBuf> {
        let sealed_path = w.seg.path.clone();
        if w.offset == SEGMENT_HEADER_LEN as u64 {
            return Ok(sealed_path);
        }
        self.shared.check_poisoned()?;
        let fs = self.shared.options.fs.as_ref();
        let dir = &self.shared.dir;
        // A sealed segment is whole on its file: readers of sealed data never ask for more.
        self.shared.write_out_tail(None)?;
        // ... and ends with its last block (the sync below makes the cut durable).
        self.shared.cut_zeros()?;
        // With SyncMode::Never nothing on the append path syncs, sealing included: an fsync
        // of even a small file can force the file system to write back the whole segment.
        let durable = self.shared.options.sync_mode != SyncMode::Never;
        if durable {
            self.shared
                .sync_active(w.file.as_ref(), "fdatasync at rotation")?;
        }
        let (segment_len, last_hash) = match self.shared.tail.lock().as_ref() {
            Some(t) => (t.written, t.last_hash),
            None => return Err(AzothError::ReadOnly),
        };
        let idx = SegmentIndex {
            first_event_id: w.seg.first_id,
            end_event_id: w.next_id,
            segment_len,
            last_hash,
            entries: w.seg.index_entries(),
        };
        let idx_path = file_name::unit_path(dir, w.seg.first_id, INDEX_EXT);
        write_atomically(fs, dir, &idx_path, &idx.encode(), durable)?;
        let new_path = file_name::unit_path(dir, w.next_id, SEGMENT_EXT);
        let file = create_segment(fs, dir, &new_path, w.next_id, &last_hash, durable)?;
        if !durable {
            // Sealed, and its successor made, without a sync: `sync()` catches up.
            w.unsynced.push(sealed_path.clone());
        }
        let (file, file_len) = map_active(&self.shared.options, file, SEGMENT_HEADER_LEN as u64);
        let header = crate::format::SegmentHeader {
            first_event_id: w.next_id,
            prev_hash: last_hash,
        };
        let seg = Arc::new(Segment::new(
            header,
            new_path,
            SEGMENT_HEADER_LEN as u64,
            w.next_id,
            false,
            Vec::new(),
        ));
        {
            let mut units = self.shared.units.write();
            w.seg.seal();
            units.list.push(Unit::Segment(Arc::clone(&seg)));
        }
        if let Some(tail) = self.shared.tail.lock().as_mut() {
            tail.file = Arc::clone(&file);
            tail.seg = Arc::clone(&seg);
            tail.written = SEGMENT_HEADER_LEN as u64;
            tail.file_len = file_len;
            tail.pending_first = w.next_id;
        }
        w.seg = seg;
        w.file = file;
        w.offset = SEGMENT_HEADER_LEN as u64;
        if let SyncMode::IntervalMs(_) = self.shared.options.sync_mode {
            // The sealed segment is durable now; only the new one may lose a block before
            // whole ones to a power loss. A mark left behind covers a durable segment too,
            // which only makes the next open scan it.
            if let Err(e) = crate::durable_mark::save(fs, dir, w.next_id) {
                tracing::warn!(error = %e, "moving the durable mark after a rotation failed");
            }
        }
        Ok(sealed_path)
    }

    /// Removes a unit's files from disk: a segment's file, then its index. A crash between
    /// the two leaves an index without its segment, which the next writable open removes
    /// (see `orphan_index`).
    fn remove_unit_files(&self, unit: &Unit) -> Result<()> {
        let fs = self.shared.options.fs.as_ref();
        match unit {
            Unit::Segment(s) => {
                let idx = file_name::unit_path(&self.shared.dir, s.first_id, INDEX_EXT);
                fs.remove_file(&s.path)?;
                if let Err(e) = fs.remove_file(&idx) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        return Err(e.into());
                    }
                }
            }
            Unit::Archive(a) => fs.remove_file(&a.path)?,
        }
        Ok(())
    }
}

/// Writes `bytes` to `path` atomically: a temp file, fsync, rename, fsync of the directory
/// (the syncs only if `durable`).
pub(crate) fn write_atomically(
    fs: &dyn crate::fs::FileSystem,
    dir: &Path,
    path: &Path,
    bytes: &[u8],
    durable: bool,
) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".");
    tmp.push(TEMP_EXT);
    let tmp = PathBuf::from(tmp);
    if tmp.exists() {
        fs.remove_file(&tmp)?;
    }
    let f = fs.open_writable(&tmp, true)?;
    f.write_all_at(bytes, 0)?;
    if durable {
        f.sync_data()?;
    }
    fs.rename(&tmp, path)?;
    if durable {
        fs.sync_dir(dir)?;
    }
    Ok(())
}

fn spawn_syncer(shared: &Arc<Shared>, ms: u64) -> Result<Syncer> {
    let (stop, rx): (Sender<()>, Receiver<()>) = bounded(1);
    let weak = Arc::downgrade(shared);
    let handle = std::thread::Builder::new()
        .name("azoth-file-sync".into())
        .spawn(move || {
            while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                rx.recv_timeout(Duration::from_millis(ms))
            {
                let Some(shared) = weak.upgrade() else { return };
                // Write the gathered blocks out under the tail's lock, sync without it, so
                // appends go on during the fdatasync.
                let file = {
                    let mut tail = shared.tail.lock();
                    match tail.as_mut() {
                        Some(t) => match t.write_out() {
                            Ok(()) => Some(Arc::clone(&t.file)),
                            Err(e) => {
                                drop(tail);
                                shared.poison(format!("background write failed: {e}"));
                                None
                            }
                        },
                        None => None,
                    }
                };
                if let Some(file) = file {
                    // A failure poisons the log, which refuses what comes next.
                    let _ = shared.sync_active(file.as_ref(), "background fdatasync");
                }
            }
        })?;
    Ok(Syncer {
        stop,
        handle: Some(handle),
    })
}

impl Drop for FileEventLog {
    fn drop(&mut self) {
        self.write_out_and_sync_at_close();
        // The directory lock goes with this handle, and another writer may own the files from
        // then on, while the shared state lives on in any iterator still open. Events still
        // gathered here (the log was poisoned, or the write above failed) must never reach
        // the file later: a reader's write-out would put them over that writer's blocks.
        // Such a reader gets an error instead.
        if let Some(t) = self.shared.tail.lock().as_mut() {
            t.closed = true;
        }
        // Nor is this the directory's writer any more: read-only handles opened in this
        // process from now on ask the next one, not this one an iterator keeps alive.
        if self.writer.is_some() {
            let me = Arc::as_ptr(&self.shared);
            WRITERS
                .lock()
                .retain(|(_, w)| w.strong_count() > 0 && !std::ptr::eq(w.as_ptr(), me));
        }
    }
}

impl FileEventLog {
    /// The close of [`Drop`]: the gathered tail written out and, unless under
    /// `SyncMode::Never`, synced.
    fn write_out_and_sync_at_close(&self) {
        // A clean close loses nothing: the gathered blocks reach the file in every mode, and
        // under IntervalMs they are synced too.
        if self.shared.check_poisoned().is_ok() {
            if let Err(e) = self.shared.write_out_tail(None) {
                tracing::error!(dir = %self.shared.dir.display(), error = %e, "final write failed");
                return;
            }
            // Leave the file ending with the log (a crash leaves the zeros to the next open).
            if let Err(e) = self.shared.cut_zeros() {
                tracing::warn!(dir = %self.shared.dir.display(), error = %e, "cutting the preallocated zeros failed");
            }
        }
        if self.shared.options.sync_mode == SyncMode::Never {
            return;
        }
        if let Some(w) = &self.writer {
            if self.shared.check_poisoned().is_ok() {
                let file = Arc::clone(&w.lock().file);
                if let Err(e) = self.shared.sync_active(file.as_ref(), "final fdatasync") {
                    tracing::error!(dir = %self.shared.dir.display(), error = %e, "final fdatasync failed");
                }
            }
        }
    }
}

impl EventLog for FileEventLog {
    fn append_with_id(&self, event_id: EventId, event_bytes: &[u8]) -> Result<()> {
        self.append_block(event_id, &[event_bytes])
    }

    fn append_batch_with_ids(&self, first_event_id: EventId, events: &[Vec<u8>]) -> Result<()> {
        self.append_block(first_event_id, events)
    }

    fn next_event_id(&self) -> Result<EventId> {
        self.follow()?;
        Ok(self.shared.units.read().next_id())
    }

    fn iter_range(
        &self,
        start: EventId,
        end: Option<EventId>,
    ) -> Result<Box<dyn EventLogIterator>> {
        self.follow()?;
        Ok(Box::new(FileLogIter::new(
            Arc::clone(&self.shared),
            start,
            end,
        )))
    }

    fn get(&self, event_id: EventId) -> Result<Option<Vec<u8>>> {
        self.follow()?;
        let mut it = FileLogIter::new(
            Arc::clone(&self.shared),
            event_id,
            Some(event_id.saturating_add(1)),
        );
        match it.next() {
            Some(Ok((id, bytes))) if id == event_id => Ok(Some(bytes)),
            // Deleted by retention while it was being looked up.
            Some(Err(AzothError::EventsDeleted { .. })) => Ok(None),
            Some(Err(e)) => Err(e),
            _ => Ok(None),
        }
    }

    fn delete_range(&self, start: EventId, end: EventId) -> Result<usize> {
        let _m = self.maintenance_guard()?;
        let mut units = self.shared.units.write();
        let active = units.list.len().saturating_sub(1);
        let inside = |i: usize, unit: &Unit| {
            let (first, end_id) = (unit.first_id(), unit.end_id());
            i < active && end_id > first && first >= start && end_id - 1 <= end
        };
        // Ids missing between the units that remain are gaps retention made, not damage.
        // They are recorded before any file goes, so that a crash in between leaves a log
        // that verifies (a recorded gap whose units are still there changes nothing).
        let remaining: Vec<&Unit> = units
            .list
            .iter()
            .enumerate()
            .filter(|&(i, u)| !inside(i, u))
            .map(|(_, u)| u)
            .collect();
        let new_gaps: Vec<(EventId, EventId)> = remaining
            .windows(2)
            .filter(|w| w[0].end_id() < w[1].first_id())
            .map(|w| (w[0].end_id(), w[1].first_id()))
            .collect();
        if remaining.len() < units.list.len() {
            let fs = self.shared.options.fs.as_ref();
            let mut gaps = self.shared.gaps.lock();
            if new_gaps.iter().any(|g| !gaps.contains(g)) {
                let mut all = gaps.clone();
                all.extend(new_gaps.into_iter().filter(|g| !gaps.contains(g)));
                crate::gaps::save(fs, &self.shared.dir, &all)?;
                *gaps = all;
            }
        }
        let mut deleted = 0u64;
        let mut keep = Vec::with_capacity(units.list.len());
        let mut result = Ok(());
        for (i, unit) in units.list.drain(..).enumerate() {
            if inside(i, &unit) && result.is_ok() {
                match self.remove_unit_files(&unit) {
                    Ok(()) => {
                        deleted += unit.end_id() - unit.first_id();
                        continue;
                    }
                    Err(e) => result = Err(e),
                }
            }
            keep.push(unit);
        }
        units.list = keep;
        drop(units);
        if deleted > 0 {
            self.shared.options.fs.sync_dir(&self.shared.dir)?;
        }
        result?;
        Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
    }

    fn rotate(&self) -> Result<PathBuf> {
        let mut w = self.writer()?;
        self.rotate_locked(&mut w)
    }

    fn oldest_event_id(&self) -> Result<EventId> {
        self.follow()?;
        Ok(self.shared.units.read().oldest_id())
    }

    fn newest_event_id(&self) -> Result<EventId> {
        self.follow()?;
        Ok(self.shared.units.read().next_id() - 1)
    }

    fn sync(&self) -> Result<()> {
        let Some(writer) = &self.writer else {
            // Nothing was written through a read-only handle.
            return Ok(());
        };
        let _one_sync = self.syncing.lock();
        // Segments sealed without a sync (`SyncMode::Never`): their blocks, and the directory
        // entries of the segments after them, are durable only from here on. Sealed segments
        // never change, so they are synced without holding up appends (a sealed segment can
        // be a whole segment of data to write).
        let sealed = {
            let mut w = writer.lock();
            self.shared.check_poisoned()?;
            std::mem::take(&mut w.unsynced)
        };
        if let Err(e) = self.sync_sealed(&sealed) {
            // Left for the next `sync()`, which must not skip them.
            writer.lock().unsynced.extend(sealed);
            return Err(e);
        }
        let mut w = writer.lock();
        // Sealed meanwhile: few bytes since the segment above.
        let sealed_meanwhile = std::mem::take(&mut w.unsynced);
        // Under the lock only what fixes the sync's reach: the gathered tail written out and
        // the active segment's file taken, so that the sync covers every block appended up
        // to here. The `fdatasync` itself, which can take tens of milliseconds when a flush
        // syncs a memtable's worth of log, runs without holding up appends; a rotation
        // meanwhile leaves the segment in `unsynced`, for the next `sync()`.
        let prepared = self
            .shared
            .check_poisoned()
            .and_then(|()| self.shared.write_out_tail(None))
            .map(|()| (Arc::clone(&w.file), w.seg.first_id));
        drop(w);
        let any_sealed = !sealed.is_empty() || !sealed_meanwhile.is_empty();
        let synced = prepared.and_then(|(file, active_first_id)| {
            self.sync_active_and_dir(
                file.as_ref(),
                active_first_id,
                any_sealed,
                &sealed_meanwhile,
            )
        });
        if synced.is_err() {
            let mut w = writer.lock();
            // Left for the next `sync()`: until one succeeds, the directory entries of
            // their successors (and the mark) are not durable.
            w.unsynced
                .extend(sealed.into_iter().chain(sealed_meanwhile));
        }
        synced
    }

    fn stats(&self) -> Result<EventLogStats> {
        self.follow()?;
        // So that the bytes counted are the bytes on disk: the log's, not the space allocated
        // ahead of the active segment's end, which a close or a seal cuts off.
        self.shared.write_out_tail(None)?;
        let units = self.shared.units.read();
        let holding = || units.list.iter().filter(|u| u.end_id() > u.first_id());
        Ok(EventLogStats {
            event_count: holding().map(|u| u.end_id() - u.first_id()).sum(),
            oldest_event_id: units.oldest_id(),
            newest_event_id: units.next_id() - 1,
            total_bytes: units.list.iter().map(Unit::bytes).sum(),
            file_count: holding().count(),
        })
    }
}
