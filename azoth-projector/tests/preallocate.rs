//! `Config::log_preallocate` reaches the file log: under `SyncMode::Always` the active segment
//! carries zeros ahead of its last block by default, none with 0, and either way a reopen
//! sees every write.

use azoth_core::SyncMode;
use azoth_projector::{Config, Database};

/// The length of the active (last) segment file of the database in `dir`.
fn active_segment_len(dir: &std::path::Path) -> u64 {
    let mut segments: Vec<_> = std::fs::read_dir(dir.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    std::fs::metadata(segments.last().unwrap()).unwrap().len()
}

#[test]
fn the_default_preallocates_and_zero_turns_it_off() {
    for (preallocate, ahead) in [(None, true), (Some(0), false)] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::new(dir.path()).sync_mode(SyncMode::Always);
        if let Some(bytes) = preallocate {
            config = config.log_preallocate(bytes);
        }
        let db = Database::open_with(config.clone()).unwrap();
        for i in 0..20u32 {
            db.put(&i.to_be_bytes(), b"value").unwrap();
        }
        let logged = db.stats().unwrap().log.total_bytes;
        assert_eq!(
            active_segment_len(dir.path()) > logged,
            ahead,
            "{preallocate:?}"
        );
        db.close().unwrap();
        assert_eq!(
            active_segment_len(dir.path()),
            logged,
            "close cuts the zeros"
        );
        let db = Database::open_with(config).unwrap();
        for i in 0..20u32 {
            assert_eq!(
                db.get(&i.to_be_bytes()).unwrap().as_deref(),
                Some(&b"value"[..])
            );
        }
        assert!(db.verify().unwrap().is_ok());
    }
}
