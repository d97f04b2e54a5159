//! [`MappedFile`]: the active segment written through a shared memory map.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use parking_lot::Mutex;

use super::WritableFile;
use super::prefault::Prefaulter;

/// Writes up to this size go through the map of a [`MappedFile`], larger ones through `pwrite`.
const MAPPED_WRITE_MAX: usize = 32 * 1024;

/// A [`MappedFile`] starts with this much allocated on disk, and doubles as writes reach its
/// end: a log that stays small takes little disk while open.
const MAPPED_FIRST_LEN: u64 = 1024 * 1024;

/// The most of a segment that is mapped; writes past it go through `pwrite`. Address space
/// only: a page takes memory once it is written.
const MAPPED_MAX_LEN: u64 = 1 << 30;

/// A segment file whose first bytes are written through a shared memory map: an append
/// becomes a copy into the page cache instead of a `pwrite` system call, which was 40 % of a
/// small put under `SyncMode::Never` (measured in `PERFORMANCE.md`). What is copied is in the
/// page cache at once, exactly as after a `pwrite`: a crash of the process loses none of it,
/// `fdatasync` writes it, and readers of the file (`pread`, other processes) see it.
///
/// The whole segment (up to the limit it was made with, at most 1 GiB) is mapped at once, so
/// that the map never moves and its pages stay mapped; but only bytes allocated on disk
/// (`fallocate`) are written through it, so that a copy never meets a full disk or the end of
/// the file (either would be a `SIGBUS`, not an error). The allocation starts at 1 MiB and
/// doubles, up to the limit, when a write reaches its end. Writes past the limit or where the
/// allocation fails, and every write once the file is cut below the allocation, go through
/// `pwrite`: the writer drops its map before a truncation, so it never touches a page past
/// the end of the file.
///
/// The pages just ahead of the writer are faulted in by a [`Prefaulter`] on a thread of its
/// own, so that the copies find them mapped: the first write to each page of a shared file
/// map otherwise stops in the kernel for a page-cache page, its zeroing and the file system's
/// `page_mkwrite`, which was a sixth of a small put.
#[derive(Debug)]
pub struct MappedFile {
    file: File,
    state: Mutex<MapState>,
    prefaulter: Prefaulter,
}

#[derive(Debug)]
struct MapState {
    /// Shared with the prefaulter, which only asks the kernel to fault its pages in; only the
    /// writer, under this state's lock, writes through it.
    map: Option<Arc<memmap2::MmapRaw>>,
    /// How many bytes of the file, from its start, are allocated on disk: those the writer
    /// may write through `map`.
    allocated: usize,
    /// How far into `map` the prefaulter has been asked to fault pages in.
    prefault_asked: usize,
}

impl MappedFile {
    pub(super) fn new(file: &File, limit: u64) -> io::Result<Self> {
        let file = file.try_clone()?;
        let map_len = limit.min(MAPPED_MAX_LEN);
        let allocated = allocate(&file, MAPPED_FIRST_LEN.min(map_len))?;
        let Ok(map_len) = usize::try_from(map_len) else {
            return Err(io::Error::other("too large to map"));
        };
        // Pages past the allocation are mapped but not touched until it covers them.
        let map = memmap2::MmapOptions::new().len(map_len).map_raw(&file)?;
        Ok(Self {
            file,
            state: Mutex::new(MapState {
                map: Some(Arc::new(map)),
                allocated,
                prefault_asked: 0,
            }),
            prefaulter: Prefaulter::new(),
        })
    }
}

/// Allocates the first `len` bytes of `file` on disk (a file shorter than that grows, reading
/// as zeros), and returns `len`.
fn allocate(file: &File, len: u64) -> io::Result<usize> {
    let Ok(allocated) = usize::try_from(len) else {
        return Err(io::Error::other("too large to map"));
    };
    if allocated == 0 {
        return Err(io::Error::other("nothing to map"));
    }
    fs2::FileExt::allocate(file, len)?;
    Ok(allocated)
}

impl WritableFile for MappedFile {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if buf.len() > MAPPED_WRITE_MAX {
            // One system call is little beside so many bytes, and `pwrite` fills fresh pages
            // without a page fault for each, which a copy into the map takes.
            return self.file.write_all_at(buf, offset);
        }
        let end = offset.saturating_add(buf.len() as u64);
        let mut state = self.state.lock();
        if let Some(map) = state.map.as_ref() {
            let (allocated, mapped) = (state.allocated as u64, map.len() as u64);
            if end > allocated && end <= mapped {
                let grown = end.max(allocated.saturating_mul(2)).min(mapped);
                match allocate(&self.file, grown) {
                    Ok(grown) => state.allocated = grown,
                    Err(e) => {
                        tracing::debug!(error = %e, "writing the segment with pwrite from here");
                        state.map = None;
                    }
                }
            }
        }
        let range = usize::try_from(offset)
            .ok()
            .and_then(|start| Some((start, start.checked_add(buf.len())?)));
        if let (Some(map), Some((start, stop))) = (state.map.as_ref(), range)
            && stop <= state.allocated
        {
            // SAFETY: `[start, stop)` lies inside the allocation (checked just above), which
            // lies inside the map (it never grows past it), and the file has those bytes:
            // `set_len` drops the map before it cuts the file. Only this writer writes
            // through the map, under the state's lock, so nothing else writes these bytes
            // meanwhile (the prefaulter only asks the kernel to map pages, which changes no
            // byte); other processes only read the file, as the directory lock's protocol
            // requires.
            unsafe {
                std::ptr::copy_nonoverlapping(buf.as_ptr(), map.as_mut_ptr().add(start), buf.len());
            }
            let (allocated, asked) = (state.allocated, state.prefault_asked);
            if let Some(upto) = self.prefaulter.keep_ahead(map, stop, asked, allocated) {
                state.prefault_asked = upto;
            }
            return Ok(());
        }
        drop(state);
        self.file.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        // `fdatasync` writes the file's dirty pages, those dirtied through the map included.
        self.file.sync_data()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut state = self.state.lock();
        if state.map.is_some() && len < state.allocated as u64 {
            // The prefaulter may hold the map a moment longer: it only asks the kernel to map
            // pages, which fails (it does not fault) for pages past the end of the file.
            state.map = None;
        }
        self.file.set_len(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(file: &File) -> Vec<u8> {
        let len = file.metadata().unwrap().len() as usize;
        let mut bytes = vec![0u8; len];
        file.read_exact_at(&mut bytes, 0).unwrap();
        bytes
    }

    fn pattern(i: usize, len: usize) -> Vec<u8> {
        (0..len).map(|j| (i * 31 + j) as u8 | 1).collect()
    }

    #[test]
    fn writes_across_allocations_and_past_the_limit_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.path().join("segment"))
            .unwrap();
        let limit = 3 * MAPPED_FIRST_LEN + 4096;
        let mapped = MappedFile::new(&file, limit).unwrap();
        let mut expected = Vec::new();
        let mut i = 0;
        // Past the first allocation, its doubling, the limit (pwrite from there), with
        // blocks that straddle each boundary.
        while (expected.len() as u64) < limit + 100_000 {
            let block = pattern(i, 1000 + i % 7000);
            mapped.write_all_at(&block, expected.len() as u64).unwrap();
            expected.extend_from_slice(&block);
            i += 1;
        }
        mapped.sync_data().unwrap();
        let on_disk = read_all(&file);
        assert_eq!(&on_disk[..expected.len()], &expected[..]);
        // What lies past the last write reads as zeros: prefaulting changes no byte.
        assert!(on_disk[expected.len()..].iter().all(|&b| b == 0));
    }

    #[test]
    fn a_cut_below_the_allocation_sends_later_writes_to_pwrite() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.path().join("segment"))
            .unwrap();
        let mapped = MappedFile::new(&file, 8 * MAPPED_FIRST_LEN).unwrap();
        mapped.write_all_at(&pattern(1, 5000), 0).unwrap();
        mapped.set_len(5000).unwrap();
        assert!(mapped.state.lock().map.is_none());
        mapped.write_all_at(&pattern(2, 3000), 5000).unwrap();
        let on_disk = read_all(&file);
        assert_eq!(on_disk.len(), 8000);
        assert_eq!(&on_disk[..5000], &pattern(1, 5000)[..]);
        assert_eq!(&on_disk[5000..], &pattern(2, 3000)[..]);
    }
}
