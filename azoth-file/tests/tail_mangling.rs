//! A damaged tail of the active segment (a torn write) is cut off at open, and only it: every
//! earlier block survives, appends continue, and `verify()` passes. Hundreds of reopenings.

mod common;

use azoth_core::{AzothError, EventLog};
use azoth_file::{FileEventLog, FileLogOptions, RecoveryMode};
use common::*;

/// A log of events 1..50 and then one last block holding 50..53; returns the segment's bytes
/// and where the last block starts.
fn build(dir: &std::path::Path) -> (std::path::PathBuf, Vec<u8>, usize) {
    let log = open_small(dir, 1 << 20);
    fill(&log, 1, 50, 3);
    drop(log);
    let seg = segments(dir).pop().unwrap();
    let before = std::fs::metadata(&seg).unwrap().len() as usize;
    let log = open_small(dir, 1 << 20);
    fill(&log, 50, 53, 3);
    drop(log);
    (seg.clone(), std::fs::read(&seg).unwrap(), before)
}

fn reopen_and_check(dir: &std::path::Path, expect_end: u64) {
    let log = open_small(dir, 1 << 20);
    assert_holds(&log, 1, expect_end);
    assert!(log.verify().unwrap().is_ok());
}

#[test]
fn truncation_at_every_offset_of_the_last_block() {
    let dir = tempfile::tempdir().unwrap();
    let (seg, pristine, last) = build(dir.path());
    for cut in last..pristine.len() {
        std::fs::write(&seg, &pristine[..cut]).unwrap();
        reopen_and_check(dir.path(), 50);
        // The tail is gone from disk, so the next append lands on a clean end.
        assert_eq!(std::fs::metadata(&seg).unwrap().len() as usize, last);
    }
    // After the last repair, appends continue the chain.
    let log = open_small(dir.path(), 1 << 20);
    fill(&log, 50, 60, 4);
    drop(log);
    reopen_and_check(dir.path(), 60);
}

#[test]
fn garbled_bytes_in_the_last_block() {
    let dir = tempfile::tempdir().unwrap();
    let (seg, pristine, last) = build(dir.path());
    for at in last..pristine.len() {
        let mut b = pristine.clone();
        b[at] = b[at].wrapping_add(0x5A);
        std::fs::write(&seg, &b).unwrap();
        reopen_and_check(dir.path(), 50);
    }
}

#[test]
fn garbage_after_the_last_block() {
    let dir = tempfile::tempdir().unwrap();
    let (seg, pristine, _) = build(dir.path());
    for n in [1usize, 3, 23, 24, 25, 56, 100, 4097] {
        for fill_byte in [0u8, 0xFF, 0x37] {
            let mut b = pristine.clone();
            b.extend(std::iter::repeat_n(fill_byte, n));
            std::fs::write(&seg, &b).unwrap();
            reopen_and_check(dir.path(), 53);
            assert_eq!(
                std::fs::metadata(&seg).unwrap().len() as usize,
                pristine.len()
            );
        }
    }
}

#[test]
fn refuse_mode_and_read_only_leave_the_tail_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (seg, pristine, last) = build(dir.path());
    let torn = &pristine[..last + 30];
    std::fs::write(&seg, torn).unwrap();
    let err = FileLogOptions::default()
        .recovery_mode(RecoveryMode::Refuse)
        .open(dir.path())
        .unwrap_err();
    match err {
        AzothError::Corruption { location, .. } => {
            assert_eq!(location.file.as_deref(), Some(seg.as_path()));
            assert_eq!(location.offset, Some(last as u64));
            assert_eq!(location.event_id, Some(50));
        }
        other => panic!("expected corruption, got {other}"),
    }
    let ro = FileEventLog::open_read_only(dir.path()).unwrap();
    assert_holds(&ro, 1, 50);
    drop(ro);
    assert_eq!(std::fs::read(&seg).unwrap(), torn, "files untouched");
}

#[test]
fn a_torn_segment_creation_is_redone() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_small(dir.path(), 1 << 20);
    fill(&log, 1, 20, 4);
    log.rotate().unwrap();
    drop(log);
    let active = segments(dir.path()).pop().unwrap();
    for len in [0u64, 10, 63] {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&active)
            .unwrap();
        f.set_len(len).unwrap();
        drop(f);
        let log = open_small(dir.path(), 1 << 20);
        assert_holds(&log, 1, 20);
        assert!(log.verify().unwrap().is_ok());
    }
}

#[test]
fn read_only_open_of_a_segment_being_created() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_small(dir.path(), 1 << 20);
    fill(&log, 1, 20, 4);
    log.rotate().unwrap();
    drop(log);
    let active = segments(dir.path()).pop().unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&active)
        .unwrap();
    f.set_len(10).unwrap();
    drop(f);
    let ro = FileEventLog::open_read_only(dir.path()).unwrap();
    assert_holds(&ro, 1, 20);
    assert_eq!(
        std::fs::metadata(&active).unwrap().len(),
        10,
        "files untouched"
    );
}
