//! `sync()` does not hold up appends while its `fdatasync` runs, and still covers every block
//! appended before it was called, across a rotation that happens meanwhile.

mod common;

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use azoth_core::{EventLog, SyncMode};
use azoth_file::FileLogOptions;
use azoth_file::fs::{FileSystem, StdFs, WritableFile};
use common::*;
use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

/// The real file system, except that a data sync announces itself and then waits until the
/// test lets it go on, while `held` is set.
#[derive(Debug, Clone)]
struct HeldSyncs {
    held: Arc<Mutex<bool>>,
    entered: Sender<()>,
    release: Receiver<()>,
}

#[derive(Debug)]
struct HeldFile {
    inner: Arc<dyn WritableFile>,
    fs: HeldSyncs,
}

impl WritableFile for HeldFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        if *self.fs.held.lock() {
            self.fs.entered.send(()).map_err(io::Error::other)?;
            self.fs.release.recv().map_err(io::Error::other)?;
        }
        self.inner.sync_data()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
}

impl FileSystem for HeldSyncs {
    fn open_writable(&self, path: &Path, create: bool) -> io::Result<Arc<dyn WritableFile>> {
        Ok(Arc::new(HeldFile {
            inner: StdFs.open_writable(path, create)?,
            fs: self.clone(),
        }))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        StdFs.sync_dir(dir)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        StdFs.rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        StdFs.remove_file(path)
    }
}

#[test]
fn appends_go_on_while_a_sync_waits_for_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (entered_tx, entered) = crossbeam_channel::unbounded();
    let (release, release_rx) = crossbeam_channel::unbounded();
    let fs = HeldSyncs {
        held: Arc::new(Mutex::new(false)),
        entered: entered_tx,
        release: release_rx,
    };
    let log = Arc::new(
        FileLogOptions::default()
            .sync_mode(SyncMode::Never)
            .segment_size(64 * 1024)
            .file_system(Arc::new(fs.clone()))
            .open(dir.path())
            .unwrap(),
    );
    fill(&log, 1, 51, 100);
    *fs.held.lock() = true;
    let syncing = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || log.sync())
    };
    entered
        .recv_timeout(Duration::from_secs(10))
        .expect("the sync reaches the disk");

    // The sync waits in its fdatasync; appends, a rotation among them, go on meanwhile.
    let appending = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            fill(&log, 51, 2051, 100);
            log.rotate().map(|_| ())
        })
    };
    let appended = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        appending.is_finished()
    });
    // Let every sync go on (the one held, and any the rotation asks for).
    *fs.held.lock() = false;
    for _ in 0..16 {
        let _ = release.send(());
    }
    assert!(appended, "appends waited for the sync");
    appending.join().unwrap().unwrap();
    syncing.join().unwrap().unwrap();

    // Every event is there; a later sync covers the segments sealed meanwhile.
    log.sync().unwrap();
    assert_holds(&log, 1, 2051);
    assert!(log.verify().unwrap().is_ok());
    drop(log);
    let reopened = FileLogOptions::default()
        .sync_mode(SyncMode::Never)
        .open(dir.path())
        .unwrap();
    assert_holds(&reopened, 1, 2051);
}
