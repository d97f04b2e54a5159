//! A zero flush interval must not turn the background flusher into a busy loop: the setter
//! holds it to at least 1 ms, as it documents.

use std::time::Duration;

use azoth_projector::{Config, Database, SyncMode};

#[test]
fn a_flush_interval_is_at_least_one_millisecond() {
    let dir = tempfile::tempdir().unwrap();
    let interval = |set: Option<Duration>| {
        let config = Config::new(dir.path()).flush_interval(set);
        let shown = format!("{config:?}");
        let from = shown.find("flush_interval: ").unwrap();
        shown[from..].split(',').next().unwrap().to_owned()
    };
    assert_eq!(interval(Some(Duration::ZERO)), "flush_interval: Some(1ms)");
    assert_eq!(
        interval(Some(Duration::from_nanos(1))),
        "flush_interval: Some(1ms)"
    );
    assert_eq!(
        interval(Some(Duration::from_secs(2))),
        "flush_interval: Some(2s)"
    );
    assert_eq!(interval(None), "flush_interval: None");
    // And such a database works: the flusher runs every millisecond, not without pause.
    let db = Database::open_with(
        Config::new(dir.path())
            .sync_mode(SyncMode::Never)
            .flush_interval(Some(Duration::ZERO)),
    )
    .unwrap();
    db.put(b"k", b"v").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(db.get(b"k").unwrap(), Some(b"v".to_vec()));
    db.close().unwrap();
}
