//! Process-kill and bit-flip helpers for backends' crash tests.
//!
//! A kill test re-runs its own test binary as a child (`std::env::current_exe`) with an
//! environment variable naming the directory; the child writes and reports each acknowledged
//! id on stdout with [`report_ack`]; the parent SIGKILLs it at a random moment with
//! [`kill_round`] and then checks, after reopening, that every acknowledged id is there.
//!
//! ```no_run
//! use azoth_core::testing::crash::{XorShift, child_dir, kill_round, report_ack};
//!
//! const ENV: &str = "MY_BACKEND_KILL_CHILD_DIR";
//!
//! // The child: a test that does nothing unless ENV is set.
//! fn appending_child() {
//!     let Some(_dir) = child_dir(ENV) else { return };
//!     for id in 1.. {
//!         // append event `id` to the log in `_dir`, then:
//!         report_ack(id).unwrap();
//!     }
//! }
//!
//! // The parent: kill the child at random moments, then check what it acknowledged.
//! fn acknowledged_writes_survive_sigkill(dir: &std::path::Path) {
//!     let mut rng = XorShift::new(7);
//!     for _ in 0..20 {
//!         let acked = kill_round("appending_child", ENV, dir, 20 + rng.below(150)).unwrap();
//!         // reopen the log: newest >= acked, ids dense, verify() passes
//!         assert!(acked < u64::MAX);
//!     }
//! }
//! ```

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The line prefix a child writes before each acknowledged id.
pub const ACK_PREFIX: &str = "ACK ";

/// In a child run, the directory the parent passed in `env`; `None` in a normal test run.
pub fn child_dir(env: &str) -> Option<PathBuf> {
    std::env::var_os(env).map(PathBuf::from)
}

/// Reports `id` as acknowledged to the parent (a line on stdout, flushed at once).
///
/// # Errors
/// When stdout is closed (the parent is gone).
pub fn report_ack(id: u64) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{ACK_PREFIX}{id}")?;
    out.flush()
}

/// Runs the test `child_test` of this test binary as a child with `env` set to `dir`, lets it
/// run for `run_ms` milliseconds, SIGKILLs it, and returns the highest id it acknowledged
/// (0 if none).
///
/// # Errors
/// When the child cannot be started, killed or waited for.
pub fn kill_round(child_test: &str, env: &str, dir: &Path, run_ms: u64) -> std::io::Result<u64> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--exact", child_test, "--nocapture", "--test-threads=1"])
        .env(env, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let acked = Arc::new(AtomicU64::new(0));
    let reader = child.stdout.take().map(|out| {
        let acked = Arc::clone(&acked);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let id = line
                    .strip_prefix(ACK_PREFIX)
                    .and_then(|id| id.trim().parse::<u64>().ok());
                if let Some(id) = id {
                    acked.fetch_max(id, Ordering::SeqCst);
                }
            }
        })
    });
    std::thread::sleep(Duration::from_millis(run_ms));
    child.kill()?;
    child.wait()?;
    if let Some(reader) = reader {
        // The pipe closes with the child, so this ends; a panic in it only loses acks.
        let _ = reader.join();
    }
    Ok(acked.load(Ordering::SeqCst))
}

/// Flips bit `bit` (0..8) of the byte at `offset` of the file at `path`.
///
/// # Errors
/// I/O errors, or `offset` past the end of the file.
pub fn flip_bit(path: &Path, offset: u64, bit: u8) -> std::io::Result<()> {
    let mut bytes = std::fs::read(path)?;
    let at = usize::try_from(offset)
        .ok()
        .filter(|&at| at < bytes.len())
        .ok_or_else(|| std::io::Error::other("offset past the end of the file"))?;
    bytes[at] ^= 1 << (bit % 8);
    std::fs::write(path, bytes)
}

/// A small deterministic pseudo-random generator (xorshift64) for choosing kill moments and
/// damage, so a failing run can be repeated from its seed.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator from `seed` (0 is replaced, as xorshift needs a non-zero state).
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}
