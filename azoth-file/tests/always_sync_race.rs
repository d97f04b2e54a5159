//! Under `SyncMode::Always` an append is not acknowledged when the write-back of its segment
//! failed, even when the failure was reported to another `fdatasync` of the same file (a
//! `sync()` running beside it), as Linux reports it to only one of them.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use azoth_core::{EventLog, SyncMode};
use azoth_file::FileLogOptions;
use common::*;

#[test]
fn an_append_is_not_acknowledged_when_a_sync_beside_it_took_the_write_back_error() {
    let dir = tempfile::tempdir().unwrap();
    let (entered_tx, entered) = crossbeam_channel::unbounded();
    let (release, release_rx) = crossbeam_channel::unbounded::<()>();
    // Once `armed`, the file's write-back fails: the first data sync waits for the test's
    // word and reports the failure, and any other, as the kernel does for an error it has
    // reported once, returns success after it.
    let armed = Arc::new(AtomicBool::new(false));
    let fs = SyncHookFs {
        on_sync: Arc::new({
            let armed = Arc::clone(&armed);
            let calls = AtomicUsize::new(0);
            let failed = AtomicBool::new(false);
            move |file| {
                if !armed.load(Ordering::SeqCst) {
                    return file.sync_data();
                }
                let call = calls.fetch_add(1, Ordering::SeqCst);
                let _ = entered_tx.send(call);
                if call == 0 {
                    let _ = release_rx.recv();
                    failed.store(true, Ordering::SeqCst);
                    return Err(std::io::Error::from_raw_os_error(libc::EIO));
                }
                while !failed.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok(())
            }
        }),
    };
    let log = Arc::new(
        FileLogOptions::default()
            .sync_mode(SyncMode::Always)
            .file_system(Arc::new(fs))
            .open(dir.path())
            .unwrap(),
    );
    fill(&log, 1, 11, 5);
    armed.store(true, Ordering::SeqCst);
    let syncing = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || log.sync())
    };
    assert_eq!(entered.recv_timeout(Duration::from_secs(10)).unwrap(), 0);
    let appending = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || log.append_with_id(11, &event(11)))
    };
    // Give the append the time to reach its own sync, if it can.
    let _ = entered.recv_timeout(Duration::from_secs(1));
    release.send(()).unwrap();
    assert!(
        syncing.join().unwrap().is_err(),
        "the sync reports the failure"
    );
    assert!(
        appending.join().unwrap().is_err(),
        "an append whose write-back failed is not acknowledged"
    );
    assert!(
        log.append_with_id(11, &event(11)).is_err(),
        "the log refuses appends from then on"
    );
}
