//! azoth-file: see the workspace README; this crate is filled in by its own issue.
#![warn(missing_docs)]
