//! Translation of heed's and LMDB's errors into [`AzothError`].

use std::path::Path;

use azoth_core::{AzothError, Location};

/// An error inside a write transaction: either LMDB's own (which may be `MDB_MAP_FULL`, handled
/// by growing the map and retrying) or one of Azoth's, which aborts the transaction.
#[derive(Debug)]
pub(crate) enum TxnError {
    /// heed or LMDB failed.
    Heed(heed::Error),
    /// A check of Azoth's failed.
    Azoth(AzothError),
}

impl From<heed::Error> for TxnError {
    fn from(e: heed::Error) -> Self {
        Self::Heed(e)
    }
}

impl From<AzothError> for TxnError {
    fn from(e: AzothError) -> Self {
        Self::Azoth(e)
    }
}

impl From<std::io::Error> for TxnError {
    fn from(e: std::io::Error) -> Self {
        Self::Azoth(AzothError::Io(e))
    }
}

impl TxnError {
    /// True for LMDB's "map full", which the environment handles by growing.
    pub(crate) fn is_map_full(&self) -> bool {
        matches!(self, Self::Heed(heed::Error::Mdb(heed::MdbError::MapFull)))
    }

    /// The error a caller sees, naming the environment at `path` where that helps.
    pub(crate) fn into_azoth(self, path: &Path) -> AzothError {
        match self {
            Self::Heed(e) => heed_error(e, path),
            Self::Azoth(e) => e,
        }
    }
}

/// Converts a heed error; LMDB's structural failures become `Corruption` naming the file.
pub(crate) fn heed_error(e: heed::Error, path: &Path) -> AzothError {
    use heed::MdbError as M;
    match e {
        heed::Error::Io(io) => AzothError::Io(io),
        heed::Error::Mdb(
            m @ (M::Corrupted | M::PageNotFound | M::Invalid | M::VersionMismatch),
        ) => AzothError::corruption(Location::file(path), format!("LMDB: {m}")),
        heed::Error::Mdb(M::Panic) => AzothError::Poisoned {
            detail: "LMDB reported a fatal error; reopen the environment".to_owned(),
        },
        heed::Error::Mdb(m) => AzothError::Io(std::io::Error::other(format!("LMDB: {m}"))),
        heed::Error::Encoding(e) | heed::Error::Decoding(e) => AzothError::Encoding(e.to_string()),
        heed::Error::EnvAlreadyOpened => AzothError::Locked {
            path: path.to_path_buf(),
        },
    }
}
