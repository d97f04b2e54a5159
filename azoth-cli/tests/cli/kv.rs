//! put, get, delete, exists, scan; the seed's examples adapted; --backend.

use crate::common::{azoth, fails, ok, sample};

#[test]
fn the_seed_put_and_get_examples() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["init"]);
    assert_eq!(
        ok(d, &["put", "user:1001", "John Doe"]),
        "Successfully stored key-value pair (event 1)\n"
    );
    assert_eq!(ok(d, &["get", "user:1001"]), "John Doe\n");

    // Binary data, base64 encoded, both ways.
    ok(
        d,
        &["put", "YmluYXJ5X2tleQ==", "YmluYXJ5X3ZhbHVl", "--base64"],
    );
    assert_eq!(ok(d, &["get", "binary_key"]), "binary_value\n");
    assert_eq!(
        ok(d, &["get", "YmluYXJ5X2tleQ==", "--base64"]),
        "YmluYXJ5X3ZhbHVl\n"
    );

    // A missing key prints nothing and succeeds; with --json it prints null.
    assert_eq!(ok(d, &["get", "user:9999"]), "");
    assert_eq!(ok(d, &["--json", "get", "user:9999"]), "null\n");
    assert_eq!(
        ok(d, &["--json", "get", "user:1001"]),
        "{\"key\":\"user:1001\",\"value\":\"John Doe\"}\n"
    );
}

#[test]
fn the_data_directory_option_and_its_default() {
    let cwd = tempfile::tempdir().unwrap();
    let custom = cwd.path().join("var/lib/azoth");
    ok(&custom, &["init"]);
    ok(&custom, &["put", "config:timeout", "30"]);
    assert_eq!(ok(&custom, &["get", "config:timeout"]), "30\n");
    assert!(custom.join("log").is_dir());

    // Without -d the directory is ./azoth_data.
    for args in [&["init"][..], &["put", "k", "v"]] {
        let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_azoth"));
        cmd.current_dir(cwd.path()).args(args).assert().success();
    }
    assert!(cwd.path().join("azoth_data/log").is_dir());
}

#[test]
fn binary_values_come_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 0xff 0x00 0x0a: not UTF-8, with a NUL and a newline.
    ok(d, &["init"]);
    ok(d, &["put", "AQ==", "/wAK", "--base64"]);
    let output = azoth(d).args(["get", "AQ==", "--base64"]).output().unwrap();
    assert_eq!(output.stdout, b"/wAK\n");
    let raw = azoth(d).args(["get", "AQ==", "--base64"]).output().unwrap();
    assert!(raw.status.success());
    // Without --base64 on output the value is written as stored.
    let out = azoth(d).args(["get", "\u{1}"]).output().unwrap();
    assert_eq!(out.stdout, [0xff, 0x00, 0x0a, b'\n']);
    // JSON shows non-UTF-8 bytes as base64 fields.
    assert_eq!(
        ok(d, &["--json", "get", "AQ==", "--base64"]),
        "{\"key_b64\":\"AQ==\",\"value_b64\":\"/wAK\"}\n"
    );
}

#[test]
fn delete_and_exists() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sample(d);
    assert_eq!(ok(d, &["exists", "user:1001"]), "true\n");
    assert_eq!(ok(d, &["delete", "user:1001"]), "Deleted (event 4)\n");
    assert_eq!(ok(d, &["exists", "user:1001"]), "false\n");
    assert_eq!(ok(d, &["get", "user:1001"]), "");
    // Deleting an absent key succeeds.
    ok(d, &["delete", "never-there"]);
    assert_eq!(ok(d, &["--json", "exists", "user:1002"]), "true\n");
    assert_eq!(
        ok(d, &["--json", "delete", "user:1002"])
            .trim()
            .parse::<serde_json::Value>()
            .unwrap()["event_id"],
        6
    );
}

#[test]
fn scan_by_prefix_range_and_limit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sample(d);
    assert_eq!(
        ok(d, &["scan"]),
        "config:timeout\t30\nuser:1001\tJohn Doe\nuser:1002\tJane\n"
    );
    assert_eq!(
        ok(d, &["scan", "--prefix", "user:"]),
        "user:1001\tJohn Doe\nuser:1002\tJane\n"
    );
    assert_eq!(
        ok(d, &["scan", "--start", "user:", "--end", "user:1002"]),
        "user:1001\tJohn Doe\n"
    );
    assert_eq!(ok(d, &["scan", "--limit", "1"]), "config:timeout\t30\n");
    assert_eq!(
        ok(d, &["--json", "scan", "--prefix", "config"]),
        "{\"key\":\"config:timeout\",\"value\":\"30\"}\n"
    );
    assert_eq!(
        ok(d, &["scan", "--prefix", "dXNlcjoxMDAy", "--base64"]),
        "dXNlcjoxMDAy\tSmFuZQ==\n"
    );
    // --prefix and --start are two ways of choosing; both at once is a usage error.
    fails(d, &["scan", "--prefix", "a", "--start", "b"], 2);
}

#[test]
fn the_backend_is_chosen_at_creation_and_detected_after() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["--backend", "lmdb", "init"]);
    ok(d, &["put", "k", "v"]);
    assert!(d.join("log/env/data.mdb").exists());
    // Later commands find the LMDB log without being told.
    assert_eq!(ok(d, &["get", "k"]), "v\n");
    ok(d, &["put", "k2", "v2"]);
    assert!(ok(d, &["stats"]).contains("log backend        lmdb"));
    ok(d, &["rotate"]);
    ok(d, &["archive"]);
    assert_eq!(
        ok(d, &["verify"]),
        "✓ integrity verified: 2 segments, 2 blocks, 2 events\n"
    );
    assert_eq!(ok(d, &["events"]), "1\tput\tk\tv\n2\tput\tk2\tv2\n");
    let e = fails(d, &["--backend", "file", "get", "k"], 1);
    assert!(
        e.contains("holds a lmdb log; --backend applies only when a directory is created"),
        "{e}"
    );
    // The same for the file backend.
    let other = tempfile::tempdir().unwrap();
    ok(other.path(), &["--backend", "file", "init"]);
    ok(other.path(), &["put", "k", "v"]);
    assert!(!other.path().join("log/env/data.mdb").exists());
    assert!(ok(other.path(), &["stats"]).contains("log backend        file"));
}
