//! Process-kill test at database level: a child process writes with `SyncMode::Always` and
//! prints every acknowledged write; the parent kills it with SIGKILL at an arbitrary moment,
//! reopens, and checks that every acknowledged write is there, that the view equals a replay
//! of the log, and that `verify()` passes. Rounds continue in the same directory.
//!
//! The child is this test binary re-run with `crash_child` selected and `AZOTH_CRASH_DIR` set.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use azoth::{
    Config, Database, DatabaseEvent, LogBackend, Operation, RetentionPolicy, SubscribeFrom,
    SubscriptionConfig, SyncMode, UnitState,
};

const ROUNDS_PER_BACKEND: usize = 5;

fn config(dir: &Path, backend: &str) -> Config {
    let config = Config::new(dir)
        .sync_mode(SyncMode::Always)
        // Small, so that background flushes happen while the child is killed.
        .memtable_size(16 << 10)
        .flush_interval(Some(Duration::from_millis(20)));
    match backend {
        "lmdb" => config.log_backend(LogBackend::Lmdb),
        _ => config.log_backend(LogBackend::File),
    }
}

/// Runs only as the child: writes until killed.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("AZOTH_CRASH_DIR") else {
        return;
    };
    let backend = std::env::var("AZOTH_CRASH_BACKEND").unwrap();
    let start: u64 = std::env::var("AZOTH_CRASH_START").unwrap().parse().unwrap();
    let db = Database::open_with(config(Path::new(&dir), &backend)).unwrap();
    let mut out = std::io::stdout().lock();
    let mut i = start;
    loop {
        if i % 7 == 0 {
            // A batch: all three acknowledged together.
            let keys: Vec<String> = (0..3).map(|j| format!("k{i:08}-{j}")).collect();
            db.batch(
                keys.iter()
                    .map(|k| Operation::Put {
                        key: k.clone().into_bytes(),
                        value: k.clone().into_bytes(),
                    })
                    .collect(),
            )
            .unwrap();
            for k in keys {
                writeln!(out, "ack {k}").unwrap();
            }
        } else {
            let k = format!("k{i:08}");
            db.put(k.as_bytes(), k.as_bytes()).unwrap();
            writeln!(out, "ack {k}").unwrap();
        }
        if i % 11 == 0 {
            // Announce the delete first: if the kill lands between the delete and its
            // acknowledgement, the key may be either present or gone.
            writeln!(out, "deleting k{:08}", i - 1).unwrap();
            out.flush().unwrap();
            db.delete(format!("k{:08}", i - 1).as_bytes()).unwrap();
            writeln!(out, "del k{:08}", i - 1).unwrap();
        }
        out.flush().unwrap();
        i += 1;
    }
}

fn replay(db: &Database) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut view = BTreeMap::new();
    for event in db.get_events().unwrap() {
        if let DatabaseEvent::WriteEvent { operation, .. } = event {
            match operation {
                Operation::Put { key, value } => {
                    view.insert(key, value);
                }
                Operation::Delete { key } => {
                    view.remove(&key);
                }
            }
        }
    }
    view
}

fn pseudo_random_ms(round: usize) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    30 + (nanos ^ (round as u64 * 7919)) % 170
}

fn run_rounds(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut acked: BTreeMap<String, bool> = BTreeMap::new(); // key → live
    let mut next_start = 1u64;
    for round in 0..ROUNDS_PER_BACKEND {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env("AZOTH_CRASH_DIR", dir.path())
            .env("AZOTH_CRASH_BACKEND", backend)
            .env("AZOTH_CRASH_START", next_start.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<String>>()
        });
        std::thread::sleep(Duration::from_millis(pseudo_random_ms(round)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        let mut round_acks = 0;
        for line in &lines {
            if let Some(k) = line.strip_prefix("ack ") {
                acked.insert(k.to_owned(), true);
                round_acks += 1;
            } else if let Some(k) = line.strip_prefix("deleting ") {
                // Unknown until the delete is acknowledged.
                acked.remove(k);
            } else if let Some(k) = line.strip_prefix("del ") {
                acked.insert(k.to_owned(), false);
            }
        }
        let db = Database::open_with(config(dir.path(), backend)).unwrap();
        for (k, live) in &acked {
            let got = db.get(k.as_bytes()).unwrap();
            if *live {
                assert_eq!(
                    got.as_deref(),
                    Some(k.as_bytes()),
                    "{backend} round {round}: lost {k}"
                );
            } else {
                assert_eq!(got, None, "{backend} round {round}: {k} came back");
            }
        }
        let view: BTreeMap<Vec<u8>, Vec<u8>> = db
            .scan(None, None)
            .unwrap()
            .into_iter()
            .map(|e| (e.key, e.value.unwrap()))
            .collect();
        assert_eq!(
            view,
            replay(&db),
            "{backend} round {round}: view differs from replay"
        );
        let report = db.verify().unwrap();
        assert!(
            report.is_ok(),
            "{backend} round {round}: {:?}",
            report.first_failure
        );
        // Keys written but not yet acknowledged may also be there; continue past them all.
        next_start = db
            .scan(None, None)
            .unwrap()
            .last()
            .map_or(next_start, |e| {
                let s = String::from_utf8(e.key.clone()).unwrap();
                s[1..9].parse::<u64>().unwrap() + 2
            })
            .max(next_start + round_acks as u64 + 2);
        db.close().unwrap();
    }
    assert!(
        !acked.is_empty(),
        "{backend}: the child acknowledged nothing"
    );
}

#[test]
fn acknowledged_writes_survive_sigkill_file_log() {
    run_rounds("file");
}

#[test]
fn acknowledged_writes_survive_sigkill_lmdb_log() {
    run_rounds("lmdb");
}

// ---------------------------------------------------------------------------------------------
// SIGKILL during archival and retention: a child writes, rotates, archives and applies
// retention in a loop, with a durable subscription holding the log; the parent kills it at an
// arbitrary moment and checks, after reopening, that no acknowledged write is lost, that
// nothing the view or the subscription needs was deleted, that the log verifies, and that no
// half-written file is left behind.

const LIFECYCLE_ROUNDS: usize = 4;

fn lifecycle_config(dir: &Path, backend: &str, mode: &str) -> Config {
    let config = config(dir, backend)
        .segment_size(4 << 10)
        .archive_dir(dir.join("archive"))
        // The audit subscription's position, a hold, is stored often, so retention moves.
        .subscriptions(
            SubscriptionConfig::default().checkpoint_every(5, Duration::from_millis(10)),
        );
    match mode {
        "retention" => config.retention(RetentionPolicy::keep_all().keep_events(10)),
        _ => config,
    }
}

/// Runs only as the child: writes, rotates, archives (and applies retention and compacts)
/// until killed.
#[test]
fn lifecycle_crash_child() {
    let Ok(dir) = std::env::var("AZOTH_LIFECYCLE_DIR") else {
        return;
    };
    let backend = std::env::var("AZOTH_CRASH_BACKEND").unwrap();
    let mode = std::env::var("AZOTH_LIFECYCLE_MODE").unwrap();
    let round = std::env::var("AZOTH_LIFECYCLE_ROUND").unwrap();
    let db = Database::open_with(lifecycle_config(Path::new(&dir), &backend, &mode)).unwrap();
    // Handles events slowly, so its stored position lags and holds the log back.
    db.subscribe(
        "audit",
        |_: &DatabaseEvent| {
            std::thread::sleep(Duration::from_micros(200));
            Ok(())
        },
        SubscribeFrom::Stored,
    )
    .unwrap();
    let mut out = std::io::stdout().lock();
    for i in 0u64.. {
        let k = format!("r{round}-{i:06}");
        db.put(k.as_bytes(), k.as_bytes()).unwrap();
        writeln!(out, "ack {k}").unwrap();
        out.flush().unwrap();
        if i % 10 == 9 {
            db.rotate().unwrap();
            let newest = db.stats().unwrap().log.newest_event_id;
            db.archive(newest).unwrap();
            if mode == "retention" {
                db.apply_retention().unwrap();
            }
            if mode == "retention" && i % 30 == 29 {
                // Flush, view compaction, retention and a CompactionEvent.
                db.compact().unwrap();
            }
        }
    }
}

fn temp_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(".tmp") {
                found.push(path);
            }
        }
    }
    found
}

fn run_lifecycle_rounds(backend: &str, mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut acked: Vec<String> = Vec::new();
    // The rounds must have reached the jobs under test, or they prove nothing.
    let (mut archived, mut retained) = (false, false);
    for round in 0..LIFECYCLE_ROUNDS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "lifecycle_crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("AZOTH_LIFECYCLE_DIR", dir.path())
            .env("AZOTH_CRASH_BACKEND", backend)
            .env("AZOTH_LIFECYCLE_MODE", mode)
            .env("AZOTH_LIFECYCLE_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = std::sync::Arc::clone(&seen);
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .inspect(|_| {
                    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                })
                .collect::<Vec<String>>()
        });
        // Past the child's start and its first compaction (after 30 puts), so every round
        // has run archival, retention and compaction at least once whatever the machine's
        // load; then an arbitrary moment.
        let started = std::time::Instant::now();
        while seen.load(std::sync::atomic::Ordering::Relaxed) < 35
            && started.elapsed() < Duration::from_secs(30)
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(pseudo_random_ms(round)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        acked.extend(
            reader
                .join()
                .unwrap()
                .iter()
                .filter_map(|l| l.strip_prefix("ack ").map(str::to_owned)),
        );

        // The open itself must not trip over what the kill left.
        let db = Database::open_with(lifecycle_config(dir.path(), backend, mode)).unwrap();
        let at = format!("{backend}/{mode} round {round}");
        assert_eq!(
            temp_files(dir.path()),
            Vec::<std::path::PathBuf>::new(),
            "{at}"
        );
        for k in &acked {
            assert_eq!(
                db.get(k.as_bytes()).unwrap().as_deref(),
                Some(k.as_bytes()),
                "{at}: lost {k}"
            );
        }
        let report = db.verify().unwrap();
        assert!(report.is_ok(), "{at}: {:?}", report.first_failure);
        // What the log holds is dense, and reaches back past every holder's position.
        let stats = db.stats().unwrap();
        let ids: Vec<u64> = db.events_since(0).unwrap().map(|r| r.unwrap().0).collect();
        assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{at}: a gap");
        assert_eq!(ids.last().copied().unwrap_or(0), stats.log.newest_event_id);
        let oldest = stats.log.oldest_event_id;
        retained |= oldest > 1;
        let units = db.log_units().unwrap();
        archived |= units.iter().any(|u| u.state == UnitState::Archived);
        assert!(
            oldest <= stats.checkpoint + 1,
            "{at}: the view's events are gone"
        );
        if let Some(position) = db.subscription_position("audit").unwrap() {
            assert!(
                oldest <= position + 1,
                "{at}: retention deleted events after the subscription's position {position}"
            );
        }
        if mode == "archive" {
            let check = db.verify_view().unwrap();
            assert!(check.is_ok(), "{at}: {check:?}");
        }
        db.close().unwrap();
    }
    assert!(!acked.is_empty(), "{backend}/{mode}: nothing acknowledged");
    assert!(
        archived,
        "{backend}/{mode}: nothing was archived ({} acks)",
        acked.len()
    );
    assert!(
        mode != "retention" || retained,
        "{backend}/{mode}: retention never deleted"
    );
}

#[test]
fn sigkill_during_archival_loses_nothing_file_log() {
    run_lifecycle_rounds("file", "archive");
}

#[test]
fn sigkill_during_archival_loses_nothing_lmdb_log() {
    run_lifecycle_rounds("lmdb", "archive");
}

#[test]
fn sigkill_during_retention_loses_nothing_file_log() {
    run_lifecycle_rounds("file", "retention");
}

#[test]
fn sigkill_during_retention_loses_nothing_lmdb_log() {
    run_lifecycle_rounds("lmdb", "retention");
}
