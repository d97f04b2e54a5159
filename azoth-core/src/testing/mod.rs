//! The backend conformance suites (feature `testing`).
//!
//! Every [`EventLog`](crate::EventLog) backend runs [`event_log`]'s test bodies through
//! [`event_log_conformance_tests!`](crate::event_log_conformance_tests), and every
//! [`CanonicalStore`](crate::CanonicalStore) runs [`store`]'s through
//! [`canonical_store_conformance_tests!`](crate::canonical_store_conformance_tests), so a
//! failing test names the backend.

pub mod event_log;
pub mod store;
