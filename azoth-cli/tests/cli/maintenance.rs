//! rotate, archive, compact, rebuild, backup, restore.

use azoth::{Config, Database, SyncMode};

use crate::common::{fails, ok, sample};

#[test]
fn rotate_seals_and_archive_compresses_sealed_segments() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sample(d);
    let sealed = ok(d, &["rotate"]);
    assert!(
        sealed.starts_with("sealed ") && sealed.trim_end().ends_with(".seg"),
        "{sealed}"
    );
    ok(d, &["put", "after", "rotation"]);
    ok(d, &["rotate"]);
    ok(d, &["put", "in", "active"]);
    // Only the first segment (events 1..=3).
    let archived = ok(d, &["archive", "--up-to", "3"]);
    assert_eq!(archived.lines().count(), 1, "{archived}");
    assert!(
        archived.starts_with("archived ") && archived.contains(".azarc"),
        "{archived}"
    );
    // The rest of the sealed segments; the active one is never archived.
    let json: serde_json::Value = ok(d, &["--json", "archive"]).parse().unwrap();
    assert_eq!(json["archives"].as_array().unwrap().len(), 1);
    assert_eq!(
        ok(d, &["archive"]),
        "nothing to archive (no sealed segment in range)\n"
    );
    // Archived events stay readable and verified.
    assert!(ok(d, &["events"]).starts_with("1\tput\tuser:1001\tJohn Doe\n"));
    assert!(ok(d, &["verify"]).starts_with("✓ integrity verified: 3 segments"));
}

#[test]
fn backup_and_restore_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("live");
    sample(&d);
    let dest = dir.path().join("backup");
    let report = ok(&d, &["backup", dest.to_str().unwrap()]);
    assert!(
        report.starts_with("backed up events 1..=3 into "),
        "{report}"
    );
    // Later writes are not in the backup.
    ok(&d, &["put", "late", "write"]);

    let restored = dir.path().join("restored");
    let report = ok(&restored, &["restore", dest.to_str().unwrap()]);
    assert!(
        report.starts_with("restored events 1..=3 into "),
        "{report}"
    );
    assert_eq!(
        ok(&restored, &["scan"]),
        ok(&d, &["scan", "--prefix", "c"]) + &ok(&d, &["scan", "--prefix", "u"])
    );
    assert_eq!(ok(&restored, &["get", "late"]), "");

    // Restoring over a database, or from something that is not a backup, is refused.
    let e = fails(&d, &["restore", dest.to_str().unwrap()], 1);
    assert!(e.starts_with("error: restoring "), "{e}");
    let e = fails(
        &dir.path().join("new"),
        &["restore", d.to_str().unwrap()],
        1,
    );
    assert!(e.contains("no Azoth backup"), "{e}");
    // A backup into an existing database directory is refused too.
    let e = fails(&d, &["backup", restored.to_str().unwrap()], 1);
    assert!(e.starts_with("error: backing up into "), "{e}");
}

#[test]
fn compact_keeps_the_view_and_logs_a_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sample(d);
    let report = ok(d, &["compact"]);
    assert!(report.starts_with("compacted: view "), "{report}");
    assert!(
        report.ends_with("retention deleted 0 log units (0 events)\n"),
        "{report}"
    );
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
    // The application's view is built with a projection (the library records that).
    let config = Config::new(d).sync_mode(SyncMode::Never).projection(
        |kind: &str, payload: &[u8], view: &mut azoth::ProjectionContext<'_>| {
            if kind == "Deposited" {
                view.put(b"deposited", payload)?;
            }
            Ok(())
        },
    );
    let db = Database::open_with(config).unwrap();
    db.put(b"k", b"v").unwrap();
    db.append_event("Deposited", b"10").unwrap();
    db.close().unwrap();
    drop(db);
    assert_eq!(ok(d, &["get", "deposited"]), "10\n");
    let e = fails(d, &["rebuild"], 1);
    assert!(
        e.contains("application events (the first is event 2)"),
        "{e}"
    );
    ok(d, &["rebuild", "--allow-app-events"]);
    assert_eq!(ok(d, &["get", "k"]), "v\n");
    // Rebuilt with puts and deletes only, as asked.
    assert_eq!(ok(d, &["get", "deposited"]), "");
}
