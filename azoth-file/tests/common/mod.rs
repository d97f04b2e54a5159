//! Helpers shared by the integration tests (included with `mod common;`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use azoth_core::{EventLog, SyncMode};
use azoth_file::{FileEventLog, FileLogOptions};

/// A log with no syncs (tests do not need durability against power loss) and small segments.
pub fn open_small(dir: &Path, segment_size: u64) -> FileEventLog {
    FileLogOptions::default()
        .sync_mode(SyncMode::Never)
        .segment_size(segment_size)
        .open(dir)
        .unwrap()
}

/// The event with id `id` in these tests: its bytes say its id, with a length that varies.
pub fn event(id: u64) -> Vec<u8> {
    let mut e = format!("event-{id}-").into_bytes();
    e.resize(e.len() + (id % 17) as usize, b'x');
    e
}

/// Appends events `from..to` in batches of `batch`.
pub fn fill(log: &FileEventLog, from: u64, to: u64, batch: u64) {
    let mut id = from;
    while id < to {
        let n = batch.min(to - id);
        let events: Vec<Vec<u8>> = (id..id + n).map(event).collect();
        log.append_batch_with_ids(id, &events).unwrap();
        id += n;
    }
}

/// Every event of the log, checked to be the dense range `from..to` with the right bytes.
pub fn assert_holds(log: &FileEventLog, from: u64, to: u64) {
    let got: Vec<(u64, Vec<u8>)> = log
        .iter_range(0, None)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(got.len() as u64, to - from, "event count");
    for (i, (id, bytes)) in got.iter().enumerate() {
        assert_eq!(*id, from + i as u64);
        assert_eq!(bytes, &event(*id), "bytes of event {id}");
    }
    assert_eq!(log.next_event_id().unwrap(), to);
}

/// The segment files of `dir`, in order.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    files_with_ext(dir, "seg")
}

/// The files of `dir` with extension `ext`, in order.
pub fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

/// Sets `SyncMode` to `Always` for tests that are about durability.
pub fn open_always(dir: &Path) -> FileEventLog {
    FileLogOptions::default()
        .sync_mode(SyncMode::Always)
        .open(dir)
        .unwrap()
}

/// What [`SyncHookFs`] runs in place of a file's data sync, given the real file to sync (or
/// not).
pub type OnSync = dyn Fn(&dyn azoth_file::fs::WritableFile) -> std::io::Result<()> + Send + Sync;

/// The real file system, except that a file's data sync runs the test's `on_sync`: a way to
/// hold a sync, or fail it, where and when a test chooses.
#[derive(Clone)]
pub struct SyncHookFs {
    pub on_sync: std::sync::Arc<OnSync>,
}

impl std::fmt::Debug for SyncHookFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SyncHookFs")
    }
}

#[derive(Debug)]
struct SyncHookFile {
    inner: std::sync::Arc<dyn azoth_file::fs::WritableFile>,
    fs: SyncHookFs,
}

impl azoth_file::fs::WritableFile for SyncHookFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.inner.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> std::io::Result<()> {
        (self.fs.on_sync)(self.inner.as_ref())
    }

    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.inner.set_len(len)
    }
}

impl azoth_file::fs::FileSystem for SyncHookFs {
    fn open_writable(
        &self,
        path: &Path,
        create: bool,
    ) -> std::io::Result<std::sync::Arc<dyn azoth_file::fs::WritableFile>> {
        Ok(std::sync::Arc::new(SyncHookFile {
            inner: azoth_file::fs::StdFs.open_writable(path, create)?,
            fs: self.clone(),
        }))
    }

    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        azoth_file::fs::StdFs.sync_dir(dir)
    }

    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        azoth_file::fs::StdFs.rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        azoth_file::fs::StdFs.remove_file(path)
    }
}
