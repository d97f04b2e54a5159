//! Azoth's segmented append-only file event log: the default log backend.
//!
//! Events live in *segments*, files named by their first event id (20 digits, so `ls` sorts
//! them). One block is written per append call, so a batch is recovered whole or not at all;
//! every block carries a crc32c and a BLAKE3 hash chained to the block before it, across
//! segments. The active segment takes appends until it reaches the segment size; then it is
//! sealed (synced, its sparse index written beside it) and a new one starts. Opening reads the
//! sealed segments' indexes and scans only the active segment, cutting a torn tail off.
//! `FORMAT.md` documents every byte; `PERFORMANCE.md` has the measured figures.
//!
//! Guarantees:
//!
//! - **Durability** per [`SyncMode`](azoth_core::SyncMode): `Always` fdatasyncs before an
//!   append returns (and fsyncs the directory when segments are created, sealed or removed);
//!   `IntervalMs(n)` syncs from a background thread; `Never` leaves it to the OS. A failed
//!   sync poisons the log: further writes get `Poisoned` until it is reopened.
//! - **Recovery**: a torn tail of the active segment is cut off at open (logged), per
//!   [`RecoveryMode`]; damage in sealed segments and archives is never cut off: reads and
//!   [`verify`](FileEventLog::verify) report `Corruption` naming file, offset and event id.
//! - **Concurrency**: one writer; any number of readers on other threads read with their own
//!   file handles up to the published end, so they see whole acknowledged blocks and never
//!   wait for the writer. Archival and retention run beside appends.
//! - **Locking**: a second writer on the directory, in this process or another, gets
//!   `Locked` at once; [`FileEventLog::open_read_only`] takes no lock and changes nothing,
//!   and follows the writer: each query of the log's ends and each new iterator first takes
//!   in the whole blocks, rotations and removals the writer made since.
//! - **Archival**: [`FileEventLog::archive`] turns sealed segments into the portable zstd
//!   archives of `azoth_core::archive`, which stay readable and in the hash chain.
//! - **Space ahead**: while it is active, a segment's file is longer than its blocks. Under
//!   `Always` the writer keeps [`FileLogOptions::preallocate`] bytes of zeros written ahead,
//!   so that a sync does not also write the inode of a growing file; under `IntervalMs` and
//!   `Never` the segment is allocated and mapped ahead of the log (1 MiB, doubling up to the
//!   segment size), and small blocks are copied into the map instead of written with a system
//!   call (the mapped pages the writer touched count in the process's resident memory, as
//!   page cache). Sealing and close cut the file back; open cuts what a crash left.
//!
//! | module | what it holds |
//! | --- | --- |
//! | `options` | [`FileLogOptions`] (builder, documented defaults), [`RecoveryMode`] |
//! | `log` | [`FileEventLog`] and its [`EventLog`](azoth_core::EventLog) implementation |
//! | `format` | segment header and block frame: magic, version, offsets, encode/decode |
//! | `index` | the sparse index of a segment, persisted when it is sealed |
//! | `segment` | one segment's published state and a buffered block reader |
//! | `unit` | the ordered units of the log (segments, archives) |
//! | `reader` | the cross-segment streaming iterator |
//! | `recovery` | opening a directory, repairing a torn tail |
//! | `orphan_index` | indexes left without their segment by a crash, removed at open |
//! | `follow` | a read-only handle following the writer: new blocks, rotations, removals |
//! | `verify` | checksums and hash chain of the whole log |
//! | `archive` | archival of sealed segments (zstd, portable format), [`FileLogStats`] |
//! | `gaps` | the record of id ranges retention removed from the middle |
//! | `file_name` | the 20-digit file names |
//! | `fs` | the file-system layer (tests swap it to inject faults; hidden), the mapped file |
//!
//! ```
//! use azoth_core::{EventLog, SyncMode};
//! use azoth_file::{FileEventLog, FileLogOptions};
//!
//! let dir = tempfile::tempdir()?;
//! let log = FileLogOptions::default().sync_mode(SyncMode::Never).open(dir.path())?;
//! log.append_with_id(1, b"first")?;
//! log.append_batch_with_ids(2, &[b"second".to_vec(), b"third".to_vec()])?;
//! log.rotate()?;
//! log.append_with_id(4, b"fourth")?;
//!
//! let events: Vec<_> = log.iter_range(2, None)?.collect::<Result<_, _>>()?;
//! assert_eq!(events.len(), 3);
//! assert_eq!(log.get(4)?.as_deref(), Some(&b"fourth"[..]));
//! assert!(log.verify()?.is_ok());
//! drop(log);
//!
//! let reader = FileEventLog::open_read_only(dir.path())?;
//! assert_eq!(reader.newest_event_id()?, 4);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs, clippy::print_stdout)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod archive;
mod durable_mark;
pub mod file_name;
mod follow;
pub mod format;
#[doc(hidden)]
pub mod fs;
mod gaps;
mod index;
mod log;
mod options;
mod orphan_index;
mod reader;
mod recovery;
mod segment;
mod unit;
mod verify;

pub use archive::FileLogStats;
pub use log::FileEventLog;
pub use options::{
    DEFAULT_COMPRESSION_LEVEL, DEFAULT_PREALLOCATE, DEFAULT_SEGMENT_SIZE, FileLogOptions,
    RecoveryMode,
};
