//! [`ArchiveReader`]: random access and streaming over an archive file.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::format::{
    Block, HEADER_LEN, Header, HeaderError, INDEX_ENTRY_LEN, IndexEntry, TRAILER_LEN, Trailer,
    VERSION, decode_blocks,
};
use super::{ArchiveSummary, ArchiveVerify};
use crate::chain::{ChainHash, block_hash};
use crate::error::{AzothError, Location, Result};
use crate::types::EventId;
use crate::verify::VerifyFailure;

/// An open archive: header, trailer and frame index in memory, frames read on demand.
///
/// Opening checks the header, the trailer and the index (their checksums, and that the frames
/// tile the file and hold dense ids) without decompressing any frame. Every frame read is
/// checked against its crc32c before it is decompressed; [`verify`](ArchiveReader::verify)
/// reads them all and recomputes the hash chain. The reader is `Send + Sync`; share it in an
/// `Arc` (reads of the file are serialized by a mutex, decompression is not).
#[derive(Debug)]
pub struct ArchiveReader {
    path: PathBuf,
    file: ReadFile,
    header: Header,
    trailer: Trailer,
    pub(super) index: Vec<IndexEntry>,
    bytes: u64,
}

impl ArchiveReader {
    /// Opens the archive at `path` and checks its structure.
    ///
    /// # Errors
    /// [`AzothError::Corruption`] naming the file and offset for a wrong magic, a checksum
    /// mismatch, a truncated file or an inconsistent index;
    /// [`AzothError::UnsupportedVersion`] for a newer format; I/O errors.
    pub fn open(path: &Path) -> Result<Self> {
        let mut file = File::open(path)?;
        let bytes = file.metadata()?.len();
        let corrupt = |offset: u64, detail: String| {
            AzothError::corruption(Location::file(path).at_offset(offset), detail)
        };
        let min = (HEADER_LEN + TRAILER_LEN) as u64;
        if bytes < min {
            return Err(corrupt(
                0,
                format!(
                    "archive truncated: {bytes} bytes, shorter than header and trailer ({min})"
                ),
            ));
        }
        let mut head = [0u8; HEADER_LEN];
        file.read_exact(&mut head)?;
        let header = match Header::decode(&head) {
            Ok(header) => header,
            Err(HeaderError::Magic) => {
                return Err(corrupt(0, "not an archive: wrong magic number".into()));
            }
            Err(HeaderError::Checksum) => {
                return Err(corrupt(0, "archive header checksum mismatch".into()));
            }
            Err(HeaderError::Version(found)) => {
                return Err(AzothError::UnsupportedVersion {
                    what: "archive",
                    found,
                    supported: VERSION,
                });
            }
            Err(HeaderError::Flags(flags)) => {
                return Err(corrupt(
                    0,
                    format!("unknown archive header flags {flags:#x}"),
                ));
            }
        };
        let trailer_at = bytes - TRAILER_LEN as u64;
        let mut tail = [0u8; TRAILER_LEN];
        file.seek(SeekFrom::Start(trailer_at))?;
        file.read_exact(&mut tail)?;
        if !Trailer::has_magic(&tail) {
            return Err(corrupt(
                trailer_at,
                "archive trailer missing (truncated or damaged file)".into(),
            ));
        }
        let trailer = Trailer::decode(&tail);
        let index_len = trailer
            .frame_count
            .checked_mul(INDEX_ENTRY_LEN as u64)
            .filter(|len| trailer.index_offset.checked_add(*len) == Some(trailer_at))
            .filter(|_| trailer.index_offset >= HEADER_LEN as u64)
            .ok_or_else(|| {
                corrupt(
                    trailer_at,
                    "archive trailer does not locate the index (damaged or truncated)".into(),
                )
            })?;
        let mut index_bytes = vec![0u8; index_len as usize];
        file.seek(SeekFrom::Start(trailer.index_offset))?;
        file.read_exact(&mut index_bytes)?;
        if !Trailer::checks(&tail, &index_bytes) {
            return Err(corrupt(
                trailer.index_offset,
                "archive index or trailer checksum mismatch".into(),
            ));
        }
        let index: Vec<IndexEntry> = index_bytes
            .chunks_exact(INDEX_ENTRY_LEN)
            .map(IndexEntry::decode)
            .collect();
        check_index(path, &header, &trailer, &index)?;
        Ok(Self {
            path: path.to_path_buf(),
            file: ReadFile::from(file),
            header,
            trailer,
            index,
            bytes,
        })
    }

    /// The archive's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the archive holds, from its header and trailer.
    pub fn summary(&self) -> ArchiveSummary {
        ArchiveSummary {
            first_event_id: self.header.first_event_id,
            last_event_id: self.trailer.last_event_id,
            event_count: self.trailer.event_count,
            prev_hash: self.header.prev_hash,
            last_hash: self.trailer.last_hash,
            bytes: self.bytes,
        }
    }

    /// The event `event_id`, or `None` if the archive does not hold it. Reads and
    /// decompresses one frame, found by binary search.
    ///
    /// # Errors
    /// [`AzothError::Corruption`] naming file, frame offset and event if the frame is
    /// damaged; I/O errors.
    pub fn get(&self, event_id: EventId) -> Result<Option<Vec<u8>>> {
        let Some(frame) = self.frame_of(event_id) else {
            return Ok(None);
        };
        let blocks = self.read_frame(frame)?;
        for block in blocks {
            if let Some(index) = event_id.checked_sub(block.first_event_id) {
                if let Some(event) = usize::try_from(index)
                    .ok()
                    .and_then(|i| block.events.into_iter().nth(i))
                {
                    return Ok(Some(event));
                }
            }
        }
        Err(self.frame_corruption(
            frame,
            "frame does not hold the events its index entry claims",
        ))
    }

    /// Streams the events from `start` (or the archive's first event, if later) to the end,
    /// decompressing one frame at a time.
    ///
    /// After a `Corruption` item the iterator ends.
    pub fn iter_from(
        self: &Arc<Self>,
        start: EventId,
    ) -> impl Iterator<Item = Result<(EventId, Vec<u8>)>> + Send + 'static {
        let frame = self.index.partition_point(|f| f.end_id() <= start);
        ArchiveIter {
            reader: Arc::clone(self),
            frame,
            start,
            pending: VecDeque::new(),
            failed: false,
        }
    }

    /// Reads every frame, checks its checksum and decoding, and recomputes the hash chain
    /// from the header's `prev_hash` (which must equal `expected_prev` when given) to the
    /// trailer's `last_hash`. Damage is reported in the result's `first_failure`, not as an
    /// error.
    ///
    /// # Errors
    /// I/O errors only.
    pub fn verify(&self, expected_prev: Option<ChainHash>) -> Result<ArchiveVerify> {
        let mut report = ArchiveVerify::default();
        let fail = |report: &mut ArchiveVerify, location: Location, detail: String| {
            report.first_failure = Some(VerifyFailure { location, detail });
        };
        if let Some(expected) = expected_prev {
            if expected != self.header.prev_hash {
                fail(
                    &mut report,
                    Location::file(&self.path)
                        .at_offset(0)
                        .at_event(self.header.first_event_id),
                    "chain link broken: the archive does not continue from the expected hash"
                        .into(),
                );
                return Ok(report);
            }
        }
        let mut hash = self.header.prev_hash;
        let mut next = self.header.first_event_id;
        for (i, frame) in self.index.iter().enumerate() {
            let blocks = match self.read_frame(i) {
                Ok(blocks) => blocks,
                Err(AzothError::Corruption { location, detail }) => {
                    fail(&mut report, location, detail);
                    return Ok(report);
                }
                Err(e) => return Err(e),
            };
            let mut frame_events = 0u64;
            for block in &blocks {
                let location = Location::file(&self.path)
                    .at_offset(frame.offset)
                    .at_event(block.first_event_id);
                if block.first_event_id != next {
                    fail(
                        &mut report,
                        location,
                        format!(
                            "block starts at event {} where {next} was expected",
                            block.first_event_id
                        ),
                    );
                    return Ok(report);
                }
                let computed = block_hash(&hash, block.first_event_id, &block.events);
                if computed != block.hash {
                    fail(&mut report, location, "chain hash mismatch in block".into());
                    return Ok(report);
                }
                hash = computed;
                // `read_frame` checked that the frame's blocks are dense and end where its
                // index entry says, and `open` that those ends do not overflow.
                next = next.saturating_add(block.events.len() as u64);
                frame_events += block.events.len() as u64;
                report.blocks_verified += 1;
                report.events_verified += block.events.len() as u64;
            }
            if frame_events != u64::from(frame.event_count) {
                fail(
                    &mut report,
                    Location::file(&self.path)
                        .at_offset(frame.offset)
                        .at_event(frame.first_event_id),
                    "frame holds a different number of events than its index entry".into(),
                );
                return Ok(report);
            }
            report.frames_verified += 1;
        }
        let end = Location::file(&self.path).at_offset(self.trailer.index_offset);
        if report.blocks_verified != self.trailer.block_count {
            fail(
                &mut report,
                end,
                "block count differs from the trailer".into(),
            );
        } else if hash != self.trailer.last_hash {
            fail(
                &mut report,
                end,
                "chain does not end at the trailer's last hash".into(),
            );
        }
        report.last_hash = hash;
        Ok(report)
    }

    /// The frame holding `event_id`, by binary search.
    fn frame_of(&self, event_id: EventId) -> Option<usize> {
        let i = self.index.partition_point(|f| f.end_id() <= event_id);
        let frame = self.index.get(i)?;
        (frame.first_event_id <= event_id && event_id < frame.end_id()).then_some(i)
    }

    fn frame_corruption(&self, frame: usize, detail: &str) -> AzothError {
        let mut location = Location::file(&self.path);
        if let Some(entry) = self.index.get(frame) {
            location = location
                .at_offset(entry.offset)
                .at_event(entry.first_event_id);
        }
        AzothError::corruption(location, detail)
    }

    /// Reads, checks, decompresses and parses frame `frame`.
    fn read_frame(&self, frame: usize) -> Result<Vec<Block>> {
        let Some(entry) = self.index.get(frame).copied() else {
            return Ok(Vec::new());
        };
        let mut compressed = vec![0u8; entry.len as usize];
        read_at(&self.file, entry.offset, &mut compressed).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                self.frame_corruption(frame, "frame truncated")
            } else {
                e.into()
            }
        })?;
        if crc32c::crc32c(&compressed) != entry.crc {
            return Err(self.frame_corruption(frame, "frame checksum mismatch"));
        }
        let raw = decompress(&compressed, entry.raw_len as usize).map_err(|e| {
            self.frame_corruption(frame, &format!("frame does not decompress: {e}"))
        })?;
        if raw.len() != entry.raw_len as usize {
            return Err(self.frame_corruption(frame, "frame decompresses to the wrong length"));
        }
        let blocks = decode_blocks(&raw).map_err(|(_, why)| self.frame_corruption(frame, why))?;
        // Blocks must tile the frame's ids exactly, or reads would return the wrong events.
        let mut next = entry.first_event_id;
        for block in &blocks {
            if block.first_event_id != next {
                return Err(self.frame_corruption(frame, "blocks of the frame are not dense"));
            }
            next = next
                .checked_add(block.events.len() as u64)
                .ok_or_else(|| self.frame_corruption(frame, "event ids overflow"))?;
        }
        if next != entry.end_id() {
            return Err(self.frame_corruption(
                frame,
                "frame holds a different number of events than its index entry",
            ));
        }
        Ok(blocks)
    }
}

/// The archive file, read at offsets: positioned reads where the platform has them, so
/// readers on many threads do not queue behind one another; elsewhere a seek and a read under
/// a mutex.
#[cfg(unix)]
type ReadFile = File;
#[cfg(not(unix))]
type ReadFile = parking_lot::Mutex<File>;

#[cfg(unix)]
fn read_at(file: &ReadFile, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(not(unix))]
fn read_at(file: &ReadFile, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
    let mut file = file.lock();
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(buf)
}

/// Checks that the frames tile the file from the header to the index and hold dense ids
/// agreeing with the header and trailer.
fn check_index(
    path: &Path,
    header: &Header,
    trailer: &Trailer,
    index: &[IndexEntry],
) -> Result<()> {
    let corrupt = |offset: u64, detail: &str| {
        AzothError::corruption(Location::file(path).at_offset(offset), detail)
    };
    let mut offset = HEADER_LEN as u64;
    let mut next = header.first_event_id;
    let mut events = 0u64;
    for entry in index {
        if entry.offset != offset {
            return Err(corrupt(offset, "frame index does not tile the file"));
        }
        if entry.first_event_id != next {
            return Err(corrupt(entry.offset, "frame index ids are not dense"));
        }
        offset = offset
            .checked_add(u64::from(entry.len))
            .ok_or_else(|| corrupt(entry.offset, "frame length overflows"))?;
        next = next
            .checked_add(u64::from(entry.event_count))
            .ok_or_else(|| corrupt(entry.offset, "frame event count overflows"))?;
        events += u64::from(entry.event_count);
    }
    if offset != trailer.index_offset {
        return Err(corrupt(offset, "frames do not end where the index begins"));
    }
    let last = if events == 0 { 0 } else { next - 1 };
    if events != trailer.event_count || last != trailer.last_event_id {
        return Err(corrupt(
            trailer.index_offset,
            "trailer event counts disagree with the index",
        ));
    }
    if index.is_empty() && (header.prev_hash != trailer.last_hash || trailer.block_count != 0) {
        return Err(corrupt(
            trailer.index_offset,
            "an archive without frames has blocks",
        ));
    }
    Ok(())
}

/// Streams an archive one decompressed frame at a time.
struct ArchiveIter {
    reader: Arc<ArchiveReader>,
    frame: usize,
    start: EventId,
    pending: VecDeque<(EventId, Vec<u8>)>,
    failed: bool,
}

impl Iterator for ArchiveIter {
    type Item = Result<(EventId, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            if self.failed || self.frame >= self.reader.index.len() {
                return None;
            }
            let blocks = match self.reader.read_frame(self.frame) {
                Ok(blocks) => blocks,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            };
            self.frame += 1;
            for block in blocks {
                let first = block.first_event_id;
                for (i, event) in block.events.into_iter().enumerate() {
                    let id = first + i as u64;
                    if id >= self.start {
                        self.pending.push_back((id, event));
                    }
                }
            }
        }
    }
}

/// Frames up to this raw length are decompressed into a buffer of their recorded length at
/// once; larger ones (a single large block) as a stream, so that a recorded length the data
/// does not bear out allocates no more than the data decompresses to.
const BULK_DECOMPRESS_UP_TO: usize = 4 * super::format::FRAME_TARGET_RAW;

/// Decompresses a frame recorded as `raw_len` bytes (at most one byte more is produced, for
/// the caller to find a wrong length).
fn decompress(compressed: &[u8], raw_len: usize) -> std::io::Result<Vec<u8>> {
    if raw_len <= BULK_DECOMPRESS_UP_TO {
        return zstd::bulk::decompress(compressed, raw_len);
    }
    let mut raw = Vec::new();
    zstd::stream::read::Decoder::new(compressed)?
        .take(raw_len as u64 + 1)
        .read_to_end(&mut raw)?;
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_frame_decompresses_only_as_far_as_its_data_and_its_recorded_length_go() {
        let data: Vec<u8> = (0..3 * BULK_DECOMPRESS_UP_TO as u32)
            .map(|i| (i % 251) as u8)
            .collect();
        let compressed = zstd::bulk::compress(&data, 1).unwrap();
        // Recorded right: the stream gives the data.
        assert_eq!(decompress(&compressed, data.len()).unwrap(), data);
        // Recorded as far more than the data: only the data comes out (no 4 GiB buffer).
        assert_eq!(
            decompress(&compressed, u32::MAX as usize).unwrap().len(),
            data.len()
        );
        // Recorded as less (but above the bulk size): one byte more than recorded, enough
        // for the caller to see the mismatch, however much the data would give.
        let recorded = BULK_DECOMPRESS_UP_TO + 1;
        assert_eq!(
            decompress(&compressed, recorded).unwrap().len(),
            recorded + 1
        );
        // Small frames: exactly as recorded, or an error.
        let small = zstd::bulk::compress(&data[..1000], 1).unwrap();
        assert_eq!(decompress(&small, 1000).unwrap(), &data[..1000]);
        assert!(decompress(&small, 999).is_err());
    }
}
