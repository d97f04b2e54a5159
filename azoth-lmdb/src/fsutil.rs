//! Small file-system helpers.

use std::path::Path;

/// Makes the entries of `dir` (renames, creations) durable.
///
/// # Errors
/// I/O errors of opening or syncing the directory.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}
