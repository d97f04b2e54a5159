//! Process-kill test: a child appends and reports every acknowledged id; the parent SIGKILLs
//! it at random moments. After every round each acknowledged id is present, ids are dense,
//! the bytes are right, and `verify()` passes. Run with `SyncMode::Always` (each append
//! synced, the active segment preallocated with written zeros), with `SyncMode::Never`
//! (nothing synced, the active segment written through a memory map) and with
//! `SyncMode::IntervalMs` (the map, synced by a thread meanwhile): a process kill loses nothing
//! acknowledged in any, as the page cache survives it.
//!
//! `AZOTH_KILL_ROUNDS` sets the number of rounds (default 24).

use azoth_core::testing::crash::{XorShift, child_dir, kill_round, report_ack};
use azoth_core::{EventLog, SyncMode};
use azoth_file::FileLogOptions;

const CHILD_ENV: &str = "AZOTH_FILE_KILL_CHILD_DIR";
const NEVER_CHILD_ENV: &str = "AZOTH_FILE_KILL_NEVER_CHILD_DIR";
const INTERVAL_CHILD_ENV: &str = "AZOTH_FILE_KILL_INTERVAL_CHILD_DIR";
/// Small segments, so kills also land in rotations.
const SEGMENT_SIZE: u64 = 16 * 1024;

fn event(id: u64) -> Vec<u8> {
    let mut e = format!("killed-{id}-").into_bytes();
    e.resize(e.len() + (id % 29) as usize, b'k');
    e
}

/// Run as a child by `acknowledged_appends_survive_sigkill`: appends until killed.
#[test]
fn appending_child() {
    if let Some(dir) = child_dir(CHILD_ENV) {
        append_until_killed(&dir, SyncMode::Always);
    }
}

/// Run as a child by `acknowledged_never_appends_survive_sigkill`.
#[test]
fn appending_never_child() {
    if let Some(dir) = child_dir(NEVER_CHILD_ENV) {
        append_until_killed(&dir, SyncMode::Never);
    }
}

/// Run as a child by `acknowledged_interval_appends_survive_sigkill`: the interval thread
/// syncs the mapped segment while appends copy into it.
#[test]
fn appending_interval_child() {
    if let Some(dir) = child_dir(INTERVAL_CHILD_ENV) {
        append_until_killed(&dir, SyncMode::IntervalMs(2));
    }
}

fn append_until_killed(dir: &std::path::Path, mode: SyncMode) {
    let log = FileLogOptions::default()
        .sync_mode(mode)
        .segment_size(SEGMENT_SIZE)
        .open(dir)
        .unwrap();
    let mut rng = XorShift::new(u64::from(std::process::id()));
    loop {
        let id = log.next_event_id().unwrap();
        let n = 1 + rng.below(4);
        let events: Vec<Vec<u8>> = (id..id + n).map(event).collect();
        log.append_batch_with_ids(id, &events).unwrap();
        report_ack(id + n - 1).unwrap();
    }
}

#[test]
fn acknowledged_appends_survive_sigkill() {
    kill_rounds("appending_child", CHILD_ENV);
}

#[test]
fn acknowledged_never_appends_survive_sigkill() {
    kill_rounds("appending_never_child", NEVER_CHILD_ENV);
}

#[test]
fn acknowledged_interval_appends_survive_sigkill() {
    kill_rounds("appending_interval_child", INTERVAL_CHILD_ENV);
}

fn kill_rounds(child: &str, env: &str) {
    let rounds: u64 = std::env::var("AZOTH_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let dir = tempfile::tempdir().unwrap();
    let mut rng = XorShift::new(0x5EED);
    let mut acked_total = 0;
    for round in 0..rounds {
        let acked = kill_round(child, env, dir.path(), 20 + rng.below(150)).unwrap();
        acked_total = acked_total.max(acked);

        let log = FileLogOptions::default()
            .segment_size(SEGMENT_SIZE)
            .open(dir.path())
            .unwrap();
        let newest = log.newest_event_id().unwrap();
        assert!(
            newest >= acked_total,
            "round {round}: acknowledged {acked_total}, log ends at {newest}"
        );
        let mut expected = 1;
        for item in log.iter_range(1, None).unwrap() {
            let (id, bytes) = item.unwrap();
            assert_eq!(id, expected, "round {round}: ids dense");
            assert_eq!(bytes, event(id), "round {round}: bytes of {id}");
            expected += 1;
        }
        assert_eq!(expected, newest + 1);
        let report = log.verify().unwrap();
        assert!(report.is_ok(), "round {round}: {report:?}");
        acked_total = newest;
    }
    assert!(acked_total > 0, "the child never acknowledged anything");
}
