//! `init`: what the command says after creating an empty database.
//!
//! Creating is [`Target::create`](crate::open::Target::create); it is the one command whose
//! purpose is a new database, so the others can refuse a directory that holds none.

use std::path::Path;

use serde_json::json;

use crate::error::CliResult;
use crate::open::{backend_name, detect_backend};
use crate::output::Output;

/// Reports the database just created in `dir`, with the backend found on disk.
pub fn report(dir: &Path, out: &mut Output<'_>) -> CliResult {
    let backend = detect_backend(dir).map_or("unknown", backend_name);
    if out.json {
        return out.json_line(&json!({
            "created": dir.display().to_string(),
            "log_backend": backend,
        }));
    }
    out.line(format_args!(
        "created an empty database in {} ({backend} log)",
        dir.display()
    ))
}
