//! [`Prefaulter`]: faults in the pages just ahead of a [`super::MappedFile`]'s writer, on a
//! thread of its own.
//!
//! The first write to a page of a shared file map stops in the kernel: a page-cache page is
//! found or made and zeroed, the file system prepares the page for writing (`page_mkwrite`),
//! and the page is mapped, about 4 µs a page on the reference machine. A small put wrote a
//! new page every twenty puts or so, and those faults were a sixth of its time.
//! `MADV_POPULATE_WRITE` (Linux 5.14) does the same work without writing a byte; asked for
//! the range ahead of the writer on another thread, it leaves the writer's copies nothing to
//! wait for. Where the kernel does not know it, the thread stops and the writer faults the
//! pages in itself, as before.
//!
//! No byte changes: a populated page reads as zeros, as the allocated file did, so a crash
//! leaves what it would have left (zeros after the last block, which open cuts off).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use memmap2::MmapRaw;

/// How far ahead of the writer pages are kept faulted in.
const AHEAD: usize = 512 * 1024;

/// The writer asks for more once less than `AHEAD - STEP` lies faulted in ahead of it, so a
/// request covers at least this much (32 pages): one message per hundreds of small puts.
const STEP: usize = 128 * 1024;

/// The thread that faults pages in, and the way to ask it.
#[derive(Debug)]
pub(super) struct Prefaulter {
    requests: Option<crossbeam_channel::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
    /// Cleared when the kernel refuses `MADV_POPULATE_WRITE` or the thread did not start; the
    /// writer then asks no more.
    working: Arc<AtomicBool>,
}

/// Fault in `len` bytes of `map` from `offset`. The request holds the map, so the range
/// stays this map's (not a later mapping's at the same address) until it is done, even when
/// the writer has replaced or dropped the map meanwhile.
struct Request {
    map: Arc<MmapRaw>,
    offset: usize,
    len: usize,
}

impl Prefaulter {
    /// Starts the thread. Failing to start it is not an error: the writer faults pages in.
    pub(super) fn new() -> Self {
        let working = Arc::new(AtomicBool::new(cfg!(target_os = "linux")));
        if !working.load(Ordering::Relaxed) {
            return Self::idle(working);
        }
        let (requests, received) = crossbeam_channel::unbounded::<Request>();
        let still_working = Arc::clone(&working);
        let spawned = std::thread::Builder::new()
            .name("azoth-prefault".into())
            .spawn(move || serve(&received, &still_working));
        match spawned {
            Ok(thread) => Self {
                requests: Some(requests),
                thread: Some(thread),
                working,
            },
            Err(e) => {
                tracing::debug!(error = %e, "no prefault thread: the writer faults pages in");
                working.store(false, Ordering::Relaxed);
                Self::idle(working)
            }
        }
    }

    fn idle(working: Arc<AtomicBool>) -> Self {
        Self {
            requests: None,
            thread: None,
            working,
        }
    }

    /// Called after each write through `map`, which now reaches `written`; `asked` is how far
    /// the thread was asked to fault pages in, and the file has `allocated` bytes (no page
    /// past them may be touched). Asks for more when the writer comes near it, and returns
    /// how far it has now asked, or `None` when it asked nothing.
    pub(super) fn keep_ahead(
        &self,
        map: &Arc<MmapRaw>,
        written: usize,
        asked: usize,
        allocated: usize,
    ) -> Option<usize> {
        let end = allocated.min(map.len());
        let target = written.saturating_add(AHEAD).min(end);
        let from = asked.max(written);
        // Ask once the lead has shrunk by a step, or for what is left before the end.
        if from >= target || (target - from < STEP && target < end) {
            return None;
        }
        if !self.working.load(Ordering::Relaxed) {
            return None;
        }
        let requests = self.requests.as_ref()?;
        let request = Request {
            map: Arc::clone(map),
            offset: from,
            len: target - from,
        };
        requests.send(request).ok()?;
        Some(target)
    }
}

/// The thread's loop: fault in each range it is asked for, until the writer is gone.
fn serve(received: &crossbeam_channel::Receiver<Request>, working: &AtomicBool) {
    for request in received {
        if let Err(e) = populate(&request) {
            // A range past a file the writer has cut since (`EFAULT`) or a lack of memory is
            // this request's problem only; a kernel without the advice is every request's.
            if e.raw_os_error() == Some(libc::EINVAL) {
                tracing::debug!(error = %e, "no MADV_POPULATE_WRITE: the writer faults pages in");
                working.store(false, Ordering::Relaxed);
                return;
            }
            tracing::trace!(error = %e, "a prefault request failed");
        }
    }
}

#[cfg(target_os = "linux")]
fn populate(request: &Request) -> std::io::Result<()> {
    request
        .map
        .advise_range(memmap2::Advice::PopulateWrite, request.offset, request.len)
}

#[cfg(not(target_os = "linux"))]
fn populate(_request: &Request) -> std::io::Result<()> {
    Ok(())
}

impl Drop for Prefaulter {
    fn drop(&mut self) {
        // Closing the channel ends the thread once its current request is done; waiting for
        // it means no thread touches the segment after its writer is gone.
        self.requests = None;
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::debug!("the prefault thread panicked");
        }
    }
}
