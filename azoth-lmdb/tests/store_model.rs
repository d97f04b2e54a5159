//! Model-based test of `LmdbStore` against `azoth_core::MemoryStore`: random batches (with
//! repeated keys and deletes) and runs of ascending puts (which the store may append) applied to a store that starts with a 1 MiB map, interleaved
//! with compactions and reopenings; point reads, ranges, prefixes, the checkpoint and stats
//! must agree after every step. `AZOTH_MODEL_CASES` sets the number of cases (default 16).

use azoth_core::{CanonicalStore, MemoryStore, OperationId, StoreBatch, StoreWrite};
use azoth_lmdb::{LmdbStore, LmdbStoreOptions};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Apply(Vec<(u8, u8, Option<u16>)>),
    Compact,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => proptest::collection::vec((0u8..4, any::<u8>(), proptest::option::weighted(0.8, 0u16..3000)), 0..60)
            .prop_map(Op::Apply),
        // Puts of ascending keys: past every stored key (the store appends) or among them.
        4 => (0u8..4, any::<u8>(), 1u8..60, 0u16..300).prop_map(|(prefix, start, n, len)| {
            Op::Apply((start..=start.saturating_add(n)).map(|k| (prefix, k, Some(len))).collect())
        }),
        1 => Just(Op::Compact),
        1 => Just(Op::Reopen),
    ]
}

fn open(dir: &std::path::Path) -> LmdbStore {
    LmdbStoreOptions::default()
        .map_size(1 << 20)
        .open(dir)
        .unwrap()
}

fn cases() -> u32 {
    std::env::var("AZOTH_MODEL_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(16)
}

fn all(iter: azoth_core::StoreIter) -> Vec<(Vec<u8>, azoth_core::VersionedValue)> {
    iter.map(|r| r.unwrap()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn store_matches_memory_store(ops in proptest::collection::vec(op(), 1..20)) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path());
        let model = MemoryStore::new();
        let mut seq = 0u64;
        for op in ops {
            match op {
                Op::Apply(writes) => {
                    let writes = writes
                        .into_iter()
                        .map(|(prefix, k, len)| {
                            seq += 1;
                            StoreWrite {
                                key: vec![b'a' + prefix, k],
                                value: len.map(|l| vec![(seq % 251) as u8; usize::from(l)]),
                                operation_id: OperationId::new(seq * 10, seq),
                            }
                        })
                        .collect();
                    let batch = StoreBatch {
                        writes,
                        checkpoint: Some(seq),
                        metadata: vec![(format!("m{}", seq % 3), Some(seq.to_le_bytes().to_vec()))],
                    };
                    store.apply(&batch).unwrap();
                    model.apply(&batch).unwrap();
                }
                Op::Compact => { store.compact().unwrap(); }
                Op::Reopen => { drop(store); store = open(dir.path()); }
            }
            prop_assert_eq!(all(store.range(None, None).unwrap()), all(model.range(None, None).unwrap()));
            prop_assert_eq!(all(store.scan_prefix(b"b").unwrap()), all(model.scan_prefix(b"b").unwrap()));
            prop_assert_eq!(
                all(store.range(Some(b"a\x80"), Some(b"c\x10")).unwrap()),
                all(model.range(Some(b"a\x80"), Some(b"c\x10")).unwrap())
            );
            for k in [0u8, 7, 128, 255] {
                prop_assert_eq!(store.get(&[b'c', k]).unwrap(), model.get(&[b'c', k]).unwrap());
            }
            prop_assert_eq!(store.checkpoint().unwrap(), model.checkpoint().unwrap());
            prop_assert_eq!(store.list_metadata("m").unwrap(), model.list_metadata("m").unwrap());
            prop_assert_eq!(store.stats().unwrap().entries, model.stats().unwrap().entries);
        }
    }
}
