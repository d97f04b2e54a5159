//! Subscription benchmarks: live delivery latency from commit to handler (p50/p99),
//! catch-up speed from the log, and writer throughput with 0, 1 and 16 subscribers, with
//! the writer alone as the baseline in the same run.
//!
//! `cargo bench -p azoth-projector --bench subscriptions`
//!
//! Environment: `AZOTH_SUB_BENCH_EVENTS` (events per case, default 200 000),
//! `AZOTH_SUB_BENCH_CATCHUP` (events in the log for the catch-up case, default 1 000 000).
//! The log is the file log under the target directory with `SyncMode::Never`, so the figures
//! are of the subscription machinery, not of fsync (with `Always`, a sync dominates every
//! commit and subscribers are invisible next to it). Keys are 16 bytes, values 100 bytes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use azoth_core::{DatabaseEvent, Operation};
use azoth_projector::{Config, Database, SubscribeFrom, SubscriptionConfig, SyncMode};

const VALUE: [u8; 100] = [0xAB; 100];

fn key(i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(b"bench:s:");
    k[8..].copy_from_slice(&i.to_be_bytes());
    k
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn open() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let db = Database::open_with(
        Config::new(dir.path())
            .sync_mode(SyncMode::Never)
            .subscriptions(
                SubscriptionConfig::default().checkpoint_every(1 << 20, Duration::from_secs(1)),
            ),
    )
    .unwrap();
    (dir, db)
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn wait_for(counter: &AtomicU64, target: u64) {
    while counter.load(Ordering::Acquire) < target {
        std::hint::spin_loop();
        std::thread::yield_now();
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Commit → handler: the event's commit timestamp (taken by the writer under its clock, in
/// µs of the system clock) against the clock in the handler. One writer, one event at a
/// time, waiting for delivery before the next (no queueing): the latency of the path.
fn live_latency(events: u64) -> (u64, u64, u64) {
    let (_dir, db) = open();
    let latencies = Arc::new(parking_lot::Mutex::new(Vec::with_capacity(events as usize)));
    let seen = Arc::new(AtomicU64::new(0));
    let (sink, count) = (Arc::clone(&latencies), Arc::clone(&seen));
    db.subscribe(
        "latency",
        move |e: &DatabaseEvent| {
            let now = now_micros();
            sink.lock()
                .push(now.saturating_sub(e.operation_id().timestamp));
            count.fetch_add(1, Ordering::Release);
            Ok(())
        },
        SubscribeFrom::Now,
    )
    .unwrap();
    for i in 0..events {
        db.put(&key(i), &VALUE).unwrap();
        wait_for(&seen, i + 1);
    }
    db.unsubscribe("latency").unwrap();
    let mut all = latencies.lock().clone();
    all.sort_unstable();
    (
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        percentile(&all, 0.999),
    )
}

/// Events per second a subscription from the beginning reads from the log and hands to a
/// counting handler, the log written beforehand in batches of 1000; and, as the baseline,
/// events per second of `events_since` read and decoded on the calling thread.
fn catch_up(events: u64) -> (f64, f64) {
    let (_dir, db) = open();
    let mut i = 0;
    while i < events {
        let n = (events - i).min(1000);
        let ops = (i..i + n)
            .map(|j| Operation::Put {
                key: key(j).to_vec(),
                value: VALUE.to_vec(),
            })
            .collect();
        db.batch(ops).unwrap();
        i += n;
    }
    // Flushed first, so that the background flush of the memtable just filled does not
    // compete with the reads measured here for the CPU (on 2 cores it halved them).
    db.flush().unwrap();
    // The baseline in the same run: the log read and decoded on this thread, no handler.
    let started = Instant::now();
    let mut read = 0u64;
    for item in db.events_since(0).unwrap() {
        item.unwrap();
        read += 1;
    }
    assert_eq!(read, events);
    let raw = events as f64 / started.elapsed().as_secs_f64();
    let seen = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&seen);
    let started = Instant::now();
    db.subscribe(
        "catch-up",
        move |_: &DatabaseEvent| {
            count.fetch_add(1, Ordering::Release);
            Ok(())
        },
        SubscribeFrom::Beginning,
    )
    .unwrap();
    wait_for(&seen, events);
    let elapsed = started.elapsed();
    db.unsubscribe("catch-up").unwrap();
    (events as f64 / elapsed.as_secs_f64(), raw)
}

/// Puts per second of 4 writer threads (group commit) with `subscribers` counting
/// subscriptions attached; the clock stops when the writers are done (subscribers may
/// still be catching up; they are waited for afterwards, untimed, to check they got it all).
fn writer_throughput(events: u64, subscribers: usize) -> f64 {
    let (_dir, db) = open();
    let counters: Vec<Arc<AtomicU64>> = (0..subscribers)
        .map(|n| {
            let seen = Arc::new(AtomicU64::new(0));
            let count = Arc::clone(&seen);
            db.subscribe(
                &format!("sub{n}"),
                move |_: &DatabaseEvent| {
                    count.fetch_add(1, Ordering::Release);
                    Ok(())
                },
                SubscribeFrom::Now,
            )
            .unwrap();
            seen
        })
        .collect();
    let threads = 4u64;
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let db = db.clone();
            s.spawn(move || {
                for i in 0..events / threads {
                    db.put(&key(t << 40 | i), &VALUE).unwrap();
                }
            });
        }
    });
    let elapsed = started.elapsed();
    let total = events / threads * threads;
    for c in &counters {
        wait_for(c, total);
    }
    db.close().unwrap();
    total as f64 / elapsed.as_secs_f64()
}

fn main() {
    let events = env("AZOTH_SUB_BENCH_EVENTS", 200_000);
    let catch_up_events = env("AZOTH_SUB_BENCH_CATCHUP", 1_000_000);

    let latency_events = events.min(50_000);
    let (p50, p99, p999) = live_latency(latency_events);
    println!(
        "live delivery, commit -> handler ({latency_events} events, one at a time): p50 {p50} µs, p99 {p99} µs, p99.9 {p999} µs"
    );

    let (rate, raw) = catch_up(catch_up_events);
    println!(
        "catch-up from the log ({catch_up_events} events): {:.2} M events/s (baseline: events_since read + decode {:.2} M events/s)",
        rate / 1e6,
        raw / 1e6
    );

    // A warm-up round first (the first database of a run pays for cold files), then the
    // cases in turn, twice, keeping each one's best, so they share the machine's state.
    writer_throughput(events, 0);
    let mut best = [0f64; 3];
    for _ in 0..2 {
        for (slot, subs) in [0usize, 1, 16].into_iter().enumerate() {
            best[slot] = best[slot].max(writer_throughput(events, subs));
        }
    }
    let base = best[0];
    println!(
        "writer throughput, 4 threads, 0 subscribers: {:.0} puts/s (baseline)",
        base
    );
    for (slot, subs) in [(1usize, 1usize), (2, 16)] {
        let t = best[slot];
        println!(
            "writer throughput, 4 threads, {subs} subscribers: {:.0} puts/s ({:.0} % of the baseline)",
            t,
            100.0 * t / base
        );
    }
}
