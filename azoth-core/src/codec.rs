//! The event codec: [`DatabaseEvent`] ⇄ bytes.
//!
//! ```text
//! +---------+------------------------------------------+
//! | version | MessagePack (rmp-serde) of DatabaseEvent |
//! |  1 byte |              rest of the bytes           |
//! +---------+------------------------------------------+
//! ```
//!
//! The version byte lets a later build read events written by earlier ones: a decoder knows
//! every version up to [`EVENT_FORMAT_VERSION`] and refuses newer ones with
//! [`AzothError::UnsupportedVersion`].
//!
//! - Version 1 is rmp-serde's default encoding: each enum variant as its name (a
//!   `WriteEvent` `Put` spends 15 bytes on `"WriteEvent"` and `"Put"`), fields as an array,
//!   keys and values as MessagePack `bin`.
//! - Version 2, written since, is the same MessagePack with each variant as its index in
//!   declaration order (one byte). rmp-serde reads both forms, so both versions decode
//!   through it.

use crate::error::{AzothError, Result};
use crate::types::{DatabaseEvent, Operation};

mod msgpack;

/// The version byte written in front of every encoded event.
pub const EVENT_FORMAT_VERSION: u8 = 2;

/// Encodes `event` as version byte + MessagePack.
///
/// # Errors
/// [`AzothError::Encoding`] if a key, value or payload is 4 GiB or longer (MessagePack's
/// limit).
pub fn encode_event(event: &DatabaseEvent) -> Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(encoded_len_hint(event));
    encode_event_into(event, &mut buf)?;
    Ok(buf)
}

/// About the encoded size of `event`, so that one allocation holds it.
fn encoded_len_hint(event: &DatabaseEvent) -> usize {
    // Version, tags, two u64 ids, the str and bin headers: at most 36 bytes.
    40 + match event {
        DatabaseEvent::WriteEvent { operation, .. } => match operation {
            Operation::Put { key, value } => key.len() + value.len(),
            Operation::Delete { key } => key.len(),
        },
        DatabaseEvent::ReadEvent { key, .. } => key.len(),
        DatabaseEvent::AppEvent { kind, payload, .. } => kind.len() + payload.len(),
        _ => 0,
    }
}

/// Appends the encoding of `event` to `buf`, to reuse one buffer across many events.
///
/// # Errors
/// [`AzothError::Encoding`] if a key, value or payload is 4 GiB or longer. `buf` may then
/// hold part of the event after what it held before.
pub fn encode_event_into(event: &DatabaseEvent, buf: &mut Vec<u8>) -> Result<()> {
    buf.push(EVENT_FORMAT_VERSION);
    msgpack::encode(event, buf)
}

/// Decodes bytes written by [`encode_event`] (any version up to [`EVENT_FORMAT_VERSION`]).
///
/// # Errors
/// [`AzothError::Encoding`] for empty or malformed bytes;
/// [`AzothError::UnsupportedVersion`] for a version newer than this build reads.
pub fn decode_event(bytes: &[u8]) -> Result<DatabaseEvent> {
    let (&version, body) = bytes
        .split_first()
        .ok_or_else(|| AzothError::Encoding("empty event".into()))?;
    let variants = match version {
        1 => msgpack::Variants::Named,
        2 => msgpack::Variants::Indexed,
        0 => {
            return Err(AzothError::Encoding(
                "event format version 0 is not valid".into(),
            ));
        }
        found => {
            return Err(AzothError::UnsupportedVersion {
                what: "event",
                found: u32::from(found),
                supported: u32::from(EVENT_FORMAT_VERSION),
            });
        }
    };
    match msgpack::decode_write_event(body, variants) {
        Some(event) => Ok(event),
        None => rmp_serde::from_slice(body).map_err(|e| AzothError::Encoding(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Operation, OperationId};

    fn samples() -> Vec<DatabaseEvent> {
        let id = OperationId::new(1_700_000_000_000_000, 42);
        vec![
            DatabaseEvent::WriteEvent {
                operation: Operation::Put {
                    key: b"k".to_vec(),
                    value: vec![0, 255, 3],
                },
                operation_id: id,
            },
            DatabaseEvent::WriteEvent {
                operation: Operation::Delete { key: b"k".to_vec() },
                operation_id: id,
            },
            DatabaseEvent::ReadEvent {
                key: b"r".to_vec(),
                operation_id: id,
            },
            DatabaseEvent::CompactionEvent {
                level: 2,
                operation_id: id,
            },
            DatabaseEvent::AppEvent {
                kind: "Deposited".into(),
                payload: vec![1; 300],
                operation_id: id,
            },
            // Every string width, and the widest integer.
            DatabaseEvent::AppEvent {
                kind: "k".repeat(40),
                payload: Vec::new(),
                operation_id: OperationId::new(u64::MAX, 0),
            },
            DatabaseEvent::AppEvent {
                kind: "k".repeat(300),
                payload: vec![2; 70_000],
                operation_id: id,
            },
            DatabaseEvent::AppEvent {
                kind: "k".repeat(70_000),
                payload: vec![3],
                operation_id: id,
            },
            DatabaseEvent::CompactionEvent {
                level: usize::MAX,
                operation_id: id,
            },
        ]
    }

    #[test]
    fn round_trips_every_variant() {
        for event in samples() {
            let bytes = encode_event(&event).unwrap();
            assert_eq!(bytes[0], EVENT_FORMAT_VERSION);
            assert_eq!(decode_event(&bytes).unwrap(), event);
        }
    }

    /// Version 1: rmp-serde's own encoding, variants by name.
    fn version_1(event: &DatabaseEvent) -> Vec<u8> {
        let mut bytes = vec![1];
        rmp_serde::encode::write(&mut bytes, event).unwrap();
        bytes
    }

    /// What version 2 must be: version 1 with each variant name replaced by its index.
    fn names_to_indices(v1: &[u8]) -> Vec<u8> {
        let renames: [(&[u8], &[u8]); 5] = [
            (
                b"\x81\xaaWriteEvent\x92\x81\xa3Put",
                b"\x81\x00\x92\x81\x00",
            ),
            (
                b"\x81\xaaWriteEvent\x92\x81\xa6Delete",
                b"\x81\x00\x92\x81\x01",
            ),
            (b"\x81\xa9ReadEvent", b"\x81\x01"),
            (b"\x81\xafCompactionEvent", b"\x81\x02"),
            (b"\x81\xa8AppEvent", b"\x81\x03"),
        ];
        let body = &v1[1..];
        for (named, indexed) in renames {
            if let Some(rest) = body.strip_prefix(named) {
                return [&[2u8][..], indexed, rest].concat();
            }
        }
        panic!("no variant name at the start of {body:02x?}");
    }

    #[test]
    fn version_2_is_rmp_serde_with_variants_by_index() {
        for event in samples() {
            let v2 = encode_event(&event).unwrap();
            assert_eq!(v2, names_to_indices(&version_1(&event)), "{event:?}");
            let generic: DatabaseEvent = rmp_serde::from_slice(&v2[1..]).unwrap();
            assert_eq!(generic, event);
        }
    }

    #[test]
    fn every_version_decodes_write_events_as_rmp_serde_does() {
        let sizes = [0usize, 1, 16, 255, 256, 65_535, 65_536];
        let ints = [
            0u64,
            1,
            127,
            128,
            255,
            256,
            65_535,
            65_536,
            u64::from(u32::MAX),
            u64::from(u32::MAX) + 1,
            u64::MAX,
        ];
        for (i, &klen) in sizes.iter().enumerate() {
            for (j, &vlen) in sizes.iter().enumerate() {
                let ts = ints[(i + j) % ints.len()];
                let seq = ints[(i * 3 + j) % ints.len()];
                let id = OperationId::new(ts, seq);
                let put = DatabaseEvent::WriteEvent {
                    operation: Operation::Put {
                        key: vec![0x5a; klen],
                        value: vec![0xa5; vlen],
                    },
                    operation_id: id,
                };
                let delete = DatabaseEvent::WriteEvent {
                    operation: Operation::Delete {
                        key: vec![0x33; vlen],
                    },
                    operation_id: id,
                };
                for event in [put, delete] {
                    let v1 = version_1(&event);
                    let v2 = encode_event(&event).unwrap();
                    let at = format!("klen {klen} vlen {vlen} ts {ts} seq {seq}");
                    assert_eq!(v2, names_to_indices(&v1), "{at}");
                    for bytes in [v1, v2] {
                        let fast = msgpack::decode_write_event(
                            &bytes[1..],
                            if bytes[0] == 1 {
                                msgpack::Variants::Named
                            } else {
                                msgpack::Variants::Indexed
                            },
                        );
                        assert_eq!(fast.as_ref(), Some(&event), "{at}");
                        assert_eq!(decode_event(&bytes).unwrap(), event, "{at}");
                        let generic: DatabaseEvent = rmp_serde::from_slice(&bytes[1..]).unwrap();
                        assert_eq!(generic, event, "{at}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_fast_decoder_leaves_the_unusual_to_rmp_serde() {
        let event = samples().remove(0);
        let mut bytes = encode_event(&event).unwrap();
        // A trailing byte: not the fast path's layout.
        bytes.push(0);
        assert!(
            msgpack::decode_write_event(&bytes[1..], msgpack::Variants::Indexed).is_none(),
            "trailing bytes accepted"
        );
        // A non-minimal integer (u64 form of 42): rmp-serde reads it, so must we.
        let mut long = encode_event(&event).unwrap();
        let tail = long.len() - 1;
        long.truncate(tail);
        long.push(0xcf);
        long.extend_from_slice(&42u64.to_be_bytes());
        assert_eq!(decode_event(&long).unwrap(), event);
    }

    #[test]
    fn keys_and_values_are_compact_binary() {
        let event = DatabaseEvent::WriteEvent {
            operation: Operation::Put {
                key: vec![0xAB; 16],
                value: vec![0xCD; 100],
            },
            operation_id: OperationId::new(u64::MAX, u64::MAX),
        };
        // A `bin` encoding costs 2 bytes of header per field, not one byte per element, and
        // a variant one byte, not its name.
        let len = encode_event(&event).unwrap().len();
        // (Version, tags and two u64::MAX ids account for the rest.)
        assert_eq!(len, 1 + 6 + (2 + 16) + (2 + 100) + 1 + 9 + 9);
    }

    #[test]
    fn refuses_unknown_versions_and_garbage() {
        let mut bytes = encode_event(&samples()[0]).unwrap();
        bytes[0] = 9;
        assert!(matches!(
            decode_event(&bytes),
            Err(AzothError::UnsupportedVersion { found: 9, .. })
        ));
        assert!(matches!(decode_event(&[]), Err(AzothError::Encoding(_))));
        assert!(matches!(
            decode_event(&[1, 0xc1]),
            Err(AzothError::Encoding(_))
        ));
        for len in 1..bytes.len() {
            bytes[0] = EVENT_FORMAT_VERSION;
            assert!(decode_event(&bytes[..len]).is_err(), "prefix {len} decoded");
        }
    }
}
