//! `azoth interactive`, driven through standard input.

use crate::common::{azoth, ok};

#[test]
fn a_session_runs_the_commands_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["init"]);
    let script = "\
put user:1001 \"Alice Smith\"
get user:1001
put YmluYXJ5 dmFsdWU= --base64
exists user:1001
scan --prefix user:
delete user:1001
get user:1001

events --since 2
stats
verify
help
exit
put never reached
";
    let output = azoth(d)
        .arg("interactive")
        .write_stdin(script)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stderr}");
    assert_eq!(stderr, "");
    let expected_start = "\
Successfully stored key-value pair (event 1)
Alice Smith
Successfully stored key-value pair (event 2)
true
user:1001\tAlice Smith
Deleted (event 3)
3\tdelete\tuser:1001
Azoth statistics:
";
    assert!(stdout.starts_with(expected_start), "{stdout}");
    assert!(stdout.contains("✓ integrity verified: 1 segments, 3 blocks, 3 events\n"));
    assert!(
        stdout.contains("exists"),
        "help lists the commands: {stdout}"
    );
    // `exit` ended the session.
    assert_eq!(ok(d, &["get", "never"]), "");
    assert_eq!(ok(d, &["get", "YmluYXJ5", "--base64"]), "dmFsdWU=\n");
}

#[test]
fn errors_in_a_session_are_reported_and_the_session_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["init"]);
    let script = "put k\nput k v --base64\njump\nput \"unclosed\nput k v\nget k\n";
    let output = azoth(d)
        .arg("interactive")
        .write_stdin(script)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stdout, "Successfully stored key-value pair (event 1)\nv\n");
    let errors: Vec<&str> = stderr.lines().collect();
    assert_eq!(errors.len(), 5, "{stderr}");
    assert!(
        errors[0].starts_with("error: the following required arguments"),
        "{stderr}"
    );
    assert!(
        errors[1].starts_with("error: invalid base64 in the key"),
        "{stderr}"
    );
    assert!(
        errors[2].contains("unrecognized subcommand 'jump'"),
        "{stderr}"
    );
    assert_eq!(errors[3], "error: unterminated quote");
    assert_eq!(errors[4], "error: 4 command(s) of the session failed");
    assert!(!stderr.contains("panicked"));
    // Piped sessions report failures in the exit code.
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn the_end_of_input_ends_the_session() {
    let dir = tempfile::tempdir().unwrap();
    ok(dir.path(), &["init"]);
    let output = azoth(dir.path())
        .arg("interactive")
        .write_stdin("put a 1")
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(ok(dir.path(), &["get", "a"]), "1\n");
}

#[test]
fn a_line_that_is_not_utf8_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["init"]);
    let output = azoth(d)
        .arg("interactive")
        .write_stdin(&b"put a 1\nput b \xff\nput c 3\n"[..])
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        stderr,
        "error: the line is not UTF-8 (give binary keys and values with --base64)\n\
         error: 1 command(s) of the session failed\n"
    );
    assert_eq!(output.status.code(), Some(1));
    // The lines after it ran.
    assert_eq!(ok(d, &["scan"]), "a\t1\nc\t3\n");
}
