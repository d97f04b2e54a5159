//! `events` (readable lines, or the dump format with `--json`), `--follow`, and `dump`.

use std::time::Duration;

use azoth::{AzothError, DatabaseEvent, EventId, Operation};

use crate::bytes::display;
use crate::error::{CliError, CliResult};
use crate::open::Handle;
use crate::output::Output;
use crate::record;

/// How often `--follow` looks for new events.
const FOLLOW_POLL: Duration = Duration::from_millis(100);

/// Which events to print and how.
#[derive(Debug, Clone, Copy)]
pub struct Selection {
    /// Only events after this id.
    pub since: EventId,
    /// At most this many.
    pub limit: Option<usize>,
    /// Keep waiting for new events.
    pub follow: bool,
    /// The dump format, whatever `--json` says.
    pub dump: bool,
}

/// Prints the selected events; with `follow`, keeps printing new ones until the output closes
/// or the process is stopped.
pub fn print(handle: &Handle, selection: Selection, out: &mut Output<'_>) -> CliResult {
    let mut last = selection.since;
    let mut remaining = selection.limit.unwrap_or(usize::MAX);
    // A new read skips events already deleted where it starts. That is where the log begins
    // on the first read, but on a later one it is events that retention deleted before they
    // were printed: say so rather than go on after a gap.
    let mut expected: Option<EventId> = None;
    if selection.dump {
        // A dump is read back to rebuild the view: one that leaves out events retention
        // deleted would rebuild another one. `--since` past them dumps what is left.
        let oldest = handle.stats().map_err(failed)?.log.oldest_event_id;
        let from = selection.since.saturating_add(1);
        if from < oldest {
            return Err(CliError::Azoth {
                context: format!("dumping (--since {} dumps the events left)", oldest - 1),
                source: AzothError::EventsDeleted { from, to: oldest },
            });
        }
    }
    loop {
        let events = handle.events_since(last).map_err(failed)?;
        for item in events {
            if remaining == 0 {
                return Ok(());
            }
            let (id, event) = item.map_err(failed)?;
            if let Some(from) = expected.take() {
                if id != from {
                    return Err(failed(AzothError::EventsDeleted { from, to: id }));
                }
            }
            if selection.dump || out.json {
                out.json_line(&record::to_json(id, &event, false))?;
            } else {
                out.line(format_args!("{id}\t{}", describe(&event)))?;
            }
            last = id;
            remaining -= 1;
        }
        if !selection.follow || remaining == 0 {
            return Ok(());
        }
        out.flush()?;
        // The log iterator of the read-only open sees what the writer appended since.
        std::thread::sleep(FOLLOW_POLL);
        expected = Some(last.saturating_add(1));
    }
}

fn failed(source: azoth::AzothError) -> CliError {
    CliError::Azoth {
        context: "reading events".to_owned(),
        source,
    }
}

/// One event for a human: `put KEY = VALUE`, `delete KEY`, `app KIND PAYLOAD` …
fn describe(event: &DatabaseEvent) -> String {
    match event {
        DatabaseEvent::WriteEvent { operation, .. } => match operation {
            Operation::Put { key, value } => {
                format!("put\t{}\t{}", display(key), display(value))
            }
            Operation::Delete { key } => format!("delete\t{}", display(key)),
        },
        DatabaseEvent::AppEvent { kind, payload, .. } => {
            format!("app\t{kind}\t{}", display(payload))
        }
        DatabaseEvent::ReadEvent { key, .. } => format!("read\t{}", display(key)),
        DatabaseEvent::CompactionEvent { level, .. } => format!("compaction\tlevel {level}"),
        _ => "unknown event".to_owned(),
    }
}
