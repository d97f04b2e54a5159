use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::chain::{GENESIS_HASH, block_hash};
use crate::error::AzothError;

fn payload(id: EventId, len: usize) -> Vec<u8> {
    (0..len).map(|i| (id as usize * 31 + i) as u8).collect()
}

/// Writes blocks of the given sizes from id `first`, returns the events and the chain hash.
fn write(
    path: &Path,
    first: EventId,
    blocks: &[(usize, usize)],
) -> (Vec<(EventId, Vec<u8>)>, ChainHash) {
    let prev = [7u8; 32];
    let mut writer = ArchiveWriter::create(path, prev, 3).unwrap();
    let mut all = Vec::new();
    let mut hash = prev;
    let mut next = first;
    for &(count, len) in blocks {
        let events: Vec<Vec<u8>> = (0..count as u64).map(|i| payload(next + i, len)).collect();
        writer.append_block(next, &events).unwrap();
        hash = block_hash(&hash, next, &events);
        for (i, e) in events.into_iter().enumerate() {
            all.push((next + i as u64, e));
        }
        next += count as u64;
    }
    let summary = writer.finish().unwrap();
    assert_eq!(summary.prev_hash, prev);
    assert_eq!(summary.last_hash, hash);
    assert_eq!(summary.event_count, all.len() as u64);
    assert_eq!(summary.bytes, std::fs::metadata(path).unwrap().len());
    (all, hash)
}

fn collect(reader: &Arc<ArchiveReader>, start: EventId) -> Vec<(EventId, Vec<u8>)> {
    reader.iter_from(start).map(|e| e.unwrap()).collect()
}

#[test]
fn round_trip_across_frames() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.azarc");
    // 60 blocks of 3 × 3 KiB: about 540 KiB of raw data, so at least two frames; an empty
    // block and empty events in between.
    let mut blocks = vec![(2, 0), (0, 0)];
    blocks.extend(std::iter::repeat_n((3, 3000), 60));
    blocks.push((1, 1024 * 1024));
    let (all, hash) = write(&path, 100, &blocks);
    let reader = Arc::new(ArchiveReader::open(&path).unwrap());
    assert!(reader.index.len() >= 3, "{} frames", reader.index.len());
    let summary = reader.summary();
    assert_eq!(summary.first_event_id, 100);
    assert_eq!(summary.last_event_id, 100 + all.len() as u64 - 1);
    assert_eq!(summary.last_hash, hash);
    assert_eq!(collect(&reader, 0), all);
    for start in [100, 101, 102, 150, 170, summary.last_event_id] {
        let expected: Vec<_> = all.iter().filter(|(id, _)| *id >= start).cloned().collect();
        assert_eq!(collect(&reader, start), expected, "iter_from({start})");
    }
    assert!(collect(&reader, summary.last_event_id + 1).is_empty());
    for (id, event) in &all {
        assert_eq!(reader.get(*id).unwrap().as_ref(), Some(event), "get({id})");
    }
    for id in [0, 99, summary.last_event_id + 1, u64::MAX] {
        assert_eq!(reader.get(id).unwrap(), None, "get({id})");
    }
    let report = reader.verify(Some([7u8; 32])).unwrap();
    assert!(report.is_ok(), "{:?}", report.first_failure);
    assert_eq!(report.blocks_verified, blocks.len() as u64);
    assert_eq!(report.events_verified, all.len() as u64);
    assert_eq!(report.frames_verified, reader.index.len() as u64);
    assert_eq!(report.last_hash, hash);
    let wrong = reader.verify(Some(GENESIS_HASH)).unwrap();
    assert!(wrong.first_failure.unwrap().detail.contains("chain link"));
}

#[test]
fn empty_archive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.azarc");
    let summary = ArchiveWriter::create(&path, GENESIS_HASH, 3)
        .unwrap()
        .finish()
        .unwrap();
    assert_eq!(
        (
            summary.first_event_id,
            summary.last_event_id,
            summary.event_count
        ),
        (0, 0, 0)
    );
    let reader = Arc::new(ArchiveReader::open(&path).unwrap());
    assert_eq!(reader.summary(), summary);
    assert_eq!(reader.get(1).unwrap(), None);
    assert!(collect(&reader, 0).is_empty());
    assert!(reader.verify(Some(GENESIS_HASH)).unwrap().is_ok());
}

#[test]
fn writer_enforces_dense_ids() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = ArchiveWriter::create(&dir.path().join("d"), GENESIS_HASH, 3).unwrap();
    assert!(matches!(
        writer.append_block(0, &[b"x"]),
        Err(AzothError::InvalidEventId {
            expected: 1,
            got: 0
        })
    ));
    writer.append_block(5, &[b"a", b"b"]).unwrap();
    assert!(matches!(
        writer.append_block(8, &[b"c"]),
        Err(AzothError::InvalidEventId {
            expected: 7,
            got: 8
        })
    ));
    assert!(matches!(
        writer.append_block(6, &[b"c"]),
        Err(AzothError::InvalidEventId {
            expected: 7,
            got: 6
        })
    ));
    writer.append_block(7, &[b"c"]).unwrap();
    assert_eq!(writer.finish().unwrap().last_event_id, 7);
}

/// Opens and verifies `path`; true if either reports the damage.
fn damage_detected(path: &Path) -> bool {
    match ArchiveReader::open(path) {
        Err(AzothError::Corruption { location, .. }) => {
            assert_eq!(location.file.as_deref(), Some(path));
            true
        }
        Err(AzothError::UnsupportedVersion { .. }) => true,
        Err(e) => panic!("damage gave an error other than Corruption: {e}"),
        Ok(reader) => {
            let reader = Arc::new(reader);
            let report = reader.verify(None).unwrap();
            // Reading must not panic whatever the damage.
            let _ = reader.iter_from(0).count();
            let _ = reader.get(reader.summary().first_event_id);
            match report.first_failure {
                Some(failure) => {
                    assert_eq!(failure.location.file.as_deref(), Some(path));
                    assert!(failure.location.offset.is_some());
                    true
                }
                None => false,
            }
        }
    }
}

#[cfg(unix)]
#[test]
fn every_bit_flip_is_detected() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.azarc");
    write(&path, 1, &[(2, 5), (1, 0), (3, 2)]);
    let good = std::fs::read(&path).unwrap();
    // Flip in place and restore, rather than rewrite the file thousands of times.
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    for (at, &byte) in good.iter().enumerate() {
        for bit in 0..8 {
            file.write_all_at(&[byte ^ (1 << bit)], at as u64).unwrap();
            assert!(
                damage_detected(&path),
                "flip of bit {bit} of byte {at} went unnoticed"
            );
        }
        file.write_all_at(&[byte], at as u64).unwrap();
    }
    assert!(!damage_detected(&path), "the restored archive is intact");
}

#[test]
fn every_truncation_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.azarc");
    write(&path, 1, &[(2, 50), (3, 20)]);
    let good = std::fs::read(&path).unwrap();
    let damaged = dir.path().join("truncated.azarc");
    for len in 0..good.len() {
        std::fs::write(&damaged, &good[..len]).unwrap();
        assert!(
            damage_detected(&damaged),
            "truncation to {len} bytes went unnoticed"
        );
    }
}

#[test]
fn a_frame_damaged_in_the_middle_names_its_offset_and_event() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.azarc");
    write(
        &path,
        1,
        &std::iter::repeat_n((4, 30_000), 6).collect::<Vec<_>>(),
    );
    let reader = ArchiveReader::open(&path).unwrap();
    let second = reader.index[1];
    drop(reader);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[second.offset as usize + 3] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let reader = Arc::new(ArchiveReader::open(&path).unwrap());
    let failure = reader.verify(None).unwrap().first_failure.unwrap();
    assert_eq!(failure.location.offset, Some(second.offset));
    assert_eq!(failure.location.event_id, Some(second.first_event_id));
    assert!(
        reader.get(1).unwrap().is_some(),
        "the first frame is intact"
    );
    let err = reader.get(second.first_event_id).unwrap_err();
    assert!(err.is_corruption());
    let items: Vec<_> = reader.iter_from(1).collect();
    assert!(
        items.last().unwrap().is_err(),
        "iteration ends with the corruption"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config {
        cases: 48,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    })]

    /// Overwriting any range of a multi-block archive with other bytes is detected, and never
    /// makes a reader panic.
    #[test]
    fn overwritten_ranges_are_detected(
        at in 0usize..2000,
        junk in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..64),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.azarc");
        write(&path, 1, &[(3, 100), (0, 0), (5, 60), (1, 700)]);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = at % bytes.len();
        let end = (at + junk.len()).min(bytes.len());
        let before = bytes.clone();
        bytes[at..end].copy_from_slice(&junk[..end - at]);
        proptest::prop_assume!(bytes != before);
        std::fs::write(&path, &bytes).unwrap();
        proptest::prop_assert!(damage_detected(&path));
    }

    /// Arbitrary bytes, with or without a valid magic number, are refused without a panic.
    #[test]
    fn garbage_is_refused(
        magic in proptest::prelude::any::<bool>(),
        body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.azarc");
        let mut bytes = if magic { b"AZOTHARC".to_vec() } else { Vec::new() };
        bytes.extend_from_slice(&body);
        std::fs::write(&path, &bytes).unwrap();
        proptest::prop_assert!(damage_detected(&path));
    }
}

#[test]
fn readers_share_one_archive_across_threads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.azarc");
    let (all, _) = write(
        &path,
        1,
        &std::iter::repeat_n((5, 20_000), 8).collect::<Vec<_>>(),
    );
    let reader = Arc::new(ArchiveReader::open(&path).unwrap());
    let all = Arc::new(all);
    let threads: Vec<_> = (0..3)
        .map(|t| {
            let reader = Arc::clone(&reader);
            let all = Arc::clone(&all);
            std::thread::spawn(move || {
                for (id, event) in all.iter().skip(t).step_by(3) {
                    assert_eq!(reader.get(*id).unwrap().as_ref(), Some(event));
                }
                assert_eq!(reader.iter_from(0).count(), all.len());
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}
