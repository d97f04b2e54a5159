//! The small file-system layer the writer goes through, so tests can make writes and syncs
//! fail on purpose.
//!
//! Writes, syncs, renames, removals and directory listings go through it; reads use `std::fs`
//! directly, because a failed read needs no recovery. [`StdFs`] is the real thing; [`FaultyFs`]
//! wraps it and fails the operations a test chooses, or changes the directory right after it
//! was listed (as a writer beside a read-only handle may). Neither is part of the stable API.

use std::ffi::OsString;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

/// A file the log writes: positional writes, data sync, truncation.
pub trait WritableFile: Send + Sync + Debug {
    /// Writes all of `buf` at `offset`.
    ///
    /// # Errors
    /// Any I/O error; part of `buf` may have been written.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes the written data durable (fdatasync).
    ///
    /// # Errors
    /// Any I/O error; the durability of earlier writes is then unknown.
    fn sync_data(&self) -> io::Result<()>;
    /// Truncates or extends the file to `len` bytes.
    ///
    /// # Errors
    /// Any I/O error.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// This file with up to its first `limit` bytes allocated on disk and written through a
    /// shared memory map (see [`MappedFile`]), or `None` where that is not possible (a test
    /// double, a file system without `fallocate`).
    fn mapped(&self, limit: u64) -> Option<Arc<dyn WritableFile>> {
        let _ = limit;
        None
    }
}

/// The directory operations of the log.
pub trait FileSystem: Send + Sync + Debug {
    /// Opens `path` for writing, creating it if `create` (failing if it then exists).
    ///
    /// # Errors
    /// Any I/O error.
    fn open_writable(&self, path: &Path, create: bool) -> io::Result<Arc<dyn WritableFile>>;
    /// Makes the directory's entries durable (fsync of the directory).
    ///
    /// # Errors
    /// Any I/O error.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Renames `from` to `to` atomically.
    ///
    /// # Errors
    /// Any I/O error.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes the file at `path`.
    ///
    /// # Errors
    /// Any I/O error.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// The names of the entries of `dir`. A listing is a snapshot that a writer may outdate
    /// at once (archival and retention remove files beside readers); going through this
    /// layer lets a test outdate it deterministically.
    ///
    /// # Errors
    /// Any I/O error.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        std::fs::read_dir(dir)?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect()
    }
}

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdFs;

#[derive(Debug)]
struct StdFile(File);

impl WritableFile for StdFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn mapped(&self, limit: u64) -> Option<Arc<dyn WritableFile>> {
        if copy_on_write(&self.0) {
            tracing::debug!("writing the segment with pwrite: a copy-on-write file system");
            return None;
        }
        match MappedFile::new(&self.0, limit) {
            Ok(file) => Some(Arc::new(file)),
            Err(e) => {
                tracing::debug!(error = %e, "writing the segment with pwrite: it cannot be mapped");
                None
            }
        }
    }
}

/// Whether `file` lies on a copy-on-write file system (btrfs, ZFS, bcachefs), or one whose
/// kind cannot be told. There, `fallocate` does not reserve the blocks that later writes
/// take (each write goes to new blocks), so a copy into a [`MappedFile`] on a full disk would
/// be a `SIGBUS` instead of the `ENOSPC` a `pwrite` returns: such files are not mapped.
fn copy_on_write(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    const BTRFS: u32 = 0x9123_683e;
    const ZFS: u32 = 0x2fc1_2fc1;
    const BCACHEFS: u32 = 0xca45_1a4e;
    let mut stat = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: `fstatfs` fills the `statfs` it is given for an open descriptor, which `file`
    // keeps open for the call; the buffer is zeroed, so it is initialized either way.
    let rc = unsafe { libc::fstatfs(file.as_raw_fd(), stat.as_mut_ptr()) };
    if rc != 0 {
        return true;
    }
    // SAFETY: zeroed above, and filled by the successful call.
    let stat = unsafe { stat.assume_init() };
    // The field is a signed or unsigned integer of 32 or 64 bits, depending on the platform;
    // the magic numbers are 32 bits.
    #[allow(clippy::unnecessary_cast)]
    let kind = stat.f_type as u32;
    matches!(kind, BTRFS | ZFS | BCACHEFS)
}

/// Writes up to this size go through the map of a [`MappedFile`], larger ones through `pwrite`.
const MAPPED_WRITE_MAX: usize = 32 * 1024;

/// A [`MappedFile`] starts with this much allocated and mapped, and doubles as writes reach
/// its end: a log that stays small takes little disk while open.
const MAPPED_FIRST_LEN: u64 = 1024 * 1024;

/// A segment file whose first bytes are written through a shared memory map: an append
/// becomes a copy into the page cache instead of a `pwrite` system call, which was 40 % of a
/// small put under `SyncMode::Never` (measured in `PERFORMANCE.md`). What is copied is in the
/// page cache at once, exactly as after a `pwrite`: a crash of the process loses none of it,
/// `fdatasync` writes it, and readers of the file (`pread`, other processes) see it.
///
/// The mapped range is allocated on disk first (`fallocate`), so that a copy never meets a
/// full disk (that would be a `SIGBUS`, not an error). It starts at 1 MiB and doubles, up to
/// the limit it was made with, when a write reaches its end. Writes past the limit or where
/// the allocation fails, and every write once the file is cut below the map, go through
/// `pwrite`: the map is dropped before a truncation, so no page of it ever lies past the end
/// of the file.
#[derive(Debug)]
pub struct MappedFile {
    file: File,
    map: Mutex<Option<memmap2::MmapMut>>,
    limit: u64,
}

impl MappedFile {
    fn new(file: &File, limit: u64) -> io::Result<Self> {
        let file = file.try_clone()?;
        let map = map_allocated(&file, MAPPED_FIRST_LEN.min(limit))?;
        Ok(Self {
            file,
            map: Mutex::new(Some(map)),
            limit,
        })
    }
}

/// Allocates the first `len` bytes of `file` on disk and maps them.
fn map_allocated(file: &File, len: u64) -> io::Result<memmap2::MmapMut> {
    let Ok(map_len) = usize::try_from(len) else {
        return Err(io::Error::other("too large to map"));
    };
    if map_len == 0 {
        return Err(io::Error::other("nothing to map"));
    }
    fs2::FileExt::allocate(file, len)?;
    // SAFETY: the map is of this log's active segment, which only this writer changes (it
    // holds the directory lock). The map covers bytes the file has (allocated just above),
    // and `MappedFile::set_len` drops it before cutting the file, so no access ever lies past
    // the file's end; another process truncating the file would break the lock protocol, as
    // it would for LMDB's map.
    unsafe { memmap2::MmapOptions::new().len(map_len).map_mut(file) }
}

impl WritableFile for MappedFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if buf.len() > MAPPED_WRITE_MAX {
            // One system call is little beside so many bytes, and `pwrite` fills fresh pages
            // without a page fault for each, which a copy into the map takes.
            return self.file.write_all_at(buf, offset);
        }
        let end = offset.saturating_add(buf.len() as u64);
        let mut slot = self.map.lock();
        if let Some(map) = slot.as_ref() {
            let mapped = map.len() as u64;
            if end > mapped && end <= self.limit {
                let grown = end.max(mapped.saturating_mul(2)).min(self.limit);
                match map_allocated(&self.file, grown) {
                    Ok(bigger) => *slot = Some(bigger),
                    Err(e) => {
                        tracing::debug!(error = %e, "writing the segment with pwrite from here");
                        *slot = None;
                    }
                }
            }
        }
        if let Some(map) = slot.as_mut() {
            let range = usize::try_from(offset)
                .ok()
                .and_then(|start| Some(start..start.checked_add(buf.len())?));
            if let Some(bytes) = range.and_then(|r| map.get_mut(r)) {
                bytes.copy_from_slice(buf);
                return Ok(());
            }
        }
        drop(slot);
        self.file.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        // `fdatasync` writes the file's dirty pages, those dirtied through the map included.
        self.file.sync_data()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut map = self.map.lock();
        if map.as_ref().is_some_and(|m| len < m.len() as u64) {
            *map = None;
        }
        self.file.set_len(len)
    }
}

impl FileSystem for StdFs {
    fn open_writable(&self, path: &Path, create: bool) -> io::Result<Arc<dyn WritableFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(create)
            .open(path)?;
        Ok(Arc::new(StdFile(file)))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
}

/// Which faults [`FaultyFs`] injects next; counters count down per matching operation.
#[derive(Debug, Default, Clone)]
pub struct FaultPlan {
    /// Fail the write after this many more succeed (`Some(0)`: the next one).
    pub fail_write_after: Option<u64>,
    /// When a write fails, first write this many of its bytes (a short write).
    pub short_write_bytes: usize,
    /// Fail every write with `ENOSPC` while set.
    pub no_space: bool,
    /// Fail the sync after this many more succeed.
    pub fail_sync_after: Option<u64>,
}

/// What runs right after the next directory listing, given the names it returns (see
/// [`FaultyFs::edit_next_list`]).
type ListHook = Box<dyn FnOnce(&mut Vec<OsString>) + Send>;

/// A [`FileSystem`] over [`StdFs`] that fails the operations its [`FaultPlan`] names.
#[derive(Default, Clone)]
pub struct FaultyFs {
    plan: Arc<Mutex<FaultPlan>>,
    after_list: Arc<Mutex<Option<ListHook>>>,
}

impl Debug for FaultyFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultyFs")
            .field("plan", &*self.plan.lock())
            .field("after_list", &self.after_list.lock().is_some())
            .finish()
    }
}

impl FaultyFs {
    /// A file system that fails nothing until told to.
    pub fn new() -> Self {
        Self::default()
    }

    /// Changes the plan.
    pub fn set(&self, f: impl FnOnce(&mut FaultPlan)) {
        f(&mut self.plan.lock());
    }

    /// Runs `f` once, right after the next directory listing and before its caller reads
    /// any file it listed: a writer's archival or retention at the worst moment for a reader.
    /// `f` may also change the names the listing returns: a listing that ran while files were
    /// renamed and removed may miss a name that existed all through it (`readdir` makes no
    /// promise for names added or removed meanwhile).
    pub fn edit_next_list(&self, f: impl FnOnce(&mut Vec<OsString>) + Send + 'static) {
        *self.after_list.lock() = Some(Box::new(f));
    }
}

#[derive(Debug)]
struct FaultyFile {
    inner: StdFile,
    plan: Arc<Mutex<FaultPlan>>,
}

fn count_down(counter: &mut Option<u64>) -> bool {
    match counter {
        Some(0) => {
            *counter = None;
            true
        }
        Some(n) => {
            *n -= 1;
            false
        }
        None => false,
    }
}

impl WritableFile for FaultyFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let (fail, no_space, short) = {
            let mut plan = self.plan.lock();
            let fail = count_down(&mut plan.fail_write_after);
            (fail, plan.no_space, plan.short_write_bytes)
        };
        if fail || no_space {
            let n = short.min(buf.len());
            self.inner.write_all_at(&buf[..n], offset)?;
            return Err(if no_space {
                io::Error::from_raw_os_error(libc::ENOSPC)
            } else {
                io::Error::other("injected write failure")
            });
        }
        self.inner.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        if count_down(&mut self.plan.lock().fail_sync_after) {
            return Err(io::Error::other("injected sync failure"));
        }
        self.inner.sync_data()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
}

impl FileSystem for FaultyFs {
    fn open_writable(&self, path: &Path, create: bool) -> io::Result<Arc<dyn WritableFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(create)
            .open(path)?;
        Ok(Arc::new(FaultyFile {
            inner: StdFile(file),
            plan: Arc::clone(&self.plan),
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

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        let mut names = StdFs.list_dir(dir)?;
        // Taken out first: the hook may list directories itself.
        let hook = self.after_list.lock().take();
        if let Some(hook) = hook {
            hook(&mut names);
        }
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_on_write_file_systems_are_told_by_their_magic_number() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join("probe")).unwrap();
        // `stat -f` names the file system kind from the same `statfs` call.
        let kind = std::process::Command::new("stat")
            .args(["-f", "-c", "%T"])
            .arg(dir.path())
            .output()
            .unwrap();
        let kind = String::from_utf8_lossy(&kind.stdout).to_string();
        let cow = ["btrfs", "zfs", "bcachefs"]
            .iter()
            .any(|k| kind.contains(k));
        assert_eq!(copy_on_write(&file), cow, "file system: {kind}");
    }
}
