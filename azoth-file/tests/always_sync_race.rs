//! Under `SyncMode::Always` an append is not acknowledged when the write-back of its segment
//! failed, even when the failure was reported to another `fdatasync` of the same file (a
//! `sync()` running beside it), as Linux reports it to only one of them.

mod common;

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use azoth_core::{EventLog, SyncMode};
use azoth_file::FileLogOptions;
use azoth_file::fs::{FileSystem, StdFs, WritableFile};
use common::*;
use crossbeam_channel::{Receiver, Sender};

/// The real file system, except that once `armed`, the file's write-back fails: the first
/// `fdatasync` waits for the test's word and reports the failure, and any other, as the
/// kernel does for an error it has reported once, returns success after it.
#[derive(Debug, Clone)]
struct FailsOnce {
    armed: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
    failed: Arc<AtomicBool>,
    entered: Sender<usize>,
    release: Receiver<()>,
}

#[derive(Debug)]
struct FailsOnceFile {
    inner: Arc<dyn WritableFile>,
    fs: FailsOnce,
}

impl WritableFile for FailsOnceFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.inner.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        if !self.fs.armed.load(Ordering::SeqCst) {
            return self.inner.sync_data();
        }
        let call = self.fs.calls.fetch_add(1, Ordering::SeqCst);
        let _ = self.fs.entered.send(call);
        if call == 0 {
            let _ = self.fs.release.recv();
            self.fs.failed.store(true, Ordering::SeqCst);
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        while !self.fs.failed.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
}

impl FileSystem for FailsOnce {
    fn open_writable(&self, path: &Path, create: bool) -> io::Result<Arc<dyn WritableFile>> {
        Ok(Arc::new(FailsOnceFile {
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
fn an_append_is_not_acknowledged_when_a_sync_beside_it_took_the_write_back_error() {
    let dir = tempfile::tempdir().unwrap();
    let (entered_tx, entered) = crossbeam_channel::unbounded();
    let (release, release_rx) = crossbeam_channel::unbounded();
    let fs = FailsOnce {
        armed: Arc::new(AtomicBool::new(false)),
        calls: Arc::new(AtomicUsize::new(0)),
        failed: Arc::new(AtomicBool::new(false)),
        entered: entered_tx,
        release: release_rx,
    };
    let log = Arc::new(
        FileLogOptions::default()
            .sync_mode(SyncMode::Always)
            .file_system(Arc::new(fs.clone()))
            .open(dir.path())
            .unwrap(),
    );
    fill(&log, 1, 11, 5);
    fs.armed.store(true, Ordering::SeqCst);
    let syncing = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || log.sync())
    };
    assert_eq!(entered.recv_timeout(Duration::from_secs(10)).unwrap(), 0);
    let appending = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || log.append_with_id(11, &event(11)))
    };
    // Give the append the time to reach its own sync, if it can.
    let _ = entered.recv_timeout(Duration::from_secs(1));
    release.send(()).unwrap();
    assert!(
        syncing.join().unwrap().is_err(),
        "the sync reports the failure"
    );
    assert!(
        appending.join().unwrap().is_err(),
        "an append whose write-back failed is not acknowledged"
    );
    assert!(
        log.append_with_id(11, &event(11)).is_err(),
        "the log refuses appends from then on"
    );
}
