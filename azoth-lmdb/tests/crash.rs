//! Process-kill test: a child process appends with `SyncMode::Always` and reports every
//! acknowledged id; the parent kills it with SIGKILL at a random moment, reopens the log and
//! checks that every acknowledged event is there, ids are dense and `verify()` passes.
//!
//! Uses the shared helpers of `azoth_core::testing::crash`. `AZOTH_CRASH_ROUNDS` sets the
//! number of rounds (default 20).

use azoth_core::testing::crash::{XorShift, child_dir, kill_round, report_ack};
use azoth_core::{EventLog, SyncMode};
use azoth_lmdb::{LmdbEventLog, LmdbLogOptions};

const CHILD_DIR: &str = "AZOTH_LMDB_CRASH_CHILD_DIR";

fn event(id: u64) -> Vec<u8> {
    let mut bytes = format!("crash-event-{id}-").into_bytes();
    bytes.resize(64 + (id % 200) as usize, (id % 251) as u8);
    bytes
}

/// The child: appends batches (rotating now and then) forever, reporting each acknowledged
/// last id.
#[test]
fn crash_child() {
    let Some(dir) = child_dir(CHILD_DIR) else {
        return;
    };
    let log = LmdbLogOptions::default()
        .sync_mode(SyncMode::Always)
        .open(&dir)
        .unwrap();
    let mut rng = XorShift::new(u64::from(std::process::id()));
    loop {
        let first = log.next_event_id().unwrap();
        let n = 1 + rng.below(20);
        let events: Vec<_> = (first..first + n).map(event).collect();
        log.append_batch_with_ids(first, &events).unwrap();
        if rng.below(50) == 0 {
            log.rotate().unwrap();
        }
        report_ack(first + n - 1).unwrap();
    }
}

#[test]
fn acknowledged_appends_survive_sigkill() {
    let rounds: u64 = std::env::var("AZOTH_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = XorShift::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut most_acknowledged = 0;
    for round in 0..rounds {
        let acknowledged =
            kill_round("crash_child", CHILD_DIR, dir.path(), 10 + rng.below(120)).unwrap();
        most_acknowledged = most_acknowledged.max(acknowledged);
        let log = LmdbEventLog::open(dir.path()).unwrap();
        let newest = log.newest_event_id().unwrap();
        assert!(
            newest >= acknowledged,
            "round {round} (seed {seed}): acknowledged {acknowledged}, found {newest}"
        );
        let mut expected = 1;
        for item in log.iter_range(1, None).unwrap() {
            let (id, bytes) = item.unwrap();
            assert_eq!(id, expected, "round {round} (seed {seed}): ids not dense");
            assert_eq!(bytes, event(id), "round {round} (seed {seed})");
            expected += 1;
        }
        assert_eq!(expected, newest + 1);
        let report = log.verify().unwrap();
        assert!(report.is_ok(), "round {round} (seed {seed}): {report:?}");
    }
    // The rounds killed a child that was appending, not only children still starting.
    assert!(
        rounds == 0 || most_acknowledged > 0,
        "no append was ever acknowledged"
    );
}
