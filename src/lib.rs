//! Azoth: an embedded event-sourced database.
#![warn(missing_docs)]

pub use azoth_core::*;
pub use azoth_file as file;
pub use azoth_lmdb as lmdb;
