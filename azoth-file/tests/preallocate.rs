//! Under `SyncMode::Always` the writer keeps zeros written ahead of the active segment's last
//! block (`FileLogOptions::preallocate`). They never show as data or damage: sealing and
//! close cut them off, and an open after a crash that left them cuts them off too, even under
//! `RecoveryMode::Refuse`. Zeros followed by anything else are still damage.

mod common;

use std::io::Write;
use std::path::Path;

use azoth_core::{AzothError, EventLog, SyncMode};
use azoth_file::{FileEventLog, FileLogOptions, RecoveryMode};
use common::*;

fn open(dir: &Path, segment_size: u64, recovery: RecoveryMode) -> FileEventLog {
    FileLogOptions::default()
        .sync_mode(SyncMode::Always)
        .segment_size(segment_size)
        .recovery_mode(recovery)
        .preallocate(64 * 1024)
        .open(dir)
        .unwrap()
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// Appends `bytes` to the end of the file at `path`, as a crash of a writer would leave them.
fn append_to(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

/// A closed `Always` log of events 1..30 in `dir`: its active segment and that file's length.
fn closed_log_of_29_events(dir: &Path) -> (std::path::PathBuf, u64) {
    let log = open(dir, 1 << 30, RecoveryMode::Refuse);
    fill(&log, 1, 30, 4);
    drop(log);
    let seg = segments(dir).pop().unwrap();
    let end = file_len(&seg);
    (seg, end)
}

#[test]
fn zeros_are_kept_ahead_while_open_and_cut_at_close() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 1 << 30, RecoveryMode::TruncateTail);
    fill(&log, 1, 40, 3);
    let end = log.stats().unwrap().total_bytes;
    let seg = segments(dir.path()).pop().unwrap();
    let len = file_len(&seg);
    assert!(
        len > end && len <= end + 64 * 1024,
        "zeros ahead: {len} for {end}"
    );
    assert_holds(&log, 1, 40);
    assert!(log.verify().unwrap().is_ok());
    drop(log);
    assert_eq!(file_len(&seg), end, "close cuts the zeros off");
    let log = open(dir.path(), 1 << 30, RecoveryMode::Refuse);
    assert_holds(&log, 1, 40);
}

#[test]
fn sealed_segments_end_with_their_last_block() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 4096, RecoveryMode::TruncateTail);
    fill(&log, 1, 400, 2);
    let segs = segments(dir.path());
    assert!(segs.len() > 3, "the appends rotated");
    for (seg, idx) in segs.iter().zip(files_with_ext(dir.path(), "idx")) {
        // The zeros never reach past the segment size, and sealing cut them off.
        assert!(file_len(seg) < 4096 + 1024, "{}", seg.display());
        let sealed: Vec<u8> = std::fs::read(seg).unwrap();
        assert_ne!(sealed.last(), Some(&0), "{} ends in zeros", seg.display());
        assert!(idx.exists());
    }
    assert_holds(&log, 1, 400);
    assert!(log.verify().unwrap().is_ok());
}

#[test]
fn zeros_left_by_a_crash_are_cut_off_at_open_even_under_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let (seg, end) = closed_log_of_29_events(dir.path());
    append_to(&seg, &vec![0u8; 200_000]);

    let log = open(dir.path(), 1 << 30, RecoveryMode::Refuse);
    assert_eq!(file_len(&seg), end, "open cut the zeros off");
    assert_holds(&log, 1, 30);
    fill(&log, 30, 60, 4);
    assert!(
        file_len(&seg) > log.stats().unwrap().total_bytes,
        "zeros ahead again"
    );
    assert!(log.verify().unwrap().is_ok());
    drop(log);
    let log = open(dir.path(), 1 << 30, RecoveryMode::Refuse);
    assert_holds(&log, 1, 60);
}

#[test]
fn a_read_only_open_sees_the_blocks_before_the_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 1 << 30, RecoveryMode::TruncateTail);
    fill(&log, 1, 20, 3);
    let reader = FileLogOptions::default()
        .open_read_only(dir.path())
        .unwrap();
    assert_holds(&reader, 1, 20);
    fill(&log, 20, 25, 3);
    assert_holds(&reader, 1, 25);
    assert!(reader.verify().unwrap().is_ok());
}

#[test]
fn zeros_followed_by_other_bytes_are_damage() {
    let dir = tempfile::tempdir().unwrap();
    let (seg, end) = closed_log_of_29_events(dir.path());
    let mut tail = vec![0u8; 5000];
    tail.push(1);
    append_to(&seg, &tail);

    let refused = FileLogOptions::default()
        .sync_mode(SyncMode::Always)
        .recovery_mode(RecoveryMode::Refuse)
        .open(dir.path());
    assert!(matches!(refused, Err(AzothError::Corruption { .. })));
    assert_eq!(
        file_len(&seg),
        end + 5001,
        "refusing leaves the file as it was"
    );

    // The default mode cuts it as a torn tail: nothing after it is a whole block.
    let log = open(dir.path(), 1 << 30, RecoveryMode::TruncateTail);
    assert_holds(&log, 1, 30);
}

#[test]
fn zero_turns_it_off() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileLogOptions::default()
        .sync_mode(SyncMode::Always)
        .preallocate(0)
        .open(dir.path())
        .unwrap();
    fill(&log, 1, 10, 3);
    let seg = segments(dir.path()).pop().unwrap();
    assert_eq!(file_len(&seg), log.stats().unwrap().total_bytes);
}

/// Without `Always` the writer maps the active segment instead: it allocates 1 MiB of it,
/// doubles that as the log reaches it (up to the segment size), and cuts the file to the
/// log's end at close.
#[test]
fn other_sync_modes_allocate_the_segment_as_it_fills() {
    for mode in [SyncMode::Never, SyncMode::IntervalMs(50)] {
        let dir = tempfile::tempdir().unwrap();
        let log = FileLogOptions::default()
            .sync_mode(mode)
            .segment_size(3 << 20)
            .open(dir.path())
            .unwrap();
        fill(&log, 1, 10, 3);
        let seg = segments(dir.path()).pop().unwrap();
        assert_eq!(file_len(&seg), 1 << 20, "{mode:?}: the first MiB");
        // Past the first MiB in small appends: twice that; past the second, the segment size.
        let event = vec![5u8; 1000];
        let mut id = 10;
        while log.stats().unwrap().total_bytes < (1 << 20) + 4096 {
            log.append_with_id(id, &event).unwrap();
            id += 1;
        }
        assert_eq!(file_len(&seg), 2 << 20, "{mode:?}: doubled");
        while log.stats().unwrap().total_bytes < (2 << 20) + 4096 {
            log.append_with_id(id, &event).unwrap();
            id += 1;
        }
        assert_eq!(file_len(&seg), 3 << 20, "{mode:?}: up to the segment size");
        let total = log.stats().unwrap().total_bytes;
        drop(log);
        assert_eq!(file_len(&seg), total, "{mode:?}");
        let log = FileLogOptions::default()
            .sync_mode(mode)
            .open(dir.path())
            .unwrap();
        assert_eq!(log.newest_event_id().unwrap(), id - 1);
        assert!(log.verify().unwrap().is_ok());
    }
}

/// Zeros ahead of large blocks would double what a bulk load writes, for little: a block over
/// 64 KiB grows the file as without preallocation; the small blocks after it get zeros again.
#[test]
fn large_blocks_grow_the_file_without_zeros_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), 1 << 30, RecoveryMode::TruncateTail);
    let big: Vec<Vec<u8>> = (0..100).map(|_| vec![7u8; 1000]).collect();
    log.append_batch_with_ids(1, &big).unwrap();
    let seg = segments(dir.path()).pop().unwrap();
    assert_eq!(file_len(&seg), log.stats().unwrap().total_bytes);
    log.append_with_id(101, b"small").unwrap();
    assert!(file_len(&seg) > log.stats().unwrap().total_bytes);
    drop(log);
    let log = open(dir.path(), 1 << 30, RecoveryMode::Refuse);
    assert_eq!(log.newest_event_id().unwrap(), 101);
}

/// Under `SyncMode::Never` a new segment's header is not synced, while the space allocated
/// for it (`fallocate`) changes the file's length at once: after a power loss the file may
/// be that length of zeros, header included. It holds no block, like a segment whose
/// creation was cut short: open writes its header again, in every recovery mode, and a
/// read-only open sees an empty active segment.
#[test]
fn an_active_segment_of_zeros_from_its_first_byte_is_one_never_written() {
    for recovery in [RecoveryMode::TruncateTail, RecoveryMode::Refuse] {
        let dir = tempfile::tempdir().unwrap();
        let open = || {
            FileLogOptions::default()
                .sync_mode(SyncMode::Never)
                .segment_size(64 * 1024)
                .recovery_mode(recovery)
                .open(dir.path())
        };
        let log = open().unwrap();
        fill(&log, 1, 100, 3);
        log.rotate().unwrap();
        drop(log);
        let active = segments(dir.path()).pop().unwrap();
        std::fs::write(&active, vec![0u8; 64 * 1024]).unwrap();

        let reader = FileLogOptions::default()
            .open_read_only(dir.path())
            .unwrap();
        assert_holds(&reader, 1, 100);
        drop(reader);
        let log = open().unwrap();
        assert_holds(&log, 1, 100);
        fill(&log, 100, 120, 3);
        assert!(log.verify().unwrap().is_ok(), "{recovery:?}");
        drop(log);
        let log = open().unwrap();
        assert_holds(&log, 1, 120);
        assert!(log.verify().unwrap().is_ok(), "{recovery:?}");
    }
}
