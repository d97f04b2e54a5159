//! Pins the bytes that FORMAT.md documents, so a change to the event envelope or the chain
//! cannot slip in without a version bump.

use azoth_core::archive::{ArchiveReader, ArchiveWriter};
use azoth_core::{
    DatabaseEvent, GENESIS_HASH, Operation, OperationId, block_hash, decode_event, encode_event,
};

#[test]
fn the_documented_event_envelope() {
    let event = DatabaseEvent::WriteEvent {
        operation: Operation::Put {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
        },
        operation_id: OperationId::new(1, 2),
    };
    let expected: &[u8] = &[
        0x02, 0x81, 0x00, 0x92, 0x81, 0x00, 0x92, 0xc4, 0x01, b'k', 0xc4, 0x01, b'v', 0x92, 0x01,
        0x02,
    ];
    assert_eq!(encode_event(&event).unwrap(), expected);
    assert_eq!(decode_event(expected).unwrap(), event);

    // Version 1, written by earlier builds, still reads.
    let version_1: &[u8] = &[
        0x01, 0x81, 0xaa, b'W', b'r', b'i', b't', b'e', b'E', b'v', b'e', b'n', b't', 0x92, 0x81,
        0xa3, b'P', b'u', b't', 0x92, 0xc4, 0x01, b'k', 0xc4, 0x01, b'v', 0x92, 0x01, 0x02,
    ];
    assert_eq!(decode_event(version_1).unwrap(), event);
}

#[test]
fn the_documented_variant_indices() {
    let id = OperationId::new(1, 2);
    let cases: [(DatabaseEvent, &[u8]); 4] = [
        (
            DatabaseEvent::WriteEvent {
                operation: Operation::Delete { key: b"k".to_vec() },
                operation_id: id,
            },
            &[
                0x02, 0x81, 0x00, 0x92, 0x81, 0x01, 0x91, 0xc4, 0x01, b'k', 0x92, 0x01, 0x02,
            ],
        ),
        (
            DatabaseEvent::ReadEvent {
                key: b"k".to_vec(),
                operation_id: id,
            },
            &[0x02, 0x81, 0x01, 0x92, 0xc4, 0x01, b'k', 0x92, 0x01, 0x02],
        ),
        (
            DatabaseEvent::CompactionEvent {
                level: 3,
                operation_id: id,
            },
            &[0x02, 0x81, 0x02, 0x92, 0x03, 0x92, 0x01, 0x02],
        ),
        (
            DatabaseEvent::AppEvent {
                kind: "K".into(),
                payload: b"p".to_vec(),
                operation_id: id,
            },
            &[
                0x02, 0x81, 0x03, 0x93, 0xa1, b'K', 0xc4, 0x01, b'p', 0x92, 0x01, 0x02,
            ],
        ),
    ];
    for (event, expected) in cases {
        assert_eq!(encode_event(&event).unwrap(), expected, "{event:?}");
        assert_eq!(decode_event(expected).unwrap(), event);
    }
}

#[test]
fn the_documented_chain_hash() {
    // BLAKE3(prev || first_event_id u64 LE || count u32 LE || (len u32 LE || bytes)*)
    let mut input = Vec::new();
    input.extend_from_slice(&GENESIS_HASH);
    input.extend_from_slice(&7u64.to_le_bytes());
    input.extend_from_slice(&2u32.to_le_bytes());
    for event in [&b"ab"[..], b""] {
        input.extend_from_slice(&(event.len() as u32).to_le_bytes());
        input.extend_from_slice(event);
    }
    let expected = *blake3::hash(&input).as_bytes();
    assert_eq!(block_hash(&GENESIS_HASH, 7, &[&b"ab"[..], b""]), expected);
}

#[test]
fn the_documented_archive_header_and_trailer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("00000000000000000005.azarc");
    let prev = [9u8; 32];
    let mut writer = ArchiveWriter::create(&path, prev, 3).unwrap();
    writer.append_block(5, &[b"x".as_slice(), b"yz"]).unwrap();
    let summary = writer.finish().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());

    assert_eq!(&bytes[0..8], b"AZOTHARC");
    assert_eq!(u32_at(8), 1, "version");
    assert_eq!(u32_at(12), 0, "flags");
    assert_eq!(u64_at(16), 5, "first_event_id");
    assert_eq!(&bytes[24..56], &prev);
    assert_eq!(u32_at(60), crc32c::crc32c(&bytes[..60]));

    let t = bytes.len() - 88;
    let index_offset = u64_at(t) as usize;
    assert_eq!(u64_at(t + 8), 1, "frame_count");
    assert_eq!(u64_at(t + 16), 1, "block_count");
    assert_eq!(u64_at(t + 24), 2, "event_count");
    assert_eq!(u64_at(t + 32), 6, "last_event_id");
    let hash = block_hash(&prev, 5, &[&b"x"[..], b"yz"]);
    assert_eq!(&bytes[t + 40..t + 72], &hash);
    assert_eq!(summary.last_hash, hash);
    assert_eq!(&bytes[t + 76..t + 84], b"AZOTHEND");
    let crc = crc32c::crc32c_append(crc32c::crc32c(&bytes[index_offset..t]), &bytes[t..t + 84]);
    assert_eq!(u32_at(t + 84), crc);

    // The one index entry locates the one frame, which decompresses to the documented block.
    assert_eq!(t - index_offset, 32);
    assert_eq!(u64_at(index_offset), 5);
    assert_eq!(u64_at(index_offset + 8), 64);
    let len = u32_at(index_offset + 16) as usize;
    assert_eq!(64 + len, index_offset);
    assert_eq!(u32_at(index_offset + 24), 2);
    assert_eq!(
        u32_at(index_offset + 28),
        crc32c::crc32c(&bytes[64..64 + len])
    );
    let raw = zstd::bulk::decompress(&bytes[64..64 + len], 1 << 20).unwrap();
    let mut block = Vec::new();
    block.extend_from_slice(&5u64.to_le_bytes());
    block.extend_from_slice(&2u32.to_le_bytes());
    block.extend_from_slice(&hash);
    block.extend_from_slice(&1u32.to_le_bytes());
    block.extend_from_slice(b"x");
    block.extend_from_slice(&2u32.to_le_bytes());
    block.extend_from_slice(b"yz");
    assert_eq!(raw, block);
    assert_eq!(u32_at(index_offset + 20) as usize, block.len(), "raw_len");

    assert_eq!(ArchiveReader::open(&path).unwrap().summary(), summary);
}
