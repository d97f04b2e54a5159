//! Process-kill test: a child appends with `SyncMode::Always` and reports every acknowledged
//! id; the parent SIGKILLs it at random moments. After every round each acknowledged id is
//! present, ids are dense, the bytes are right, and `verify()` passes.
//!
//! `AZOTH_KILL_ROUNDS` sets the number of rounds (default 24).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use azoth_core::{EventLog, SyncMode};
use azoth_file::FileLogOptions;

const CHILD_ENV: &str = "AZOTH_FILE_KILL_CHILD_DIR";

fn event(id: u64) -> Vec<u8> {
    let mut e = format!("killed-{id}-").into_bytes();
    e.resize(e.len() + (id % 29) as usize, b'k');
    e
}

/// A small xorshift generator: deterministic per seed, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Run as a child by `acknowledged_appends_survive_sigkill`: appends until killed.
#[test]
fn appending_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let log = FileLogOptions::default()
        .sync_mode(SyncMode::Always)
        .segment_size(16 * 1024)
        .open(&dir)
        .unwrap();
    let mut rng = Rng(std::process::id() as u64 | 1);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    loop {
        let id = log.next_event_id().unwrap();
        let n = 1 + rng.next() % 4;
        let events: Vec<Vec<u8>> = (id..id + n).map(event).collect();
        log.append_batch_with_ids(id, &events).unwrap();
        writeln!(out, "ACK {}", id + n - 1).unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn acknowledged_appends_survive_sigkill() {
    let rounds: u64 = std::env::var("AZOTH_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut acked_total = 0;
    for round in 0..rounds {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "appending_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let acked = Arc::new(AtomicU64::new(0));
        let out = child.stdout.take().unwrap();
        let reader = {
            let acked = acked.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if let Some(id) = line.strip_prefix("ACK ") {
                        acked.store(id.trim().parse().unwrap(), Ordering::SeqCst);
                    }
                }
            })
        };
        std::thread::sleep(Duration::from_millis(20 + rng.next() % 150));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        let acked = acked.load(Ordering::SeqCst);
        acked_total = acked_total.max(acked);

        let log = FileLogOptions::default()
            .segment_size(16 * 1024)
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
