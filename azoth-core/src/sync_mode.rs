//! When appended events are made durable.

use serde::{Deserialize, Serialize};

/// When an append is made durable (fsync / fdatasync, or LMDB's sync).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum SyncMode {
    /// Sync before the append is acknowledged: an acknowledged write survives `kill -9` and
    /// power loss. The default.
    #[default]
    Always,
    /// Sync from a background thread every `n` milliseconds: at most the last `n` ms of
    /// acknowledged writes are lost on power loss (none on a process crash).
    IntervalMs(u64),
    /// Never sync explicitly; the OS writes back when it chooses. Survives a process crash,
    /// not power loss: what no `sync()` covered may be lost then (the file log opens with a
    /// prefix of the log; an LMDB log may be damaged, as LMDB's `MDB_NOSYNC` can leave it).
    Never,
}
