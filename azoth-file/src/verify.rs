//! `verify()`: every block's checksums and the hash chain, across all units.
//!
//! The chain is checked from the oldest unit still stored: its header's hash is taken on
//! trust (older units may have been deleted), and from there on every block must link to the
//! one before it and every unit's header must continue from the previous unit's last block.
//! A flipped bit fails a crc or the chain; reordered or swapped blocks fail the ids or the
//! chain; a truncation or a missing middle segment shows up as ids that do not continue.

use std::fs::File;
use std::sync::Arc;

use azoth_core::{
    ArchiveReader, AzothError, ChainHash, EventId, Location, Result, VerifyFailure, VerifyProgress,
    VerifyReport,
};

use crate::format::{DecodeError, chain_hash};
use crate::log::{FileEventLog, Shared};
use crate::segment::{BlockReader, ScanError, Segment, read_header};
use crate::unit::{ArchiveUnit, Unit};

/// The outcome of checking one unit: `Err` ends verification with that failure.
type Check = std::result::Result<(), VerifyFailure>;

fn failure(location: Location, detail: impl Into<String>) -> VerifyFailure {
    VerifyFailure {
        location,
        detail: detail.into(),
    }
}

impl FileEventLog {
    /// Checks every block's checksums and the hash chain across all units.
    ///
    /// # Errors
    /// I/O errors reading the files. Damage is not an error: it is the report's
    /// `first_failure`.
    pub fn verify(&self) -> Result<VerifyReport> {
        self.verify_with_progress(|_| {})
    }

    /// [`verify`](Self::verify), calling `progress` after each unit.
    ///
    /// # Errors
    /// As [`verify`](Self::verify).
    pub fn verify_with_progress(
        &self,
        mut progress: impl FnMut(VerifyProgress),
    ) -> Result<VerifyReport> {
        self.follow()?;
        // The active segment's newest blocks may still be gathered in memory.
        self.shared.write_out_tail(None)?;
        let units: Vec<Unit> = self.shared.units.read().list.clone();
        let mut report = VerifyReport::default();
        let mut p = VerifyProgress {
            bytes_total: units.iter().map(Unit::bytes).sum(),
            segments_total: units.len() as u64,
            ..VerifyProgress::default()
        };
        // The chain position: the hash and id the next unit must continue from.
        let mut expected: Option<(ChainHash, EventId)> = None;
        let gaps = self.shared.gaps.lock().clone();
        for unit in &units {
            // Past a gap retention made, the chain restarts from the next unit's own header.
            if let Some((_, prev_end)) = expected {
                if prev_end < unit.first_id()
                    && azoth_core::deleted_ranges::ranges_cover(&gaps, prev_end, unit.first_id())
                {
                    expected = None;
                }
            }
            let outcome = match unit {
                Unit::Segment(seg) => {
                    match verify_segment(&self.shared, seg, &mut expected, &mut report) {
                        Err(AzothError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                            self.verify_moved(seg.first_id, false, e, &mut expected, &mut report)?
                        }
                        other => other?,
                    }
                }
                Unit::Archive(a) => match verify_archive(a, &mut expected, &mut report) {
                    Err(AzothError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                        self.verify_moved(a.first_id, true, e, &mut expected, &mut report)?
                    }
                    other => other?,
                },
            };
            report.segments_verified += 1;
            p.segments_done += 1;
            p.bytes_done += unit.bytes();
            progress(p);
            if let Err(f) = outcome {
                report.first_failure = Some(f);
                break;
            }
        }
        Ok(report)
    }

    /// A unit whose file was gone when verification reached it: archival or retention ran
    /// meanwhile (the file log allows both beside readers). If it was archived, its archive
    /// is checked instead; if retention deleted it, the chain restarts at the next unit, as
    /// it does from the oldest unit. A unit the log still lists is really missing: the error
    /// stands.
    fn verify_moved(
        &self,
        first_id: EventId,
        was_archive: bool,
        missing: std::io::Error,
        expected: &mut Option<(ChainHash, EventId)>,
        report: &mut VerifyReport,
    ) -> Result<Check> {
        // A read-only handle learns of the change only by looking at the directory again.
        self.follow()?;
        let now = self
            .shared
            .units
            .read()
            .list
            .iter()
            .find(|u| u.first_id() == first_id)
            .cloned();
        match now {
            Some(Unit::Archive(a)) if !was_archive => verify_archive(&a, expected, report),
            None => {
                *expected = None;
                Ok(Ok(()))
            }
            Some(_) => Err(missing.into()),
        }
    }
}

fn verify_archive(
    unit: &ArchiveUnit,
    expected: &mut Option<(ChainHash, EventId)>,
    report: &mut VerifyReport,
) -> Result<Check> {
    let at = Location::file(&unit.path).at_event(unit.first_id);
    if let Some((_, prev_end)) = *expected {
        if unit.first_id != prev_end {
            return Ok(Err(failure(
                at.at_offset(0),
                format!(
                    "events {prev_end}..{} are missing (a segment is gone)",
                    unit.first_id
                ),
            )));
        }
    }
    // Opened afresh, not the reader kept for reads: its header, index and trailer were
    // checked when it was opened, and a byte of them changed since must be found too.
    let reader = match ArchiveReader::open(&unit.path) {
        Ok(r) => r,
        Err(AzothError::Corruption { location, detail }) => {
            return Ok(Err(failure(location, detail)));
        }
        Err(e) => return Err(e),
    };
    let summary = reader.summary();
    if summary.first_event_id != unit.first_id {
        return Ok(Err(failure(
            at.at_offset(0),
            format!(
                "archive starts at event {}, its file name says {}",
                summary.first_event_id, unit.first_id
            ),
        )));
    }
    let av = reader.verify(expected.map(|(hash, _)| hash))?;
    report.blocks_verified += av.blocks_verified;
    report.events_verified += av.events_verified;
    if let Some(f) = av.first_failure {
        return Ok(Err(f));
    }
    // A damaged trailer may claim the largest id: reported below as not reaching the next unit.
    let next = summary.last_event_id.saturating_add(1);
    if next != unit.end_id {
        return Ok(Err(failure(
            at,
            format!(
                "archive ends at event {}, expected it to hold events up to {}",
                summary.last_event_id,
                unit.end_id - 1
            ),
        )));
    }
    *expected = Some((av.last_hash, next));
    Ok(Ok(()))
}

fn verify_segment(
    shared: &Shared,
    seg: &Arc<Segment>,
    expected: &mut Option<(ChainHash, EventId)>,
    report: &mut VerifyReport,
) -> Result<Check> {
    // The active segment grows while it is checked. Appends publish the offset before the id,
    // so the id read first is covered by the offset read after it; the blocks up to that
    // offset must reach at least that id. A sealed segment must end exactly where it says.
    let sealed = seg.is_sealed();
    let end_id_floor = seg.end_id();
    // Events gathered in the write buffer are published before they reach the file, and
    // they become a block that may end past the published offset: read to a block boundary.
    let end_offset = shared.read_limit(seg)?;
    let at = |offset: u64, id: EventId| Location::file(&seg.path).at_offset(offset).at_event(id);
    let file = File::open(&seg.path)?;
    let header = match read_header(&file, &seg.path) {
        Ok(h) => h,
        Err(AzothError::Corruption { location, detail }) => {
            return Ok(Err(failure(location.at_event(seg.first_id), detail)));
        }
        Err(e) => return Err(e),
    };
    if header.first_event_id != seg.first_id {
        return Ok(Err(failure(
            at(0, seg.first_id),
            format!(
                "segment header names event {}, its file name {}",
                header.first_event_id, seg.first_id
            ),
        )));
    }
    let mut hash = header.prev_hash;
    let mut next = seg.first_id;
    if let Some((prev_hash, prev_end)) = *expected {
        if seg.first_id != prev_end {
            return Ok(Err(failure(
                at(0, seg.first_id),
                format!(
                    "events {prev_end}..{} are missing (a segment is gone)",
                    seg.first_id
                ),
            )));
        }
        if header.prev_hash != prev_hash {
            return Ok(Err(failure(
                at(0, seg.first_id),
                "segment header does not continue the hash chain of the previous segment",
            )));
        }
    }
    let mut reader = BlockReader::new(file, crate::format::SEGMENT_HEADER_LEN as u64, end_offset);
    loop {
        match reader.next_frame() {
            Ok(None) => break,
            Ok(Some((offset, frame))) => {
                if frame.first_event_id != next {
                    return Ok(Err(failure(
                        at(offset, next),
                        format!(
                            "block starts at event {}, expected {next} (blocks reordered or missing)",
                            frame.first_event_id
                        ),
                    )));
                }
                if chain_hash(&hash, frame.hashed_bytes()) != frame.hash() {
                    return Ok(Err(failure(
                        at(offset, next),
                        "hash chain broken: the block does not follow the one before it",
                    )));
                }
                hash = frame.hash();
                next = frame.end_event_id();
                report.blocks_verified += 1;
                report.events_verified += u64::from(frame.count);
            }
            Err(ScanError::Io(e)) => return Err(e.into()),
            Err(ScanError::Decode { offset, error }) => {
                let detail = match error {
                    DecodeError::Incomplete => "block truncated".to_string(),
                    DecodeError::Corrupt(d) => d,
                };
                return Ok(Err(failure(at(offset, next), detail)));
            }
        }
    }
    let end_id = if sealed { seg.end_id() } else { end_id_floor };
    if next < end_id || (sealed && next != end_id) {
        return Ok(Err(failure(
            at(reader.offset(), next),
            format!(
                "segment ends at event {}, expected it to hold events up to {}",
                next.saturating_sub(1),
                end_id.saturating_sub(1)
            ),
        )));
    }
    *expected = Some((hash, next));
    Ok(Ok(()))
}
