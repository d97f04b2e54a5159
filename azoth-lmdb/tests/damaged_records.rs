//! Records of the log's environment damaged or rewritten behind the log's back: every call
//! reports `Corruption` (or goes on where the damage does not matter) and none panics, also
//! where numbers read from the records would overflow.

use std::path::Path;

use azoth_core::{AzothError, EventLog};
use azoth_lmdb::LmdbEventLog;
use heed::types::Bytes;
use heed::{CommitOrAbort, Database, EnvOpenOptions};

fn ev(id: u64) -> Vec<u8> {
    format!("event-{id:08}").into_bytes()
}

/// A log of two sealed segments (1..=10, 11..=20, blocks of 5) and an active one (21..=25).
fn make_log(dir: &Path) {
    let log = LmdbEventLog::open(dir).unwrap();
    for first in (1..=25).step_by(5) {
        let events: Vec<_> = (first..first + 5).map(ev).collect();
        log.append_batch_with_ids(first, &events).unwrap();
        if first == 6 || first == 16 {
            log.rotate().unwrap();
        }
    }
}

/// Runs `f` on the named database of the log in `dir` in a committed write (the log must be
/// closed).
fn rewrite(dir: &Path, db: &str, f: impl FnOnce(&mut heed::RwTxn<'_>, Database<Bytes, Bytes>)) {
    // SAFETY: the test is the only user of the environment while it is open.
    let env = unsafe { EnvOpenOptions::new().max_dbs(8).open(dir.join("env")) }.unwrap();
    {
        let wtxn = env.write_txn().unwrap();
        let database = env
            .create_databases_and_commit(wtxn, |dbo, wtxn| {
                dbo.create_database::<Bytes, Bytes>(wtxn, Some(db))
                    .map(CommitOrAbort::<_, ()>::Commit)
            })
            .unwrap()
            .unwrap_commit();
        let mut wtxn = env.write_txn().unwrap();
        f(&mut wtxn, database);
        wtxn.commit().unwrap();
    }
    env.prepare_for_closing().wait();
}

fn segment(state: u8, last: u64) -> Vec<u8> {
    let mut out = vec![state];
    out.extend_from_slice(&last.to_le_bytes());
    out.extend_from_slice(&[0u8; 32]);
    out
}

fn block(count: u32) -> Vec<u8> {
    let mut out = count.to_le_bytes().to_vec();
    out.extend_from_slice(&[0u8; 32]);
    out
}

/// Every read and job of the log, each of which must return rather than panic; returns
/// whether any reported `Corruption`.
fn exercise(dir: &Path) -> bool {
    let log = match LmdbEventLog::open(dir) {
        Ok(log) => log,
        Err(e) => return e.is_corruption(),
    };
    let mut corruption = false;
    let mut note = |r: Result<(), AzothError>| {
        if let Err(e) = r {
            corruption |= e.is_corruption();
        }
    };
    note(log.stats().map(drop));
    note(log.units().map(drop));
    note(match log.verify() {
        Ok(report) => {
            if report.is_ok() {
                Ok(())
            } else {
                Err(AzothError::corruption(
                    azoth_core::Location::default(),
                    "verify",
                ))
            }
        }
        Err(e) => Err(e),
    });
    note(log.iter_range(0, None).map(|iter| iter.for_each(drop)));
    note(log.get(12).map(drop));
    note(log.archive(u64::MAX).map(drop));
    note(log.delete_range(0, u64::MAX).map(drop));
    let next = log.next_event_id().unwrap_or(1);
    note(log.append_with_id(next, b"x").map(drop));
    note(log.newest_event_id().map(drop));
    corruption
}

#[test]
fn a_sealed_segment_ending_before_it_begins_is_corruption_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    make_log(dir.path());
    rewrite(dir.path(), "segments", |txn, db| {
        db.put(txn, &11u64.to_be_bytes(), &segment(1, 3)).unwrap();
    });
    assert!(exercise(dir.path()));
}

#[test]
fn a_segment_ending_at_the_last_id_is_corruption_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    make_log(dir.path());
    rewrite(dir.path(), "segments", |txn, db| {
        db.put(txn, &11u64.to_be_bytes(), &segment(1, u64::MAX))
            .unwrap();
    });
    assert!(exercise(dir.path()));
}

#[test]
fn a_segment_at_id_zero_is_corruption_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    make_log(dir.path());
    rewrite(dir.path(), "segments", |txn, db| {
        db.clear(txn).unwrap();
        db.put(txn, &0u64.to_be_bytes(), &segment(0, 0)).unwrap();
    });
    rewrite(dir.path(), "blocks", |txn, db| db.clear(txn).unwrap());
    rewrite(dir.path(), "events", |txn, db| db.clear(txn).unwrap());
    assert!(exercise(dir.path()));
}

#[test]
fn a_block_whose_ids_overflow_is_corruption_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    make_log(dir.path());
    rewrite(dir.path(), "blocks", |txn, db| {
        db.put(txn, &(u64::MAX - 2).to_be_bytes(), &block(5))
            .unwrap();
    });
    assert!(exercise(dir.path()));
}

#[test]
fn a_block_claiming_billions_of_events_is_corruption_not_an_allocation() {
    let dir = tempfile::tempdir().unwrap();
    make_log(dir.path());
    rewrite(dir.path(), "blocks", |txn, db| {
        db.put(txn, &11u64.to_be_bytes(), &block(u32::MAX)).unwrap();
    });
    assert!(exercise(dir.path()));
}

#[test]
fn an_empty_block_record_is_corruption_not_an_endless_loop() {
    let dir = tempfile::tempdir().unwrap();
    make_log(dir.path());
    rewrite(dir.path(), "blocks", |txn, db| {
        db.put(txn, &11u64.to_be_bytes(), &block(0)).unwrap();
    });
    assert!(exercise(dir.path()));
}
