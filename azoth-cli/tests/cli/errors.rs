//! Bad input of every kind: a clear one-line error, the documented exit code, never a panic.

use std::fs;

use crate::common::{azoth, fails, ok, sample};

#[test]
fn missing_and_unknown_arguments_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for args in [
        &["put", "only-a-key"][..],
        &["get"],
        &["delete"],
        &["exists"],
        &["backup"],
        &["restore"],
        &["import"],
        &["frobnicate"],
        &["scan", "--limit", "many"],
        &["events", "--since", "-3"],
        &["--backend", "postgres", "stats"],
        &["import", "x", "--batch-size", "0"],
        &[],
    ] {
        let output = azoth(d).args(args).output().unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("error") || stderr.contains("Usage"),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn help_and_version_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let help = ok(dir.path(), &["--help"]);
    for word in [
        "put",
        "scan",
        "events",
        "verify",
        "dump",
        "import",
        "interactive",
    ] {
        assert!(help.contains(word), "{word} missing from --help");
    }
    assert!(help.contains("Exit codes"));
    assert!(help.contains("Dump format"));
    assert!(ok(dir.path(), &["--version"]).starts_with("azoth "));
}

#[test]
fn bad_base64_is_a_clear_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sample(d);
    let e = fails(d, &["put", "a2V5", "not base64!", "--base64"], 1);
    assert!(
        e.starts_with("error: invalid base64 in the value \"not base64!\""),
        "{e}"
    );
    let e = fails(d, &["get", "%%%", "--base64"], 1);
    assert!(e.starts_with("error: invalid base64 in the key"), "{e}");
    fails(d, &["scan", "--prefix", "@", "--base64"], 1);
    fails(d, &["delete", "a", "--base64"], 1);
    assert_eq!(
        ok(d, &["--json", "stats"]).matches("\"events\":3").count(),
        1
    );
}

#[test]
fn the_database_limits_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["init"]);
    let e = fails(d, &["put", "", "v"], 1);
    assert!(e.contains("empty key"), "{e}");
    let long = "k".repeat(600);
    let e = fails(d, &["put", &long, "v"], 1);
    assert!(e.contains("longer than the limit of 511 bytes"), "{e}");
}

#[test]
fn a_directory_that_cannot_be_a_database() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file where the directory should be.
    let file = dir.path().join("plain-file");
    fs::write(&file, b"hello").unwrap();
    let e = fails(&file, &["put", "k", "v"], 1);
    assert!(e.contains("is not a directory"), "{e}");
    let e = fails(&file, &["get", "k"], 1);
    assert!(e.contains("is not a directory"), "{e}");

    // Read commands do not create a database where there is none.
    let missing = dir.path().join("nothing-here");
    for command in [
        "get k", "exists k", "scan", "events", "stats", "verify", "dump",
    ] {
        let args: Vec<&str> = command.split(' ').collect();
        let e = fails(&missing, &args, 1);
        assert!(e.contains("no Azoth database in"), "{command}: {e}");
    }
    assert!(!missing.exists());

    // A log directory that is not readable as one (a file named `log`).
    let broken = dir.path().join("broken");
    fs::create_dir(&broken).unwrap();
    fs::write(broken.join("log"), b"not a directory").unwrap();
    let e = fails(&broken, &["put", "k", "v"], 1);
    assert!(e.contains("no Azoth database in"), "{e}");
    let e = fails(&broken, &["init"], 1);
    assert!(e.starts_with("error: opening"), "{e}");
}

#[test]
fn an_unreadable_view_pointer_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sample(d);
    fs::write(d.join("VIEW"), b"../../etc").unwrap();
    let e = fails(d, &["get", "user:1001"], 1);
    assert!(e.contains("corruption"), "{e}");
}

#[test]
fn import_of_a_missing_file_or_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let e = fails(d, &["import", "/no/such/dump.jsonl"], 1);
    assert!(e.contains("opening /no/such/dump.jsonl"), "{e}");
    // The dump is written into the directory, which is then no longer a fresh one.
    ok(d, &["init"]);

    let dump = dir.path().join("bad.jsonl");
    for (content, message) in [
        ("{not json\n", "line 1: not JSON"),
        (
            "{\"type\":\"put\",\"key\":\"k\",\"value\":\"v\"}\n[]\n",
            "line 2: not a JSON object",
        ),
        ("{\"type\":\"put\",\"key\":\"k\"}\n", "missing `value`"),
        (
            "{\"type\":\"put\",\"key_b64\":\"***\",\"value\":\"v\"}\n",
            "invalid base64 in `key_b64`",
        ),
        ("{\"type\":\"teleport\"}\n", "unknown `type`"),
        (
            "{\"type\":\"put\",\"key\":\"\",\"value\":\"v\"}\n",
            "empty key",
        ),
    ] {
        fs::write(&dump, content).unwrap();
        let e = fails(d, &["import", dump.to_str().unwrap()], 1);
        assert!(e.contains(message), "{content:?}: {e}");
    }
    // Not one of those lines was imported.
    assert_eq!(ok(d, &["scan"]), "");
}

#[cfg(unix)]
#[test]
fn an_unreadable_directory() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("db");
    sample(&d);
    fs::set_permissions(&d, fs::Permissions::from_mode(0o000)).unwrap();
    if fs::read_dir(&d).is_ok() {
        // Running as root: permissions do not stop it, so there is nothing to test.
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
        return;
    }
    let e = fails(&d, &["get", "user:1001"], 1);
    assert!(e.contains("ermission denied"), "{e}");
    let e = fails(&d, &["put", "k", "v"], 1);
    assert!(e.contains("ermission denied"), "{e}");
    fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
}
