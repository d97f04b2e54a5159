//! Archival of sealed segments of [`LmdbEventLog`](crate::LmdbEventLog) to the portable
//! archive format of `azoth-core`, and reading them back.
//!
//! `archive(up_to)` writes each sealed segment ending at or before `up_to`, block by block as
//! the log stored it, to `<archive dir>/<first id, 20 digits>.azarc` (written under a
//! temporary name, synced, renamed, directory synced), and only then, in one LMDB
//! transaction, deletes the segment's events and blocks and marks its record archived. A
//! crash in between leaves the segment in LMDB (and perhaps a stray archive that the next
//! `archive` overwrites). Readers that began before the commit keep reading LMDB from their
//! snapshot; later ones read the archive.

use std::collections::HashMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use azoth_core::archive::{ARCHIVE_EXTENSION, ArchiveReader, ArchiveWriter};
use azoth_core::{AzothError, ChainHash, EventId, Location, Result, VerifyReport};
use parking_lot::Mutex;

use crate::error::TxnError;
use crate::log::{LogShared, failure};
use crate::log_format::{BlockRecord, SegmentRecord, SegmentState, decode_event, id_key, key_id};

/// Archived events of one segment, in id order.
pub(crate) type ArchivedEvents = Box<dyn Iterator<Item = Result<(EventId, Vec<u8>)>> + Send>;

/// Open archive readers by the first id of their segment.
#[derive(Default)]
pub(crate) struct ArchiveCache {
    readers: Mutex<HashMap<EventId, Arc<ArchiveReader>>>,
}

impl ArchiveCache {
    /// The reader of the archive of the segment starting at `first`.
    pub(crate) fn reader(&self, dir: &Path, first: EventId) -> Result<Arc<ArchiveReader>> {
        if let Some(reader) = self.readers.lock().get(&first) {
            return Ok(Arc::clone(reader));
        }
        let reader = Arc::new(ArchiveReader::open(&archive_path(dir, first))?);
        self.readers.lock().insert(first, Arc::clone(&reader));
        Ok(reader)
    }

    /// Forgets the reader of a deleted archive.
    pub(crate) fn forget(&self, first: EventId) {
        self.readers.lock().remove(&first);
    }
}

/// The archive file of the segment starting at `first`.
pub(crate) fn archive_path(dir: &Path, first: EventId) -> PathBuf {
    dir.join(format!("{first:020}.{ARCHIVE_EXTENSION}"))
}

/// The events `[from, to)` of the archived segment starting at `first`.
pub(crate) fn read_archived(
    shared: &LogShared,
    dir: &Path,
    first: EventId,
    from: EventId,
    to: EventId,
) -> Result<ArchivedEvents> {
    let reader = shared.archives.reader(dir, first)?;
    Ok(Box::new(reader.iter_from(from).take_while(move |item| {
        item.as_ref().map_or(true, |(id, _)| *id < to)
    })))
}

/// The event `id` if it lies in an archived segment.
pub(crate) fn get_archived(shared: &LogShared, dir: &Path, id: EventId) -> Result<Option<Vec<u8>>> {
    let segment = shared.env.read(|txn| Ok(shared.segment_of(txn, id)))??;
    match segment {
        Some((first, rec)) if rec.state == SegmentState::Archived && rec.last >= id => {
            match shared.archives.reader(dir, first) {
                Ok(reader) => reader.get(id),
                // Deleted by retention since the lookup: the event is gone, not damaged.
                Err(AzothError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                    let key = id_key(first);
                    let listed = shared
                        .env
                        .read(|txn| Ok(shared.segments.get(txn, &key)?.is_some()))?;
                    if listed {
                        Err(AzothError::Io(e))
                    } else {
                        Ok(None)
                    }
                }
                Err(e) => Err(e),
            }
        }
        _ => Ok(None),
    }
}

/// Removes the archive of the segment starting at `first` (after `delete_range`).
pub(crate) fn remove_archive(shared: &LogShared, dir: &Path, first: EventId) {
    shared.archives.forget(first);
    let path = archive_path(dir, first);
    if let Err(e) = std::fs::remove_file(&path) {
        tracing::warn!(path = %path.display(), error = %e, "removing an archive failed");
    }
}

/// Removes what a crash in the middle of an archival or a deletion left in the archive
/// directory: temporary files of interrupted archives (`*.azarc.tmp`; the segment they copy
/// is still in LMDB, and the next `archive` writes it afresh), and archives of segments
/// older than `oldest_segment`, whose records `delete_range` had already removed when the
/// crash came before their files went.
pub(crate) fn remove_leftovers(dir: &Path, oldest_segment: Option<EventId>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let tmp_suffix = format!(".{ARCHIVE_EXTENSION}.tmp");
    let suffix = format!(".{ARCHIVE_EXTENSION}");
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let leftover = name.ends_with(&tmp_suffix)
            || name
                .strip_suffix(&suffix)
                .and_then(|id| id.parse::<EventId>().ok())
                .is_some_and(|first| oldest_segment.is_some_and(|oldest| first < oldest));
        if leftover {
            let path = entry.path();
            tracing::info!(path = %path.display(), "removing an archive left by an interrupted job");
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "removing a leftover archive failed");
            }
        }
    }
}

/// The size of the archive of the segment starting at `first`.
pub(crate) fn archive_size(dir: &Path, first: EventId) -> Result<u64> {
    Ok(std::fs::metadata(archive_path(dir, first))?.len())
}

/// Writes the sealed segment `[first, rec.last]` to its archive and then moves it out of
/// LMDB. The caller holds the log's job lock, so no other archival or deletion changes the
/// segment meanwhile (appends never touch a sealed segment).
pub(crate) fn archive_segment(
    shared: &LogShared,
    dir: &Path,
    level: i32,
    first: EventId,
    rec: SegmentRecord,
) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = archive_path(dir, first);
    let tmp = path.with_extension(format!("{ARCHIVE_EXTENSION}.tmp"));
    let mut writer = ArchiveWriter::create(&tmp, rec.prev, level)?;
    let mut next = first;
    let mut last_hash = rec.prev;
    while next <= rec.last {
        let (block, events) = shared.env.read(|txn| {
            let block = shared
                .blocks
                .get(txn, &id_key(next))?
                .map(BlockRecord::decode);
            let Some(Some(block)) = block else {
                return Ok(Err(
                    shared.corruption(next, "block record missing or malformed")
                ));
            };
            let Some(end) = next
                .checked_add(u64::from(block.count))
                .filter(|end| *end <= rec.last + 1)
            else {
                return Ok(Err(
                    shared.corruption(next, "block record runs past its segment")
                ));
            };
            let (lo, hi) = (id_key(next), id_key(end));
            let bounds = (Bound::Included(&lo[..]), Bound::Excluded(&hi[..]));
            // The count is read from disk: the events found, not the count, size the vector.
            let mut events = Vec::new();
            for item in shared.events.range(txn, &bounds)? {
                let (k, v) = item?;
                let id = next + events.len() as u64;
                if key_id(k) != Some(id) {
                    return Ok(Err(shared.corruption(id, "event missing from its block")));
                }
                match decode_event(v) {
                    Some(event) => events.push(event.to_vec()),
                    None => return Ok(Err(shared.corruption(id, "event checksum mismatch"))),
                }
            }
            if events.len() as u64 != u64::from(block.count) {
                return Ok(Err(
                    shared.corruption(end - 1, "event missing from its block")
                ));
            }
            Ok(Ok((block, events)))
        })??;
        writer.append_block(next, &events)?;
        next += u64::from(block.count);
        last_hash = block.hash;
    }
    let summary = writer.finish()?;
    if summary.last_hash != last_hash || summary.last_event_id != rec.last {
        let _ = std::fs::remove_file(&tmp);
        return Err(AzothError::corruption(
            Location::file(&path).at_event(first),
            "the archive written does not reproduce the segment's chain",
        ));
    }
    std::fs::rename(&tmp, &path)?;
    crate::fsutil::sync_dir(dir)?;

    let archived = SegmentRecord {
        state: SegmentState::Archived,
        ..rec
    };
    let (events_db, blocks_db, segments_db) = (shared.events, shared.blocks, shared.segments);
    let (lo, hi) = (id_key(first), id_key(rec.last));
    shared.env.write(|txn| {
        let range = (Bound::Included(&lo[..]), Bound::Included(&hi[..]));
        events_db.delete_range(txn, &range)?;
        blocks_db.delete_range(txn, &range)?;
        segments_db.put(txn, &lo, &archived.encode())?;
        Ok::<_, TxnError>(())
    })?;
    tracing::info!(path = %path.display(), first, last = rec.last, "segment archived");
    Ok(path)
}

/// What [`verify_archived`] found.
pub(crate) enum ArchiveCheck {
    /// The archive checked out: the id after it and its last chain hash.
    Verified(EventId, ChainHash),
    /// A failure was recorded in the report.
    Failed,
    /// The archive is gone and the log no longer lists its segment: retention deleted it
    /// after the caller's snapshot was taken.
    Deleted,
}

/// Verifies the archive of the segment `[first, last]` continuing from `prev`.
pub(crate) fn verify_archived(
    shared: &LogShared,
    dir: &Path,
    first: EventId,
    last: EventId,
    prev: &ChainHash,
    report: &mut VerifyReport,
) -> Result<ArchiveCheck> {
    let path = archive_path(dir, first);
    let reader = match shared.archives.reader(dir, first) {
        Ok(reader) => reader,
        Err(AzothError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = id_key(first);
            let listed = shared
                .env
                .read(|txn| Ok(shared.segments.get(txn, &key)?.is_some()))?;
            if !listed {
                return Ok(ArchiveCheck::Deleted);
            }
            report.first_failure = Some(failure(
                Location::file(&path).at_event(first),
                format!("archive unreadable: {e}"),
            ));
            return Ok(ArchiveCheck::Failed);
        }
        Err(e) => {
            report.first_failure = Some(failure(
                Location::file(&path).at_event(first),
                format!("archive unreadable: {e}"),
            ));
            return Ok(ArchiveCheck::Failed);
        }
    };
    let checked = reader.verify(Some(*prev))?;
    report.blocks_verified += checked.blocks_verified;
    report.events_verified += checked.events_verified;
    if let Some(f) = checked.first_failure {
        report.first_failure = Some(f);
        return Ok(ArchiveCheck::Failed);
    }
    let summary = reader.summary();
    if summary.first_event_id != first || summary.last_event_id != last {
        report.first_failure = Some(failure(
            Location::file(&path).at_event(first),
            format!(
                "archive holds {}..={}, its segment {first}..={last}",
                summary.first_event_id, summary.last_event_id
            ),
        ));
        return Ok(ArchiveCheck::Failed);
    }
    Ok(ArchiveCheck::Verified(last + 1, checked.last_hash))
}
