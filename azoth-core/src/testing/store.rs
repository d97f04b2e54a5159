//! The CanonicalStore conformance suite.
