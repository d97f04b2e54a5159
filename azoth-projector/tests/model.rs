//! Model-based property test: random operation sequences, with reopens, flushes and
//! `rebuild_view`, leave the view equal to a replay of the log and to a `BTreeMap` model.

use std::collections::BTreeMap;
use std::path::Path;

use azoth_core::{DatabaseEvent, Operation, SyncMode};
use azoth_projector::{
    Config, Database, LogBackend, ProjectionContext, StoreBackend, decode_payload,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Put(u8, Vec<u8>),
    Delete(u8),
    Batch(Vec<(u8, Option<Vec<u8>>)>),
    Credit(u8, u64),
    Flush,
    Reopen,
    Rebuild,
}

fn key(k: u8) -> Vec<u8> {
    format!("k{k}").into_bytes()
}

fn balance_key(account: u8) -> Vec<u8> {
    format!("balance:{account}").into_bytes()
}

fn op() -> impl Strategy<Value = Op> {
    let value = proptest::collection::vec(any::<u8>(), 0..6);
    prop_oneof![
        4 => (0u8..8, value.clone()).prop_map(|(k, v)| Op::Put(k, v)),
        2 => (0u8..8).prop_map(Op::Delete),
        2 => proptest::collection::vec((0u8..8, proptest::option::of(value)), 0..4)
            .prop_map(Op::Batch),
        2 => (0u8..3, 1u64..5).prop_map(|(a, n)| Op::Credit(a, n)),
        1 => Just(Op::Flush),
        1 => Just(Op::Reopen),
        1 => Just(Op::Rebuild),
    ]
}

fn credit(kind: &str, payload: &[u8], view: &mut ProjectionContext<'_>) -> azoth_core::Result<()> {
    if let Some(account) = kind.strip_prefix("Credit:") {
        let amount: u64 = decode_payload(payload)?;
        let key = format!("balance:{account}");
        let old = view
            .get(key.as_bytes())?
            .and_then(|v| v.try_into().ok())
            .map_or(0, u64::from_le_bytes);
        view.put(key.as_bytes(), &(old + amount).to_le_bytes())?;
    }
    Ok(())
}

fn config(dir: &Path, lmdb: bool) -> Config {
    let config = Config::new(dir)
        .sync_mode(SyncMode::Never)
        .memtable_size(2048)
        .projection(credit);
    if lmdb {
        config.log_backend(LogBackend::Lmdb)
    } else {
        config.store_backend(StoreBackend::Memory)
    }
}

/// The view a replay of the whole log gives, computed from the events alone.
fn replay(db: &Database) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut view = BTreeMap::new();
    for event in db.get_events().unwrap() {
        match event {
            DatabaseEvent::WriteEvent { operation, .. } => match operation {
                Operation::Put { key, value } => {
                    view.insert(key, value);
                }
                Operation::Delete { key } => {
                    view.remove(&key);
                }
            },
            DatabaseEvent::AppEvent { kind, payload, .. } => {
                let account = kind.strip_prefix("Credit:").unwrap();
                let amount: u64 = decode_payload(&payload).unwrap();
                let key = format!("balance:{account}").into_bytes();
                let old = view.get(&key).map_or(0, |v: &Vec<u8>| {
                    u64::from_le_bytes(v[..].try_into().unwrap())
                });
                view.insert(key, (old + amount).to_le_bytes().to_vec());
            }
            _ => {}
        }
    }
    view
}

fn live(db: &Database) -> BTreeMap<Vec<u8>, Vec<u8>> {
    db.scan(None, None)
        .unwrap()
        .into_iter()
        .map(|e| (e.key, e.value.unwrap()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn view_equals_replay_of_the_log(ops in proptest::collection::vec(op(), 1..40), lmdb in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Database::open_with(config(dir.path(), lmdb)).unwrap();
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Put(k, v) => {
                    db.put(&key(k), &v).unwrap();
                    model.insert(key(k), v);
                }
                Op::Delete(k) => {
                    db.delete(&key(k)).unwrap();
                    model.remove(&key(k));
                }
                Op::Batch(items) => {
                    let ops = items.into_iter().map(|(k, v)| match v {
                        Some(value) => {
                            model.insert(key(k), value.clone());
                            Operation::Put { key: key(k), value }
                        }
                        None => {
                            model.remove(&key(k));
                            Operation::Delete { key: key(k) }
                        }
                    }).collect();
                    db.batch(ops).unwrap();
                }
                Op::Credit(account, amount) => {
                    db.append_typed(&format!("Credit:{account}"), &amount).unwrap();
                    let k = balance_key(account);
                    let old = model.get(&k).map_or(0, |v| u64::from_le_bytes(v[..].try_into().unwrap()));
                    model.insert(k, (old + amount).to_le_bytes().to_vec());
                }
                Op::Flush => db.flush().unwrap(),
                Op::Reopen => {
                    db.close().unwrap();
                    db = Database::open_with(config(dir.path(), lmdb)).unwrap();
                }
                Op::Rebuild => db.rebuild_view().unwrap(),
            }
            for (k, v) in &model {
                let got = db.get(k).unwrap();
                prop_assert_eq!(got.as_ref(), Some(v));
            }
        }
        prop_assert_eq!(&live(&db), &model);
        prop_assert_eq!(&replay(&db), &model);
        db.close().unwrap();
        let db = Database::open_with(config(dir.path(), lmdb)).unwrap();
        prop_assert_eq!(&live(&db), &model);
        prop_assert!(db.verify().unwrap().is_ok());
    }
}
