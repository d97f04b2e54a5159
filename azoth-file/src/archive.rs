//! Archival of sealed segments into the portable zstd archive format of `azoth-core`, and the
//! statistics that count archives.
//!
//! Each sealed segment wholly at or below `up_to` is copied block by block (same blocks, same
//! chain hashes) into `<first id>.azarc.tmp`, which is synced, renamed into place and made
//! durable with a directory fsync; only then is the segment removed, then its index. A crash
//! at any point leaves the segment, the archive, or both (open then removes the segment), or
//! the archive and the segment's index (a writable open removes the index, see
//! `orphan_index`).

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use azoth_core::{
    ArchiveReader, ArchiveWriter, AzothError, EventLog, EventLogStats, Location, Result,
};

use crate::file_name::{self, ARCHIVE_EXT, INDEX_EXT, TEMP_EXT};
use crate::format::{SEGMENT_HEADER_LEN, chain_hash};
use crate::log::FileEventLog;
use crate::segment::{BlockReader, Segment, read_header};
use crate::unit::{ArchiveUnit, Unit};

/// [`EventLogStats`] and what the file log adds: segments and archives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileLogStats {
    /// The counts every log backend reports.
    pub log: EventLogStats,
    /// Segment files, the active one included.
    pub segment_count: usize,
    /// Bytes in segment files.
    pub segment_bytes: u64,
    /// Archived segments.
    pub archived_count: usize,
    /// Bytes in archives.
    pub archived_bytes: u64,
}

impl FileEventLog {
    /// Archives every sealed segment whose events are all at or below `up_to` and returns the
    /// archives' paths. Archived events stay readable by `get` and `iter_range`, and stay in
    /// the hash chain that [`verify`](Self::verify) checks.
    ///
    /// A segment is checked (crcs and hash chain) while it is copied; a damaged one is not
    /// archived.
    ///
    /// # Errors
    /// [`Corruption`](AzothError::Corruption) naming the damage of a segment to archive;
    /// `ReadOnly`, `Poisoned`; I/O errors. Segments archived before the error stay archived.
    pub fn archive(&self, up_to: azoth_core::EventId) -> Result<Vec<PathBuf>> {
        // Keeps retention and other archivals out; appends and rotation go on meanwhile.
        let _m = self.maintenance_guard()?;
        let candidates: Vec<Arc<Segment>> = {
            let units = self.shared.units.read();
            let sealed = units.list.len().saturating_sub(1);
            units.list[..sealed]
                .iter()
                .filter_map(|u| match u {
                    Unit::Segment(s) if s.end_id() > s.first_id && s.end_id() - 1 <= up_to => {
                        Some(Arc::clone(s))
                    }
                    _ => None,
                })
                .collect()
        };
        let mut out = Vec::with_capacity(candidates.len());
        for seg in candidates {
            out.push(self.archive_segment(&seg)?);
        }
        Ok(out)
    }

    fn archive_segment(&self, seg: &Arc<Segment>) -> Result<PathBuf> {
        let fs = self.shared.options.fs.as_ref();
        let dir = &self.shared.dir;
        let archive_dir = self
            .shared
            .options
            .archive_dir
            .clone()
            .unwrap_or(dir.clone());
        std::fs::create_dir_all(&archive_dir)?;
        let path = file_name::unit_path(&archive_dir, seg.first_id, ARCHIVE_EXT);
        let tmp = file_name::unit_path(
            &archive_dir,
            seg.first_id,
            &format!("{ARCHIVE_EXT}.{TEMP_EXT}"),
        );

        let file = File::open(&seg.path)?;
        let header = read_header(&file, &seg.path)?;
        let mut writer = ArchiveWriter::create(
            &tmp,
            header.prev_hash,
            self.shared.options.compression_level,
        )?;
        let mut reader = BlockReader::new(file, SEGMENT_HEADER_LEN as u64, seg.end_offset());
        let mut hash = header.prev_hash;
        let mut next = seg.first_id;
        loop {
            let (offset, frame) = match reader.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => return Err(e.into_azoth(&seg.path, next)),
            };
            let location = || Location::file(&seg.path).at_offset(offset).at_event(next);
            if frame.first_event_id != next {
                return Err(AzothError::corruption(
                    location(),
                    format!(
                        "block starts at event {}, expected {next}",
                        frame.first_event_id
                    ),
                ));
            }
            if chain_hash(&hash, frame.hashed_bytes()) != frame.hash() {
                return Err(AzothError::corruption(location(), "hash chain broken"));
            }
            // Borrowed from the reader's buffer; a block's worth of slices, not of bytes.
            let events: Vec<&[u8]> = frame.events().collect();
            writer.append_block(frame.first_event_id, &events)?;
            hash = frame.hash();
            next = frame.end_event_id();
        }
        if next != seg.end_id() {
            return Err(AzothError::corruption(
                Location::file(&seg.path)
                    .at_offset(reader.offset())
                    .at_event(next),
                format!("segment ends before event {}", seg.end_id() - 1),
            ));
        }
        let summary = writer.finish()?;
        fs.rename(&tmp, &path)?;
        fs.sync_dir(&archive_dir)?;
        let archive = ArchiveUnit {
            first_id: seg.first_id,
            end_id: seg.end_id(),
            path: path.clone(),
            bytes: summary.bytes,
            reader: Some(Arc::new(ArchiveReader::open(&path)?)),
        };
        {
            let mut units = self.shared.units.write();
            if let Some(slot) = units
                .list
                .iter_mut()
                .find(|u| matches!(u, Unit::Segment(s) if Arc::ptr_eq(s, seg)))
            {
                *slot = Unit::Archive(Arc::new(archive));
            }
        }
        // Readers that opened the segment keep reading their open file.
        fs.remove_file(&seg.path)?;
        let idx = file_name::unit_path(dir, seg.first_id, INDEX_EXT);
        if idx.exists() {
            fs.remove_file(&idx)?;
        }
        fs.sync_dir(dir)?;
        tracing::info!(
            segment = %seg.path.display(),
            archive = %path.display(),
            bytes = summary.bytes,
            "segment archived"
        );
        Ok(path)
    }

    /// [`EventLogStats`] plus segment and archive counts and sizes.
    ///
    /// # Errors
    /// None in practice; `Result` for symmetry with [`EventLog::stats`].
    pub fn file_stats(&self) -> Result<FileLogStats> {
        let log = self.stats()?;
        let units = self.shared.units.read();
        let mut s = FileLogStats {
            log,
            ..FileLogStats::default()
        };
        for u in &units.list {
            match u {
                Unit::Segment(seg) => {
                    s.segment_count += 1;
                    s.segment_bytes += seg.end_offset();
                }
                Unit::Archive(a) => {
                    s.archived_count += 1;
                    s.archived_bytes += a.bytes;
                }
            }
        }
        Ok(s)
    }
}
