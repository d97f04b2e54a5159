//! compact and rebuild.

use azoth::{Config, Database, SyncMode};

use crate::common::{fails, ok, sample};

#[test]
fn compact_keeps_the_view_and_logs_a_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sample(d);
    assert_eq!(ok(d, &["compact"]), "compacted the view\n");
    assert_eq!(ok(d, &["get", "user:1002"]), "Jane\n");
    assert!(ok(d, &["events", "--since", "3"]).contains("compaction"));
}

#[test]
fn rebuild_replays_the_log_into_a_fresh_view() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sample(d);
    ok(d, &["delete", "user:1001"]);
    assert_eq!(
        ok(d, &["rebuild"]),
        "rebuilt the view from the log (up to event 4)\n"
    );
    assert_eq!(ok(d, &["scan"]), "config:timeout\t30\nuser:1002\tJane\n");
    let json: serde_json::Value = ok(d, &["--json", "rebuild"]).parse().unwrap();
    assert_eq!(json["checkpoint"], 4);
}

#[test]
fn rebuild_refuses_a_log_with_app_events_unless_told() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = Database::open_with(Config::new(d).sync_mode(SyncMode::Never)).unwrap();
    db.put(b"k", b"v").unwrap();
    db.append_event("Deposited", b"10").unwrap();
    db.close().unwrap();
    drop(db);
    let e = fails(d, &["rebuild"], 1);
    assert!(
        e.contains("application events (the first is event 2)"),
        "{e}"
    );
    ok(d, &["rebuild", "--allow-app-events"]);
    assert_eq!(ok(d, &["get", "k"]), "v\n");
}
