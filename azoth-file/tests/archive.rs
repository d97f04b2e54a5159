//! Archival: sealed segments become zstd archives that stay readable, in the chain and in
//! `verify()`; retention deletes them; a crash mid-archival leaves a log that opens whole.

mod common;

use std::os::unix::fs::FileExt;

use azoth_core::{AzothError, EventLog, SyncMode};
use azoth_file::{FileEventLog, FileLogOptions};
use common::*;

#[test]
fn archived_segments_stay_readable_verifiable_and_reopenable() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_small(dir.path(), 4096);
    fill(&log, 1, 1500, 7);
    let sealed_before = segments(dir.path()).len() - 1;
    let archived = log.archive(700).unwrap();
    assert!(!archived.is_empty());
    let azarc = files_with_ext(dir.path(), "azarc");
    assert_eq!(azarc, archived);
    assert_eq!(
        segments(dir.path()).len() + archived.len() - 1,
        sealed_before,
        "each archived segment is removed"
    );
    assert_holds(&log, 1, 1500);
    for id in [1, 350, 699, 700, 701, 1499] {
        assert_eq!(log.get(id).unwrap(), Some(event(id)), "event {id}");
    }
    let report = log.verify().unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.events_verified, 1499);
    let stats = log.file_stats().unwrap();
    assert_eq!(stats.archived_count, archived.len());
    assert!(stats.archived_bytes > 0);
    assert_eq!(stats.log.event_count, 1499);
    // Archiving again finds nothing new below the same bound.
    assert!(log.archive(700).unwrap().is_empty());
    fill(&log, 1500, 1600, 10);
    drop(log);

    let log = open_small(dir.path(), 4096);
    assert_holds(&log, 1, 1600);
    assert!(log.verify().unwrap().is_ok());
    // Retention frees archives too.
    let last_archived_end = log.iter_range(1, None).unwrap().count();
    assert!(last_archived_end > 0);
    let deleted = log.delete_range(0, 300).unwrap();
    assert!(deleted > 0);
    assert_eq!(log.oldest_event_id().unwrap(), deleted as u64 + 1);
    assert!(log.verify().unwrap().is_ok());
    let ro = FileEventLog::open_read_only(dir.path()).unwrap();
    assert_holds(&ro, deleted as u64 + 1, 1600);
}

#[test]
fn a_separate_archive_directory() {
    let dir = tempfile::tempdir().unwrap();
    let arch = tempfile::tempdir().unwrap();
    let open = || {
        FileLogOptions::default()
            .sync_mode(SyncMode::Never)
            .segment_size(4096)
            .archive_dir(arch.path())
            .compression_level(1)
            .open(dir.path())
            .unwrap()
    };
    let log = open();
    fill(&log, 1, 800, 5);
    let archived = log.archive(u64::MAX).unwrap();
    assert!(archived.iter().all(|p| p.starts_with(arch.path())));
    assert!(files_with_ext(dir.path(), "azarc").is_empty());
    drop(log);
    let log = open();
    assert_holds(&log, 1, 800);
    assert!(log.verify().unwrap().is_ok());
}

#[test]
fn a_crash_between_archive_and_segment_removal_is_finished_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_small(dir.path(), 4096);
    fill(&log, 1, 600, 5);
    let segs = segments(dir.path());
    let first = segs[0].clone();
    let second_first: u64 = segs[1]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let saved = std::fs::read(&first).unwrap();
    let archived = log.archive(second_first - 1).unwrap();
    assert_eq!(archived.len(), 1);
    drop(log);
    std::fs::write(&first, saved).unwrap();
    let log = open_small(dir.path(), 4096);
    assert!(!first.exists(), "the archived segment is removed at open");
    assert_holds(&log, 1, 600);
    assert!(log.verify().unwrap().is_ok());
}

#[test]
fn damage_in_an_archive_is_found_by_verify_and_reads() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_small(dir.path(), 4096);
    fill(&log, 1, 600, 5);
    let archived = log.archive(400).unwrap();
    drop(log);
    let target = &archived[1];
    let pristine = std::fs::read(target).unwrap();
    for at in [100usize, pristine.len() / 2, pristine.len() - 50] {
        let mut b = pristine.clone();
        b[at] ^= 0x10;
        std::fs::write(target, &b).unwrap();
        let log = open_small(dir.path(), 4096);
        let f = log.verify().unwrap().first_failure.expect("damage found");
        assert_eq!(f.location.file.as_deref(), Some(target.as_path()), "{f}");
        assert!(
            log.iter_range(1, None)
                .unwrap()
                .any(|r| r.is_err_and(|e| e.is_corruption()))
        );
    }
}

#[test]
fn archival_runs_beside_appends_and_readers() {
    let dir = tempfile::tempdir().unwrap();
    let log = std::sync::Arc::new(open_small(dir.path(), 2048));
    fill(&log, 1, 200, 5);
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || fill(&log, 200, 3000, 5))
    };
    let reader = {
        let log = log.clone();
        std::thread::spawn(move || {
            for _ in 0..20 {
                for (expected, item) in (1..).zip(log.iter_range(1, None).unwrap()) {
                    let (id, bytes) = item.unwrap();
                    assert_eq!((id, &bytes), (expected, &event(expected)));
                }
            }
        })
    };
    let mut archived = 0;
    for _ in 0..10 {
        let newest = log.newest_event_id().unwrap();
        archived += log.archive(newest).unwrap().len();
    }
    writer.join().unwrap();
    reader.join().unwrap();
    archived += log.archive(u64::MAX).unwrap().len();
    assert!(archived > 0);
    assert_holds(&log, 1, 3000);
    let report = log.verify().unwrap();
    assert!(report.is_ok(), "{report:?}");
}

#[test]
fn verify_follows_segments_archived_or_deleted_while_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_small(dir.path(), 4096);
    fill(&log, 1, 1500, 7);
    let units = log.units();
    assert!(units.len() >= 5, "{units:?}");
    let second_last = units[1].end_event_id - 1;
    let third_last = units[2].end_event_id - 1;
    // After the first unit is checked, the second is archived and the third deleted, as
    // archival and retention may do beside a reader; verify must follow, not fail.
    let mut calls = 0;
    let report = log
        .verify_with_progress(|_| {
            calls += 1;
            if calls == 1 {
                assert_eq!(log.archive(second_last).unwrap().len(), 2);
                let deleted = log
                    .delete_range(units[2].first_event_id, third_last)
                    .unwrap();
                assert_eq!(deleted as u64, units[2].event_count());
            }
        })
        .unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(calls, units.len());
    let ids: Vec<u64> = log
        .iter_range(1, None)
        .unwrap()
        .map(|r| r.unwrap().0)
        .collect();
    let expected: Vec<u64> = (1..1500)
        .filter(|id| *id < units[2].first_event_id || *id > third_last)
        .collect();
    assert_eq!(ids, expected);
    assert!(log.verify().unwrap().is_ok());
    assert!(log.verify().unwrap().is_ok());
}

#[test]
fn retention_under_an_open_iterator_is_an_error_not_a_skip() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_small(dir.path(), 4096);
    fill(&log, 1, 1500, 7);
    assert!(!log.archive(700).unwrap().is_empty());
    let mut iter = log.iter_range(1, None).unwrap();
    assert_eq!(iter.next().unwrap().unwrap().0, 1);
    // Archives and sealed segments the iterator has not reached go.
    let deleted = log.delete_range(0, 1200).unwrap();
    assert!(deleted > 700, "{deleted}");
    let rest: Vec<_> = iter.collect();
    let ids: Vec<u64> = rest
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|p| p.0))
        .collect();
    assert_eq!(
        ids,
        (2..2 + ids.len() as u64).collect::<Vec<_>>(),
        "ids skipped"
    );
    match rest.last() {
        Some(Err(AzothError::EventsDeleted { from, to })) => {
            assert_eq!(*from, 2 + ids.len() as u64);
            assert_eq!(
                *to,
                deleted as u64 + 1,
                "the log goes on after what was deleted"
            );
        }
        other => panic!("the iterator ended with {other:?}, not EventsDeleted"),
    }
    // A reader started now begins at the oldest event left, and `get` of a gone id is None.
    assert_holds(&log, deleted as u64 + 1, 1500);
    assert_eq!(log.get(3).unwrap(), None);
}

#[test]
fn an_archive_followed_by_a_gap_keeps_its_own_end_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_small(dir.path(), 4096);
    fill(&log, 1, 1500, 7);
    let units = log.units();
    assert!(units.len() >= 4, "{units:?}");
    let (first, second) = (&units[0], &units[1]);
    assert_eq!(log.archive(first.end_event_id - 1).unwrap().len(), 1);
    let deleted = log
        .delete_range(second.first_event_id, second.end_event_id - 1)
        .unwrap();
    assert_eq!(deleted as u64, second.event_count());
    let expected: Vec<u64> = (1..1500)
        .filter(|id| *id < second.first_event_id || *id >= second.end_event_id)
        .collect();
    let ids = |log: &FileEventLog| -> Vec<u64> {
        log.iter_range(1, None)
            .unwrap()
            .map(|r| r.unwrap().0)
            .collect()
    };
    assert_eq!(ids(&log), expected);
    drop(log);

    for read_only in [false, true] {
        let log = if read_only {
            FileEventLog::open_read_only(dir.path()).unwrap()
        } else {
            open_small(dir.path(), 4096)
        };
        assert_eq!(ids(&log), expected, "read_only {read_only}");
        assert_eq!(log.get(second.first_event_id).unwrap(), None);
        assert_eq!(
            log.stats().unwrap().event_count,
            expected.len() as u64,
            "read_only {read_only}"
        );
        assert_eq!(log.units()[0].end_event_id, first.end_event_id);
        let report = log.verify().unwrap();
        assert!(report.is_ok(), "read_only {read_only}: {report:?}");
    }
}

#[test]
fn verify_of_an_open_log_finds_damage_in_an_archive_outside_its_frames() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_small(dir.path(), 4096);
    fill(&log, 1, 1500, 7);
    let archived = log.archive(700).unwrap();
    assert!(archived.len() >= 2, "{archived:?}");
    let target = &archived[1];
    let pristine = std::fs::read(target).unwrap();
    // A byte of the header (its prev_hash), of the frame index and of the trailer (its
    // last_hash), each changed in place while the log stays open.
    let len = pristine.len();
    for at in [30usize, len - 88 - 10, len - 88 + 45] {
        let mut b = pristine.clone();
        b[at] ^= 0x10;
        std::fs::OpenOptions::new()
            .write(true)
            .open(target)
            .unwrap()
            .write_all_at(&b, 0)
            .unwrap();
        let f = log
            .verify()
            .unwrap()
            .first_failure
            .unwrap_or_else(|| panic!("damage at byte {at} of {len} not found"));
        assert_eq!(f.location.file.as_deref(), Some(target.as_path()), "{f}");
    }
    std::fs::OpenOptions::new()
        .write(true)
        .open(target)
        .unwrap()
        .write_all_at(&pristine, 0)
        .unwrap();
    assert!(log.verify().unwrap().is_ok());
    // An archive that retention deletes while verify runs is skipped, as a segment is.
    let second = log.units()[1].clone();
    let mut calls = 0;
    let report = log
        .verify_with_progress(|_| {
            calls += 1;
            if calls == 1 {
                let deleted = log
                    .delete_range(second.first_event_id, second.end_event_id - 1)
                    .unwrap();
                assert_eq!(deleted as u64, second.event_count());
            }
        })
        .unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert!(log.verify().unwrap().is_ok());
}
