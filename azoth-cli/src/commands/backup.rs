//! `backup DEST` and `restore SRC`.

use std::path::Path;

use azoth::Database;
use serde_json::json;

use crate::error::{CliError, CliResult};
use crate::open::backend_name;
use crate::output::Output;
use crate::progress;

/// `backup DEST`: a consistent copy of the database in a new directory.
pub fn backup(db: &Database, dest: &Path, out: &mut Output<'_>) -> CliResult {
    let spinner = progress::spinner("backing up");
    let result = db.backup(dest);
    spinner.finish_and_clear();
    let report = result.map_err(|source| CliError::Azoth {
        context: format!("backing up into {}", dest.display()),
        source,
    })?;
    if out.json {
        return out.json_line(&json!({
            "path": report.path.display().to_string(),
            "log_backend": backend_name(report.log_backend),
            "checkpoint": report.checkpoint,
            "oldest_event_id": report.oldest_event_id,
            "newest_event_id": report.newest_event_id,
            "files": report.files,
            "bytes": report.bytes,
        }));
    }
    out.line(format_args!(
        "backed up events {}..={} into {} ({} files, {} bytes)",
        report.oldest_event_id,
        report.newest_event_id,
        report.path.display(),
        report.files,
        report.bytes
    ))
}

/// `restore SRC`: the backup in `src` becomes the data directory `dir`.
pub fn restore(src: &Path, dir: &Path, out: &mut Output<'_>) -> CliResult {
    let spinner = progress::spinner("restoring");
    let result = Database::restore(src, dir);
    spinner.finish_and_clear();
    let report = result.map_err(|source| CliError::Azoth {
        context: format!("restoring {} into {}", src.display(), dir.display()),
        source,
    })?;
    if out.json {
        return out.json_line(&json!({
            "dir": report.dir.display().to_string(),
            "log_backend": backend_name(report.log_backend),
            "checkpoint": report.checkpoint,
            "oldest_event_id": report.oldest_event_id,
            "newest_event_id": report.newest_event_id,
            "files": report.files,
            "bytes": report.bytes,
        }));
    }
    out.line(format_args!(
        "restored events {}..={} into {} ({} files, {} bytes)",
        report.oldest_event_id,
        report.newest_event_id,
        report.dir.display(),
        report.files,
        report.bytes
    ))
}
