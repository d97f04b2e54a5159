//! The format record (`system` / `azoth.format`: magic + u32 LE version) of every
//! environment: written at creation, checked at every open, added to an environment that
//! predates it by a writable open only (FORMAT.md, "Format record").

use std::path::{Path, PathBuf};

use azoth_core::{AzothError, CanonicalStore, EventLog, OperationId, StoreBatch, StoreWrite};
use azoth_lmdb::{LmdbEventLog, LmdbStore, LmdbStoreSnapshot};
use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, EnvOpenOptions, RwTxn};

const KEY: &[u8] = b"azoth.format";

fn record(magic: &[u8; 8], version: u32) -> Vec<u8> {
    let mut out = magic.to_vec();
    out.extend_from_slice(&version.to_le_bytes());
    out
}

/// Opens the environment in `dir` directly (the Azoth handle on it must be dropped).
fn raw_env(dir: &Path) -> Env {
    // SAFETY: the test is the only user of the environment while it is open.
    unsafe { EnvOpenOptions::new().max_dbs(8).open(dir) }.unwrap()
}

/// The `system` database of `env`, created if missing.
fn system_db(env: &Env) -> Database<'_, Bytes, Bytes> {
    let wtxn = env.write_txn().unwrap();
    env.create_databases_and_commit(wtxn, |dbo, wtxn| {
        dbo.create_database::<Bytes, Bytes>(wtxn, Some("system"))
            .map(CommitOrAbort::<_, ()>::Commit)
    })
    .unwrap()
    .unwrap_commit()
}

/// Runs `f` on the `system` database of the environment in `dir` in a committed write.
fn with_system(dir: &Path, f: impl FnOnce(&mut RwTxn<'_>, Database<Bytes, Bytes>)) {
    let env = raw_env(dir);
    let system = system_db(&env);
    let mut wtxn = env.write_txn().unwrap();
    f(&mut wtxn, system);
    wtxn.commit().unwrap();
    env.prepare_for_closing().wait();
}

/// The format record of the environment in `dir`; `None` if it has none (or no `system`).
fn read_record(dir: &Path) -> Option<Vec<u8>> {
    let env = raw_env(dir);
    let found = {
        let rtxn = env.read_txn().unwrap();
        let system = env
            .open_databases_and_commit(rtxn, |dbo, rtxn| {
                dbo.open_database::<Bytes, Bytes>(rtxn, Some("system"))
                    .map(CommitOrAbort::<_, ()>::Commit)
            })
            .unwrap()
            .unwrap_commit();
        let rtxn = env.read_txn().unwrap();
        system.and_then(|db| db.get(&rtxn, KEY).unwrap().map(<[u8]>::to_vec))
    };
    env.prepare_for_closing().wait();
    found
}

fn put(seq: u64) -> StoreBatch {
    StoreBatch {
        writes: vec![StoreWrite {
            key: format!("k{seq}").into_bytes(),
            value: Some(vec![seq as u8]),
            operation_id: OperationId::new(0, seq),
        }],
        checkpoint: Some(seq),
        metadata: vec![],
    }
}

/// A store in `dir` holding one entry; returns its environment's directory.
fn make_store(dir: &Path) -> PathBuf {
    let store = LmdbStore::open(dir).unwrap();
    store.apply(&put(1)).unwrap();
    store.env_path()
}

/// A log in `dir` holding two events; returns its environment's directory.
fn make_log(dir: &Path) -> PathBuf {
    let log = LmdbEventLog::open(dir).unwrap();
    log.append_batch_with_ids(1, &[b"a".to_vec(), b"b".to_vec()])
        .unwrap();
    log.env_path().to_path_buf()
}

#[test]
fn new_environments_carry_the_format_record() {
    let dir = tempfile::tempdir().unwrap();
    let store_env = make_store(&dir.path().join("store"));
    assert_eq!(read_record(&store_env), Some(record(b"AZLMDSTO", 1)));
    let log_env = make_log(&dir.path().join("log"));
    assert_eq!(read_record(&log_env), Some(record(b"AZLMDLOG", 1)));
}

#[test]
fn compaction_keeps_the_format_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbStore::open(dir.path()).unwrap();
    store.apply(&put(1)).unwrap();
    store.compact().unwrap();
    let env = store.env_path();
    drop(store);
    assert!(env.ends_with("env-00000000000000000001"));
    assert_eq!(read_record(&env), Some(record(b"AZLMDSTO", 1)));
}

fn assert_corruption<T: std::fmt::Debug>(r: Result<T, AzothError>, what: &str) {
    match r {
        Err(AzothError::Corruption { detail, .. }) => {
            assert!(detail.contains("magic"), "{what}: {detail}")
        }
        other => panic!("{what}: expected Corruption, got {other:?}"),
    }
}

fn assert_unsupported<T: std::fmt::Debug>(r: Result<T, AzothError>, what: &str) {
    match r {
        Err(AzothError::UnsupportedVersion {
            found: 2,
            supported: 1,
            ..
        }) => {}
        other => panic!("{what}: expected UnsupportedVersion, got {other:?}"),
    }
}

#[test]
fn a_wrong_magic_is_refused_by_every_open() {
    let dir = tempfile::tempdir().unwrap();
    let (store_dir, log_dir) = (dir.path().join("store"), dir.path().join("log"));
    let store_env = make_store(&store_dir);
    let log_env = make_log(&log_dir);
    // A store's record in a log's environment is a wrong magic too.
    let planted_store = record(b"NOTAZOTH", 1);
    let planted_log = record(b"AZLMDSTO", 1);
    with_system(&store_env, |txn, db| {
        db.put(txn, KEY, &planted_store).unwrap()
    });
    with_system(&log_env, |txn, db| db.put(txn, KEY, &planted_log).unwrap());

    assert_corruption(LmdbStore::open(&store_dir), "store");
    assert_corruption(LmdbStoreSnapshot::open(&store_dir), "snapshot");
    assert_corruption(LmdbEventLog::open(&log_dir), "log");
    assert_corruption(LmdbEventLog::open_read_only(&log_dir), "read-only log");
    // A refused open leaves the record as it found it.
    assert_eq!(read_record(&store_env), Some(planted_store));
    assert_eq!(read_record(&log_env), Some(planted_log));
}

#[test]
fn a_newer_version_is_refused_by_every_open() {
    let dir = tempfile::tempdir().unwrap();
    let (store_dir, log_dir) = (dir.path().join("store"), dir.path().join("log"));
    let store_env = make_store(&store_dir);
    let log_env = make_log(&log_dir);
    with_system(&store_env, |txn, db| {
        db.put(txn, KEY, &record(b"AZLMDSTO", 2)).unwrap()
    });
    with_system(&log_env, |txn, db| {
        db.put(txn, KEY, &record(b"AZLMDLOG", 2)).unwrap()
    });

    assert_unsupported(LmdbStore::open(&store_dir), "store");
    assert_unsupported(LmdbStoreSnapshot::open(&store_dir), "snapshot");
    assert_unsupported(LmdbEventLog::open(&log_dir), "log");
    assert_unsupported(LmdbEventLog::open_read_only(&log_dir), "read-only log");
    assert_eq!(read_record(&store_env), Some(record(b"AZLMDSTO", 2)));
}

#[test]
fn a_store_without_the_record_is_read_as_is_and_gains_it_when_opened_writable() {
    let dir = tempfile::tempdir().unwrap();
    let env = make_store(dir.path());
    // What a store written before the record existed looks like.
    with_system(&env, |txn, db| {
        db.delete(txn, KEY).unwrap();
    });
    assert_eq!(read_record(&env), None);
    let before = std::fs::read(env.join("data.mdb")).unwrap();

    let snapshot = LmdbStoreSnapshot::open(dir.path()).unwrap();
    assert_eq!(snapshot.checkpoint().unwrap(), 1);
    assert_eq!(snapshot.get(b"k1").unwrap().map(|v| v.value), Some(vec![1]));
    drop(snapshot);
    assert_eq!(std::fs::read(env.join("data.mdb")).unwrap(), before);
    assert_eq!(read_record(&env), None);

    let store = LmdbStore::open(dir.path()).unwrap();
    assert_eq!(store.checkpoint().unwrap(), 1);
    assert_eq!(store.get(b"k1").unwrap().map(|v| v.value), Some(vec![1]));
    drop(store);
    assert_eq!(read_record(&env), Some(record(b"AZLMDSTO", 1)));
}

#[test]
fn a_log_without_the_record_is_read_as_is_and_gains_it_when_opened_writable() {
    let dir = tempfile::tempdir().unwrap();
    let env = make_log(dir.path());
    // What a log written before the record existed looks like: no `system` database at all.
    {
        let raw = raw_env(&env);
        let system = system_db(&raw);
        let mut wtxn = raw.write_txn().unwrap();
        // SAFETY: no other handle of this database is in use.
        unsafe { system.remove(&mut wtxn) }.unwrap();
        wtxn.commit().unwrap();
        raw.prepare_for_closing().wait();
    }
    assert_eq!(read_record(&env), None);
    let before = std::fs::read(env.join("data.mdb")).unwrap();

    let reader = LmdbEventLog::open_read_only(dir.path()).unwrap();
    assert_eq!(reader.newest_event_id().unwrap(), 2);
    assert_eq!(reader.get(2).unwrap().as_deref(), Some(&b"b"[..]));
    assert!(reader.verify().unwrap().is_ok());
    drop(reader);
    assert_eq!(std::fs::read(env.join("data.mdb")).unwrap(), before);
    assert_eq!(read_record(&env), None);

    let log = LmdbEventLog::open(dir.path()).unwrap();
    assert_eq!(log.newest_event_id().unwrap(), 2);
    log.append_with_id(3, b"c").unwrap();
    assert!(log.verify().unwrap().is_ok());
    drop(log);
    assert_eq!(read_record(&env), Some(record(b"AZLMDLOG", 1)));
}
