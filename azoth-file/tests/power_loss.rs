//! Power loss, modelled by a file system that keeps only what was made durable: for every
//! file the bytes its last `fdatasync` saw, for the directory the entries its last `fsync`
//! saw. [`PowerLossFs::after_power_loss`] copies that state into a fresh directory, which a
//! log then opens as it would after the machine went down at that moment. Then the states a
//! real file system can leave under `SyncMode::Never`, made by hand.

mod common;

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use azoth_core::{AzothError, EventLog, SyncMode};
use azoth_file::fs::{FileSystem, WritableFile};
use azoth_file::{FileEventLog, FileLogOptions, RecoveryMode};
use common::*;

#[derive(Debug, Default)]
struct Durable {
    /// By inode: the file's bytes as of its last sync.
    data: HashMap<u64, Vec<u8>>,
    /// By directory: its entries (name and inode) as of its last sync.
    dirs: HashMap<PathBuf, HashMap<OsString, u64>>,
    /// Directory syncs still to fail (an I/O error, the directory not synced).
    failing_dir_syncs: u32,
}

#[derive(Debug, Clone, Default)]
struct PowerLossFs(Arc<Mutex<Durable>>);

#[derive(Debug)]
struct TrackedFile {
    file: File,
    durable: Arc<Mutex<Durable>>,
}

impl WritableFile for TrackedFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()?;
        let meta = self.file.metadata()?;
        let mut bytes = vec![0u8; usize::try_from(meta.len()).unwrap()];
        self.file.read_exact_at(&mut bytes, 0)?;
        self.durable.lock().unwrap().data.insert(meta.ino(), bytes);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
}

impl FileSystem for PowerLossFs {
    fn open_writable(&self, path: &Path, create: bool) -> io::Result<Arc<dyn WritableFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(create)
            .open(path)?;
        Ok(Arc::new(TrackedFile {
            file,
            durable: Arc::clone(&self.0),
        }))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        {
            let mut durable = self.0.lock().unwrap();
            if durable.failing_dir_syncs > 0 {
                durable.failing_dir_syncs -= 1;
                return Err(io::Error::other("injected directory sync failure"));
            }
        }
        File::open(dir)?.sync_all()?;
        let mut entries = HashMap::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            entries.insert(entry.file_name(), entry.metadata()?.ino());
        }
        self.0
            .lock()
            .unwrap()
            .dirs
            .insert(dir.to_path_buf(), entries);
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
}

impl PowerLossFs {
    /// Writes into `to` what of `dir` a power loss now would leave, at worst: the entries of
    /// the directory's last sync, each with the bytes of the file's last sync (none if never).
    fn after_power_loss(&self, dir: &Path, to: &Path) {
        let durable = self.0.lock().unwrap();
        for (name, ino) in durable.dirs.get(dir).into_iter().flatten() {
            let bytes = durable.data.get(ino).map_or(&[][..], Vec::as_slice);
            std::fs::write(to.join(name), bytes).unwrap();
        }
    }
}

fn open_on(dir: &Path, fs: &PowerLossFs, mode: SyncMode) -> FileEventLog {
    FileLogOptions::default()
        .sync_mode(mode)
        .segment_size(4096)
        .file_system(Arc::new(fs.clone()))
        .open(dir)
        .unwrap()
}

/// `EventLog::sync` makes every appended event durable, whatever the sync mode: the view
/// flush relies on it (the store may never be ahead of the durable log). Under
/// `SyncMode::Never` rotation syncs nothing, so `sync` must also make the segments sealed
/// since the last sync, and the directory entries of the new ones, durable.
#[test]
fn sync_makes_every_appended_event_durable_in_every_mode() {
    for mode in [
        SyncMode::Never,
        SyncMode::IntervalMs(3_600_000),
        SyncMode::Always,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let fs = PowerLossFs::default();
        let log = open_on(dir.path(), &fs, mode);
        fill(&log, 1, 900, 3);
        assert!(
            segments(dir.path()).len() > 3,
            "{mode:?}: the appends rotated"
        );
        log.sync().unwrap();

        let crashed = tempfile::tempdir().unwrap();
        fs.after_power_loss(dir.path(), crashed.path());
        let reopened = FileLogOptions::default()
            .sync_mode(mode)
            .segment_size(4096)
            .open(crashed.path())
            .unwrap();
        assert_eq!(
            reopened.newest_event_id().unwrap(),
            899,
            "{mode:?}: events lost after sync()"
        );
        assert_holds(&reopened, 1, 900);
        assert!(reopened.verify().unwrap().is_ok(), "{mode:?}");
    }
}

/// Under `SyncMode::Always` every acknowledged append survives a power loss right after it,
/// rotations included.
#[test]
fn always_appends_survive_power_loss_after_each_acknowledgement() {
    let dir = tempfile::tempdir().unwrap();
    let fs = PowerLossFs::default();
    let log = open_on(dir.path(), &fs, SyncMode::Always);
    let mut id = 1;
    while id < 400 {
        let n = 1 + id % 4;
        let events: Vec<Vec<u8>> = (id..id + n).map(event).collect();
        log.append_batch_with_ids(id, &events).unwrap();
        id += n;
        if id % 7 < 4 {
            let crashed = tempfile::tempdir().unwrap();
            fs.after_power_loss(dir.path(), crashed.path());
            let reopened = FileLogOptions::default()
                .recovery_mode(azoth_file::RecoveryMode::Refuse)
                .segment_size(4096)
                .open(crashed.path())
                .unwrap();
            assert_holds(&reopened, 1, id);
            assert!(reopened.verify().unwrap().is_ok(), "at {id}");
        }
    }
}

// A real power loss under `SyncMode::Never`: the file system wrote back some of what was
// appended since the last `sync()` and not the rest, in no particular order. The tests below
// make such states by hand from a log whose process stopped without a sync: a range of
// zeros in a segment (pages never written back), a segment file missing (its directory entry
// never written), a sealed segment still as long as it was before sealing cut it.

/// The first event id of a segment file, from its name.
fn first_id_of(path: &Path) -> u64 {
    path.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

/// Events 1..200 made durable by a sync, then 200..1000 appended across several segments of
/// 4 KiB with no sync, and the log dropped (the process ended). Returns the segments sealed
/// since the sync (the active one excluded).
fn unsynced_log(dir: &Path) -> Vec<PathBuf> {
    let log = open_small(dir, 4096);
    fill(&log, 1, 200, 5);
    log.sync().unwrap();
    fill(&log, 200, 1000, 5);
    drop(log);
    let segs = segments(dir);
    let active = segs.last().unwrap().clone();
    let unsynced: Vec<PathBuf> = segs
        .into_iter()
        .filter(|p| first_id_of(p) >= 200 && *p != active)
        .collect();
    assert!(unsynced.len() >= 3, "{} unsynced segments", unsynced.len());
    unsynced
}

/// The id of the block of `path` that holds byte `at`.
fn block_at(path: &Path, at: usize) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    let mut offset = azoth_file::format::SEGMENT_HEADER_LEN;
    loop {
        let frame = azoth_file::format::decode_frame(&bytes[offset..]).unwrap();
        if offset + frame.byte_len() > at {
            return frame.first_event_id;
        }
        offset += frame.byte_len();
    }
}

#[test]
fn pages_lost_in_a_segment_sealed_without_a_sync_end_the_log_there() {
    let dir = tempfile::tempdir().unwrap();
    let unsynced = unsynced_log(dir.path());
    let damaged = &unsynced[1];
    let mut bytes = std::fs::read(damaged).unwrap();
    let at = bytes.len() / 2;
    let lost_from = block_at(damaged, at);
    bytes[at..at + 300].fill(0);
    std::fs::write(damaged, &bytes).unwrap();

    let log = open_small(dir.path(), 4096);
    // A prefix of what was appended, with everything the sync made durable.
    assert!(lost_from > 200);
    assert_holds(&log, 1, lost_from);
    assert!(log.verify().unwrap().is_ok());
    // The segments after the damaged one held ids past the hole: they are gone, and the
    // damaged one is the active segment again.
    let segs = segments(dir.path());
    assert_eq!(segs.last(), Some(damaged));
    assert!(!damaged.with_extension("idx").exists());
    fill(&log, lost_from, lost_from + 50, 5);
    drop(log);
    let log = open_small(dir.path(), 4096);
    assert_holds(&log, 1, lost_from + 50);
    assert!(log.verify().unwrap().is_ok());
}

#[test]
fn under_refuse_lost_pages_fail_the_open_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let unsynced = unsynced_log(dir.path());
    let damaged = &unsynced[1];
    let mut bytes = std::fs::read(damaged).unwrap();
    let at = bytes.len() / 2;
    bytes[at..at + 300].fill(0);
    std::fs::write(damaged, &bytes).unwrap();
    let before = segments(dir.path());

    let refused = FileLogOptions::default()
        .sync_mode(SyncMode::Never)
        .segment_size(4096)
        .recovery_mode(RecoveryMode::Refuse)
        .open(dir.path());
    match refused {
        Err(AzothError::Corruption { location, .. }) => {
            assert_eq!(location.file.as_deref(), Some(damaged.as_path()));
        }
        other => panic!("expected Corruption, got {other:?}"),
    }
    assert_eq!(segments(dir.path()), before);
    assert_eq!(std::fs::read(damaged).unwrap(), bytes);
}

#[test]
fn a_segment_file_lost_since_the_last_sync_ends_the_log_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let unsynced = unsynced_log(dir.path());
    let lost = &unsynced[1];
    std::fs::remove_file(lost).unwrap();
    std::fs::remove_file(lost.with_extension("idx")).unwrap();

    let log = open_small(dir.path(), 4096);
    assert_holds(&log, 1, first_id_of(lost));
    assert!(log.verify().unwrap().is_ok());
    assert_eq!(segments(dir.path()).last(), Some(&unsynced[0]));
}

#[test]
fn a_sealing_cut_not_made_durable_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let unsynced = unsynced_log(dir.path());
    // The segment is as long as the space allocated ahead of it was: its blocks, then zeros.
    let sealed = &unsynced[0];
    let len = std::fs::metadata(sealed).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(sealed)
        .unwrap()
        .set_len(len + 8192)
        .unwrap();
    std::fs::remove_file(sealed.with_extension("idx")).unwrap();

    let log = open_small(dir.path(), 4096);
    assert_holds(&log, 1, 1000);
    assert!(log.verify().unwrap().is_ok());
    assert_eq!(std::fs::metadata(sealed).unwrap().len(), len);
    assert!(sealed.with_extension("idx").exists());
}

#[test]
fn once_synced_or_reopened_under_always_damage_is_reported_not_cut() {
    for make_durable in ["sync", "reopen under Always"] {
        let dir = tempfile::tempdir().unwrap();
        let unsynced = unsynced_log(dir.path());
        match make_durable {
            "sync" => open_small(dir.path(), 4096).sync().unwrap(),
            _ => drop(
                FileLogOptions::default()
                    .sync_mode(SyncMode::Always)
                    .segment_size(4096)
                    .open(dir.path())
                    .unwrap(),
            ),
        }
        let damaged = &unsynced[1];
        let mut bytes = std::fs::read(damaged).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x55;
        std::fs::write(damaged, &bytes).unwrap();

        let log = open_small(dir.path(), 4096);
        assert_eq!(log.next_event_id().unwrap(), 1000, "{make_durable}");
        let failure = log.verify().unwrap().first_failure.expect(make_durable);
        assert_eq!(failure.location.file.as_deref(), Some(damaged.as_path()));
    }
}

/// A `sync()` that failed leaves what it did not make durable to the next one: a later
/// `sync()` that returns `Ok` has made every appended event durable, the directory entries
/// of the segments sealed before the failure included.
#[test]
fn a_sync_after_a_failed_one_makes_every_event_durable() {
    let dir = tempfile::tempdir().unwrap();
    let fs = PowerLossFs::default();
    let log = open_on(dir.path(), &fs, SyncMode::Never);
    fill(&log, 1, 900, 3);
    assert!(segments(dir.path()).len() > 3, "the appends rotated");
    fs.0.lock().unwrap().failing_dir_syncs = 1;
    assert!(log.sync().is_err());
    log.sync().unwrap();

    let crashed = tempfile::tempdir().unwrap();
    fs.after_power_loss(dir.path(), crashed.path());
    let reopened = open_small(crashed.path(), 4096);
    assert_eq!(
        reopened.newest_event_id().unwrap(),
        899,
        "events lost after sync() returned Ok"
    );
    assert_holds(&reopened, 1, 900);
    assert!(reopened.verify().unwrap().is_ok());
}

/// A power loss can lose any page of a segment sealed without a sync, its first (the
/// header) included, while later ones reached the disk: the log ends before that segment.
#[test]
fn a_lost_header_page_in_a_segment_sealed_without_a_sync_ends_the_log_there() {
    let dir = tempfile::tempdir().unwrap();
    let unsynced = unsynced_log(dir.path());
    let damaged = &unsynced[1];
    let mut bytes = std::fs::read(damaged).unwrap();
    bytes[..1024].fill(0);
    assert!(bytes[1024..].iter().any(|&b| b != 0));
    std::fs::write(damaged, &bytes).unwrap();
    let lost_from = first_id_of(damaged);

    let log = open_small(dir.path(), 4096);
    assert_holds(&log, 1, lost_from);
    assert!(log.verify().unwrap().is_ok());
    fill(&log, lost_from, lost_from + 50, 5);
    drop(log);
    let log = open_small(dir.path(), 4096);
    assert_holds(&log, 1, lost_from + 50);
    assert!(log.verify().unwrap().is_ok());
}

/// The end of the whole blocks of the segment bytes `bytes`.
fn blocks_end(bytes: &[u8]) -> usize {
    let mut offset = azoth_file::format::SEGMENT_HEADER_LEN;
    while let Ok(frame) = azoth_file::format::decode_frame(&bytes[offset..]) {
        offset += frame.byte_len();
    }
    offset
}

/// A log written under `Never` and reopened under `Always`: once the open has dropped the
/// durable mark, the blocks its active segment took under `Never` must be durable, or a power
/// loss that lost one of them but not the next reads as damage under `Always`, and the open
/// refuses instead of ending the log there.
#[test]
fn reopened_under_always_after_never_a_power_loss_still_opens() {
    let dir = tempfile::tempdir().unwrap();
    let fs = PowerLossFs::default();
    let log = open_on(dir.path(), &fs, SyncMode::Never);
    fill(&log, 1, 200, 5);
    log.sync().unwrap();
    let before = segments(dir.path());
    fill(&log, 200, 215, 5);
    assert_eq!(segments(dir.path()), before, "no rotation");
    drop(log);

    let log = open_on(dir.path(), &fs, SyncMode::Always);
    // The power loss: of the active segment's pages not yet durable, the file system wrote
    // back the later ones and not the first.
    let crashed = tempfile::tempdir().unwrap();
    fs.after_power_loss(dir.path(), crashed.path());
    let active = before.last().unwrap();
    let lost = crashed.path().join(active.file_name().unwrap());
    let now = std::fs::read(active).unwrap();
    let durable_end = blocks_end(&std::fs::read(&lost).unwrap());
    if durable_end < now.len() {
        let frame = azoth_file::format::decode_frame(&now[durable_end..]).unwrap();
        let mut bytes = now.clone();
        bytes[durable_end + frame.byte_len() / 2..durable_end + frame.byte_len()].fill(0);
        std::fs::write(&lost, &bytes).unwrap();
    }
    drop(log);

    let reopened = FileLogOptions::default()
        .sync_mode(SyncMode::Always)
        .segment_size(4096)
        .open(crashed.path())
        .unwrap();
    assert!(reopened.next_event_id().unwrap() >= 200);
    assert!(reopened.verify().unwrap().is_ok());
}

/// A gap `delete_range` recorded among the segments a power loss made open remove lies past
/// the log's new end; the ids appended again fill it. It must not stay recorded: a later
/// segment there that a power loss cut short would pass for one that ends at the gap.
#[test]
fn a_gap_past_where_a_power_loss_ended_the_log_is_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_small(dir.path(), 4096);
    fill(&log, 1, 200, 5);
    log.sync().unwrap();
    fill(&log, 200, 1500, 5);
    let unsynced: Vec<PathBuf> = segments(dir.path())
        .into_iter()
        .filter(|p| first_id_of(p) >= 200)
        .collect();
    assert!(unsynced.len() > 6, "{} segments", unsynced.len());
    // Retention frees two segments in the middle.
    let (gap_start, gap_end) = (first_id_of(&unsynced[2]), first_id_of(&unsynced[4]));
    log.delete_range(gap_start, gap_end - 1).unwrap();
    drop(log);

    // A power loss: a page lost in the first segment sealed since the sync.
    let damaged = &unsynced[0];
    let mut bytes = std::fs::read(damaged).unwrap();
    let at = bytes.len() / 2;
    let lost_from = block_at(damaged, at);
    bytes[at..at + 300].fill(0);
    std::fs::write(damaged, &bytes).unwrap();
    let log = open_small(dir.path(), 4096);
    assert_holds(&log, 1, lost_from);
    fill(&log, lost_from, 1500, 5);
    drop(log);

    // Another power loss: a segment sealed since, within the ids of the old gap, lost its
    // last pages (zeros up to its end).
    let segs = segments(dir.path());
    let i = (0..segs.len() - 2)
        .find(|&i| first_id_of(&segs[i]) > gap_start && first_id_of(&segs[i + 1]) <= gap_end)
        .expect("a segment within the old gap");
    let cut = &segs[i];
    let mut bytes = std::fs::read(cut).unwrap();
    let (mut at, mut lost_from) = (azoth_file::format::SEGMENT_HEADER_LEN, first_id_of(cut));
    while at < bytes.len() / 2 {
        let frame = azoth_file::format::decode_frame(&bytes[at..]).unwrap();
        at += frame.byte_len();
        lost_from = frame.end_event_id();
    }
    bytes[at..].fill(0);
    std::fs::write(cut, &bytes).unwrap();

    let log = open_small(dir.path(), 4096);
    assert_holds(&log, 1, lost_from);
    assert!(log.verify().unwrap().is_ok());
}

/// Under `IntervalMs` the durable mark covers the active segment only (its appends are not
/// synced one by one) and follows it at each rotation (whose sealing syncs): a power loss
/// then costs at most the active segment's unsynced tail, and the next open, in any mode,
/// scans no sealed segment block by block.
#[test]
fn under_interval_ms_the_durable_mark_follows_the_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let fs = PowerLossFs::default();
    let log = open_on(dir.path(), &fs, SyncMode::IntervalMs(3_600_000));
    fill(&log, 1, 900, 3);
    let units = log.units();
    assert!(units.len() > 3, "the appends rotated");
    let active_first = units.last().unwrap().first_event_id;
    let sealed_end = units[units.len() - 2].end_event_id;

    let crashed = tempfile::tempdir().unwrap();
    fs.after_power_loss(dir.path(), crashed.path());
    // FORMAT.md: magic, version, then the first id of the segments not known to be durable.
    let mark = std::fs::read(crashed.path().join("DURABLE")).unwrap();
    assert_eq!(&mark[..8], b"AZOTHDUR");
    assert_eq!(
        u64::from_le_bytes(mark[12..20].try_into().unwrap()),
        active_first
    );
    drop(log);

    let reopened = open_always(crashed.path());
    assert!(reopened.next_event_id().unwrap() >= sealed_end);
    assert_holds(&reopened, 1, sealed_end);
    assert!(reopened.verify().unwrap().is_ok());
}
