//! The write buffer (`FileLogOptions::write_buffer`): blocks gathered in memory are seen by
//! every reader of the handle, by a read-only handle of this process, by `verify`, and after a
//! clean close; sealing and rotation write them out.

mod common;

use std::sync::Arc;

use azoth_core::{EventLog, SyncMode};
use azoth_file::{FileEventLog, FileLogOptions};
use common::*;

fn open_buffered(dir: &std::path::Path, segment_size: u64) -> FileEventLog {
    FileLogOptions::default()
        .sync_mode(SyncMode::Never)
        .segment_size(segment_size)
        .write_buffer(8 * 1024)
        .open(dir)
        .unwrap()
}

#[test]
fn readers_see_every_appended_block() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_buffered(dir.path(), 16 * 1024);
    for id in 1..2_000u64 {
        log.append_with_id(id, &event(id)).unwrap();
        if id % 97 == 0 {
            assert_eq!(log.get(id).unwrap(), Some(event(id)));
            assert_holds(&log, 1, id + 1);
        }
    }
    assert!(segments(dir.path()).len() > 1);
    assert!(log.verify().unwrap().is_ok());
    let ro = FileEventLog::open_read_only(dir.path()).unwrap();
    assert_holds(&ro, 1, 2_000);
    fill(&log, 2_000, 2_010, 3);
    assert_holds(&ro, 1, 2_010);
    let total = log.stats().unwrap().total_bytes;
    drop(ro);
    drop(log);
    // Closed, the files hold the log's bytes and nothing more (the space allocated ahead of
    // the active segment's end while open is cut off).
    let on_disk: u64 = segments(dir.path())
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(total, on_disk);
    let log = open_buffered(dir.path(), 16 * 1024);
    assert_holds(&log, 1, 2_010);
    assert!(log.verify().unwrap().is_ok());
}

#[test]
fn concurrent_readers_see_only_whole_acknowledged_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open_buffered(dir.path(), 256 * 1024));
    let writer = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || fill(&log, 1, 20_001, 7))
    };
    let mut seen = 0;
    while seen < 20_000 {
        let next = log.next_event_id().unwrap();
        let got: Vec<(u64, Vec<u8>)> = log
            .iter_range(1, Some(next))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(got.len() as u64, next - 1);
        for (id, bytes) in &got {
            assert_eq!(bytes, &event(*id));
        }
        seen = next - 1;
    }
    writer.join().unwrap();
}

#[test]
fn a_large_block_bypasses_the_buffer_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_buffered(dir.path(), 1 << 20);
    fill(&log, 1, 10, 1);
    // Larger than the buffer: written directly, after what is gathered.
    let big: Vec<Vec<u8>> = (10..2_010).map(event).collect();
    log.append_batch_with_ids(10, &big).unwrap();
    fill(&log, 2_010, 2_020, 1);
    assert_holds(&log, 1, 2_020);
    drop(log);
    let log = open_buffered(dir.path(), 1 << 20);
    assert_holds(&log, 1, 2_020);
    assert!(log.verify().unwrap().is_ok());
}

/// A write-out that fails (here: no space, after a short write) fails the append that needed
/// it and changes nothing of it; the gathered, acknowledged events stay and reach the file
/// once writes work again, and a reopen finds exactly the acknowledged events.
#[test]
fn a_failed_write_out_loses_nothing_acknowledged() {
    use azoth_core::AzothError;
    use azoth_file::fs::FaultyFs;
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    let open = |fs: &FaultyFs| {
        FileLogOptions::default()
            .sync_mode(SyncMode::Never)
            .segment_size(1 << 20)
            .write_buffer(1024)
            .file_system(Arc::new(fs.clone()))
            .open(dir.path())
            .unwrap()
    };
    let log = open(&fs);
    let mut next = 1u64;
    let mut failures = 0;
    for round in 0..300u64 {
        // Long enough without space that the gathered events fill the buffer.
        if round % 100 == 5 {
            fs.set(|p| {
                p.no_space = true;
                p.short_write_bytes = 100;
            });
        }
        if round % 100 == 80 {
            fs.set(|p| p.no_space = false);
        }
        match log.append_with_id(next, &event(next)) {
            Ok(()) => next += 1,
            Err(AzothError::Io(_)) => failures += 1,
            Err(e) => panic!("unexpected {e}"),
        }
        // Readers of this handle see every acknowledged event, or an I/O error while the
        // gathered events cannot be written: never a wrong event.
        if let Ok(iter) = log.iter_range(1, None) {
            let got: Result<Vec<(u64, Vec<u8>)>, _> = iter.collect();
            if let Ok(got) = got {
                assert_eq!(got.len() as u64, next - 1);
            }
        }
    }
    assert!(failures > 0, "the faults never hit a write-out");
    fs.set(|p| p.no_space = false);
    assert_holds(&log, 1, next);
    assert!(log.verify().unwrap().is_ok());
    drop(log);
    let log = open(&fs);
    assert_holds(&log, 1, next);
    assert!(log.verify().unwrap().is_ok());
}
