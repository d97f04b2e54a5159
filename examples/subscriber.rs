//! A notifier: a durable subscription that sends a "notification" for every order placed,
//! survives a restart, and resumes where it stopped.
//!
//! The first run places orders and notifies; the database is closed (as a process exit
//! would); more orders arrive while nobody listens; the second run subscribes again from the
//! stored position and notifies exactly the orders it has not seen.
//!
//! Run with `cargo run --example subscriber [data-dir]` (a temporary directory by default;
//! give a directory and run it twice to see a real process restart resume).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use azoth::{
    Config, Database, DatabaseEvent, FailurePolicy, SubscribeFrom, SubscriptionConfig, SyncMode,
};

/// Sends one notification per `OrderPlaced` event; remembers what it sent.
struct Notifier {
    sent: Mutex<Vec<String>>,
    last_seen: AtomicU64,
}

impl azoth::EventHandler for Notifier {
    fn handle(&self, event: &DatabaseEvent) -> azoth::Result<()> {
        if let DatabaseEvent::AppEvent { kind, payload, .. } = event {
            if kind == "OrderPlaced" {
                let order = String::from_utf8_lossy(payload).into_owned();
                // A real notifier would send an e-mail or call a webhook here; an `Err` would
                // be retried with backoff.
                println!("  notify: order {order} (event {})", event.event_id());
                self.sent
                    .lock()
                    .map_err(|_| azoth::AzothError::Closed)?
                    .push(order);
            }
        }
        self.last_seen.store(event.event_id(), Ordering::SeqCst);
        Ok(())
    }
}

fn open(dir: &std::path::Path) -> azoth::Result<Database> {
    Database::open_with(
        Config::new(dir).sync_mode(SyncMode::Always).subscriptions(
            SubscriptionConfig::default()
                .max_retries(5)
                .on_failure(FailurePolicy::DeadLetter),
        ),
    )
}

/// Subscribes the notifier from its stored position and waits until it has seen `newest`.
fn run_notifier(db: &Database) -> azoth::Result<Arc<Notifier>> {
    let notifier = Arc::new(Notifier {
        sent: Mutex::new(Vec::new()),
        last_seen: AtomicU64::new(0),
    });
    let from = db.subscription_position("notifier")?;
    println!("  subscribing from the stored position {from:?}");
    db.subscribe(
        "notifier",
        Arc::clone(&notifier) as Arc<dyn azoth::EventHandler>,
        SubscribeFrom::Stored,
    )?;
    Ok(notifier)
}

fn wait_until_seen(db: &Database, notifier: &Notifier) -> azoth::Result<()> {
    let newest = db.stats()?.log.newest_event_id;
    let deadline = Instant::now() + Duration::from_secs(10);
    while notifier.last_seen.load(Ordering::SeqCst) < newest && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

fn main() -> azoth::Result<()> {
    let temp = tempfile::tempdir()?;
    let dir = std::env::args()
        .nth(1)
        .map_or_else(|| temp.path().to_path_buf(), std::path::PathBuf::from);

    println!("first run");
    let db = open(&dir)?;
    let notifier = run_notifier(&db)?;
    for order in ["A-1", "A-2", "A-3"] {
        db.append_event("OrderPlaced", order.as_bytes())?;
    }
    wait_until_seen(&db, &notifier)?;
    // Closing stores the subscription's position (so does a checkpoint every 200 ms or 1024
    // events; a crash replays at most the events after the last one: at least once).
    db.close()?;

    println!("orders placed while the notifier is down");
    let db = open(&dir)?;
    for order in ["B-1", "B-2"] {
        db.append_event("OrderPlaced", order.as_bytes())?;
    }

    println!("second run");
    let notifier = run_notifier(&db)?;
    db.append_event("OrderPlaced", b"C-1")?;
    wait_until_seen(&db, &notifier)?;
    let sent = notifier
        .sent
        .lock()
        .map_err(|_| azoth::AzothError::Closed)?
        .clone();
    println!("  the second run notified {sent:?}");
    for s in db.stats()?.subscriptions {
        println!(
            "  {}: position {}, lag {}, mode {:?}, delivered {}, errors {}",
            s.name, s.position, s.lag, s.mode, s.delivered, s.errors
        );
    }
    db.close()?;
    Ok(())
}
