//! A writer handle that is gone writes nothing more to the log's files, even when something
//! (an iterator) keeps its shared state alive: once it is dropped, its directory lock is
//! released and another writer may own the files.

mod common;

use std::sync::Arc;

use azoth_core::{EventLog, SyncMode};
use azoth_file::fs::FaultyFs;
use azoth_file::{FileEventLog, FileLogOptions};
use common::*;

fn open_buffered(dir: &std::path::Path, fs: &FaultyFs) -> FileEventLog {
    FileLogOptions::default()
        .sync_mode(SyncMode::Never)
        .segment_size(4096)
        .write_buffer(64 * 1024)
        .file_system(Arc::new(fs.clone()))
        .open(dir)
        .unwrap()
}

fn other(id: u64) -> Vec<u8> {
    format!("written by the second writer: {id}").into_bytes()
}

/// A log poisoned with events still gathered in its write buffer is dropped (its close writes
/// nothing: it is poisoned) while an iterator over it lives on. A second writer opens the
/// directory, appends other events under the same ids and syncs them. The old iterator then
/// reads on: it must not write the dead handle's gathered block over the new writer's synced
/// blocks (it did: a reader writes the gathered tail out before reading past the file's end).
#[test]
fn a_dropped_poisoned_writer_never_writes_over_the_next_writers_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    let log = open_buffered(dir.path(), &fs);
    fill(&log, 1, 200, 10);
    log.sync().unwrap();
    // A segment sealed without a sync, for the next sync() to sync first ...
    fill(&log, 200, 210, 10);
    log.rotate().unwrap();
    // ... and events gathered in the new active segment, not yet on its file.
    fill(&log, 210, 220, 5);
    // The sealed segment's sync fails: the log is poisoned before the tail is written out.
    fs.set(|p| p.fail_sync_after = Some(0));
    assert!(log.sync().is_err());
    assert!(log.append_with_id(220, &event(220)).is_err(), "poisoned");
    let leftover = log.iter_range(1, None).unwrap();
    drop(log);

    // The next writer: the gathered events never reached the file, so it goes on at 210.
    let log2 = open_buffered(dir.path(), &fs);
    assert_eq!(log2.next_event_id().unwrap(), 210);
    let events: Vec<Vec<u8>> = (210..220).map(other).collect();
    log2.append_batch_with_ids(210, &events).unwrap();
    log2.sync().unwrap();

    // The old iterator reads on (bounded: an iterator that never ends fails the test).
    let read: Vec<_> = leftover.take(1_000).collect();

    let got: Vec<(u64, Vec<u8>)> = log2
        .iter_range(210, None)
        .unwrap()
        .collect::<Result<_, _>>()
        .expect("the second writer's blocks read back");
    let want: Vec<(u64, Vec<u8>)> = (210..220).map(|id| (id, other(id))).collect();
    assert_eq!(got, want, "the second writer's synced events are unchanged");
    assert!(log2.verify().unwrap().is_ok());
    drop(log2);
    let reopened = open_buffered(dir.path(), &FaultyFs::new());
    let got: Vec<(u64, Vec<u8>)> = reopened
        .iter_range(210, None)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(got, want, "after a reopen too");
    // Where the dead handle's events were never written, it ends with an error.
    assert!(read.len() < 1_000, "the old iterator ends");
    assert!(read.last().is_some_and(Result::is_err), "{:?}", read.last());
}

/// A read-only handle opened in the process asks the directory's writer to write out its
/// gathered events first. A dropped writer that an iterator keeps alive is no longer that
/// writer: the read-only handle must reach the next one, and see what it acknowledged.
#[test]
fn a_read_only_handle_asks_the_live_writer_not_a_dropped_one() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    let log = open_buffered(dir.path(), &fs);
    fill(&log, 1, 20, 5);
    // Poisoned with events gathered, so the dropped handle keeps them.
    fs.set(|p| p.fail_sync_after = Some(0));
    log.rotate().unwrap();
    fill(&log, 20, 25, 5);
    assert!(log.sync().is_err());
    let leftover = log.iter_range(1, None).unwrap();
    drop(log);

    let log2 = open_buffered(dir.path(), &FaultyFs::new());
    let first = log2.next_event_id().unwrap();
    let events: Vec<Vec<u8>> = (first..first + 5).map(other).collect();
    // Gathered in the write buffer, not yet on the file.
    log2.append_batch_with_ids(first, &events).unwrap();

    let ro = FileEventLog::open_read_only(dir.path()).unwrap();
    assert_eq!(ro.newest_event_id().unwrap(), first + 4);
    assert_eq!(ro.get(first + 4).unwrap(), Some(other(first + 4)));
    drop(leftover);
}
