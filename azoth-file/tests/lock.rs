//! A second writer gets `Locked` at once, whether it is in this process or another.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use azoth_core::{AzothError, EventLog};
use azoth_file::FileEventLog;

const CHILD_ENV: &str = "AZOTH_FILE_LOCK_CHILD_DIR";

#[test]
fn second_writer_in_process_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileEventLog::open(dir.path()).unwrap();
    match FileEventLog::open(dir.path()) {
        Err(AzothError::Locked { path }) => assert_eq!(path, dir.path()),
        other => panic!("expected Locked, got {other:?}"),
    }
    // Readers are welcome.
    FileEventLog::open_read_only(dir.path()).unwrap();
    drop(log);
    FileEventLog::open(dir.path()).unwrap();
}

/// Run as a child process by `second_writer_in_another_process_is_refused`: holds the lock
/// until its stdin closes. Does nothing in a normal test run.
#[test]
fn lock_holding_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let log = FileEventLog::open(&dir).unwrap();
    log.append_with_id(1, b"child").unwrap();
    println!("LOCKED");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

#[test]
fn second_writer_in_another_process_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "lock_holding_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("LOCKED") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "child ended early");
    }
    assert!(matches!(
        FileEventLog::open(dir.path()),
        Err(AzothError::Locked { .. })
    ));
    let ro = FileEventLog::open_read_only(dir.path()).unwrap();
    assert_eq!(ro.get(1).unwrap().as_deref(), Some(&b"child"[..]));
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    let log = FileEventLog::open(dir.path()).unwrap();
    assert_eq!(log.next_event_id().unwrap(), 2);
}
