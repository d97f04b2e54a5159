//! dump and import: `dump | import` into a fresh directory reproduces the view and the events.

use std::fs;

use azoth::{Config, Database, SyncMode};

use crate::common::{azoth, fails, ok};

#[test]
fn dump_then_import_reproduces_the_view() {
    let source = tempfile::tempdir().unwrap();
    let s = source.path();
    ok(s, &["init"]);
    ok(s, &["put", "user:1", "Ada"]);
    ok(s, &["put", "user:2", "Grace"]);
    ok(s, &["put", "AAEC", "/wAK", "--base64"]);
    ok(s, &["delete", "user:2"]);
    ok(s, &["put", "user:1", "Ada Lovelace"]);
    let dump = ok(s, &["dump"]);
    assert_eq!(dump.lines().count(), 5);

    let target = tempfile::tempdir().unwrap();
    let t = target.path();
    let file = t.join("dump.jsonl");
    fs::write(&file, &dump).unwrap();
    let imported = t.join("db");
    let report = ok(&imported, &["import", file.to_str().unwrap()]);
    assert!(
        report.starts_with("imported 5 puts and deletes in 1 batches"),
        "{report}"
    );

    assert_eq!(
        ok(&imported, &["scan", "--base64"]),
        ok(s, &["scan", "--base64"])
    );
    assert_eq!(ok(&imported, &["get", "user:1"]), "Ada Lovelace\n");
    // The imported log holds the same events, with the ids the fresh directory gave them.
    let strip_ts = |text: String| -> Vec<serde_json::Value> {
        text.lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("ts");
                v
            })
            .collect()
    };
    assert_eq!(strip_ts(ok(&imported, &["dump"])), strip_ts(dump));
}

#[test]
fn import_reads_standard_input_and_keeps_app_events() {
    let source = tempfile::tempdir().unwrap();
    let db = Database::open_with(Config::new(source.path()).sync_mode(SyncMode::Never)).unwrap();
    db.put(b"k", b"v").unwrap();
    db.append_event("Deposited", &[0xff, 0, 7]).unwrap();
    db.compact().unwrap();
    db.close().unwrap();
    drop(db);
    let dump = ok(source.path(), &["dump"]);
    assert!(dump.contains("\"type\":\"compaction\""), "{dump}");

    let target = tempfile::tempdir().unwrap();
    let t = target.path();
    let output = azoth(t)
        .args(["import", "-"])
        .write_stdin(dump)
        .output()
        .unwrap();
    assert!(output.status.success());
    let report = String::from_utf8(output.stdout).unwrap();
    assert!(
        report.contains("1 app events; skipped 1 read and compaction events"),
        "{report}"
    );
    assert_eq!(
        ok(t, &["events"]),
        "1\tput\tk\tv\n2\tapp\tDeposited\t\\xff\\x00\\x07\n"
    );
}

#[test]
fn each_batch_is_atomic() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = dir.path().join("dump.jsonl");
    fs::write(
        &file,
        "{\"type\":\"put\",\"key\":\"a\",\"value\":\"1\"}\n\
         {\"type\":\"put\",\"key\":\"b\",\"value\":\"2\"}\n\
         \n\
         {\"type\":\"put\",\"key\":\"c\",\"value\":\"3\"}\n\
         {\"type\":\"put\",\"key\":\"d\"}\n",
    )
    .unwrap();
    let e = fails(
        &d.join("db"),
        &["import", file.to_str().unwrap(), "--batch-size", "2"],
        1,
    );
    assert!(e.contains("line 5: missing `value`"), "{e}");
    assert!(
        e.contains("2 puts and deletes and 0 app events before line 4 were imported"),
        "{e}"
    );
    // The first batch (a, b) is in; nothing of the second (c, d).
    assert_eq!(ok(&d.join("db"), &["scan"]), "a\t1\nb\t2\n");
}

#[test]
fn long_jobs_draw_no_progress_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lines: String = (0..50)
        .map(|i| format!("{{\"type\":\"put\",\"key\":\"k{i}\",\"value\":\"v\"}}\n"))
        .collect();
    for args in [
        &["import", "-"][..],
        &["verify"],
        &["rebuild"],
        &["archive"],
        &["compact"],
    ] {
        let output = azoth(d)
            .args(args)
            .write_stdin(lines.clone())
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}");
        assert!(
            output.stderr.is_empty(),
            "{args:?}: {:?}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn import_refuses_app_events_into_a_view_built_with_projections() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = Config::new(d).sync_mode(SyncMode::Never).projection(
        |_: &str, payload: &[u8], view: &mut azoth::ProjectionContext<'_>| {
            view.put(b"last", payload)
        },
    );
    let db = Database::open_with(config).unwrap();
    db.append_event("Deposited", b"10").unwrap();
    db.close().unwrap();
    drop(db);
    let file = d.join("dump.jsonl");
    fs::write(
        &file,
        "{\"type\":\"put\",\"key\":\"a\",\"value\":\"1\"}\n\
         {\"type\":\"app\",\"kind\":\"Deposited\",\"payload\":\"20\"}\n",
    )
    .unwrap();
    let e = fails(d, &["import", file.to_str().unwrap()], 1);
    assert!(e.contains("projection"), "{e}");
    // The app event's projection never ran without it; the earlier one's result stands.
    assert_eq!(ok(d, &["get", "last"]), "10\n");
}

/// A log whose first events retention deleted cannot give a dump that rebuilds the view: the
/// dump says so instead of leaving them out, and dumps what is left when asked.
#[test]
fn dump_refuses_to_leave_out_events_retention_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = Config::new(d)
        .sync_mode(SyncMode::Never)
        .retention(azoth::RetentionPolicy::keep_all().keep_events(1));
    let db = Database::open_with(config).unwrap();
    db.put(b"kept-in-the-view", b"1").unwrap();
    db.rotate().unwrap();
    db.put(b"k", b"2").unwrap();
    db.rotate().unwrap();
    db.put(b"k", b"3").unwrap();
    db.flush().unwrap();
    assert_eq!(db.apply_retention().unwrap().units_deleted, 2);
    db.close().unwrap();
    drop(db);
    assert_eq!(ok(d, &["get", "kept-in-the-view"]), "1\n");

    let e = fails(d, &["dump"], 1);
    assert!(
        e.contains("--since 2 dumps the events left): events 1 to 2 are no longer in the log"),
        "{e}"
    );
    let rest = ok(d, &["dump", "--since", "2"]);
    assert_eq!(rest.lines().count(), 1, "{rest}");
    assert!(rest.contains("\"id\":3"), "{rest}");
}
