//! Criterion benches of the hot paths: `put` without sync, `get` from the memtable,
//! `scan_prefix` of 100 entries. The runner (`benches/runner.rs`) has the full table with
//! baselines; these give criterion's statistics for regressions.
//!
//! `cargo bench -p azoth-projector --bench database`

use azoth_core::{Operation, SyncMode};
use azoth_projector::{Config, Database};
use criterion::{Criterion, criterion_group, criterion_main};

fn key(i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(b"bench:k:");
    k[8..].copy_from_slice(&i.to_be_bytes());
    k
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let db = Database::open_with(
        Config::new(dir.path())
            .sync_mode(SyncMode::Never)
            .flush_interval(None),
    )
    .unwrap();
    let value = [0xABu8; 100];
    let mut i = 1u64 << 40;
    c.bench_function("put_sync_never", |b| {
        b.iter(|| {
            i += 1;
            db.put(&key(i), &value).unwrap()
        })
    });
    let ops = (0..10_000)
        .map(|i| Operation::Put {
            key: key(i).to_vec(),
            value: value.to_vec(),
        })
        .collect();
    db.batch(ops).unwrap();
    let mut j = 0u64;
    c.bench_function("get_memtable", |b| {
        b.iter(|| {
            j = (j + 7919) % 10_000;
            db.get(&key(j)).unwrap()
        })
    });
    c.bench_function("scan_prefix_100", |b| {
        b.iter(|| db.scan(Some(&key(500)), Some(&key(600))).unwrap().len())
    });
    db.close().unwrap();
}

criterion_group!(database, benches);
criterion_main!(database);
