//! `verify`: checks the log's checksums and hash chain, and says where the first damage is.

use azoth::{Location, VerifyReport};
use serde_json::json;

use crate::error::{CliError, CliResult};
use crate::open::Handle;
use crate::output::Output;
use crate::progress;

/// Prints `✓ integrity verified: …`, or `✗ …` naming the first failure and returns
/// [`CliError::Damaged`] (exit code 3).
pub fn verify(handle: &Handle, out: &mut Output<'_>) -> CliResult {
    let bar = progress::bar(0, "verifying the log", true);
    let report = handle.verify(|p| {
        bar.set_length(p.bytes_total);
        bar.set_position(p.bytes_done);
    });
    bar.finish_and_clear();
    let report = report.map_err(|source| CliError::Azoth {
        context: "verifying".to_owned(),
        source,
    })?;
    print_report(&report, out)?;
    if report.is_ok() {
        Ok(())
    } else {
        Err(CliError::Damaged)
    }
}

fn print_report(report: &VerifyReport, out: &mut Output<'_>) -> CliResult {
    if out.json {
        let failure = report.first_failure.as_ref().map(|f| {
            json!({
                "event_id": f.location.event_id,
                "file": f.location.file.as_ref().map(|p| p.display().to_string()),
                "offset": f.location.offset,
                "detail": f.detail,
            })
        });
        return out.json_line(&json!({
            "ok": report.is_ok(),
            "segments_verified": report.segments_verified,
            "blocks_verified": report.blocks_verified,
            "events_verified": report.events_verified,
            "first_failure": failure,
        }));
    }
    match &report.first_failure {
        None => out.line(format_args!(
            "✓ integrity verified: {} segments, {} blocks, {} events",
            report.segments_verified, report.blocks_verified, report.events_verified
        )),
        Some(failure) => out.line(format_args!(
            "✗ integrity check failed at {}: {} ({} segments, {} blocks, {} events verified \
             before it)",
            describe(&failure.location),
            failure.detail,
            report.segments_verified,
            report.blocks_verified,
            report.events_verified
        )),
    }
}

/// Reports damage that kept the database from opening, as `verify` reports what it finds.
pub fn report_damage(location: &Location, detail: &str, out: &mut Output<'_>) -> CliResult {
    if out.json {
        out.json_line(&json!({
            "ok": false,
            "first_failure": {
                "event_id": location.event_id,
                "file": location.file.as_ref().map(|p| p.display().to_string()),
                "offset": location.offset,
                "detail": detail,
            },
        }))?;
    } else {
        out.line(format_args!(
            "✗ integrity check failed at {}: {detail} (the database cannot be opened)",
            describe(location)
        ))?;
    }
    Err(CliError::Damaged)
}

/// `event 12, segment log/000…001.seg, offset 4096`.
fn describe(location: &Location) -> String {
    let mut at = Vec::new();
    if let Some(id) = location.event_id {
        at.push(format!("event {id}"));
    }
    if let Some(file) = &location.file {
        at.push(format!("segment {}", file.display()));
    }
    if let Some(offset) = location.offset {
        at.push(format!("offset {offset}"));
    }
    if at.is_empty() {
        "an unknown location".to_owned()
    } else {
        at.join(", ")
    }
}
