//! The [`CanonicalStore`] conformance suite: one test body per rule of the trait's contract.
//!
//! Each body takes a [`Harness`] and panics when the store breaks the rule.
//! [`canonical_store_conformance_tests!`](crate::canonical_store_conformance_tests) runs them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::Harness;
use crate::error::Result;
use crate::store::{
    CanonicalStore, SortedWrites, StoreBatch, StoreIter, StoreWrite, StoreWriteRef, VersionedValue,
};
use crate::types::{Key, MAX_KEY_LEN, OperationId};

fn ok<T>(what: &str, result: Result<T>) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!("{what} failed: {e}"),
    }
}

fn drain(iter: Result<StoreIter>) -> Vec<(Key, VersionedValue)> {
    ok("range", iter)
        .map(|item| ok("range item", item))
        .collect()
}

fn keys(iter: Result<StoreIter>) -> Vec<Key> {
    drain(iter).into_iter().map(|(k, _)| k).collect()
}

/// A write of `key = value` by operation `seq`.
pub fn put(key: &[u8], value: &[u8], seq: u64) -> StoreWrite {
    StoreWrite {
        key: key.to_vec(),
        value: Some(value.to_vec()),
        operation_id: OperationId::new(1_000 + seq, seq),
    }
}

/// A delete of `key` by operation `seq`.
pub fn delete(key: &[u8], seq: u64) -> StoreWrite {
    StoreWrite {
        key: key.to_vec(),
        value: None,
        operation_id: OperationId::new(1_000 + seq, seq),
    }
}

fn apply_writes<S: CanonicalStore + ?Sized>(store: &S, writes: Vec<StoreWrite>) {
    ok(
        "apply",
        store.apply(&StoreBatch {
            writes,
            ..StoreBatch::default()
        }),
    );
}

/// A new store is empty with checkpoint 0.
pub fn empty_store<S: CanonicalStore + 'static>(h: &Harness<S>) {
    let store = h.open();
    assert_eq!(ok("get", store.get(b"k")), None);
    assert!(drain(store.range(None, None)).is_empty());
    assert!(drain(store.scan_prefix(b"")).is_empty());
    assert_eq!(ok("checkpoint", store.checkpoint()), 0);
    assert_eq!(ok("get_metadata", store.get_metadata("x")), None);
    assert!(ok("list_metadata", store.list_metadata("")).is_empty());
    let stats = ok("stats", store.stats());
    assert_eq!((stats.entries, stats.checkpoint), (0, 0));
}

/// `get` returns the value with the operation that wrote it; overwrites change both;
/// deletes remove, deleting an absent key is fine; a later write in one batch wins.
pub fn versioned_get<S: CanonicalStore + 'static>(h: &Harness<S>) {
    let store = h.open();
    apply_writes(&store, vec![put(b"a", b"1", 1), put(b"b", b"2", 2)]);
    let a = ok("get", store.get(b"a")).expect("a was written");
    assert_eq!(a.value, b"1");
    assert_eq!(a.operation_id, OperationId::new(1_001, 1));
    apply_writes(&store, vec![put(b"a", b"one", 3)]);
    let a = ok("get", store.get(b"a")).expect("a was overwritten");
    assert_eq!(
        (a.value.as_slice(), a.operation_id.sequence),
        (&b"one"[..], 3)
    );
    apply_writes(&store, vec![delete(b"b", 4), delete(b"never-written", 5)]);
    assert_eq!(ok("get", store.get(b"b")), None);
    assert_eq!(ok("get", store.get(b"never-written")), None);
    apply_writes(
        &store,
        vec![
            put(b"c", b"x", 6),
            put(b"c", b"y", 7),
            delete(b"a", 8),
            put(b"a", b"z", 9),
        ],
    );
    let c = ok("get", store.get(b"c")).expect("c was written");
    assert_eq!(
        (c.value.as_slice(), c.operation_id.sequence),
        (&b"y"[..], 7)
    );
    let a = ok("get", store.get(b"a")).expect("a was written again");
    assert_eq!(
        (a.value.as_slice(), a.operation_id.sequence),
        (&b"z"[..], 9)
    );
    apply_writes(&store, vec![put(b"empty", b"", 10)]);
    let empty = ok("get", store.get(b"empty")).expect("an empty value is stored");
    assert!(empty.value.is_empty());
}

/// `range` yields `[start, end)` in bytewise key order.
pub fn range_order_and_bounds<S: CanonicalStore + 'static>(h: &Harness<S>) {
    let store = h.open();
    let stored: Vec<&[u8]> = vec![b"b", b"a", b"ab", b"\x00", b"\xff\xff", b"c", b"ba", b"aa"];
    apply_writes(
        &store,
        stored
            .iter()
            .enumerate()
            .map(|(i, k)| put(k, k, i as u64 + 1))
            .collect(),
    );
    let mut sorted: Vec<Key> = stored.iter().map(|k| k.to_vec()).collect();
    sorted.sort();
    assert_eq!(
        keys(store.range(None, None)),
        sorted,
        "full range in key order"
    );
    let full = drain(store.range(None, None));
    assert!(
        full.iter().all(|(k, v)| &v.value == k),
        "values travel with their keys"
    );
    let v = |ks: &[&[u8]]| ks.iter().map(|k| k.to_vec()).collect::<Vec<_>>();
    assert_eq!(
        keys(store.range(Some(b"a"), Some(b"b"))),
        v(&[b"a", b"aa", b"ab"])
    );
    assert_eq!(
        keys(store.range(Some(b"aa"), None)),
        v(&[b"aa", b"ab", b"b", b"ba", b"c", b"\xff\xff"])
    );
    assert_eq!(keys(store.range(None, Some(b"aa"))), v(&[b"\x00", b"a"]));
    assert_eq!(
        keys(store.range(Some(b"a0"), Some(b"b0"))),
        v(&[b"aa", b"ab", b"b"])
    );
    assert!(
        keys(store.range(Some(b"b"), Some(b"b"))).is_empty(),
        "empty range"
    );
    assert!(
        keys(store.range(Some(b"c"), Some(b"a"))).is_empty(),
        "inverted range"
    );
    assert_eq!(keys(store.range(Some(b"zz"), None)), v(&[b"\xff\xff"]));
}

/// `scan_prefix` yields exactly the keys starting with the prefix, in order.
pub fn scan_prefix_bounds<S: CanonicalStore + 'static>(h: &Harness<S>) {
    let store = h.open();
    let stored: Vec<&[u8]> = vec![
        b"user:1",
        b"user:10",
        b"user:2",
        b"user",
        b"users",
        b"usea",
        b"\xff",
        b"\xff\x01",
        b"v",
    ];
    apply_writes(
        &store,
        stored
            .iter()
            .enumerate()
            .map(|(i, k)| put(k, b"v", i as u64 + 1))
            .collect(),
    );
    let v = |ks: &[&[u8]]| ks.iter().map(|k| k.to_vec()).collect::<Vec<_>>();
    assert_eq!(
        keys(store.scan_prefix(b"user:")),
        v(&[b"user:1", b"user:10", b"user:2"])
    );
    assert_eq!(
        keys(store.scan_prefix(b"user")),
        v(&[b"user", b"user:1", b"user:10", b"user:2", b"users"])
    );
    assert_eq!(keys(store.scan_prefix(b"\xff")), v(&[b"\xff", b"\xff\x01"]));
    assert!(keys(store.scan_prefix(b"w")).is_empty());
    assert_eq!(keys(store.scan_prefix(b"")).len(), stored.len());
}

/// One `apply` sets writes, checkpoint and metadata together; `checkpoint: None` keeps the
/// old checkpoint.
pub fn apply_is_atomic_with_checkpoint<S: CanonicalStore + 'static>(h: &Harness<S>) {
    let store = h.open();
    ok(
        "apply",
        store.apply(&StoreBatch {
            writes: vec![put(b"k1", b"v1", 1), put(b"k2", b"v2", 2)],
            checkpoint: Some(2),
            metadata: vec![("sub/a".into(), Some(b"2".to_vec()))],
        }),
    );
    assert_eq!(ok("checkpoint", store.checkpoint()), 2);
    assert_eq!(
        keys(store.range(None, None)),
        vec![b"k1".to_vec(), b"k2".to_vec()]
    );
    assert_eq!(
        ok("get_metadata", store.get_metadata("sub/a")),
        Some(b"2".to_vec())
    );
    apply_writes(&store, vec![put(b"k3", b"v3", 3)]);
    assert_eq!(
        ok("checkpoint", store.checkpoint()),
        2,
        "checkpoint None keeps it"
    );
    ok(
        "apply",
        store.apply(&StoreBatch {
            checkpoint: Some(3),
            ..StoreBatch::default()
        }),
    );
    assert_eq!(ok("checkpoint", store.checkpoint()), 3);
    ok(
        "apply of an empty batch",
        store.apply(&StoreBatch::default()),
    );
    assert_eq!(ok("checkpoint", store.checkpoint()), 3);
    assert_eq!(ok("stats", store.stats()).entries, 3);
}

/// Writes in a `Vec` (strictly ascending keys), lent as [`SortedWrites`] to
/// [`CanonicalStore::apply_sorted`].
pub struct LentWrites(pub Vec<StoreWrite>);

impl SortedWrites for LentWrites {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn for_each(&self, f: &mut dyn FnMut(StoreWriteRef<'_>) -> Result<()>) -> Result<()> {
        self.0.iter().try_for_each(|w| {
            f(StoreWriteRef {
                key: &w.key,
                value: w.value.as_deref(),
                operation_id: w.operation_id,
            })
        })
    }
}

/// `apply_sorted` leaves the store as `apply` of the same writes would, whether the keys lie
/// before, among or after the stored ones (and then appended), with deletes among them; it
/// sets the checkpoint.
pub fn apply_sorted_equals_apply<S: CanonicalStore + 'static>(h: &Harness<S>) {
    let store = h.open();
    let mut seq = 0;
    let mut batch = |keys: &[&str], delete_every: usize| -> Vec<StoreWrite> {
        keys.iter()
            .enumerate()
            .map(|(i, k)| {
                seq += 1;
                if delete_every > 0 && i % delete_every == 0 {
                    delete(k.as_bytes(), seq)
                } else {
                    put(k.as_bytes(), format!("v{seq}").as_bytes(), seq)
                }
            })
            .collect()
    };
    let rounds = [
        batch(&["m1", "m2", "m3"], 0),
        batch(&["m4", "m5", "m6", "m7"], 0),
        batch(&["a1", "m2", "m25", "m3", "n1", "n2"], 0),
        batch(&["b", "m1", "m6", "o1", "o2", "o3"], 2),
        batch(&["p1", "p2", "p3"], 3),
        batch(&[], 0),
    ];
    let mut expected: std::collections::BTreeMap<Key, VersionedValue> = Default::default();
    for (checkpoint, writes) in (1..).zip(rounds) {
        for w in &writes {
            match &w.value {
                Some(v) => expected.insert(
                    w.key.clone(),
                    VersionedValue {
                        value: v.clone(),
                        operation_id: w.operation_id,
                    },
                ),
                None => expected.remove(&w.key),
            };
        }
        ok(
            "apply_sorted",
            store.apply_sorted(&LentWrites(writes), checkpoint),
        );
        assert_eq!(ok("checkpoint", store.checkpoint()), checkpoint);
        let got = drain(store.range(None, None));
        let want: Vec<(Key, VersionedValue)> = expected.clone().into_iter().collect();
        assert_eq!(got, want, "after round {checkpoint}");
        for (k, v) in &want {
            assert_eq!(ok("get", store.get(k)).as_ref(), Some(v));
        }
    }
}

/// `apply_sorted_after` applies nothing when its `before_commit` fails, and applies the
/// writes with the checkpoint, as `apply_sorted` does, once it succeeds.
pub fn apply_sorted_after_commits_only_past_before_commit<S: CanonicalStore + 'static>(
    h: &Harness<S>,
) {
    let store = h.open();
    let writes = || LentWrites(vec![put(b"k1", b"v1", 1), put(b"k2", b"v2", 2)]);
    let refused = store.apply_sorted_after(&writes(), 2, &mut || {
        Err(crate::AzothError::Io(std::io::Error::other(
            "the log did not sync",
        )))
    });
    assert!(refused.is_err(), "a failed before_commit fails the apply");
    assert_eq!(ok("checkpoint", store.checkpoint()), 0);
    assert!(drain(store.range(None, None)).is_empty(), "nothing applied");

    let mut calls = 0;
    ok(
        "apply_sorted_after",
        store.apply_sorted_after(&writes(), 2, &mut || {
            calls += 1;
            Ok(())
        }),
    );
    assert!(calls >= 1, "before_commit was called");
    assert_eq!(ok("checkpoint", store.checkpoint()), 2);
    let keys: Vec<Key> = drain(store.range(None, None))
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, vec![b"k1".to_vec(), b"k2".to_vec()]);
}

/// Readers on other threads never see an `apply` in part: every batch sets the keys `a` and
/// `b` and the checkpoint to the same number.
pub fn concurrent_readers_see_whole_applies<S: CanonicalStore + 'static>(h: &Harness<S>) {
    const APPLIES: u64 = 40;
    let store = Arc::new(h.open());
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let store = Arc::clone(&store);
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            loop {
                let finished = done.load(Ordering::Acquire);
                let snapshot = drain(store.range(None, None));
                if let [(ka, a), (kb, b)] = snapshot.as_slice() {
                    assert_eq!((ka.as_slice(), kb.as_slice()), (&b"a"[..], &b"b"[..]));
                    assert_eq!(a.value, b.value, "a range saw half of an apply");
                } else {
                    assert!(snapshot.is_empty(), "a range saw half of the first apply");
                }
                if finished {
                    return;
                }
            }
        })
    };
    for n in 1..=APPLIES {
        let value = n.to_le_bytes();
        ok(
            "apply",
            store.apply(&StoreBatch {
                writes: vec![put(b"a", &value, n), put(b"b", &value, n)],
                checkpoint: Some(n),
                metadata: vec![],
            }),
        );
    }
    done.store(true, Ordering::Release);
    if let Err(panic) = reader.join() {
        std::panic::resume_unwind(panic);
    }
    assert_eq!(ok("checkpoint", store.checkpoint()), APPLIES);
}

/// Metadata is set, replaced, removed and listed by prefix in name order.
pub fn metadata<S: CanonicalStore + 'static>(h: &Harness<S>) {
    let store = h.open();
    ok("put_metadata", store.put_metadata("sub/b", b"2"));
    ok("put_metadata", store.put_metadata("sub/a", b"1"));
    ok("put_metadata", store.put_metadata("other", b"x"));
    ok("put_metadata", store.put_metadata("sub/c", b""));
    assert_eq!(
        ok("get_metadata", store.get_metadata("sub/a")),
        Some(b"1".to_vec())
    );
    assert_eq!(
        ok("get_metadata", store.get_metadata("sub/c")),
        Some(Vec::new())
    );
    assert_eq!(ok("get_metadata", store.get_metadata("sub")), None);
    let listed = ok("list_metadata", store.list_metadata("sub/"));
    assert_eq!(
        listed,
        vec![
            ("sub/a".to_owned(), b"1".to_vec()),
            ("sub/b".to_owned(), b"2".to_vec()),
            ("sub/c".to_owned(), Vec::new()),
        ]
    );
    assert_eq!(ok("list_metadata", store.list_metadata("")).len(), 4);
    ok("put_metadata", store.put_metadata("sub/a", b"10"));
    ok(
        "apply",
        store.apply(&StoreBatch {
            metadata: vec![("sub/b".into(), None), ("absent".into(), None)],
            ..StoreBatch::default()
        }),
    );
    assert_eq!(
        ok("get_metadata", store.get_metadata("sub/a")),
        Some(b"10".to_vec())
    );
    assert_eq!(ok("get_metadata", store.get_metadata("sub/b")), None);
    let names: Vec<String> = ok("list_metadata", store.list_metadata("sub/"))
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, vec!["sub/a".to_owned(), "sub/c".to_owned()]);
    assert!(ok("list_metadata", store.list_metadata("zzz")).is_empty());
    assert_eq!(
        ok("stats", store.stats()).entries,
        0,
        "metadata is not a key"
    );
}

/// A `range` iterator reads the snapshot it started from: later applies are not seen.
pub fn snapshot_iterators<S: CanonicalStore + 'static>(h: &Harness<S>) {
    let store = h.open();
    apply_writes(
        &store,
        (0..300u64)
            .map(|i| put(format!("k{i:04}").as_bytes(), b"old", i + 1))
            .collect(),
    );
    let mut iter = ok("range", store.range(None, None));
    let first = ok("range item", iter.next().expect("300 entries"));
    assert_eq!(first.0, b"k0000");
    let mut later = vec![delete(b"k0150", 301), put(b"k0299", b"new", 302)];
    later.push(put(b"k0150x", b"inserted", 303));
    apply_writes(&store, later);
    let rest: Vec<_> = iter.map(|item| ok("range item", item)).collect();
    assert_eq!(rest.len(), 299, "the snapshot lost or gained entries");
    assert!(
        rest.iter().all(|(_, v)| v.value == b"old"),
        "the snapshot saw a later apply"
    );
    assert!(rest.iter().any(|(k, _)| k == b"k0150"));
    let prefix_iter = ok("scan_prefix", store.scan_prefix(b"k01"));
    apply_writes(&store, vec![delete(b"k0100", 304)]);
    assert_eq!(
        prefix_iter.count(),
        99 + 1,
        "k0100..k0199 minus k0150, plus k0150x"
    );
    assert_eq!(ok("get", store.get(b"k0150")), None);
}

/// What was applied is there after reopening: values, versions, checkpoint, metadata.
pub fn reopen_persists<S: CanonicalStore + 'static>(h: &Harness<S>) {
    let store = h.open();
    ok(
        "apply",
        store.apply(&StoreBatch {
            writes: vec![put(b"a", b"1", 1), put(b"b", b"2", 2), delete(b"a", 3)],
            checkpoint: Some(3),
            metadata: vec![("m".into(), Some(b"meta".to_vec()))],
        }),
    );
    apply_writes(&store, vec![put(b"c", b"3", 4)]);
    ok("sync", store.sync());
    let store = h.reopen(store);
    assert_eq!(ok("get", store.get(b"a")), None);
    let b = ok("get", store.get(b"b")).expect("b survives reopening");
    assert_eq!(
        (b.value.as_slice(), b.operation_id),
        (&b"2"[..], OperationId::new(1_002, 2))
    );
    assert!(ok("get", store.get(b"c")).is_some());
    assert_eq!(ok("checkpoint", store.checkpoint()), 3);
    assert_eq!(
        ok("get_metadata", store.get_metadata("m")),
        Some(b"meta".to_vec())
    );
    assert_eq!(
        keys(store.range(None, None)),
        vec![b"b".to_vec(), b"c".to_vec()]
    );
}

/// Keys of the maximum length and values of 1 MiB are stored exactly.
pub fn large_values<S: CanonicalStore + 'static>(h: &Harness<S>) {
    let store = h.open();
    let key = vec![b'k'; MAX_KEY_LEN];
    let value: Vec<u8> = (0..1024 * 1024).map(|i: u32| (i % 253) as u8).collect();
    apply_writes(&store, vec![put(&key, &value, 1), put(b"small", b"s", 2)]);
    let check = |store: &S| {
        let got = ok("get", store.get(&key)).expect("the large entry");
        assert!(got.value == value, "a 1 MiB value came back changed");
        assert_eq!(keys(store.scan_prefix(b"kk")), vec![key.clone()]);
    };
    check(&store);
    ok("sync", store.sync());
    let store = h.reopen(store);
    check(&store);
}

/// `stats` counts the live keys and reports the checkpoint.
pub fn stats<S: CanonicalStore + 'static>(h: &Harness<S>) {
    let store = h.open();
    apply_writes(
        &store,
        (0..50u64)
            .map(|i| put(format!("k{i}").as_bytes(), &[7u8; 100], i + 1))
            .collect(),
    );
    ok(
        "apply",
        store.apply(&StoreBatch {
            writes: (0..10u64)
                .map(|i| delete(format!("k{i}").as_bytes(), 51 + i))
                .collect(),
            checkpoint: Some(60),
            metadata: vec![],
        }),
    );
    let stats = ok("stats", store.stats());
    assert_eq!(stats.entries, 40);
    assert_eq!(stats.checkpoint, 60);
    assert!(stats.bytes > 0, "40 entries occupy no bytes");
    ok("compact", store.compact());
    let stats = ok("stats", store.stats());
    assert_eq!(
        (stats.entries, stats.checkpoint),
        (40, 60),
        "compact changed the content"
    );
    assert_eq!(drain(store.range(None, None)).len(), 40);
}
