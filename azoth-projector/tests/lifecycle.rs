//! The log lifecycle (rotation, archival, retention, compaction, verification and the
//! maintenance thread), each test body run against both log backends.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use azoth_core::{
    AzothError, DatabaseEvent, EventId, Operation, OperationId, StoreBatch, StoreWrite, UnitState,
};
use azoth_projector::{
    ArchiveBoundary, COMPACTION_LEVEL_LOG, COMPACTION_LEVEL_VIEW, Config, Database, FailurePolicy,
    LogBackend, MaintenanceConfig, ProjectionContext, RetentionHolder, RetentionPolicy,
    StoreBackend, StoredPosition, SubscribeFrom, SubscriptionConfig, SyncMode,
};
use parking_lot::Mutex;

/// One generic body per behaviour, instantiated per backend so a failure names it.
macro_rules! for_each_backend {
    ($($name:ident),* $(,)?) => {
        mod file_log {
            $( #[test] fn $name() { super::$name(azoth_projector::LogBackend::File) } )*
        }
        mod lmdb_log {
            $( #[test] fn $name() { super::$name(azoth_projector::LogBackend::Lmdb) } )*
        }
    };
}

for_each_backend!(
    archived_events_stay_readable_and_rebuild_gives_the_same_view,
    archive_boundaries_by_id_age_and_size,
    retention_never_removes_what_a_durable_subscription_needs,
    retention_never_removes_what_the_view_needs,
    retention_by_bytes_age_and_both,
    a_view_rebuilt_from_the_whole_log_holds_everything,
    verify_finds_a_byte_changed_in_an_archive,
    a_half_written_archive_does_not_break_the_next_open,
    verify_with_progress_reports_every_unit,
    verify_view_finds_a_view_that_differs_from_the_log,
    verify_view_agrees_while_writers_go_on,
    verify_view_from_a_backup_after_retention,
    compact_reports_what_it_did_and_logs_its_level,
    whole_lifecycle_survives_reopen,
    maintenance_rotates_archives_and_retains_in_the_background,
    lifecycle_jobs_run_beside_writers_readers_and_subscribers,
    readers_and_subscriptions_whose_events_retention_deleted_get_an_error,
    async_lifecycle_methods,
    subscribing_and_retention_side_by_side_never_wait_for_each_other,
    a_scratch_restore_cut_short_by_a_crash_is_removed_at_the_next_open,
);

fn config(dir: &Path, backend: LogBackend) -> Config {
    Config::new(dir)
        .sync_mode(SyncMode::Never)
        .log_backend(backend)
        .flush_interval(None)
        .projection(
            |kind: &str, payload: &[u8], view: &mut ProjectionContext<'_>| {
                if kind == "Counted" {
                    let n = view
                        .get(b"count")?
                        .map_or(0u64, |v| u64::from_be_bytes(v.try_into().unwrap()));
                    view.put(b"count", &(n + 1).to_be_bytes())?;
                    view.put(b"last", payload)?;
                }
                Ok(())
            },
        )
}

/// Writes `units` sealed units of `per_unit` events each (puts, deletes, application
/// events), rotating after each; returns the newest id.
fn fill(db: &Database, units: usize, per_unit: usize) -> EventId {
    let mut newest = 0;
    for u in 0..units {
        for i in 0..per_unit {
            let n = u * per_unit + i;
            let id = match n % 5 {
                3 => db.delete(format!("k{:05}", n - 2).as_bytes()).unwrap(),
                4 => db
                    .append_event("Counted", format!("e{n}").as_bytes())
                    .unwrap(),
                _ => db
                    .put(format!("k{n:05}").as_bytes(), format!("v{n}").as_bytes())
                    .unwrap(),
            };
            newest = id.sequence;
        }
        db.rotate().unwrap();
    }
    newest
}

fn view_of(db: &Database) -> BTreeMap<Vec<u8>, (Vec<u8>, OperationId)> {
    db.scan(None, None)
        .unwrap()
        .into_iter()
        .map(|e| (e.key, (e.value.unwrap(), e.operation_id)))
        .collect()
}

/// The ids after `after`, and the error the reader ended with, if any.
fn read_since(db: &Database, after: EventId) -> (Vec<EventId>, Option<AzothError>) {
    let mut ids = Vec::new();
    for item in db.events_since(after).unwrap() {
        match item {
            Ok((id, _)) => ids.push(id),
            Err(e) => return (ids, Some(e)),
        }
    }
    (ids, None)
}

fn ids_since(db: &Database, after: EventId) -> Vec<EventId> {
    db.events_since(after)
        .unwrap()
        .map(|r| r.unwrap().0)
        .collect()
}

/// Subscribes `name` from `from` with a handler that records the id of every event it gets.
fn record_ids(db: &Database, name: &str, from: SubscribeFrom) -> Arc<Mutex<Vec<EventId>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    db.subscribe(
        name,
        move |e: &DatabaseEvent| {
            sink.lock().push(e.operation_id().sequence);
            Ok(())
        },
        from,
    )
    .unwrap();
    seen
}

/// Changes key `k00000` in the closed database's view behind its back (`None` deletes it),
/// keeping the view's checkpoint.
fn tamper_view(dir: &Path, value: Option<Vec<u8>>, sequence: u64) {
    let store = azoth_lmdb::LmdbStore::open(dir.join("view")).unwrap();
    let checkpoint = azoth_core::CanonicalStore::checkpoint(&store).unwrap();
    azoth_core::CanonicalStore::apply(
        &store,
        &StoreBatch {
            writes: vec![StoreWrite {
                key: b"k00000".to_vec(),
                value,
                operation_id: OperationId::new(0, sequence),
            }],
            checkpoint: Some(checkpoint),
            metadata: Vec::new(),
        },
    )
    .unwrap();
}

fn sealed_and_archived(db: &Database) -> (usize, usize) {
    let units = db.log_units().unwrap();
    let count = |s| units.iter().filter(|u| u.state == s).count();
    (count(UnitState::Sealed), count(UnitState::Archived))
}

/// Waits (polling) until `done` holds; fails the test if it never does.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn archived_events_stay_readable_and_rebuild_gives_the_same_view(backend: LogBackend) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(config(dir.path(), backend)).unwrap();
    let newest = fill(&db, 5, 40);
    let before = view_of(&db);
    let archives = db.archive(newest).unwrap();
    assert_eq!(archives.len(), 5, "every sealed unit is archived");
    assert!(archives.iter().all(|p| p.exists()));
    assert_eq!(sealed_and_archived(&db), (0, 5));

    // Every reader still sees every event.
    assert_eq!(ids_since(&db, 0), (1..=newest).collect::<Vec<_>>());
    let since = db.get_events_since(OperationId::new(0, 10)).unwrap();
    assert_eq!(since.len() as u64, newest - 10);
    assert_eq!(since[0].operation_id().sequence, 11);

    let seen = record_ids(&db, "reader", SubscribeFrom::Beginning);
    eventually("the subscription reads the archives", || {
        seen.lock().len() as u64 >= newest
    });
    assert_eq!(*seen.lock(), (1..=newest).collect::<Vec<_>>());
    db.unsubscribe("reader").unwrap();

    db.rebuild_view().unwrap();
    assert_eq!(
        view_of(&db),
        before,
        "the view rebuilt from archives differs"
    );
    assert!(db.verify().unwrap().is_ok());
    assert!(db.verify_view().unwrap().is_ok());
    db.close().unwrap();

    let db = Database::open_with(config(dir.path(), backend)).unwrap();
    assert_eq!(view_of(&db), before);
    assert_eq!(ids_since(&db, 0), (1..=newest).collect::<Vec<_>>());
    assert!(db.verify().unwrap().is_ok());
}

fn archive_boundaries_by_id_age_and_size(backend: LogBackend) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(config(dir.path(), backend)).unwrap();
    let newest = fill(&db, 4, 25);
    // Events 1..=50 fill the first two units; 60 lies inside the third, which stays.
    assert_eq!(db.archive(60).unwrap().len(), 2);
    assert_eq!(sealed_and_archived(&db), (2, 2));
    // Nothing sealed is an hour old yet.
    assert!(
        db.archive_by(ArchiveBoundary::OlderThan(Duration::from_secs(3600)))
            .unwrap()
            .is_empty()
    );
    // Keeping plenty unarchived archives nothing; keeping nothing archives every sealed unit.
    assert!(
        db.archive_by(ArchiveBoundary::KeepUnarchivedBytes(u64::MAX))
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        db.archive_by(ArchiveBoundary::KeepUnarchivedBytes(0))
            .unwrap()
            .len(),
        2
    );
    assert_eq!(sealed_and_archived(&db), (0, 4));
    // The active unit is never archived, whatever the boundary.
    db.put(b"tail", b"1").unwrap();
    assert!(
        db.archive_by(ArchiveBoundary::OlderThan(Duration::ZERO))
            .unwrap()
            .is_empty()
    );
    assert!(db.archive(u64::MAX).unwrap().is_empty());
    let active = db.log_units().unwrap().pop().unwrap();
    assert_eq!(active.state, UnitState::Active);
    assert_eq!(active.event_count(), 1);
    // By age: once sealed, a unit whose newest event is older than zero seconds goes.
    db.rotate().unwrap();
    assert_eq!(
        db.archive_by(ArchiveBoundary::OlderThan(Duration::ZERO))
            .unwrap()
            .len(),
        1
    );
    assert_eq!(ids_since(&db, 0), (1..=newest + 1).collect::<Vec<_>>());
    assert!(db.verify().unwrap().is_ok());
}

fn retention_never_removes_what_a_durable_subscription_needs(backend: LogBackend) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), backend)
        .retention(RetentionPolicy::keep_all().keep_events(0))
        .subscriptions(
            SubscriptionConfig::default()
                .max_retries(0)
                .on_failure(FailurePolicy::Stop),
        );
    let db = Database::open_with(cfg.clone()).unwrap();
    let newest = fill(&db, 6, 20);
    // A subscription stuck at 30: its handler fails on every later event.
    db.subscribe(
        "slow",
        |e: &DatabaseEvent| {
            if e.operation_id().sequence > 30 {
                Err(AzothError::Config("not yet".into()))
            } else {
                Ok(())
            }
        },
        SubscribeFrom::After(30),
    )
    .unwrap();
    db.flush().unwrap();
    db.archive(40).unwrap();

    let report = db.apply_retention().unwrap();
    // Units 1..=20 go; 21..=40 holds event 31, which "slow" still needs.
    assert_eq!(report.units_deleted, 1);
    assert_eq!(report.events_deleted, 20);
    assert_eq!(report.deleted_up_to, Some(20));
    assert_eq!(report.oldest_event_id, 21);
    assert_eq!(report.hold_position, 30);
    let held = report.held_back.expect("the policy wanted more");
    assert_eq!(held.units, 5);
    assert_eq!(held.events, 100);
    assert_eq!(held.wanted_up_to, newest);
    assert_eq!(
        held.by[0].holder,
        RetentionHolder::Subscription("slow".into())
    );
    assert_eq!(held.by[0].position, 30);

    let stats = db.stats().unwrap();
    assert_eq!(stats.retention.hold_position, 30);
    assert_eq!(
        stats.retention.holds[0].holder,
        RetentionHolder::Subscription("slow".into())
    );
    assert_eq!(stats.retention.events_deleted, 20);
    let metrics = stats.metrics_text();
    assert!(
        metrics.contains("azoth_retention_hold_event_id 30\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "azoth_retention_holder_position_event_id{holder=\"subscription/slow\"} 30\n"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("{holder=\"view_checkpoint\"} 120\n"),
        "{metrics}"
    );
    assert!(metrics.contains("azoth_retention_held_back_events 100\n"));

    // The subscription, resumed with a working handler, gets everything after 30.
    db.unsubscribe("slow").unwrap();
    assert_eq!(db.subscription_position("slow").unwrap(), Some(30));
    let seen = record_ids(&db, "slow", SubscribeFrom::Stored);
    eventually("the resumed subscription catches up", || {
        seen.lock().last() == Some(&newest)
    });
    assert_eq!(*seen.lock(), (31..=newest).collect::<Vec<_>>());
    db.unsubscribe_with("slow", StoredPosition::Keep).unwrap();
    let position = db.subscription_position("slow").unwrap().unwrap();
    assert_eq!(position, newest);

    // Released, retention deletes every sealed unit the view has.
    let report = db.apply_retention().unwrap();
    assert_eq!(report.units_deleted, 5);
    assert!(report.held_back.is_none(), "{report:?}");
    assert_eq!(report.oldest_event_id, newest + 1);
    assert!(db.verify().unwrap().is_ok());
    db.close().unwrap();
    let db = Database::open_with(cfg).unwrap();
    assert!(db.verify().unwrap().is_ok());
    assert_eq!(db.get(b"k00115").unwrap().as_deref(), Some(&b"v115"[..]));
}

fn retention_never_removes_what_the_view_needs(backend: LogBackend) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), backend).retention(RetentionPolicy::keep_all().keep_events(0));
    let db = Database::open_with(cfg.clone()).unwrap();
    let newest = fill(&db, 4, 20);
    let before = view_of(&db);
    // Nothing is flushed: the view's checkpoint is 0, and every event is still needed.
    assert_eq!(db.stats().unwrap().checkpoint, 0);
    let report = db.apply_retention().unwrap();
    assert_eq!(report.units_deleted, 0);
    assert_eq!(report.hold_position, 0);
    let held = report.held_back.unwrap();
    assert_eq!(held.units, 4);
    assert_eq!(held.by[0].holder, RetentionHolder::ViewCheckpoint);
    assert_eq!(ids_since(&db, 0), (1..=newest).collect::<Vec<_>>());

    db.flush().unwrap();
    let report = db.apply_retention().unwrap();
    assert_eq!(report.units_deleted, 4);
    assert_eq!(report.events_deleted, newest);
    // Unflushed writes after the retention run must survive a reopen.
    db.put(b"after", b"retention").unwrap();
    db.append_event("Counted", b"late").unwrap();
    let mut expected = view_of(&db);
    drop(db);
    let db = Database::open_with(cfg).unwrap();
    assert_eq!(view_of(&db), expected);
    expected.remove(b"after".as_slice());
    expected.remove(b"count".as_slice());
    expected.remove(b"last".as_slice());
    let mut old = before;
    old.remove(b"count".as_slice());
    old.remove(b"last".as_slice());
    assert_eq!(expected, old);
    assert!(db.verify().unwrap().is_ok());
    // The log no longer reaches event 1: verify_view says so instead of claiming equality.
    let check = db.verify_view().unwrap();
    assert!(!check.log_complete);
    assert!(!check.is_ok());
    assert_eq!(check.oldest_event_id, newest + 1);
    assert_eq!(check.entries_compared, 0);
}

fn a_view_rebuilt_from_the_whole_log_holds_everything(backend: LogBackend) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), backend)
        .store_backend(StoreBackend::Memory)
        .retention(RetentionPolicy::keep_all().keep_events(0));
    let db = Database::open_with(cfg.clone()).unwrap();
    let newest = fill(&db, 3, 10);
    db.flush().unwrap();
    let report = db.apply_retention().unwrap();
    assert_eq!(report.units_deleted, 0);
    assert_eq!(
        report.held_back.unwrap().by[0].holder,
        RetentionHolder::ViewReplay
    );
    let before = view_of(&db);
    drop(db);
    let db = Database::open_with(cfg).unwrap();
    assert_eq!(view_of(&db), before);
    assert_eq!(ids_since(&db, 0).len() as u64, newest);
}

fn verify_finds_a_byte_changed_in_an_archive(backend: LogBackend) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(config(dir.path(), backend)).unwrap();
    fill(&db, 3, 30);
    let archives = db.archive(60).unwrap();
    assert_eq!(archives.len(), 2);
    assert!(db.verify().unwrap().is_ok());
    db.close().unwrap();

    let target = &archives[1];
    let len = std::fs::metadata(target).unwrap().len();
    let mut bytes = std::fs::read(target).unwrap();
    bytes[(len / 2) as usize] ^= 0x10;
    std::fs::write(target, bytes).unwrap();

    let db = Database::open_with(config(dir.path(), backend)).unwrap();
    let report = db.verify().unwrap();
    let failure = report.first_failure.expect("a changed byte must be found");
    assert_eq!(
        failure.location.file.as_deref(),
        Some(target.as_path()),
        "{failure}"
    );
}

fn verify_with_progress_reports_every_unit(backend: LogBackend) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(config(dir.path(), backend)).unwrap();
    let newest = fill(&db, 4, 25);
    db.archive(50).unwrap();
    db.put(b"active", b"1").unwrap();
    let mut calls = Vec::new();
    let report = db.verify_with_progress(|p| calls.push(p)).unwrap();
    assert!(report.is_ok(), "{:?}", report.first_failure);
    assert_eq!(report.events_verified, newest + 1);
    assert_eq!(report.segments_verified, 5);
    assert_eq!(calls.len(), 5);
    for pair in calls.windows(2) {
        assert!(pair[1].segments_done > pair[0].segments_done);
        assert!(pair[1].bytes_done >= pair[0].bytes_done);
    }
    let last = calls.last().unwrap();
    assert_eq!(last.segments_done, last.segments_total);
    assert_eq!(last.bytes_done, last.bytes_total);
    assert!(last.bytes_total > 0);
}

fn verify_view_finds_a_view_that_differs_from_the_log(backend: LogBackend) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(config(dir.path(), backend)).unwrap();
    fill(&db, 2, 20);
    db.flush().unwrap();
    let report = db.verify_view().unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert!(report.entries_compared > 0);
    db.close().unwrap();

    // Change one value behind the database's back.
    tamper_view(dir.path(), Some(b"tampered".to_vec()), 2);
    let db = Database::open_with(config(dir.path(), backend)).unwrap();
    let report = db.verify_view().unwrap();
    assert!(!report.is_ok());
    assert_eq!(report.mismatches, 1);
    let mismatch = report.first_mismatch.unwrap();
    assert_eq!(mismatch.key, b"k00000");
    assert_eq!(
        mismatch.view.unwrap().value.as_deref(),
        Some(&b"tampered"[..])
    );
    assert_eq!(
        mismatch.replayed.unwrap().value.as_deref(),
        Some(&b"v0"[..])
    );
    // rebuild_view repairs it.
    db.rebuild_view().unwrap();
    assert!(db.verify_view().unwrap().is_ok());
}

fn compact_reports_what_it_did_and_logs_its_level(backend: LogBackend) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), backend).retention(RetentionPolicy::keep_all().keep_events(0));
    let db = Database::open_with(cfg).unwrap();
    let newest = fill(&db, 3, 20);
    let report = db.compact().unwrap();
    assert_eq!(report.level, COMPACTION_LEVEL_LOG);
    assert_eq!(report.checkpoint, newest);
    assert_eq!(report.retention.units_deleted, 3);
    assert_eq!(report.operation_id.sequence, newest + 1);
    let events = db.events_since(newest).unwrap().collect::<Vec<_>>();
    assert_eq!(events.len(), 1);
    match &events[0].as_ref().unwrap().1 {
        DatabaseEvent::CompactionEvent { level, .. } => assert_eq!(*level, COMPACTION_LEVEL_LOG),
        other => panic!("expected a CompactionEvent, got {other:?}"),
    }
    // Nothing sealed is left to delete: the next compaction only touches the view.
    let report = db.compact().unwrap();
    assert_eq!(report.level, COMPACTION_LEVEL_VIEW);
    assert_eq!(report.retention.units_deleted, 0);
    assert!(db.verify().unwrap().is_ok());
}

fn whole_lifecycle_survives_reopen(backend: LogBackend) {
    let dir = tempfile::tempdir().unwrap();
    let archive_dir = dir.path().join("cold");
    let cfg = config(dir.path(), backend)
        .archive_dir(&archive_dir)
        .archive_compression_level(9)
        .retention(RetentionPolicy::keep_all().keep_events(50));
    let db = Database::open_with(cfg.clone()).unwrap();
    let newest = fill(&db, 6, 20);
    let archives = db.archive_by(ArchiveBoundary::UpTo(80)).unwrap();
    assert_eq!(archives.len(), 4);
    assert!(archives.iter().all(|p| p.starts_with(&archive_dir)));
    db.flush().unwrap();
    let report = db.apply_retention().unwrap();
    // Keeping the newest 50 of 120 events: units ending at 20, 40, 60 go (80 would leave 40).
    assert_eq!(report.units_deleted, 3);
    assert_eq!(report.oldest_event_id, 61);
    let compaction = db.compact().unwrap();
    assert_eq!(compaction.level, COMPACTION_LEVEL_VIEW);
    let view = view_of(&db);
    assert!(db.verify().unwrap().is_ok());
    db.close().unwrap();

    let db = Database::open_with(cfg).unwrap();
    assert_eq!(view_of(&db), view);
    assert_eq!(ids_since(&db, 0), (61..=newest + 1).collect::<Vec<_>>());
    assert!(db.verify().unwrap().is_ok());
    assert_eq!(sealed_and_archived(&db), (2, 1));
    let units = db.log_units().unwrap();
    assert_eq!(units[0].first_event_id, 61);
    assert!(units[0].path.starts_with(&archive_dir));
}

fn maintenance_rotates_archives_and_retains_in_the_background(backend: LogBackend) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), backend)
        .flush_interval(Some(Duration::from_millis(5)))
        .retention(RetentionPolicy::keep_all().keep_events(30))
        .maintenance(
            MaintenanceConfig::every(Duration::from_millis(5))
                .rotate_after_bytes(Some(256))
                .archive(ArchiveBoundary::OlderThan(Duration::ZERO)),
        );
    let db = Database::open_with(cfg).unwrap();
    let mut n = 0u64;
    eventually("maintenance rotates, archives and deletes", || {
        for _ in 0..10 {
            n += 1;
            db.put(format!("m{n:06}").as_bytes(), b"value").unwrap();
        }
        let m = db.stats().unwrap().maintenance;
        m.rotations > 2 && m.archives_written > 0 && m.units_deleted > 0
    });
    let stats = db.stats().unwrap();
    assert!(stats.maintenance.enabled);
    assert_eq!(stats.maintenance.failures, 0, "{:?}", stats.maintenance);
    assert!(stats.log.oldest_event_id > 1);
    // What remains is dense up to the newest, and every write is still in the view.
    let ids = ids_since(&db, 0);
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1));
    assert_eq!(ids.last(), Some(&stats.log.newest_event_id));
    assert_eq!(db.scan_prefix(b"m").unwrap().len() as u64, n);
    assert!(db.verify().unwrap().is_ok());
    db.close().unwrap();

    let quiet = tempfile::tempdir().unwrap();
    let db = Database::open_with(config(quiet.path(), backend)).unwrap();
    let m = db.stats().unwrap().maintenance;
    assert!(!m.enabled, "maintenance is off unless configured");
    assert_eq!(m.runs, 0);
}

fn async_lifecycle_methods(backend: LogBackend) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), backend).retention(RetentionPolicy::keep_all().keep_events(0));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let db = azoth_projector::AsyncDatabase::open_with(cfg)
            .await
            .unwrap();
        for i in 0..20u32 {
            db.put(i.to_be_bytes().to_vec(), b"v".to_vec())
                .await
                .unwrap();
        }
        db.rotate().await.unwrap();
        assert_eq!(db.archive(20).await.unwrap().len(), 1);
        db.flush().await.unwrap();
        assert!(db.verify_view().await.unwrap().is_ok());
        let progress = Arc::new(Mutex::new(0u64));
        let counter = Arc::clone(&progress);
        let report = db
            .verify_with_progress(move |_| *counter.lock() += 1)
            .await
            .unwrap();
        assert!(report.is_ok());
        assert!(*progress.lock() >= 2);
        let retention = db.apply_retention().await.unwrap();
        assert_eq!(retention.events_deleted, 20);
        db.compact().await.unwrap();
        let report = db.compact_with_report().await.unwrap();
        assert_eq!(report.level, COMPACTION_LEVEL_VIEW);
        assert!(db.verify().await.unwrap().is_ok());
        assert!(
            db.archive_by(ArchiveBoundary::KeepUnarchivedBytes(0))
                .await
                .unwrap()
                .is_empty()
        );
        db.close().await.unwrap();
    });
}

#[test]
fn a_custom_log_has_no_archival_and_keeps_everything() {
    let log = Arc::new(azoth_core::MemoryEventLog::new());
    let store = Arc::new(azoth_core::MemoryStore::new());
    let cfg = Config::new("unused").retention(RetentionPolicy::keep_all().keep_events(0));
    let db = Database::open_with_backends(cfg, log, store).unwrap();
    db.batch(vec![Operation::Put {
        key: b"a".to_vec(),
        value: b"1".to_vec(),
    }])
    .unwrap();
    assert!(matches!(db.archive(1), Err(AzothError::Config(_))));
    let report = db.apply_retention().unwrap();
    assert_eq!(report.units_deleted, 0);
    let mut calls = 0;
    assert!(db.verify_with_progress(|_| calls += 1).unwrap().is_ok());
    assert_eq!(calls, 1);
    assert!(db.verify_view().unwrap().is_ok());
}

#[test]
fn maintenance_stops_at_close_and_at_drop_without_waiting_for_its_interval() {
    // An hour between passes: close and drop must wake the thread, not wait for the hour.
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), LogBackend::File)
        .maintenance(MaintenanceConfig::every(Duration::from_secs(3600)));
    let db = Database::open_with(cfg.clone()).unwrap();
    assert!(db.stats().unwrap().maintenance.enabled);
    db.close().unwrap();
    let db = Database::open_with(cfg).unwrap();
    drop(db);
    // The directory lock was released, so the thread no longer holds the database.
    Database::open_with(config(dir.path(), LogBackend::File)).unwrap();
}

#[test]
fn maintenance_counts_failed_steps_and_goes_on() {
    // A log given to open_with_backends cannot archive: every pass's archive step fails.
    let log = Arc::new(azoth_core::MemoryEventLog::new());
    let store = Arc::new(azoth_core::MemoryStore::new());
    let cfg = Config::new("unused").maintenance(
        MaintenanceConfig::every(Duration::from_millis(1)).archive(ArchiveBoundary::UpTo(u64::MAX)),
    );
    let db = Database::open_with_backends(cfg, log, store).unwrap();
    eventually("several passes fail and the thread goes on", || {
        let m = db.stats().unwrap().maintenance;
        m.runs >= 3 && m.failures >= 3
    });
    let m = db.stats().unwrap().maintenance;
    assert!(m.last_error.unwrap().starts_with("archive:"));
    let metrics = db.metrics_text().unwrap();
    assert!(metrics.contains("# TYPE azoth_maintenance_failures_total counter"));
    db.put(b"still", b"writable").unwrap();
    db.close().unwrap();
}

fn lifecycle_jobs_run_beside_writers_readers_and_subscribers(backend: LogBackend) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), backend)
        .flush_interval(Some(Duration::from_millis(3)))
        .retention(RetentionPolicy::keep_all().keep_events(20))
        .maintenance(
            MaintenanceConfig::every(Duration::from_millis(2))
                .rotate_after_bytes(Some(300))
                .archive(ArchiveBoundary::OlderThan(Duration::ZERO)),
        );
    let db = Database::open_with(cfg).unwrap();
    // A follower from the first event: retention must wait for it, so it sees every event.
    let followed = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&followed);
    db.subscribe(
        "follower",
        move |e: &DatabaseEvent| {
            sink.lock().push(e.operation_id().sequence);
            std::thread::sleep(Duration::from_micros(50));
            Ok(())
        },
        SubscribeFrom::Beginning,
    )
    .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (db, stop) = (db.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // A plain reader holds nothing: retention may delete units before it reaches
                // them. Then it ends with `EventsDeleted`; it never skips them silently.
                let (ids, error) = read_since(&db, 0);
                assert!(
                    ids.windows(2).all(|w| w[1] == w[0] + 1),
                    "a reader saw a gap"
                );
                match (error, ids.last()) {
                    (None, _) | (Some(AzothError::EventsDeleted { .. }), None) => {}
                    (Some(AzothError::EventsDeleted { from, .. }), Some(last)) => {
                        assert_eq!(from, last + 1, "the error names the wrong events");
                    }
                    (Some(other), _) => panic!("a reader failed: {other}"),
                }
                let report = db.verify().unwrap();
                assert!(report.is_ok(), "{:?}", report.first_failure);
                reads += 1;
            }
            reads
        })
    };
    let mut newest = 0;
    for i in 0..1500u32 {
        newest = db.put(&i.to_be_bytes(), b"value").unwrap().sequence;
    }
    eventually("the follower catches up and retention deletes", || {
        followed.lock().last() == Some(&newest) && db.stats().unwrap().maintenance.units_deleted > 0
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
    assert_eq!(*followed.lock(), (1..=newest).collect::<Vec<_>>());
    let stats = db.stats().unwrap();
    assert_eq!(stats.maintenance.failures, 0, "{:?}", stats.maintenance);
    assert!(stats.maintenance.archives_written > 0);
    assert_eq!(db.scan(None, None).unwrap().len(), 1500);
    db.close().unwrap();
}

fn readers_and_subscriptions_whose_events_retention_deleted_get_an_error(backend: LogBackend) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), backend).retention(RetentionPolicy::keep_all().keep_events(0));
    let db = Database::open_with(cfg).unwrap();
    let newest = fill(&db, 4, 20);
    db.flush().unwrap();
    let mut events = db.events_since(0).unwrap();
    assert_eq!(events.next().unwrap().unwrap().0, 1);
    assert_eq!(db.apply_retention().unwrap().units_deleted, 4);
    // The open reader yields the deleted events (from a snapshot) or says they are gone.
    let mut expected = 2;
    for item in events {
        match item {
            Ok((id, _)) => {
                assert_eq!(id, expected, "a reader skipped events");
                expected += 1;
            }
            Err(AzothError::EventsDeleted { from, to }) => {
                assert_eq!(from, expected);
                assert!(to > from);
                expected = newest + 1;
                break;
            }
            Err(e) => panic!("the reader failed with {e}"),
        }
    }
    assert_eq!(
        expected,
        newest + 1,
        "the reader ended early without an error"
    );

    // A subscription after 10 needs events that are gone: it fails and says so.
    db.subscribe("late", |_: &DatabaseEvent| Ok(()), SubscribeFrom::After(10))
        .unwrap();
    db.put(b"after", b"retention").unwrap();
    let late = || {
        db.stats()
            .unwrap()
            .subscriptions
            .into_iter()
            .find(|s| s.name == "late")
            .unwrap()
    };
    eventually("the subscription fails", || {
        late().mode == azoth_projector::SubscriptionMode::Failed
    });
    let failure = late().failure.unwrap();
    assert!(
        failure.contains("events 11 to 80 are no longer in the log"),
        "{failure}"
    );
    assert_eq!(late().position, 10);
    // One from the beginning starts at the oldest event left.
    let seen = record_ids(&db, "fresh", SubscribeFrom::Beginning);
    eventually("the fresh subscription catches up", || {
        seen.lock().last() == Some(&(newest + 1))
    });
    assert_eq!(*seen.lock(), vec![newest + 1]);
    // An event stream cannot fail later where its consumer would see it: it is refused.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let async_db = db.to_async();
    match runtime.block_on(async_db.events_from(10)) {
        Err(AzothError::EventsDeleted { from: 11, to }) => assert_eq!(to, newest + 1),
        other => panic!("a stream after deleted events gave {:?}", other.map(|_| ())),
    }
    let mut from_start = runtime.block_on(async_db.events_from(0)).unwrap();
    let first = runtime.block_on(from_start.next()).unwrap();
    assert_eq!(first.0, newest + 1);
    drop(from_start);
    db.close().unwrap();
}

fn retention_by_bytes_age_and_both(backend: LogBackend) {
    let dir = tempfile::tempdir().unwrap();
    let base = config(dir.path(), backend);
    let db = Database::open_with(base.clone()).unwrap();
    fill(&db, 4, 20);
    db.put(b"active", b"1").unwrap();
    let units = db.log_units().unwrap();
    assert_eq!(units.len(), 5);
    db.close().unwrap();
    let reopen = |policy: RetentionPolicy| {
        let db = Database::open_with(base.clone().retention(policy)).unwrap();
        db.flush().unwrap();
        db
    };

    // Nothing is an hour old: an age minimum keeps everything.
    let db = reopen(RetentionPolicy::keep_all().keep_age(Duration::from_secs(3600)));
    assert_eq!(db.apply_retention().unwrap().units_deleted, 0);
    drop(db);

    // Keep at least the bytes of the newest two sealed units and the active one: the two
    // oldest go, the third would leave too little.
    let newest_bytes: u64 = units[2..].iter().map(|u| u.bytes).sum();
    let db = reopen(RetentionPolicy::keep_all().keep_bytes(newest_bytes));
    let report = db.apply_retention().unwrap();
    assert_eq!(report.units_deleted, 2);
    assert_eq!(report.bytes_deleted, units[0].bytes + units[1].bytes);
    assert_eq!(report.oldest_event_id, 41);
    drop(db);

    // Both minimums: everything sealed is old enough, but 20 events must stay, so of the
    // remaining units (41..=60, 61..=80, the active 81) only the first goes.
    std::thread::sleep(Duration::from_millis(2));
    let db = reopen(
        RetentionPolicy::keep_all()
            .keep_age(Duration::ZERO)
            .keep_events(20),
    );
    let report = db.apply_retention().unwrap();
    assert_eq!(report.units_deleted, 1);
    assert_eq!(report.oldest_event_id, 61);
    drop(db);

    // Age alone, at zero: every sealed unit goes.
    let db = reopen(RetentionPolicy::keep_all().keep_age(Duration::ZERO));
    let report = db.apply_retention().unwrap();
    assert_eq!(report.units_deleted, 1);
    assert_eq!(ids_since(&db, 0), vec![81]);
    assert!(db.verify().unwrap().is_ok());
}

/// One step of the model-based retention test.
#[derive(Debug, Clone)]
enum Step {
    Put(u8),
    Rotate,
    Flush,
    /// A durable subscription stuck at a fraction (of 255) of the newest id.
    Hold(u8),
    /// Forget the oldest hold.
    Release,
    Archive(u8),
    Retain,
    Compact,
    Reopen,
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        6 => any::<u8>().prop_map(Step::Put),
        3 => Just(Step::Rotate),
        2 => Just(Step::Flush),
        1 => any::<u8>().prop_map(Step::Hold),
        1 => Just(Step::Release),
        1 => any::<u8>().prop_map(Step::Archive),
        3 => Just(Step::Retain),
        1 => Just(Step::Compact),
        1 => Just(Step::Reopen),
    ]
}

/// Where retention must leave the oldest event: the oracle, from the units before the run.
fn expected_oldest(db: &Database, keep_events: u64, holds: &[u64]) -> EventId {
    let units = db.log_units().unwrap();
    let hold = holds
        .iter()
        .copied()
        .chain([db.stats().unwrap().checkpoint])
        .min()
        .unwrap();
    let mut left: u64 = units.iter().map(|u| u.event_count()).sum();
    for u in &units {
        left -= u.event_count();
        let last = u.last_event_id().unwrap_or(0);
        if u.state == UnitState::Active || left < keep_events || last > hold {
            return u.first_event_id;
        }
    }
    unreachable!("the active unit is last")
}

fn run_retention_model(backend: LogBackend, keep_events: u64, steps: Vec<Step>) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::new(dir.path())
        .sync_mode(SyncMode::Never)
        .log_backend(backend)
        .flush_interval(None)
        .retention(RetentionPolicy::keep_all().keep_events(keep_events))
        .subscriptions(SubscriptionConfig::default().max_retries(0));
    let mut db = Database::open_with(cfg.clone()).unwrap();
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut holds: Vec<(String, EventId)> = Vec::new();
    let mut next_hold = 0;
    for step in steps {
        match step {
            Step::Put(k) => {
                let (key, value) = (vec![b'k', k], vec![k; 3]);
                db.put(&key, &value).unwrap();
                model.insert(key, value);
            }
            Step::Rotate => {
                db.rotate().unwrap();
            }
            Step::Flush => db.flush().unwrap(),
            Step::Hold(fraction) => {
                let stats = db.stats().unwrap();
                let newest = stats.log.newest_event_id;
                let at = (newest * u64::from(fraction) / 255).max(stats.log.oldest_event_id - 1);
                let name = format!("hold{next_hold}");
                next_hold += 1;
                db.subscribe(
                    &name,
                    |_: &DatabaseEvent| Err(AzothError::Config("stuck".into())),
                    SubscribeFrom::After(at),
                )
                .unwrap();
                db.unsubscribe(&name).unwrap();
                holds.push((name, at));
            }
            Step::Release => {
                if !holds.is_empty() {
                    let (name, _) = holds.remove(0);
                    db.unsubscribe_with(&name, StoredPosition::Forget).unwrap();
                }
            }
            Step::Archive(fraction) => {
                let newest = db.stats().unwrap().log.newest_event_id;
                db.archive(newest * u64::from(fraction) / 255).unwrap();
            }
            Step::Retain | Step::Compact => {
                let positions: Vec<u64> = holds.iter().map(|(_, p)| *p).collect();
                let report = if matches!(step, Step::Compact) {
                    // compact flushes first, which moves the checkpoint the oracle uses.
                    db.flush().unwrap();
                    let expected = expected_oldest(&db, keep_events, &positions);
                    let report = db.compact().unwrap();
                    assert_eq!(report.retention.oldest_event_id, expected);
                    report.retention
                } else {
                    let expected = expected_oldest(&db, keep_events, &positions);
                    let report = db.apply_retention().unwrap();
                    assert_eq!(report.oldest_event_id, expected, "{report:?}");
                    report
                };
                let hold = positions
                    .iter()
                    .copied()
                    .chain([db.stats().unwrap().checkpoint])
                    .min()
                    .unwrap();
                assert!(report.oldest_event_id <= hold + 1, "{report:?}");
            }
            Step::Reopen => {
                db.close().unwrap();
                db = Database::open_with(cfg.clone()).unwrap();
            }
        }
        let stats = db.stats().unwrap();
        let ids = ids_since(&db, 0);
        assert_eq!(
            ids,
            (stats.log.oldest_event_id..=stats.log.newest_event_id).collect::<Vec<_>>()
        );
        for (name, position) in &holds {
            assert_eq!(db.subscription_position(name).unwrap(), Some(*position));
            assert!(stats.log.oldest_event_id <= position + 1);
        }
        let view: BTreeMap<Vec<u8>, Vec<u8>> = db
            .scan(None, None)
            .unwrap()
            .into_iter()
            .map(|e| (e.key, e.value.unwrap()))
            .collect();
        assert_eq!(view, model);
    }
    assert!(db.verify().unwrap().is_ok());
    db.close().unwrap();
    let db = Database::open_with(cfg).unwrap();
    assert!(db.verify().unwrap().is_ok());
    assert_eq!(db.scan(None, None).unwrap().len(), model.len());
}

/// Cases per backend; `AZOTH_LIFECYCLE_CASES` raises it for a longer run.
fn model_cases() -> u32 {
    std::env::var("AZOTH_LIFECYCLE_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(12)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: model_cases(),
        ..proptest::prelude::ProptestConfig::default()
    })]

    #[test]
    fn retention_model_file_log(
        keep in 0u64..12,
        steps in proptest::collection::vec(step(), 1..60),
    ) {
        run_retention_model(LogBackend::File, keep, steps);
    }

    #[test]
    fn retention_model_lmdb_log(
        keep in 0u64..12,
        steps in proptest::collection::vec(step(), 1..60),
    ) {
        run_retention_model(LogBackend::Lmdb, keep, steps);
    }
}

fn a_half_written_archive_does_not_break_the_next_open(backend: LogBackend) {
    let dir = tempfile::tempdir().unwrap();
    let archive_dir = dir.path().join("cold");
    let cfg = config(dir.path(), backend).archive_dir(&archive_dir);
    let db = Database::open_with(cfg.clone()).unwrap();
    let newest = fill(&db, 3, 10);
    db.archive(10).unwrap();
    let view = view_of(&db);
    db.close().unwrap();
    // What a kill in the middle of archiving the second unit leaves: its temporary file.
    let tmp = archive_dir.join(format!("{:020}.azarc.tmp", 11));
    std::fs::write(&tmp, b"the first bytes of an archive").unwrap();

    let db = Database::open_with(cfg).unwrap();
    assert!(!tmp.exists(), "the open removes the half-written archive");
    assert_eq!(view_of(&db), view);
    assert_eq!(ids_since(&db, 0), (1..=newest).collect::<Vec<_>>());
    assert!(db.verify().unwrap().is_ok());
    // Archiving the unit again works.
    assert_eq!(db.archive(20).unwrap().len(), 1);
    assert!(db.verify().unwrap().is_ok());
}

fn verify_view_agrees_while_writers_go_on(backend: LogBackend) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(config(dir.path(), backend).memtable_size(4096)).unwrap();
    fill(&db, 2, 200);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (db, stop) = (db.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                db.put(format!("w{}", n % 50).as_bytes(), &n.to_be_bytes())
                    .unwrap();
                if n % 7 == 0 {
                    db.append_event("Counted", b"w").unwrap();
                }
            }
            n
        })
    };
    for _ in 0..5 {
        let report = db.verify_view().unwrap();
        assert!(report.is_ok(), "{report:?}");
        assert_eq!(report.events_replayed, report.up_to);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(writer.join().unwrap() > 0);
}

fn verify_view_from_a_backup_after_retention(backend: LogBackend) {
    let dir = tempfile::tempdir().unwrap();
    let backups = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), backend).retention(RetentionPolicy::keep_all().keep_events(40));
    let db = Database::open_with(cfg.clone()).unwrap();
    fill(&db, 3, 20);
    let backup = backups.path().join("b1");
    let taken = db.backup(&backup).unwrap();
    fill(&db, 2, 20);
    db.flush().unwrap();
    let report = db.apply_retention().unwrap();
    assert!(report.oldest_event_id > 1);
    assert!(report.oldest_event_id <= taken.checkpoint + 1);

    // The log no longer reaches event 1, but it reaches the backup's checkpoint.
    assert!(!db.verify_view().unwrap().log_complete);
    let check = db.verify_view_from_backup(&backup).unwrap();
    assert!(check.is_ok(), "{check:?}");
    assert_eq!(check.base, taken.checkpoint);
    assert_eq!(check.events_replayed, check.up_to - taken.checkpoint);
    assert!(check.entries_compared > 0);
    // The scratch restore is gone.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".verify-view"))
        .collect();
    assert!(leftovers.is_empty());
    db.close().unwrap();

    // A view changed behind the database's back differs from the backup plus the log.
    tamper_view(dir.path(), None, 1);
    // What a crash in the middle of a check leaves; the next open removes it.
    let stray = dir.path().join(".verify-view-1-2");
    std::fs::create_dir_all(stray.join("view")).unwrap();
    let db = Database::open_with(cfg).unwrap();
    assert!(!stray.exists());
    let check = db.verify_view_from_backup(&backup).unwrap();
    assert_eq!(check.mismatches, 1, "{check:?}");
    let mismatch = check.first_mismatch.unwrap();
    assert_eq!(mismatch.key, b"k00000");
    assert!(mismatch.view.is_none());
    assert!(matches!(
        db.verify_view_from_backup(backups.path().join("missing")),
        Err(AzothError::NotFound(_))
    ));
}

/// Waits for `n` messages on `done`, failing the test (rather than hanging it) if they do not
/// come: what it waits for is stuck.
fn finishes(what: &str, done: &std::sync::mpsc::Receiver<()>, n: usize) {
    for _ in 0..n {
        done.recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("never finished: {what}"));
    }
}

fn subscribing_and_retention_side_by_side_never_wait_for_each_other(backend: LogBackend) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), backend).retention(RetentionPolicy::keep_all().keep_events(10));
    let db = Database::open_with(cfg).unwrap();
    fill(&db, 4, 10);
    db.flush().unwrap();
    let (tx, done) = std::sync::mpsc::channel();
    let subscriber = {
        let (db, tx) = (db.clone(), tx.clone());
        std::thread::spawn(move || {
            for _ in 0..2000 {
                db.subscribe("s", |_: &DatabaseEvent| Ok(()), SubscribeFrom::Now)
                    .unwrap();
                db.unsubscribe("s").unwrap();
            }
            tx.send(()).unwrap();
        })
    };
    let retention = {
        let (db, tx) = (db.clone(), tx.clone());
        std::thread::spawn(move || {
            for _ in 0..2000 {
                db.apply_retention().unwrap();
            }
            tx.send(()).unwrap();
        })
    };
    finishes("subscribe and unsubscribe beside retention runs", &done, 2);
    subscriber.join().unwrap();
    retention.join().unwrap();
    db.close().unwrap();
}

fn a_scratch_restore_cut_short_by_a_crash_is_removed_at_the_next_open(backend: LogBackend) {
    let dir = tempfile::tempdir().unwrap();
    let backups = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), backend);
    let db = Database::open_with(cfg.clone()).unwrap();
    fill(&db, 2, 20);
    let backup = backups.path().join("b1");
    db.backup(&backup).unwrap();
    db.close().unwrap();
    // `verify_view_from_backup` restores into `<dir>/.verify-view-<pid>-<µs>`; the restore
    // writes into its staging directory beside that target (`.<name>.restoring-<pid>-<ns>`,
    // FORMAT.md) and renames it at the end. A crash before the rename leaves the staging
    // directory, a whole copy of the backup, in the data directory.
    let staging = dir.path().join("..verify-view-1-2.restoring-1-3");
    Database::restore(&backup, &staging).unwrap();
    let db = Database::open_with(cfg).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("verify-view"))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    assert!(db.verify().unwrap().is_ok());
}
