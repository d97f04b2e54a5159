//! The event decoder has a hand-written fast path for `WriteEvent`s beside the generic
//! rmp-serde path. These properties pin that the fast path is only faster: for any bytes at
//! all (valid encodings, and valid encodings with bytes changed, cut or appended), the
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
        ("[A-Za-z]{0,12}", bytes(), operation_id()).prop_map(|(kind, payload, operation_id)| {
            DatabaseEvent::AppEvent {
                kind,
                payload,
                operation_id,
            }
        }),
    ]
}

/// What the generic path alone makes of `body` (the bytes after the version byte).
fn reference(body: &[u8]) -> Option<DatabaseEvent> {
    rmp_serde::from_slice(body).ok()
}

fn decoded(body: &[u8]) -> Option<DatabaseEvent> {
    let mut bytes = vec![azoth_core::EVENT_FORMAT_VERSION];
    bytes.extend_from_slice(body);
    decode_event(&bytes).ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn encoding_is_what_rmp_serde_writes(event in event()) {
        let encoded = encode_event(&event).unwrap();
        let reference = rmp_serde::to_vec(&event).unwrap();
        prop_assert_eq!(&encoded[1..], &reference[..]);
        prop_assert_eq!(decode_event(&encoded).unwrap(), event);
    }

    #[test]
    fn changed_bytes_decode_as_rmp_serde_decodes_them(
        event in event(),
        changes in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut body = encode_event(&event).unwrap()[1..].to_vec();
        for (at, byte) in changes {
            let i = at.index(body.len());
            body[i] = byte;
        }
        prop_assert_eq!(decoded(&body), reference(&body));
    }

    #[test]
    fn cut_or_extended_bytes_decode_as_rmp_serde_decodes_them(
        event in event(),
        cut in any::<prop::sample::Index>(),
        tail in proptest::collection::vec(any::<u8>(), 0..4),
    ) {
        let body = encode_event(&event).unwrap()[1..].to_vec();
        let short = &body[..cut.index(body.len())];
        prop_assert_eq!(decoded(short), reference(short));
        let mut long = body.clone();
        long.extend_from_slice(&tail);
        prop_assert_eq!(decoded(&long), reference(&long));
    }
}
