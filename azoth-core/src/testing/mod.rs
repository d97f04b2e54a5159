//! The backend conformance suites (feature `testing`).
//!
//! Every [`EventLog`](crate::EventLog) backend runs the test bodies of [`event_log`] through
//! [`event_log_conformance_tests!`](crate::event_log_conformance_tests), and every
//! [`CanonicalStore`](crate::CanonicalStore) runs those of [`store`] through
//! [`canonical_store_conformance_tests!`](crate::canonical_store_conformance_tests). The
//! macros expand to a module of `#[test]` functions named after the backend, so a failure
//! names both the backend and the broken rule:
//!
//! ```ignore
//! azoth_core::event_log_conformance_tests!(file_log, |dir: &std::path::Path| {
//!     azoth_file::FileEventLog::open(dir)
//! });
//! azoth_core::event_log_conformance_tests!(
//!     memory_log,
//!     |_dir: &std::path::Path| Ok::<_, azoth_core::AzothError>(azoth_core::MemoryEventLog::new()),
//!     volatile
//! );
//! ```
//!
//! The bodies are public too, so a test can run one against a [`Harness`] of its own (the
//! suite's own tests run them against deliberately broken logs and check that they fail):
//!
//! ```
//! use azoth_core::testing::{Harness, event_log};
//! use azoth_core::{AzothError, MemoryEventLog};
//!
//! let harness = Harness::new(|_dir: &std::path::Path| Ok::<_, AzothError>(MemoryEventLog::new()), true);
//! event_log::ids_dense_from_one(&harness);
//! event_log::delete_range_semantics(&harness);
//! ```
//!
//! `volatile` marks a backend that keeps nothing across reopening; the tests that reopen are
//! skipped for it. The model tests run `AZOTH_MODEL_CASES` cases (default 32).
//!
//! [`crash`] has helpers for process-kill and bit-flip tests.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test bodies fail by panicking"
)]

pub mod crash;
pub mod event_log;
mod harness;
mod macros;
pub mod store;

pub use harness::Harness;
