//! Archival of sealed segments of [`LmdbEventLog`](crate::LmdbEventLog) to the portable
//! archive format of `azoth-core`, and reading them back.

use std::path::{Path, PathBuf};

use azoth_core::{AzothError, EventId, Result};

use crate::log::LogShared;

/// Archived events of one segment, in id order.
pub(crate) type ArchivedEvents = Box<dyn Iterator<Item = Result<(EventId, Vec<u8>)>> + Send>;

/// The archive file of the segment starting at `first`.
pub(crate) fn archive_path(dir: &Path, first: EventId) -> PathBuf {
    dir.join(format!("{first:020}.azarc"))
}

/// The events `[from, to)` of the archived segment starting at `first`.
pub(crate) fn read_archived(
    dir: &Path,
    first: EventId,
    _from: EventId,
    _to: EventId,
) -> Result<ArchivedEvents> {
    Err(AzothError::NotFound(format!(
        "archive {}",
        archive_path(dir, first).display()
    )))
}

/// The event `id` if it lies in an archived segment.
pub(crate) fn get_archived(shared: &LogShared, dir: &Path, id: EventId) -> Result<Option<Vec<u8>>> {
    let _ = (shared, dir, id);
    Ok(None)
}

/// Removes the archive of the segment starting at `first` (after `delete_range`).
pub(crate) fn remove_archive(dir: &Path, first: EventId) {
    let path = archive_path(dir, first);
    if let Err(e) = std::fs::remove_file(&path) {
        tracing::warn!(path = %path.display(), error = %e, "removing an archive failed");
    }
}

/// The size of the archive of the segment starting at `first`.
pub(crate) fn archive_size(dir: &Path, first: EventId) -> Result<u64> {
    Ok(std::fs::metadata(archive_path(dir, first))?.len())
}

/// Verifies the archive of the segment `[first, last]` continuing from `prev`; returns the
/// id after it and its last chain hash, or `None` after recording a failure.
pub(crate) fn verify_archived(
    dir: &Path,
    first: EventId,
    _last: EventId,
    _prev: &azoth_core::ChainHash,
    report: &mut azoth_core::VerifyReport,
) -> Result<Option<(EventId, azoth_core::ChainHash)>> {
    report.first_failure = Some(crate::log::failure(
        azoth_core::Location::file(archive_path(dir, first)).at_event(first),
        "archive cannot be read by this build",
    ));
    Ok(None)
}
