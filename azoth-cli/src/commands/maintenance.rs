//! The lifecycle jobs: rotate, archive, compact, rebuild.

use azoth::{Database, DatabaseEvent, UnitState};
use serde_json::json;

use crate::args::{ArchiveArgs, RebuildArgs};
use crate::error::{CliError, CliResult};
use crate::output::Output;
use crate::progress;

fn failed(what: &'static str) -> impl FnOnce(azoth::AzothError) -> CliError {
    move |source| CliError::Azoth {
        context: what.to_owned(),
        source,
    }
}

/// `rotate`: seals the active segment.
pub fn rotate(db: &Database, out: &mut Output<'_>) -> CliResult {
    let sealed = db.rotate().map_err(failed("rotating the log"))?;
    if out.json {
        out.json_line(&json!({ "sealed": sealed.display().to_string() }))
    } else {
        out.line(format_args!("sealed {}", sealed.display()))
    }
}

/// `archive [--up-to ID]`: archives sealed segments one by one (a progress bar counts them).
pub fn archive(db: &Database, args: &ArchiveArgs, out: &mut Output<'_>) -> CliResult {
    let units = db.log_units().map_err(failed("listing the log"))?;
    let up_to = args.up_to.unwrap_or(u64::MAX);
    let targets: Vec<u64> = units
        .iter()
        .filter(|u| u.state == UnitState::Sealed)
        .filter_map(|u| u.last_event_id())
        .take_while(|last| *last <= up_to)
        .collect();
    let bar = progress::bar(targets.len() as u64, "archiving", false);
    let mut written = Vec::new();
    for last in targets {
        let result = db.archive(last);
        bar.inc(1);
        match result {
            Ok(paths) => written.extend(paths),
            Err(e) => {
                bar.finish_and_clear();
                return Err(failed("archiving")(e));
            }
        }
    }
    bar.finish_and_clear();
    if out.json {
        let paths: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
        return out.json_line(&json!({ "archives": paths }));
    }
    if written.is_empty() {
        return out.line("nothing to archive (no sealed segment in range)");
    }
    for path in &written {
        out.line(format_args!("archived {}", path.display()))?;
    }
    Ok(())
}

/// `compact`: flushes the view, gives its free space back and applies retention.
pub fn compact(db: &Database, out: &mut Output<'_>) -> CliResult {
    let spinner = progress::spinner("compacting");
    let result = db.compact();
    spinner.finish_and_clear();
    let report = result.map_err(failed("compacting"))?;
    if out.json {
        return out.json_line(&json!({
            "level": report.level,
            "checkpoint": report.checkpoint,
            "view_bytes_before": report.view_bytes_before,
            "view_bytes_after": report.view_bytes_after,
            "view_bytes_reclaimed": report.view_bytes_reclaimed,
            "log_units_deleted": report.retention.units_deleted,
            "log_events_deleted": report.retention.events_deleted,
            "event_id": report.operation_id.sequence,
        }));
    }
    out.line(format_args!(
        "compacted: view {} -> {} bytes; retention deleted {} log units ({} events)",
        report.view_bytes_before,
        report.view_bytes_after,
        report.retention.units_deleted,
        report.retention.events_deleted
    ))
}

/// `rebuild`: replays the log into a fresh view.
///
/// The command knows only the built-in projection of puts and deletes. If the log holds
/// application events, the keys the application's projections derived from them would be
/// missing from the rebuilt view, so the command refuses unless `--allow-app-events` is given.
pub fn rebuild(db: &Database, args: &RebuildArgs, out: &mut Output<'_>) -> CliResult {
    if !args.allow_app_events {
        if let Some(id) = first_app_event(db)? {
            return Err(CliError::Input(format!(
                "the log holds application events (the first is event {id}); their effect on \
                 the view comes from the application's projections, which this command does \
                 not have. Rebuild from the application (Database::rebuild_view), or pass \
                 --allow-app-events to rebuild with puts and deletes only"
            )));
        }
    }
    let spinner = progress::spinner("rebuilding the view from the log");
    let result = db.rebuild_view();
    spinner.finish_and_clear();
    result.map_err(failed("rebuilding the view"))?;
    let entries = db.stats().map_err(failed("reading statistics"))?;
    if out.json {
        out.json_line(&json!({ "rebuilt": true, "checkpoint": entries.checkpoint }))
    } else {
        out.line(format_args!(
            "rebuilt the view from the log (up to event {})",
            entries.checkpoint
        ))
    }
}

fn first_app_event(db: &Database) -> CliResult<Option<azoth::EventId>> {
    let events = db.events_since(0).map_err(failed("reading events"))?;
    for item in events {
        let (id, event) = item.map_err(failed("reading events"))?;
        if matches!(event, DatabaseEvent::AppEvent { .. }) {
            return Ok(Some(id));
        }
    }
    Ok(None)
}
