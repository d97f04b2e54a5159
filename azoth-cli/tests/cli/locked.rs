//! A directory another process holds: write commands say so plainly.

use crate::common::{fails, ok};
use crate::holder::Holder;

#[test]
fn write_commands_on_a_held_directory_say_it_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("app-data");
    ok(&d, &["init"]);
    ok(&d, &["put", "k", "v"]);
    let mut holder = Holder::start(&d);
    holder.put("from-app", "1");
    let expected = format!(
        "error: the data directory {} is locked by another process (an application has it \
         open); write commands need exclusive access\n",
        d.display()
    );
    for args in [
        &["put", "k", "v2"][..],
        &["delete", "k"],
        &["compact"],
        &["rebuild"],
        &["import", "-"],
    ] {
        assert_eq!(fails(&d, args, 1), expected, "{args:?}");
    }
    drop(holder);
    // Once the application is gone, writes work again and nothing was lost.
    ok(&d, &["put", "k", "v2"]);
    assert_eq!(ok(&d, &["scan"]), "from-app\t1\nk\tv2\n");
}

#[test]
fn read_commands_work_beside_the_application() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("app-data");
    ok(&d, &["init"]);
    ok(&d, &["put", "k", "v"]);
    let mut holder = Holder::start(&d);
    holder.put("from-app", "1");
    // Reads see the application's writes (the read-only open replays its unflushed tail).
    assert_eq!(ok(&d, &["get", "from-app"]), "1\n");
    assert_eq!(ok(&d, &["exists", "k"]), "true\n");
    assert_eq!(ok(&d, &["scan"]), "from-app\t1\nk\tv\n");
    assert_eq!(ok(&d, &["events"]), "1\tput\tk\tv\n2\tput\tfrom-app\t1\n");
    assert_eq!(ok(&d, &["dump"]).lines().count(), 2);
    assert!(ok(&d, &["stats"]).contains("  events             2\n"));
    assert_eq!(
        ok(&d, &["verify"]),
        "✓ integrity verified: 1 segments, 2 blocks, 2 events\n"
    );
    // The application was not disturbed: it still writes.
    holder.put("after-reads", "2");
    assert_eq!(ok(&d, &["get", "after-reads"]), "2\n");
}

#[test]
fn a_session_beside_the_application_reads_and_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("app-data");
    ok(&d, &["init"]);
    ok(&d, &["put", "k", "v"]);
    let _holder = Holder::start(&d);
    let output = crate::common::azoth(&d)
        .arg("interactive")
        .write_stdin("get k\nput k2 v2\nscan\n")
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stdout, "v\nk\tv\n");
    assert!(
        stderr.starts_with(&format!(
            "error: the data directory {} is locked",
            d.display()
        )),
        "{stderr}"
    );
}

#[test]
fn events_follow_tails_a_live_directory() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::sync::mpsc;
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("app-data");
    ok(&d, &["init"]);
    ok(&d, &["put", "before", "0"]);
    let mut holder = Holder::start(&d);
    let mut follower = Command::new(env!("CARGO_BIN_EXE_azoth"))
        .arg("-d")
        .arg(&d)
        .args(["events", "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = follower.stdout.take().unwrap();
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if lines.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    // A guard against a hang, not a measurement: the follower polls every 100 ms.
    let next = || received.recv_timeout(Duration::from_secs(60)).unwrap();
    assert_eq!(next(), "1\tput\tbefore\t0");
    holder.put("live", "1");
    assert_eq!(next(), "2\tput\tlive\t1");
    holder.put("live", "2");
    assert_eq!(next(), "3\tput\tlive\t2");
    follower.kill().unwrap();
    follower.wait().unwrap();
}

#[test]
fn writes_are_refused_while_the_view_lacks_an_applications_events() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("app-data");
    ok(&d, &["init"]);
    ok(&d, &["put", "k", "v"]);
    let mut holder = Holder::start(&d);
    holder.app_event("Deposited", "10");
    // While the application runs, the directory is reported as locked.
    let e = fails(&d, &["put", "k", "v2"], 1);
    assert!(e.contains("is locked by another process"), "{e}");
    // The application dies before flushing its view.
    holder.kill();
    let e = fails(&d, &["put", "k", "v2"], 1);
    assert!(
        e.contains(
            "has application events that its view has not stored yet (the first is event 2)"
        ),
        "{e}"
    );
    // Reads still work, and nothing was written.
    assert_eq!(ok(&d, &["get", "k"]), "v\n");
    assert_eq!(ok(&d, &["events"]).lines().count(), 2);
}

/// `azoth -d DIR events --follow` running, its stdout lines arriving on a channel.
struct Follower {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Follower {
    fn start(dir: &std::path::Path) -> Self {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};

        let mut child = Command::new(env!("CARGO_BIN_EXE_azoth"))
            .arg("-d")
            .arg(dir)
            .args(["events", "--follow"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if sender.send(line.unwrap()).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// The next line; `None` when the follower ended. A guard against a hang, not a
    /// measurement: the follower polls every 100 ms.
    fn next(&self) -> Option<String> {
        match self.lines.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(line) => Some(line),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => None,
            Err(e) => panic!("the follower printed nothing: {e}"),
        }
    }

    /// Sends a signal to the follower (`STOP`, `CONT`).
    #[cfg(unix)]
    fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn events_follow_goes_on_across_rotation_and_archival() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("app-data");
    ok(&d, &["init"]);
    ok(&d, &["put", "k", "0"]);
    let mut holder = Holder::start(&d);
    let follower = Follower::start(&d);
    assert_eq!(follower.next().unwrap(), "1\tput\tk\t0");
    let mut expected = 2;
    for round in 0..3 {
        holder.put("k", &format!("a{round}"));
        holder.job("rotate");
        holder.put("k", &format!("b{round}"));
        holder.job("archive");
        for _ in 0..2 {
            let line = follower.next().unwrap();
            assert!(line.starts_with(&format!("{expected}\tput\tk\t")), "{line}");
            expected += 1;
        }
    }
}

/// Retention in the application deletes events the follower has not printed yet: the
/// follower says so and stops, rather than going on after a silent gap.
#[cfg(unix)]
#[test]
fn events_follow_does_not_skip_events_retention_deleted_between_polls() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("app-data");
    ok(&d, &["init"]);
    ok(&d, &["put", "k", "0"]);
    let mut holder = Holder::start_with(&d, Some(1));
    let mut follower = Follower::start(&d);
    assert_eq!(follower.next().unwrap(), "1\tput\tk\t0");
    follower.signal("STOP");
    // Events 2..=5 in sealed segments, then deleted while the follower is stopped.
    for i in 2..=5 {
        holder.put("k", &i.to_string());
        holder.job("rotate");
    }
    holder.put("k", "6");
    holder.job("retain");
    follower.signal("CONT");
    let mut printed = 1;
    while let Some(line) = follower.next() {
        let id: u64 = line.split('\t').next().unwrap().parse().unwrap();
        assert_eq!(id, printed + 1, "a gap in the followed events: {line}");
        printed = id;
        if printed == 6 {
            break;
        }
    }
    let status = follower.child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(follower.child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: reading events: events 2 to 5 are no longer in the log"),
        "{stderr}"
    );
}
