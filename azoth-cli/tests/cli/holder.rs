//! A second process that holds a database open, as a running application would.
//!
//! The test binary re-runs itself with only [`hold_a_database`] selected and
//! `AZOTH_TEST_HOLD_DIR` set. That test opens the database, prints `AZOTH-HOLDER-READY`, then reads
//! commands from stdin (`put KEY VALUE`, `app KIND PAYLOAD`, `rotate`, `archive`, `retain`,
//! answered `AZOTH-HOLDER-OK`) until stdin closes, and closes the database. With
//! `AZOTH_TEST_HOLD_KEEP_EVENTS` set, its retention policy keeps that many events. Run normally
//! (without the variable) it does nothing.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

const DIR_VAR: &str = "AZOTH_TEST_HOLD_DIR";
const KEEP_VAR: &str = "AZOTH_TEST_HOLD_KEEP_EVENTS";

#[test]
fn hold_a_database() {
    let Some(dir) = std::env::var_os(DIR_VAR) else {
        return;
    };
    let mut config = azoth::Config::new(&dir);
    if let Some(keep) = std::env::var_os(KEEP_VAR) {
        let keep: u64 = keep.to_str().unwrap().parse().unwrap();
        config = config.retention(azoth::RetentionPolicy::keep_all().keep_events(keep));
    }
    let db = azoth::Database::open_with(config).unwrap();
    println!("AZOTH-HOLDER-READY");
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let words: Vec<&str> = line.split(' ').collect();
        match words.as_slice() {
            ["put", key, value] => {
                db.put(key.as_bytes(), value.as_bytes()).unwrap();
                println!("AZOTH-HOLDER-OK");
            }
            ["app", kind, payload] => {
                db.append_event(kind, payload.as_bytes()).unwrap();
                println!("AZOTH-HOLDER-OK");
            }
            ["rotate"] => {
                db.rotate().unwrap();
                println!("AZOTH-HOLDER-OK");
            }
            ["archive"] => {
                db.archive(u64::MAX).unwrap();
                println!("AZOTH-HOLDER-OK");
            }
            ["retain"] => {
                db.flush().unwrap();
                db.apply_retention().unwrap();
                println!("AZOTH-HOLDER-OK");
            }
            _ => panic!("unknown holder command {line:?}"),
        }
    }
    db.close().unwrap();
}

/// The holding process; dropping it closes its stdin and waits for it to exit.
pub struct Holder {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Holder {
    /// Starts a process holding the database in `dir` and waits until it has it open.
    pub fn start(dir: &Path) -> Self {
        Self::start_with(dir, None)
    }

    /// As [`start`](Self::start), with a retention policy keeping `keep_events` events.
    pub fn start_with(dir: &Path, keep_events: Option<u64>) -> Self {
        let mut command = Command::new(std::env::current_exe().unwrap());
        if let Some(keep) = keep_events {
            command.env(KEEP_VAR, keep.to_string());
        }
        let mut child = command
            .args([
                "--exact",
                "holder::hold_a_database",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(DIR_VAR, dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut holder = Self {
            child,
            stdin,
            stdout,
        };
        holder.wait_for("AZOTH-HOLDER-READY");
        holder
    }

    fn wait_for(&mut self, expected: &str) {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.stdout.read_line(&mut line).unwrap();
            assert!(
                n > 0,
                "the holder process exited before saying {expected:?}"
            );
            if line.trim_end().ends_with(expected) {
                return;
            }
        }
    }

    /// Writes `key = value` through the holding process.
    pub fn put(&mut self, key: &str, value: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "put {key} {value}").unwrap();
        stdin.flush().unwrap();
        self.wait_for("AZOTH-HOLDER-OK");
    }
}

impl Holder {
    /// Appends an application event through the holding process.
    pub fn app_event(&mut self, kind: &str, payload: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "app {kind} {payload}").unwrap();
        stdin.flush().unwrap();
        self.wait_for("AZOTH-HOLDER-OK");
    }

    /// Runs a lifecycle job in the holding process: `rotate`, `archive` (every sealed
    /// segment) or `retain` (flush, then apply the retention policy).
    pub fn job(&mut self, job: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{job}").unwrap();
        stdin.flush().unwrap();
        self.wait_for("AZOTH-HOLDER-OK");
    }

    /// Kills the process (SIGKILL): what it wrote is durable, but its view is not flushed.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}
