//! The EventLog conformance suite.
