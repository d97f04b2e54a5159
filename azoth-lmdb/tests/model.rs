//! Model-based test of `LmdbEventLog` beyond the trait: random appends, rotations, archival,
//! deletions and reopenings against a plain model, checking reads and `verify()` after each
//! step. `AZOTH_MODEL_CASES` sets the number of cases (default 16).

use std::collections::BTreeMap;

use azoth_core::{EventLog, SyncMode};
use azoth_lmdb::{LmdbEventLog, LmdbLogOptions};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<u8>, u8),
    Rotate,
    Archive,
    DeleteOldest,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (proptest::collection::vec(any::<u8>(), 0..40), 1u8..8).prop_map(|(b, n)| Op::Append(b, n)),
        2 => Just(Op::Rotate),
        1 => Just(Op::Archive),
        1 => Just(Op::DeleteOldest),
        1 => Just(Op::Reopen),
    ]
}

fn open(dir: &std::path::Path) -> LmdbEventLog {
    LmdbLogOptions::default()
        .sync_mode(SyncMode::Never)
        .open(dir)
        .unwrap()
}

fn cases() -> u32 {
    std::env::var("AZOTH_MODEL_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(16)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn log_matches_its_model(ops in proptest::collection::vec(op(), 1..30)) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path());
        // The model: id -> event, and the sealed segments as (first, last).
        let mut events: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        let mut next = 1u64;
        let mut active_start = 1u64;
        let mut sealed: Vec<(u64, u64)> = Vec::new();
        for op in ops {
            match op {
                Op::Append(bytes, n) => {
                    let batch: Vec<Vec<u8>> = (0..u64::from(n))
                        .map(|i| { let mut e = bytes.clone(); e.extend_from_slice(&(next + i).to_le_bytes()); e })
                        .collect();
                    log.append_batch_with_ids(next, &batch).unwrap();
                    for e in batch { events.insert(next, e); next += 1; }
                }
                Op::Rotate => {
                    log.rotate().unwrap();
                    if active_start < next { sealed.push((active_start, next - 1)); active_start = next; }
                }
                Op::Archive => { log.archive(next).unwrap(); }
                Op::DeleteOldest => {
                    if let Some(&(first, last)) = sealed.first() {
                        prop_assert_eq!(log.delete_range(first, last).unwrap() as u64, last + 1 - first);
                        sealed.remove(0);
                        for id in first..=last { events.remove(&id); }
                    }
                }
                Op::Reopen => { drop(log); log = open(dir.path()); }
            }
            prop_assert_eq!(log.next_event_id().unwrap(), next);
            let oldest = events.keys().next().copied().unwrap_or(next);
            prop_assert_eq!(log.oldest_event_id().unwrap(), oldest);
            let read: Vec<(u64, Vec<u8>)> = log.iter_range(0, None).unwrap().map(|r| r.unwrap()).collect();
            let expected: Vec<(u64, Vec<u8>)> = events.iter().map(|(k, v)| (*k, v.clone())).collect();
            prop_assert_eq!(read, expected);
            for id in [oldest, next.saturating_sub(1), oldest.saturating_sub(1), (oldest + next) / 2] {
                prop_assert_eq!(log.get(id).unwrap(), events.get(&id).cloned());
            }
            let report = log.verify().unwrap();
            prop_assert!(report.is_ok(), "{:?}", report);
        }
    }
}
