//! events (--since, --limit, --json), verify (intact and damaged logs), stats.

use std::fs;
use std::path::{Path, PathBuf};

use azoth::{Config, Database, SyncMode};

use crate::common::{azoth, fails, ok, sample};

#[test]
fn events_list_the_log_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sample(d);
    ok(d, &["delete", "user:1002"]);
    assert_eq!(
        ok(d, &["events"]),
        "1\tput\tuser:1001\tJohn Doe\n2\tput\tuser:1002\tJane\n3\tput\tconfig:timeout\t30\n\
         4\tdelete\tuser:1002\n"
    );
    assert_eq!(
        ok(d, &["events", "--since", "2", "--limit", "1"]),
        "3\tput\tconfig:timeout\t30\n"
    );
    assert_eq!(ok(d, &["events", "--since", "4"]), "");
    let lines: Vec<serde_json::Value> = ok(d, &["--json", "events", "--since", "3"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["id"], 4);
    assert_eq!(lines[0]["type"], "delete");
    assert_eq!(lines[0]["key"], "user:1002");
    assert!(lines[0]["ts"].as_u64().unwrap() > 0);
}

#[test]
fn app_events_show_their_kind_and_payload() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(Config::new(dir.path()).sync_mode(SyncMode::Never)).unwrap();
    db.append_event("AccountOpened", b"alice").unwrap();
    db.append_event("Deposited", &[0xff, 1]).unwrap();
    db.close().unwrap();
    drop(db);
    assert_eq!(
        ok(dir.path(), &["events"]),
        "1\tapp\tAccountOpened\talice\n2\tapp\tDeposited\t\\xff\\x01\n"
    );
    assert_eq!(
        ok(dir.path(), &["dump", "--since", "1"])
            .parse::<serde_json::Value>()
            .unwrap()["payload_b64"],
        "/wE="
    );
}

#[test]
fn stats_as_a_table_json_and_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sample(d);
    let table = ok(d, &["stats"]);
    assert!(table.starts_with("Azoth statistics:\n"), "{table}");
    assert!(table.contains("  events             3\n"), "{table}");
    assert!(table.contains("  event ids          1 ..= 3\n"), "{table}");
    assert!(table.contains("  view entries       3\n"), "{table}");
    let json: serde_json::Value = ok(d, &["--json", "stats"]).parse().unwrap();
    assert_eq!(json["log"]["events"], 3);
    assert_eq!(json["log"]["newest_event_id"], 3);
    assert_eq!(json["view"]["checkpoint"], 3);
    assert_eq!(json["log_backend"], "file");
    let metrics = ok(d, &["stats", "--prometheus"]);
    assert!(
        metrics.contains("# TYPE azoth_log_events gauge\nazoth_log_events 3\n"),
        "{metrics}"
    );
    // The command's own open has timed no call: no quantile yet, and an empty sum.
    assert!(
        metrics.contains("azoth_read_latency_seconds{quantile=\"0.5\"} NaN\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("azoth_read_latency_seconds_sum 0\nazoth_read_latency_seconds_count 0\n"),
        "{metrics}"
    );
    assert_eq!(json["since_open"]["read_latency"]["timed"], 0);
}

#[test]
fn verify_an_intact_log() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sample(d);
    assert_eq!(
        ok(d, &["verify"]),
        "✓ integrity verified: 1 segments, 3 blocks, 3 events\n"
    );
    let json: serde_json::Value = ok(d, &["--json", "verify"]).parse().unwrap();
    assert_eq!(json["ok"], true);
    assert_eq!(json["events_verified"], 3);
}

/// A file log of several sealed segments, closed.
fn segmented_log(dir: &Path) -> Vec<PathBuf> {
    let db = Database::open_with(
        Config::new(dir)
            .segment_size(2048)
            .sync_mode(SyncMode::Never),
    )
    .unwrap();
    for i in 0..60 {
        db.put(format!("key:{i:03}").as_bytes(), &[b'x'; 100])
            .unwrap();
    }
    db.close().unwrap();
    drop(db);
    let mut segments: Vec<PathBuf> = fs::read_dir(dir.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    assert!(segments.len() >= 3, "{segments:?}");
    segments
}

fn flip_byte_in_the_middle(file: &Path) {
    let mut bytes = fs::read(file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    fs::write(file, bytes).unwrap();
}

#[test]
fn verify_names_the_first_damage_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let segments = segmented_log(d);
    assert!(ok(d, &["verify"]).starts_with("✓ integrity verified: "));
    flip_byte_in_the_middle(&segments[1]);

    let output = azoth(d).arg("verify").output().unwrap();
    assert_eq!(output.status.code(), Some(3));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let name = segments[1].file_name().unwrap().to_str().unwrap();
    assert!(
        stdout.starts_with("✗ integrity check failed at event "),
        "{stdout}"
    );
    assert!(stdout.contains(name), "{stdout}");
    assert!(stdout.contains("offset "), "{stdout}");
    assert!(
        !String::from_utf8(output.stderr)
            .unwrap()
            .contains("panicked")
    );

    let output = azoth(d).args(["--json", "verify"]).output().unwrap();
    assert_eq!(output.status.code(), Some(3));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["ok"], false);
    assert!(json["first_failure"]["event_id"].as_u64().unwrap() > 1);
    assert!(
        json["first_failure"]["file"]
            .as_str()
            .unwrap()
            .ends_with(name)
    );

    // The view does not read the log: reads still work.
    assert_eq!(ok(d, &["get", "key:000"]), format!("{}\n", "x".repeat(100)));
}

#[test]
fn damage_in_the_active_segment_is_reported_by_verify_and_refused_by_others() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let segments = segmented_log(d);
    let active = segments.last().unwrap();
    // Grow the active segment so that whole blocks follow the damage.
    {
        let db = Database::open_with(Config::new(d).segment_size(1 << 20)).unwrap();
        for i in 0..5 {
            db.put(format!("late:{i}").as_bytes(), &[b'y'; 200])
                .unwrap();
        }
        db.close().unwrap();
    }
    flip_byte_in_the_middle(active);
    let output = azoth(d).arg("verify").output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(3), "{stdout}");
    assert!(
        stdout.starts_with("✗ integrity check failed at "),
        "{stdout}"
    );
    let e = fails(d, &["put", "k", "v"], 1);
    assert!(e.contains("corruption"), "{e}");
}
