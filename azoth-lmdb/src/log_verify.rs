//! `verify()` of [`LmdbEventLog`](crate::LmdbEventLog): every event's CRC and every block's
//! chain hash, across segments and archives, reporting the first failure.

use std::ops::Bound;
use std::path::Path;

use azoth_core::{BlockHasher, ChainHash, EventId, Location, Result, VerifyProgress, VerifyReport};

use crate::env::StaticTxn;
use crate::log::{LogShared, failure};
use crate::log_archive::ArchiveCheck;
use crate::log_format::{BlockRecord, SegmentState, decode_event, id_key, key_id};

/// Checks the whole log as of one snapshot, calling `progress` after each segment. Bytes
/// count archive files and the event records of segments held in LMDB; the total is the
/// same sum, taken from the snapshot before checking starts.
pub(crate) fn verify(
    shared: &LogShared,
    archive_dir: &Path,
    progress: &mut dyn FnMut(VerifyProgress),
) -> Result<VerifyReport> {
    let txn = shared.env.snapshot()?;
    let (segments, gaps) = {
        let _gate = shared.env.gate();
        let mut out = Vec::new();
        for item in shared.segments.iter(&txn).map_err(|e| shared.env.err(e))? {
            let (k, v) = item.map_err(|e| shared.env.err(e))?;
            out.push(shared.decode_segment(k, v));
        }
        (out, shared.gaps(&txn)?)
    };
    let mut report = VerifyReport::default();
    let data_file = shared.env.data_file();
    let mut expected: Option<(EventId, ChainHash)> = None;
    let mut p = VerifyProgress {
        segments_total: segments.len() as u64,
        ..VerifyProgress::default()
    };
    let mut sizes = Vec::with_capacity(segments.len());
    for (i, segment) in segments.iter().enumerate() {
        let size = match segment {
            Ok((first, rec)) if rec.state == SegmentState::Archived => {
                crate::log_archive::archive_size(archive_dir, *first).unwrap_or(0)
            }
            Ok((first, _)) => {
                let end = segments
                    .get(i + 1)
                    .and_then(|s| s.as_ref().ok())
                    .map(|(next, _)| *next);
                crate::log::event_bytes(shared, &txn, *first, end)?
            }
            Err(_) => 0,
        };
        sizes.push(size);
    }
    p.bytes_total = sizes.iter().sum();
    for (segment, size) in segments.into_iter().zip(sizes) {
        let (first, rec) = match segment {
            Ok(s) => s,
            Err(e) => {
                report.first_failure = Some(failure(Location::file(&data_file), e.to_string()));
                return Ok(report);
            }
        };
        // Past a hole `delete_range` made, the chain restarts from the next segment's `prev`,
        // as it does from the oldest segment.
        if expected.is_some_and(|(next, _)| {
            next < first && azoth_core::deleted_ranges::ranges_cover(&gaps, next, first)
        }) {
            expected = None;
        }
        if let Some((next, hash)) = expected {
            if first != next {
                report.first_failure = Some(failure(
                    Location::file(&data_file).at_event(next),
                    format!(
                        "segment starting at {next} is missing (next segment starts at {first})"
                    ),
                ));
                return Ok(report);
            }
            if rec.prev != hash {
                report.first_failure = Some(failure(
                    Location::file(&data_file).at_event(first),
                    "chain link between segments broken",
                ));
                return Ok(report);
            }
        }
        let outcome = match rec.state {
            SegmentState::Archived => match crate::log_archive::verify_archived(
                shared,
                archive_dir,
                first,
                rec.last,
                &rec.prev,
                &mut report,
            )? {
                ArchiveCheck::Verified(next, hash) => Some(Some((next, hash))),
                ArchiveCheck::Failed => Some(None),
                // Retention freed the segment after the snapshot was taken: nothing of it is
                // left to check, and the chain restarts at the next segment, as after a hole.
                ArchiveCheck::Deleted => None,
            },
            _ => Some(verify_segment(shared, &txn, first, rec.prev, &mut report)?),
        };
        p.segments_done += 1;
        p.bytes_done += size;
        progress(p);
        let Some(outcome) = outcome else {
            expected = None;
            continue;
        };
        report.segments_verified += 1;
        match outcome {
            Some(end) => expected = Some(end),
            None => return Ok(report),
        }
        if rec.state != SegmentState::Active
            && expected.is_some_and(|(next, _)| next != rec.last + 1)
        {
            report.first_failure = Some(failure(
                Location::file(&data_file).at_event(first),
                format!(
                    "segment should end at {} but its blocks end elsewhere",
                    rec.last
                ),
            ));
            return Ok(report);
        }
    }
    Ok(report)
}

/// Checks the blocks of the segment starting at `first`; returns the id after its last block
/// and the chain hash there, or `None` after recording a failure.
fn verify_segment(
    shared: &LogShared,
    txn: &StaticTxn,
    first: EventId,
    prev: ChainHash,
    report: &mut VerifyReport,
) -> Result<Option<(EventId, ChainHash)>> {
    let data_file = shared.env.data_file();
    let env = &shared.env;
    let (mut next, mut hash) = (first, prev);
    // The segment's blocks run from `first` to the next segment's first id.
    let limit = {
        let _gate = env.gate();
        shared
            .segments
            .get_greater_than(txn, &id_key(first))
            .map_err(|e| env.err(e))?
            .and_then(|(k, _)| key_id(k))
    };
    loop {
        let _gate = env.gate();
        let lo = id_key(next);
        let hi = limit.map(id_key);
        let bounds = (
            Bound::Included(&lo[..]),
            hi.as_ref()
                .map_or(Bound::Unbounded, |h| Bound::Excluded(&h[..])),
        );
        let mut blocks = shared.blocks.range(txn, &bounds).map_err(|e| env.err(e))?;
        let Some(item) = blocks.next() else {
            return Ok(Some((next, hash)));
        };
        let (k, v) = item.map_err(|e| env.err(e))?;
        let position = report.blocks_verified;
        let at = |id| Location::file(&data_file).at_event(id);
        let (Some(block_first), Some(block)) = (key_id(k), BlockRecord::decode(v)) else {
            report.first_failure = Some(failure(
                at(next),
                format!("block {position}: malformed block record"),
            ));
            return Ok(None);
        };
        if block_first != next {
            report.first_failure = Some(failure(
                at(next),
                format!("block {position}: expected a block at {next}, found one at {block_first}"),
            ));
            return Ok(None);
        }
        let Some(end) = block_first.checked_add(u64::from(block.count)) else {
            report.first_failure = Some(failure(
                at(block_first),
                format!("block {position}: event ids overflow"),
            ));
            return Ok(None);
        };
        let mut hasher = BlockHasher::new(&hash, block_first, block.count);
        let (elo, ehi) = (id_key(block_first), id_key(end));
        let ebounds = (Bound::Included(&elo[..]), Bound::Excluded(&ehi[..]));
        let mut id = block_first;
        for item in shared.events.range(txn, &ebounds).map_err(|e| env.err(e))? {
            let (k, v) = item.map_err(|e| env.err(e))?;
            if key_id(k) != Some(id) {
                break;
            }
            let Some(event) = decode_event(v) else {
                report.first_failure = Some(failure(
                    at(id),
                    format!("block {position}: event {id} checksum mismatch"),
                ));
                return Ok(None);
            };
            hasher.event(event);
            id += 1;
        }
        if id != end {
            report.first_failure = Some(failure(
                at(id),
                format!("block {position}: event {id} missing"),
            ));
            return Ok(None);
        }
        if hasher.finish() != block.hash {
            report.first_failure = Some(failure(
                at(block_first),
                format!("block {position}: chain hash mismatch"),
            ));
            return Ok(None);
        }
        report.blocks_verified += 1;
        report.events_verified += u64::from(block.count);
        next = end;
        hash = block.hash;
    }
}
