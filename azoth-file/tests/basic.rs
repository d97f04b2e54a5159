//! Appends, reads across segments, rotation, reopen, read-only opens and limits.

mod common;

use azoth_core::{AzothError, EventLog};
use azoth_file::FileEventLog;
use common::*;

#[test]
fn empty_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileEventLog::open(dir.path()).unwrap();
    assert_eq!(log.next_event_id().unwrap(), 1);
    assert_eq!(log.oldest_event_id().unwrap(), 1);
    assert_eq!(log.newest_event_id().unwrap(), 0);
    assert_eq!(log.iter_range(0, None).unwrap().count(), 0);
    assert_eq!(log.get(1).unwrap(), None);
    assert!(log.verify().unwrap().is_ok());
}

#[test]
fn appends_read_back_across_segments_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open_small(dir.path(), 4096);
        fill(&log, 1, 2001, 7);
        assert!(segments(dir.path()).len() > 5);
        assert_holds(&log, 1, 2001);
        for id in [1, 2, 500, 1999, 2000] {
            assert_eq!(log.get(id).unwrap(), Some(event(id)));
        }
        assert_eq!(log.get(2001).unwrap(), None);
        assert_eq!(log.get(0).unwrap(), None);
        let part: Vec<u64> = log
            .iter_range(995, Some(1010))
            .unwrap()
            .map(|r| r.unwrap().0)
            .collect();
        assert_eq!(part, (995..1010).collect::<Vec<_>>());
        assert!(log.verify().unwrap().is_ok());
    }
    let log = open_small(dir.path(), 4096);
    assert_holds(&log, 1, 2001);
    fill(&log, 2001, 2100, 1);
    assert_holds(&log, 1, 2100);
    let report = log.verify().unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.events_verified, 2099);
    assert_eq!(report.segments_verified, segments(dir.path()).len() as u64);
}

#[test]
fn wrong_ids_are_refused_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_small(dir.path(), 1 << 20);
    assert!(matches!(
        log.append_with_id(2, b"x"),
        Err(AzothError::InvalidEventId {
            expected: 1,
            got: 2
        })
    ));
    log.append_with_id(1, b"x").unwrap();
    assert!(matches!(
        log.append_batch_with_ids(1, &[b"y".to_vec()]),
        Err(AzothError::InvalidEventId { .. })
    ));
    log.append_batch_with_ids(2, &[]).unwrap();
    assert_eq!(log.next_event_id().unwrap(), 2);
}

#[test]
fn rotate_returns_sealed_path_and_empty_rotate_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_small(dir.path(), 1 << 20);
    let p = log.rotate().unwrap();
    assert!(p.ends_with("00000000000000000001.seg"));
    fill(&log, 1, 11, 3);
    let p = log.rotate().unwrap();
    assert!(p.ends_with("00000000000000000001.seg"));
    let p2 = log.rotate().unwrap();
    assert!(p2.ends_with("00000000000000000011.seg"));
    assert_eq!(files_with_ext(dir.path(), "idx").len(), 1);
    assert_eq!(log.delete_range(1, 10).unwrap(), 10);
    assert_eq!(log.oldest_event_id().unwrap(), 11);
    assert_eq!(log.iter_range(1, None).unwrap().count(), 0);
    fill(&log, 11, 15, 1);
    assert!(log.verify().unwrap().is_ok());
    drop(log);
    let log = open_small(dir.path(), 1 << 20);
    assert_eq!(log.oldest_event_id().unwrap(), 11);
    assert_holds(&log, 11, 15);
}

#[test]
fn read_only_open_sees_data_and_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_small(dir.path(), 2048);
    fill(&log, 1, 301, 10);
    // While the writer holds the lock, a read-only open still works.
    let ro = FileEventLog::open_read_only(dir.path()).unwrap();
    assert_holds(&ro, 1, 301);
    assert!(matches!(
        ro.append_with_id(301, b"x"),
        Err(AzothError::ReadOnly)
    ));
    assert!(ro.verify().unwrap().is_ok());
}

#[test]
fn stats_count_events_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_small(dir.path(), 1 << 20);
    fill(&log, 1, 101, 10);
    log.rotate().unwrap();
    fill(&log, 101, 151, 10);
    let s = log.stats().unwrap();
    assert_eq!(s.event_count, 150);
    assert_eq!(s.oldest_event_id, 1);
    assert_eq!(s.newest_event_id, 150);
    assert_eq!(s.file_count, 2);
    let on_disk = || -> u64 {
        segments(dir.path())
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum()
    };
    // The active segment has space allocated ahead of its end while it is open.
    assert!(on_disk() >= s.total_bytes);
    drop(log);
    assert_eq!(s.total_bytes, on_disk());
}

#[test]
fn concurrent_readers_see_only_whole_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let log = std::sync::Arc::new(open_small(dir.path(), 64 * 1024));
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || fill(&log, 1, 20_001, 10))
    };
    let mut readers = Vec::new();
    for _ in 0..2 {
        let log = log.clone();
        readers.push(std::thread::spawn(move || {
            for _ in 0..50 {
                let mut expected = 1;
                for item in log.iter_range(1, None).unwrap() {
                    let (id, bytes) = item.unwrap();
                    assert_eq!(id, expected);
                    assert_eq!(bytes, event(id));
                    expected += 1;
                }
                // Blocks are 10 events: a reader sees whole blocks only.
                assert_eq!((expected - 1) % 10, 0);
            }
        }));
    }
    writer.join().unwrap();
    for r in readers {
        r.join().unwrap();
    }
    assert_holds(&log, 1, 20_001);
}

#[test]
fn deleting_a_middle_segment_is_not_reported_as_damage() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_small(dir.path(), 1 << 20);
    for first in [1u64, 11, 21] {
        fill(&log, first, first + 10, 3);
        log.rotate().unwrap();
    }
    fill(&log, 31, 35, 2);
    assert_eq!(log.delete_range(11, 20).unwrap(), 10);
    let ids: Vec<u64> = log
        .iter_range(0, None)
        .unwrap()
        .map(|r| r.unwrap().0)
        .collect();
    assert_eq!(ids, (1..11).chain(21..35).collect::<Vec<_>>());
    assert_eq!(log.get(15).unwrap(), None);
    assert!(log.verify().unwrap().is_ok());
    drop(log);
    let log = open_small(dir.path(), 1 << 20);
    assert!(log.verify().unwrap().is_ok());
    assert!(
        FileEventLog::open_read_only(dir.path())
            .unwrap()
            .verify()
            .unwrap()
            .is_ok()
    );
    // A segment that disappears without `delete_range` is still reported, once every segment
    // was made durable (before that, open takes a missing one for a power loss under
    // `SyncMode::Never`, and ends the log before it: see `power_loss.rs`).
    log.sync().unwrap();
    drop(log);
    std::fs::remove_file(dir.path().join("00000000000000000021.seg")).unwrap();
    let log = open_small(dir.path(), 1 << 20);
    let f = log.verify().unwrap().first_failure.unwrap();
    assert!(f.detail.contains("missing"), "{f}");
}

#[test]
fn verify_reports_progress_per_unit() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_small(dir.path(), 2048);
    fill(&log, 1, 300, 4);
    let units = segments(dir.path()).len() as u64;
    let mut seen = Vec::new();
    let report = log.verify_with_progress(|p| seen.push(p)).unwrap();
    assert!(report.is_ok());
    assert_eq!(report.segments_verified, units);
    assert_eq!(seen.len() as u64, units);
    let last = seen.last().unwrap();
    assert_eq!(last.segments_done, last.segments_total);
    assert_eq!(last.bytes_done, last.bytes_total);
    assert!(seen.windows(2).all(|w| w[0].bytes_done <= w[1].bytes_done));
}

#[test]
fn a_block_of_empty_events() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_small(dir.path(), 1 << 20);
    let empties = vec![Vec::new(); 1000];
    log.append_batch_with_ids(1, &empties).unwrap();
    assert_eq!(log.get(500).unwrap(), Some(Vec::new()));
    assert_eq!(log.next_event_id().unwrap(), 1001);
}

#[test]
fn events_of_4_gib_are_refused_before_anything_is_written() {
    // 4 GiB of untouched, unreserved address space: the length is checked before any byte is
    // read, so no memory is used. Skipped where the kernel will not map it.
    const LEN: usize = 1 << 32;
    // SAFETY: an anonymous private mapping with no file; unmapped below, read by nobody.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            LEN,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        eprintln!("skipped: cannot map 4 GiB of address space");
        return;
    }
    // SAFETY: the mapping is LEN bytes long and lives until the munmap below.
    let huge = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), LEN) };
    let dir = tempfile::tempdir().unwrap();
    let log = open_small(dir.path(), 1 << 20);
    log.append_with_id(1, b"small").unwrap();
    assert!(matches!(
        log.append_with_id(2, huge),
        Err(AzothError::ValueTooLarge { len: LEN, .. })
    ));
    assert_eq!(log.next_event_id().unwrap(), 2);
    log.append_with_id(2, b"next").unwrap();
    drop(log);
    // SAFETY: unmapping the mapping made above; `huge` is not used after this.
    unsafe { libc::munmap(ptr, LEN) };
    let log = open_small(dir.path(), 1 << 20);
    assert_eq!(log.get(2).unwrap().as_deref(), Some(&b"next"[..]));
}
