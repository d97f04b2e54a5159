//! `sync()` does not hold up appends while its `fdatasync` runs, and still covers every block
//! appended before it was called, across a rotation that happens meanwhile.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use azoth_core::{EventLog, SyncMode};
use azoth_file::FileLogOptions;
use common::*;

#[test]
fn appends_go_on_while_a_sync_waits_for_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (entered_tx, entered) = crossbeam_channel::unbounded();
    let (release, release_rx) = crossbeam_channel::unbounded::<()>();
    // While `held`, a data sync announces itself, then waits until the test lets it go on.
    let held = Arc::new(AtomicBool::new(false));
    let fs = SyncHookFs {
        on_sync: Arc::new({
            let held = Arc::clone(&held);
            move |file| {
                if held.load(Ordering::SeqCst) {
                    entered_tx.send(()).map_err(std::io::Error::other)?;
                    release_rx.recv().map_err(std::io::Error::other)?;
                }
                file.sync_data()
            }
        }),
    };
    let log = Arc::new(
        FileLogOptions::default()
            .sync_mode(SyncMode::Never)
            .segment_size(64 * 1024)
            .file_system(Arc::new(fs))
            .open(dir.path())
            .unwrap(),
    );
    fill(&log, 1, 51, 100);
    held.store(true, Ordering::SeqCst);
    let syncing = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || log.sync())
    };
    entered
        .recv_timeout(Duration::from_secs(10))
        .expect("the sync reaches the disk");

    // The sync waits in its fdatasync; appends, a rotation among them, go on meanwhile.
    let appending = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            fill(&log, 51, 2051, 100);
            log.rotate().map(|_| ())
        })
    };
    let appended = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        appending.is_finished()
    });
    // Let every sync go on (the one held, and any the rotation asks for).
    held.store(false, Ordering::SeqCst);
    for _ in 0..16 {
        let _ = release.send(());
    }
    assert!(appended, "appends waited for the sync");
    appending.join().unwrap().unwrap();
    syncing.join().unwrap().unwrap();

    // Every event is there; a later sync covers the segments sealed meanwhile.
    log.sync().unwrap();
    assert_holds(&log, 1, 2051);
    assert!(log.verify().unwrap().is_ok());
    drop(log);
    let reopened = FileLogOptions::default()
        .sync_mode(SyncMode::Never)
        .open(dir.path())
        .unwrap();
    assert_holds(&reopened, 1, 2051);
}
