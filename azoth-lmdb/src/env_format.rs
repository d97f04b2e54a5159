//! The format record every Azoth LMDB environment carries: which kind of environment it is
//! (magic) and which layout version wrote it, so that a build never misreads an environment
//! of another kind or a newer layout (see `FORMAT.md`, "Format record").
//!
//! ```text
//! database `system`, key "azoth.format" (12 ASCII bytes):
//! +----------------+-------------------+
//! | magic [8]      | version u32 LE    |
//! +----------------+-------------------+
//!   0..8             8..12
//! ```
//!
//! An environment created before the record existed has none; it is accepted, and a writable
//! open adds the record (read-only opens never write).

use std::path::Path;

use azoth_core::{AzothError, Location, Result};
use heed::RoTxn;
use heed::types::Bytes;

use crate::error::TxnError;

/// The key of the format record in the `system` database.
pub(crate) const FORMAT_KEY: &[u8] = b"azoth.format";

/// The name of the database holding the format record (and, in a store, the checkpoint).
pub(crate) const SYSTEM_DB: &str = "system";

/// The layout version this build writes and the newest it reads.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// Bytes of the format record.
pub(crate) const RECORD_LEN: usize = 12;

/// Which kind of environment a format record names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EnvKind {
    /// The environment of an [`LmdbEventLog`](crate::LmdbEventLog).
    Log,
    /// One generation of an [`LmdbStore`](crate::LmdbStore).
    Store,
}

impl EnvKind {
    /// The magic bytes of this kind.
    pub(crate) const fn magic(self) -> [u8; 8] {
        match self {
            Self::Log => *b"AZLMDLOG",
            Self::Store => *b"AZLMDSTO",
        }
    }

    /// How errors name this kind.
    pub(crate) const fn what(self) -> &'static str {
        match self {
            Self::Log => "LMDB event log environment",
            Self::Store => "LMDB store environment",
        }
    }
}

/// The record a new environment of `kind` gets.
pub(crate) fn encode(kind: EnvKind) -> [u8; RECORD_LEN] {
    let mut out = [0u8; RECORD_LEN];
    out[..8].copy_from_slice(&kind.magic());
    out[8..].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    out
}

/// Checks a stored format record (`None`: the environment has none, which is accepted).
///
/// # Errors
/// `Corruption` naming `data_file` if the record is malformed, carries another magic or
/// version 0; [`UnsupportedVersion`](AzothError::UnsupportedVersion) if its version is newer
/// than [`FORMAT_VERSION`].
pub(crate) fn check(kind: EnvKind, stored: Option<&[u8]>, data_file: &Path) -> Result<()> {
    let Some(stored) = stored else {
        return Ok(());
    };
    let corruption = |detail: String| AzothError::corruption(Location::file(data_file), detail);
    let Some((magic, version)) = stored
        .split_at_checked(8)
        .filter(|(_, version)| version.len() == 4)
    else {
        return Err(corruption(format!(
            "the format record is {} bytes, not {RECORD_LEN}",
            stored.len()
        )));
    };
    if magic != kind.magic() {
        return Err(corruption(format!(
            "not an Azoth {}: format magic {:?}, expected {:?}",
            kind.what(),
            String::from_utf8_lossy(magic),
            String::from_utf8_lossy(&kind.magic()),
        )));
    }
    let mut version_bytes = [0u8; 4];
    version_bytes.copy_from_slice(version);
    match u32::from_le_bytes(version_bytes) {
        0 => Err(corruption(format!("{} format version 0", kind.what()))),
        found if found > FORMAT_VERSION => Err(AzothError::UnsupportedVersion {
            what: kind.what(),
            found,
            supported: FORMAT_VERSION,
        }),
        _ => Ok(()),
    }
}

/// Checks the format record of the `system` database `system` as `txn` sees it.
pub(crate) fn check_in(
    kind: EnvKind,
    system: &heed::Database<Bytes, Bytes>,
    txn: &RoTxn<'_>,
    data_file: &Path,
) -> std::result::Result<(), TxnError> {
    let stored = system.get(txn, FORMAT_KEY)?;
    Ok(check(kind, stored, data_file)?)
}

/// In the write transaction that opens an environment writably: checks its format record
/// and, if it has none (a new environment, or one written before the record existed), writes
/// it. Called before anything else is written, so a refused environment is left unchanged
/// (the transaction is aborted).
pub(crate) fn check_or_write(
    kind: EnvKind,
    system: &heed::Database<Bytes, Bytes>,
    txn: &mut heed::RwTxn<'_>,
    data_file: &Path,
) -> std::result::Result<(), TxnError> {
    let present = system.get(txn, FORMAT_KEY)?.is_some();
    if present {
        check_in(kind, system, txn, data_file)
    } else {
        system.put(txn, FORMAT_KEY, &encode(kind))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_checked() {
        let file = Path::new("data.mdb");
        assert!(check(EnvKind::Log, Some(&encode(EnvKind::Log)), file).is_ok());
        assert!(check(EnvKind::Store, None, file).is_ok());
        assert!(matches!(
            check(EnvKind::Log, Some(&encode(EnvKind::Store)), file),
            Err(AzothError::Corruption { .. })
        ));
        assert!(matches!(
            check(EnvKind::Log, Some(&encode(EnvKind::Log)[..11]), file),
            Err(AzothError::Corruption { .. })
        ));
        let mut newer = encode(EnvKind::Store);
        newer[8..].copy_from_slice(&2u32.to_le_bytes());
        assert!(matches!(
            check(EnvKind::Store, Some(&newer), file),
            Err(AzothError::UnsupportedVersion {
                found: 2,
                supported: 1,
                ..
            })
        ));
        newer[8..].copy_from_slice(&0u32.to_le_bytes());
        assert!(matches!(
            check(EnvKind::Store, Some(&newer), file),
            Err(AzothError::Corruption { .. })
        ));
    }
}
