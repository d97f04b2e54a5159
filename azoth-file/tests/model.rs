//! Model-based test: random appends, rotations, archivals, retention, reopenings and torn
//! writes against a `Vec` of the events that must be there. `AZOTH_MODEL_CASES` sets the
//! number of cases (default 24).

mod common;

use std::path::Path;

use azoth_core::EventLog;
use azoth_file::FileEventLog;
use azoth_file::format::{SEGMENT_HEADER_LEN, frame_len};
use common::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// Append a block of this many events (each `len` bytes).
    Append(usize, usize),
    Rotate,
    /// Archive up to this fraction (per mille) of the newest id.
    Archive(u64),
    /// Delete from the oldest id up to this fraction (per mille) of the newest id.
    Retain(u64),
    Reopen,
    /// Append a block, then crash with only part of it written (cut this many bytes off).
    TornAppend(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..6, 0usize..200).prop_map(|(n, l)| Op::Append(n, l)),
        1 => Just(Op::Rotate),
        1 => (0u64..1000).prop_map(Op::Archive),
        1 => (0u64..1000).prop_map(Op::Retain),
        1 => Just(Op::Reopen),
        1 => (1usize..4, 1usize..400).prop_map(|(n, c)| Op::TornAppend(n, c)),
    ]
}

fn bytes(id: u64, len: usize) -> Vec<u8> {
    let mut b = id.to_le_bytes().to_vec();
    b.resize(8 + len, (id % 251) as u8);
    b
}

fn open(dir: &Path) -> FileEventLog {
    open_small(dir, 1500)
}

fn check(log: &FileEventLog, model: &[(u64, Vec<u8>)]) {
    let got: Vec<(u64, Vec<u8>)> = log
        .iter_range(0, None)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(got.len(), model.len());
    assert!(got == model, "log differs from the model");
    let report = log.verify().unwrap();
    assert!(report.is_ok(), "{report:?}");
}

fn run(ops: &[Op]) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Some(open(dir.path()));
    let mut model: Vec<(u64, Vec<u8>)> = Vec::new();
    for op in ops {
        let l = log.as_ref().unwrap();
        let next = l.next_event_id().unwrap();
        match *op {
            Op::Append(n, len) => {
                let events: Vec<Vec<u8>> =
                    (next..next + n as u64).map(|id| bytes(id, len)).collect();
                l.append_batch_with_ids(next, &events).unwrap();
                model.extend((next..).zip(events));
            }
            Op::Rotate => {
                l.rotate().unwrap();
            }
            Op::Archive(f) => {
                l.archive(l.newest_event_id().unwrap() * f / 1000).unwrap();
            }
            Op::Retain(f) => {
                let up_to = l.newest_event_id().unwrap() * f / 1000;
                let n = l.delete_range(0, up_to).unwrap();
                let oldest = l.oldest_event_id().unwrap();
                let before = model.len();
                model.retain(|(id, _)| *id >= oldest);
                assert_eq!(before - model.len(), n);
            }
            Op::Reopen => {
                drop(log.take());
                log = Some(open(dir.path()));
            }
            Op::TornAppend(n, cut) => {
                let events: Vec<Vec<u8>> =
                    (next..next + n as u64).map(|id| bytes(id, 30)).collect();
                l.append_batch_with_ids(next, &events).unwrap();
                drop(log.take());
                let active = segments(dir.path()).pop().unwrap();
                let len = std::fs::metadata(&active).unwrap().len();
                let block = frame_len(&events).unwrap() as u64;
                if len >= SEGMENT_HEADER_LEN as u64 + block {
                    // The block is the active segment's last: tear it.
                    let f = std::fs::OpenOptions::new()
                        .write(true)
                        .open(&active)
                        .unwrap();
                    f.set_len(len - (cut as u64 % block).max(1)).unwrap();
                } else {
                    // It filled its segment, which was sealed: it stays.
                    model.extend((next..).zip(events));
                }
                log = Some(open(dir.path()));
            }
        }
        check(log.as_ref().unwrap(), &model);
    }
    drop(log);
    check(&open(dir.path()), &model);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("AZOTH_MODEL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(24),
        ..ProptestConfig::default()
    })]

    #[test]
    fn file_log_matches_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        run(&ops);
    }
}
