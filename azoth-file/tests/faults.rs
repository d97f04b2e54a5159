//! Fault injection through the file-system layer: a failed append acknowledges nothing and
//! leaves the log consistent; after ENOSPC clears appends work; a failed fsync poisons.

mod common;

use std::sync::Arc;

use azoth_core::{AzothError, EventLog, SyncMode};
use azoth_file::FileLogOptions;
use azoth_file::fs::FaultyFs;
use common::*;

fn open_faulty(dir: &std::path::Path, fs: &FaultyFs) -> azoth_file::FileEventLog {
    FileLogOptions::default()
        .sync_mode(SyncMode::Always)
        .segment_size(4096)
        .file_system(Arc::new(fs.clone()))
        .open(dir)
        .unwrap()
}

#[test]
fn failed_and_short_writes_acknowledge_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    let log = open_faulty(dir.path(), &fs);
    fill(&log, 1, 100, 3);
    for short in [0usize, 1, 10, 30, 200] {
        fs.set(|p| {
            p.fail_write_after = Some(0);
            p.short_write_bytes = short;
        });
        let next = log.next_event_id().unwrap();
        let events: Vec<Vec<u8>> = (next..next + 3).map(event).collect();
        assert!(matches!(
            log.append_batch_with_ids(next, &events),
            Err(AzothError::Io(_))
        ));
        assert_eq!(log.next_event_id().unwrap(), next);
        assert_eq!(log.get(next).unwrap(), None);
        // The same id goes through once the fault is gone.
        log.append_batch_with_ids(next, &events).unwrap();
    }
    let end = log.next_event_id().unwrap();
    assert_holds(&log, 1, end);
    assert!(log.verify().unwrap().is_ok());
    drop(log);
    let log = open_faulty(dir.path(), &fs);
    assert_holds(&log, 1, end);
    assert!(log.verify().unwrap().is_ok());
}

#[test]
fn appends_resume_after_no_space_clears() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    let log = open_faulty(dir.path(), &fs);
    fill(&log, 1, 50, 5);
    fs.set(|p| {
        p.no_space = true;
        p.short_write_bytes = 17;
    });
    for _ in 0..5 {
        match log.append_with_id(50, &event(50)) {
            Err(AzothError::Io(e)) => assert_eq!(e.raw_os_error(), Some(libc::ENOSPC)),
            other => panic!("expected ENOSPC, got {other:?}"),
        }
    }
    // Rotation needs a write too; it fails the same way and changes nothing.
    assert!(log.rotate().is_err());
    fs.set(|p| p.no_space = false);
    fill(&log, 50, 400, 5);
    assert_holds(&log, 1, 400);
    assert!(log.verify().unwrap().is_ok());
    drop(log);
    let log = open_faulty(dir.path(), &fs);
    assert_holds(&log, 1, 400);
}

#[test]
fn a_failed_sync_poisons_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    let log = open_faulty(dir.path(), &fs);
    fill(&log, 1, 20, 4);
    fs.set(|p| p.fail_sync_after = Some(0));
    assert!(log.append_with_id(20, &event(20)).is_err());
    // Not acknowledged, so not visible.
    assert_eq!(log.next_event_id().unwrap(), 20);
    assert!(matches!(
        log.append_with_id(20, &event(20)),
        Err(AzothError::Poisoned { .. })
    ));
    assert!(matches!(log.sync(), Err(AzothError::Poisoned { .. })));
    assert!(matches!(log.rotate(), Err(AzothError::Poisoned { .. })));
    // Reads still work.
    assert_eq!(log.get(19).unwrap(), Some(event(19)));
    drop(log);
    // Reopening recovers from what is on disk: the acknowledged events at least, and the
    // failed block only whole (its sync failed, so it may or may not be there).
    let log = open_faulty(dir.path(), &fs);
    let next = log.next_event_id().unwrap();
    assert!(next == 20 || next == 21, "next id {next}");
    assert_holds(&log, 1, next);
    log.append_with_id(next, &event(next)).unwrap();
    assert!(log.verify().unwrap().is_ok());
}

#[test]
fn a_failed_rotation_keeps_appending_to_the_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    let log = open_faulty(dir.path(), &fs);
    // Fail the first write after the next append: the index write of the automatic rotation.
    let big = vec![7u8; 5000];
    fs.set(|p| p.fail_write_after = Some(1));
    log.append_with_id(1, &big).unwrap();
    assert_eq!(
        segments(dir.path()).len(),
        1,
        "rotation failed, nothing sealed"
    );
    // The next append rotates successfully.
    log.append_with_id(2, &big).unwrap();
    assert_eq!(segments(dir.path()).len(), 2);
    assert!(log.verify().unwrap().is_ok());
    drop(log);
    let log = open_faulty(dir.path(), &fs);
    assert_eq!(log.next_event_id().unwrap(), 3);
    assert_eq!(log.get(1).unwrap(), Some(big));
}

#[test]
fn a_failed_background_sync_poisons_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    let log = FileLogOptions::default()
        .sync_mode(SyncMode::IntervalMs(1))
        .file_system(Arc::new(fs.clone()))
        .open(dir.path())
        .unwrap();
    fill(&log, 1, 10, 3);
    fs.set(|p| p.fail_sync_after = Some(0));
    // The sync thread fails within a few milliseconds; wait for it without a deadline.
    let mut id = 10;
    loop {
        match log.append_with_id(id, &event(id)) {
            Ok(()) => id += 1,
            Err(AzothError::Poisoned { .. }) => break,
            Err(e) => panic!("unexpected {e}"),
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(log.get(1).unwrap(), Some(event(1)));
}

/// Writing the zeros ahead (`SyncMode::Always`) fails part way (no space after a short
/// write): the append fails, and the zeros that did reach the file are still cut off when
/// the segment is sealed, so a sealed segment ends with its last block. Its index is only an
/// accelerator: without it, open scans the segment and finds it whole.
#[test]
fn zeros_ahead_that_failed_part_way_are_cut_at_seal() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    let open = |fs: &FaultyFs| {
        FileLogOptions::default()
            .sync_mode(SyncMode::Always)
            .segment_size(1 << 20)
            .preallocate(64 * 1024)
            .file_system(Arc::new(fs.clone()))
            .open(dir.path())
            .unwrap()
    };
    let log = open(&fs);
    // A block over 64 KiB grows the file without zeros ahead: the file ends with it.
    let big: Vec<Vec<u8>> = (1..=100).map(|_| vec![7u8; 1000]).collect();
    log.append_batch_with_ids(1, &big).unwrap();
    fs.set(|p| {
        p.no_space = true;
        p.short_write_bytes = 100;
    });
    assert!(log.append_with_id(101, b"small").is_err());
    fs.set(|p| p.no_space = false);
    let sealed = log.rotate().unwrap();
    let bytes = std::fs::read(&sealed).unwrap();
    assert_eq!(
        bytes.len() as u64,
        log.units()[0].bytes,
        "the sealed segment ends with its last block"
    );
    log.append_with_id(101, b"small").unwrap();
    drop(log);

    std::fs::remove_file(sealed.with_extension("idx")).unwrap();
    let log = open(&fs);
    assert_eq!(log.newest_event_id().unwrap(), 101);
    assert_eq!(log.get(100).unwrap(), Some(vec![7u8; 1000]));
    assert_eq!(log.get(101).unwrap(), Some(b"small".to_vec()));
    assert!(log.verify().unwrap().is_ok());
}
