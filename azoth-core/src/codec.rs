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
use crate::types::{DatabaseEvent, Operation, OperationId};

/// The version byte written in front of every encoded event.
pub const EVENT_FORMAT_VERSION: u8 = 1;

/// Encodes `event` as version byte + MessagePack.
///
/// # Errors
/// [`AzothError::Encoding`] if serialization fails (it does not for well-formed events).
pub fn encode_event(event: &DatabaseEvent) -> Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(encoded_len_hint(event));
    encode_event_into(event, &mut buf)?;
    Ok(buf)
}

/// About the encoded size of `event`, so that one allocation holds it.
fn encoded_len_hint(event: &DatabaseEvent) -> usize {
    // Version, tags, variant names, two u64 ids, the bin headers: under 64 bytes.
    64 + match event {
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
/// [`AzothError::Encoding`] if serialization fails.
pub fn encode_event_into(event: &DatabaseEvent, buf: &mut Vec<u8>) -> Result<()> {
    buf.push(EVENT_FORMAT_VERSION);
    if let DatabaseEvent::WriteEvent {
        operation,
        operation_id,
    } = event
    {
        return write_event::encode(operation, *operation_id, buf);
    }
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
        1 => match write_event::decode(body) {
            Some(event) => Ok(event),
            None => rmp_serde::from_slice(body).map_err(|e| AzothError::Encoding(e.to_string())),
        },
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

/// The `WriteEvent`s — nearly every event of a key-value database — encoded and decoded by
/// hand, byte for byte as rmp-serde does (the tests compare both): serde's generic path
/// (variant names matched as strings, a `Vec` grown byte by byte for `bin`) was most of the
/// time of a replay or a catch-up.
///
/// ```text
/// 81 aa "WriteEvent"  92  81 a3 "Put"    92 bin(key) bin(value)   92 uint(ts) uint(seq)
///                         81 a6 "Delete" 91 bin(key)
/// ```
mod write_event {
    use super::{AzothError, DatabaseEvent, Operation, OperationId, Result};

    const HEAD: &[u8] = b"\x81\xaaWriteEvent\x92\x81";
    const PUT: &[u8] = b"\xa3Put\x92";
    const DELETE: &[u8] = b"\xa6Delete\x91";

    pub(super) fn encode(operation: &Operation, id: OperationId, buf: &mut Vec<u8>) -> Result<()> {
        buf.extend_from_slice(HEAD);
        match operation {
            Operation::Put { key, value } => {
                buf.extend_from_slice(PUT);
                bin(key, buf)?;
                bin(value, buf)?;
            }
            Operation::Delete { key } => {
                buf.extend_from_slice(DELETE);
                bin(key, buf)?;
            }
        }
        buf.push(0x92);
        uint(id.timestamp, buf);
        uint(id.sequence, buf);
        Ok(())
    }

    fn bin(b: &[u8], buf: &mut Vec<u8>) -> Result<()> {
        if let Ok(n) = u8::try_from(b.len()) {
            buf.push(0xc4);
            buf.push(n);
        } else if let Ok(n) = u16::try_from(b.len()) {
            buf.push(0xc5);
            buf.extend_from_slice(&n.to_be_bytes());
        } else if let Ok(n) = u32::try_from(b.len()) {
            buf.push(0xc6);
            buf.extend_from_slice(&n.to_be_bytes());
        } else {
            return Err(AzothError::Encoding(format!(
                "{} bytes do not fit a MessagePack bin",
                b.len()
            )));
        }
        buf.extend_from_slice(b);
        Ok(())
    }

    /// The shortest form, as rmp writes unsigned integers.
    fn uint(v: u64, buf: &mut Vec<u8>) {
        if v < 128 {
            buf.push(v as u8);
        } else if let Ok(n) = u8::try_from(v) {
            buf.push(0xcc);
            buf.push(n);
        } else if let Ok(n) = u16::try_from(v) {
            buf.push(0xcd);
            buf.extend_from_slice(&n.to_be_bytes());
        } else if let Ok(n) = u32::try_from(v) {
            buf.push(0xce);
            buf.extend_from_slice(&n.to_be_bytes());
        } else {
            buf.push(0xcf);
            buf.extend_from_slice(&v.to_be_bytes());
        }
    }

    /// Decodes a `WriteEvent` in exactly the layout above; `None` for anything else (another
    /// variant, another integer form, trailing bytes, damage), which the caller hands to
    /// rmp-serde, so this path never accepts what rmp-serde would refuse or read otherwise.
    pub(super) fn decode(b: &[u8]) -> Option<DatabaseEvent> {
        let mut r = Reader(b);
        r.tag(HEAD)?;
        let operation = if r.0.starts_with(PUT) {
            r.tag(PUT)?;
            let key = r.bin()?;
            let value = r.bin()?;
            Operation::Put { key, value }
        } else {
            r.tag(DELETE)?;
            Operation::Delete { key: r.bin()? }
        };
        r.tag(&[0x92])?;
        let timestamp = r.uint()?;
        let sequence = r.uint()?;
        if !r.0.is_empty() {
            return None;
        }
        Some(DatabaseEvent::WriteEvent {
            operation,
            operation_id: OperationId::new(timestamp, sequence),
        })
    }

    struct Reader<'a>(&'a [u8]);

    impl Reader<'_> {
        fn tag(&mut self, tag: &[u8]) -> Option<()> {
            self.0 = self.0.strip_prefix(tag)?;
            Some(())
        }

        fn take(&mut self, n: usize) -> Option<&[u8]> {
            if self.0.len() < n {
                return None;
            }
            let (head, rest) = self.0.split_at(n);
            self.0 = rest;
            Some(head)
        }

        fn be(&mut self, n: usize) -> Option<u64> {
            Some(
                self.take(n)?
                    .iter()
                    .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
            )
        }

        fn bin(&mut self) -> Option<Vec<u8>> {
            let marker = *self.take(1)?.first()?;
            let len = match marker {
                0xc4 => self.be(1)?,
                0xc5 => self.be(2)?,
                0xc6 => self.be(4)?,
                _ => return None,
            };
            Some(self.take(usize::try_from(len).ok()?)?.to_vec())
        }

        fn uint(&mut self) -> Option<u64> {
            let marker = *self.take(1)?.first()?;
            match marker {
                0x00..=0x7f => Some(u64::from(marker)),
                0xcc => self.be(1),
                0xcd => self.be(2),
                0xce => self.be(4),
                0xcf => self.be(8),
                _ => None,
            }
        }
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
    fn write_events_are_byte_for_byte_what_rmp_serde_writes() {
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
                    let mut reference = vec![EVENT_FORMAT_VERSION];
                    rmp_serde::encode::write(&mut reference, &event).unwrap();
                    let fast = encode_event(&event).unwrap();
                    assert_eq!(fast, reference, "klen {klen} vlen {vlen} ts {ts} seq {seq}");
                    assert_eq!(decode_event(&fast).unwrap(), event);
                    let slow: DatabaseEvent = rmp_serde::from_slice(&fast[1..]).unwrap();
                    assert_eq!(slow, event);
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
            write_event::decode(&bytes[1..]).is_none(),
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
