//! How a stored value of the key-value state is laid out: its version, then its bytes.
//!
//! ```text
//! +----------------------+----------------------+-----------------+
//! | timestamp u64 BE (8) | sequence u64 BE (8)  | value (n bytes) |
//! +----------------------+----------------------+-----------------+
//! ```
//!
//! The [`OperationId`] comes first and big-endian so that a raw dump sorts versions
//! naturally; 16 bytes per entry is the whole cost of versioning.

use azoth_core::{OperationId, VersionedValue};

/// Bytes of the version header.
pub(crate) const HEADER_LEN: usize = 16;

/// Writes the header of `operation_id` into `out` (16 bytes).
pub(crate) fn header(operation_id: OperationId) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[..8].copy_from_slice(&operation_id.timestamp.to_be_bytes());
    out[8..].copy_from_slice(&operation_id.sequence.to_be_bytes());
    out
}

/// Decodes a stored value; `None` if it is shorter than the header (damage).
pub(crate) fn decode(stored: &[u8]) -> Option<VersionedValue> {
    let (head, value) = stored.split_at_checked(HEADER_LEN)?;
    let (ts, seq) = head.split_at(8);
    Some(VersionedValue {
        value: value.to_vec(),
        operation_id: OperationId::new(
            u64::from_be_bytes(ts.try_into().ok()?),
            u64::from_be_bytes(seq.try_into().ok()?),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let id = OperationId::new(1_700_000_000_000_000, 42);
        let mut stored = header(id).to_vec();
        stored.extend_from_slice(b"hello");
        let v = decode(&stored).unwrap();
        assert_eq!(v.operation_id, id);
        assert_eq!(v.value, b"hello");
        assert!(decode(&stored[..15]).is_none());
        assert_eq!(decode(&stored[..16]).unwrap().value, b"");
    }
}
