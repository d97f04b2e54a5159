//! The MessagePack of [`DatabaseEvent`], by hand. Written in version 2's layout: rmp-serde's
//! with every variant as its index, which rmp-serde reads but cannot write. Read, for
//! `WriteEvent`s, in either version's layout, giving exactly what rmp-serde gives (the tests
//! compare both): serde's generic path (variant names matched as strings, a `Vec` grown byte
//! by byte for `bin`) was most of the time of a replay or a catch-up.
//!
//! ```text
//! version 1 (variants by name):
//!   81 aa "WriteEvent" 92   81 a3 "Put" 92 bin(key) bin(value)   92 uint(ts) uint(seq)
//!                           81 a6 "Delete" 91 bin(key)
//! version 2 (variants by index):
//!   81 00 92                81 00 92 bin(key) bin(value)          92 uint(ts) uint(seq)
//!                           81 01 91 bin(key)
//!   81 01 92 bin(key)                                             92 uint(ts) uint(seq)
//!   81 02 92 uint(level)                                          92 uint(ts) uint(seq)
//!   81 03 93 str(kind) bin(payload)                               92 uint(ts) uint(seq)
//! ```

use crate::error::{AzothError, Result};
use crate::types::{DatabaseEvent, Operation, OperationId};

const MAP_OF_ONE: u8 = 0x81;
const ARRAY_OF_TWO: u8 = 0x92;
const ARRAY_OF_THREE: u8 = 0x93;

/// How a version writes an enum's variant.
#[derive(Debug, Clone, Copy)]
pub(super) enum Variants {
    /// As its name, a MessagePack `str` (version 1).
    Named,
    /// As its index in declaration order, a positive fixint (version 2).
    Indexed,
}

/// The fixed bytes around a `WriteEvent`'s fields in one version.
struct WriteEventTags {
    /// The event's map and variant, its field array, the operation's map.
    head: &'static [u8],
    /// The `Put` variant and its field array.
    put: &'static [u8],
    /// The `Delete` variant and its field array.
    delete: &'static [u8],
}

impl Variants {
    fn write_event_tags(self) -> WriteEventTags {
        match self {
            Variants::Named => WriteEventTags {
                head: b"\x81\xaaWriteEvent\x92\x81",
                put: b"\xa3Put\x92",
                delete: b"\xa6Delete\x91",
            },
            Variants::Indexed => WriteEventTags {
                head: b"\x81\x00\x92\x81",
                put: b"\x00\x92",
                delete: b"\x01\x91",
            },
        }
    }
}

/// Appends the version-2 MessagePack of `event`: every variant by its index.
pub(super) fn encode(event: &DatabaseEvent, buf: &mut Vec<u8>) -> Result<()> {
    let operation_id = match event {
        DatabaseEvent::WriteEvent {
            operation,
            operation_id,
        } => {
            let tags = Variants::Indexed.write_event_tags();
            buf.extend_from_slice(tags.head);
            match operation {
                Operation::Put { key, value } => {
                    buf.extend_from_slice(tags.put);
                    bin(key, buf)?;
                    bin(value, buf)?;
                }
                Operation::Delete { key } => {
                    buf.extend_from_slice(tags.delete);
                    bin(key, buf)?;
                }
            }
            operation_id
        }
        DatabaseEvent::ReadEvent { key, operation_id } => {
            buf.extend_from_slice(&[MAP_OF_ONE, 1, ARRAY_OF_TWO]);
            bin(key, buf)?;
            operation_id
        }
        DatabaseEvent::CompactionEvent {
            level,
            operation_id,
        } => {
            buf.extend_from_slice(&[MAP_OF_ONE, 2, ARRAY_OF_TWO]);
            // usize is at most 64 bits on every target Rust supports.
            uint(*level as u64, buf);
            operation_id
        }
        DatabaseEvent::AppEvent {
            kind,
            payload,
            operation_id,
        } => {
            buf.extend_from_slice(&[MAP_OF_ONE, 3, ARRAY_OF_THREE]);
            str(kind, buf)?;
            bin(payload, buf)?;
            operation_id
        }
    };
    buf.push(ARRAY_OF_TWO);
    uint(operation_id.timestamp, buf);
    uint(operation_id.sequence, buf);
    Ok(())
}

fn bin(b: &[u8], buf: &mut Vec<u8>) -> Result<()> {
    sized(b, [0xc4, 0xc5, 0xc6], "bin", buf)
}

fn str(s: &str, buf: &mut Vec<u8>) -> Result<()> {
    match u8::try_from(s.len()) {
        Ok(n) if n < 32 => {
            buf.push(0xa0 | n);
            buf.extend_from_slice(s.as_bytes());
            Ok(())
        }
        _ => sized(s.as_bytes(), [0xd9, 0xda, 0xdb], "str", buf),
    }
}

/// `bytes` behind the shortest of the 8-, 16- and 32-bit length `markers`.
fn sized(bytes: &[u8], markers: [u8; 3], what: &str, buf: &mut Vec<u8>) -> Result<()> {
    let len = bytes.len();
    if let Ok(n) = u8::try_from(len) {
        buf.extend_from_slice(&[markers[0], n]);
    } else if let Ok(n) = u16::try_from(len) {
        buf.push(markers[1]);
        buf.extend_from_slice(&n.to_be_bytes());
    } else if let Ok(n) = u32::try_from(len) {
        buf.push(markers[2]);
        buf.extend_from_slice(&n.to_be_bytes());
    } else {
        return Err(AzothError::Encoding(format!(
            "{len} bytes do not fit a MessagePack {what}"
        )));
    }
    buf.extend_from_slice(bytes);
    Ok(())
}

/// The shortest form, as rmp writes unsigned integers.
fn uint(v: u64, buf: &mut Vec<u8>) {
    if v < 128 {
        buf.push(v as u8);
    } else if let Ok(n) = u8::try_from(v) {
        buf.extend_from_slice(&[0xcc, n]);
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

/// Decodes a `WriteEvent` in exactly the layout above of the version whose `variants` are
/// given; `None` for anything else (another variant, another integer form, trailing bytes,
/// damage), which the caller hands to rmp-serde, so this path never accepts what rmp-serde
/// would refuse or read otherwise.
pub(super) fn decode_write_event(b: &[u8], variants: Variants) -> Option<DatabaseEvent> {
    let tags = variants.write_event_tags();
    let mut r = Reader(b);
    r.tag(tags.head)?;
    let operation = if r.0.starts_with(tags.put) {
        r.tag(tags.put)?;
        let key = r.bin()?;
        let value = r.bin()?;
        Operation::Put { key, value }
    } else {
        r.tag(tags.delete)?;
        Operation::Delete { key: r.bin()? }
    };
    r.tag(&[ARRAY_OF_TWO])?;
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
