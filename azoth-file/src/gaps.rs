//! The record of id ranges that `delete_range` removed from the middle of the log.
//!
//! Retention usually frees the oldest units, and `verify()` simply starts from the oldest unit
//! left. When it frees units in the middle, the ids between the units that remain are a gap
//! that `verify()` must not report as a missing segment; so each such gap is written to the
//! `GAPS` file (one `first end` line per gap, `end` exclusive, replaced atomically).

use std::path::Path;

use azoth_core::{EventId, Result};

use crate::fs::FileSystem;
use crate::log::write_atomically;

/// The file name of the gap record in the log directory.
pub const GAPS_FILE: &str = "GAPS";

/// The recorded gaps of the log in `dir` (none if the file is missing or unreadable).
pub fn load(dir: &Path) -> Vec<(EventId, EventId)> {
    let Ok(text) = std::fs::read_to_string(dir.join(GAPS_FILE)) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let (a, b) = line.split_once(' ')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect()
}

/// Replaces the gap record with `gaps`.
///
/// # Errors
/// I/O errors.
pub fn save(fs: &dyn FileSystem, dir: &Path, gaps: &[(EventId, EventId)]) -> Result<()> {
    let text: String = gaps.iter().map(|(a, b)| format!("{a} {b}\n")).collect();
    write_atomically(fs, dir, &dir.join(GAPS_FILE), text.as_bytes(), true)
}
