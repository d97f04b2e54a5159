//! Process-kill test: a child process appends with `SyncMode::Always` and reports every
//! acknowledged id; the parent kills it with SIGKILL at a random moment, reopens the log and
//! checks that every acknowledged event is there, ids are dense and `verify()` passes.
//!
//! `AZOTH_CRASH_ROUNDS` sets the number of rounds (default 20).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use azoth_core::{EventLog, SyncMode};
use azoth_lmdb::{LmdbEventLog, LmdbLogOptions};

const CHILD_DIR: &str = "AZOTH_LMDB_CRASH_CHILD_DIR";

fn event(id: u64) -> Vec<u8> {
    let mut bytes = format!("crash-event-{id}-").into_bytes();
    bytes.resize(64 + (id % 200) as usize, (id % 251) as u8);
    bytes
}

/// A small deterministic generator: the test must not depend on a random crate, and a seed
/// printed on failure reproduces the run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

/// The child: appends batches forever, printing `ack <last id>` after each returns.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let log = LmdbLogOptions::default()
        .sync_mode(SyncMode::Always)
        .open(&dir)
        .unwrap();
    let mut rng = XorShift(std::process::id() as u64 | 1);
    let mut out = std::io::stdout().lock();
    loop {
        let first = log.next_event_id().unwrap();
        let n = 1 + rng.next(20);
        let events: Vec<_> = (first..first + n).map(event).collect();
        log.append_batch_with_ids(first, &events).unwrap();
        if rng.next(50) == 0 {
            log.rotate().unwrap();
        }
        writeln!(out, "ack {}", first + n - 1).unwrap();
        out.flush().unwrap();
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
        .as_nanos() as u64
        | 1;
    let mut rng = XorShift(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut acknowledged = 0;
    for round in 0..rounds {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let wanted = 1 + rng.next(40);
        let mut acks = 0;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(id) = line.strip_prefix("ack ") {
                acknowledged = id.parse().unwrap();
                acks += 1;
                if acks == wanted {
                    break;
                }
            }
        }
        // `kill` sends SIGKILL on Unix: the child may be in the middle of an append.
        child.kill().unwrap();
        child.wait().unwrap();

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
        acknowledged = newest;
    }
}
