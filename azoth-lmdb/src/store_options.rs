//! [`LmdbStoreOptions`]: how an [`LmdbStore`](crate::LmdbStore) is opened.

use std::path::Path;

use azoth_core::Result;

use crate::LmdbStore;

/// The default initial map size: 64 MiB. The map grows by doubling when full, so this only
/// saves the first few resizes.
pub const DEFAULT_STORE_MAP_SIZE: usize = 64 << 20;

/// Options for opening an [`LmdbStore`]; finish with [`open`](LmdbStoreOptions::open).
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let store = azoth_lmdb::LmdbStoreOptions::default().map_size(1 << 20).open(dir.path())?;
/// # drop(store);
/// # Ok::<(), azoth_core::AzothError>(())
/// ```
#[derive(Debug, Clone)]
pub struct LmdbStoreOptions {
    pub(crate) map_size: usize,
    pub(crate) durable_apply: bool,
}

impl Default for LmdbStoreOptions {
    fn default() -> Self {
        Self {
            map_size: DEFAULT_STORE_MAP_SIZE,
            durable_apply: true,
        }
    }
}

impl LmdbStoreOptions {
    /// The initial size of the memory map in bytes, rounded up to 1 MiB; it doubles whenever
    /// a write needs more. Default: [`DEFAULT_STORE_MAP_SIZE`] (64 MiB).
    pub fn map_size(mut self, bytes: usize) -> Self {
        self.map_size = bytes;
        self
    }

    /// Whether every `apply` is durable when it returns (an fsync per apply). With `false`,
    /// applies are durable only after `sync()`; a process crash loses nothing, power loss may
    /// lose the applies since the last sync (the log replays them). Default: `true`.
    pub fn durable_apply(mut self, durable: bool) -> Self {
        self.durable_apply = durable;
        self
    }

    /// Opens (creating if needed) the store in `dir`.
    ///
    /// # Errors
    /// [`Locked`](azoth_core::AzothError::Locked) if another handle holds `dir`; I/O errors;
    /// `Corruption` if LMDB finds the file damaged.
    pub fn open(self, dir: impl AsRef<Path>) -> Result<LmdbStore> {
        LmdbStore::open_with(dir.as_ref(), self)
    }
}
