//! Online backup and restore, over both log backends, compressed and not: a backup taken
//! while writer threads go on restores to a database that verifies, whose view equals a
//! replay of its log, that holds every write acknowledged before `backup()` was called, and
//! whose state and events equal the source's at a prefix of the source's log. A damaged,
//! unknown or misplaced restore is refused.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use azoth_core::{AzothError, DatabaseEvent, Operation, SyncMode};
use azoth_projector::{
    AsyncDatabase, BackupOptions, Config, Database, LogBackend, ProjectionContext,
    ReadOnlyDatabase, RetentionPolicy, decode_payload, encode_payload,
};

/// `Added` adds the payload (a u64) to `total`: an application projection whose state
/// depends on every event before it, so a restore that lost or reordered one shows.
fn config(dir: &Path, backend: LogBackend) -> Config {
    Config::new(dir)
        .sync_mode(SyncMode::Never)
        .log_backend(backend)
        .segment_size(16 * 1024)
        .memtable_size(64 * 1024)
        .projection(
            |kind: &str, payload: &[u8], view: &mut ProjectionContext<'_>| {
                if kind == "Added" {
                    let amount: u64 = decode_payload(payload)?;
                    let old = view
                        .get(b"total")?
                        .map(|v| u64::from_le_bytes(v.try_into().unwrap_or([0; 8])))
                        .unwrap_or(0);
                    view.put(b"total", &(old + amount).to_le_bytes())?;
                }
                Ok(())
            },
        )
}

/// The state a replay of `events` gives (the built-in projection and `Added`).
fn replay(events: &[DatabaseEvent]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut state = BTreeMap::new();
    for event in events {
        match event {
            DatabaseEvent::WriteEvent {
                operation: Operation::Put { key, value },
                ..
            } => {
                state.insert(key.clone(), value.clone());
            }
            DatabaseEvent::WriteEvent {
                operation: Operation::Delete { key },
                ..
            } => {
                state.remove(key);
            }
            DatabaseEvent::AppEvent { kind, payload, .. } if kind == "Added" => {
                let amount: u64 = decode_payload(payload).unwrap();
                let old = state
                    .get(&b"total"[..])
                    .map(|v: &Vec<u8>| u64::from_le_bytes(v.as_slice().try_into().unwrap()))
                    .unwrap_or(0);
                state.insert(b"total".to_vec(), (old + amount).to_le_bytes().to_vec());
            }
            _ => {}
        }
    }
    state
}

fn state(db: &Database) -> BTreeMap<Vec<u8>, Vec<u8>> {
    db.scan(None, None)
        .unwrap()
        .into_iter()
        .map(|e| (e.key, e.value.unwrap()))
        .collect()
}

/// Writer `t` puts `t:<i>` = i (and deletes every tenth key it wrote before, and adds to
/// the total); `acked[t]` counts its acknowledged puts.
fn writer(db: Database, t: usize, acked: Arc<Vec<AtomicU64>>, stop: Arc<AtomicBool>) {
    let mut i = 0u64;
    while !stop.load(Ordering::Acquire) {
        db.put(format!("{t}:{i:08}").as_bytes(), &i.to_le_bytes())
            .unwrap();
        acked[t].store(i + 1, Ordering::Release);
        if i % 10 == 9 {
            db.delete(format!("{t}:{:08}", i - 5).as_bytes()).unwrap();
            db.append_event("Added", &encode_payload(&i).unwrap())
                .unwrap();
        }
        i += 1;
    }
}

const WRITERS: usize = 3;

mod bodies {
    use super::*;

    pub fn backup_under_concurrent_writes_restores_consistently(
        backend: LogBackend,
        options: BackupOptions,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        let db = Database::open_with(config(&src, backend)).unwrap();
        let acked: Arc<Vec<AtomicU64>> =
            Arc::new((0..WRITERS).map(|_| AtomicU64::new(0)).collect());
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..WRITERS)
            .map(|t| {
                let (db, acked, stop) = (db.clone(), Arc::clone(&acked), Arc::clone(&stop));
                std::thread::spawn(move || writer(db, t, acked, stop))
            })
            .collect();
        // Let the writers fill a few segments and flushes first.
        while acked.iter().map(|a| a.load(Ordering::Acquire)).sum::<u64>() < 3000 {
            std::thread::yield_now();
        }
        let before: Vec<u64> = acked.iter().map(|a| a.load(Ordering::Acquire)).collect();
        let backup_dir = dir.path().join("backup");
        let report = db.backup_with(&backup_dir, options).unwrap();
        stop.store(true, Ordering::Release);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(report.log_backend, backend);
        assert_eq!(report.compressed, options.compression().is_some());
        if report.compressed {
            assert!(report.stored_bytes < report.bytes, "{report:?}");
        }
        assert!(report.newest_event_id >= report.checkpoint);

        let restored_dir = dir.path().join("restored");
        let restored = Database::restore(&backup_dir, &restored_dir).unwrap();
        assert_eq!(restored.newest_event_id, report.newest_event_id);
        assert_eq!(restored.checkpoint, report.checkpoint);
        assert_eq!(restored.log_backend, backend);
        let copy = Database::open_with(config(&restored_dir, restored.log_backend)).unwrap();

        // It verifies, and its view equals a replay of its own log.
        let verified = copy.verify().unwrap();
        assert!(verified.is_ok(), "{verified:?}");
        let copy_events = copy.get_events().unwrap();
        assert_eq!(copy_events.len() as u64, report.newest_event_id);
        let copy_state = state(&copy);
        assert_eq!(copy_state, replay(&copy_events));

        // Its log is a prefix of the source's, and its state the source's at that prefix.
        let source_events = db.get_events().unwrap();
        assert!(source_events.len() >= copy_events.len());
        assert_eq!(copy_events, source_events[..copy_events.len()]);
        assert_eq!(copy_state, replay(&source_events[..copy_events.len()]));

        // Every put acknowledged before backup() was called is there.
        for (t, &n) in before.iter().enumerate() {
            for i in 0..n {
                let key = format!("{t}:{i:08}");
                let deleted = source_events[..copy_events.len()].iter().any(|e| {
                    matches!(e, DatabaseEvent::WriteEvent { operation: Operation::Delete { key: k }, .. } if k == key.as_bytes())
                });
                if !deleted {
                    assert_eq!(
                        copy.get(key.as_bytes()).unwrap(),
                        Some(i.to_le_bytes().to_vec()),
                        "acknowledged write {key} missing"
                    );
                }
            }
        }
        // The restored database is a working database.
        copy.put(b"after", b"restore").unwrap();
        copy.close().unwrap();
        db.close().unwrap();
        // No staging directory is left behind.
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["backup", "restored", "src"]);
    }

    pub fn restore_refuses_what_it_must(backend: LogBackend, options: BackupOptions) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_with(config(&dir.path().join("src"), backend)).unwrap();
        for i in 0..500u64 {
            db.put(format!("k{i}").as_bytes(), &[1; 100]).unwrap();
        }
        let backup = dir.path().join("backup");
        db.backup_with(&backup, options).unwrap();

        // A backup into a non-empty directory is refused.
        assert!(matches!(db.backup(&backup), Err(AzothError::Config(_))));
        // A restore into a non-empty directory is refused and leaves it alone.
        let full = dir.path().join("full");
        std::fs::create_dir(&full).unwrap();
        std::fs::write(full.join("precious"), b"x").unwrap();
        assert!(matches!(
            Database::restore(&backup, &full),
            Err(AzothError::Config(_))
        ));
        assert_eq!(std::fs::read_dir(&full).unwrap().count(), 1);
        // Into an empty directory is fine.
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        Database::restore(&backup, &empty).unwrap();

        // One changed byte anywhere in any file is refused, and nothing is restored.
        let mut files = Vec::new();
        let mut stack = vec![backup.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    files.push(p);
                }
            }
        }
        assert!(files.len() >= 3, "{files:?}");
        for (n, file) in files.iter().enumerate() {
            let pristine = std::fs::read(file).unwrap();
            let mut bytes = pristine.clone();
            let at = (pristine.len() / 2 + n * 7) % pristine.len();
            bytes[at] ^= 0x20;
            std::fs::write(file, &bytes).unwrap();
            let target = dir.path().join(format!("damaged-{n}"));
            let refused = Database::restore(&backup, &target);
            assert!(
                matches!(
                    refused,
                    Err(AzothError::Corruption { .. } | AzothError::Config(_))
                ),
                "a changed byte {at} in {} was accepted: {refused:?}",
                file.display()
            );
            assert!(
                !target.exists(),
                "a refused restore left {}",
                target.display()
            );
            std::fs::write(file, &pristine).unwrap();
        }
        // A missing file too.
        let victim = files
            .iter()
            .find(|f| !f.ends_with("MANIFEST"))
            .unwrap()
            .clone();
        let pristine = std::fs::read(&victim).unwrap();
        std::fs::remove_file(&victim).unwrap();
        assert!(matches!(
            Database::restore(&backup, dir.path().join("missing")),
            Err(AzothError::Corruption { .. })
        ));
        std::fs::write(&victim, &pristine).unwrap();

        // An unknown format version is refused with a clear message.
        let manifest = backup.join("MANIFEST");
        let text = std::fs::read_to_string(&manifest).unwrap();
        std::fs::write(&manifest, text.replace("AZOTH-BACKUP 1", "AZOTH-BACKUP 7")).unwrap();
        match Database::restore(&backup, dir.path().join("future")) {
            Err(AzothError::Config(msg)) => assert!(msg.contains("version"), "{msg}"),
            other => panic!("expected a version error, got {other:?}"),
        }
        std::fs::write(&manifest, text).unwrap();
        // What is not a backup at all.
        assert!(matches!(
            Database::restore(dir.path().join("src"), dir.path().join("nothing")),
            Err(AzothError::NotFound(_))
        ));
        // And after all that, the pristine backup still restores.
        let again = Database::restore(&backup, dir.path().join("again")).unwrap();
        assert_eq!(again.newest_event_id, 500);
    }

    pub fn backup_of_a_quiet_database_is_exact(backend: LogBackend, options: BackupOptions) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_with(config(&dir.path().join("src"), backend)).unwrap();
        for i in 0..300u64 {
            db.put(format!("k{i}").as_bytes(), &i.to_le_bytes())
                .unwrap();
            if i % 3 == 0 {
                db.append_event("Added", &encode_payload(&i).unwrap())
                    .unwrap();
            }
        }
        db.delete(b"k7").unwrap();
        // A subscription's durable position travels with the view's metadata.
        let report = db.backup_with(dir.path().join("b"), options).unwrap();
        assert_eq!(report.newest_event_id, 401);
        assert_eq!(report.checkpoint, 401, "the backup flushed first");
        Database::restore(dir.path().join("b"), dir.path().join("r")).unwrap();
        let copy = Database::open_with(config(&dir.path().join("r"), backend)).unwrap();
        assert_eq!(state(&copy), state(&db));
        assert_eq!(copy.get_events().unwrap(), db.get_events().unwrap());
        assert_eq!(
            copy.get_entry(b"k5").unwrap(),
            db.get_entry(b"k5").unwrap(),
            "versions are kept"
        );
        // Ids go on where the source's did.
        assert_eq!(copy.put(b"next", b"1").unwrap().sequence, 402);
    }

    pub fn keeps_ids_after_retention_and_archives_kept_elsewhere(
        backend: LogBackend,
        options: BackupOptions,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let archives = dir.path().join("archives");
        let src_config = || {
            config(&dir.path().join("src"), backend)
                .archive_dir(&archives)
                .retention(RetentionPolicy::keep_all().keep_events(1100))
        };
        let db = Database::open_with(src_config()).unwrap();
        for i in 0..1500u64 {
            db.put(format!("k{:04}", i % 400).as_bytes(), &i.to_le_bytes())
                .unwrap();
            if i % 250 == 249 {
                db.rotate().unwrap();
            }
        }
        db.flush().unwrap();
        let retention = db.apply_retention().unwrap();
        db.archive(1000).unwrap();
        let oldest = db.stats().unwrap().log.oldest_event_id;
        assert!(oldest > 1, "retention deleted nothing: {retention:?}");
        assert!(
            std::fs::read_dir(&archives).unwrap().count() > 0,
            "nothing archived outside the data directory"
        );
        let source_events = db.get_events().unwrap();
        let source_state = state(&db);

        let report = db.backup_with(dir.path().join("b"), options).unwrap();
        assert_eq!(report.oldest_event_id, oldest);
        let restored = Database::restore(dir.path().join("b"), dir.path().join("r")).unwrap();
        assert_eq!(restored.oldest_event_id, oldest);
        // The archives come back in the default place: a plain config finds them.
        let copy = Database::open_with(config(&dir.path().join("r"), backend)).unwrap();
        assert!(copy.verify().unwrap().is_ok());
        assert_eq!(copy.stats().unwrap().log.oldest_event_id, oldest);
        assert_eq!(copy.get_events().unwrap(), source_events);
        assert_eq!(state(&copy), source_state);
        assert_eq!(copy.put(b"next", b"1").unwrap().sequence, 1501);
        copy.close().unwrap();
        // A read-only look at the source finds its archives where its config says.
        let ro = ReadOnlyDatabase::open_with(src_config()).unwrap();
        assert_eq!(ro.get_events().unwrap(), source_events);
        assert!(ro.verify().unwrap().is_ok());
    }
}

macro_rules! suite {
    ($name:ident, $backend:expr, $options:expr) => {
        mod $name {
            use super::*;
            #[test]
            fn backup_under_concurrent_writes_restores_consistently() {
                bodies::backup_under_concurrent_writes_restores_consistently($backend, $options)
            }
            #[test]
            fn restore_refuses_what_it_must() {
                bodies::restore_refuses_what_it_must($backend, $options)
            }
            #[test]
            fn keeps_ids_after_retention_and_archives_kept_elsewhere() {
                bodies::keeps_ids_after_retention_and_archives_kept_elsewhere($backend, $options)
            }
            #[test]
            fn backup_of_a_quiet_database_is_exact() {
                bodies::backup_of_a_quiet_database_is_exact($backend, $options)
            }
        }
    };
}

suite!(file_plain, LogBackend::File, BackupOptions::default());
suite!(
    file_zstd,
    LogBackend::File,
    BackupOptions::default().zstd(3)
);
suite!(lmdb_plain, LogBackend::Lmdb, BackupOptions::default());
suite!(
    lmdb_zstd,
    LogBackend::Lmdb,
    BackupOptions::default().zstd(3)
);

#[test]
fn async_backup_and_restore() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = AsyncDatabase::open_with(config(&dir.path().join("src"), LogBackend::File))
            .await
            .unwrap();
        for i in 0..50u64 {
            db.put(format!("k{i}").into_bytes(), vec![i as u8])
                .await
                .unwrap();
        }
        let report = db
            .backup_with(dir.path().join("b"), BackupOptions::default().zstd(1))
            .await
            .unwrap();
        assert_eq!(report.newest_event_id, 50);
        let restored = AsyncDatabase::restore(dir.path().join("b"), dir.path().join("r"))
            .await
            .unwrap();
        assert_eq!(restored.newest_event_id, 50);
        let copy = AsyncDatabase::open_with(config(&dir.path().join("r"), LogBackend::File))
            .await
            .unwrap();
        let entry = copy.get(&b"k49".to_vec()).await.unwrap().unwrap();
        assert_eq!(entry.value, Some(vec![49]));
        copy.close().await.unwrap();
        db.close().await.unwrap();
    });
}

#[test]
fn a_memory_view_and_a_rebuilt_view_are_backed_up() {
    let dir = tempfile::tempdir().unwrap();
    // A memory view: the backup holds no view/, and the restore replays the whole log.
    let mem = Database::open_with(
        config(&dir.path().join("mem"), LogBackend::File)
            .store_backend(azoth_projector::StoreBackend::Memory),
    )
    .unwrap();
    for i in 0..100u64 {
        mem.put(format!("k{i}").as_bytes(), &i.to_le_bytes())
            .unwrap();
    }
    let report = mem.backup(dir.path().join("mem-b")).unwrap();
    assert_eq!(report.checkpoint, 0);
    assert!(!dir.path().join("mem-b").join("view").exists());
    Database::restore(dir.path().join("mem-b"), dir.path().join("mem-r")).unwrap();
    let copy = Database::open_with(config(&dir.path().join("mem-r"), LogBackend::File)).unwrap();
    assert_eq!(state(&copy), state(&mem));

    // A rebuilt view lives in view-1 (VIEW names it): the backup takes that one.
    let db = Database::open_with(config(&dir.path().join("src"), LogBackend::Lmdb)).unwrap();
    for i in 0..100u64 {
        db.put(format!("k{i}").as_bytes(), &i.to_le_bytes())
            .unwrap();
    }
    db.rebuild_view().unwrap();
    db.delete(b"k3").unwrap();
    let report = db.backup(dir.path().join("b")).unwrap();
    assert_eq!(report.checkpoint, 101);
    Database::restore(dir.path().join("b"), dir.path().join("r")).unwrap();
    let copy = Database::open_with(config(&dir.path().join("r"), LogBackend::Lmdb)).unwrap();
    assert_eq!(state(&copy), state(&db));
    assert_eq!(copy.stats().unwrap().checkpoint, 101);
}

const KILL_CHILD_DIR: &str = "AZOTH_BACKUP_KILL_CHILD_DIR";
const KILL_CHILD_BACKEND: &str = "AZOTH_BACKUP_KILL_CHILD_BACKEND";

/// Run as a child by `a_killed_backup_leaves_no_backup_that_looks_complete`: writes and
/// backs up in a loop (`b0`, `b1`, …) until killed. Does nothing in a normal test run.
#[test]
fn backing_up_child() {
    let (Ok(dir), Ok(backend)) = (
        std::env::var(KILL_CHILD_DIR),
        std::env::var(KILL_CHILD_BACKEND),
    ) else {
        return;
    };
    let backend = if backend == "lmdb" {
        LogBackend::Lmdb
    } else {
        LogBackend::File
    };
    let dir = std::path::PathBuf::from(dir);
    let db = Database::open_with(config(&dir.join("src"), backend)).unwrap();
    for round in 0u64.. {
        for i in 0..500u64 {
            db.put(format!("{round}:{i}").as_bytes(), &[3; 64]).unwrap();
        }
        let options = if round % 2 == 0 {
            BackupOptions::default()
        } else {
            BackupOptions::default().zstd(1)
        };
        db.backup_with(dir.join(format!("b{round}")), options)
            .unwrap();
        println!("DONE {round}");
    }
}

#[test]
fn a_killed_backup_leaves_no_backup_that_looks_complete() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    for (backend, name) in [(LogBackend::File, "file"), (LogBackend::Lmdb, "lmdb")] {
        for kill_after in [0u64, 2] {
            let dir = tempfile::tempdir().unwrap();
            let mut child = Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "backing_up_child",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(KILL_CHILD_DIR, dir.path())
                .env(KILL_CHILD_BACKEND, name)
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut out = BufReader::new(child.stdout.take().unwrap());
            let mut line = String::new();
            while !line.contains(&format!("DONE {kill_after}")) {
                line.clear();
                assert!(out.read_line(&mut line).unwrap() > 0, "child ended early");
            }
            // The child is now writing or backing up round kill_after + 1.
            child.kill().unwrap();
            child.wait().unwrap();
            let mut complete = 0;
            let names: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            let restores = tempfile::tempdir().unwrap();
            for name in names {
                if name == "src" {
                    continue;
                }
                if let Some(round) = name.strip_prefix('b') {
                    // Whatever has a backup's name is a whole backup.
                    let round: u64 = round.parse().unwrap();
                    let report =
                        Database::restore(dir.path().join(&name), restores.path().join(&name))
                            .unwrap_or_else(|e| panic!("{name} does not restore: {e}"));
                    assert!(report.newest_event_id >= (round + 1) * 500);
                    complete += 1;
                } else {
                    assert!(name.starts_with(".b"), "unexpected {name}");
                    assert!(name.contains(".partial-"), "unexpected {name}");
                }
            }
            assert!(complete > kill_after);
            // The interrupted source opens and verifies.
            let db = Database::open_with(config(&dir.path().join("src"), backend)).unwrap();
            assert!(db.verify().unwrap().is_ok());
        }
    }
}
