//! The event codec writes MessagePack by hand, and its decoder has a hand-written fast path
//! for `WriteEvent`s beside the generic rmp-serde path. These properties pin that both are
//! only faster: what is written reads back through rmp-serde, and for any bytes at all
//! (valid encodings of either version, and those with bytes changed, cut or appended), the
//! decoder gives exactly what rmp-serde alone gives. A decoder that read some damaged input
//! differently would silently alter an event.

use azoth_core::{DatabaseEvent, Operation, OperationId, decode_event, encode_event};
use proptest::prelude::*;

fn operation_id() -> impl Strategy<Value = OperationId> {
    // Both small and large ids, so every MessagePack integer width appears.
    let id = prop_oneof![0u64..300, 0u64..70_000, any::<u64>()];
    (id.clone(), id).prop_map(|(timestamp, sequence)| OperationId {
        timestamp,
        sequence,
    })
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..40),
        // Around the bin8/bin16 boundary (the unit tests in codec.rs cover bin32).
        proptest::collection::vec(any::<u8>(), 250..260),
    ]
}

/// Around the fixstr/str8 and str8/str16 boundaries.
fn kind() -> impl Strategy<Value = String> {
    prop_oneof!["[A-Za-z]{0,40}", "[a-z]{250,260}"]
}

fn event() -> impl Strategy<Value = DatabaseEvent> {
    prop_oneof![
        (bytes(), bytes(), operation_id()).prop_map(|(key, value, operation_id)| {
            DatabaseEvent::WriteEvent {
                operation: Operation::Put { key, value },
                operation_id,
            }
        }),
        (bytes(), operation_id()).prop_map(|(key, operation_id)| DatabaseEvent::WriteEvent {
            operation: Operation::Delete { key },
            operation_id,
        }),
        (bytes(), operation_id())
            .prop_map(|(key, operation_id)| DatabaseEvent::ReadEvent { key, operation_id }),
        (any::<usize>(), operation_id()).prop_map(|(level, operation_id)| {
            DatabaseEvent::CompactionEvent {
                level,
                operation_id,
            }
        }),
        (kind(), bytes(), operation_id()).prop_map(|(kind, payload, operation_id)| {
            DatabaseEvent::AppEvent {
                kind,
                payload,
                operation_id,
            }
        }),
    ]
}

/// Every version this build reads.
fn version() -> impl Strategy<Value = u8> {
    1..=azoth_core::EVENT_FORMAT_VERSION
}

/// The bytes after the version byte of `event` in `version`: version 1 as rmp-serde writes
/// it (variants by name), the current version as this build writes it.
fn body(event: &DatabaseEvent, version: u8) -> Vec<u8> {
    if version == 1 {
        rmp_serde::to_vec(event).unwrap()
    } else {
        encode_event(event).unwrap()[1..].to_vec()
    }
}

/// What the generic path alone makes of `body`.
fn reference(body: &[u8]) -> Option<DatabaseEvent> {
    rmp_serde::from_slice(body).ok()
}

fn decoded(version: u8, body: &[u8]) -> Option<DatabaseEvent> {
    let mut bytes = vec![version];
    bytes.extend_from_slice(body);
    decode_event(&bytes).ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_version_reads_back_through_rmp_serde(event in event(), version in version()) {
        let body = body(&event, version);
        prop_assert_eq!(reference(&body), Some(event.clone()));
        prop_assert_eq!(decoded(version, &body), Some(event));
    }

    #[test]
    fn changed_bytes_decode_as_rmp_serde_decodes_them(
        event in event(),
        version in version(),
        changes in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut body = body(&event, version);
        for (at, byte) in changes {
            let i = at.index(body.len());
            body[i] = byte;
        }
        prop_assert_eq!(decoded(version, &body), reference(&body));
    }

    #[test]
    fn cut_or_extended_bytes_decode_as_rmp_serde_decodes_them(
        event in event(),
        version in version(),
        cut in any::<prop::sample::Index>(),
        tail in proptest::collection::vec(any::<u8>(), 0..4),
    ) {
        let body = body(&event, version);
        let short = &body[..cut.index(body.len())];
        prop_assert_eq!(decoded(version, short), reference(short));
        let mut long = body.clone();
        long.extend_from_slice(&tail);
        prop_assert_eq!(decoded(version, &long), reference(&long));
    }
}
