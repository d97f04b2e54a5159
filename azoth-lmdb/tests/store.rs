//! Behaviour of `LmdbStore` beyond the shared conformance suite: key limits, map growth,
//! compaction, snapshots and the writer lock.

use azoth_core::{AzothError, CanonicalStore, MAX_KEY_LEN, OperationId, StoreBatch, StoreWrite};
use azoth_lmdb::{LmdbStore, LmdbStoreOptions};

fn put(key: &[u8], value: &[u8], seq: u64) -> StoreWrite {
    StoreWrite {
        key: key.to_vec(),
        value: Some(value.to_vec()),
        operation_id: OperationId::new(1_000 + seq, seq),
    }
}

fn batch(writes: Vec<StoreWrite>) -> StoreBatch {
    StoreBatch {
        writes,
        ..StoreBatch::default()
    }
}

fn keys(iter: azoth_core::StoreIter) -> Vec<Vec<u8>> {
    iter.map(|r| r.unwrap().0).collect()
}

#[test]
fn key_limits_are_checked_before_lmdb() {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbStore::open(dir.path()).unwrap();
    let longest = vec![7u8; MAX_KEY_LEN];
    store.apply(&batch(vec![put(&longest, b"ok", 1)])).unwrap();
    assert_eq!(store.get(&longest).unwrap().unwrap().value, b"ok");

    let too_long = vec![7u8; MAX_KEY_LEN + 1];
    let err = store
        .apply(&batch(vec![put(b"fine", b"x", 2), put(&too_long, b"x", 3)]))
        .unwrap_err();
    assert!(
        matches!(err, AzothError::KeyTooLarge { len, max } if len == MAX_KEY_LEN + 1 && max == MAX_KEY_LEN)
    );
    // Nothing of the refused batch was written.
    assert!(store.get(b"fine").unwrap().is_none());

    let err = store.apply(&batch(vec![put(b"", b"x", 4)])).unwrap_err();
    assert!(matches!(err, AzothError::EmptyKey));
    assert!(store.get(b"").unwrap().is_none());
    assert!(store.get(&too_long).unwrap().is_none());
}

#[test]
fn versions_checkpoint_and_metadata_persist() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = LmdbStore::open(dir.path()).unwrap();
        store
            .apply(&StoreBatch {
                writes: vec![put(b"a", b"1", 1), put(b"b", b"2", 2)],
                checkpoint: Some(2),
                metadata: vec![("sub:x".into(), Some(b"5".to_vec()))],
            })
            .unwrap();
        store
            .apply(&StoreBatch {
                writes: vec![StoreWrite {
                    key: b"a".to_vec(),
                    value: None,
                    operation_id: OperationId::new(9, 3),
                }],
                checkpoint: Some(3),
                metadata: vec![("sub:y".into(), Some(b"6".to_vec()))],
            })
            .unwrap();
    }
    let store = LmdbStore::open(dir.path()).unwrap();
    assert!(store.get(b"a").unwrap().is_none());
    let b = store.get(b"b").unwrap().unwrap();
    assert_eq!(b.value, b"2");
    assert_eq!(b.operation_id, OperationId::new(1_002, 2));
    assert_eq!(store.checkpoint().unwrap(), 3);
    assert_eq!(
        store.list_metadata("sub:").unwrap(),
        vec![
            ("sub:x".to_owned(), b"5".to_vec()),
            ("sub:y".to_owned(), b"6".to_vec())
        ]
    );
    let stats = store.stats().unwrap();
    assert_eq!((stats.entries, stats.checkpoint), (1, 3));
}

#[test]
fn ranges_are_lazy_snapshots_across_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbStore::open(dir.path()).unwrap();
    let writes = (0..1000u32)
        .map(|i| put(format!("k{i:04}").as_bytes(), b"v", u64::from(i) + 1))
        .collect();
    store.apply(&batch(writes)).unwrap();

    let iter = store.range(Some(b"k0100"), Some(b"k0900")).unwrap();
    // A write after the iterator was made is not seen by it, even in later chunks.
    store
        .apply(&batch(vec![put(b"k0500x", b"new", 5000)]))
        .unwrap();
    let seen = keys(iter);
    assert_eq!(seen.len(), 800);
    assert_eq!(seen.first().unwrap(), b"k0100");
    assert_eq!(seen.last().unwrap(), b"k0899");
    assert!(seen.windows(2).all(|w| w[0] < w[1]));

    assert_eq!(keys(store.scan_prefix(b"k05").unwrap()).len(), 101);
    assert!(keys(store.range(Some(b"z"), Some(b"a")).unwrap()).is_empty());
    assert_eq!(keys(store.range(None, None).unwrap()).len(), 1001);
    // The iterator is 'static and Send: it outlives nothing and moves to another thread.
    let iter = store.range(None, Some(b"k0002")).unwrap();
    let n = std::thread::spawn(move || iter.count()).join().unwrap();
    assert_eq!(n, 2);
}

#[test]
fn the_map_grows_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbStoreOptions::default()
        .map_size(1 << 20)
        .open(dir.path())
        .unwrap();
    // An iterator open across the growth keeps reading its snapshot.
    store.apply(&batch(vec![put(b"first", b"1", 1)])).unwrap();
    let mut early = store.range(None, None).unwrap();
    let value = vec![0xAB; 1000];
    let mut seq = 1;
    for round in 0..20u32 {
        let writes = (0..500u32)
            .map(|i| {
                seq += 1;
                put(format!("r{round:02}-{i:04}").as_bytes(), &value, seq)
            })
            .collect();
        store.apply(&batch(writes)).unwrap();
    }
    // ~10 MB written into a 1 MiB map.
    assert_eq!(store.stats().unwrap().entries, 10_001);
    assert_eq!(store.get(b"r19-0499").unwrap().unwrap().value, value);
    assert_eq!(early.next().unwrap().unwrap().0, b"first");
    assert!(early.next().is_none());
    // Iterators own the environment: the last one must go before it can be reopened.
    drop(early);
    drop(store);
    let store = LmdbStore::open(dir.path()).unwrap();
    assert_eq!(store.get(b"r07-0123").unwrap().unwrap().value, value);
}

#[test]
fn the_map_grows_under_apply_sorted_too() {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbStoreOptions::default()
        .map_size(1 << 20)
        .open(dir.path())
        .unwrap();
    let value = vec![0xCD; 1000];
    let mut seq = 0;
    // Appended rounds (each past the last key), then a round among the stored keys.
    for round in (0..20u32).chain([5]) {
        let writes = (0..500u32)
            .map(|i| {
                seq += 1;
                let key = format!(
                    "r{round:02}-{i:04}{}",
                    if round == 5 && seq > 10_000 { "x" } else { "" }
                );
                put(key.as_bytes(), &value, seq)
            })
            .collect();
        store
            .apply_sorted(&azoth_core::testing::store::LentWrites(writes), seq)
            .unwrap();
    }
    assert_eq!(store.stats().unwrap().entries, 10_500);
    assert_eq!(store.checkpoint().unwrap(), 10_500);
    assert_eq!(store.get(b"r19-0499").unwrap().unwrap().value, value);
    assert_eq!(
        store
            .get(b"r05-0007x")
            .unwrap()
            .unwrap()
            .operation_id
            .sequence,
        10_008
    );
    let keys = keys(store.range(None, None).unwrap());
    assert!(keys.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn compaction_gives_space_back_and_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbStore::open(dir.path()).unwrap();
    let value = vec![1u8; 2000];
    let writes = (0..3000u32)
        .map(|i| put(format!("k{i:05}").as_bytes(), &value, u64::from(i) + 1))
        .collect();
    store.apply(&batch(writes)).unwrap();
    let deletes = (0..3000u32)
        .filter(|i| i % 10 != 0)
        .map(|i| StoreWrite {
            key: format!("k{i:05}").into_bytes(),
            value: None,
            operation_id: OperationId::new(0, 10_000 + u64::from(i)),
        })
        .collect();
    store
        .apply(&StoreBatch {
            writes: deletes,
            checkpoint: Some(42),
            metadata: vec![("m".into(), Some(b"x".to_vec()))],
        })
        .unwrap();
    let before = store.stats().unwrap().bytes;
    let old_iter = store.range(None, None).unwrap();
    let reclaimed = store.compact().unwrap();
    assert!(reclaimed > 0, "nothing reclaimed from {before} bytes");
    assert_eq!(store.stats().unwrap().bytes, before - reclaimed);
    // An iterator made before compaction still reads its snapshot.
    assert_eq!(old_iter.count(), 300);
    assert_eq!(store.stats().unwrap().entries, 300);
    assert_eq!(store.checkpoint().unwrap(), 42);
    assert_eq!(store.get_metadata("m").unwrap(), Some(b"x".to_vec()));
    store
        .apply(&batch(vec![put(b"after", b"1", 99_999)]))
        .unwrap();
    drop(store);
    let store = LmdbStore::open(dir.path()).unwrap();
    assert_eq!(store.stats().unwrap().entries, 301);
    assert_eq!(store.get(b"k00010").unwrap().unwrap().value, value);
    assert!(store.get(b"k00011").unwrap().is_none());
    let env_dirs = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("env-")
        })
        .count();
    assert_eq!(env_dirs, 1);
}

#[test]
fn a_second_writer_in_this_process_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbStore::open(dir.path()).unwrap();
    let err = LmdbStore::open(dir.path()).unwrap_err();
    assert!(
        matches!(err, AzothError::Locked { ref path } if path == dir.path()),
        "{err}"
    );
    drop(store);
    LmdbStore::open(dir.path()).unwrap();
}

const CHILD_DIR: &str = "AZOTH_LMDB_STORE_LOCK_CHILD";

/// Run as a child by `a_second_writer_process_is_refused`: tries to open the store.
#[test]
fn lock_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    match LmdbStore::open(&dir) {
        Err(AzothError::Locked { .. }) => std::process::exit(42),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => std::process::exit(0),
    }
}

#[test]
fn a_second_writer_process_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbStore::open(dir.path()).unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "lock_child", "--nocapture"])
        .env(CHILD_DIR, dir.path())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(42));
    drop(store);
}

#[test]
fn readers_on_other_threads_see_every_returned_apply() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(LmdbStore::open(dir.path()).unwrap());
    for seq in 1..=50u64 {
        store
            .apply(&StoreBatch {
                writes: vec![put(b"counter", &seq.to_be_bytes(), seq)],
                checkpoint: Some(seq),
                metadata: vec![],
            })
            .unwrap();
        let reader = std::sync::Arc::clone(&store);
        let seen = std::thread::spawn(move || reader.get(b"counter").unwrap().unwrap().value)
            .join()
            .unwrap();
        assert_eq!(seen, seq.to_be_bytes());
        assert_eq!(
            store
                .get(b"counter")
                .unwrap()
                .unwrap()
                .operation_id
                .sequence,
            seq
        );
    }
}

#[test]
fn the_later_write_of_a_key_wins_in_an_unsorted_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbStore::open(dir.path()).unwrap();
    store
        .apply(&batch(vec![
            put(b"z", b"1", 1),
            put(b"a", b"2", 2),
            put(b"z", b"3", 3),
            StoreWrite {
                key: b"a".to_vec(),
                value: None,
                operation_id: OperationId::new(0, 4),
            },
            put(b"m", b"5", 5),
            put(b"a", b"6", 6),
            put(b"m", b"7", 7),
            StoreWrite {
                key: b"m".to_vec(),
                value: None,
                operation_id: OperationId::new(0, 8),
            },
        ]))
        .unwrap();
    assert_eq!(store.get(b"z").unwrap().unwrap().value, b"3");
    let a = store.get(b"a").unwrap().unwrap();
    assert_eq!(
        (a.value.as_slice(), a.operation_id.sequence),
        (&b"6"[..], 6)
    );
    assert!(store.get(b"m").unwrap().is_none());
}

#[test]
fn a_missing_environment_is_reported_not_recreated() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = LmdbStore::open(dir.path()).unwrap();
        store.apply(&batch(vec![put(b"k", b"v", 1)])).unwrap();
    }
    std::fs::remove_dir_all(dir.path().join("env-00000000000000000000")).unwrap();
    let err = LmdbStore::open(dir.path()).unwrap_err();
    assert!(err.is_corruption(), "{err}");
}

#[test]
fn open_removes_what_an_interrupted_compaction_left() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = LmdbStore::open(dir.path()).unwrap();
        store.apply(&batch(vec![put(b"a", b"1", 1)])).unwrap();
        store.compact().unwrap();
    }
    // A kill while the next compaction switched CURRENT: its temporary file and its copy.
    let tmp = dir.path().join("CURRENT.tmp");
    std::fs::write(&tmp, b"env-000").unwrap();
    let copy = dir.path().join(format!("env-{:020}", 99));
    std::fs::create_dir_all(&copy).unwrap();
    let store = LmdbStore::open(dir.path()).unwrap();
    assert!(!tmp.exists());
    assert!(!copy.exists());
    assert_eq!(store.get(b"a").unwrap().unwrap().value, b"1");
}
