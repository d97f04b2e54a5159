//! Transactions: conflicts (read-write, write-write, phantom), no lost update, the seed's
//! counter and a bank transfer under concurrency, atomic batches, a proptest that concurrent
//! histories equal a serial execution in commit order, and SIGKILL during commits.
//!
//! The SIGKILL child is this test binary re-run with `txn_crash_child` selected and
//! `AZOTH_TXN_CRASH_DIR` set.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use azoth_core::{AzothError, DatabaseEvent, Operation, OperationId, Result};
use azoth_projector::{Config, Database, StoreBackend, SyncMode};
use proptest::prelude::*;

fn open(dir: &Path) -> Database {
    Database::open_with(Config::new(dir).sync_mode(SyncMode::Never)).unwrap()
}

fn decode(v: Option<Vec<u8>>) -> Result<u64> {
    match v {
        None => Ok(0),
        Some(bytes) => {
            Ok(u64::from_le_bytes(bytes.try_into().map_err(|_| {
                AzothError::Encoding("a counter is 8 bytes".into())
            })?))
        }
    }
}

#[test]
fn read_write_conflict_is_detected_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.put(b"x", b"1").unwrap();
    let mut t = db.begin_transaction().unwrap();
    assert_eq!(t.get(b"x").unwrap().as_deref(), Some(&b"1"[..]));
    t.put(b"y", b"from t").unwrap();
    db.put(b"x", b"2").unwrap();
    let before = db.get_events().unwrap().len();
    assert!(matches!(t.commit(), Err(AzothError::Conflict)));
    assert_eq!(db.get(b"y").unwrap(), None);
    assert_eq!(db.get_events().unwrap().len(), before);
}

#[test]
fn reading_an_absent_key_that_appears_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let mut t = db.begin_transaction().unwrap();
    assert!(!t.exists(b"x").unwrap());
    t.put(b"y", b"1").unwrap();
    db.put(b"x", b"now").unwrap();
    assert!(matches!(t.commit(), Err(AzothError::Conflict)));
}

#[test]
fn write_write_conflict_on_read_modify_write() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.put(b"n", &5u64.to_le_bytes()).unwrap();
    let mut a = db.begin_transaction().unwrap();
    let mut b = db.begin_transaction().unwrap();
    let na = decode(a.get(b"n").unwrap()).unwrap();
    let nb = decode(b.get(b"n").unwrap()).unwrap();
    a.put(b"n", &(na + 1).to_le_bytes()).unwrap();
    b.put(b"n", &(nb + 1).to_le_bytes()).unwrap();
    assert_eq!(a.commit().unwrap().len(), 1);
    assert!(matches!(b.commit(), Err(AzothError::Conflict)));
    assert_eq!(decode(db.get(b"n").unwrap()).unwrap(), 6);
}

#[test]
fn phantom_insert_and_delete_under_a_scanned_prefix_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.put(b"user:1", b"a").unwrap();
    db.put(b"zzz", b"outside").unwrap();

    // An insert under the prefix.
    let mut t = db.begin_transaction().unwrap();
    assert_eq!(t.scan_prefix(b"user:").unwrap().len(), 1);
    t.put(b"count", b"1").unwrap();
    db.put(b"user:2", b"b").unwrap();
    assert!(matches!(t.commit(), Err(AzothError::Conflict)));

    // A delete under the prefix, after a flush moved everything to the store.
    db.flush().unwrap();
    let mut t = db.begin_transaction().unwrap();
    assert_eq!(t.scan_prefix(b"user:").unwrap().len(), 2);
    t.put(b"count", b"2").unwrap();
    db.delete(b"user:1").unwrap();
    assert!(matches!(t.commit(), Err(AzothError::Conflict)));

    // A write outside the prefix is no conflict.
    let mut t = db.begin_transaction().unwrap();
    assert_eq!(t.scan_prefix(b"user:").unwrap().len(), 1);
    t.put(b"count", b"1").unwrap();
    db.put(b"zzz", b"changed").unwrap();
    assert_eq!(t.commit().unwrap().len(), 1);
}

#[test]
fn reads_see_own_writes_and_rollback_or_drop_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.put(b"p:a", b"1").unwrap();
    db.put(b"p:b", b"2").unwrap();
    let mut t = db.begin_transaction().unwrap();
    t.put(b"p:c", b"3").unwrap();
    t.delete(b"p:a").unwrap();
    t.put(b"p:b", b"22").unwrap();
    assert_eq!(t.get(b"p:a").unwrap(), None);
    assert_eq!(t.get(b"p:c").unwrap().as_deref(), Some(&b"3"[..]));
    assert_eq!(
        t.scan_prefix(b"p:").unwrap(),
        vec![
            (b"p:b".to_vec(), b"22".to_vec()),
            (b"p:c".to_vec(), b"3".to_vec())
        ]
    );
    t.rollback();
    {
        let mut t = db.begin_transaction().unwrap();
        t.put(b"p:d", b"4").unwrap();
    }
    assert_eq!(db.scan_prefix(b"p:").unwrap().len(), 2);
    assert_eq!(db.get(b"p:d").unwrap(), None);

    let mut t = db.begin_transaction().unwrap();
    t.put(b"p:c", b"3").unwrap();
    t.delete(b"p:a").unwrap();
    let ids = t.commit().unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[1].sequence, ids[0].sequence + 1);
    assert_eq!(ids[0].timestamp, ids[1].timestamp);
    assert_eq!(db.get(b"p:a").unwrap(), None);
    assert!(matches!(t_put_empty(&db), Err(AzothError::EmptyKey)));
}

fn t_put_empty(db: &Database) -> Result<()> {
    db.begin_transaction()?.put(b"", b"v")
}

#[test]
fn read_only_transactions_write_nothing_and_still_validate() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.put(b"x", b"1").unwrap();
    let events = db.get_events().unwrap().len();
    let mut t = db.begin_transaction().unwrap();
    t.get(b"x").unwrap();
    assert_eq!(t.commit().unwrap(), Vec::<OperationId>::new());
    assert_eq!(db.begin_transaction().unwrap().commit().unwrap().len(), 0);
    assert_eq!(db.get_events().unwrap().len(), events);

    let mut t = db.begin_transaction().unwrap();
    t.get(b"x").unwrap();
    db.put(b"x", b"2").unwrap();
    assert!(matches!(t.commit(), Err(AzothError::Conflict)));
    // Reading the key again with a new version fails at once.
    let mut t = db.begin_transaction().unwrap();
    t.get(b"x").unwrap();
    db.put(b"x", b"3").unwrap();
    assert!(matches!(t.get(b"x"), Err(AzothError::Conflict)));
}

#[test]
fn transact_gives_up_with_conflict_after_the_configured_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(
        Config::new(dir.path())
            .sync_mode(SyncMode::Never)
            .transaction_attempts(3),
    )
    .unwrap();
    let mut runs = 0;
    let result = db.transact(|txn| {
        runs += 1;
        txn.get(b"k")?;
        db.put(b"k", &[runs])?; // someone else always wins
        txn.put(b"other", b"x")
    });
    assert!(matches!(result, Err(AzothError::Conflict)));
    assert_eq!(runs, 3);
    assert_eq!(db.get(b"other").unwrap(), None);
    // Other errors are not retried.
    let mut runs = 0;
    let result: Result<()> = db.transact(|_| {
        runs += 1;
        Err(AzothError::Config("mine".into()))
    });
    assert!(matches!(result, Err(AzothError::Config(_))));
    assert_eq!(runs, 1);
}

/// The seed's counter: 10 threads × 1000 increments end at exactly 10 000.
#[test]
fn seed_counter_ends_at_exactly_ten_thousand() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    fn increment_counter(db: &Database, key: &[u8]) -> Result<u64> {
        db.transact(|txn| {
            let new_val = decode(txn.get(key)?)? + 1;
            txn.put(key, &new_val.to_le_bytes())?;
            Ok(new_val)
        })
    }
    std::thread::scope(|s| {
        for _ in 0..10 {
            s.spawn(|| {
                for _ in 0..1000 {
                    increment_counter(&db, b"visits").unwrap();
                }
            });
        }
    });
    assert_eq!(decode(db.get(b"visits").unwrap()).unwrap(), 10_000);
}

/// No lost update: 8 threads each add their own amounts to shared keys with plain
/// begin/commit, counting only their committed increments.
#[test]
fn no_lost_update_under_eight_threads() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let committed = Mutex::new(0u64);
    std::thread::scope(|s| {
        for t in 0..8u64 {
            let db = &db;
            let committed = &committed;
            s.spawn(move || {
                let mut mine = 0;
                for i in 0..300u64 {
                    let key = format!("n{}", (t + i) % 2);
                    let mut txn = db.begin_transaction().unwrap();
                    let n = match txn.get(key.as_bytes()) {
                        Ok(v) => decode(v).unwrap(),
                        Err(AzothError::Conflict) => continue,
                        Err(e) => panic!("{e}"),
                    };
                    txn.put(key.as_bytes(), &(n + 1).to_le_bytes()).unwrap();
                    match txn.commit() {
                        Ok(_) => mine += 1,
                        Err(AzothError::Conflict) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                *committed.lock().unwrap() += mine;
            });
        }
    });
    let total = decode(db.get(b"n0").unwrap()).unwrap() + decode(db.get(b"n1").unwrap()).unwrap();
    assert_eq!(total, *committed.lock().unwrap());
    assert!(total > 0);
}

/// Concurrent transfers between accounts keep the total constant; every transaction also
/// scans all accounts and checks the total it sees.
#[test]
fn bank_transfers_keep_the_total_constant() {
    const ACCOUNTS: u64 = 5;
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    for a in 0..ACCOUNTS {
        db.put(format!("acct:{a}").as_bytes(), &100u64.to_le_bytes())
            .unwrap();
    }
    let transfer = |db: &Database, from: u64, to: u64, amount: u64| -> Result<bool> {
        db.transact(|txn| {
            let total: u64 = txn
                .scan_prefix(b"acct:")?
                .into_iter()
                .map(|(_, v)| decode(Some(v)))
                .sum::<Result<u64>>()?;
            assert_eq!(total, ACCOUNTS * 100, "a transaction saw a torn state");
            let (fk, tk) = (format!("acct:{from}"), format!("acct:{to}"));
            let balance = decode(txn.get(fk.as_bytes())?)?;
            if balance < amount {
                return Ok(false);
            }
            let dest = decode(txn.get(tk.as_bytes())?)?;
            txn.put(fk.as_bytes(), &(balance - amount).to_le_bytes())?;
            txn.put(tk.as_bytes(), &(dest + amount).to_le_bytes())?;
            Ok(true)
        })
    };
    std::thread::scope(|s| {
        for t in 0..6u64 {
            let db = &db;
            s.spawn(move || {
                for i in 0..150u64 {
                    let from = (t + i) % ACCOUNTS;
                    let to = (t * 3 + i * 7 + 1) % ACCOUNTS;
                    if from != to {
                        transfer(db, from, to, 1 + (i * 13 + t) % 40).unwrap();
                    }
                }
            });
        }
    });
    let total: u64 = db
        .scan_prefix(b"acct:")
        .unwrap()
        .into_iter()
        .map(|(_, v)| decode(Some(v)).unwrap())
        .sum();
    assert_eq!(total, ACCOUNTS * 100);
}

/// `batch` and the async `batch_put` / `batch_delete` are one block: consecutive ids, one
/// timestamp, applied together.
#[test]
fn batches_are_one_block() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let ids = db
        .batch(vec![
            Operation::Put {
                key: b"a".to_vec(),
                value: b"1".to_vec(),
            },
            Operation::Put {
                key: b"b".to_vec(),
                value: b"2".to_vec(),
            },
            Operation::Delete { key: b"a".to_vec() },
        ])
        .unwrap();
    assert_consecutive(&ids, 3);
    // A bad operation refuses the whole batch.
    let events = db.get_events().unwrap().len();
    assert!(
        db.batch(vec![
            Operation::Put {
                key: b"c".to_vec(),
                value: b"3".to_vec(),
            },
            Operation::Delete { key: Vec::new() },
        ])
        .is_err()
    );
    assert_eq!(db.get_events().unwrap().len(), events);
    assert_eq!(db.get(b"c").unwrap(), None);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let adb = db.to_async();
    runtime.block_on(async {
        let ids = adb
            .batch_put(vec![
                (b"x".to_vec(), b"1".to_vec()),
                (b"y".to_vec(), b"2".to_vec()),
            ])
            .await
            .unwrap();
        assert_consecutive(&ids, 2);
        let ids = adb
            .batch_delete(vec![b"x".to_vec(), b"y".to_vec(), b"b".to_vec()])
            .await
            .unwrap();
        assert_consecutive(&ids, 3);
    });
    assert!(db.scan(None, None).unwrap().is_empty());
}

fn assert_consecutive(ids: &[OperationId], n: usize) {
    assert_eq!(ids.len(), n);
    for w in ids.windows(2) {
        assert_eq!(w[1].sequence, w[0].sequence + 1);
        assert_eq!(w[1].timestamp, w[0].timestamp);
    }
}

// ---- Serializability ----------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Step {
    Get(u8),
    Scan,
    Put(u8),
    Delete(u8),
}

#[derive(Debug, Clone, PartialEq)]
enum Observed {
    Value(Option<Vec<u8>>),
    Scan(Vec<(Vec<u8>, Vec<u8>)>),
}

fn key(k: u8) -> Vec<u8> {
    format!("k{k}").into_bytes()
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0u8..4).prop_map(Step::Get),
        1 => Just(Step::Scan),
        2 => (0u8..4).prop_map(Step::Put),
        1 => (0u8..4).prop_map(Step::Delete),
    ]
}

/// Runs `steps` on `apply_read` / `apply_write`, writing values unique to transaction `tag`.
fn run_steps(
    steps: &[Step],
    tag: &str,
    mut read: impl FnMut(&Step) -> Result<Observed>,
    mut write: impl FnMut(Vec<u8>, Option<Vec<u8>>) -> Result<()>,
) -> Result<Vec<Observed>> {
    let mut seen = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        match s {
            Step::Get(_) | Step::Scan => seen.push(read(s)?),
            Step::Put(k) => write(key(*k), Some(format!("{tag}.{i}").into_bytes()))?,
            Step::Delete(k) => write(key(*k), None)?,
        }
    }
    // Every transaction writes its own marker, so each committed one has ids (commit order).
    write(format!("t/{tag}").into_bytes(), Some(b"1".to_vec()))?;
    Ok(seen)
}

struct Committed {
    first: u64,
    steps: Vec<Step>,
    tag: String,
    seen: Vec<Observed>,
}

fn check_serializable(threads: Vec<Vec<Vec<Step>>>) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(
        Config::new(dir.path())
            .sync_mode(SyncMode::Never)
            .store_backend(StoreBackend::Memory),
    )
    .unwrap();
    let committed = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for (t, txns) in threads.iter().enumerate() {
            let db = &db;
            let committed = &committed;
            s.spawn(move || {
                for (n, steps) in txns.iter().enumerate() {
                    let tag = format!("{t}.{n}");
                    let mut txn = db.begin_transaction().unwrap();
                    let cell = std::cell::RefCell::new(&mut txn);
                    let seen = run_steps(
                        steps,
                        &tag,
                        |s| {
                            // Interleave the threads' reads and commits.
                            std::thread::yield_now();
                            match s {
                                Step::Get(k) => {
                                    Ok(Observed::Value(cell.borrow_mut().get(&key(*k))?))
                                }
                                _ => Ok(Observed::Scan(cell.borrow_mut().scan_prefix(b"k")?)),
                            }
                        },
                        |k, v| match v {
                            Some(v) => cell.borrow_mut().put(&k, &v),
                            None => cell.borrow_mut().delete(&k),
                        },
                    );
                    let seen = match seen {
                        Ok(seen) => seen,
                        Err(AzothError::Conflict) => continue,
                        Err(e) => panic!("{e}"),
                    };
                    match txn.commit() {
                        Ok(ids) => {
                            let writes = ids.len();
                            assert_consecutive(&ids, writes);
                            committed.lock().unwrap().push(Committed {
                                first: ids[0].sequence,
                                steps: steps.clone(),
                                tag,
                                seen,
                            });
                        }
                        Err(AzothError::Conflict) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            });
        }
    });
    let mut committed = committed.into_inner().unwrap();
    committed.sort_by_key(|c| c.first);
    // Replay serially in commit order against a model.
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for c in &committed {
        let model_cell = std::cell::RefCell::new(&mut model);
        let seen = run_steps(
            &c.steps,
            &c.tag,
            |s| {
                let m = model_cell.borrow();
                Ok(match s {
                    Step::Get(k) => Observed::Value(m.get(&key(*k)).cloned()),
                    _ => Observed::Scan(
                        m.range(b"k".to_vec()..b"l".to_vec())
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    ),
                })
            },
            |k, v| {
                let mut m = model_cell.borrow_mut();
                match v {
                    Some(v) => m.insert(k, v),
                    None => m.remove(&k),
                };
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(seen, c.seen, "transaction {} read differently", c.tag);
    }
    let view: BTreeMap<Vec<u8>, Vec<u8>> = db
        .scan(None, None)
        .unwrap()
        .into_iter()
        .map(|e| (e.key, e.value.unwrap()))
        .collect();
    assert_eq!(view, model);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn concurrent_histories_are_serializable(
        threads in prop::collection::vec(
            prop::collection::vec(prop::collection::vec(step(), 1..6), 1..12),
            2..5,
        )
    ) {
        check_serializable(threads);
    }
}

// ---- SIGKILL during commits ---------------------------------------------------------------

const KEYS_PER_TXN: usize = 4;

fn crash_config(dir: &Path) -> Config {
    Config::new(dir)
        .sync_mode(SyncMode::Always)
        .memtable_size(16 << 10)
        .flush_interval(Some(Duration::from_millis(20)))
}

/// Runs only as the child: commits multi-key transactions until killed, from two threads.
#[test]
fn txn_crash_child() {
    let Ok(dir) = std::env::var("AZOTH_TXN_CRASH_DIR") else {
        return;
    };
    let start: u64 = std::env::var("AZOTH_TXN_CRASH_START")
        .unwrap()
        .parse()
        .unwrap();
    let db = Database::open_with(crash_config(Path::new(&dir))).unwrap();
    let out = Mutex::new(std::io::stdout());
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let (db, out) = (&db, &out);
            s.spawn(move || {
                let mut i = start + t;
                loop {
                    db.transact(|txn| {
                        let n = decode(txn.get(b"count")?)?;
                        for j in 0..KEYS_PER_TXN {
                            txn.put(format!("t{i:08}/{j}").as_bytes(), b"v")?;
                        }
                        txn.put(b"count", &(n + 1).to_le_bytes())
                    })
                    .unwrap();
                    let mut out = out.lock().unwrap();
                    writeln!(out, "ack {i}").unwrap();
                    out.flush().unwrap();
                    i += 2;
                }
            });
        }
    });
}

#[test]
fn sigkill_during_commits_leaves_each_transaction_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked = Vec::new();
    let mut start = 0u64;
    for round in 0..3u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "txn_crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("AZOTH_TXN_CRASH_DIR", dir.path())
            .env("AZOTH_TXN_CRASH_START", start.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(std::result::Result::ok)
                .collect::<Vec<String>>()
        });
        std::thread::sleep(Duration::from_millis(150 + 70 * round));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        for line in reader.join().unwrap() {
            if let Some(i) = line.strip_prefix("ack ") {
                acked.push(i.parse::<u64>().unwrap());
            }
        }
        let db = Database::open_with(crash_config(dir.path())).unwrap();
        let mut complete = 0u64;
        let mut max_seen = start;
        let mut by_txn: BTreeMap<u64, usize> = BTreeMap::new();
        for (k, _) in db.scan_prefix(b"t").unwrap() {
            let s = String::from_utf8(k).unwrap();
            *by_txn.entry(s[1..9].parse().unwrap()).or_default() += 1;
        }
        for (i, n) in &by_txn {
            assert_eq!(*n, KEYS_PER_TXN, "round {round}: transaction {i} is torn");
            complete += 1;
            max_seen = max_seen.max(*i);
        }
        for i in &acked {
            assert!(
                by_txn.contains_key(i),
                "round {round}: lost transaction {i}"
            );
        }
        assert_eq!(decode(db.get(b"count").unwrap()).unwrap(), complete);
        // The log holds the transactions as whole blocks of KEYS_PER_TXN + 1 writes.
        let writes = db
            .get_events()
            .unwrap()
            .into_iter()
            .filter(|e| matches!(e, DatabaseEvent::WriteEvent { .. }))
            .count() as u64;
        assert_eq!(writes, complete * (KEYS_PER_TXN as u64 + 1));
        assert!(db.verify().unwrap().is_ok());
        db.close().unwrap();
        start = max_seen + 2 + (max_seen % 2);
    }
    assert!(!acked.is_empty(), "the child acknowledged nothing");
}

#[test]
fn transactions_are_send_and_async_transact_retries() {
    fn assert_send<T: Send>() {}
    assert_send::<azoth_projector::Transaction>();

    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let adb = open(dir.path()).to_async();
    runtime.block_on(async {
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let adb = adb.clone();
                tokio::spawn(async move {
                    for _ in 0..50 {
                        adb.transact(|txn| {
                            let n = decode(txn.get(b"n")?)?;
                            txn.put(b"n", &(n + 1).to_le_bytes())
                        })
                        .await
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    assert_eq!(decode(adb.database().get(b"n").unwrap()).unwrap(), 200);
}

/// A key written by a projection of an application event is versioned like any other: a
/// transaction that read it conflicts.
#[test]
fn a_projected_write_conflicts_with_a_transaction_that_read_the_key() {
    use azoth_projector::ProjectionContext;
    let dir = tempfile::tempdir().unwrap();
    let config = Config::new(dir.path())
        .sync_mode(SyncMode::Never)
        .projection(
            |kind: &str, payload: &[u8], view: &mut ProjectionContext<'_>| {
                if kind == "Renamed" {
                    view.put(b"user:1:name", payload)?;
                }
                Ok(())
            },
        );
    let db = Database::open_with(config).unwrap();
    let mut t = db.begin_transaction().unwrap();
    assert_eq!(t.get(b"user:1:name").unwrap(), None);
    t.put(b"user:1:seen", b"yes").unwrap();
    db.append_event("Renamed", b"Ada").unwrap();
    assert!(matches!(t.commit(), Err(AzothError::Conflict)));
    let mut t = db.begin_transaction().unwrap();
    assert_eq!(t.scan_prefix(b"user:1:").unwrap().len(), 1);
    t.put(b"user:1:seen", b"yes").unwrap();
    db.append_event("Renamed", b"Grace").unwrap();
    assert!(matches!(t.commit(), Err(AzothError::Conflict)));
}
