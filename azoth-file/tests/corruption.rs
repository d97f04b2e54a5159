//! Damage inside sealed segments is never truncated: open succeeds, and `verify()` and reads
//! of the damaged range report `Corruption` naming segment, offset and event id.

mod common;

use std::path::{Path, PathBuf};

use azoth_core::{AzothError, EventLog};
use azoth_file::format::{SEGMENT_HEADER_LEN, decode_frame};
use common::*;

/// Block starts `(offset, first id, length)` of a segment's bytes.
fn blocks(bytes: &[u8]) -> Vec<(usize, u64, usize)> {
    let mut out = Vec::new();
    let mut at = SEGMENT_HEADER_LEN;
    while at < bytes.len() {
        let f = decode_frame(&bytes[at..]).unwrap();
        out.push((at, f.first_event_id, f.byte_len()));
        at += f.byte_len();
    }
    out
}

/// Four sealed segments and an active one, events 1..400 in blocks of 5, all made durable
/// (damage in segments sealed since the last sync is taken for a power loss's and cut off at
/// open under `SyncMode::Never`: see `power_loss.rs`).
fn build(dir: &Path) -> Vec<PathBuf> {
    let log = open_small(dir, 2048);
    fill(&log, 1, 400, 5);
    log.sync().unwrap();
    let segs = segments(dir);
    assert!(segs.len() >= 5, "{} segments", segs.len());
    segs
}

fn failure_of(dir: &Path) -> azoth_core::VerifyFailure {
    let log = open_small(dir, 2048);
    let report = log.verify().unwrap();
    report.first_failure.expect("verify must find the damage")
}

#[test]
fn every_flipped_bit_in_a_sealed_segment_is_found_and_located() {
    let dir = tempfile::tempdir().unwrap();
    let segs = build(dir.path());
    let target = &segs[1];
    let pristine = std::fs::read(target).unwrap();
    let layout = blocks(&pristine);
    // Every byte of the header and of the first two and the last block (every field of a
    // frame), then every third byte elsewhere; one bit each, rotating which bit. The frame
    // codec's unit tests flip every bit of a frame.
    let dense_end = layout[2].0;
    let last_start = layout.last().unwrap().0;
    for at in (0..pristine.len()).filter(|&at| at < dense_end || at >= last_start || at % 3 == 0) {
        let mut b = pristine.clone();
        b[at] ^= 1 << (at % 8);
        std::fs::write(target, &b).unwrap();
        let log = open_small(dir.path(), 2048);
        let f = log.verify().unwrap().first_failure.expect("damage found");
        assert_eq!(
            f.location.file.as_deref(),
            Some(target.as_path()),
            "byte {at}"
        );
        if at < SEGMENT_HEADER_LEN {
            assert_eq!(f.location.offset, Some(0), "byte {at}: {f}");
        } else {
            let &(off, id, _) = layout.iter().rev().find(|(off, _, _)| *off <= at).unwrap();
            assert_eq!(f.location.offset, Some(off as u64), "byte {at}: {f}");
            assert_eq!(f.location.event_id, Some(id), "byte {at}: {f}");
            // Reads of the damaged block say the same.
            match log.get(id) {
                Err(AzothError::Corruption { location, .. }) => {
                    assert_eq!(location.file.as_deref(), Some(target.as_path()));
                    assert_eq!(location.offset, Some(off as u64));
                }
                other => panic!("byte {at}: get({id}) gave {other:?}"),
            }
        }
    }
    std::fs::write(target, &pristine).unwrap();
    let log = open_small(dir.path(), 2048);
    assert!(log.verify().unwrap().is_ok());
    assert_holds(&log, 1, 400);
}

#[test]
fn swapped_blocks_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let segs = build(dir.path());
    let target = &segs[2];
    let pristine = std::fs::read(target).unwrap();
    let layout = blocks(&pristine);
    // Two neighbouring blocks written in the other order: every crc still holds.
    let (oa, ia, la) = layout[2];
    let (ob, _, lb) = layout[3];
    let mut bytes = pristine.clone();
    bytes[oa..oa + lb].copy_from_slice(&pristine[ob..ob + lb]);
    bytes[oa + lb..oa + lb + la].copy_from_slice(&pristine[oa..oa + la]);
    std::fs::write(target, &bytes).unwrap();
    let f = failure_of(dir.path());
    assert_eq!(f.location.file.as_deref(), Some(target.as_path()));
    assert_eq!(f.location.offset, Some(oa as u64));
    assert_eq!(f.location.event_id, Some(ia));
}

#[test]
fn a_truncated_sealed_segment_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let segs = build(dir.path());
    let target = &segs[1];
    let pristine = std::fs::read(target).unwrap();
    let layout = blocks(&pristine);
    let (last_off, last_id, _) = *layout.last().unwrap();
    // At a block boundary (no torn block left) and in the middle of a block.
    for cut in [last_off, last_off + 7] {
        std::fs::write(target, &pristine[..cut]).unwrap();
        let f = failure_of(dir.path());
        assert_eq!(f.location.file.as_deref(), Some(target.as_path()));
        assert_eq!(f.location.offset, Some(last_off as u64), "{f}");
        assert_eq!(f.location.event_id, Some(last_id));
        // Sealed data is never truncated by open.
        assert_eq!(std::fs::metadata(target).unwrap().len() as usize, cut);
        let log = open_small(dir.path(), 2048);
        assert!(log.get(last_id).unwrap_err().is_corruption());
        assert!(
            log.iter_range(1, None)
                .unwrap()
                .any(|r| r.is_err_and(|e| e.is_corruption()))
        );
    }
}

#[test]
fn a_missing_middle_segment_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let segs = build(dir.path());
    std::fs::remove_file(&segs[2]).unwrap();
    let _ = std::fs::remove_file(segs[2].with_extension("idx"));
    let f = failure_of(dir.path());
    assert_eq!(f.location.file.as_deref(), Some(segs[3].as_path()));
    assert!(f.detail.contains("missing"), "{f}");
}

#[test]
fn a_replaced_segment_breaks_the_chain() {
    // A segment rewritten with other content but valid crcs: only the chain tells.
    let dir = tempfile::tempdir().unwrap();
    let segs = build(dir.path());
    let other = tempfile::tempdir().unwrap();
    let log = open_small(other.path(), 2048);
    let mut id = 1;
    while id < 400 {
        let events: Vec<Vec<u8>> = (id..id + 5)
            .map(|i| {
                let mut e = event(i);
                e[0] = b'E';
                e
            })
            .collect();
        log.append_batch_with_ids(id, &events).unwrap();
        id += 5;
    }
    drop(log);
    let name = segs[1].file_name().unwrap();
    let forged = other.path().join(name);
    if forged.exists() {
        std::fs::copy(&forged, &segs[1]).unwrap();
        let f = failure_of(dir.path());
        assert_eq!(f.location.file.as_deref(), Some(segs[1].as_path()));
        assert!(f.detail.contains("chain"), "{f}");
    }
}

#[test]
fn a_block_whose_ids_would_pass_the_largest_id_is_damage_not_a_panic() {
    use azoth_file::FileEventLog;
    use azoth_file::format::encode_frame;
    use std::os::unix::fs::FileExt;

    // A block that checks out (crcs recomputed) but claims ids from u64::MAX on.
    let forge = |path: &Path, at: u64| {
        let mut buf = Vec::new();
        encode_frame(&mut buf, &[0; 32], u64::MAX, &[event(1), event(2)]);
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .unwrap()
            .write_all_at(&buf, at)
            .unwrap();
    };
    let dir = tempfile::tempdir().unwrap();
    let log = open_small(dir.path(), 1 << 20);
    fill(&log, 1, 20, 2);
    log.rotate().unwrap();
    fill(&log, 20, 30, 2);
    let sealed = segments(dir.path())[0].clone();
    let bytes = std::fs::read(&sealed).unwrap();
    let (at, first, len) = blocks(&bytes)[3];
    assert_eq!(
        (first, len),
        (7, 24 + 32 + 8 + event(7).len() + event(8).len())
    );
    // Same length as the block it replaces, so the blocks after it stay where they were.
    forge(&sealed, at as u64);
    let failed = |log: &FileEventLog| {
        let items: Vec<_> = log.iter_range(1, None).unwrap().collect();
        assert!(
            items
                .last()
                .unwrap()
                .as_ref()
                .is_err_and(AzothError::is_corruption),
            "{:?}",
            items.last()
        );
        assert!(log.get(8).unwrap_err().is_corruption());
        assert!(!log.verify().unwrap().is_ok());
    };
    failed(&log);
    let ro = FileEventLog::open_read_only(dir.path()).unwrap();
    failed(&ro);

    // Appended to the active segment, where a read-only handle follows the writer.
    drop(log);
    let active = segments(dir.path()).pop().unwrap();
    let end = std::fs::metadata(&active).unwrap().len();
    forge(&active, end);
    assert_eq!(ro.newest_event_id().unwrap(), 29);
}
