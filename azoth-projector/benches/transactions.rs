//! Transaction throughput: uncontended commits beside plain `put` (in the same run), and a
//! contended counter (`transact` read-modify-write of one key) with 1, 8 and 64 threads.
//!
//! `cargo bench -p azoth-projector --bench transactions`
//!
//! Environment: `AZOTH_BENCH_SECS` (seconds per timed case, default 2). Keys are 16 bytes
//! and values 100 bytes; data lives under the target directory.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use azoth_core::{AzothError, Result, SyncMode};
use azoth_projector::{Config, Database};

const VALUE: [u8; 100] = [0xAB; 100];

fn key(i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(b"bench:t:");
    k[8..].copy_from_slice(&i.to_be_bytes());
    k
}

fn secs() -> Duration {
    Duration::from_secs_f64(
        std::env::var("AZOTH_BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(2.0),
    )
}

fn open(sync: SyncMode) -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let db = Database::open_with(Config::new(dir.path()).sync_mode(sync)).unwrap();
    (dir, db)
}

/// Runs `f(i)` on one thread for about `budget`; returns operations per second.
fn timed(budget: Duration, mut f: impl FnMut(u64)) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..16 {
            f(n);
            n += 1;
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn decode(v: Option<Vec<u8>>) -> Result<u64> {
    match v {
        None => Ok(0),
        Some(b) => {
            Ok(u64::from_le_bytes(b.try_into().map_err(|_| {
                AzothError::Encoding("a counter is 8 bytes".into())
            })?))
        }
    }
}

/// `threads` threads increment one counter with `transact` for about `budget`; returns
/// committed increments per second and closure runs per commit.
fn contended_counter(threads: usize, budget: Duration) -> (f64, f64) {
    let (_dir, db) = open(SyncMode::Never);
    let stop = AtomicBool::new(false);
    let runs = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    db.transact(|txn| {
                        runs.fetch_add(1, Ordering::Relaxed);
                        let n = decode(txn.get(b"counter")?)?;
                        txn.put(b"counter", &(n + 1).to_le_bytes())
                    })
                    .unwrap();
                }
            });
        }
        std::thread::sleep(budget);
        stop.store(true, Ordering::Relaxed);
    });
    let elapsed = start.elapsed().as_secs_f64();
    let commits = decode(db.get(b"counter").unwrap()).unwrap();
    (
        commits as f64 / elapsed,
        runs.load(Ordering::Relaxed) as f64 / commits.max(1) as f64,
    )
}

fn main() {
    let budget = secs();
    let mut rows: Vec<(String, f64, String)> = Vec::new();
    for (sync, name) in [(SyncMode::Never, "Never"), (SyncMode::Always, "Always")] {
        // Every case writes fresh keys into a fresh database, and each runs twice in turn
        // (the best run counts), so that neither order nor database size favours one.
        let (mut put, mut blind, mut rmw) = (0f64, 0f64, 0f64);
        for _ in 0..2 {
            let (_d, db) = open(sync);
            put = put.max(timed(budget, |i| {
                db.put(&key(i), &VALUE).unwrap();
            }));
            let (_d, db) = open(sync);
            blind = blind.max(timed(budget, |i| {
                let mut txn = db.begin_transaction().unwrap();
                txn.put(&key(i), &VALUE).unwrap();
                txn.commit().unwrap();
            }));
            let (_d, db) = open(sync);
            rmw = rmw.max(timed(budget, |i| {
                let mut txn = db.begin_transaction().unwrap();
                let k = key(i);
                let old = txn.get(&k).unwrap();
                txn.put(&k, old.as_deref().unwrap_or(&VALUE)).unwrap();
                txn.commit().unwrap();
            }));
        }
        rows.push((format!("put, 1 thread, sync {name}"), put, String::new()));
        rows.push((
            format!("transaction: put, 1 thread, sync {name}"),
            blind,
            format!("{:.2}x put", blind / put),
        ));
        rows.push((
            format!("transaction: get + put (validated read), 1 thread, sync {name}"),
            rmw,
            format!("{:.2}x put", rmw / put),
        ));
    }
    for threads in [1, 8, 64] {
        let (rate, runs) = contended_counter(threads, budget);
        rows.push((
            format!("contended counter (transact), {threads} threads, sync Never"),
            rate,
            format!("{runs:.2} runs per commit"),
        ));
    }
    println!("| case | ops/s | note |");
    println!("| --- | ---: | --- |");
    for (case, rate, note) in rows {
        println!("| {case} | {rate:.0} | {note} |");
    }
}
