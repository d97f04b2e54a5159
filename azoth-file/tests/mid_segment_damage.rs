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
    damage_second_block(dir.path());
    dir
}

/// Flips a byte inside the payload of the second block (the one filled with `0xBB`) of the
/// active segment in `dir`.
fn damage_second_block(dir: &Path) {
    let path = active_segment(dir);
    let mut bytes = std::fs::read(&path).unwrap();
    let second = bytes.windows(64).position(|w| w == [0xBB; 64]).unwrap();
    bytes[second + 500] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
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

/// A log written under `IntervalMs` may lose a block to a power loss while later ones reach
/// the disk, whatever mode the next open uses: an open under `Always` (the default of an
/// application restarted with other settings, or of a tool) cuts the tail there too, instead
/// of refusing to open.
#[test]
fn a_power_loss_under_interval_ms_is_cut_by_an_open_under_always_too() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileLogOptions::default()
        .sync_mode(SyncMode::IntervalMs(3_600_000))
        .open(dir.path())
        .unwrap();
    for (id, fill) in [(1, 0xAAu8), (2, 0xBB), (3, 0xCC)] {
        log.append_with_id(id, &[fill; 1000]).unwrap();
    }
    // The files as a power loss leaves them, the writer still running: the second block's
    // page never written back, the third's written.
    let crashed = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, crashed.path().join(path.file_name().unwrap())).unwrap();
    }
    drop(log);
    damage_second_block(crashed.path());

    let log = FileLogOptions::default()
        .sync_mode(SyncMode::Always)
        .open(crashed.path())
        .unwrap();
    assert_eq!(log.next_event_id().unwrap(), 2);
    assert!(log.verify().unwrap().is_ok());
    drop(log);
    // Opened under `Always`, the log's blocks are synced one by one from here: damage after
    // a clean close is refused again.
    assert!(!crashed.path().join("DURABLE").exists());
}
