//! `ReadOnlyDatabase`: reading a directory a `Database` holds (in this process and in
//! another), seeing its unflushed tail, following it with `refresh` and `events_since`,
//! refusing what is not a data directory, and writing nothing. Every body runs over both log
//! backends.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

use azoth_core::{AzothError, DatabaseEvent, SyncMode};
use azoth_projector::{
    Config, Database, LogBackend, ProjectionContext, ReadOnlyDatabase, decode_payload,
    encode_payload,
};

const CHILD_DIR: &str = "AZOTH_READ_ONLY_CHILD_DIR";
const CHILD_BACKEND: &str = "AZOTH_READ_ONLY_CHILD_BACKEND";

/// `Added:<counter>` adds the payload (a u64) to `counter:<name>`: an application projection,
/// so the tests check that the read-only replay runs the application's projections too.
fn with_projection(config: Config) -> Config {
    config.projection(
        |kind: &str, payload: &[u8], view: &mut ProjectionContext<'_>| {
            if let Some(name) = kind.strip_prefix("Added:") {
                let amount: u64 = decode_payload(payload)?;
                let key = format!("counter:{name}");
                let old = view
                    .get(key.as_bytes())?
                    .map(|v| u64::from_le_bytes(v.try_into().unwrap_or([0; 8])))
                    .unwrap_or(0);
                view.put(key.as_bytes(), &(old + amount).to_le_bytes())?;
            }
            Ok(())
        },
    )
}

fn config(dir: &Path, backend: LogBackend) -> Config {
    with_projection(
        Config::new(dir)
            .sync_mode(SyncMode::Never)
            .log_backend(backend)
            .flush_interval(None),
    )
}

/// The read-only side is given only the directory and the projection: it detects the log.
fn open_ro(dir: &Path) -> ReadOnlyDatabase {
    ReadOnlyDatabase::open_with(with_projection(Config::new(dir))).unwrap()
}

fn live(entries: Vec<azoth_core::Entry>) -> BTreeMap<Vec<u8>, Vec<u8>> {
    entries
        .into_iter()
        .map(|e| (e.key, e.value.unwrap()))
        .collect()
}

fn db_state(db: &Database) -> BTreeMap<Vec<u8>, Vec<u8>> {
    live(db.scan(None, None).unwrap())
}

fn ro_state(ro: &ReadOnlyDatabase) -> BTreeMap<Vec<u8>, Vec<u8>> {
    live(ro.scan(None, None).unwrap())
}

/// Writes a mix of puts, deletes, a batch and application events; `round` varies the keys.
fn write_some(db: &Database, round: u64) {
    for i in 0..50u64 {
        db.put(format!("k:{round}:{i:03}").as_bytes(), &i.to_le_bytes())
            .unwrap();
    }
    db.delete(format!("k:{round}:007").as_bytes()).unwrap();
    db.put(b"shared", format!("round {round}").as_bytes())
        .unwrap();
    db.append_event("Added:a", &encode_payload(&(round + 1)).unwrap())
        .unwrap();
}

mod bodies {
    use super::*;

    /// A batch is one atomic write: a reader of a read-only handle sees all of it or none of
    /// it, also while `refresh` replays it. The handle's own projection pauses the refresh on
    /// an application event logged after the batch, long after the batch's first events were
    /// replayed, and a reader looks meanwhile.
    pub fn readers_never_see_a_batch_half_replayed_by_refresh(backend: LogBackend) {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Barrier};
        const BATCH: usize = 100;
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_with(config(dir.path(), backend)).unwrap();
        let paused = Arc::new(Barrier::new(2));
        let resume = Arc::new(Barrier::new(2));
        let armed = Arc::new(AtomicBool::new(true));
        let ro = {
            let (paused, resume, armed) =
                (Arc::clone(&paused), Arc::clone(&resume), Arc::clone(&armed));
            ReadOnlyDatabase::open_with(Config::new(dir.path()).projection(
                move |kind: &str, _: &[u8], _: &mut ProjectionContext<'_>| {
                    if kind == "Pause" && armed.swap(false, Ordering::AcqRel) {
                        paused.wait();
                        resume.wait();
                    }
                    Ok(())
                },
            ))
            .unwrap()
        };
        // Single events, then the batch, then the event the refresh pauses on: the batch
        // outlasts a thousand events, so a replay in steps of that size splits it.
        for i in 0..1000u64 {
            db.put(format!("before:{i:05}").as_bytes(), b"v").unwrap();
        }
        let ops = (0..BATCH)
            .map(|i| azoth_core::Operation::Put {
                key: format!("batch:{i:03}").into_bytes(),
                value: b"v".to_vec(),
            })
            .collect();
        db.batch(ops).unwrap();
        db.append_event("Pause", b"").unwrap();
        let refresher = {
            let ro = ro.clone();
            std::thread::spawn(move || ro.refresh().unwrap())
        };
        paused.wait();
        let seen = ro.scan_prefix(b"batch:").unwrap().len();
        resume.wait();
        refresher.join().unwrap();
        assert!(
            seen == 0 || seen == BATCH,
            "a reader saw {seen} of the batch's {BATCH} puts"
        );
        assert_eq!(ro.scan_prefix(b"batch:").unwrap().len(), BATCH);
        assert_eq!(ro_state(&ro), db_state(&db));
    }

    pub fn reads_a_directory_a_database_holds(backend: LogBackend) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_with(config(dir.path(), backend)).unwrap();
        write_some(&db, 1);
        db.flush().unwrap();
        // Not flushed: only the log holds these; the read-only open replays them.
        write_some(&db, 2);
        db.delete(b"k:1:003").unwrap();
        assert!(db.stats().unwrap().memtable_entries > 0);

        let ro = open_ro(dir.path());
        assert_eq!(ro.log_backend(), backend);
        assert_eq!(ro_state(&ro), db_state(&db));
        assert_eq!(ro.get(b"shared").unwrap().as_deref(), Some(&b"round 2"[..]));
        assert_eq!(ro.get(b"k:1:003").unwrap(), None);
        assert!(!ro.exists(b"k:2:007").unwrap());
        assert_eq!(
            ro.get(b"counter:a").unwrap(),
            Some(5u64.to_le_bytes().to_vec()),
            "the application's projection ran over the replayed tail"
        );
        assert_eq!(
            ro.get_entry(b"k:2:001").unwrap(),
            db.get_entry(b"k:2:001").unwrap()
        );
        assert_eq!(
            ro.scan_prefix(b"k:2:").unwrap(),
            db.scan_prefix(b"k:2:").unwrap()
        );
        assert_eq!(ro.get_events().unwrap(), db.get_events().unwrap());
        let newest = db.stats().unwrap().log.newest_event_id;
        assert_eq!(ro.position(), newest);
        let stats = ro.stats().unwrap();
        assert_eq!(stats.log.newest_event_id, newest);
        assert_eq!(stats.checkpoint, db.stats().unwrap().checkpoint);
        assert!(stats.memtable_entries > 0);
        assert!(ro.verify().unwrap().is_ok());
        let mut calls = 0;
        assert!(ro.verify_with_progress(|_| calls += 1).unwrap().is_ok());
        assert!(calls > 0);
        // The writer is undisturbed.
        db.put(b"after", b"1").unwrap();
        db.flush().unwrap();
        db.close().unwrap();
    }

    pub fn refresh_sees_new_writes(backend: LogBackend) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_with(config(dir.path(), backend)).unwrap();
        write_some(&db, 1);
        let ro = open_ro(dir.path());
        let before = ro_state(&ro);

        // The store does not move: only the tail grows.
        write_some(&db, 2);
        assert_eq!(
            ro_state(&ro),
            before,
            "the view stays at its point until refresh"
        );
        assert_eq!(ro.refresh().unwrap(), 53);
        assert_eq!(ro_state(&ro), db_state(&db));

        // The writer flushes: the store moved under the snapshot, the view is rebuilt over a
        // new one and still equals the writer's.
        write_some(&db, 3);
        db.flush().unwrap();
        write_some(&db, 4);
        assert_eq!(ro.refresh().unwrap(), 106);
        assert_eq!(ro_state(&ro), db_state(&db));
        assert_eq!(ro.get(b"counter:a").unwrap(), db.get(b"counter:a").unwrap());
        assert_eq!(ro.refresh().unwrap(), 0, "nothing new");

        // A rebuilt view lives in a new directory: refresh finds it.
        db.rebuild_view().unwrap();
        write_some(&db, 5);
        assert_eq!(ro.refresh().unwrap(), 53);
        assert_eq!(ro_state(&ro), db_state(&db));
        assert_eq!(
            ro.stats().unwrap().checkpoint,
            db.stats().unwrap().checkpoint
        );
    }

    pub fn events_since_follows_the_writer(backend: LogBackend) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open_with(config(dir.path(), backend).segment_size(4096)).unwrap();
        db.put(b"first", b"1").unwrap();
        let ro = open_ro(dir.path());
        assert_eq!(ro.position(), 1);
        let writer = {
            let db = db.clone();
            std::thread::spawn(move || {
                for i in 0..600u64 {
                    db.put(format!("w:{i}").as_bytes(), &[7; 40]).unwrap();
                }
            })
        };
        // Tail the log as `azoth events --follow` does, without refresh.
        let mut last = 1;
        while last < 601 {
            for item in ro.events_since(last).unwrap() {
                let (id, event) = item.unwrap();
                assert_eq!(id, last + 1, "dense, in order");
                let DatabaseEvent::WriteEvent { operation_id, .. } = event else {
                    panic!("unexpected event {event:?}");
                };
                assert_eq!(operation_id.sequence, id);
                last = id;
            }
            std::thread::yield_now();
        }
        writer.join().unwrap();
        assert_eq!(ro.get_events().unwrap(), db.get_events().unwrap());
        db.rotate().unwrap();
        assert_eq!(ro.log_units().unwrap(), db.log_units().unwrap());
        assert!(ro.metrics_text().unwrap().contains("azoth_log_events"));
        // The view stayed where it was until asked.
        assert_eq!(ro.position(), 1);
        assert_eq!(ro.get(b"w:0").unwrap(), None);
        assert_eq!(ro.refresh().unwrap(), 600);
        assert_eq!(ro.get(b"w:599").unwrap(), Some(vec![7; 40]));
        let since = ro
            .get_events_since(azoth_core::OperationId::new(0, 590))
            .unwrap();
        assert_eq!(since.len(), 11);
    }

    pub fn reads_a_directory_nobody_holds(backend: LogBackend) {
        let dir = tempfile::tempdir().unwrap();
        let expected = {
            let db = Database::open_with(config(dir.path(), backend)).unwrap();
            write_some(&db, 1);
            db.flush().unwrap();
            write_some(&db, 2);
            let state = db_state(&db);
            // A crash leaves the tail unflushed: the read-only open replays it.
            std::mem::forget(db);
            state
        };
        let ro = open_ro(dir.path());
        assert_eq!(ro_state(&ro), expected);
        assert!(ro.verify().unwrap().is_ok());
    }

    pub fn never_writes_into_the_directory(backend: LogBackend) {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::open_with(config(dir.path(), backend)).unwrap();
            write_some(&db, 1);
            db.flush().unwrap();
            write_some(&db, 2);
            db.close().unwrap();
        }
        let before = listing(dir.path());
        {
            let ro = open_ro(dir.path());
            assert!(!ro_state(&ro).is_empty());
            ro.refresh().unwrap();
            ro.verify().unwrap();
            ro.stats().unwrap();
            assert_eq!(ro.events_since(0).unwrap().count(), 106);
        }
        assert_eq!(listing(dir.path()), before);
    }
}

/// Every file under `dir` with its length, contents hash and modification time; LMDB's
/// `lock.mdb` is left out: it is LMDB's shared-memory reader table, where every reader (read
/// only or not) registers itself so that the writer keeps the pages it reads.
fn listing(dir: &Path) -> BTreeMap<PathBuf, (u64, blake3::Hash, SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                out.insert(
                    path.clone(),
                    (0, blake3::hash(b""), meta.modified().unwrap()),
                );
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n != "lock.mdb") {
                let bytes = std::fs::read(&path).unwrap();
                out.insert(
                    path,
                    (meta.len(), blake3::hash(&bytes), meta.modified().unwrap()),
                );
            }
        }
    }
    out
}

macro_rules! suite {
    ($name:ident, $backend:expr) => {
        mod $name {
            use super::*;
            #[test]
            fn reads_a_directory_a_database_holds() {
                bodies::reads_a_directory_a_database_holds($backend)
            }
            #[test]
            fn refresh_sees_new_writes() {
                bodies::refresh_sees_new_writes($backend)
            }
            #[test]
            fn events_since_follows_the_writer() {
                bodies::events_since_follows_the_writer($backend)
            }
            #[test]
            fn reads_a_directory_nobody_holds() {
                bodies::reads_a_directory_nobody_holds($backend)
            }
            #[test]
            fn never_writes_into_the_directory() {
                bodies::never_writes_into_the_directory($backend)
            }
            #[test]
            fn readers_never_see_a_batch_half_replayed_by_refresh() {
                bodies::readers_never_see_a_batch_half_replayed_by_refresh($backend)
            }
            #[test]
            fn reads_a_directory_another_process_holds() {
                in_another_process($backend)
            }
        }
    };
}

suite!(file_log, LogBackend::File);
suite!(lmdb_log, LogBackend::Lmdb);

#[test]
fn what_is_not_a_data_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    assert!(matches!(
        ReadOnlyDatabase::open(&missing),
        Err(AzothError::NotFound(_))
    ));
    assert!(matches!(
        ReadOnlyDatabase::open(dir.path()),
        Err(AzothError::NotFound(_))
    ));
    std::fs::create_dir(dir.path().join("log")).unwrap();
    std::fs::write(dir.path().join("log").join("notes.txt"), b"hello").unwrap();
    std::fs::write(dir.path().join("data.bin"), b"hello").unwrap();
    match ReadOnlyDatabase::open(dir.path()) {
        Err(AzothError::NotFound(msg)) => assert!(msg.contains("not an Azoth data directory")),
        other => panic!("expected NotFound, got {other:?}"),
    }
    // And nothing was created there.
    assert!(!missing.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

/// Run as a child process by `in_another_process`: holds the directory open with a
/// `Database`, writes, and writes again when told. Does nothing in a normal test run.
#[test]
fn database_holding_child() {
    let (Ok(dir), Ok(backend)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_BACKEND)) else {
        return;
    };
    let backend = if backend == "lmdb" {
        LogBackend::Lmdb
    } else {
        LogBackend::File
    };
    let db = Database::open_with(config(Path::new(&dir), backend)).unwrap();
    write_some(&db, 1);
    db.flush().unwrap();
    write_some(&db, 2);
    println!("READY");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    write_some(&db, 3);
    db.flush().unwrap();
    write_some(&db, 4);
    println!("MORE");
    line.clear();
    let _ = std::io::stdin().read_line(&mut line);
}

fn in_another_process(backend: LogBackend) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "database_holding_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir.path())
        .env(
            CHILD_BACKEND,
            if backend == LogBackend::Lmdb {
                "lmdb"
            } else {
                "file"
            },
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut wait_for = |word: &str| {
        let mut line = String::new();
        while !line.contains(word) {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "child ended early");
        }
    };
    wait_for("READY");
    assert!(matches!(
        Database::open_with(config(dir.path(), backend)),
        Err(AzothError::Locked { .. })
    ));
    let ro = open_ro(dir.path());
    assert_eq!(ro.position(), 106);
    assert_eq!(ro.get(b"shared").unwrap().as_deref(), Some(&b"round 2"[..]));
    assert_eq!(
        ro.get(b"counter:a").unwrap(),
        Some(5u64.to_le_bytes().to_vec())
    );
    assert_eq!(ro.scan_prefix(b"k:").unwrap().len(), 98);

    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "go").unwrap();
    wait_for("MORE");
    assert_eq!(ro.events_since(106).unwrap().count(), 106);
    assert_eq!(ro.refresh().unwrap(), 106);
    assert_eq!(ro.get(b"shared").unwrap().as_deref(), Some(&b"round 4"[..]));
    assert_eq!(
        ro.get(b"counter:a").unwrap(),
        Some(14u64.to_le_bytes().to_vec())
    );
    assert_eq!(ro.scan_prefix(b"k:").unwrap().len(), 196);
    assert!(ro.verify().unwrap().is_ok());
    drop(stdin);
    assert!(child.wait().unwrap().success());
}
