//! The database contract of DESIGN.md, every test body run against every backend
//! combination (a failure names the backend in the test path).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use azoth_core::{
    AzothError, DatabaseEvent, MAX_KEY_LEN, MemoryEventLog, MemoryStore, Operation, SyncMode,
};
use azoth_projector::{
    Config, Database, LogBackend, ProjectionContext, StoreBackend, decode_payload,
};

/// How a suite opens its database in a directory.
type Opener = fn(&Path, Config) -> Database;

fn open_dir(_: &Path, config: Config) -> Database {
    Database::open_with(config).unwrap()
}

fn base(dir: &Path) -> Config {
    Config::new(dir).sync_mode(SyncMode::Never)
}

/// Registers the bank-like projection used by several tests: `Credited` adds the payload
/// (a u64) to `balance:<kind suffix>`.
fn with_projection(config: Config) -> Config {
    config.projection(
        |kind: &str, payload: &[u8], view: &mut ProjectionContext<'_>| {
            if let Some(account) = kind.strip_prefix("Credited:") {
                let amount: u64 = decode_payload(payload)?;
                let key = format!("balance:{account}");
                let old = view
                    .get(key.as_bytes())?
                    .map(|v| u64::from_le_bytes(v.try_into().unwrap_or([0; 8])))
                    .unwrap_or(0);
                view.put(key.as_bytes(), &(old + amount).to_le_bytes())?;
            }
            if kind == "Fail" {
                return Err(AzothError::Config("refused".into()));
            }
            if kind == "Panic" {
                panic!("the projection cannot take {} bytes", payload.len());
            }
            Ok(())
        },
    )
}

fn all_live(db: &Database) -> BTreeMap<Vec<u8>, Vec<u8>> {
    db.scan(None, None)
        .unwrap()
        .into_iter()
        .map(|e| (e.key, e.value.unwrap()))
        .collect()
}

mod bodies {
    use super::*;

    pub fn put_get_delete(cfg: fn(&Path) -> Config, open: Opener) {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path(), cfg(dir.path()));
        let id = db.put(b"a", b"1").unwrap();
        assert_eq!(id.sequence, 1);
        assert_eq!(db.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
        let entry = db.get_entry(b"a").unwrap().unwrap();
        assert_eq!(entry.operation_id, id);
        assert!(!entry.is_deleted);
        assert!(db.exists(b"a").unwrap());
        let del = db.delete(b"a").unwrap();
        assert_eq!(del.sequence, 2);
        assert_eq!(db.get(b"a").unwrap(), None);
        assert!(!db.exists(b"a").unwrap());
        assert_eq!(db.get_entry(b"a").unwrap(), None);
        // Deleting a missing key succeeds and is logged.
        assert_eq!(db.delete(b"never").unwrap().sequence, 3);
        assert_eq!(db.get(b"missing").unwrap(), None);
    }

    pub fn ids_are_dense_and_ordered(cfg: fn(&Path) -> Config, open: Opener) {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path(), cfg(dir.path()));
        let mut last = None;
        for i in 0..50u32 {
            let id = db.put(&i.to_be_bytes(), b"v").unwrap();
            if let Some(prev) = last {
                assert!(id > prev);
                assert_eq!(id.sequence, u64::from(i) + 1);
            }
            last = Some(id);
        }
        let events = db.get_events().unwrap();
        assert_eq!(events.len(), 50);
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e.event_id(), i as u64 + 1);
        }
        assert!(
            events
                .windows(2)
                .all(|w| w[0].operation_id().timestamp <= w[1].operation_id().timestamp)
        );
    }

    pub fn scans_merge_memtable_and_store(cfg: fn(&Path) -> Config, open: Opener) {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path(), cfg(dir.path()));
        for k in ["p:1", "p:2", "p:3", "q:1", "o:9"] {
            db.put(k.as_bytes(), k.as_bytes()).unwrap();
        }
        db.flush().unwrap();
        // Newer state in the memtable over the store: an overwrite, a tombstone, a new key.
        db.put(b"p:2", b"two").unwrap();
        db.delete(b"p:3").unwrap();
        db.put(b"p:0", b"zero").unwrap();
        let got = db.scan_prefix(b"p:").unwrap();
        let want: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (b"p:0".to_vec(), b"zero".to_vec()),
            (b"p:1".to_vec(), b"p:1".to_vec()),
            (b"p:2".to_vec(), b"two".to_vec()),
        ];
        assert_eq!(got, want);
        let range: Vec<_> = db
            .scan(Some(b"o"), Some(b"p:2"))
            .unwrap()
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(
            range,
            vec![b"o:9".to_vec(), b"p:0".to_vec(), b"p:1".to_vec()]
        );
        let lazy: Vec<_> = db
            .range(None, None)
            .unwrap()
            .map(|e| e.unwrap().key)
            .collect();
        assert_eq!(lazy.len(), 5);
        assert!(lazy.windows(2).all(|w| w[0] < w[1]));
        assert!(db.scan(Some(b"z"), Some(b"a")).unwrap().is_empty());
        assert_eq!(db.scan_prefix(b"").unwrap().len(), 5);
        // After a flush the same answers come from the store alone.
        db.flush().unwrap();
        assert_eq!(db.scan_prefix(b"p:").unwrap(), want);
        assert_eq!(db.stats().unwrap().memtable_entries, 0);
    }

    pub fn batches_are_atomic(cfg: fn(&Path) -> Config, open: Opener) {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path(), cfg(dir.path()));
        let ids = db
            .batch(vec![
                Operation::Put {
                    key: b"x".to_vec(),
                    value: b"1".to_vec(),
                },
                Operation::Put {
                    key: b"y".to_vec(),
                    value: b"2".to_vec(),
                },
                Operation::Delete { key: b"x".to_vec() },
            ])
            .unwrap();
        assert_eq!(
            ids.iter().map(|i| i.sequence).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert!(ids.iter().all(|i| i.timestamp == ids[0].timestamp));
        assert_eq!(db.get(b"x").unwrap(), None);
        assert_eq!(db.get(b"y").unwrap().as_deref(), Some(&b"2"[..]));
        // One bad operation refuses the whole batch.
        let err = db
            .batch(vec![
                Operation::Put {
                    key: b"z".to_vec(),
                    value: b"1".to_vec(),
                },
                Operation::Put {
                    key: Vec::new(),
                    value: b"1".to_vec(),
                },
            ])
            .unwrap_err();
        assert!(matches!(err, AzothError::EmptyKey));
        assert_eq!(db.get(b"z").unwrap(), None);
        assert!(db.batch(Vec::new()).unwrap().is_empty());
        assert_eq!(db.put(b"w", b"").unwrap().sequence, 4);
    }

    pub fn reopen_sees_everything(cfg: fn(&Path) -> Config, open: Opener) {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = open(dir.path(), cfg(dir.path()));
            db.put(b"flushed", b"1").unwrap();
            db.flush().unwrap();
            db.put(b"replayed", b"2").unwrap();
            db.delete(b"flushed").unwrap();
            // Dropped without close: the drop closes.
        }
        let db = open(dir.path(), cfg(dir.path()));
        assert_eq!(db.get(b"flushed").unwrap(), None);
        assert_eq!(db.get(b"replayed").unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(db.put(b"next", b"3").unwrap().sequence, 4);
        db.close().unwrap();
        let db = open(dir.path(), cfg(dir.path()));
        assert_eq!(all_live(&db).len(), 2);
        let stats = db.stats().unwrap();
        assert_eq!(stats.log.newest_event_id, 4);
    }

    pub fn events_since_is_strictly_after(cfg: fn(&Path) -> Config, open: Opener) {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path(), cfg(dir.path()));
        let a = db.put(b"a", b"1").unwrap();
        let b = db.append_event("Note", b"hello").unwrap();
        let c = db.delete(b"a").unwrap();
        let after_a = db.get_events_since(a).unwrap();
        assert_eq!(after_a.len(), 2);
        assert!(
            matches!(&after_a[0], DatabaseEvent::AppEvent { kind, payload, operation_id }
            if kind == "Note" && payload == b"hello" && *operation_id == b)
        );
        assert!(matches!(&after_a[1], DatabaseEvent::WriteEvent {
            operation: Operation::Delete { .. }, operation_id } if *operation_id == c));
        assert!(db.get_events_since(c).unwrap().is_empty());
        let lazy: Vec<_> = db.events_since(1).unwrap().map(|r| r.unwrap().0).collect();
        assert_eq!(lazy, vec![2, 3]);
        assert_eq!(db.events_since(0).unwrap().count(), 3);
    }

    pub fn bad_input_is_refused(cfg: fn(&Path) -> Config, open: Opener) {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path(), cfg(dir.path()).max_value_len(100));
        assert!(matches!(db.put(b"", b"v"), Err(AzothError::EmptyKey)));
        assert!(matches!(db.delete(b""), Err(AzothError::EmptyKey)));
        let long = vec![7u8; MAX_KEY_LEN + 1];
        assert!(matches!(
            db.put(&long, b"v"),
            Err(AzothError::KeyTooLarge { len: 512, max: 511 })
        ));
        assert!(matches!(
            db.delete(&long),
            Err(AzothError::KeyTooLarge { .. })
        ));
        assert!(db.put(&long[..MAX_KEY_LEN], b"v").is_ok());
        assert!(matches!(
            db.put(b"k", &[0; 101]),
            Err(AzothError::ValueTooLarge { len: 101, max: 100 })
        ));
        assert!(db.put(b"k", &[0; 100]).is_ok());
        // Nothing of the refused calls was written.
        assert_eq!(db.get_events().unwrap().len(), 2);
        db.close().unwrap();
        db.close().unwrap();
        assert!(matches!(db.put(b"k", b"v"), Err(AzothError::Closed)));
        assert!(matches!(db.get(b"k"), Err(AzothError::Closed)));
        assert!(matches!(db.scan(None, None), Err(AzothError::Closed)));
        assert!(matches!(db.flush(), Err(AzothError::Closed)));
        assert!(matches!(db.stats(), Err(AzothError::Closed)));
        assert!(matches!(db.append_event("k", b""), Err(AzothError::Closed)));
        assert!(matches!(db.events_since(0).err(), Some(AzothError::Closed)));
    }

    pub fn read_your_writes_from_8_threads(cfg: fn(&Path) -> Config, open: Opener) {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path(), cfg(dir.path()).memtable_size(64 << 10));
        std::thread::scope(|s| {
            for t in 0..8u32 {
                let db = db.clone();
                s.spawn(move || {
                    for i in 0..200u32 {
                        let key = format!("t{t}:{i:04}");
                        let id = db.put(key.as_bytes(), &i.to_le_bytes()).unwrap();
                        // Seen at once, by this handle and by a fresh clone.
                        let other = db.clone();
                        let entry = other.get_entry(key.as_bytes()).unwrap().unwrap();
                        assert_eq!(entry.operation_id, id);
                        if i % 50 == 0 {
                            db.flush().unwrap();
                        }
                    }
                });
            }
        });
        assert_eq!(db.scan_prefix(b"t").unwrap().len(), 1600);
        let ids: Vec<_> = db
            .get_events()
            .unwrap()
            .iter()
            .map(|e| e.event_id())
            .collect();
        assert_eq!(ids, (1..=1600).collect::<Vec<_>>());
        let stats = db.stats().unwrap();
        assert_eq!(stats.requests_committed, 1600);
        assert!(stats.groups_committed >= 1 && stats.groups_committed <= 1600);
        assert!(stats.mean_group_size >= 1.0);
    }

    pub fn projections_replay_and_rebuild(cfg: fn(&Path) -> Config, open: Opener) {
        let dir = tempfile::tempdir().unwrap();
        let config = || with_projection(cfg(dir.path()));
        let before;
        {
            let db = open(dir.path(), config());
            db.append_typed("Credited:ada", &10u64).unwrap();
            db.put(b"plain", b"x").unwrap();
            db.flush().unwrap();
            db.append_typed("Credited:ada", &5u64).unwrap();
            // Two events of one batch of concurrent writers see each other's effects.
            std::thread::scope(|s| {
                for _ in 0..4 {
                    let db = db.clone();
                    s.spawn(move || db.append_typed("Credited:bob", &1u64).unwrap());
                }
            });
            // A projection error refuses that event only.
            assert!(matches!(
                db.append_event("Fail", b""),
                Err(AzothError::Config(_))
            ));
            // A projection's panic refuses that event too, with its own error and message.
            match db.append_event("Panic", b"xyz") {
                Err(AzothError::ProjectionPanicked { kind, detail }) => {
                    assert_eq!(kind, "Panic");
                    assert_eq!(detail, "the projection cannot take 3 bytes");
                }
                other => panic!("expected ProjectionPanicked, got {other:?}"),
            }
            assert_eq!(db.get_events().unwrap().len(), 7);
            before = all_live(&db);
            assert_eq!(before[&b"balance:ada".to_vec()], 15u64.to_le_bytes());
            assert_eq!(before[&b"balance:bob".to_vec()], 4u64.to_le_bytes());
            // No close: the drop closes, and the reopen replays nothing or the tail.
        }
        let db = open(dir.path(), config());
        assert_eq!(all_live(&db), before);
        db.rebuild_view().unwrap();
        assert_eq!(all_live(&db), before);
        db.append_typed("Credited:ada", &1u64).unwrap();
        db.rebuild_view().unwrap();
        assert_eq!(
            db.get(b"balance:ada").unwrap().unwrap(),
            16u64.to_le_bytes()
        );
        drop(db);
        let db = open(dir.path(), config());
        assert_eq!(
            db.get(b"balance:ada").unwrap().unwrap(),
            16u64.to_le_bytes()
        );
        assert_eq!(db.get(b"plain").unwrap().as_deref(), Some(&b"x"[..]));
    }

    pub fn compact_stats_verify(cfg: fn(&Path) -> Config, open: Opener) {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path(), cfg(dir.path()));
        for i in 0..100u32 {
            db.put(&i.to_be_bytes(), &[1; 100]).unwrap();
            db.get(&i.to_be_bytes()).unwrap();
        }
        db.compact().unwrap();
        let last = db.get_events().unwrap().pop().unwrap();
        assert!(matches!(
            last,
            DatabaseEvent::CompactionEvent { level: 0, .. }
        ));
        let stats = db.stats().unwrap();
        assert_eq!(stats.log.newest_event_id, 101);
        assert_eq!(stats.checkpoint, 100);
        assert_eq!(stats.store.entries, 100);
        assert_eq!(stats.write_latency.count, 101);
        assert_eq!(stats.read_latency.count, 100);
        assert!(stats.write_latency.p50_us > 0.0);
        assert!(stats.write_latency.p50_us <= stats.write_latency.p99_us);
        // Each thread's first call is timed, so the sample is never empty here.
        assert!(stats.write_latency.timed >= 1, "{:?}", stats.write_latency);
        assert!(
            stats.write_latency.sum_us > 0.0,
            "{:?}",
            stats.write_latency
        );
        let text = db.metrics_text().unwrap();
        assert!(text.contains("azoth_log_newest_event_id 101"));
        assert!(text.contains("azoth_write_calls_total 101\n"), "{text}");
        assert!(
            text.contains(&format!(
                "azoth_write_latency_seconds_count {}\n",
                stats.write_latency.timed
            )),
            "{text}"
        );
        assert!(db.verify().unwrap().is_ok());
    }

    /// A memtable size near `usize::MAX` (no flush by size) is taken as it is: the flush
    /// thresholds derived from it do not overflow, on open, on replay or after a group.
    pub fn a_memtable_size_near_the_limit_never_overflows(cfg: fn(&Path) -> Config, open: Opener) {
        for size in [usize::MAX, usize::MAX / 2 + 1, usize::MAX / 4 + 1] {
            let dir = tempfile::tempdir().unwrap();
            let db = open(
                dir.path(),
                cfg(dir.path()).memtable_size(size).flush_interval(None),
            );
            for i in 0..100u32 {
                db.put(&i.to_be_bytes(), &[7; 64]).unwrap();
            }
            assert_eq!(db.scan(None, None).unwrap().len(), 100);
            // Nothing reached the size, so nothing was flushed by it.
            assert_eq!(db.stats().unwrap().flushes, 0, "memtable size {size}");
            assert!(db.verify_view().unwrap().is_ok());
            db.close().unwrap();
        }
    }

    pub fn read_auditing_logs_reads(cfg: fn(&Path) -> Config, open: Opener) {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path(), cfg(dir.path()).read_auditing(true));
        db.put(b"k", b"v").unwrap();
        db.get(b"k").unwrap();
        let events = db.get_events().unwrap();
        assert!(matches!(&events[1], DatabaseEvent::ReadEvent { key, .. } if key == b"k"));
    }
}

fn custom_open(_: &Path, config: Config) -> Database {
    Database::open_with_backends(
        config,
        Arc::new(MemoryEventLog::new()),
        Arc::new(MemoryStore::new()),
    )
    .unwrap()
}

macro_rules! suite {
    ($name:ident, $cfg:expr, $open:expr) => {
        mod $name {
            use super::*;
            const CFG: fn(&Path) -> Config = $cfg;
            const OPEN: Opener = $open;
            #[test]
            fn put_get_delete() {
                bodies::put_get_delete(CFG, OPEN)
            }
            #[test]
            fn ids_are_dense_and_ordered() {
                bodies::ids_are_dense_and_ordered(CFG, OPEN)
            }
            #[test]
            fn scans_merge_memtable_and_store() {
                bodies::scans_merge_memtable_and_store(CFG, OPEN)
            }
            #[test]
            fn batches_are_atomic() {
                bodies::batches_are_atomic(CFG, OPEN)
            }
            #[test]
            fn events_since_is_strictly_after() {
                bodies::events_since_is_strictly_after(CFG, OPEN)
            }
            #[test]
            fn bad_input_is_refused() {
                bodies::bad_input_is_refused(CFG, OPEN)
            }
            #[test]
            fn read_your_writes_from_8_threads() {
                bodies::read_your_writes_from_8_threads(CFG, OPEN)
            }
            #[test]
            fn compact_stats_verify() {
                bodies::compact_stats_verify(CFG, OPEN)
            }
            #[test]
            fn read_auditing_logs_reads() {
                bodies::read_auditing_logs_reads(CFG, OPEN)
            }
            #[test]
            fn a_memtable_size_near_the_limit_never_overflows() {
                bodies::a_memtable_size_near_the_limit_never_overflows(CFG, OPEN)
            }
        }
    };
}

macro_rules! durable_suite {
    ($name:ident, $cfg:expr) => {
        mod $name {
            use super::*;
            const CFG: fn(&Path) -> Config = $cfg;
            #[test]
            fn reopen_sees_everything() {
                bodies::reopen_sees_everything(CFG, open_dir)
            }
            #[test]
            fn projections_replay_and_rebuild() {
                bodies::projections_replay_and_rebuild(CFG, open_dir)
            }
            #[test]
            fn second_open_is_locked() {
                let dir = tempfile::tempdir().unwrap();
                let db = open_dir(dir.path(), CFG(dir.path()));
                assert!(matches!(
                    Database::open_with(CFG(dir.path())),
                    Err(AzothError::Locked { .. })
                ));
                // Close releases the lock even while this handle lives on.
                db.close().unwrap();
                let again = Database::open_with(CFG(dir.path())).unwrap();
                again.put(b"k", b"v").unwrap();
            }
        }
    };
}

suite!(file_lmdb, |d| base(d), open_dir);
suite!(
    file_memory,
    |d| base(d).store_backend(StoreBackend::Memory),
    open_dir
);
suite!(
    lmdb_lmdb,
    |d| base(d).log_backend(LogBackend::Lmdb),
    open_dir
);
suite!(
    lmdb_memory,
    |d| base(d)
        .log_backend(LogBackend::Lmdb)
        .store_backend(StoreBackend::Memory),
    open_dir
);
suite!(memory_log_custom, |d| base(d), custom_open);
durable_suite!(file_lmdb_durable, |d| base(d));
durable_suite!(file_memory_durable, |d| base(d)
    .store_backend(StoreBackend::Memory));
durable_suite!(file_lmdb_always, |d| base(d)
    .sync_mode(SyncMode::Always)
    .log_backend(LogBackend::File));

/// Appends an application event straight to the file log of the database in `dir`, as a
/// crashed process leaves one: in the log, not yet in the view.
fn append_unflushed_app_event(dir: &Path, kind: &str, amount: u64) {
    use azoth_core::EventLog;
    let log = azoth_file::FileLogOptions::default()
        .sync_mode(SyncMode::Never)
        .open(dir.join("log"))
        .unwrap();
    let next = log.next_event_id().unwrap();
    let event = azoth_core::DatabaseEvent::AppEvent {
        kind: kind.to_owned(),
        payload: rmp_serde::to_vec(&amount).unwrap(),
        operation_id: azoth_core::OperationId::new(1, next),
    };
    log.append_batch_with_ids(next, &[azoth_core::encode_event(&event).unwrap()])
        .unwrap();
    log.sync().unwrap();
}

/// A log an earlier build wrote (event envelope version 1, variants by name) opens, replays
/// and rebuilds as it did, beside events this build writes (version 2).
#[test]
fn events_of_envelope_version_1_replay_and_rebuild() {
    use azoth_core::{EventLog, OperationId};
    let dir = tempfile::tempdir().unwrap();
    let with = || with_projection(base(dir.path()));
    let db = Database::open_with(with()).unwrap();
    db.put(b"new", b"version 2").unwrap();
    db.close().unwrap();

    // As an earlier build left its unflushed tail.
    let log = azoth_file::FileLogOptions::default()
        .sync_mode(SyncMode::Never)
        .open(dir.path().join("log"))
        .unwrap();
    let first = log.next_event_id().unwrap();
    let events = [
        DatabaseEvent::WriteEvent {
            operation: Operation::Put {
                key: b"old".to_vec(),
                value: b"version 1".to_vec(),
            },
            operation_id: OperationId::new(1, first),
        },
        DatabaseEvent::WriteEvent {
            operation: Operation::Delete {
                key: b"new".to_vec(),
            },
            operation_id: OperationId::new(1, first + 1),
        },
        DatabaseEvent::AppEvent {
            kind: "Credited:ada".into(),
            payload: rmp_serde::to_vec(&9u64).unwrap(),
            operation_id: OperationId::new(1, first + 2),
        },
    ];
    let version_1: Vec<Vec<u8>> = events
        .iter()
        .map(|e| [vec![1], rmp_serde::to_vec(e).unwrap()].concat())
        .collect();
    log.append_batch_with_ids(first, &version_1).unwrap();
    log.sync().unwrap();
    drop(log);

    let expected: BTreeMap<Vec<u8>, Vec<u8>> = [
        (b"balance:ada".to_vec(), 9u64.to_le_bytes().to_vec()),
        (b"old".to_vec(), b"version 1".to_vec()),
    ]
    .into();
    let db = Database::open_with(with()).unwrap();
    assert_eq!(all_live(&db), expected);
    assert_eq!(db.get_events().unwrap()[1..], events);
    db.rebuild_view().unwrap();
    assert_eq!(all_live(&db), expected);
    assert!(db.verify().unwrap().is_ok());
    db.close().unwrap();
}

/// A view built with projections is not silently changed by an open without them: such an
/// open is refused where it would have to project application events (an unflushed tail
/// holding them, `rebuild_view`, `append_event`), unless the configuration allows it.
#[test]
fn an_open_without_the_views_projections_refuses_to_leave_events_unprojected() {
    let dir = tempfile::tempdir().unwrap();
    let with = || with_projection(base(dir.path()));
    let balance = |db: &Database| {
        db.get(b"balance:ada")
            .unwrap()
            .map(|v| u64::from_le_bytes(v.try_into().unwrap()))
    };
    let db = Database::open_with(with()).unwrap();
    db.append_typed("Credited:ada", &5u64).unwrap();
    db.close().unwrap();

    append_unflushed_app_event(dir.path(), "Credited:ada", 7);
    let refused = Database::open_with(base(dir.path()));
    match refused {
        Err(AzothError::Config(message)) => assert!(message.contains("projection"), "{message}"),
        Err(other) => panic!("expected Config, got {other}"),
        Ok(_) => panic!("an open without projections replayed an application event"),
    }
    // Nothing was flushed without the projection: with it, the event counts.
    let db = Database::open_with(with()).unwrap();
    assert_eq!(balance(&db), Some(12));
    db.close().unwrap();

    // No application event to replay: the open goes on, and refuses to append one.
    let db = Database::open_with(base(dir.path())).unwrap();
    assert_eq!(balance(&db), Some(12));
    db.put(b"plain", b"write").unwrap();
    assert!(matches!(
        db.append_typed("Credited:ada", &1u64),
        Err(AzothError::Config(_))
    ));
    assert!(matches!(db.rebuild_view(), Err(AzothError::Config(_))));
    assert_eq!(balance(&db), Some(12));
    db.close().unwrap();

    // Allowed: the events go in unprojected; a rebuild with the projection brings them back.
    append_unflushed_app_event(dir.path(), "Credited:ada", 100);
    let db = Database::open_with(base(dir.path()).allow_missing_projections(true)).unwrap();
    assert_eq!(balance(&db), Some(12));
    db.append_typed("Credited:ada", &1000u64).unwrap();
    db.close().unwrap();
    let db = Database::open_with(with()).unwrap();
    assert_eq!(balance(&db), Some(12));
    db.rebuild_view().unwrap();
    assert_eq!(balance(&db), Some(1112));
    db.close().unwrap();

    // A database that never had projections opens without them, whatever its log holds.
    let plain = tempfile::tempdir().unwrap();
    let db = Database::open_with(base(plain.path())).unwrap();
    db.append_typed("Credited:ada", &1u64).unwrap();
    db.close().unwrap();
    append_unflushed_app_event(plain.path(), "Credited:ada", 2);
    let db = Database::open_with(base(plain.path())).unwrap();
    assert_eq!(db.get_events().unwrap().len(), 2);
    db.close().unwrap();
}

/// `close` waits for a `rebuild_view` in progress. Otherwise the rebuild would go on after
/// `close` released the directory, and swap its view into a directory another handle may
/// have opened by then.
#[test]
fn close_waits_for_a_rebuild_in_progress() {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::time::Duration;

    // Counts `Seen` events into `seen`; the first `Seen` after `pause` is set stops the
    // replay there (it tells `entered`) until `release` says go on.
    let config = |dir: &Path,
                  pause: Arc<AtomicBool>,
                  entered: crossbeam_channel::Sender<()>,
                  release: crossbeam_channel::Receiver<()>| {
        base(dir).projection(
            move |kind: &str, _: &[u8], view: &mut ProjectionContext<'_>| {
                if kind == "Seen" && pause.swap(false, SeqCst) {
                    let _ = entered.send(());
                    let _ = release.recv();
                }
                let seen = view.get(b"seen")?.map_or(0, |v| v.len());
                view.put(b"seen", &vec![1u8; seen + 1])
            },
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let pause = Arc::new(AtomicBool::new(false));
    let (entered_tx, entered_rx) = crossbeam_channel::bounded(1);
    let (release_tx, release_rx) = crossbeam_channel::bounded(1);
    let db = Database::open_with(config(
        dir.path(),
        Arc::clone(&pause),
        entered_tx,
        release_rx,
    ))
    .unwrap();
    db.append_event("Seen", b"").unwrap();
    db.append_event("Seen", b"").unwrap();
    pause.store(true, SeqCst);
    let rebuild = {
        let db = db.clone();
        std::thread::spawn(move || db.rebuild_view())
    };
    entered_rx.recv().unwrap();
    let closed = Arc::new(AtomicBool::new(false));
    let closer = {
        let (db, closed) = (db.clone(), Arc::clone(&closed));
        std::thread::spawn(move || {
            let result = db.close();
            closed.store(true, SeqCst);
            result
        })
    };
    // Ample time for a close that does not wait to finish.
    std::thread::sleep(Duration::from_millis(300));
    let closed_during_rebuild = closed.load(SeqCst);
    release_tx.send(()).unwrap();
    let rebuilt = rebuild.join().unwrap();
    closer.join().unwrap().unwrap();
    assert!(
        !closed_during_rebuild,
        "close returned while a rebuild was still replaying"
    );
    assert!(
        matches!(rebuilt, Ok(()) | Err(AzothError::Closed)),
        "{rebuilt:?}"
    );

    let (entered_tx, _entered_rx) = crossbeam_channel::bounded(1);
    let (_release_tx, release_rx) = crossbeam_channel::bounded(1);
    let db = Database::open_with(config(
        dir.path(),
        Arc::new(AtomicBool::new(false)),
        entered_tx,
        release_rx,
    ))
    .unwrap();
    assert_eq!(db.get(b"seen").unwrap().map(|v| v.len()), Some(2));
    assert!(db.verify_view().unwrap().is_ok());
    db.close().unwrap();
}
