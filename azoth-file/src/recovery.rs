//! Opening a log directory: finding its units, loading sealed segments' indexes, and scanning
//! the active segment, whose torn tail is cut off per the [`RecoveryMode`].
//!
//! Sealed segments are never scanned when their index file is whole, so opening costs
//! O(segments) plus a scan of the active segment. Damage inside sealed data is never repaired
//! here: reads of it and `verify()` report it. The exception are the segments sealed under
//! `SyncMode::Never` since the last `sync()` (see [`crate::durable_mark`]): they are scanned
//! like the active segment, and the log ends at the first block of them a power loss left
//! incomplete.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use azoth_core::{
    ArchiveReader, AzothError, ChainHash, EventId, GENESIS_HASH, Location, Result, SyncMode,
};

use crate::durable_mark::{self, Mark};
use crate::file_name::{self, FileKind, INDEX_EXT, SEGMENT_EXT};
use crate::format::{
    DecodeError, FRAME_COUNT, FRAME_EVENTS, SEGMENT_HEADER_LEN, SegmentHeader, frame_header_len,
    read_u32,
};
use crate::fs::FileSystem;
use crate::index::{self, IndexEntry, SegmentIndex};
use crate::options::{FileLogOptions, RecoveryMode};
use crate::segment::{BlockReader, ScanError, Segment, read_header, read_up_to};
use crate::unit::{ArchiveUnit, Unit, Units};

/// What opening found: the units, and where the writer continues.
#[derive(Debug)]
pub struct Recovered {
    /// Every unit in order; the last is the active segment.
    pub units: Units,
    /// The end of the active segment's valid blocks.
    pub offset: u64,
    /// The chain hash of the last block (or the active segment's header hash).
    pub last_hash: ChainHash,
}

/// A unit file found in the directory.
enum Found {
    Segment(PathBuf),
    Archive(PathBuf),
}

/// What one scan of a segment found.
struct Scan {
    end_offset: u64,
    end_id: EventId,
    last_hash: ChainHash,
    entries: Vec<IndexEntry>,
    /// The failure that ended the scan before the file's end.
    failure: Option<ScanError>,
}

impl Scan {
    /// The index of a segment starting at `first_id` that this scan found whole.
    fn index(&self, first_id: EventId) -> SegmentIndex {
        SegmentIndex {
            first_event_id: first_id,
            end_event_id: self.end_id,
            segment_len: self.end_offset,
            last_hash: self.last_hash,
            entries: self.entries.clone(),
        }
    }
}

/// Scans the blocks of `file` from its header to `len`, expecting ids from the header's on.
fn scan(file: File, header: &SegmentHeader, len: u64) -> Scan {
    let mut reader = BlockReader::new(file, SEGMENT_HEADER_LEN as u64, len);
    let mut s = Scan {
        end_offset: SEGMENT_HEADER_LEN as u64,
        end_id: header.first_event_id,
        last_hash: header.prev_hash,
        entries: Vec::new(),
        failure: None,
    };
    loop {
        match reader.next_frame() {
            Ok(None) => break,
            Ok(Some((offset, frame))) => {
                if frame.first_event_id != s.end_id {
                    s.failure = Some(ScanError::Decode {
                        offset,
                        error: DecodeError::Corrupt(format!(
                            "block starts at event {}, expected {}",
                            frame.first_event_id, s.end_id
                        )),
                    });
                    break;
                }
                index::note(&mut s.entries, frame.first_event_id, offset);
                s.end_id = frame.end_event_id();
                s.last_hash = frame.hash();
                s.end_offset = offset + frame.byte_len() as u64;
            }
            Err(e) => {
                s.failure = Some(e);
                break;
            }
        }
    }
    s
}

/// The unit files of `dir` (and the archive directory) by first id, an archive winning over
/// a segment of the same id; and the segments an archive superseded. Removes temporary files
/// unless `read_only`.
fn find_units(
    dir: &Path,
    options: &FileLogOptions,
    read_only: bool,
) -> Result<(BTreeMap<EventId, Found>, Vec<PathBuf>)> {
    let fs = options.fs.as_ref();
    let mut found: BTreeMap<EventId, Found> = BTreeMap::new();
    let mut dirs = vec![dir.to_path_buf()];
    if let Some(a) = &options.archive_dir {
        if a != dir && a.exists() {
            dirs.push(a.clone());
        }
    }
    let mut superseded = Vec::new();
    // A reader lists beside a writer that archives and deletes units, and a listing is no
    // snapshot: one that runs while an archive is renamed in and its segment then removed
    // may hold neither name. A second listing, begun after the first ended, holds the
    // archive (renamed before the segment went), so a read-only open takes the union of
    // two. (Across two directories the order alone suffices: segments, then archives.)
    let listings = if read_only { 2 } else { 1 };
    let passes = std::iter::repeat_n(&dirs, listings).flatten();
    for d in passes {
        for name in fs.list_dir(d)? {
            let Some(name) = name.to_str() else { continue };
            let path = d.join(name);
            match file_name::parse(name) {
                Some((FileKind::Segment, id)) if d == dir => match found.get(&id) {
                    // Archived, but the crash came before the segment was removed.
                    Some(Found::Archive(_)) => {
                        if !superseded.contains(&path) {
                            superseded.push(path);
                        }
                    }
                    _ => {
                        found.insert(id, Found::Segment(path));
                    }
                },
                Some((FileKind::Archive, id)) => {
                    if let Some(Found::Segment(p)) = found.insert(id, Found::Archive(path)) {
                        superseded.push(p);
                    }
                }
                Some((FileKind::Temp, _)) if !read_only => {
                    // An interrupted index or archive write: the original is still in place.
                    fs.remove_file(&path)?;
                }
                _ => {}
            }
        }
    }
    Ok((found, superseded))
}

/// The units `dir` holds now, as `(first id, is an archive)` in id order; changes nothing.
///
/// # Errors
/// I/O errors listing the directories.
pub(crate) fn list_units(dir: &Path, options: &FileLogOptions) -> Result<Vec<(EventId, bool)>> {
    let (found, _) = find_units(dir, options, true)?;
    Ok(found
        .into_iter()
        .map(|(id, f)| (id, matches!(f, Found::Archive(_))))
        .collect())
}

/// Opens the units of `dir`; see the module docs. A writable open then removes the indexes
/// that removals of segments cut short left behind (see [`crate::orphan_index`]).
///
/// # Errors
/// I/O errors; `Corruption` for damage that cannot be repaired, or any tail damage under
/// [`RecoveryMode::Refuse`].
pub fn recover(dir: &Path, options: &FileLogOptions, read_only: bool) -> Result<Recovered> {
    let recovered = open_units(dir, options, read_only)?;
    if !read_only {
        // Once the units are final: cutting the log back after a power loss changes which
        // ids it holds, and the gaps it records.
        let gaps = crate::gaps::load(dir);
        crate::orphan_index::remove_orphan_indexes(
            options.fs.as_ref(),
            dir,
            &recovered.units,
            &gaps,
        );
    }
    Ok(recovered)
}

/// Lists, opens and repairs the units of `dir`: [`recover`] but for the leftover indexes.
fn open_units(dir: &Path, options: &FileLogOptions, read_only: bool) -> Result<Recovered> {
    let fs = options.fs.as_ref();
    // A read-only open repairs nothing: damage in segments a power loss cut short is
    // reported by its reads, as any other.
    let mark = if read_only {
        Mark::None
    } else {
        durable_mark::load(dir)?
    };
    let (mut found, superseded) = find_units(dir, options, read_only)?;
    if !read_only {
        for p in superseded {
            tracing::info!(segment = %p.display(), "removing a segment already archived");
            fs.remove_file(&p)?;
            let idx = p.with_extension(INDEX_EXT);
            if idx.exists() {
                fs.remove_file(&idx)?;
            }
        }
    }
    // The active segment is the last unit; make one when there is none.
    let (next_first, prev) = match found.iter().next_back() {
        None => (1, GENESIS_HASH),
        Some((_, Found::Archive(p))) => {
            let summary = ArchiveReader::open(p)?.summary();
            let Some(next) = summary.last_event_id.checked_add(1) else {
                return Err(AzothError::corruption(
                    Location::file(p),
                    "archive claims events up to the largest id, leaving none after it",
                ));
            };
            (next, summary.last_hash)
        }
        Some((_, Found::Segment(_))) => (0, GENESIS_HASH),
    };
    if next_first > 0 {
        if read_only {
            return Err(AzothError::NotFound(format!(
                "no active segment in {}",
                dir.display()
            )));
        }
        let path = file_name::unit_path(dir, next_first, SEGMENT_EXT);
        create_segment(fs, dir, &path, next_first, &prev, true)?;
        found.insert(next_first, Found::Segment(path));
    }

    let ids: Vec<EventId> = found.keys().copied().collect();
    let mut units = Units::default();
    let mut prev_last_hash = GENESIS_HASH;
    // Segments the durable mark covers that scanned whole: made durable once open.
    let mut checked: Vec<PathBuf> = Vec::new();
    // Ids `delete_range` removed between units are not a hole a power loss made.
    let gaps = crate::gaps::load(dir);
    for (i, (&first_id, f)) in found.iter().enumerate() {
        match (f, ids.get(i + 1)) {
            (Found::Archive(path), Some(&next_first)) => {
                // The archive says where it ends: retention may have left a gap after it. A
                // damaged one is taken to reach the next unit, so that reads report it.
                let mut end_id = next_first;
                let reader = match ArchiveReader::open(path) {
                    Ok(r) => {
                        let summary = r.summary();
                        prev_last_hash = summary.last_hash;
                        if (first_id..next_first).contains(&summary.last_event_id) {
                            end_id = summary.last_event_id + 1;
                        }
                        Some(Arc::new(r))
                    }
                    // Gone, not damaged: retention deleted it since the directory was listed
                    // (a read-only open lists again, see `follow`).
                    Err(AzothError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(e.into());
                    }
                    Err(e) => {
                        tracing::warn!(archive = %path.display(), error = %e, "archive unreadable; reads of it will fail");
                        None
                    }
                };
                units.list.push(Unit::Archive(Arc::new(ArchiveUnit {
                    first_id,
                    end_id,
                    path: path.clone(),
                    bytes: match &reader {
                        Some(r) => r.summary().bytes,
                        None => std::fs::metadata(path)?.len(),
                    },
                    reader,
                })));
            }
            (Found::Segment(path), Some(&next_first)) if mark.covers(first_id) => {
                if let Some((seg, last_hash)) =
                    scan_unsynced(fs, dir, path, first_id, next_first, &gaps)?
                {
                    prev_last_hash = last_hash;
                    units.list.push(Unit::Segment(Arc::new(seg)));
                    checked.push(path.clone());
                    continue;
                }
                // Not whole: the log ends in this segment, which becomes the active one again.
                let later: Vec<&Found> = found.range(next_first..).map(|(_, f)| f).collect();
                end_log_in(dir, options, path, first_id, &later)?;
                // Its first page may be lost with others, while later ones reached the disk:
                // then it keeps no block, and its header is written again.
                if read_header(&File::open(path)?, path).is_err() {
                    tracing::warn!(segment = %path.display(), "rewriting the lost header of a segment sealed without a sync");
                    fs.remove_file(path)?;
                    create_segment(fs, dir, path, first_id, &prev_last_hash, true)?;
                }
                let active = Active {
                    path,
                    first_id,
                    prev_last_hash,
                    unsynced: true,
                };
                let recovered = open_active(dir, options, false, &active, units)?;
                settle_durable_mark(dir, options, mark, &checked, &recovered)?;
                return Ok(recovered);
            }
            (Found::Segment(path), Some(&next_first)) => {
                let seg = open_sealed(
                    path,
                    first_id,
                    next_first,
                    &mut prev_last_hash,
                    dir,
                    read_only,
                )?;
                units.list.push(Unit::Segment(Arc::new(seg)));
            }
            (Found::Segment(path), None) => {
                let active = Active {
                    path,
                    first_id,
                    prev_last_hash,
                    unsynced: mark.covers(first_id),
                };
                let recovered = open_active(dir, options, read_only, &active, units)?;
                if !read_only {
                    settle_durable_mark(dir, options, mark, &checked, &recovered)?;
                }
                return Ok(recovered);
            }
            (Found::Archive(_), None) => break,
        }
    }
    // The loop returns at the last segment, and there is at least one.
    Err(AzothError::NotFound(format!(
        "no active segment in {}",
        dir.display()
    )))
}

/// Scans a sealed segment the durable mark covers. Whole (every block, ending with the ids
/// the next unit starts at or a recorded gap before them, perhaps followed by zeros a
/// sealing cut did not make durable), it is returned with its last hash, its zeros cut and
/// its index rewritten; otherwise `None`.
fn scan_unsynced(
    fs: &dyn FileSystem,
    dir: &Path,
    path: &Path,
    first_id: EventId,
    next_first: EventId,
    gaps: &[(EventId, EventId)],
) -> Result<Option<(Segment, ChainHash)>> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let Ok(header) = read_header(&file, path) else {
        return Ok(None);
    };
    if header.first_event_id != first_id {
        return Ok(None);
    }
    let mut s = scan(file, &header, len);
    let whole = match s.failure.take() {
        None => true,
        Some(ScanError::Decode { .. }) => zeros_from(path, s.end_offset, len)?,
        Some(ScanError::Io(e)) => return Err(e.into()),
    };
    let continued = s.end_id == next_first
        || azoth_core::deleted_ranges::ranges_cover(gaps, s.end_id, next_first);
    if !whole || !continued {
        return Ok(None);
    }
    if s.end_offset < len {
        cut_durably(fs, path, s.end_offset)?;
    }
    let idx = s.index(first_id);
    let idx_path = file_name::unit_path(dir, first_id, INDEX_EXT);
    // Made durable with the segment, once open (`settle_durable_mark`).
    crate::log::write_atomically(fs, dir, &idx_path, &idx.encode(), false)?;
    let seg = Segment::new(
        header,
        path.to_path_buf(),
        s.end_offset,
        s.end_id,
        true,
        s.entries,
    );
    Ok(Some((seg, s.last_hash)))
}

/// Makes the segment at `path` the log's last one after a power loss under
/// `SyncMode::Never` left it incomplete (or lost the one after it): the units after it hold
/// ids past a hole, so they go. Under [`RecoveryMode::Refuse`] nothing is changed and the
/// open fails. An archive after it (archives are always durable) is damage, not a power loss.
fn end_log_in(
    dir: &Path,
    options: &FileLogOptions,
    path: &Path,
    first_id: EventId,
    later: &[&Found],
) -> Result<()> {
    let location = Location::file(path).at_event(first_id);
    if options.recovery_mode == RecoveryMode::Refuse {
        return Err(AzothError::corruption(
            location,
            "a segment sealed without a sync is incomplete after a power loss".to_string(),
        ));
    }
    if later.iter().any(|f| matches!(f, Found::Archive(_))) {
        return Err(AzothError::corruption(
            location,
            "a segment before an archive is incomplete".to_string(),
        ));
    }
    let fs = options.fs.as_ref();
    // Gaps retention left past the log's new end: the ids appended again will fill them.
    let gaps = crate::gaps::load(dir);
    let kept: Vec<(EventId, EventId)> = gaps
        .iter()
        .copied()
        .filter(|&(_, end)| end <= first_id)
        .collect();
    if kept.len() < gaps.len() {
        crate::gaps::save(fs, dir, &kept)?;
    }
    tracing::warn!(
        %location,
        dropped_segments = later.len(),
        "a power loss left a segment sealed without a sync incomplete; the log ends in it"
    );
    for f in later {
        if let Found::Segment(p) = f {
            fs.remove_file(p)?;
            let idx = p.with_extension(INDEX_EXT);
            if idx.exists() {
                fs.remove_file(&idx)?;
            }
        }
    }
    fs.sync_dir(dir)?;
    Ok(())
}

/// After a writable open (which found the mark `current`): the segments the mark covered
/// that scanned whole are made durable now, and the mark moves to the active segment under
/// `SyncMode::Never` (whose sealing does not sync) and `IntervalMs` (whose appends are not
/// synced one by one, so that a power loss can leave a lost block before whole ones), or goes
/// under `Always`.
fn settle_durable_mark(
    dir: &Path,
    options: &FileLogOptions,
    current: Mark,
    checked: &[PathBuf],
    recovered: &Recovered,
) -> Result<()> {
    let fs = options.fs.as_ref();
    for path in checked {
        fs.open_writable(path, false)?.sync_data()?;
    }
    if !checked.is_empty() {
        fs.sync_dir(dir)?;
    }
    let active = recovered
        .units
        .list
        .last()
        .map_or(1, |unit| unit.first_id());
    let wanted = if options.sync_mode == SyncMode::Always {
        Mark::None
    } else {
        Mark::From(active)
    };
    match wanted {
        Mark::From(id) if current != wanted => durable_mark::save(fs, dir, id),
        Mark::None => {
            // The active segment's blocks appended under `Never` or `IntervalMs` are durable
            // before the mark goes: without it, a lost block followed by whole ones reads as
            // damage.
            if let (Mark::From(_), Some(Unit::Segment(seg))) =
                (current, recovered.units.list.last())
            {
                if current.covers(seg.first_id) {
                    fs.open_writable(&seg.path, false)?.sync_data()?;
                }
            }
            durable_mark::clear(fs, dir)
        }
        Mark::From(_) => Ok(()),
    }
}

/// Loads a sealed segment from its index, or scans it when the index is missing or damaged.
fn open_sealed(
    path: &Path,
    first_id: EventId,
    next_first: EventId,
    prev_last_hash: &mut ChainHash,
    dir: &Path,
    read_only: bool,
) -> Result<Segment> {
    let idx_path = file_name::unit_path(dir, first_id, INDEX_EXT);
    // A damaged header is reported by reads and verify; the name and the neighbours still say
    // which ids the segment holds.
    let file = File::open(path)?;
    let header = read_header(&file, path).unwrap_or(SegmentHeader {
        first_event_id: first_id,
        prev_hash: *prev_last_hash,
    });
    let header = SegmentHeader {
        first_event_id: first_id,
        ..header
    };
    match std::fs::read(&idx_path)
        .ok()
        .and_then(|b| SegmentIndex::decode(&b).ok())
        .filter(|idx| idx.first_event_id == first_id)
    {
        Some(idx) => {
            *prev_last_hash = idx.last_hash;
            Ok(Segment::new(
                header,
                path.to_path_buf(),
                idx.segment_len,
                idx.end_event_id,
                true,
                idx.entries,
            ))
        }
        None => {
            tracing::warn!(segment = %path.display(), "sealed segment has no valid index; scanning it");
            let len = file.metadata()?.len();
            let s = scan(file, &header, len);
            *prev_last_hash = s.last_hash;
            if s.failure.is_none() && s.end_id == next_first && !read_only {
                let idx = s.index(first_id);
                // Best effort: without it the next open scans again.
                if let Err(e) = std::fs::write(&idx_path, idx.encode()) {
                    tracing::warn!(index = %idx_path.display(), error = %e, "rewriting a segment index failed");
                }
            }
            // Damage stays visible to reads: they stop at the failure and report it.
            let end_id = if s.failure.is_some() {
                next_first
            } else {
                s.end_id
            };
            Ok(Segment::new(
                header,
                path.to_path_buf(),
                len,
                end_id,
                true,
                s.entries,
            ))
        }
    }
}

/// The segment that is to be the active one.
struct Active<'a> {
    path: &'a Path,
    first_id: EventId,
    /// The chain hash of the last block before it.
    prev_last_hash: ChainHash,
    /// Its blocks may not have been synced one by one, though the mode is `Always` now (the
    /// durable mark covers it): a whole block after a damaged one may be a power loss's.
    unsynced: bool,
}

/// Scans the active segment and repairs its tail.
fn open_active(
    dir: &Path,
    options: &FileLogOptions,
    read_only: bool,
    active: &Active<'_>,
    mut units: Units,
) -> Result<Recovered> {
    let &Active {
        path,
        first_id,
        prev_last_hash,
        unsynced,
    } = active;
    let fs = options.fs.as_ref();
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let header = read_header(&file, path);
    // A segment whose creation was cut short holds no block yet: shorter than a header, or
    // zeros from its first byte (under `SyncMode::Never` its header is not synced, while the
    // space allocated ahead of it gives the file its length at once).
    let never_written =
        header.is_err() && (len <= SEGMENT_HEADER_LEN as u64 || zeros_from(path, 0, len)?);
    let header = match header {
        Ok(h) => h,
        // Write its header again.
        Err(_) if never_written && !read_only => {
            tracing::warn!(segment = %path.display(), "rewriting an incomplete segment header");
            fs.remove_file(path)?;
            create_segment(fs, dir, path, first_id, &prev_last_hash, true)?;
            SegmentHeader {
                first_event_id: first_id,
                prev_hash: prev_last_hash,
            }
        }
        // Read-only: the writer may be creating it right now; it holds nothing yet.
        Err(_) if never_written => {
            let header = SegmentHeader {
                first_event_id: first_id,
                prev_hash: prev_last_hash,
            };
            let end = SEGMENT_HEADER_LEN as u64;
            let seg = Segment::new(header, path.to_path_buf(), end, first_id, false, Vec::new());
            units.list.push(Unit::Segment(Arc::new(seg)));
            return Ok(Recovered {
                units,
                offset: end,
                last_hash: prev_last_hash,
            });
        }
        Err(e) => return Err(e),
    };
    if header.first_event_id != first_id {
        return Err(AzothError::corruption(
            Location::file(path).at_offset(0),
            format!(
                "segment header names event {}, its file name {first_id}",
                header.first_event_id
            ),
        ));
    }
    let mut s = scan(File::open(path)?, &header, len);
    let torn = matches!(s.failure, Some(ScanError::Decode { .. }));
    if torn && zeros_from(path, s.end_offset, len)? {
        // The space a writer keeps ahead of its last block (zeros written ahead under
        // `Always`, the allocated, mapped segment otherwise), left by a crash: the log ends
        // where the zeros start. Cut them off; nothing was lost.
        tracing::debug!(segment = %path.display(), bytes = len - s.end_offset, "cutting preallocated zeros");
        s.failure = None;
        if !read_only {
            cut_durably(fs, path, s.end_offset)?;
        }
    }
    if let Some(failure) = s.failure {
        let failure = match failure {
            ScanError::Io(e) => return Err(e.into()),
            ScanError::Decode { offset, error } => (offset, error),
        };
        let dropped_bytes = len - s.end_offset;
        let dropped_events = torn_block_count(path, failure.0);
        let location = Location::file(path).at_offset(failure.0).at_event(s.end_id);
        if read_only {
            tracing::warn!(%location, dropped_bytes, "ignoring a damaged tail (read-only)");
        } else {
            match options.recovery_mode {
                RecoveryMode::Refuse => {
                    return Err(AzothError::corruption(
                        location,
                        format!("damaged tail of {dropped_bytes} bytes: {:?}", failure.1),
                    ));
                }
                // Under `Always` every block was synced before the next was written, so a
                // whole block after the damaged one means damage, not a torn write: cutting
                // there would drop acknowledged events.
                RecoveryMode::TruncateTail
                    if options.sync_mode == SyncMode::Always
                        && !unsynced
                        && valid_block_follows(path, failure.0, len, s.end_id) =>
                {
                    return Err(AzothError::corruption(
                        location,
                        format!(
                            "damaged block followed by whole blocks in the active segment \
                             (not a torn tail, so nothing is truncated): {:?}",
                            failure.1
                        ),
                    ));
                }
                RecoveryMode::TruncateTail => {
                    tracing::warn!(
                        %location,
                        dropped_bytes,
                        dropped_events = ?dropped_events,
                        problem = ?failure.1,
                        "truncating the torn tail of the active segment"
                    );
                    cut_durably(fs, path, s.end_offset)?;
                }
            }
        }
    }
    if !read_only {
        // An index beside the active segment is left from a rotation cut short.
        let idx = file_name::unit_path(dir, first_id, INDEX_EXT);
        if idx.exists() {
            fs.remove_file(&idx)?;
        }
    }
    let seg = Segment::new(
        header,
        path.to_path_buf(),
        s.end_offset,
        s.end_id,
        false,
        s.entries,
    );
    units.list.push(Unit::Segment(Arc::new(seg)));
    Ok(Recovered {
        units,
        offset: s.end_offset,
        last_hash: s.last_hash,
    })
}

/// Cuts the file at `path` to `len` bytes and syncs the cut.
fn cut_durably(fs: &dyn crate::fs::FileSystem, path: &Path, len: u64) -> Result<()> {
    let f = fs.open_writable(path, false)?;
    f.set_len(len)?;
    f.sync_data()?;
    Ok(())
}

/// True when every byte of the file at `path` from `offset` to `len` is zero.
fn zeros_from(path: &Path, offset: u64, len: u64) -> Result<bool> {
    let file = File::open(path)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut at = offset;
    while at < len {
        let want = buf
            .len()
            .min(usize::try_from(len - at).unwrap_or(usize::MAX));
        let n = read_up_to(&file, &mut buf[..want], at)?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}

/// True when the damaged block at `offset` has a whole header and a whole, valid block after
/// it that continues past `expected_id`.
fn valid_block_follows(path: &Path, offset: u64, len: u64, expected_id: EventId) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    let mut b = [0u8; FRAME_EVENTS];
    let Ok(n) = read_up_to(&file, &mut b, offset) else {
        return false;
    };
    let Ok(block_len) = frame_header_len(&b[..n]) else {
        return false;
    };
    let next = offset + block_len as u64;
    if next >= len {
        return false;
    }
    let mut reader = BlockReader::new(file, next, len);
    matches!(reader.next_frame(), Ok(Some((_, frame))) if frame.first_event_id > expected_id)
}

/// The event count of the torn block at `offset`, if its header is whole and valid.
fn torn_block_count(path: &Path, offset: u64) -> Option<u32> {
    let file = File::open(path).ok()?;
    let mut b = [0u8; FRAME_EVENTS];
    let n = read_up_to(&file, &mut b, offset).ok()?;
    frame_header_len(&b[..n]).ok()?;
    Some(read_u32(&b, FRAME_COUNT))
}

/// Creates a segment file holding only its header, durably (file and directory) if `durable`.
///
/// # Errors
/// I/O errors.
pub fn create_segment(
    fs: &dyn FileSystem,
    dir: &Path,
    path: &Path,
    first_id: EventId,
    prev_hash: &ChainHash,
    durable: bool,
) -> Result<Arc<dyn crate::fs::WritableFile>> {
    let header = SegmentHeader {
        first_event_id: first_id,
        prev_hash: *prev_hash,
    };
    let f = fs.open_writable(path, true)?;
    let written = f.write_all_at(&header.encode(), 0).and_then(|()| {
        if durable {
            f.sync_data()?;
            fs.sync_dir(dir)?;
        }
        Ok(())
    });
    if let Err(e) = written {
        // Leave no half-made segment behind; if this fails too, open rewrites the header.
        let _ = fs.remove_file(path);
        return Err(e.into());
    }
    Ok(f)
}
