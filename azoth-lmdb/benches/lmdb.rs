//! LmdbStore and LmdbEventLog against raw heed on the same data, in the same run.
//!
//! ```text
//! CARGO_TARGET_DIR=target-lmdb cargo bench -p azoth-lmdb --bench lmdb
//! ```
//!
//! `AZOTH_BENCH_N` sets the number of keys (default 1 000 000). Prints a table; figures are
//! recorded in `PERFORMANCE.md`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use azoth_core::{CanonicalStore, EventLog, OperationId, StoreBatch, StoreWrite, SyncMode};
use azoth_lmdb::{LmdbLogOptions, LmdbStoreOptions};
use heed::types::Bytes;
use heed::{CommitOrAbort, Database, EnvOpenOptions};

const VALUE_LEN: usize = 100;
const MAP_SIZE: usize = 4 << 30;

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// `n` distinct 16-byte keys in random order: a random 8-byte prefix, then the index.
fn keys(n: usize) -> Vec<[u8; 16]> {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    (0..n as u64)
        .map(|i| {
            let mut k = [0u8; 16];
            k[..8].copy_from_slice(&rng.next().to_be_bytes());
            k[8..].copy_from_slice(&i.to_be_bytes());
            k
        })
        .collect()
}

/// A random permutation of `keys` for the read benchmarks.
fn shuffled(keys: &[[u8; 16]]) -> Vec<[u8; 16]> {
    let mut out = keys.to_vec();
    let mut rng = XorShift(0xD1B5_4A32_D192_ED03);
    for i in (1..out.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        out.swap(i, j);
    }
    out
}

/// This thread's CPU time (Linux `/proc/thread-self/schedstat`, nanoseconds on CPU). The
/// machine the figures were taken on is shared, so wall-clock time mostly measures the other
/// tenants; time on CPU does not (it leaves out waiting for fsync, which both sides of each
/// comparison do alike). Falls back to wall-clock time where the file does not exist.
fn cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Wall-clock and CPU time of one measured section.
#[derive(Clone, Copy)]
struct Timer {
    wall: Instant,
    cpu: Option<Duration>,
}

#[derive(Clone, Copy, PartialEq, PartialOrd)]
struct Elapsed {
    cpu: Duration,
    wall: Duration,
}

impl Timer {
    fn start() -> Self {
        Self {
            wall: Instant::now(),
            cpu: cpu_time(),
        }
    }

    fn elapsed(&self) -> Elapsed {
        let wall = self.wall.elapsed();
        let cpu = match (self.cpu, cpu_time()) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => wall,
        };
        Elapsed { cpu, wall }
    }
}

const WORST: Elapsed = Elapsed {
    cpu: Duration::MAX,
    wall: Duration::MAX,
};

fn row(name: &str, n: usize, elapsed: Elapsed) -> f64 {
    let per_cpu_second = n as f64 / elapsed.cpu.as_secs_f64();
    println!(
        "| {name:<52} | {n:>9} | {:>8.3} | {:>8.3} | {:>12.0} | {:>12.0} |",
        elapsed.wall.as_secs_f64(),
        elapsed.cpu.as_secs_f64(),
        n as f64 / elapsed.wall.as_secs_f64(),
        per_cpu_second,
    );
    per_cpu_second
}

fn best(a: Elapsed, b: Elapsed) -> Elapsed {
    if b.cpu < a.cpu { b } else { a }
}

fn main() {
    let n: usize = std::env::var("AZOTH_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let keys = keys(n);
    let lookups = shuffled(&keys);
    let value = vec![0xA5u8; VALUE_LEN];
    let root = tempfile::tempdir().unwrap();

    println!("| case | ops | wall s | CPU s | ops/s (wall) | ops/s (CPU) |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");

    // Raw heed: one environment, one database, one write transaction of n puts.
    let raw_dir = root.path().join("raw");
    std::fs::create_dir_all(&raw_dir).unwrap();
    let env = unsafe {
        EnvOpenOptions::new()
            .read_txn_without_tls()
            .map_size(MAP_SIZE)
            .max_dbs(4)
            .open(&raw_dir)
            .unwrap()
    };
    let wtxn = env.write_txn().unwrap();
    let db: Database<'static, Bytes, Bytes> = match env
        .create_databases_and_commit(wtxn, |dbo, wtxn| {
            dbo.create_database::<Bytes, Bytes>(wtxn, Some("state"))
                .map(CommitOrAbort::<_, ()>::Commit)
        })
        .unwrap()
    {
        CommitOrAbort::Commit(db) => db,
        CommitOrAbort::Abort(()) => unreachable!(),
    };
    // The batch is built before timing; raw heed writes the same keys and values.
    let batch = StoreBatch {
        writes: keys
            .iter()
            .enumerate()
            .map(|(i, k)| StoreWrite {
                key: k.to_vec(),
                value: Some(value.clone()),
                operation_id: OperationId::new(1_700_000_000_000_000, i as u64 + 1),
            })
            .collect(),
        checkpoint: Some(n as u64),
        metadata: vec![],
    };
    let start = Timer::start();
    let mut wtxn = env.write_txn().unwrap();
    for w in &batch.writes {
        db.put(&mut wtxn, &w.key, w.value.as_deref().unwrap_or_default())
            .unwrap();
    }
    wtxn.commit().unwrap();
    let raw_put = row(
        "raw heed: puts in one write txn (+commit)",
        n,
        start.elapsed(),
    );

    // LmdbStore::apply of the same writes (the batch is built before timing).
    let store = LmdbStoreOptions::default()
        .map_size(MAP_SIZE)
        .open(root.path().join("store"))
        .unwrap();
    let start = Timer::start();
    store.apply(&batch).unwrap();
    let store_put = row("LmdbStore::apply of the same batch", n, start.elapsed());
    drop(batch);

    // Random point reads: rounds alternate between raw and store (the machine is shared, so
    // the round with the least CPU time of three is reported for each).
    let (mut raw_best, mut raw_copy_best, mut store_best) = (WORST, WORST, WORST);
    for _ in 0..3 {
        let start = Timer::start();
        let rtxn = env.read_txn().unwrap();
        let mut total = 0usize;
        for k in &lookups {
            total += db.get(&rtxn, k).unwrap().map_or(0, <[u8]>::len);
        }
        drop(rtxn);
        black_box(total);
        raw_best = best(raw_best, start.elapsed());

        let start = Timer::start();
        let rtxn = env.read_txn().unwrap();
        let mut total = 0usize;
        for k in &lookups {
            total += db
                .get(&rtxn, k)
                .unwrap()
                .map_or(0, |v| black_box(v.to_vec()).len());
        }
        drop(rtxn);
        black_box(total);
        raw_copy_best = best(raw_copy_best, start.elapsed());

        let start = Timer::start();
        let mut total = 0usize;
        for k in &lookups {
            total += store.get(k).unwrap().map_or(0, |v| v.value.len());
        }
        black_box(total);
        store_best = best(store_best, start.elapsed());
    }
    let raw_get = row(
        "raw heed: random gets in one read txn (borrowed)",
        n,
        raw_best,
    );
    row(
        "raw heed: random gets in one read txn + to_vec",
        n,
        raw_copy_best,
    );
    let store_get = row("LmdbStore::get (trait, owned value)", n, store_best);

    // Ordered scan of everything.
    let start = Timer::start();
    let count = store.range(None, None).unwrap().count();
    assert_eq!(count, n);
    row("LmdbStore::range (full scan)", n, start.elapsed());
    drop(store);
    drop(env);

    // Event log: batches of 1000 events of 100 bytes, SyncMode::Never, then a replay.
    let log = LmdbLogOptions::default()
        .sync_mode(SyncMode::Never)
        .map_size(MAP_SIZE)
        .open(root.path().join("log"))
        .unwrap();
    let batch: Vec<Vec<u8>> = (0..1000).map(|_| value.clone()).collect();
    let batches = n / 1000;
    let start = Timer::start();
    for b in 0..batches {
        log.append_batch_with_ids(b as u64 * 1000 + 1, &batch)
            .unwrap();
    }
    let events = batches * 1000;
    row(
        "LmdbEventLog: append, batches of 1000 (Never)",
        events,
        start.elapsed(),
    );
    let start = Timer::start();
    let mut bytes = 0usize;
    for item in log.iter_range(1, None).unwrap() {
        bytes += item.unwrap().1.len();
    }
    black_box(bytes);
    row("LmdbEventLog: replay (iter_range)", events, start.elapsed());
    let start = Timer::start();
    assert!(log.verify().unwrap().is_ok());
    row("LmdbEventLog: verify", events, start.elapsed());
    drop(log);

    let single = 20_000.min(n);
    let log = LmdbLogOptions::default()
        .sync_mode(SyncMode::Never)
        .open(root.path().join("log-single"))
        .unwrap();
    let start = Timer::start();
    for i in 0..single {
        log.append_with_id(i as u64 + 1, &value).unwrap();
    }
    row(
        "LmdbEventLog: append one at a time (Never)",
        single,
        start.elapsed(),
    );

    println!();
    println!(
        "on CPU time: apply / raw puts: {:.0}%   get / raw gets: {:.0}%",
        100.0 * store_put / raw_put,
        100.0 * store_get / raw_get
    );
}
