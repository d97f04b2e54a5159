//! Power loss, modelled by a file system that keeps only what was made durable: for every
//! file the bytes its last `fdatasync` saw, for the directory the entries its last `fsync`
//! saw. [`PowerLossFs::after_power_loss`] copies that state into a fresh directory, which a
//! log then opens as it would after the machine went down at that moment.

mod common;

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use azoth_core::{EventLog, SyncMode};
use azoth_file::fs::{FileSystem, WritableFile};
use azoth_file::{FileEventLog, FileLogOptions};
use common::*;

#[derive(Debug, Default)]
struct Durable {
    /// By inode: the file's bytes as of its last sync.
    data: HashMap<u64, Vec<u8>>,
    /// By directory: its entries (name and inode) as of its last sync.
    dirs: HashMap<PathBuf, HashMap<OsString, u64>>,
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
