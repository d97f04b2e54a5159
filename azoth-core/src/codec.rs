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
//! [`AzothError::UnsupportedVersion`]. Version 1 encodes the enum as rmp-serde's default
//! (externally tagged variant, fields as an array, keys and values as MessagePack `bin`).

use crate::error::{AzothError, Result};
use crate::types::DatabaseEvent;

/// The version byte written in front of every encoded event.
pub const EVENT_FORMAT_VERSION: u8 = 1;

/// Encodes `event` as version byte + MessagePack.
///
/// # Errors
/// [`AzothError::Encoding`] if serialization fails (it does not for well-formed events).
pub fn encode_event(event: &DatabaseEvent) -> Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(64);
    encode_event_into(event, &mut buf)?;
    Ok(buf)
}

/// Appends the encoding of `event` to `buf`, to reuse one buffer across many events.
///
/// # Errors
/// [`AzothError::Encoding`] if serialization fails.
pub fn encode_event_into(event: &DatabaseEvent, buf: &mut Vec<u8>) -> Result<()> {
    buf.push(EVENT_FORMAT_VERSION);
    rmp_serde::encode::write(buf, event).map_err(|e| AzothError::Encoding(e.to_string()))
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
    match version {
        1 => rmp_serde::from_slice(body).map_err(|e| AzothError::Encoding(e.to_string())),
        0 => Err(AzothError::Encoding(
            "event format version 0 is not valid".into(),
        )),
        found => Err(AzothError::UnsupportedVersion {
            what: "event",
            found: u32::from(found),
            supported: u32::from(EVENT_FORMAT_VERSION),
        }),
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

    #[test]
    fn keys_and_values_are_compact_binary() {
        let event = DatabaseEvent::WriteEvent {
            operation: Operation::Put {
                key: vec![0xAB; 16],
                value: vec![0xCD; 100],
            },
            operation_id: OperationId::new(u64::MAX, u64::MAX),
        };
        // A `bin` encoding costs 2 bytes of header per field, not one byte per element.
        let len = encode_event(&event).unwrap().len();
        // (Variant names and two u64::MAX ids account for the rest.)
        assert!(len < 16 + 100 + 60, "{len} bytes");
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
