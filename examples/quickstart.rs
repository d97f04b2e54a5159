//! Quickstart: open a database, write, read, scan a prefix, append a domain event that a
//! projection turns into view writes, and print the statistics.
//!
//! Run with `cargo run --release --example quickstart`.

use azoth::{Config, Database, DatabaseEvent, Operation, ProjectionContext, decode_payload};
use serde::{Deserialize, Serialize};

/// A domain event of the application.
#[derive(Serialize, Deserialize)]
struct UserRenamed {
    user: u32,
    name: String,
}

/// The projection: the view keeps each user's current name under `user:<id>:name`.
fn project(kind: &str, payload: &[u8], view: &mut ProjectionContext<'_>) -> azoth::Result<()> {
    if kind == "UserRenamed" {
        let event: UserRenamed = decode_payload(payload)?;
        view.put(
            format!("user:{}:name", event.user).as_bytes(),
            event.name.as_bytes(),
        )?;
    }
    Ok(())
}

fn main() -> azoth::Result<()> {
    // A fresh data directory: the event log goes to <dir>/log, the view to <dir>/view.
    let dir = tempfile::tempdir()?;
    let db = Database::open_with(Config::new(dir.path()).projection(project))?;
    println!("opened {}", dir.path().display());

    // Writes are events in the log; each returns its id once durable (SyncMode::Always).
    let id = db.put(b"user:1:email", b"ada@example.com")?;
    db.put(b"user:2:email", b"grace@example.com")?;
    println!("put user:1:email as event {}", id.sequence);

    // Reads come from the view.
    let email = db.get(b"user:1:email")?.unwrap_or_default();
    println!("user:1:email = {}", String::from_utf8_lossy(&email));

    // A domain event, projected into the view in the same commit.
    let renamed = UserRenamed {
        user: 1,
        name: "Ada Lovelace".into(),
    };
    db.append_typed("UserRenamed", &renamed)?;

    println!("everything under user:1:");
    for (key, value) in db.scan_prefix(b"user:1:")? {
        println!(
            "  {} = {}",
            String::from_utf8_lossy(&key),
            String::from_utf8_lossy(&value)
        );
    }

    // The log keeps every change; the view is derived from it.
    println!("events after the first put:");
    for event in db.get_events_since(id)? {
        let what = match &event {
            DatabaseEvent::WriteEvent {
                operation: Operation::Put { key, .. },
                ..
            } => format!("put {}", String::from_utf8_lossy(key)),
            DatabaseEvent::AppEvent { kind, .. } => format!("domain event {kind}"),
            other => format!("{other:?}"),
        };
        println!("  #{} {what}", event.event_id());
    }

    let stats = db.stats()?;
    println!(
        "stats: {} events in the log ({} bytes), {} memtable entries, checkpoint {}, write p50 {} µs",
        stats.log.event_count,
        stats.log.total_bytes,
        stats.memtable_entries,
        stats.checkpoint,
        stats.write_latency.p50_us
    );
    db.close()?;
    Ok(())
}
