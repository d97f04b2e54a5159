//! An archival job, the kind an operator runs from cron against a live database: rotate the
//! active log unit, archive what is older than a boundary, apply retention, verify the whole
//! chain, and print what it did.
//!
//! Retention here keeps at least the newest 500 events; a durable subscription (`billing`)
//! that is behind holds the log for it, and the job shows that hold.
//!
//! Run with `cargo run --example archival_job [data-dir]` (a temporary directory by
//! default, filled with sample events first).

use std::time::Duration;

use azoth::{
    ArchiveBoundary, Config, Database, DatabaseEvent, RetentionPolicy, SubscribeFrom, SyncMode,
};

fn main() -> azoth::Result<()> {
    let temp;
    let dir = match std::env::args().nth(1) {
        Some(dir) => std::path::PathBuf::from(dir),
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let db = Database::open_with(
        Config::new(&dir)
            .sync_mode(SyncMode::Never)
            .archive_dir(dir.join("archive"))
            .retention(RetentionPolicy::keep_all().keep_events(500)),
    )?;
    fill_with_sample_events(&db)?;

    // 1. Seal the active unit, so everything written so far can be archived.
    let sealed = db.rotate()?;
    println!("rotated: sealed {}", sealed.display());

    // 2. Archive sealed units whose newest event is older than the boundary (zero here, so
    //    that a fresh demo database has something to archive; an hour or a day in practice).
    let archives = db.archive_by(ArchiveBoundary::OlderThan(Duration::ZERO))?;
    println!("archived: {} units", archives.len());
    for path in &archives {
        println!("  {}", path.display());
    }

    // 3. Retention: delete what the policy allows, never what the view or a subscription
    //    still needs. (The view's checkpoint must include the events, so flush first.)
    db.flush()?;
    let retention = db.apply_retention()?;
    println!(
        "retention: deleted {} units, {} events, {} bytes; the log now starts at event {}",
        retention.units_deleted,
        retention.events_deleted,
        retention.bytes_deleted,
        retention.oldest_event_id
    );
    if let Some(held) = &retention.held_back {
        println!(
            "  held back {} units ({} events) the policy would delete, for:",
            held.units, held.events
        );
        for hold in &held.by {
            println!(
                "    {} (needs the events after {})",
                hold.holder, hold.position
            );
        }
    }

    // 4. Verify the whole chain, archives and live units, with progress.
    let report = db.verify_with_progress(|p| {
        println!(
            "  verified {}/{} units, {}/{} bytes",
            p.segments_done, p.segments_total, p.bytes_done, p.bytes_total
        );
    })?;
    match &report.first_failure {
        None => println!(
            "verify: ok, {} events in {} blocks",
            report.events_verified, report.blocks_verified
        ),
        Some(failure) => println!("verify: FAILED: {failure}"),
    }

    let stats = db.stats()?;
    println!(
        "log: {} events in {} units, {} bytes",
        stats.log.event_count, stats.log.file_count, stats.log.total_bytes
    );
    db.close()
}

/// Two thousand events in five units (the last one active), and a subscription that stopped
/// early.
fn fill_with_sample_events(db: &Database) -> azoth::Result<()> {
    if db.stats()?.log.newest_event_id > 0 {
        return Ok(());
    }
    for unit in 0..5 {
        for i in 0..400 {
            db.put(format!("order:{unit}:{i}").as_bytes(), b"placed")?;
        }
        if unit < 4 {
            db.rotate()?;
        }
    }
    // A billing subscriber whose backend went down after event 1000: its stored position
    // holds the log from there on, until it runs again and catches up.
    db.subscribe(
        "billing",
        |event: &DatabaseEvent| {
            if event.event_id() > 1000 {
                Err(azoth::AzothError::Config(
                    "billing backend unavailable".into(),
                ))
            } else {
                Ok(())
            }
        },
        SubscribeFrom::After(1000),
    )?;
    db.unsubscribe("billing")?;
    Ok(())
}
