//! The database bench runner: measures the database and, in the same run, the baselines it
//! is judged against (a raw framed append to a file, raw write + fdatasync, raw heed gets);
//! prints one table and writes the figures as JSON.
//!
//! `cargo bench -p azoth-projector --bench runner`
//!
//! Environment: `AZOTH_BENCH_SECS` (seconds per timed case, default 2),
//! `AZOTH_BENCH_JSON` (output path, default `<target>/tmp/azoth-projector-bench.json`),
//! `AZOTH_BENCH_OPEN_EVENTS` (events for the open-time case, default 1 000 000),
//! `AZOTH_BENCH_ONLY` (run only the cases whose name contains it; baselines always run unless
//! `AZOTH_BENCH_NO_BASELINES` is set, for profiling one case),
//! `AZOTH_BENCH_LOAD_EVENTS` (events of the peak-memory case, default 10 000 000; run it
//! alone, `AZOTH_BENCH_ONLY="peak memory"`, so that the peak is its own),
//! `AZOTH_BENCH_GET_KEYS` (keys of the get cases, default 100 000).
//! Keys are 16 bytes and values 100 bytes. Data lives under the target directory (a real
//! disk, so syncs cost what they cost).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use azoth_core::{DatabaseEvent, EventLog, Operation, OperationId, SyncMode, encode_event};
use azoth_file::FileLogOptions;
use azoth_projector::{Config, Database};

const VALUE: [u8; 100] = [0xAB; 100];
/// The log write buffer of the `log_write_buffer` cases.
const WRITE_BUFFER: usize = 256 * 1024;

fn key(i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(b"bench:k:");
    k[8..].copy_from_slice(&i.to_be_bytes());
    k
}

struct Row {
    case: String,
    ops_per_sec: f64,
    unit: &'static str,
    note: String,
}

fn secs() -> Duration {
    Duration::from_secs_f64(
        std::env::var("AZOTH_BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(2.0),
    )
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

/// Runs `f(i)` repeatedly for about `budget`; returns operations per second.
fn timed(budget: Duration, mut f: impl FnMut(u64)) -> (f64, u64) {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..64 {
            f(n);
            n += 1;
        }
    }
    (n as f64 / start.elapsed().as_secs_f64(), n)
}

fn config(dir: &Path, mode: SyncMode) -> Config {
    Config::new(dir).sync_mode(mode)
}

fn raw_framed_append(budget: Duration) -> f64 {
    let dir = tmp();
    let mut out = BufWriter::with_capacity(1 << 20, File::create(dir.path().join("raw")).unwrap());
    let (rate, _) = timed(budget, |i| {
        let k = key(i);
        let len = (k.len() + VALUE.len()) as u32;
        out.write_all(&len.to_le_bytes()).unwrap();
        out.write_all(&crc32_stub(&k).to_le_bytes()).unwrap();
        out.write_all(&k).unwrap();
        out.write_all(&VALUE).unwrap();
    });
    out.flush().unwrap();
    rate
}

/// A cheap stand-in for a frame checksum, so the baseline does some per-frame work.
fn crc32_stub(b: &[u8]) -> u32 {
    b.iter().fold(0u32, |a, &x| a.rotate_left(5) ^ u32::from(x))
}

/// Appends a put-sized frame and `fdatasync`s, per op. With `over_zeros`, into a file whose
/// blocks were written (with zeros) and synced first, as the file log preallocates under
/// `SyncMode::Always`: the sync then needs no inode write for a grown length.
fn raw_write_fdatasync(budget: Duration, over_zeros: bool) -> f64 {
    const ZEROED: u64 = 16 << 20;
    let dir = tmp();
    let file = File::create(dir.path().join("raw")).unwrap();
    if over_zeros {
        let zeros = vec![0u8; 1 << 20];
        for at in (0..ZEROED).step_by(zeros.len()) {
            file.write_all_at(&zeros, at).unwrap();
        }
        file.sync_all().unwrap();
    }
    let mut offset = 0u64;
    let mut frame = Vec::with_capacity(128);
    timed(budget, |i| {
        frame.clear();
        frame.extend_from_slice(&116u32.to_le_bytes());
        frame.extend_from_slice(&key(i));
        frame.extend_from_slice(&VALUE);
        if over_zeros && offset + frame.len() as u64 > ZEROED {
            offset = 0;
        }
        file.write_all_at(&frame, offset).unwrap();
        offset += frame.len() as u64;
        file.sync_data().unwrap();
    })
    .0
}

fn raw_heed_get(n: u64, budget: Duration) -> f64 {
    use heed::types::Bytes;
    use heed::{CommitOrAbort, EnvOpenOptions};
    let dir = tmp();
    let mut options = EnvOpenOptions::new().read_txn_without_tls();
    options.map_size(1 << 30).max_dbs(2);
    // SAFETY: the environment is opened once, by this process only, in a fresh directory.
    let env = unsafe { options.open(dir.path()) }.unwrap();
    let wtxn = env.write_txn().unwrap();
    let created = env
        .create_databases_and_commit(wtxn, |dbo, wtxn| -> heed::Result<_> {
            let db = dbo.create_database::<Bytes, Bytes>(wtxn, Some("bench"))?;
            Ok(CommitOrAbort::<_, ()>::Commit(db))
        })
        .unwrap();
    let CommitOrAbort::Commit(db) = created else {
        panic!("aborted")
    };
    let mut wtxn = env.write_txn().unwrap();
    for i in 0..n {
        db.put(&mut wtxn, &key(i), &VALUE).unwrap();
    }
    wtxn.commit().unwrap();
    let mut x = 0u64;
    timed(budget, |i| {
        let rtxn = env.read_txn().unwrap();
        let v = db.get(&rtxn, &key((i * 7919) % n)).unwrap();
        x += v.map_or(0, |v| v.len() as u64);
    })
    .0
}

fn put_one_thread(mode: SyncMode, budget: Duration) -> f64 {
    put_one_thread_with(config_for(mode), budget)
}

fn config_for(mode: SyncMode) -> impl Fn(&Path) -> Config {
    move |dir| config(dir, mode)
}

fn put_one_thread_with(make: impl Fn(&Path) -> Config, budget: Duration) -> f64 {
    let dir = tmp();
    let db = Database::open_with(make(dir.path())).unwrap();
    let (rate, _) = timed(budget, |i| {
        db.put(&key(i), &VALUE).unwrap();
    });
    db.close().unwrap();
    rate
}

fn batch_1000(make: impl Fn(&Path) -> Config, budget: Duration) -> f64 {
    let dir = tmp();
    let db = Database::open_with(make(dir.path())).unwrap();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        let ops = (0..1000)
            .map(|j| Operation::Put {
                key: key(n + j).to_vec(),
                value: VALUE.to_vec(),
            })
            .collect();
        db.batch(ops).unwrap();
        n += 1000;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    db.close().unwrap();
    rate
}

fn put_many_threads(threads: u64, budget: Duration) -> (f64, f64) {
    let dir = tmp();
    let db = Database::open_with(config(dir.path(), SyncMode::Always)).unwrap();
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let db = db.clone();
            let (stop, done) = (&stop, &done);
            s.spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    db.put(&key((t << 40) | i), &VALUE).unwrap();
                    i += 1;
                }
                done.fetch_add(i, Ordering::Relaxed);
            });
        }
        std::thread::sleep(budget);
        stop.store(true, Ordering::Relaxed);
    });
    let rate = done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    let group = db.stats().unwrap().mean_group_size;
    db.close().unwrap();
    (rate, group)
}

/// Gets of `n` keys, from the memtable (`flushed = false`) or from the store.
fn get(n: u64, flushed: bool, budget: Duration) -> f64 {
    let dir = tmp();
    let db = Database::open_with(config(dir.path(), SyncMode::Never).flush_interval(None)).unwrap();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        db.batch(
            chunk
                .iter()
                .map(|&i| Operation::Put {
                    key: key(i).to_vec(),
                    value: VALUE.to_vec(),
                })
                .collect(),
        )
        .unwrap();
    }
    if flushed {
        db.flush().unwrap();
    }
    let mut x = 0usize;
    let (rate, _) = timed(budget, |i| {
        x += db.get(&key((i * 7919) % n)).unwrap().map_or(0, |v| v.len());
    });
    db.close().unwrap();
    rate
}

fn scan_prefix_1000(flushed: bool, budget: Duration) -> f64 {
    let dir = tmp();
    let db = Database::open_with(config(dir.path(), SyncMode::Never).flush_interval(None)).unwrap();
    let ops = (0..1000)
        .map(|i| Operation::Put {
            key: key(i).to_vec(),
            value: VALUE.to_vec(),
        })
        .collect();
    db.batch(ops).unwrap();
    // Other keys around the prefix, so the scan has to find its range.
    db.put(b"bench:a", b"x").unwrap();
    db.put(b"bench:z", b"x").unwrap();
    if flushed {
        db.flush().unwrap();
    }
    let (rate, _) = timed(budget / 4, |_| {
        assert_eq!(db.scan_prefix(b"bench:k:").unwrap().len(), 1000);
    });
    db.close().unwrap();
    rate * 1000.0
}

/// Open time with `n` unflushed events: the log is written directly, the view is empty.
fn open_with_unflushed(n: u64) -> f64 {
    let dir = tmp();
    {
        let log = FileLogOptions::default()
            .sync_mode(SyncMode::Never)
            .open(dir.path().join("log"))
            .unwrap();
        let mut next = 1;
        while next <= n {
            let batch: Vec<Vec<u8>> = (next..(next + 1000).min(n + 1))
                .map(|i| {
                    encode_event(&DatabaseEvent::WriteEvent {
                        operation: Operation::Put {
                            key: key(i).to_vec(),
                            value: VALUE.to_vec(),
                        },
                        operation_id: OperationId::new(1, i),
                    })
                    .unwrap()
                })
                .collect();
            let len = batch.len() as u64;
            log.append_batch_with_ids(next, &batch).unwrap();
            next += len;
        }
        log.sync().unwrap();
    }
    let start = Instant::now();
    // A memtable large enough to hold the tail, as a default-sized one holds 64 MiB.
    let db = Database::open_with(config(dir.path(), SyncMode::Never).flush_interval(None)).unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    assert!(db.get(&key(n)).unwrap().is_some());
    drop(db);
    elapsed
}

/// Async puts from `tasks` tokio tasks (2 runtime threads) for `budget`: through
/// `AsyncDatabase::put` (handed to the writer), or with `spawn_blocking` around the blocking
/// `put` (how `AsyncDatabase` wrote before, measured in the same run as its baseline).
fn async_put(mode: SyncMode, tasks: u64, through_blocking_pool: bool, budget: Duration) -> f64 {
    let dir = tmp();
    let db = Database::open_with(config(dir.path(), mode)).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let done = std::sync::Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    rt.block_on(async {
        let mut handles = Vec::new();
        for t in 0..tasks {
            let adb = db.to_async();
            let (stop, done) = (stop.clone(), done.clone());
            handles.push(tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let k = key((t << 40) | i).to_vec();
                    if through_blocking_pool {
                        let db = adb.database().clone();
                        tokio::task::spawn_blocking(move || db.put(&k, &VALUE))
                            .await
                            .unwrap()
                            .unwrap();
                    } else {
                        adb.put(k, VALUE.to_vec()).await.unwrap();
                    }
                    i += 1;
                }
                done.fetch_add(i, Ordering::Relaxed);
            }));
        }
        tokio::time::sleep(budget).await;
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.await.unwrap();
        }
    });
    let rate = done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    db.close().unwrap();
    rate
}

/// The process's peak resident memory so far (`VmHWM`), in MiB; 0 where /proc is missing.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Loads `n` events in batches of 1000 with the default settings (so `SyncMode::Always` and
/// a 64 MiB memtable) and returns (events/s, peak RSS before, peak RSS after).
fn load_peak_memory(n: u64) -> (f64, f64, f64) {
    let dir = tmp();
    let before = peak_rss_mib();
    let db = Database::open_with(Config::new(dir.path())).unwrap();
    let start = Instant::now();
    let mut i = 0;
    while i < n {
        let ops = (i..(i + 1000).min(n))
            .map(|j| Operation::Put {
                key: key(j).to_vec(),
                value: VALUE.to_vec(),
            })
            .collect::<Vec<_>>();
        i += ops.len() as u64;
        db.batch(ops).unwrap();
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    db.close().unwrap();
    (rate, before, peak_rss_mib())
}

fn wanted(case: &str) -> bool {
    std::env::var("AZOTH_BENCH_ONLY").map_or(true, |only| case.contains(&only))
}

/// Runs a baseline, unless `AZOTH_BENCH_NO_BASELINES` asks to profile the cases alone.
fn baseline(run: impl FnOnce() -> f64) -> f64 {
    if std::env::var_os("AZOTH_BENCH_NO_BASELINES").is_some() {
        f64::NAN
    } else {
        run()
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument, if any, is ignored.
    let budget = secs();
    let open_events: u64 = std::env::var("AZOTH_BENCH_OPEN_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let mut rows = Vec::new();
    let mut row = |case: &str, v: f64, unit: &'static str, note: String| {
        eprintln!("{case:<48} {v:>14.0} {unit} {note}");
        rows.push(Row {
            case: case.into(),
            ops_per_sec: v,
            unit,
            note,
        });
    };

    let raw_append = baseline(|| raw_framed_append(budget));
    row(
        "baseline: raw framed BufWriter append",
        raw_append,
        "ops/s",
        String::new(),
    );
    if wanted("put, SyncMode::Never, 1 thread") {
        let v = put_one_thread(SyncMode::Never, budget);
        row(
            "put, SyncMode::Never, 1 thread",
            v,
            "ops/s",
            format!("{:.0}% of raw append", 100.0 * v / raw_append),
        );
    }
    if wanted("put, SyncMode::Never + log_write_buffer(256 KiB), 1 thread") {
        let v = put_one_thread_with(
            |dir| config(dir, SyncMode::Never).log_write_buffer(WRITE_BUFFER),
            budget,
        );
        row(
            "put, SyncMode::Never + log_write_buffer(256 KiB), 1 thread",
            v,
            "ops/s",
            format!("{:.0}% of raw append", 100.0 * v / raw_append),
        );
    }
    if wanted("batch of 1000 puts, SyncMode::Never") {
        let v = batch_1000(config_for(SyncMode::Never), budget);
        row(
            "batch of 1000 puts, SyncMode::Never",
            v,
            "events/s",
            String::new(),
        );
    }
    if wanted("batch of 1000 puts, SyncMode::Never + log_write_buffer(256 KiB)") {
        let v = batch_1000(
            |dir| config(dir, SyncMode::Never).log_write_buffer(WRITE_BUFFER),
            budget,
        );
        row(
            "batch of 1000 puts, SyncMode::Never + log_write_buffer(256 KiB)",
            v,
            "events/s",
            String::new(),
        );
    }

    let raw_sync = baseline(|| raw_write_fdatasync(budget, false));
    row(
        "baseline: raw write + fdatasync",
        raw_sync,
        "ops/s",
        String::new(),
    );
    let raw_sync_zeros = baseline(|| raw_write_fdatasync(budget, true));
    row(
        "baseline: raw write over written zeros + fdatasync",
        raw_sync_zeros,
        "ops/s",
        String::new(),
    );
    if wanted("put, SyncMode::Always, 1 thread") {
        let v = put_one_thread(SyncMode::Always, budget);
        row(
            "put, SyncMode::Always, 1 thread",
            v,
            "ops/s",
            format!(
                "{:.0}% of raw fdatasync, {:.0}% of it over zeros",
                100.0 * v / raw_sync,
                100.0 * v / raw_sync_zeros
            ),
        );
    }
    if wanted("put, SyncMode::Always, 64 threads") {
        let (v, group) = put_many_threads(64, budget);
        row(
            "put, SyncMode::Always, 64 threads",
            v,
            "ops/s",
            format!("mean group size {group:.1}"),
        );
    }

    let n = std::env::var("AZOTH_BENCH_GET_KEYS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let keys = if n % 1000 == 0 {
        format!("{}k keys", n / 1000)
    } else {
        format!("{n} keys")
    };
    let case = format!("get, memtable-resident ({keys})");
    if wanted(&case) {
        let v = get(n, false, budget);
        row(&case, v, "ops/s", String::new());
    }
    let raw_get = baseline(|| raw_heed_get(n, budget));
    row(
        "baseline: raw heed get (read txn per get)",
        raw_get,
        "ops/s",
        String::new(),
    );
    let case = format!("get, flushed to LMDB ({keys})");
    if wanted(&case) {
        let v = get(n, true, budget);
        row(
            &case,
            v,
            "ops/s",
            format!("{:.0}% of raw heed", 100.0 * v / raw_get),
        );
    }
    if wanted("scan_prefix of 1000 entries, memtable") {
        let v = scan_prefix_1000(false, budget);
        row(
            "scan_prefix of 1000 entries, memtable",
            v,
            "entries/s",
            String::new(),
        );
    }
    if wanted("scan_prefix of 1000 entries, flushed") {
        let v = scan_prefix_1000(true, budget);
        row(
            "scan_prefix of 1000 entries, flushed",
            v,
            "entries/s",
            String::new(),
        );
    }
    if wanted("open with") {
        let secs = open_with_unflushed(open_events);
        row(
            &format!("open with {open_events} unflushed events"),
            secs * 1000.0,
            "ms",
            String::new(),
        );
    }

    for (mode, name, tasks) in [
        (SyncMode::Never, "Never", 1u64),
        (SyncMode::Always, "Always", 64),
    ] {
        let case = format!("async put, SyncMode::{name}, {tasks} task(s)");
        if wanted(&case) {
            let pool = async_put(mode, tasks, true, budget);
            row(
                &format!("baseline: spawn_blocking(put), SyncMode::{name}, {tasks} task(s)"),
                pool,
                "ops/s",
                String::new(),
            );
            let v = async_put(mode, tasks, false, budget);
            row(
                &case,
                v,
                "ops/s",
                format!("{:.2}x spawn_blocking", v / pool),
            );
        }
    }
    if wanted("peak memory") {
        let n: u64 = std::env::var("AZOTH_BENCH_LOAD_EVENTS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10_000_000);
        let (rate, before, after) = load_peak_memory(n);
        row(
            &format!("peak memory: load {n} events, batches of 1000, defaults"),
            after,
            "MiB",
            format!("peak RSS (VmHWM) {before:.0} MiB before the load; {rate:.0} events/s"),
        );
    }

    println!("| case | result | unit | note |");
    println!("| --- | ---: | --- | --- |");
    for r in &rows {
        println!(
            "| {} | {:.0} | {} | {} |",
            r.case, r.ops_per_sec, r.unit, r.note
        );
    }
    let json_path = std::env::var("AZOTH_BENCH_JSON")
        .unwrap_or_else(|_| format!("{}/azoth-projector-bench.json", env!("CARGO_TARGET_TMPDIR")));
    let mut json = String::from("[\n");
    for (i, r) in rows.iter().enumerate() {
        json.push_str(&format!(
            "  {{\"case\": {:?}, \"value\": {:.1}, \"unit\": {:?}, \"note\": {:?}}}{}\n",
            r.case,
            r.ops_per_sec,
            r.unit,
            r.note,
            if i + 1 < rows.len() { "," } else { "" }
        ));
    }
    json.push_str("]\n");
    std::fs::write(&json_path, json).unwrap();
    println!("\nwrote {json_path}");
}
