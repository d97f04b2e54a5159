//! The async API: the seed's signatures, over one group-commit queue with blocking callers.

use azoth_core::{AzothError, DatabaseEvent, SyncMode};
use azoth_projector::{AsyncDatabase, Config, Database};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_api_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let db = AsyncDatabase::open(dir.path()).await.unwrap();
    let a = db.put(b"a".to_vec(), b"1".to_vec()).await.unwrap();
    let ids = db
        .batch_put(vec![
            (b"b".to_vec(), b"2".to_vec()),
            (b"c".to_vec(), b"3".to_vec()),
        ])
        .await
        .unwrap();
    assert_eq!(
        ids.iter().map(|i| i.sequence).collect::<Vec<_>>(),
        vec![2, 3]
    );
    let entry = db.get(&b"a".to_vec()).await.unwrap().unwrap();
    assert_eq!(entry.operation_id, a);
    db.delete(b"a".to_vec()).await.unwrap();
    assert!(db.get(&b"a".to_vec()).await.unwrap().is_none());
    db.batch_delete(vec![b"b".to_vec()]).await.unwrap();
    let scan = db.scan(None, None).await.unwrap();
    assert_eq!(scan.len(), 1);
    assert_eq!(scan[0].key, b"c");
    db.flush().await.unwrap();
    db.compact().await.unwrap();
    let events = db.get_events().await.unwrap();
    assert_eq!(events.len(), 6);
    assert!(matches!(
        events[5],
        DatabaseEvent::CompactionEvent { level: 0, .. }
    ));
    assert_eq!(db.get_events_since(a).await.unwrap().len(), 5);
    let stats = db.stats().await.unwrap();
    assert_eq!(stats.log.newest_event_id, 6);
    assert!(matches!(
        db.put(Vec::new(), b"v".to_vec()).await,
        Err(AzothError::EmptyKey)
    ));
    db.close().await.unwrap();
    assert!(matches!(
        db.put(b"k".to_vec(), b"v".to_vec()).await,
        Err(AzothError::Closed)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_async_writers_share_groups_with_blocking_ones() {
    let dir = tempfile::tempdir().unwrap();
    let blocking =
        Database::open_with(Config::new(dir.path()).sync_mode(SyncMode::Always)).unwrap();
    let db = blocking.to_async();
    let mut tasks = Vec::new();
    for t in 0..32u32 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..10u32 {
                let key = format!("t{t}:{i}").into_bytes();
                let id = db.put(key.clone(), vec![1]).await.unwrap();
                assert_eq!(db.get(&key).await.unwrap().unwrap().operation_id, id);
            }
        }));
    }
    let thread = std::thread::spawn(move || {
        for i in 0..50u32 {
            blocking.put(format!("b:{i}").as_bytes(), b"x").unwrap();
        }
        blocking
    });
    for task in tasks {
        task.await.unwrap();
    }
    let blocking = thread.join().unwrap();
    assert_eq!(blocking.scan_prefix(b"t").unwrap().len(), 320);
    let stats = db.stats().await.unwrap();
    assert_eq!(stats.requests_committed, 370);
    assert_eq!(stats.log.newest_event_id, 370);
}
