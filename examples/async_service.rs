//! An async service: many tokio tasks write concurrently through an `AsyncDatabase` (their
//! writes share group commits, and no runtime thread waits on an fsync), while another task
//! follows the log as a stream of events and counts what it sees.
//!
//! Run with `cargo run --example async_service`.

use azoth::{AsyncDatabase, Config, DatabaseEvent, SyncMode};

const TASKS: u32 = 8;
const WRITES_PER_TASK: u32 = 50;

#[tokio::main]
async fn main() -> azoth::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = AsyncDatabase::open_with(Config::new(dir.path()).sync_mode(SyncMode::Always)).await?;
    println!("opened {}", dir.path().display());

    // A follower from the first event: it reads the log as it grows.
    let mut events = db.events_from(0).await?;
    let total = u64::from(TASKS * WRITES_PER_TASK);
    let follower = tokio::spawn(async move {
        let mut puts = 0u64;
        while let Some((id, event)) = events.next().await {
            if matches!(event, DatabaseEvent::WriteEvent { .. }) {
                puts += 1;
            }
            if id == total {
                break;
            }
        }
        puts
    });

    let mut writers = Vec::new();
    for task in 0..TASKS {
        let db = db.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..WRITES_PER_TASK {
                let key = format!("task{task}:item{i:03}").into_bytes();
                db.put(key, i.to_be_bytes().to_vec()).await?;
            }
            Ok::<_, azoth::AzothError>(())
        }));
    }
    for writer in writers {
        writer
            .await
            .map_err(|e| azoth::AzothError::Config(format!("a writer task failed: {e}")))??;
    }
    println!("{TASKS} tasks wrote {total} keys");

    let seen = follower
        .await
        .map_err(|e| azoth::AzothError::Config(format!("the follower task failed: {e}")))?;
    println!("the follower saw {seen} put events");

    let entry = db.get(&b"task3:item007".to_vec()).await?;
    let value = entry.and_then(|e| e.value).unwrap_or_default();
    println!("task3:item007 = {value:?}");
    let stats = db.stats().await?;
    println!(
        "stats: {} events in the log, {} write groups, write p50 {:.0} µs",
        stats.log.event_count, stats.groups_committed, stats.write_latency.p50_us
    );
    db.close().await?;
    Ok(())
}
