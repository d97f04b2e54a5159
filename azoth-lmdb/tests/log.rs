//! Behaviour of `LmdbEventLog` beyond the shared conformance suite: segments, deletion,
//! reopening, sync modes, map growth, the lock, read-only opening and damage found by verify.

use azoth_core::{AzothError, EventLog, SyncMode};
use azoth_lmdb::{LmdbEventLog, LmdbLogOptions};

fn ev(id: u64) -> Vec<u8> {
    format!("event-{id:08}-payload").into_bytes()
}

fn append_blocks(log: &LmdbEventLog, blocks: u64, per_block: u64) {
    for _ in 0..blocks {
        let first = log.next_event_id().unwrap();
        let events: Vec<_> = (first..first + per_block).map(ev).collect();
        log.append_batch_with_ids(first, &events).unwrap();
    }
}

fn ids(log: &LmdbEventLog, start: u64, end: Option<u64>) -> Vec<u64> {
    log.iter_range(start, end)
        .unwrap()
        .map(|r| {
            let (id, bytes) = r.unwrap();
            assert_eq!(bytes, ev(id));
            id
        })
        .collect()
}

#[test]
fn appends_reads_and_ids() {
    let dir = tempfile::tempdir().unwrap();
    let log = LmdbEventLog::open(dir.path()).unwrap();
    assert_eq!(
        (
            log.oldest_event_id().unwrap(),
            log.next_event_id().unwrap(),
            log.newest_event_id().unwrap()
        ),
        (1, 1, 0)
    );
    assert!(matches!(
        log.append_with_id(2, b"x").unwrap_err(),
        AzothError::InvalidEventId {
            expected: 1,
            got: 2
        }
    ));
    append_blocks(&log, 30, 100);
    assert_eq!(log.newest_event_id().unwrap(), 3000);
    assert_eq!(log.get(1234).unwrap(), Some(ev(1234)));
    assert_eq!(log.get(3001).unwrap(), None);
    assert_eq!(log.get(0).unwrap(), None);
    // Several chunks, bounded and unbounded.
    assert_eq!(ids(&log, 1, None), (1..=3000).collect::<Vec<_>>());
    assert_eq!(
        ids(&log, 1500, Some(2600)),
        (1500..2600).collect::<Vec<_>>()
    );
    assert!(ids(&log, 5000, None).is_empty());
    let report = log.verify().unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!((report.blocks_verified, report.events_verified), (30, 3000));
}

#[test]
fn rotate_delete_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = LmdbEventLog::open(dir.path()).unwrap();
        append_blocks(&log, 2, 50); // 1..=100
        let sealed = log.rotate().unwrap();
        assert!(sealed.starts_with(dir.path()));
        // Rotating an empty active segment seals nothing new.
        log.rotate().unwrap();
        append_blocks(&log, 2, 50); // 101..=200
        log.rotate().unwrap();
        append_blocks(&log, 1, 10); // 201..=210, active
        // Only whole sealed segments inside the range go.
        assert_eq!(log.delete_range(1, 150).unwrap(), 100);
        assert_eq!(log.delete_range(1, 10_000).unwrap(), 100);
        assert_eq!(log.oldest_event_id().unwrap(), 201);
        assert_eq!(log.get(150).unwrap(), None);
        assert_eq!(ids(&log, 1, None), (201..=210).collect::<Vec<_>>());
    }
    let log = LmdbEventLog::open(dir.path()).unwrap();
    assert_eq!(log.oldest_event_id().unwrap(), 201);
    assert_eq!(log.next_event_id().unwrap(), 211);
    append_blocks(&log, 1, 5);
    assert_eq!(ids(&log, 0, None), (201..=215).collect::<Vec<_>>());
    let report = log.verify().unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(log.stats().unwrap().event_count, 15);
}

#[test]
fn every_sync_mode_keeps_what_it_acknowledged_across_reopen() {
    for mode in [SyncMode::Always, SyncMode::IntervalMs(5), SyncMode::Never] {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = LmdbLogOptions::default()
                .sync_mode(mode)
                .open(dir.path())
                .unwrap();
            append_blocks(&log, 10, 10);
            log.sync().unwrap();
        }
        let log = LmdbEventLog::open(dir.path()).unwrap();
        assert_eq!(log.newest_event_id().unwrap(), 100, "{mode:?}");
        assert!(log.verify().unwrap().is_ok());
    }
}

#[test]
fn the_log_map_grows_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let log = LmdbLogOptions::default()
        .sync_mode(SyncMode::Never)
        .map_size(1 << 20)
        .open(dir.path())
        .unwrap();
    let big = vec![0x5Au8; 4000];
    for i in 0..2000u64 {
        log.append_with_id(i + 1, &big).unwrap();
    }
    assert_eq!(log.get(2000).unwrap(), Some(big));
    assert!(log.verify().unwrap().is_ok());
}

#[test]
fn a_second_writer_is_refused_and_read_only_opens_see_the_log() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = LmdbEventLog::open(dir.path()).unwrap();
        append_blocks(&log, 3, 3);
        assert!(matches!(
            LmdbEventLog::open(dir.path()).unwrap_err(),
            AzothError::Locked { .. }
        ));
    }
    let reader = LmdbEventLog::open_read_only(dir.path()).unwrap();
    assert_eq!(reader.newest_event_id().unwrap(), 9);
    assert_eq!(ids(&reader, 1, None), (1..=9).collect::<Vec<_>>());
    assert!(matches!(
        reader.append_with_id(10, b"x").unwrap_err(),
        AzothError::ReadOnly
    ));
    assert!(reader.verify().unwrap().is_ok());
}

/// Flips one byte of the file where `needle` is stored.
fn flip_byte_of(file: &std::path::Path, needle: &[u8]) {
    let mut bytes = std::fs::read(file).unwrap();
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the event is in the file");
    bytes[at + needle.len() - 1] ^= 0x01;
    std::fs::write(file, bytes).unwrap();
}

#[test]
fn a_flipped_byte_is_found_and_located_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = LmdbEventLog::open(dir.path()).unwrap();
        append_blocks(&log, 5, 10);
        log.rotate().unwrap();
        append_blocks(&log, 5, 10);
    }
    flip_byte_of(&dir.path().join("env").join("data.mdb"), &ev(73));
    let log = LmdbEventLog::open(dir.path()).unwrap();
    let report = log.verify().unwrap();
    let failure = report.first_failure.expect("damage found");
    assert_eq!(failure.location.event_id, Some(73), "{failure}");
    assert!(failure.location.file.unwrap().ends_with("data.mdb"));
    assert_eq!(report.events_verified, 70);
    // Reads name the damaged event too, rather than return wrong bytes.
    assert!(log.get(73).unwrap_err().is_corruption());
    let items: Vec<_> = log.iter_range(70, None).unwrap().collect();
    let shown: Vec<_> = items
        .iter()
        .map(|r| r.as_ref().map(|(id, _)| *id).map_err(|e| e.to_string()))
        .collect();
    assert_eq!(items.len(), 4, "{shown:?}");
    assert!(items[3].as_ref().unwrap_err().is_corruption(), "{shown:?}");
}

#[test]
fn archived_segments_stay_readable_and_verified() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = LmdbEventLog::open(dir.path()).unwrap();
        append_blocks(&log, 3, 40); // 1..=120
        log.rotate().unwrap();
        append_blocks(&log, 3, 40); // 121..=240
        log.rotate().unwrap();
        append_blocks(&log, 1, 10); // 241..=250, active
        // An iterator made before archiving keeps reading its snapshot.
        let before = log.iter_range(100, Some(130)).unwrap();
        let written = log.archive(200).unwrap();
        assert_eq!(written.len(), 1);
        assert!(written[0].starts_with(dir.path().join("archive")));
        assert!(written[0].exists());
        assert_eq!(
            before.map(|r| r.unwrap().0).collect::<Vec<_>>(),
            (100..130).collect::<Vec<_>>()
        );
        assert_eq!(log.archive(1000).unwrap().len(), 1);
        assert_eq!(log.get(7).unwrap(), Some(ev(7)));
        assert_eq!(log.get(200).unwrap(), Some(ev(200)));
        assert_eq!(ids(&log, 1, None), (1..=250).collect::<Vec<_>>());
        assert_eq!(ids(&log, 110, Some(130)), (110..130).collect::<Vec<_>>());
        let report = log.verify().unwrap();
        assert!(report.is_ok(), "{report:?}");
        assert_eq!((report.segments_verified, report.events_verified), (3, 250));
    }
    let log = LmdbEventLog::open(dir.path()).unwrap();
    assert_eq!(ids(&log, 1, None), (1..=250).collect::<Vec<_>>());
    assert_eq!(log.stats().unwrap().event_count, 250);
    // Deleting an archived segment removes its file.
    assert_eq!(log.delete_range(1, 120).unwrap(), 120);
    assert!(
        !dir.path()
            .join("archive")
            .join(format!("{:020}.azarc", 1))
            .exists()
    );
    assert_eq!(log.oldest_event_id().unwrap(), 121);
    assert_eq!(log.get(5).unwrap(), None);
    assert!(log.verify().unwrap().is_ok());
}

#[test]
fn damage_in_an_archive_is_found_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let log = LmdbEventLog::open(dir.path()).unwrap();
    append_blocks(&log, 4, 25);
    log.rotate().unwrap();
    append_blocks(&log, 1, 5);
    let archive = log.archive(100).unwrap().remove(0);
    drop(log);
    let len = std::fs::metadata(&archive).unwrap().len();
    azoth_core::testing::crash::flip_bit(&archive, len / 2, 3).unwrap();
    let log = LmdbEventLog::open(dir.path()).unwrap();
    let report = log.verify().unwrap();
    let failure = report.first_failure.expect("damage found");
    assert_eq!(
        failure.location.file.as_deref(),
        Some(archive.as_path()),
        "{failure}"
    );
}

const READER_CHILD_DIR: &str = "AZOTH_LMDB_READER_CHILD_DIR";

/// Run as a child by `a_read_only_process_follows_a_growing_writer`: opens the log read-only,
/// says `ready`, waits for a line on stdin, then reports what it sees.
#[test]
fn reader_child() {
    let Some(dir) = azoth_core::testing::crash::child_dir(READER_CHILD_DIR) else {
        return;
    };
    let log = LmdbEventLog::open_read_only(&dir).unwrap();
    println!("before {}", log.newest_event_id().unwrap());
    println!("ready");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    let mut count = 0;
    for item in log.iter_range(1, None).unwrap() {
        item.unwrap();
        count += 1;
    }
    println!(
        "after {} {count} {}",
        log.newest_event_id().unwrap(),
        log.verify().unwrap().is_ok()
    );
}

#[test]
fn a_read_only_process_follows_a_growing_writer() {
    use std::io::{BufRead, BufReader, Write};
    let dir = tempfile::tempdir().unwrap();
    let log = LmdbLogOptions::default()
        .sync_mode(SyncMode::Never)
        .map_size(1 << 20)
        .open(dir.path())
        .unwrap();
    append_blocks(&log, 1, 10);
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "reader_child", "--nocapture", "--test-threads=1"])
        .env(READER_CHILD_DIR, dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut saw = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let ready = line.ends_with("ready");
        saw.push(line);
        if ready {
            break;
        }
    }
    // The test harness may print its own text before ours on the same line.
    assert!(saw.iter().any(|l| l.ends_with("before 10")), "{saw:?}");
    // Grow the map well past the reader's: ~8 MB into a 1 MiB map.
    let big = vec![7u8; 4000];
    for id in 11..=2010u64 {
        log.append_with_id(id, &big).unwrap();
    }
    log.sync().unwrap();
    writeln!(child.stdin.take().unwrap(), "go").unwrap();
    let after = lines
        .by_ref()
        .map(|l| l.unwrap())
        .find_map(|l| l.find("after ").map(|at| l[at..].to_owned()))
        .expect("the child reports");
    assert_eq!(after, "after 2010 2010 true");
    // Read to the end, so the child's harness can finish printing.
    lines.for_each(drop);
    assert!(child.wait().unwrap().success());
}

#[test]
fn open_removes_what_an_interrupted_archival_or_deletion_left() {
    let dir = tempfile::tempdir().unwrap();
    let archive_dir = dir.path().join("archive");
    let stale = archive_dir.join(format!("{:020}.azarc", 1));
    let kept = archive_dir.join(format!("{:020}.azarc", 41));
    let tmp = archive_dir.join(format!("{:020}.azarc.tmp", 81));
    {
        let log = LmdbEventLog::open(dir.path()).unwrap();
        for _ in 0..3 {
            append_blocks(&log, 2, 20);
            log.rotate().unwrap();
        }
        assert_eq!(log.archive(80).unwrap(), vec![stale.clone(), kept.clone()]);
        let copy = std::fs::read(&stale).unwrap();
        assert_eq!(log.delete_range(1, 40).unwrap(), 40);
        // As if the crash came after the deletion's commit, before its file went, and in
        // the middle of writing the next archive.
        std::fs::write(&stale, copy).unwrap();
        std::fs::write(&tmp, b"half an archive").unwrap();
    }
    let log = LmdbEventLog::open(dir.path()).unwrap();
    assert!(!stale.exists());
    assert!(!tmp.exists());
    assert!(kept.exists(), "an archive still in use was removed");
    assert_eq!(ids(&log, 1, None), (41..=120).collect::<Vec<_>>());
    assert!(log.verify().unwrap().is_ok());
}

#[test]
fn units_and_verify_progress_describe_every_segment() {
    let dir = tempfile::tempdir().unwrap();
    let log = LmdbEventLog::open(dir.path()).unwrap();
    append_blocks(&log, 2, 10); // 1..=20
    log.rotate().unwrap();
    append_blocks(&log, 2, 10); // 21..=40
    log.rotate().unwrap();
    append_blocks(&log, 1, 5); // 41..=45, active
    log.archive(20).unwrap();
    let units = log.units().unwrap();
    let shape: Vec<_> = units
        .iter()
        .map(|u| (u.first_event_id, u.end_event_id, u.state))
        .collect();
    use azoth_core::UnitState::{Active, Archived, Sealed};
    assert_eq!(
        shape,
        vec![(1, 21, Archived), (21, 41, Sealed), (41, 46, Active)]
    );
    assert!(units.iter().all(|u| u.bytes > 0));
    let mut calls = Vec::new();
    assert!(log.verify_with_progress(|p| calls.push(p)).unwrap().is_ok());
    assert_eq!(calls.len(), 3);
    let last = calls[2];
    assert_eq!((last.segments_done, last.segments_total), (3, 3));
    assert_eq!(last.bytes_done, last.bytes_total);
    assert_eq!(last.bytes_total, units.iter().map(|u| u.bytes).sum::<u64>());
}

#[test]
fn an_iterator_reports_an_archived_segment_retention_deleted_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = LmdbEventLog::open(dir.path()).unwrap();
    for _ in 0..3 {
        append_blocks(&log, 2, 10);
        log.rotate().unwrap();
    }
    assert_eq!(log.archive(40).unwrap().len(), 2);
    // The iterator's snapshot still lists 1..=20 as archived; retention then deletes them.
    // It must not skip them silently: it says which events are gone, and ends.
    let started = log.iter_range(1, None).unwrap();
    assert_eq!(log.delete_range(1, 20).unwrap(), 20);
    let items: Vec<_> = started.collect();
    assert_eq!(items.len(), 1, "{items:?}");
    match &items[0] {
        Err(AzothError::EventsDeleted { from: 1, to: 21 }) => {}
        other => panic!("expected EventsDeleted for 1..21, got {other:?}"),
    }
    // A reader started now begins at the oldest event left.
    assert_eq!(ids(&log, 1, None), (21..=60).collect::<Vec<_>>());
    assert_eq!(log.get(5).unwrap(), None);
    // An archive the log still lists but cannot find is damage, not a deletion.
    std::fs::remove_file(dir.path().join("archive").join(format!("{:020}.azarc", 21))).unwrap();
    drop(log);
    let log = LmdbEventLog::open(dir.path()).unwrap();
    assert!(log.iter_range(21, None).unwrap().next().unwrap().is_err());
}

#[test]
fn verify_passes_over_a_hole_delete_range_left_in_the_middle() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = LmdbEventLog::open(dir.path()).unwrap();
        for _ in 0..4 {
            append_blocks(&log, 2, 10);
            log.rotate().unwrap();
        }
        append_blocks(&log, 1, 5); // 1..=80 in four sealed segments, 81..=85 active
        assert_eq!(log.archive(40).unwrap().len(), 2);
        // One sealed and one archived segment go from the middle of the log.
        assert_eq!(log.delete_range(21, 40).unwrap(), 20);
        assert_eq!(log.delete_range(41, 60).unwrap(), 20);
        let mut expected: Vec<u64> = (1..=20).collect();
        expected.extend(61..=85);
        assert_eq!(ids(&log, 0, None), expected);
        let report = log.verify().unwrap();
        assert!(report.is_ok(), "{report:?}");
        assert_eq!(report.events_verified, 45);
    }
    let log = LmdbEventLog::open(dir.path()).unwrap();
    let report = log.verify().unwrap();
    assert!(report.is_ok(), "after reopening: {report:?}");
    // The oldest segment goes too: the log starts after the hole.
    assert_eq!(log.delete_range(1, 20).unwrap(), 20);
    assert_eq!(log.oldest_event_id().unwrap(), 61);
    let report = log.verify().unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.events_verified, 25);
}

#[test]
fn retention_while_verify_runs_is_not_reported_as_damage() {
    let dir = tempfile::tempdir().unwrap();
    let log = LmdbEventLog::open(dir.path()).unwrap();
    for _ in 0..3 {
        append_blocks(&log, 2, 10);
        log.rotate().unwrap();
    }
    append_blocks(&log, 1, 5); // 1..=60 in three sealed segments, 61..=65 active
    assert_eq!(log.archive(40).unwrap().len(), 2);
    // Retention frees the two archived segments after verify has checked the first one:
    // verify's snapshot still lists the second, whose archive is gone.
    let mut deleted = 0;
    let report = log
        .verify_with_progress(|p| {
            if p.segments_done == 1 {
                deleted = log.delete_range(1, 40).unwrap();
            }
        })
        .unwrap();
    assert_eq!(deleted, 40);
    assert!(report.is_ok(), "{report:?}");
    assert!(log.verify().unwrap().is_ok());
}

#[test]
fn a_sync_interval_of_zero_is_refused_as_by_the_file_log() {
    let dir = tempfile::tempdir().unwrap();
    let refused = azoth_lmdb::LmdbLogOptions::default()
        .sync_mode(azoth_core::SyncMode::IntervalMs(0))
        .open(dir.path());
    assert!(matches!(refused, Err(azoth_core::AzothError::Config(_))));
}
