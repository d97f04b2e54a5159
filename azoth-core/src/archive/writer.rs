//! [`ArchiveWriter`]: writes one unit's blocks into an archive file.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::ArchiveSummary;
use super::format::{
    FRAME_TARGET_RAW, HEADER_LEN, Header, INDEX_ENTRY_LEN, IndexEntry, Trailer, encode_block,
};
use crate::chain::{ChainHash, block_hash};
use crate::error::{AzothError, Result};
use crate::types::EventId;

/// Writes the blocks of one unit, in order, into a new archive file.
///
/// Blocks are gathered into frames of about 256 KiB of raw bytes, each compressed with zstd
/// and checksummed; [`finish`](ArchiveWriter::finish) writes the frame index and the trailer,
/// then the header, and syncs the file. The caller writes to a temporary name and renames the
/// finished file into place (then syncs the directory), so a crash never leaves a partial
/// archive under the final name.
///
/// ```
/// use azoth_core::archive::{ArchiveReader, ArchiveWriter};
/// use azoth_core::GENESIS_HASH;
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("00000000000000000001.azarc");
/// let mut writer = ArchiveWriter::create(&path, GENESIS_HASH, 3)?;
/// writer.append_block(1, &[b"a".as_slice(), b"b"])?;
/// writer.append_block(3, &[b"c"])?;
/// let summary = writer.finish()?;
/// assert_eq!((summary.first_event_id, summary.last_event_id), (1, 3));
///
/// let reader = std::sync::Arc::new(ArchiveReader::open(&path)?);
/// assert_eq!(reader.get(2)?, Some(b"b".to_vec()));
/// let ids: Vec<u64> = reader.iter_from(2).map(|e| e.map(|(id, _)| id)).collect::<Result<_, _>>()?;
/// assert_eq!(ids, vec![2, 3]);
/// assert!(reader.verify(Some(GENESIS_HASH))?.is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ArchiveWriter {
    path: PathBuf,
    out: BufWriter<File>,
    level: i32,
    prev_hash: ChainHash,
    last_hash: ChainHash,
    /// The first id of the archive; 0 until the first block.
    first_event_id: EventId,
    /// The id the next block must start at; 0 until the first block.
    next_event_id: EventId,
    event_count: u64,
    block_count: u64,
    /// Raw bytes of the frame being gathered, and its first id and event count.
    frame: Vec<u8>,
    frame_first: EventId,
    frame_events: u32,
    /// Where the next frame goes.
    offset: u64,
    index: Vec<IndexEntry>,
}

impl std::fmt::Debug for ArchiveWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveWriter")
            .field("path", &self.path)
            .field("next_event_id", &self.next_event_id)
            .finish_non_exhaustive()
    }
}

impl ArchiveWriter {
    /// Creates (or truncates) the archive at `path` for a unit whose first block continues
    /// the chain from `prev_hash`, compressing at zstd `level` (1..=22; 3 is a good default).
    ///
    /// # Errors
    /// I/O errors creating the file.
    pub fn create(path: &Path, prev_hash: ChainHash, level: i32) -> Result<Self> {
        let file = File::create(path)?;
        let mut out = BufWriter::with_capacity(256 * 1024, file);
        // The real header is written by `finish`, once the first id is known; until then the
        // file starts with zeros, which no reader accepts.
        out.write_all(&[0u8; HEADER_LEN])?;
        Ok(Self {
            path: path.to_path_buf(),
            out,
            level,
            prev_hash,
            last_hash: prev_hash,
            first_event_id: 0,
            next_event_id: 0,
            event_count: 0,
            block_count: 0,
            frame: Vec::new(),
            frame_first: 0,
            frame_events: 0,
            offset: HEADER_LEN as u64,
            index: Vec::new(),
        })
    }

    /// Appends the block of `events` whose ids start at `first_event_id`, exactly as the log
    /// stored it (an empty block included), and links it into the chain.
    ///
    /// # Errors
    /// [`AzothError::InvalidEventId`] if `first_event_id` does not follow the previous block
    /// (or is 0); [`AzothError::Config`] for an event of 4 GiB or more or a block of more than
    /// `u32::MAX` events; I/O errors writing a full frame.
    pub fn append_block<E: AsRef<[u8]>>(
        &mut self,
        first_event_id: EventId,
        events: &[E],
    ) -> Result<()> {
        let expected = if self.block_count == 0 {
            first_event_id.max(1)
        } else {
            self.next_event_id
        };
        if first_event_id != expected {
            return Err(AzothError::InvalidEventId {
                expected,
                got: first_event_id,
            });
        }
        let count = u32::try_from(events.len()).map_err(|_| {
            AzothError::Config("an archive block holds at most u32::MAX events".into())
        })?;
        if events
            .iter()
            .any(|e| u32::try_from(e.as_ref().len()).is_err())
        {
            return Err(AzothError::Config(
                "an archived event must be smaller than 4 GiB".into(),
            ));
        }
        let end = first_event_id
            .checked_add(u64::from(count))
            .ok_or_else(|| AzothError::Config("event ids overflow u64".into()))?;
        if self.frame_events.checked_add(count).is_none() {
            self.flush_frame()?;
        }
        let hash = block_hash(&self.last_hash, first_event_id, events);
        if self.frame.is_empty() && self.frame_events == 0 {
            self.frame_first = first_event_id;
        }
        encode_block(&mut self.frame, first_event_id, count, &hash, events);
        self.frame_events += count;
        if self.block_count == 0 {
            self.first_event_id = first_event_id;
        }
        self.last_hash = hash;
        self.next_event_id = end;
        self.block_count += 1;
        self.event_count += u64::from(count);
        if self.frame.len() >= FRAME_TARGET_RAW {
            self.flush_frame()?;
        }
        Ok(())
    }

    /// Compresses and writes the gathered frame, if any.
    fn flush_frame(&mut self) -> Result<()> {
        if self.frame.is_empty() {
            return Ok(());
        }
        let raw_len = u32::try_from(self.frame.len()).map_err(|_| {
            AzothError::Config("an archive frame must be smaller than 4 GiB".into())
        })?;
        let compressed = zstd::bulk::compress(&self.frame, self.level)?;
        let len = u32::try_from(compressed.len()).map_err(|_| {
            AzothError::Config("an archive frame must be smaller than 4 GiB".into())
        })?;
        self.out.write_all(&compressed)?;
        self.index.push(IndexEntry {
            first_event_id: self.frame_first,
            offset: self.offset,
            len,
            raw_len,
            event_count: self.frame_events,
            crc: crc32c::crc32c(&compressed),
        });
        self.offset += u64::from(len);
        self.frame.clear();
        self.frame_events = 0;
        Ok(())
    }

    /// Writes the last frame, the index, the trailer and the header, and syncs the file.
    ///
    /// # Errors
    /// I/O errors; the file is then incomplete and must not be renamed into place.
    pub fn finish(mut self) -> Result<ArchiveSummary> {
        self.flush_frame()?;
        let mut index = Vec::with_capacity(self.index.len() * INDEX_ENTRY_LEN);
        for entry in &self.index {
            entry.encode_into(&mut index);
        }
        let last_event_id = if self.event_count == 0 {
            0
        } else {
            self.next_event_id - 1
        };
        let trailer = Trailer {
            index_offset: self.offset,
            frame_count: self.index.len() as u64,
            block_count: self.block_count,
            event_count: self.event_count,
            last_event_id,
            last_hash: self.last_hash,
        };
        self.out.write_all(&index)?;
        self.out.write_all(&trailer.encode(&index))?;
        let header = Header {
            first_event_id: self.first_event_id,
            prev_hash: self.prev_hash,
        };
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(&header.encode())?;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        let bytes = file.metadata()?.len();
        tracing::debug!(
            path = %self.path.display(),
            first = self.first_event_id,
            last = last_event_id,
            frames = self.index.len(),
            bytes,
            "archive written"
        );
        Ok(ArchiveSummary {
            first_event_id: self.first_event_id,
            last_event_id,
            event_count: self.event_count,
            prev_hash: self.prev_hash,
            last_hash: self.last_hash,
            bytes,
        })
    }
}
