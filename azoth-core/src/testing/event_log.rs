//! The [`EventLog`] conformance suite: one test body per rule of the trait's contract.
//!
//! Each body takes a [`Harness`] and panics when the log breaks the rule.
//! [`event_log_conformance_tests!`](crate::event_log_conformance_tests) runs them all.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use super::Harness;
use crate::error::{AzothError, Result};
use crate::event_log::EventLog;
use crate::types::EventId;

/// Collects `iter_range(start, end)`, panicking on an error item.
pub fn collect<L: EventLog + ?Sized>(
    log: &L,
    start: EventId,
    end: Option<EventId>,
) -> Vec<(EventId, Vec<u8>)> {
    match log.iter_range(start, end) {
        Ok(iter) => iter
            .map(|item| match item {
                Ok(pair) => pair,
                Err(e) => panic!("iter_range({start}, {end:?}) yielded an error: {e}"),
            })
            .collect(),
        Err(e) => panic!("iter_range({start}, {end:?}) failed: {e}"),
    }
}

fn ids<L: EventLog + ?Sized>(log: &L, start: EventId, end: Option<EventId>) -> Vec<EventId> {
    collect(log, start, end)
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

fn ok<T>(what: &str, result: Result<T>) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!("{what} failed: {e}"),
    }
}

/// The payload the suite writes for event `id`: recognisable, and different for every id.
pub fn payload(id: EventId) -> Vec<u8> {
    format!("event-{id}").into_bytes()
}

fn append_singles<L: EventLog + ?Sized>(log: &L, ids: std::ops::RangeInclusive<EventId>) {
    for id in ids {
        ok("append_with_id", log.append_with_id(id, &payload(id)));
    }
}

fn assert_invalid_id(result: Result<()>, expected: EventId, got: EventId) {
    match result {
        Err(AzothError::InvalidEventId {
            expected: e,
            got: g,
        }) => {
            assert_eq!(
                (e, g),
                (expected, got),
                "InvalidEventId carries the wrong ids"
            );
        }
        Err(e) => panic!("append of id {got} (next {expected}) gave {e}, not InvalidEventId"),
        Ok(()) => panic!("append of id {got} was accepted, but the next id is {expected}"),
    }
}

/// An empty log: `oldest == next == 1`, `newest == 0`, nothing to read, zero counts.
pub fn empty_log<L: EventLog + 'static>(h: &Harness<L>) {
    let log = h.open();
    assert_eq!(ok("next_event_id", log.next_event_id()), 1);
    assert_eq!(ok("oldest_event_id", log.oldest_event_id()), 1);
    assert_eq!(ok("newest_event_id", log.newest_event_id()), 0);
    for id in [0, 1, 2, u64::MAX] {
        assert_eq!(ok("get", log.get(id)), None, "get({id}) on an empty log");
    }
    assert!(collect(&log, 0, None).is_empty());
    assert!(collect(&log, 1, Some(100)).is_empty());
    let stats = ok("stats", log.stats());
    assert_eq!(stats.event_count, 0);
    assert_eq!(stats.oldest_event_id, 1);
    assert_eq!(stats.newest_event_id, 0);
}

/// Ids are dense from 1, whether appended one by one or in batches, and read back as written.
pub fn ids_dense_from_one<L: EventLog + 'static>(h: &Harness<L>) {
    // Through a trait object, as the projector holds its log.
    let log: Box<dyn EventLog> = Box::new(h.open());
    append_singles(&*log, 1..=3);
    let batch: Vec<Vec<u8>> = (4..=8).map(payload).collect();
    ok(
        "append_batch_with_ids",
        log.append_batch_with_ids(4, &batch),
    );
    append_singles(&*log, 9..=10);
    assert_eq!(ok("next_event_id", log.next_event_id()), 11);
    assert_eq!(ok("newest_event_id", log.newest_event_id()), 10);
    assert_eq!(ok("oldest_event_id", log.oldest_event_id()), 1);
    let read = collect(&*log, 0, None);
    let expected: Vec<_> = (1..=10).map(|id| (id, payload(id))).collect();
    assert_eq!(read, expected, "iter_range(0, None) after appending 1..=10");
    for id in 1..=10 {
        assert_eq!(ok("get", log.get(id)), Some(payload(id)), "get({id})");
    }
}

/// An append with any id but `next_event_id()` is refused with `InvalidEventId` and writes
/// nothing, for single events, batches and empty batches alike.
pub fn wrong_id_refused<L: EventLog + 'static>(h: &Harness<L>) {
    let log = h.open();
    assert_invalid_id(log.append_with_id(0, b"x"), 1, 0);
    assert_invalid_id(log.append_with_id(2, b"x"), 1, 2);
    assert_invalid_id(log.append_batch_with_ids(5, &[b"x".to_vec()]), 1, 5);
    assert_eq!(ok("next_event_id", log.next_event_id()), 1);
    append_singles(&log, 1..=3);
    assert_invalid_id(log.append_with_id(3, b"again"), 4, 3);
    assert_invalid_id(log.append_with_id(5, b"gap"), 4, 5);
    assert_invalid_id(log.append_with_id(u64::MAX, b"far"), 4, u64::MAX);
    assert_invalid_id(
        log.append_batch_with_ids(2, &[b"a".to_vec(), b"b".to_vec()]),
        4,
        2,
    );
    assert_invalid_id(log.append_batch_with_ids(6, &[]), 4, 6);
    assert_eq!(ok("next_event_id", log.next_event_id()), 4);
    assert_eq!(ids(&log, 0, None), vec![1, 2, 3]);
    assert_eq!(ok("get", log.get(4)), None);
    assert_eq!(
        ok("get", log.get(3)),
        Some(payload(3)),
        "a refused append changed id 3"
    );
}

/// A batch is stored whole, in order, with consecutive ids; an empty batch is a no-op.
pub fn batch_atomicity<L: EventLog + 'static>(h: &Harness<L>) {
    let log = h.open();
    ok("empty batch", log.append_batch_with_ids(1, &[]));
    assert_eq!(ok("next_event_id", log.next_event_id()), 1);
    let first: Vec<Vec<u8>> = (1..=5).map(payload).collect();
    ok(
        "append_batch_with_ids",
        log.append_batch_with_ids(1, &first),
    );
    assert_eq!(ok("next_event_id", log.next_event_id()), 6);
    ok("empty batch", log.append_batch_with_ids(6, &[]));
    assert_eq!(ok("next_event_id", log.next_event_id()), 6);
    let second: Vec<Vec<u8>> = (6..=7).map(payload).collect();
    ok(
        "append_batch_with_ids",
        log.append_batch_with_ids(6, &second),
    );
    let read = collect(&log, 1, None);
    let expected: Vec<_> = (1..=7).map(|id| (id, payload(id))).collect();
    assert_eq!(read, expected, "two batches read back");
    assert_eq!(
        ok("get", log.get(5)),
        Some(payload(5)),
        "last event of a batch"
    );
}

/// `iter_range` streams `[start, end)`: open and closed ends, `start = 0`, empty and inverted
/// ranges, `start` past the newest, and `end = None` fixed at the newest id of the call.
pub fn iter_range_bounds<L: EventLog + 'static>(h: &Harness<L>) {
    let log = h.open();
    append_singles(&log, 1..=20);
    let all: Vec<EventId> = (1..=20).collect();
    assert_eq!(ids(&log, 0, None), all, "iter_range(0, None)");
    assert_eq!(ids(&log, 1, None), all, "iter_range(1, None)");
    assert_eq!(ids(&log, 5, Some(10)), (5..10).collect::<Vec<_>>());
    assert_eq!(ids(&log, 0, Some(3)), vec![1, 2]);
    assert_eq!(ids(&log, 15, Some(100)), (15..=20).collect::<Vec<_>>());
    assert_eq!(ids(&log, 20, None), vec![20]);
    assert_eq!(ids(&log, 20, Some(21)), vec![20]);
    assert!(ids(&log, 7, Some(7)).is_empty(), "empty range");
    assert!(ids(&log, 10, Some(5)).is_empty(), "inverted range");
    assert!(ids(&log, 21, None).is_empty(), "start past the newest");
    assert!(
        ids(&log, 1000, Some(2000)).is_empty(),
        "start far past the newest"
    );
    assert!(ids(&log, u64::MAX, None).is_empty(), "start = u64::MAX");
    let read = collect(&log, 3, Some(6));
    assert_eq!(read, (3..6).map(|id| (id, payload(id))).collect::<Vec<_>>());

    let open_ended = ok("iter_range", log.iter_range(1, None));
    append_singles(&log, 21..=25);
    let seen: Vec<EventId> = open_ended.map(|item| ok("iter item", item).0).collect();
    assert_eq!(
        seen, all,
        "iter_range(_, None) must stop at the newest event at the time of the call"
    );
}

/// `get` of 0, of ids past the newest and of deleted ids is `None`.
pub fn get_missing_and_deleted<L: EventLog + 'static>(h: &Harness<L>) {
    let log = h.open();
    append_singles(&log, 1..=4);
    ok("rotate", log.rotate());
    append_singles(&log, 5..=6);
    assert_eq!(ok("get", log.get(0)), None, "get(0)");
    assert_eq!(ok("get", log.get(7)), None, "get(next_event_id)");
    assert_eq!(ok("get", log.get(1_000_000)), None, "get past the end");
    assert_eq!(ok("get", log.get(u64::MAX)), None, "get(u64::MAX)");
    assert_eq!(ok("delete_range", log.delete_range(1, 4)), 4);
    for id in 1..=4 {
        assert_eq!(ok("get", log.get(id)), None, "get({id}) after its deletion");
    }
    assert_eq!(ok("get", log.get(5)), Some(payload(5)));
}

/// `rotate` seals the active unit; reads cross unit boundaries; rotating an empty active unit
/// changes nothing.
pub fn rotate_and_read_across<L: EventLog + 'static>(h: &Harness<L>) {
    let log = h.open();
    append_singles(&log, 1..=5);
    let first = ok("rotate", log.rotate());
    ok(
        "append_batch_with_ids",
        log.append_batch_with_ids(6, &(6..=10).map(payload).collect::<Vec<_>>()),
    );
    let second = ok("rotate", log.rotate());
    assert_ne!(
        first, second,
        "two sealed units were reported under one path"
    );
    ok("rotate of an empty active unit", log.rotate());
    append_singles(&log, 11..=12);
    assert_eq!(ok("next_event_id", log.next_event_id()), 13);
    let expected: Vec<_> = (1..=12).map(|id| (id, payload(id))).collect();
    assert_eq!(
        collect(&log, 0, None),
        expected,
        "reading across two rotations"
    );
    assert_eq!(ids(&log, 4, Some(8)), vec![4, 5, 6, 7]);
    assert_eq!(ids(&log, 10, Some(12)), vec![10, 11]);
    for id in 1..=12 {
        assert_eq!(ok("get", log.get(id)), Some(payload(id)), "get({id})");
    }
    let stats = ok("stats", log.stats());
    assert_eq!(stats.event_count, 12);
    assert!(
        stats.file_count >= 2,
        "two sealed units hold events, stats reports {} units",
        stats.file_count
    );
}

/// `delete_range` frees only whole sealed units inside `[start, end]`, returns how many
/// events it freed, never touches the active unit, and moves `oldest_event_id` forward.
pub fn delete_range_semantics<L: EventLog + 'static>(h: &Harness<L>) {
    let log = h.open();
    append_singles(&log, 1..=5);
    ok("rotate", log.rotate());
    append_singles(&log, 6..=10);
    ok("rotate", log.rotate());
    append_singles(&log, 11..=12);

    for (start, end, deleted, what) in [
        (1, 3, 0, "partly covered unit"),
        (2, 5, 0, "partly covered unit"),
        (6, 9, 0, "partly covered unit"),
        (9, 3, 0, "inverted range"),
    ] {
        assert_eq!(
            ok("delete_range", log.delete_range(start, end)),
            deleted,
            "{what}"
        );
    }
    assert_eq!(ids(&log, 0, None), (1..=12).collect::<Vec<_>>());

    assert_eq!(ok("delete_range", log.delete_range(0, 5)), 5);
    assert_eq!(ok("oldest_event_id", log.oldest_event_id()), 6);
    assert_eq!(
        ids(&log, 1, None),
        (6..=12).collect::<Vec<_>>(),
        "start before oldest"
    );
    assert_eq!(
        ids(&log, 0, Some(8)),
        vec![6, 7],
        "start = 0 after a deletion"
    );
    assert_eq!(
        ok("delete_range", log.delete_range(0, 5)),
        0,
        "deleting again"
    );

    let freed = ok("delete_range", log.delete_range(0, u64::MAX));
    assert_eq!(
        freed, 5,
        "only the sealed unit 6..=10 may go, not the active unit"
    );
    assert_eq!(ok("oldest_event_id", log.oldest_event_id()), 11);
    assert_eq!(ok("newest_event_id", log.newest_event_id()), 12);
    assert_eq!(ok("next_event_id", log.next_event_id()), 13);
    assert_eq!(
        collect(&log, 0, None),
        vec![(11, payload(11)), (12, payload(12))]
    );
    let stats = ok("stats", log.stats());
    assert_eq!(stats.event_count, 2);
    assert_eq!((stats.oldest_event_id, stats.newest_event_id), (11, 12));

    // Appends continue after deletions, and a log whose units are all gone is empty but
    // keeps its position.
    append_singles(&log, 13..=13);
    ok("rotate", log.rotate());
    assert_eq!(ok("delete_range", log.delete_range(0, u64::MAX)), 3);
    assert_eq!(ok("next_event_id", log.next_event_id()), 14);
    assert_eq!(ok("oldest_event_id", log.oldest_event_id()), 14);
    assert_eq!(ok("newest_event_id", log.newest_event_id()), 13);
    assert!(collect(&log, 0, None).is_empty());
    append_singles(&log, 14..=14);
    assert_eq!(collect(&log, 0, None), vec![(14, payload(14))]);
}

/// `stats` agrees with what `iter_range` and the id accessors report, and a log holding no
/// event counts no unit holding events.
fn assert_stats_agree<L: EventLog + ?Sized>(log: &L, what: &str) {
    let stats = ok("stats", log.stats());
    let held = collect(log, 0, None);
    assert_eq!(stats.event_count, held.len() as u64, "{what}: event_count");
    assert_eq!(
        stats.oldest_event_id,
        ok("oldest_event_id", log.oldest_event_id()),
        "{what}: oldest_event_id"
    );
    assert_eq!(
        stats.newest_event_id,
        ok("newest_event_id", log.newest_event_id()),
        "{what}: newest_event_id"
    );
    if held.is_empty() {
        assert_eq!(
            stats.file_count, 0,
            "{what}: no event is held, yet {} units hold events",
            stats.file_count
        );
    }
}

/// Edge cases of every method, checked again after reopening: rotations of an empty active
/// unit, refused appends at the ids around the next one, empty events, reads starting in a
/// hole `delete_range` left, and deletions that cover nothing, part of a unit, the active
/// unit, or what is already gone.
pub fn edge_cases<L: EventLog + 'static>(h: &Harness<L>) {
    let log = h.open();
    assert_stats_agree(&log, "a new log");
    ok("rotate of an empty log", log.rotate());
    ok("second rotate of an empty log", log.rotate());
    assert_eq!(ok("delete_range", log.delete_range(0, u64::MAX)), 0);
    assert_eq!(ok("delete_range", log.delete_range(5, 1)), 0);
    let empty = |log: &L, what: &str| {
        assert_eq!(ok("next_event_id", log.next_event_id()), 1, "{what}");
        assert_eq!(ok("oldest_event_id", log.oldest_event_id()), 1, "{what}");
        assert_eq!(ok("newest_event_id", log.newest_event_id()), 0, "{what}");
        assert!(collect(log, 0, Some(u64::MAX)).is_empty(), "{what}");
        assert_stats_agree(log, what);
    };
    empty(&log, "an empty log rotated twice");
    let log = h.reopen(log);
    empty(&log, "an empty log reopened");
    for id in [0, 2, u64::MAX] {
        assert_invalid_id(log.append_with_id(id, b"x"), 1, id);
        assert_invalid_id(log.append_batch_with_ids(id, &[b"x".to_vec()]), 1, id);
        assert_invalid_id(log.append_batch_with_ids(id, &[]), 1, id);
    }
    empty(&log, "an empty log after refused appends");

    // Units 1..=3, 4..=6, 7..=9 sealed, 10..=11 active; events of 0 bytes among them.
    ok("append_with_id", log.append_with_id(1, b""));
    ok(
        "append_batch_with_ids",
        log.append_batch_with_ids(2, &[payload(2), Vec::new()]),
    );
    assert_eq!(
        ok("get", log.get(1)),
        Some(Vec::new()),
        "an event of 0 bytes"
    );
    ok("rotate", log.rotate());
    ok("rotate of an empty active unit", log.rotate());
    append_singles(&log, 4..=6);
    ok("rotate", log.rotate());
    append_singles(&log, 7..=9);
    ok("rotate", log.rotate());
    append_singles(&log, 10..=11);
    for id in [0, 11, 13, u64::MAX] {
        assert_invalid_id(log.append_with_id(id, b"x"), 12, id);
        assert_invalid_id(log.append_batch_with_ids(id, &[b"x".to_vec()]), 12, id);
    }
    assert_eq!(
        ok("get", log.get(11)),
        Some(payload(11)),
        "a refused append changed 11"
    );
    assert_eq!(ok("get", log.get(12)), None, "a refused append wrote 12");
    assert_stats_agree(&log, "four units");

    for (start, end, deleted, what) in [
        (4, 6, 3, "a middle unit"),
        (4, 6, 0, "deleting it again"),
        (1, 2, 0, "part of a unit"),
        (2, 9, 3, "part of one, all of another"),
        (10, 11, 0, "the active unit"),
        (11, 10, 0, "start > end"),
        (12, u64::MAX, 0, "past the newest"),
    ] {
        assert_eq!(
            ok("delete_range", log.delete_range(start, end)),
            deleted,
            "{what}"
        );
    }

    let holed = |log: &L, what: &str| {
        let mut all: Vec<(EventId, Vec<u8>)> =
            vec![(1, Vec::new()), (2, payload(2)), (3, Vec::new())];
        all.extend((10..=11).map(|id| (id, payload(id))));
        assert_eq!(collect(log, 0, None), all, "{what}: the whole log");
        assert_eq!(
            collect(log, 0, Some(u64::MAX)),
            all,
            "{what}: end = u64::MAX"
        );
        assert_eq!(ids(log, 5, None), vec![10, 11], "{what}: start in the hole");
        assert_eq!(
            ids(log, 4, Some(10)),
            Vec::<EventId>::new(),
            "{what}: only the hole"
        );
        assert_eq!(
            ids(log, 8, Some(11)),
            vec![10],
            "{what}: start in the hole, end inside"
        );
        assert_eq!(
            ids(log, 3, Some(3)),
            Vec::<EventId>::new(),
            "{what}: end = start"
        );
        assert_eq!(
            ids(log, 11, Some(3)),
            Vec::<EventId>::new(),
            "{what}: start > end"
        );
        assert_eq!(ids(log, 0, Some(0)), Vec::<EventId>::new(), "{what}: 0..0");
        for id in [0, 4, 6, 7, 9, 12, u64::MAX] {
            assert_eq!(ok("get", log.get(id)), None, "{what}: get({id})");
        }
        assert_eq!(ok("get", log.get(3)), Some(Vec::new()), "{what}: get(3)");
        assert_eq!(ok("oldest_event_id", log.oldest_event_id()), 1, "{what}");
        assert_eq!(ok("newest_event_id", log.newest_event_id()), 11, "{what}");
        assert_eq!(ok("next_event_id", log.next_event_id()), 12, "{what}");
        assert_stats_agree(log, what);
    };
    holed(&log, "a hole in the middle");
    ok("sync", log.sync());
    let log = h.reopen(log);
    holed(&log, "a hole in the middle, reopened");
    assert_invalid_id(log.append_with_id(11, b"x"), 12, 11);
    assert_invalid_id(log.append_with_id(13, b"x"), 12, 13);

    // Everything sealed and deleted: empty, but keeping its position.
    ok("rotate", log.rotate());
    ok("rotate", log.rotate());
    assert_eq!(ok("delete_range", log.delete_range(0, u64::MAX)), 5);
    assert_eq!(ok("delete_range", log.delete_range(0, u64::MAX)), 0);
    let gone = |log: &L, what: &str| {
        assert_eq!(ok("next_event_id", log.next_event_id()), 12, "{what}");
        assert_eq!(ok("oldest_event_id", log.oldest_event_id()), 12, "{what}");
        assert_eq!(ok("newest_event_id", log.newest_event_id()), 11, "{what}");
        assert!(collect(log, 0, None).is_empty(), "{what}");
        assert!(collect(log, 5, Some(u64::MAX)).is_empty(), "{what}");
        assert_eq!(ok("get", log.get(11)), None, "{what}");
        assert_stats_agree(log, what);
    };
    gone(&log, "all deleted");
    ok("sync", log.sync());
    let log = h.reopen(log);
    gone(&log, "all deleted, reopened");
    ok("rotate", log.rotate());
    gone(&log, "all deleted, rotated");
    append_singles(&log, 12..=12);
    assert_eq!(collect(&log, 0, None), vec![(12, payload(12))]);
    assert_stats_agree(&log, "one event after all were deleted");
}

/// Reads an open iterator to its end: the ids it yielded, and the error it ended with.
fn drain(iter: Box<dyn crate::event_log::EventLogIterator>) -> (Vec<EventId>, Option<AzothError>) {
    let mut seen = Vec::new();
    for item in iter {
        match item {
            Ok((id, bytes)) => {
                assert_eq!(bytes, payload(id), "event {id} read back wrong");
                seen.push(id);
            }
            Err(e) => return (seen, Some(e)),
        }
    }
    (seen, None)
}

/// Checks what an iterator yielded after retention freed events under it: all of
/// `expected`, or a prefix of it and then an `EventsDeleted` naming the next id it needed.
fn assert_whole_or_deleted(
    what: &str,
    seen: &[EventId],
    error: Option<AzothError>,
    expected: &[EventId],
) {
    assert!(
        seen.len() <= expected.len() && seen == &expected[..seen.len()],
        "{what}: yielded {seen:?}, which is not in order from {expected:?} (ids skipped silently?)"
    );
    match error {
        None => assert_eq!(seen, expected, "{what}: ended early without an error"),
        Some(AzothError::EventsDeleted { from, to }) => {
            assert_eq!(
                Some(&from),
                expected.get(seen.len()),
                "{what}: EventsDeleted names the wrong first id"
            );
            assert!(
                to > from,
                "{what}: EventsDeleted names an empty range {from}..{to}"
            );
        }
        Some(e) => panic!("{what}: ended with {e}, not EventsDeleted"),
    }
}

/// Retention beside a reader: an iterator open while `delete_range` frees events it has not
/// reached yet never skips them silently; it yields them (from a snapshot) or ends with
/// `EventsDeleted` naming them. Holes that were there when it started are passed over.
pub fn iter_range_beside_delete_range<L: EventLog + 'static>(h: &Harness<L>) {
    let log = h.open();
    append_singles(&log, 1..=5);
    ok("rotate", log.rotate());
    append_singles(&log, 6..=10);
    ok("rotate", log.rotate());
    append_singles(&log, 11..=15);
    ok("rotate", log.rotate());
    append_singles(&log, 16..=17);

    // A hole in the middle that exists before the reader starts is skipped.
    assert_eq!(ok("delete_range", log.delete_range(6, 10)), 5);
    let mut expected: Vec<EventId> = (1..=5).collect();
    expected.extend(11..=17);
    assert_eq!(ids(&log, 0, None), expected, "a hole left before the read");

    // One reader has started, one is open but has not read yet.
    let mut started = ok("iter_range", log.iter_range(0, None));
    match started.next() {
        Some(Ok((1, _))) => {}
        other => panic!("the first event of iter_range(0, None) was {other:?}"),
    }
    let waiting = ok("iter_range", log.iter_range(2, None));
    assert_eq!(ok("delete_range", log.delete_range(0, 15)), 10);

    let mut expected: Vec<EventId> = (2..=5).collect();
    expected.extend(11..=17);
    let (seen, error) = drain(started);
    assert_whole_or_deleted("a started reader", &seen, error, &expected);
    let (seen, error) = drain(waiting);
    assert_whole_or_deleted("a reader not yet started", &seen, error, &expected);

    // A reader made after the deletion starts at the oldest event left.
    assert_eq!(ids(&log, 0, None), vec![16, 17]);
    assert_eq!(ok("get", log.get(3)), None, "get of a deleted id");
}

/// `stats` agrees with what the log holds.
pub fn stats_consistent<L: EventLog + 'static>(h: &Harness<L>) {
    let log = h.open();
    let mut payload_bytes = 0u64;
    for id in 1..=30u64 {
        let event = vec![id as u8; (id * 7) as usize];
        payload_bytes += event.len() as u64;
        ok("append_with_id", log.append_with_id(id, &event));
        if id % 10 == 0 {
            ok("rotate", log.rotate());
        }
    }
    let check = |log: &L, what: &str| {
        let stats = ok("stats", log.stats());
        let held = collect(log, 0, None);
        assert_eq!(stats.event_count, held.len() as u64, "{what}: event_count");
        assert_eq!(
            stats.oldest_event_id,
            ok("oldest_event_id", log.oldest_event_id()),
            "{what}: oldest_event_id"
        );
        assert_eq!(
            stats.newest_event_id,
            ok("newest_event_id", log.newest_event_id()),
            "{what}: newest_event_id"
        );
        if let Some((first, _)) = held.first() {
            assert_eq!(
                stats.oldest_event_id, *first,
                "{what}: oldest is the first held"
            );
        }
        stats
    };
    let stats = check(&log, "after appends");
    assert!(
        stats.total_bytes >= payload_bytes,
        "total_bytes {} is less than the {payload_bytes} payload bytes stored",
        stats.total_bytes
    );
    assert!(stats.file_count >= 3);
    assert_eq!(ok("delete_range", log.delete_range(0, 10)), 10);
    let after = check(&log, "after a deletion");
    assert_eq!(after.event_count, 20);
    assert_eq!(after.oldest_event_id, 11);
}

/// What was synced is there after reopening, and appends continue with the next id.
pub fn reopen_keeps_synced<L: EventLog + 'static>(h: &Harness<L>) {
    let log = h.open();
    append_singles(&log, 1..=4);
    ok("rotate", log.rotate());
    ok(
        "append_batch_with_ids",
        log.append_batch_with_ids(5, &(5..=8).map(payload).collect::<Vec<_>>()),
    );
    ok("rotate", log.rotate());
    append_singles(&log, 9..=10);
    ok("sync", log.sync());
    let log = h.reopen(log);
    let expected: Vec<_> = (1..=10).map(|id| (id, payload(id))).collect();
    assert_eq!(collect(&log, 0, None), expected, "events after reopening");
    assert_eq!(ok("next_event_id", log.next_event_id()), 11);
    assert_invalid_id(log.append_with_id(10, b"x"), 11, 10);
    append_singles(&log, 11..=12);

    assert_eq!(ok("delete_range", log.delete_range(0, 4)), 4);
    ok("sync", log.sync());
    let log = h.reopen(log);
    assert_eq!(
        ok("oldest_event_id", log.oldest_event_id()),
        5,
        "a deletion survives"
    );
    assert_eq!(ok("newest_event_id", log.newest_event_id()), 12);
    assert_eq!(ok("get", log.get(2)), None);
    assert_eq!(ids(&log, 0, None), (5..=12).collect::<Vec<_>>());
    let stats = ok("stats", log.stats());
    assert_eq!(stats.event_count, 8);
}

/// Events of 1 MiB and empty events are stored and read back exactly, in batches too.
pub fn large_and_empty_events<L: EventLog + 'static>(h: &Harness<L>) {
    let log = h.open();
    let big: Vec<u8> = (0..1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
    ok("append_with_id", log.append_with_id(1, &big));
    ok("append_with_id", log.append_with_id(2, b""));
    ok(
        "append_batch_with_ids",
        log.append_batch_with_ids(3, &[Vec::new(), big.clone(), Vec::new()]),
    );
    let check = |log: &L| {
        let expected = vec![
            (1, big.clone()),
            (2, Vec::new()),
            (3, Vec::new()),
            (4, big.clone()),
            (5, Vec::new()),
        ];
        let read = collect(log, 0, None);
        assert_eq!(read.len(), expected.len());
        assert!(read == expected, "large or empty events came back changed");
        assert_eq!(
            ok("get", log.get(2)),
            Some(Vec::new()),
            "an empty event is Some"
        );
        assert!(ok("get", log.get(4)).as_deref() == Some(&big[..]));
    };
    check(&log);
    ok("sync", log.sync());
    let log = h.reopen(log);
    check(&log);
}

/// Readers on other threads while the writer appends see only whole batches: every batch of
/// `K` events shares a tag, and no read ever ends or starts inside a batch.
pub fn concurrent_readers_see_whole_batches<L: EventLog + 'static>(h: &Harness<L>) {
    const K: u64 = 4;
    const BATCHES: u64 = 60;
    let log = Arc::new(h.open());
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let log = Arc::clone(&log);
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut rounds = 0u64;
                loop {
                    // Read the flag first, so one full read follows the last append.
                    let finished = done.load(Ordering::Acquire);
                    let read = collect(&*log, 1, None);
                    assert_eq!(read.len() as u64 % K, 0, "a read ended inside a batch");
                    for (i, (id, event)) in read.iter().enumerate() {
                        assert_eq!(*id, i as u64 + 1, "ids are not dense");
                        let batch = (*id - 1) / K;
                        assert_eq!(event, &batch.to_le_bytes(), "event {id} has a wrong tag");
                    }
                    let newest = ok("newest_event_id", log.newest_event_id());
                    assert_eq!(newest % K, 0, "newest_event_id {newest} is inside a batch");
                    rounds += 1;
                    if finished {
                        assert_eq!(read.len() as u64, K * BATCHES);
                        return rounds;
                    }
                }
            })
        })
        .collect();
    for batch in 0..BATCHES {
        let events: Vec<Vec<u8>> = (0..K).map(|_| batch.to_le_bytes().to_vec()).collect();
        ok(
            "append_batch_with_ids",
            log.append_batch_with_ids(batch * K + 1, &events),
        );
    }
    done.store(true, Ordering::Release);
    for reader in readers {
        match reader.join() {
            Ok(rounds) => assert!(rounds >= 1),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

/// One step of the model test.
#[derive(Debug, Clone)]
enum Op {
    Append(usize),
    Batch(Vec<usize>),
    Get(u64),
    Iter(u64, Option<u64>),
    Rotate,
    /// Deletes from 0 (or from the oldest id) up to an id chosen relative to the next id.
    Delete(bool, u64),
    Reopen,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..40).prop_map(Op::Append),
        3 => proptest::collection::vec(0usize..40, 0..6).prop_map(Op::Batch),
        3 => (0u64..64).prop_map(Op::Get),
        3 => (0u64..64, proptest::option::of(0u64..64)).prop_map(|(s, e)| Op::Iter(s, e)),
        2 => Just(Op::Rotate),
        2 => (any::<bool>(), 0u64..64).prop_map(|(from_oldest, end)| Op::Delete(from_oldest, end)),
        1 => Just(Op::Reopen),
    ]
}

/// The model: every event ever appended, the sealed units, and what has been deleted.
#[derive(Debug, Default)]
struct Model {
    events: Vec<Vec<u8>>,
    /// Sealed units as `(first, last)` inclusive, oldest first, deleted ones removed.
    sealed: Vec<(EventId, EventId)>,
    active_first: EventId,
    /// Every id below this has been deleted.
    oldest: EventId,
}

impl Model {
    fn next(&self) -> EventId {
        self.events.len() as u64 + 1
    }

    fn stored(&self, id: EventId) -> Option<&Vec<u8>> {
        if id < self.oldest || id == 0 {
            return None;
        }
        self.events.get(usize::try_from(id - 1).ok()?)
    }

    fn event_bytes(id: EventId, len: usize) -> Vec<u8> {
        let tag = id.to_le_bytes();
        (0..len).map(|i| tag[i % 8] ^ (i as u8)).collect()
    }
}

/// A random sequence of append / batch / get / iter_range / rotate / delete_range / reopen,
/// checked step by step against a `Vec` model.
///
/// Deletions start at 0 or at the oldest id, as retention does, so the log never has holes.
/// Every reopen follows a `rotate`, so a backend is free to start a new unit when it opens.
pub fn model<L: EventLog + 'static>(h: &Harness<L>) {
    let cases = std::env::var("AZOTH_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let strategy = proptest::collection::vec(op_strategy(), 1..40);
    let result = runner.run(&strategy, |ops| {
        let case = h.fresh();
        run_model(&case, &ops);
        Ok(())
    });
    if let Err(e) = result {
        panic!("model test failed: {e}");
    }
}

fn run_model<L: EventLog + 'static>(h: &Harness<L>, ops: &[Op]) {
    let mut log = h.open();
    let mut model = Model {
        active_first: 1,
        oldest: 1,
        ..Model::default()
    };
    for op in ops {
        match op {
            Op::Append(len) => {
                let id = model.next();
                let event = Model::event_bytes(id, *len);
                ok("append_with_id", log.append_with_id(id, &event));
                model.events.push(event);
            }
            Op::Batch(lens) => {
                let first = model.next();
                let events: Vec<Vec<u8>> = lens
                    .iter()
                    .enumerate()
                    .map(|(i, len)| Model::event_bytes(first + i as u64, *len))
                    .collect();
                ok(
                    "append_batch_with_ids",
                    log.append_batch_with_ids(first, &events),
                );
                model.events.extend(events);
            }
            Op::Get(id) => {
                assert_eq!(
                    ok("get", log.get(*id)).as_ref(),
                    model.stored(*id),
                    "get({id})"
                );
            }
            Op::Iter(start, end) => {
                let stop = end.unwrap_or(model.next()).min(model.next());
                let expected: Vec<(EventId, Vec<u8>)> = (*start.max(&model.oldest)..stop)
                    .filter_map(|id| model.stored(id).map(|e| (id, e.clone())))
                    .collect();
                assert_eq!(
                    collect(&log, *start, *end),
                    expected,
                    "iter_range({start}, {end:?})"
                );
            }
            Op::Rotate => {
                ok("rotate", log.rotate());
                if model.next() > model.active_first {
                    model.sealed.push((model.active_first, model.next() - 1));
                    model.active_first = model.next();
                }
            }
            Op::Delete(from_oldest, end) => {
                let start = if *from_oldest { model.oldest } else { 0 };
                let end = model.next().saturating_sub(32) + end;
                let mut expected = 0usize;
                model.sealed.retain(|&(first, last)| {
                    let inside = first >= start && last <= end;
                    if inside {
                        expected += (last - first + 1) as usize;
                    }
                    !inside
                });
                model.oldest = model.sealed.first().map_or(model.active_first, |u| u.0);
                let freed = ok("delete_range", log.delete_range(start, end));
                assert_eq!(freed, expected, "delete_range({start}, {end})");
            }
            Op::Reopen => {
                ok("rotate", log.rotate());
                if model.next() > model.active_first {
                    model.sealed.push((model.active_first, model.next() - 1));
                    model.active_first = model.next();
                }
                ok("sync", log.sync());
                log = h.reopen(log);
            }
        }
        assert_eq!(ok("next_event_id", log.next_event_id()), model.next());
        assert_eq!(
            ok("newest_event_id", log.newest_event_id()),
            model.next() - 1
        );
        assert_eq!(ok("oldest_event_id", log.oldest_event_id()), model.oldest);
    }
    let expected: Vec<(EventId, Vec<u8>)> = (model.oldest..model.next())
        .filter_map(|id| model.stored(id).map(|e| (id, e.clone())))
        .collect();
    assert_eq!(collect(&log, 0, None), expected, "the whole log at the end");
    let stats = ok("stats", log.stats());
    assert_eq!(
        stats.event_count,
        expected.len() as u64,
        "stats.event_count"
    );
}
