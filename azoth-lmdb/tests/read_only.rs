//! Read-only access beside a writer in the same process (the environment is shared, since
//! LMDB forbids opening it twice), `LmdbStoreSnapshot`'s pinned point in time, and
//! `LmdbEventLog::copy_to` while appends go on.

use std::sync::Arc;

use azoth_core::{
    AzothError, CanonicalStore, EventLog, OperationId, StoreBatch, StoreWrite, SyncMode,
};
use azoth_lmdb::{LmdbEventLog, LmdbLogOptions, LmdbStore, LmdbStoreSnapshot};

fn put(key: &str, seq: u64) -> StoreBatch {
    StoreBatch {
        writes: vec![StoreWrite {
            key: key.as_bytes().to_vec(),
            value: Some(seq.to_le_bytes().to_vec()),
            operation_id: OperationId::new(0, seq),
        }],
        checkpoint: Some(seq),
        metadata: vec![(format!("meta:{key}"), Some(vec![1]))],
    }
}

#[test]
fn a_read_only_log_beside_its_writer_in_one_process_follows_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = LmdbLogOptions::default()
        .sync_mode(SyncMode::Never)
        .open(dir.path())
        .unwrap();
    log.append_batch_with_ids(1, &[b"a".to_vec(), b"b".to_vec()])
        .unwrap();
    let reader = LmdbEventLog::open_read_only(dir.path()).unwrap();
    assert_eq!(reader.newest_event_id().unwrap(), 2);
    log.append_with_id(3, b"c").unwrap();
    assert_eq!(reader.newest_event_id().unwrap(), 3);
    assert_eq!(reader.get(3).unwrap().as_deref(), Some(&b"c"[..]));
    assert!(matches!(
        reader.append_with_id(4, b"x"),
        Err(AzothError::ReadOnly)
    ));
    // A second writer is still refused, shared environment or not.
    assert!(matches!(
        LmdbEventLog::open(dir.path()),
        Err(AzothError::Locked { .. })
    ));
    drop(log);
    // The reader outlives the writer.
    assert_eq!(reader.newest_event_id().unwrap(), 3);
    assert!(reader.verify().unwrap().is_ok());
}

#[test]
fn a_snapshot_reads_one_point_in_time_from_any_thread() {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbStore::open(dir.path()).unwrap();
    for (i, key) in ["a", "b", "c"].iter().enumerate() {
        store.apply(&put(key, i as u64 + 1)).unwrap();
    }
    let snapshot = Arc::new(LmdbStoreSnapshot::open(dir.path()).unwrap());
    store.apply(&put("d", 4)).unwrap();
    store
        .apply(&StoreBatch {
            writes: vec![StoreWrite {
                key: b"a".to_vec(),
                value: None,
                operation_id: OperationId::new(0, 5),
            }],
            checkpoint: Some(5),
            metadata: vec![],
        })
        .unwrap();
    assert_eq!(store.checkpoint().unwrap(), 5);
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let snapshot = Arc::clone(&snapshot);
            std::thread::spawn(move || {
                assert_eq!(snapshot.checkpoint().unwrap(), 3);
                assert!(snapshot.get(b"a").unwrap().is_some());
                assert!(snapshot.get(b"d").unwrap().is_none());
                let keys: Vec<Vec<u8>> = snapshot
                    .range(None, None)
                    .unwrap()
                    .map(|r| r.unwrap().0)
                    .collect();
                assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
            })
        })
        .collect();
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!(snapshot.list_metadata("meta:").unwrap().len(), 3);
    assert_eq!(snapshot.stats().unwrap().entries, 3);
    assert!(matches!(
        snapshot.apply(&put("e", 6)),
        Err(AzothError::ReadOnly)
    ));
    assert!(matches!(snapshot.compact(), Err(AzothError::ReadOnly)));
    // A compaction moves the store to a new environment; a new snapshot follows it.
    store.compact().unwrap();
    let fresh = LmdbStoreSnapshot::open(dir.path()).unwrap();
    assert_eq!(fresh.generation(), snapshot.generation() + 1);
    assert_eq!(fresh.checkpoint().unwrap(), 5);
    assert_eq!(
        snapshot.checkpoint().unwrap(),
        3,
        "the old one still reads its point"
    );
    assert!(matches!(
        LmdbStoreSnapshot::open(dir.path().join("nothing")),
        Err(AzothError::NotFound(_))
    ));
}

#[test]
fn a_copy_taken_while_appending_is_a_whole_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(
        LmdbLogOptions::default()
            .sync_mode(SyncMode::Never)
            .open(dir.path().join("live"))
            .unwrap(),
    );
    log.append_with_id(1, b"first").unwrap();
    let writer = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            for id in 2..2000u64 {
                log.append_with_id(id, format!("event {id}").as_bytes())
                    .unwrap();
            }
        })
    };
    let copy_dir = dir.path().join("copy");
    let written = log.copy_to(&copy_dir).unwrap();
    assert!(!written.is_empty());
    writer.join().unwrap();
    assert!(matches!(log.copy_to(&copy_dir), Err(AzothError::Config(_))));
    let copy = LmdbEventLog::open(&copy_dir).unwrap();
    assert!(copy.verify().unwrap().is_ok());
    let newest = copy.newest_event_id().unwrap();
    assert!(newest >= 1);
    for id in 1..=newest {
        assert_eq!(copy.get(id).unwrap(), log.get(id).unwrap());
    }
    // The copy is a log of its own that goes on from where it ends.
    copy.append_with_id(newest + 1, b"next").unwrap();
}
