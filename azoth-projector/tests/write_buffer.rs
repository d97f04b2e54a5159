//! The database over a file log that gathers its events in memory (`Config::log_write_buffer`):
//! every acknowledged write is read back, streamed, subscribed to, verified and reopened.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use azoth_core::{DatabaseEvent, Operation, SyncMode};
use azoth_projector::{Config, Database, SubscribeFrom};

fn config(dir: &std::path::Path) -> Config {
    Config::new(dir)
        .sync_mode(SyncMode::Never)
        .segment_size(32 * 1024)
        .log_write_buffer(8 * 1024)
}

#[test]
fn gathered_events_are_seen_everywhere_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(config(dir.path())).unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&seen);
    db.subscribe(
        "counter",
        move |_: &DatabaseEvent| {
            count.fetch_add(1, Ordering::Relaxed);
            Ok(())
        },
        SubscribeFrom::Beginning,
    )
    .unwrap();
    let mut written = 0u64;
    for round in 0..40u64 {
        for i in 0..25u64 {
            let k = format!("k{round}-{i}");
            db.put(k.as_bytes(), k.as_bytes()).unwrap();
            written += 1;
        }
        let ops = (0..30u64)
            .map(|i| Operation::Put {
                key: format!("b{round}-{i}").into_bytes(),
                value: vec![b'v'; 40],
            })
            .collect();
        written += db.batch(ops).unwrap().len() as u64;
        // Reads of the log see every acknowledged event, gathered or not.
        assert_eq!(db.events_since(0).unwrap().count() as u64, written);
    }
    assert!(db.verify().unwrap().is_ok());
    while seen.load(Ordering::Relaxed) < written {
        std::thread::yield_now();
    }
    db.close().unwrap();
    let db = Database::open_with(config(dir.path())).unwrap();
    assert_eq!(db.events_since(0).unwrap().count() as u64, written);
    for round in 0..40u64 {
        let k = format!("k{round}-24");
        assert_eq!(db.get(k.as_bytes()).unwrap().as_deref(), Some(k.as_bytes()));
        assert_eq!(
            db.get(format!("b{round}-29").as_bytes()).unwrap(),
            Some(vec![b'v'; 40])
        );
    }
    assert!(db.verify().unwrap().is_ok());
    db.rebuild_view().unwrap();
    assert_eq!(db.scan_prefix(b"b").unwrap().len(), 40 * 30);
}
