//! Damage in the middle of the active segment is not a torn tail: with `SyncMode::Always`
//! every block after it was acknowledged, so open refuses to cut them off.

use std::path::{Path, PathBuf};

use azoth_core::{AzothError, EventLog, SyncMode};
use azoth_file::{FileLogOptions, file_name};

fn active_segment(dir: &Path) -> PathBuf {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some(file_name::SEGMENT_EXT))
        .collect();
    segments.sort();
    segments.pop().unwrap()
}

/// Appends three blocks and flips a byte inside the second one's payload.
fn damaged_log(sync_mode: SyncMode) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let log = FileLogOptions::default()
        .sync_mode(sync_mode)
        .open(dir.path())
        .unwrap();
    for (id, fill) in [(1, 0xAAu8), (2, 0xBB), (3, 0xCC)] {
        log.append_with_id(id, &[fill; 1000]).unwrap();
    }
    drop(log);
    let path = active_segment(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let second = bytes.windows(64).position(|w| w == [0xBB; 64]).unwrap();
    bytes[second + 500] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    dir
}

#[test]
fn always_refuses_to_truncate_acknowledged_blocks() {
    let dir = damaged_log(SyncMode::Always);
    let Err(err) = FileLogOptions::default()
        .sync_mode(SyncMode::Always)
        .open(dir.path())
    else {
        panic!("open must refuse");
    };
    match err {
        AzothError::Corruption { location, .. } => {
            assert_eq!(location.event_id, Some(2));
            assert!(location.file.is_some() && location.offset.is_some());
        }
        other => panic!("expected Corruption, got {other:?}"),
    }
    // Nothing was cut: the third block is still on disk.
    let bytes = std::fs::read(active_segment(dir.path())).unwrap();
    assert!(bytes.windows(64).any(|w| w == [0xCC; 64]));
}

#[test]
fn unsynced_modes_still_cut_the_tail() {
    // Without per-block syncs a later block may reach the disk before an earlier one, so the
    // damage is treated as a torn tail.
    let dir = damaged_log(SyncMode::Never);
    let log = FileLogOptions::default()
        .sync_mode(SyncMode::Never)
        .open(dir.path())
        .unwrap();
    assert_eq!(log.next_event_id().unwrap(), 2);
}
