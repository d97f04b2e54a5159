//! `delete_range` of segments in the middle of the log: the gap they leave is recorded
//! (`GAPS`) before any of them is removed, so that a crash in between never leaves a log whose
//! `verify()` reports a missing segment.

mod common;

use std::sync::Arc;

use azoth_core::{EventLog, SyncMode};
use azoth_file::fs::FaultyFs;
use azoth_file::{FileEventLog, FileLogOptions};
use common::*;

fn open(dir: &std::path::Path, fs: &FaultyFs) -> FileEventLog {
    FileLogOptions::default()
        .sync_mode(SyncMode::Never)
        .segment_size(4096)
        .file_system(Arc::new(fs.clone()))
        .open(dir)
        .unwrap()
}

/// The gap record's write fails: as a crash right after the segments were removed would, if
/// they were removed first. The log must verify after a reopen either way.
#[test]
fn a_failed_gap_record_leaves_a_log_that_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    let log = open(dir.path(), &fs);
    fill(&log, 1, 600, 3);
    let units = log.units();
    assert!(units.len() > 4, "{} units", units.len());
    let (first, last) = (units[1].first_event_id, units[2].end_event_id - 1);

    fs.set(|p| p.fail_write_after = Some(0));
    assert!(log.delete_range(first, last).is_err());
    fs.set(|p| p.fail_write_after = None);
    let report = log.verify().unwrap();
    assert!(report.is_ok(), "{report:?}");
    drop(log);

    let log = open(dir.path(), &fs);
    let report = log.verify().unwrap();
    assert!(report.is_ok(), "after reopen: {report:?}");
    // Retrying removes them, and the log still verifies.
    assert_eq!(
        log.delete_range(first, last).unwrap() as u64,
        last + 1 - first
    );
    assert!(log.verify().unwrap().is_ok());
    drop(log);
    let log = open(dir.path(), &fs);
    assert!(log.verify().unwrap().is_ok());
    assert_eq!(log.get(first).unwrap(), None);
    assert_eq!(log.get(last + 1).unwrap(), Some(event(last + 1)));
}
