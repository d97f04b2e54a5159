//! Benchmarks of the file log, each beside a baseline measured in the same run.
//!
//! `cargo bench -p azoth-file --bench file_log` prints a table; `AZOTH_BENCH_EVENTS` sets the
//! size of the large log (default 1 000 000 events of 100 bytes) and `AZOTH_BENCH_SEGMENT` the
//! segment size of the append case (default 64 MiB); `AZOTH_BENCH_TAIL_EVENTS=10000000` adds
//! the tail read on a log of that many events; `AZOTH_BENCH_OPEN_EVENTS=42000000` measures
//! open on a log of that many events (4.3 GiB) in 64 segments; `AZOTH_BENCH_SYNC_APPENDS`
//! sets how many synced single appends are timed (default 2000; past 10 000 the zeros written
//! ahead are extended within the run, which shows in the tail). Run without `--bench` (as
//! `cargo test --all-targets` does) it only smoke-runs every case on a tiny log.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use azoth_core::{EventLog, SyncMode};
use azoth_file::{FileEventLog, FileLogOptions};

const EVENT_LEN: usize = 100;
const BATCH: usize = 1000;

fn events(first: u64, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut e = vec![b'e'; EVENT_LEN];
            e[..8].copy_from_slice(&(first + i as u64).to_le_bytes());
            e
        })
        .collect()
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() - 1) as f64 * p) as usize]
}

/// The baseline of bulk appends: every record framed (length + crc32c) into a `BufWriter`.
fn raw_framed_append(dir: &Path, total: usize) -> f64 {
    let batch = events(0, BATCH);
    let start = Instant::now();
    let mut w = BufWriter::with_capacity(1 << 20, File::create(dir.join("raw.log")).unwrap());
    for _ in 0..total / BATCH {
        for e in &batch {
            w.write_all(&(e.len() as u32).to_le_bytes()).unwrap();
            w.write_all(&crc32c::crc32c(e).to_le_bytes()).unwrap();
            w.write_all(e).unwrap();
        }
    }
    w.flush().unwrap();
    total as f64 / start.elapsed().as_secs_f64()
}

fn log_append(dir: &Path, total: usize) -> (f64, FileEventLog) {
    let log = FileLogOptions::default()
        .sync_mode(SyncMode::Never)
        .segment_size(
            std::env::var("AZOTH_BENCH_SEGMENT")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(64 << 20),
        )
        .open(dir)
        .unwrap();
    // Prepared outside the timing, like the baseline's records.
    let batches: Vec<Vec<Vec<u8>>> = (0..4).map(|i| events(i, BATCH)).collect();
    let start = Instant::now();
    let mut id = 1;
    for i in 0..total / BATCH {
        log.append_batch_with_ids(id, &batches[i % 4]).unwrap();
        id += BATCH as u64;
    }
    (total as f64 / start.elapsed().as_secs_f64(), log)
}

/// Single appends with `SyncMode::Always` and raw write + fdatasync of the same record,
/// interleaved one for one so both see the same disk conditions. `preallocate` as
/// [`FileLogOptions::preallocate`].
fn sync_latencies(dir: &Path, n: usize, preallocate: u64) -> (Vec<Duration>, Vec<Duration>) {
    let raw = File::create(dir.join(format!("raw-sync-{preallocate}.log"))).unwrap();
    let log = FileLogOptions::default()
        .sync_mode(SyncMode::Always)
        .preallocate(preallocate)
        .open(dir.join(format!("sync-{preallocate}")))
        .unwrap();
    let e = events(0, 1).pop().unwrap();
    let mut off = 0;
    let (mut raws, mut ours) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for id in 1..=n as u64 {
        let t = Instant::now();
        raw.write_all_at(&e, off).unwrap();
        raw.sync_data().unwrap();
        raws.push(t.elapsed());
        off += e.len() as u64;
        let t = Instant::now();
        log.append_with_id(id, &e).unwrap();
        ours.push(t.elapsed());
    }
    (raws, ours)
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let total: usize = if bench {
        std::env::var("AZOTH_BENCH_EVENTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000_000)
    } else {
        10 * BATCH
    };
    let sync_n = if bench {
        std::env::var("AZOTH_BENCH_SYNC_APPENDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2000)
    } else {
        20
    };
    // The system temp dir unless told otherwise (it must be a real disk for the sync cases).
    let root = tempfile::tempdir_in(
        std::env::var_os("AZOTH_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into),
    )
    .unwrap();
    let row = |name: &str, value: String, baseline: String, ratio: f64| {
        println!("| {name} | {value} | {baseline} | {ratio:.2} |");
    };
    println!("| case | azoth-file | baseline | ratio |");
    println!("| --- | --- | --- | --- |");

    // Three alternating rounds each, medians reported: the machine is shared, so noise
    // lands on both sides instead of on one.
    let raw_dir = root.path().join("raw");
    std::fs::create_dir_all(&raw_dir).unwrap();
    let mut raws = Vec::new();
    let mut ourses = Vec::new();
    let mut kept = None;
    for round in 0..3 {
        raws.push(raw_framed_append(&raw_dir, total));
        let log_dir = root.path().join(format!("log{round}"));
        let (ours, log) = log_append(&log_dir, total);
        ourses.push(ours);
        if let Some((_, old_dir)) = kept.replace((log, log_dir)) {
            std::fs::remove_dir_all(old_dir).unwrap();
        }
    }
    let (log, _) = kept.unwrap();
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let raw = median(&mut raws);
    let ours = median(&mut ourses);
    row(
        "append 100 B × 1000/batch, SyncMode::Never (events/s)",
        format!("{:.2} M", ours / 1e6),
        format!("{:.2} M (raw BufWriter framed)", raw / 1e6),
        ours / raw,
    );

    let start = Instant::now();
    let mut n = 0u64;
    for item in log.iter_range(1, None).unwrap() {
        let (_, bytes) = item.unwrap();
        n += bytes.len() as u64 / EVENT_LEN as u64;
    }
    let replay = n as f64 / start.elapsed().as_secs_f64();
    row(
        "full replay with iter_range (events/s)",
        format!("{:.2} M", replay / 1e6),
        "goal 5 M".into(),
        replay / 5e6,
    );

    let newest = log.newest_event_id().unwrap();
    let mut tail: Vec<Duration> = (0..200)
        .map(|_| {
            let t = Instant::now();
            let c = log.iter_range(newest - 99, None).unwrap().count();
            assert_eq!(c, 100);
            t.elapsed()
        })
        .collect();
    let tail_p50 = percentile(&mut tail, 0.5);
    row(
        &format!("iter_range(newest − 100) on {total} events, p50"),
        format!("{tail_p50:?}"),
        "goal 1 ms".into(),
        tail_p50.as_secs_f64() / 1e-3,
    );
    drop(log);

    // Optional: the tail read on a log of its own size (10 M events in the case).
    if let Some(n) = std::env::var("AZOTH_BENCH_TAIL_EVENTS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        let dir = root.path().join("tail");
        let big = FileLogOptions::default()
            .sync_mode(SyncMode::Never)
            .open(&dir)
            .unwrap();
        let batch = events(0, BATCH);
        for i in 0..n / BATCH as u64 {
            big.append_batch_with_ids(1 + i * BATCH as u64, &batch)
                .unwrap();
        }
        let newest = big.newest_event_id().unwrap();
        let mut tail: Vec<Duration> = (0..200)
            .map(|_| {
                let t = Instant::now();
                assert_eq!(big.iter_range(newest - 99, None).unwrap().count(), 100);
                t.elapsed()
            })
            .collect();
        let p50 = percentile(&mut tail, 0.5);
        row(
            &format!("iter_range(newest − 100) on {newest} events, p50"),
            format!("{p50:?}"),
            "goal 1 ms".into(),
            p50.as_secs_f64() / 1e-3,
        );
        drop(big);
        std::fs::remove_dir_all(dir).unwrap();
    }

    // Open time of a log with many sealed segments: O(segments) + the active segment's scan.
    let open_total: usize = std::env::var("AZOTH_BENCH_OPEN_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|_| bench)
        .unwrap_or(total);
    let many = root.path().join("many");
    let seg_log = FileLogOptions::default()
        .sync_mode(SyncMode::Never)
        .segment_size(((open_total * EVENT_LEN) as u64 / 64).max(4096))
        .open(&many)
        .unwrap();
    let batch = events(0, BATCH);
    for i in 0..(open_total / BATCH) as u64 {
        seg_log
            .append_batch_with_ids(1 + i * BATCH as u64, &batch)
            .unwrap();
    }
    let stats = seg_log.stats().unwrap();
    let (segs, gib) = (
        stats.file_count,
        stats.total_bytes as f64 / (1u64 << 30) as f64,
    );
    drop(seg_log);
    let mut opens: Vec<Duration> = (0..10)
        .map(|_| {
            let t = Instant::now();
            let l = FileEventLog::open(&many).unwrap();
            let e = t.elapsed();
            drop(l);
            e
        })
        .collect();
    let open_p50 = percentile(&mut opens, 0.5);
    row(
        &format!("open, {segs} segments, {open_total} events ({gib:.2} GiB), p50"),
        format!("{open_p50:?}"),
        "goal 100 ms + active scan".into(),
        open_p50.as_secs_f64() / 0.1,
    );

    for (preallocate, name) in [
        (
            azoth_file::DEFAULT_PREALLOCATE,
            "single append, SyncMode::Always",
        ),
        (0, "single append, SyncMode::Always, preallocate(0)"),
    ] {
        let (mut raw_lat, mut ours_lat) = sync_latencies(root.path(), sync_n, preallocate);
        for (label, p) in [("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999), ("max", 1.0)] {
            let (raw, ours) = (percentile(&mut raw_lat, p), percentile(&mut ours_lat, p));
            row(
                &format!("{name}, {label}"),
                format!("{ours:?}"),
                format!("{raw:?} (raw write + fdatasync)"),
                ours.as_secs_f64() / raw.as_secs_f64(),
            );
        }
    }
}
