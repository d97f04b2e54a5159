//! File names: every unit is named by its first event id, zero-padded to 20 digits, so `ls`
//! lists the log in order.

use std::path::{Path, PathBuf};

use azoth_core::EventId;

/// The extension of segment files.
pub const SEGMENT_EXT: &str = "seg";
/// The extension of a sealed segment's sparse-index sidecar.
pub const INDEX_EXT: &str = "idx";
/// The extension of archived segments (the portable archive format of `azoth-core`).
pub const ARCHIVE_EXT: &str = "azarc";
/// The extension of files being written before an atomic rename.
pub const TEMP_EXT: &str = "tmp";
/// The name of the lock file in the log directory.
pub use azoth_core::LOCK_FILE;

/// What a file in the log directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A segment (`.seg`).
    Segment,
    /// A sealed segment's index (`.idx`).
    Index,
    /// An archived segment (`.azarc`).
    Archive,
    /// A leftover of an interrupted write (`.tmp`).
    Temp,
}

/// `dir/<first_id:020>.<ext>`.
pub fn unit_path(dir: &Path, first_id: EventId, ext: &str) -> PathBuf {
    dir.join(format!("{first_id:020}.{ext}"))
}

/// Parses a file name of the log directory into its kind and first event id; `None` for names
/// the log does not own.
pub fn parse(name: &str) -> Option<(FileKind, EventId)> {
    if let Some(stem) = name.strip_suffix(&format!(".{TEMP_EXT}")) {
        // `<id>.<ext>.tmp`
        let (id, _) = stem.split_once('.')?;
        return parse_id(id).map(|id| (FileKind::Temp, id));
    }
    let (id, ext) = name.split_once('.')?;
    let kind = match ext {
        SEGMENT_EXT => FileKind::Segment,
        INDEX_EXT => FileKind::Index,
        ARCHIVE_EXT => FileKind::Archive,
        _ => return None,
    };
    parse_id(id).map(|id| (kind, id))
}

fn parse_id(s: &str) -> Option<EventId> {
    if s.len() != 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_and_parse() {
        let p = unit_path(Path::new("/d"), 42, SEGMENT_EXT);
        assert_eq!(p, Path::new("/d/00000000000000000042.seg"));
        assert_eq!(
            parse("00000000000000000042.seg"),
            Some((FileKind::Segment, 42))
        );
        assert_eq!(
            parse("00000000000000000042.idx"),
            Some((FileKind::Index, 42))
        );
        assert_eq!(
            parse("00000000000000000042.azarc.tmp"),
            Some((FileKind::Temp, 42))
        );
        assert_eq!(parse("42.seg"), None);
        assert_eq!(parse("LOCK"), None);
        assert_eq!(parse("0000000000000000004x.seg"), None);
        assert!(unit_path(Path::new(""), 9, "seg") < unit_path(Path::new(""), 10, "seg"));
    }
}
