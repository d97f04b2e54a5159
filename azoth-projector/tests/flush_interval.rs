//! A zero flush interval must not turn the background flusher into a busy loop.

#![cfg(target_os = "linux")]

use std::time::Duration;

use azoth_projector::{Config, Database, SyncMode};

/// CPU time (user + system, in clock ticks) of this process's threads named `name`.
fn thread_cpu_ticks(name: &str) -> u64 {
    let mut ticks = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the command name, which is in parentheses: utime and stime are the
        // 14th and 15th fields of the whole line.
        let after = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
        let fields: Vec<&str> = after.split(' ').collect();
        ticks += fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    }
    ticks
}

#[test]
fn a_zero_flush_interval_does_not_spin_the_flusher() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(
        Config::new(dir.path())
            .sync_mode(SyncMode::Never)
            .flush_interval(Some(Duration::ZERO)),
    )
    .unwrap();
    db.put(b"k", b"v").unwrap();
    let before = thread_cpu_ticks("azoth-flush");
    std::thread::sleep(Duration::from_secs(1));
    let used = thread_cpu_ticks("azoth-flush") - before;
    assert_eq!(db.get(b"k").unwrap(), Some(b"v".to_vec()));
    db.close().unwrap();
    // A busy loop takes most of the second (about 100 ticks); an idle flusher next to none.
    assert!(
        used < 20,
        "the flusher used {used} clock ticks of CPU in one idle second"
    );
}
