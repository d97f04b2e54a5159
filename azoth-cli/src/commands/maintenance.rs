//! The lifecycle jobs: compact, rebuild.

use azoth::{Database, DatabaseEvent};
use serde_json::json;

use crate::args::RebuildArgs;
use crate::error::{CliError, CliResult};
use crate::output::Output;
use crate::progress;

fn failed(what: &'static str) -> impl FnOnce(azoth::AzothError) -> CliError {
    move |source| CliError::Azoth {
        context: what.to_owned(),
        source,
    }
}

/// `compact`: flushes the view and gives its free space back.
pub fn compact(db: &Database, out: &mut Output<'_>) -> CliResult {
    let spinner = progress::spinner("compacting the view");
    let result = db.compact();
    spinner.finish_and_clear();
    result.map_err(failed("compacting"))?;
    if out.json {
        out.json_line(&json!({ "compacted": true }))
    } else {
        out.line("compacted the view")
    }
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
