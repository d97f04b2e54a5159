//! Running the binary against a data directory.

use std::path::Path;

use assert_cmd::Command;

/// `azoth -d DIR`.
pub fn azoth(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_azoth"));
    cmd.arg("-d").arg(dir);
    cmd
}

/// Runs `azoth -d DIR ARGS…`, expects success and returns stdout.
pub fn ok(dir: &Path, args: &[&str]) -> String {
    let output = azoth(dir).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "azoth {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Runs `azoth -d DIR ARGS…`, expects exit code `code`, one `error:` line on stderr and no
/// panic, and returns that line.
pub fn fails(dir: &Path, args: &[&str], code: i32) -> String {
    let output = azoth(dir).args(args).output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(code), "azoth {args:?}: {stderr}");
    assert!(
        !stderr.contains("panicked"),
        "azoth {args:?} panicked: {stderr}"
    );
    assert!(stderr.starts_with("error: "), "azoth {args:?}: {stderr}");
    stderr
}

/// A new data directory with `user:1001 = John Doe`, `user:1002 = Jane`, `config:timeout = 30`.
pub fn sample(dir: &Path) {
    ok(dir, &["init"]);
    ok(dir, &["put", "user:1001", "John Doe"]);
    ok(dir, &["put", "user:1002", "Jane"]);
    ok(dir, &["put", "config:timeout", "30"]);
}
