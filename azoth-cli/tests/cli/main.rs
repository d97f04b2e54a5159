//! Tests of the `azoth` command: the built binary is run with assert_cmd and its output,
//! exit code and effect on the data directory are checked.
//!
//! One test binary (this directory) keeps linking cheap. `holder.rs` provides a second process
//! that holds a database open, for the locked-directory tests: the test binary re-runs itself
//! with one test selected and an environment variable naming the directory.

mod common;
mod create;
mod errors;
mod events;
mod holder;
mod kv;
mod locked;
mod maintenance;
mod repl;
mod transfer;
