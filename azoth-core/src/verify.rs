//! The report of an integrity check (`verify()` of a log backend or a database).

use crate::error::Location;

/// What `verify()` checked and the first failure it found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Units checked: segments, logical segments and archives.
    pub segments_verified: u64,
    /// Blocks whose checksum and chain link were checked.
    pub blocks_verified: u64,
    /// Events in those blocks.
    pub events_verified: u64,
    /// The first failure, in log order; `None` when everything checked out.
    pub first_failure: Option<VerifyFailure>,
}

impl VerifyReport {
    /// True when no failure was found.
    pub fn is_ok(&self) -> bool {
        self.first_failure.is_none()
    }
}

/// One failed check: where, and what failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyFailure {
    /// Where the damage is: file, byte offset, event id.
    pub location: Location,
    /// Which check failed (checksum, chain link, truncation, missing unit …).
    pub detail: String,
}

impl std::fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at {}", self.detail, self.location)
    }
}

/// Progress of a long verification, passed to a caller's callback.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerifyProgress {
    /// Bytes checked so far.
    pub bytes_done: u64,
    /// Bytes to check in all.
    pub bytes_total: u64,
    /// Units checked so far.
    pub segments_done: u64,
    /// Units to check in all.
    pub segments_total: u64,
}
