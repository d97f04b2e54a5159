//! A read-only handle follows the writer of its directory: new blocks in the active segment,
//! new segments, archived segments; a block still being written is not yet visible.

mod common;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use azoth_core::EventLog;
use azoth_file::fs::FaultyFs;
use azoth_file::{FileEventLog, FileLogOptions};
use common::*;

#[test]
fn a_read_only_handle_sees_what_the_writer_appends_after_it_opened() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_small(dir.path(), 4096);
    fill(&log, 1, 11, 3);
    let ro = FileEventLog::open_read_only(dir.path()).unwrap();
    assert_eq!(ro.newest_event_id().unwrap(), 10);
    fill(&log, 11, 21, 4);
    assert_eq!(ro.newest_event_id().unwrap(), 20, "same segment");
    assert_eq!(ro.get(17).unwrap(), Some(event(17)));
    log.rotate().unwrap();
    fill(&log, 21, 400, 7);
    assert!(segments(dir.path()).len() > 3);
    assert_holds(&ro, 1, 400);
    assert_eq!(ro.stats().unwrap().newest_event_id, 399);
    assert!(ro.verify().unwrap().is_ok());
}

#[test]
fn a_read_only_handle_iterates_while_the_writer_appends_and_rotates() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open_small(dir.path(), 2048));
    fill(&log, 1, 2, 1);
    let ro = FileEventLog::open_read_only(dir.path()).unwrap();
    const END: u64 = 3000;
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (log, done) = (Arc::clone(&log), Arc::clone(&done));
        std::thread::spawn(move || {
            fill(&log, 2, END, 5);
            done.store(true, Ordering::Release);
        })
    };
    // Tail the log as `events --follow` does: read from the last id seen, again and again.
    let mut next = 1;
    loop {
        let finished = done.load(Ordering::Acquire);
        for item in ro.iter_range(next, None).unwrap() {
            let (id, bytes) = item.unwrap();
            assert_eq!(id, next, "ids are dense");
            assert_eq!(bytes, event(id));
            next += 1;
        }
        if finished && next == END {
            break;
        }
        assert!(!finished || next < END, "read past the end");
        if finished {
            // One more pass after the writer finished picks up the rest.
            continue;
        }
        std::thread::yield_now();
    }
    writer.join().unwrap();
    assert_eq!(ro.newest_event_id().unwrap(), END - 1);
}

#[test]
fn a_block_still_being_written_is_not_visible_and_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_small(dir.path(), 1 << 20);
    fill(&log, 1, 6, 1);
    let ro = FileEventLog::open_read_only(dir.path()).unwrap();
    drop(log);
    let active = segments(dir.path()).pop().unwrap();
    let whole = std::fs::metadata(&active).unwrap().len();
    // The first bytes of a block: what a reader may see while the writer's pwrite runs.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&active)
        .unwrap();
    f.write_all(&[0x42; 20]).unwrap();
    drop(f);
    assert_eq!(ro.newest_event_id().unwrap(), 5);
    assert_holds(&ro, 1, 6);
    // The writer's next open cuts the torn bytes and goes on; the reader follows.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&active)
        .unwrap()
        .set_len(whole)
        .unwrap();
    let log = open_small(dir.path(), 1 << 20);
    fill(&log, 6, 9, 1);
    assert_holds(&ro, 1, 9);
}

#[test]
fn a_read_only_handle_follows_archival() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_small(dir.path(), 2048);
    fill(&log, 1, 200, 4);
    let ro = FileEventLog::open_read_only(dir.path()).unwrap();
    assert_holds(&ro, 1, 200);
    let archived = log.archive(150).unwrap();
    assert!(!archived.is_empty());
    fill(&log, 200, 260, 4);
    assert_holds(&ro, 1, 260);
    assert!(ro.verify().unwrap().is_ok());
}

#[test]
fn a_read_only_verify_follows_segments_the_writer_archives_or_deletes_while_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_small(dir.path(), 4096);
    fill(&log, 1, 1500, 7);
    let units = log.units();
    assert!(units.len() >= 5, "{units:?}");
    let ro = FileEventLog::open_read_only(dir.path()).unwrap();
    let mut calls = 0;
    let report = ro
        .verify_with_progress(|_| {
            calls += 1;
            if calls == 1 {
                assert_eq!(log.archive(units[1].end_event_id - 1).unwrap().len(), 2);
                let deleted = log
                    .delete_range(units[2].first_event_id, units[2].end_event_id - 1)
                    .unwrap();
                assert_eq!(deleted as u64, units[2].event_count());
            }
        })
        .unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert!(ro.verify().unwrap().is_ok());
}

#[test]
fn a_read_only_handle_looks_again_when_units_go_while_it_reloads_them() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open_small(dir.path(), 2048));
    fill(&log, 1, 400, 4);
    let ro = FileEventLog::open_read_only(dir.path()).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (log, done) = (Arc::clone(&log), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut next = 400;
            for _ in 0..1000 {
                fill(&log, next, next + 60, 4);
                next += 60;
                log.archive(next - 100).unwrap();
                log.delete_range(0, next - 200).unwrap();
            }
            done.store(true, Ordering::Release);
        })
    };
    let mut errors = Vec::new();
    while !done.load(Ordering::Acquire) {
        if let Err(e) = ro.newest_event_id() {
            errors.push(format!("newest_event_id: {e}"));
        }
        match ro.iter_range(0, None) {
            Ok(it) => {
                for r in it {
                    if let Err(e) = r {
                        if !matches!(e, azoth_core::AzothError::EventsDeleted { .. }) {
                            errors.push(format!("reading: {e}"));
                        }
                    }
                }
            }
            Err(e) => errors.push(format!("iter_range: {e}")),
        }
    }
    writer.join().unwrap();
    assert!(errors.is_empty(), "{} errors: {errors:?}", errors.len());
}

/// A read-only open over `dir` whose directory listing the writer `log` outdates at once:
/// `change` runs right after the open listed the directory, before it read any file listed,
/// and may also change the names the listing returns.
fn open_read_only_racing(
    dir: &std::path::Path,
    log: &Arc<FileEventLog>,
    change: impl FnOnce(&FileEventLog, &mut Vec<std::ffi::OsString>) + Send + 'static,
) -> azoth_core::Result<FileEventLog> {
    let fs = FaultyFs::new();
    let log = Arc::clone(log);
    fs.edit_next_list(move |names| change(&log, names));
    FileLogOptions::default()
        .file_system(Arc::new(fs))
        .open_read_only(dir)
}

#[test]
fn a_read_only_open_looks_again_when_the_writer_archives_segments_it_listed() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open_small(dir.path(), 2048));
    fill(&log, 1, 400, 4);
    let units = log.units();
    assert!(units.len() >= 4, "{units:?}");
    let up_to = units[2].end_event_id - 1;
    let ro = open_read_only_racing(dir.path(), &log, move |log, _| {
        assert_eq!(log.archive(up_to).unwrap().len(), 3);
    })
    .unwrap();
    assert_eq!(ro.file_stats().unwrap().archived_count, 3);
    assert_eq!(ro.stats().unwrap().event_count, 399);
    assert_holds(&ro, 1, 400);
    assert!(ro.verify().unwrap().is_ok());
}

#[test]
fn a_read_only_open_finds_a_segment_archived_while_it_listed_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open_small(dir.path(), 2048));
    fill(&log, 1, 400, 4);
    let first = log.units()[0].clone();
    let segment = format!("{:020}.seg", first.first_event_id);
    // The worst a listing can do while a segment is archived beside it (archive renamed in,
    // then the segment removed, in the same directory): pass the archive's place before the
    // rename and the segment's after the removal, and return neither.
    let ro = open_read_only_racing(dir.path(), &log, move |log, names| {
        assert_eq!(log.archive(first.end_event_id - 1).unwrap().len(), 1);
        names.retain(|name| name.to_str() != Some(segment.as_str()));
    })
    .unwrap();
    // As opened, before any read lists the directory again.
    let units = ro.units();
    assert_eq!(units[0].first_event_id, 1, "{units:?}");
    assert_eq!(units[0].state, azoth_core::UnitState::Archived);
    assert_eq!(ro.file_stats().unwrap().archived_count, 1);
    assert_holds(&ro, 1, 400);
    assert!(ro.verify().unwrap().is_ok());
}

#[test]
fn a_read_only_open_looks_again_when_retention_removes_units_it_listed() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open_small(dir.path(), 2048));
    fill(&log, 1, 400, 4);
    let units = log.units();
    assert!(units.len() >= 6, "{units:?}");
    // Archive the first two, so that retention removes archives as well as segments.
    assert_eq!(log.archive(units[1].end_event_id - 1).unwrap().len(), 2);
    let (front_end, middle) = (units[2].end_event_id - 1, units[4].clone());
    let removed = middle.clone();
    let ro = open_read_only_racing(dir.path(), &log, move |log, _| {
        // From the front (archives and a segment), then one segment from the middle.
        assert_eq!(log.delete_range(0, front_end).unwrap() as u64, front_end);
        assert_eq!(
            log.delete_range(removed.first_event_id, removed.end_event_id - 1)
                .unwrap() as u64,
            removed.event_count()
        );
    })
    .unwrap();
    let kept = 399 - front_end - middle.event_count();
    assert_eq!(ro.stats().unwrap().event_count, kept);
    assert_eq!(ro.oldest_event_id().unwrap(), front_end + 1);
    assert_eq!(ro.get(middle.first_event_id).unwrap(), None);
    for id in [
        front_end + 1,
        middle.first_event_id - 1,
        middle.end_event_id,
        399,
    ] {
        assert_eq!(ro.get(id).unwrap(), Some(event(id)), "event {id}");
    }
    assert!(ro.verify().unwrap().is_ok());
}
