//! Operating a live database from the outside: inspect it read-only while the application
//! writes, take a compressed online backup, restore it elsewhere and check the copy.
//!
//! Run with `cargo run --example backup_and_inspect` (everything in a temporary directory).

use azoth::{BackupOptions, Config, Database, ReadOnlyDatabase, SyncMode};

fn main() -> azoth::Result<()> {
    let temp = tempfile::tempdir()?;
    let live = temp.path().join("live");
    let db = Database::open_with(Config::new(&live).sync_mode(SyncMode::Never))?;
    for i in 0..1000u32 {
        db.put(format!("order:{i:05}").as_bytes(), &i.to_le_bytes())?;
    }

    // An operator's look: no lock taken, nothing written, the unflushed tail included.
    let ro = ReadOnlyDatabase::open(&live)?;
    println!(
        "read-only: {} orders, log at event {}, view checkpoint {}",
        ro.scan_prefix(b"order:")?.len(),
        ro.position(),
        ro.stats()?.checkpoint
    );

    // The application keeps writing; the log is followed at once, the view on refresh.
    for i in 1000..1100u32 {
        db.put(format!("order:{i:05}").as_bytes(), &i.to_le_bytes())?;
    }
    println!(
        "events since the read-only open: {}; refresh replayed {}",
        ro.events_since(ro.position())?.count(),
        ro.refresh()?
    );

    // An online backup: consistent while writers go on; zstd-compressed.
    let backup = temp.path().join("backup");
    let report = db.backup_with(&backup, BackupOptions::default().zstd(3))?;
    println!(
        "backup: {} files, {} bytes stored for {} bytes, events {}..={}, checkpoint {}",
        report.files,
        report.stored_bytes,
        report.bytes,
        report.oldest_event_id,
        report.newest_event_id,
        report.checkpoint
    );

    // Restore elsewhere and check the copy.
    let restored_dir = temp.path().join("restored");
    let restored = Database::restore(&backup, &restored_dir)?;
    let copy = Database::open_with(
        Config::new(&restored_dir)
            .sync_mode(SyncMode::Never)
            .log_backend(restored.log_backend),
    )?;
    println!(
        "restored: {} orders, verify {}",
        copy.scan_prefix(b"order:")?.len(),
        if copy.verify()?.is_ok() {
            "ok"
        } else {
            "FAILED"
        }
    );
    Ok(())
}
