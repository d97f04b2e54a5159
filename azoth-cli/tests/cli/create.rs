//! Where a database comes from: `init` creates one, `import` creates one in a fresh directory,
//! and every other command refuses a directory that holds none, leaving the disk as it was.
//! A mistyped `-d` must not get a new, empty database that reports success.

use std::fs;
use std::path::Path;

use crate::common::{fails, ok};

/// The names in `dir`, sorted; `None` when it does not exist.
fn listing(dir: &Path) -> Option<Vec<String>> {
    let entries = fs::read_dir(dir).ok()?;
    let mut names: Vec<String> = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Some(names)
}

/// Checks the one-line error of a command refused for want of a database in `dir`.
fn assert_no_database(e: &str, dir: &Path, command: &str) {
    let shown = dir.display().to_string();
    assert!(
        e.contains(&format!("no Azoth database in {shown}")),
        "{command}: {e}"
    );
    assert!(
        e.contains(&format!("azoth -d {shown} init")),
        "{command}: the error says how to create one: {e}"
    );
}

#[test]
fn write_commands_refuse_a_directory_without_a_database() {
    let root = tempfile::tempdir().unwrap();
    let missing = root.path().join("azoth_dta");
    let empty = root.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let other = root.path().join("other");
    fs::create_dir(&other).unwrap();
    fs::write(other.join("notes.txt"), b"not a database").unwrap();
    let backup = root.path().join("backup");
    let dump = root.path().join("dump.jsonl");
    fs::write(&dump, "{\"type\":\"put\",\"key\":\"k\",\"value\":\"v\"}\n").unwrap();

    for dir in [&missing, &empty, &other] {
        let before = listing(dir);
        let backup_arg = backup.to_str().unwrap();
        for command in [
            &["put", "k", "v"][..],
            &["delete", "k"],
            &["rotate"],
            &["archive"],
            &["compact"],
            &["rebuild"],
            &["backup", backup_arg],
            &["interactive"],
            &["--backend", "lmdb", "put", "k", "v"],
        ] {
            let e = fails(dir, command, 1);
            assert_no_database(&e, dir, &command.join(" "));
            assert_eq!(
                listing(dir),
                before,
                "{command:?} changed {}",
                dir.display()
            );
        }
        assert!(!backup.exists());
    }
    // A directory with files of its own is not a fresh one for `import` either.
    let e = fails(&other, &["import", dump.to_str().unwrap()], 1);
    assert_no_database(&e, &other, "import");
    assert_eq!(listing(&other), Some(vec!["notes.txt".to_owned()]));
}

#[test]
fn init_creates_an_empty_database_and_only_once() {
    let root = tempfile::tempdir().unwrap();
    let d = root.path().join("var/lib/azoth");
    assert_eq!(
        ok(&d, &["init"]),
        format!("created an empty database in {} (file log)\n", d.display())
    );
    assert!(d.join("log").is_dir());
    assert_eq!(
        ok(&d, &["--json", "stats"]).matches("\"events\":0").count(),
        1
    );
    // The first write of a new database is event 1, as the README shows.
    assert_eq!(
        ok(&d, &["put", "user:1001", "John Doe"]),
        "Successfully stored key-value pair (event 1)\n"
    );
    let e = fails(&d, &["init"], 1);
    assert!(
        e.contains(&format!("{} already holds an Azoth database", d.display())),
        "{e}"
    );
    assert_eq!(ok(&d, &["get", "user:1001"]), "John Doe\n");

    // An existing empty directory, and --backend.
    let lmdb = tempfile::tempdir().unwrap();
    let out = ok(lmdb.path(), &["--backend", "lmdb", "--json", "init"]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["log_backend"], "lmdb");
    assert!(lmdb.path().join("log/env/data.mdb").exists());
}

#[test]
fn import_creates_a_database_only_in_a_fresh_directory() {
    let root = tempfile::tempdir().unwrap();
    let dump = root.path().join("dump.jsonl");
    fs::write(&dump, "{\"type\":\"put\",\"key\":\"k\",\"value\":\"v\"}\n").unwrap();
    let dump = dump.to_str().unwrap();

    let missing = root.path().join("copy");
    ok(&missing, &["import", dump]);
    assert_eq!(ok(&missing, &["get", "k"]), "v\n");
    let empty = root.path().join("empty");
    fs::create_dir(&empty).unwrap();
    ok(&empty, &["import", dump]);
    assert_eq!(ok(&empty, &["get", "k"]), "v\n");

    // A dump that cannot be read leaves no database behind.
    let nowhere = root.path().join("nowhere");
    let e = fails(&nowhere, &["import", "/no/such/dump.jsonl"], 1);
    assert!(e.contains("opening /no/such/dump.jsonl"), "{e}");
    assert!(!nowhere.exists());
}

#[test]
fn without_dash_d_the_default_directory_is_refused_then_created_by_init() {
    let cwd = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_azoth"));
        cmd.current_dir(cwd.path()).args(args).output().unwrap()
    };
    let refused = run(&["put", "k", "v"]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8(refused.stderr).unwrap();
    assert!(stderr.contains("azoth -d ./azoth_data init"), "{stderr}");
    assert!(!cwd.path().join("azoth_data").exists());
    assert!(run(&["init"]).status.success());
    assert!(run(&["put", "k", "v"]).status.success());
    assert!(cwd.path().join("azoth_data/log").is_dir());
}
