//! What a crash between the steps of archival or `delete_range` leaves, and how open takes
//! it: an index whose segment is gone is removed by a writable open and ignored by a
//! read-only one; a segment whose archive (or whose recorded gap) already exists is counted
//! once. No leftover fails an open or is reported as damage; an index over ids the log misses
//! for no recorded reason is kept.

mod common;

use std::path::{Path, PathBuf};

use azoth_core::EventLog;
use azoth_file::FileEventLog;
use common::*;

fn index_of(segment: &Path) -> PathBuf {
    segment.with_extension("idx")
}

/// The files at `paths` with their bytes, to put back as a crash would have left them.
fn save(paths: &[PathBuf]) -> Vec<(PathBuf, Vec<u8>)> {
    paths
        .iter()
        .map(|p| (p.clone(), std::fs::read(p).unwrap()))
        .collect()
}

fn restore(saved: &[(PathBuf, Vec<u8>)]) {
    for (path, bytes) in saved {
        std::fs::write(path, bytes).unwrap();
    }
}

/// A read-only open of `dir` holds `from..to`, `events` of them, verifies, and leaves the
/// directory's files as they were.
fn check_read_only(dir: &Path, from: u64, to: u64, events: u64) {
    let before = files_with_ext(dir, "idx");
    let ro = FileEventLog::open_read_only(dir).unwrap();
    assert_eq!(ro.stats().unwrap().event_count, events);
    assert_eq!(ro.oldest_event_id().unwrap(), from);
    assert_eq!(ro.newest_event_id().unwrap(), to - 1);
    let report = ro.verify().unwrap();
    assert!(report.is_ok(), "{report:?}");
    drop(ro);
    assert_eq!(
        files_with_ext(dir, "idx"),
        before,
        "a read-only open removes nothing"
    );
}

#[test]
fn an_index_left_by_archival_is_removed_at_open_and_ignored_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_small(dir.path(), 4096);
    fill(&log, 1, 600, 5);
    let first = log.units()[0].clone();
    let saved = save(&[index_of(&first.path)]);
    assert_eq!(log.archive(first.end_event_id - 1).unwrap().len(), 1);
    drop(log);
    // The crash came after the segment's removal, before its index's.
    restore(&saved);
    assert!(!first.path.exists());

    check_read_only(dir.path(), 1, 600, 599);
    let ro = FileEventLog::open_read_only(dir.path()).unwrap();
    assert_holds(&ro, 1, 600);
    drop(ro);

    let log = open_small(dir.path(), 4096);
    assert!(
        !index_of(&first.path).exists(),
        "the leftover index is removed"
    );
    assert_holds(&log, 1, 600);
    assert!(log.verify().unwrap().is_ok());
    assert_eq!(log.file_stats().unwrap().archived_count, 1);
}

#[test]
fn indexes_left_by_delete_range_are_removed_at_open_and_ignored_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_small(dir.path(), 2048);
    fill(&log, 1, 800, 4);
    let units = log.units();
    assert!(units.len() >= 6, "{units:?}");
    // Retention from the front, then from the middle (which records a gap).
    let (front, middle) = (units[0].clone(), units[3].clone());
    let indexes = [index_of(&front.path), index_of(&middle.path)];
    let saved = save(&indexes);
    assert_eq!(
        log.delete_range(0, front.end_event_id - 1).unwrap() as u64,
        front.event_count()
    );
    assert_eq!(
        log.delete_range(middle.first_event_id, middle.end_event_id - 1)
            .unwrap() as u64,
        middle.event_count()
    );
    drop(log);
    restore(&saved);
    let kept = 799 - front.event_count() - middle.event_count();

    check_read_only(dir.path(), front.end_event_id, 800, kept);

    let log = open_small(dir.path(), 2048);
    for idx in &indexes {
        assert!(!idx.exists(), "{} is removed", idx.display());
    }
    assert_eq!(log.stats().unwrap().event_count, kept);
    assert_eq!(log.get(middle.first_event_id).unwrap(), None);
    assert_eq!(
        log.get(middle.end_event_id).unwrap(),
        Some(event(middle.end_event_id))
    );
    assert!(log.verify().unwrap().is_ok());
}

/// After a power loss the log may be cut back to an earlier segment, whose successors are
/// removed (segment, then index): a crash in between leaves an index past the log's end.
#[test]
fn an_index_left_past_the_end_of_a_log_cut_back_is_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_small(dir.path(), 4096);
    fill(&log, 1, 600, 5);
    let units = log.units();
    let n = units.len();
    assert!(n >= 4, "{units:?}");
    let (last_sealed, active) = (units[n - 2].clone(), units[n - 1].clone());
    drop(log);
    std::fs::remove_file(&active.path).unwrap();
    std::fs::remove_file(&last_sealed.path).unwrap();

    let log = open_small(dir.path(), 4096);
    assert!(!index_of(&last_sealed.path).exists());
    assert_holds(&log, 1, last_sealed.first_event_id);
    assert!(log.verify().unwrap().is_ok());
}

#[test]
fn an_index_over_ids_the_log_misses_for_no_recorded_reason_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_small(dir.path(), 4096);
    fill(&log, 1, 600, 5);
    let units = log.units();
    assert!(units.len() >= 4, "{units:?}");
    // Durable: a segment missing now is damage, not one a power loss took before a sync.
    log.sync().unwrap();
    drop(log);
    // A segment whose name was damaged: the log misses its ids, and its index is the only
    // trace of them.
    let missing = &units[2];
    let mut damaged = missing.path.clone().into_os_string();
    damaged.push(".damaged");
    std::fs::rename(&missing.path, &damaged).unwrap();
    // An index whose own name was damaged: it names another id than its file.
    let misnamed = dir
        .path()
        .join(format!("{:020}.idx", units[1].first_event_id + 1));
    std::fs::copy(index_of(&units[1].path), &misnamed).unwrap();

    let log = open_small(dir.path(), 4096);
    assert!(index_of(&missing.path).exists(), "kept for inspection");
    assert!(misnamed.exists(), "kept: not the index of its name");
    let failure = log
        .verify()
        .unwrap()
        .first_failure
        .expect("a missing segment");
    assert!(failure.detail.contains("missing"), "{failure}");
    drop(log);
    let ro = FileEventLog::open_read_only(dir.path()).unwrap();
    assert!(ro.verify().unwrap().first_failure.is_some());
}

#[test]
fn a_segment_archived_but_not_yet_removed_is_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_small(dir.path(), 4096);
    fill(&log, 1, 600, 5);
    let first = log.units()[0].clone();
    let saved = save(&[first.path.clone(), index_of(&first.path)]);
    let segments_before = segments(dir.path()).len();
    assert_eq!(log.archive(first.end_event_id - 1).unwrap().len(), 1);
    drop(log);
    // The crash came after the archive was made durable, before the segment was removed.
    restore(&saved);

    check_read_only(dir.path(), 1, 600, 599);
    let ro = FileEventLog::open_read_only(dir.path()).unwrap();
    let stats = ro.file_stats().unwrap();
    assert_eq!(
        (stats.archived_count, stats.segment_count),
        (1, segments_before - 1)
    );
    assert_holds(&ro, 1, 600);
    drop(ro);
    assert!(first.path.exists(), "a read-only open removes nothing");

    let log = open_small(dir.path(), 4096);
    assert!(!first.path.exists());
    assert!(!index_of(&first.path).exists());
    assert_eq!(log.stats().unwrap().event_count, 599);
    assert_holds(&log, 1, 600);
    assert!(log.verify().unwrap().is_ok());
}

#[test]
fn units_delete_range_recorded_as_a_gap_but_did_not_remove_are_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_small(dir.path(), 2048);
    fill(&log, 1, 800, 4);
    let units = log.units();
    assert!(units.len() >= 6, "{units:?}");
    let middle = units[3].clone();
    let saved = save(&[middle.path.clone(), index_of(&middle.path)]);
    log.delete_range(middle.first_event_id, middle.end_event_id - 1)
        .unwrap();
    drop(log);
    // The crash came after the gap was recorded, before the segment was removed.
    restore(&saved);

    check_read_only(dir.path(), 1, 800, 799);
    let log = open_small(dir.path(), 2048);
    assert!(
        index_of(&middle.path).exists(),
        "the index of a segment kept"
    );
    assert_eq!(log.stats().unwrap().event_count, 799);
    assert_holds(&log, 1, 800);
    assert!(log.verify().unwrap().is_ok());
    // Retention finishes the job when run again.
    assert_eq!(
        log.delete_range(middle.first_event_id, middle.end_event_id - 1)
            .unwrap() as u64,
        middle.event_count()
    );
    assert!(log.verify().unwrap().is_ok());
}
