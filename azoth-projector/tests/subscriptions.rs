//! Subscriptions: completeness and order under a slow handler, resume after restart,
//! unsubscribe racing delivery, failing and panicking handlers, many subscriptions at once,
//! the async API.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use azoth_core::{AzothError, DatabaseEvent, EventId};
use azoth_projector::{
    Config, Database, FailurePolicy, StoredPosition, SubscribeFrom, SubscriptionConfig,
    SubscriptionMode, SyncMode,
};

fn config(dir: &std::path::Path) -> Config {
    Config::new(dir).sync_mode(SyncMode::Never)
}

/// Waits up to 30 s for `done`; panics with `what` otherwise.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The ids a handler has seen, in order.
type Seen = Arc<Mutex<Vec<EventId>>>;

/// A handler that records the ids it sees.
fn recorder() -> (Seen, impl Fn(&DatabaseEvent) -> azoth_core::Result<()>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    (seen, move |e: &DatabaseEvent| {
        sink.lock().unwrap().push(e.event_id());
        Ok(())
    })
}

fn len(seen: &Mutex<Vec<EventId>>) -> usize {
    seen.lock().unwrap().len()
}

/// The issue asks for 1 M events; that takes minutes on a 2-core CI machine with a sleeping
/// handler, so the default is 20 000 and `AZOTH_SUB_EVENTS=1000000` runs the full size.
fn event_count() -> u64 {
    std::env::var("AZOTH_SUB_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

#[test]
fn a_slow_handler_gets_every_event_in_order_while_writers_run_ahead() {
    let dir = tempfile::tempdir().unwrap();
    // A tiny channel, so the subscription falls behind and catches up from the log often.
    let db = Database::open_with(
        config(dir.path()).subscriptions(SubscriptionConfig::default().channel_capacity(2)),
    )
    .unwrap();
    let total = event_count();
    let seen = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let sink = Arc::clone(&seen);
    let caught_up = Arc::new(AtomicU64::new(0));
    db.subscribe(
        "slow",
        move |e: &DatabaseEvent| {
            let id = e.event_id();
            if id % 16 == 0 {
                std::thread::sleep(Duration::from_micros(100));
            }
            sink.lock().unwrap().push(id);
            Ok(())
        },
        SubscribeFrom::Now,
    )
    .unwrap();
    let modes = Arc::clone(&caught_up);
    let watcher_db = db.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_watch = Arc::clone(&stop);
    let watcher = std::thread::spawn(move || {
        while !stop_watch.load(Ordering::Relaxed) {
            let stats = watcher_db.stats().unwrap();
            if stats.subscriptions[0].mode == SubscriptionMode::CatchUp {
                modes.fetch_add(1, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let db = db.clone();
            s.spawn(move || {
                for i in 0..total / 2 {
                    db.put(format!("k{t}-{i}").as_bytes(), b"v").unwrap();
                }
            });
        }
    });
    wait_for("the slow handler", || len(&seen) as u64 >= total);
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    db.unsubscribe("slow").unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(*seen, (1..=total).collect::<Vec<_>>());
    assert!(
        caught_up.load(Ordering::Relaxed) > 0,
        "the subscription was never seen catching up"
    );
}

#[test]
fn a_durable_subscription_resumes_after_restart_without_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::open_with(config(dir.path())).unwrap();
        for i in 0..100u32 {
            db.put(&i.to_be_bytes(), b"before").unwrap();
        }
        let (seen, handler) = recorder();
        db.subscribe("notifier", handler, SubscribeFrom::Stored)
            .unwrap();
        for i in 0..400u32 {
            db.put(&i.to_be_bytes(), b"v").unwrap();
        }
        wait_for("the first run", || len(&seen) == 500);
        assert_eq!(*seen.lock().unwrap(), (1..=500).collect::<Vec<_>>());
        db.close().unwrap();
    }
    let db = Database::open_with(config(dir.path())).unwrap();
    assert_eq!(db.subscription_position("notifier").unwrap(), Some(500));
    assert_eq!(db.lowest_durable_position().unwrap(), Some(500));
    for i in 0..300u32 {
        db.put(&i.to_be_bytes(), b"after").unwrap();
    }
    let (seen, handler) = recorder();
    db.subscribe("notifier", handler, SubscribeFrom::Stored)
        .unwrap();
    for i in 0..200u32 {
        db.put(&i.to_be_bytes(), b"live").unwrap();
    }
    wait_for("the second run", || len(&seen) == 500);
    assert_eq!(*seen.lock().unwrap(), (501..=1000).collect::<Vec<_>>());
    // The position advances when the handler has returned, just after it recorded the id.
    wait_for("the position", || {
        db.stats().unwrap().subscriptions[0].position == 1000
    });
    let stats = db.stats().unwrap();
    assert_eq!(stats.subscriptions.len(), 1);
    assert_eq!(stats.subscriptions[0].position, 1000);
    assert_eq!(stats.subscriptions[0].lag, 0);
    assert_eq!(stats.subscriptions[0].delivered, 500);
    assert!(
        db.metrics_text()
            .unwrap()
            .contains("azoth_subscription_position{subscription=\"notifier\"} 1000\n")
    );
    db.unsubscribe_with("notifier", StoredPosition::Forget)
        .unwrap();
    assert_eq!(db.subscription_position("notifier").unwrap(), None);
    assert_eq!(db.lowest_durable_position().unwrap(), None);
}

#[test]
fn a_stored_position_is_never_ahead_of_what_the_handler_finished() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(config(dir.path()).subscriptions(
        SubscriptionConfig::default().checkpoint_every(10, Duration::from_millis(1)),
    ))
    .unwrap();
    let finished = Arc::new(AtomicU64::new(0));
    let done = Arc::clone(&finished);
    db.subscribe(
        "careful",
        move |e: &DatabaseEvent| {
            std::thread::sleep(Duration::from_micros(200));
            done.store(e.event_id(), Ordering::SeqCst);
            Ok(())
        },
        SubscribeFrom::Beginning,
    )
    .unwrap();
    for i in 0..500u32 {
        db.put(&i.to_be_bytes(), b"v").unwrap();
        if i % 50 == 0 {
            let stored = db.subscription_position("careful").unwrap().unwrap();
            assert!(stored <= finished.load(Ordering::SeqCst));
        }
    }
    wait_for("the handler", || finished.load(Ordering::SeqCst) == 500);
    db.unsubscribe("careful").unwrap();
    assert_eq!(db.subscription_position("careful").unwrap(), Some(500));
}

#[test]
fn no_handler_call_starts_after_unsubscribe_returns() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(config(dir.path())).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    std::thread::scope(|s| {
        let writer_db = db.clone();
        let stop_writer = Arc::clone(&stop);
        s.spawn(move || {
            let mut i = 0u64;
            while !stop_writer.load(Ordering::Relaxed) {
                writer_db.put(&i.to_be_bytes(), b"v").unwrap();
                i += 1;
            }
        });
        for round in 0..20 {
            let name = format!("racer-{round}");
            let unsubscribed = Arc::new(AtomicBool::new(false));
            let late_calls = Arc::new(AtomicU64::new(0));
            let calls = Arc::new(AtomicU64::new(0));
            let (flag, late, count) = (
                Arc::clone(&unsubscribed),
                Arc::clone(&late_calls),
                Arc::clone(&calls),
            );
            db.subscribe(
                &name,
                move |_: &DatabaseEvent| {
                    if flag.load(Ordering::SeqCst) {
                        late.fetch_add(1, Ordering::SeqCst);
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_micros(50));
                    Ok(())
                },
                SubscribeFrom::Beginning,
            )
            .unwrap();
            wait_for("some deliveries", || calls.load(Ordering::SeqCst) > 10);
            db.unsubscribe(&name).unwrap();
            unsubscribed.store(true, Ordering::SeqCst);
            let after = calls.load(Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(5));
            assert_eq!(late_calls.load(Ordering::SeqCst), 0, "round {round}");
            assert_eq!(calls.load(Ordering::SeqCst), after, "round {round}");
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert!(db.stats().unwrap().subscriptions.is_empty());
    assert!(matches!(
        db.unsubscribe("racer-0"),
        Err(AzothError::NotFound(_))
    ));
}

fn failing_config(dir: &std::path::Path, policy: FailurePolicy) -> Config {
    config(dir).subscriptions(
        SubscriptionConfig::default()
            .max_retries(2)
            .retry_backoff(Duration::from_millis(1), Duration::from_millis(4))
            .on_failure(policy),
    )
}

#[test]
fn a_panicking_handler_fails_alone_and_can_be_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(failing_config(dir.path(), FailurePolicy::Stop)).unwrap();
    let attempts = Arc::new(AtomicU64::new(0));
    let tries = Arc::clone(&attempts);
    db.subscribe(
        "fragile",
        move |e: &DatabaseEvent| {
            if e.event_id() == 5 {
                tries.fetch_add(1, Ordering::SeqCst);
                panic!("cannot handle event 5");
            }
            Ok(())
        },
        SubscribeFrom::Beginning,
    )
    .unwrap();
    let (healthy, handler) = recorder();
    db.subscribe("healthy", handler, SubscribeFrom::Beginning)
        .unwrap();
    for i in 0..20u32 {
        db.put(&i.to_be_bytes(), b"v").unwrap();
    }
    let fragile = || {
        db.stats()
            .unwrap()
            .subscriptions
            .into_iter()
            .find(|s| s.name == "fragile")
            .unwrap()
    };
    wait_for("the failure", || fragile().mode == SubscriptionMode::Failed);
    let stats = fragile();
    assert_eq!(stats.position, 4);
    assert_eq!(stats.errors, 3);
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    assert!(stats.failure.unwrap().contains("cannot handle event 5"));
    // Writes and the other subscription go on.
    db.put(b"after", b"v").unwrap();
    wait_for("the healthy subscription", || len(&healthy) == 21);
    assert_eq!(db.subscription_position("fragile").unwrap(), Some(4));
    // Restartable: subscribing again resumes at the event it failed on.
    let (seen, handler) = recorder();
    db.subscribe("fragile", handler, SubscribeFrom::Stored)
        .unwrap();
    wait_for("the restart", || len(&seen) == 17);
    assert_eq!(*seen.lock().unwrap(), (5..=21).collect::<Vec<_>>());
}

#[test]
fn dead_letters_record_what_the_handler_kept_failing_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(failing_config(dir.path(), FailurePolicy::DeadLetter)).unwrap();
    let (seen, record) = recorder();
    db.subscribe(
        "picky",
        move |e: &DatabaseEvent| {
            match e.event_id() {
                3 => return Err(AzothError::Config("event 3 is refused".into())),
                7 => panic!("event 7 panics"),
                _ => {}
            }
            record(e)
        },
        SubscribeFrom::Beginning,
    )
    .unwrap();
    for i in 0..10u32 {
        db.put(&i.to_be_bytes(), b"v").unwrap();
    }
    wait_for("the rest of the events", || len(&seen) == 8);
    assert_eq!(*seen.lock().unwrap(), vec![1, 2, 4, 5, 6, 8, 9, 10]);
    let dead = db.dead_letters("picky").unwrap();
    assert_eq!(
        dead.iter().map(|d| d.event_id).collect::<Vec<_>>(),
        vec![3, 7]
    );
    assert!(dead[0].error.contains("event 3 is refused"));
    assert!(dead[1].error.contains("event 7 panics"));
    // Each dead letter keeps the event it was recorded for.
    let events = db.get_events().unwrap();
    assert_eq!(dead[0].event.as_ref(), Some(&events[2]));
    assert_eq!(dead[1].event.as_ref(), Some(&events[6]));
    let stats = db.stats().unwrap().subscriptions;
    assert_eq!(stats[0].dead_letters, 2);
    // The last event may have been delivered by the catch-up read, which rejoins live
    // delivery just after it.
    wait_for("live delivery", || {
        db.stats().unwrap().subscriptions[0].mode == SubscriptionMode::Live
    });
    // And they survive a reopen.
    drop(db);
    let db = Database::open_with(failing_config(dir.path(), FailurePolicy::DeadLetter)).unwrap();
    assert_eq!(db.dead_letters("picky").unwrap(), dead);
}

#[test]
fn sixteen_subscriptions_each_get_every_event_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(config(dir.path())).unwrap();
    let mut all = Vec::new();
    for n in 0..16 {
        let (seen, handler) = recorder();
        let from = if n % 2 == 0 {
            SubscribeFrom::Beginning
        } else {
            SubscribeFrom::Now
        };
        db.subscribe(&format!("sub{n}"), handler, from).unwrap();
        all.push(seen);
    }
    let total = 4_000u64;
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let db = db.clone();
            s.spawn(move || {
                for i in 0..total / 4 {
                    if i % 10 == 0 {
                        db.append_event("Tick", &i.to_be_bytes()).unwrap();
                    } else {
                        db.put(format!("{t}/{i}").as_bytes(), b"v").unwrap();
                    }
                }
            });
        }
    });
    for (n, seen) in all.iter().enumerate() {
        wait_for("every subscription", || len(seen) as u64 == total);
        assert_eq!(
            *seen.lock().unwrap(),
            (1..=total).collect::<Vec<_>>(),
            "sub{n}"
        );
    }
    wait_for("every position", || {
        db.stats().unwrap().subscriptions.iter().all(|s| s.lag == 0)
    });
    assert_eq!(db.stats().unwrap().subscriptions.len(), 16);
    assert_eq!(
        db.lowest_durable_position().unwrap().map(|p| p > 0),
        Some(true)
    );
    db.close().unwrap();
}

#[test]
fn subscribe_from_after_an_id_and_name_rules() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(config(dir.path())).unwrap();
    for i in 0..10u32 {
        db.put(&i.to_be_bytes(), b"v").unwrap();
    }
    let (seen, handler) = recorder();
    db.subscribe("tail", handler, SubscribeFrom::After(6))
        .unwrap();
    wait_for("the tail", || len(&seen) == 4);
    assert_eq!(*seen.lock().unwrap(), vec![7, 8, 9, 10]);
    let (_, again) = recorder();
    assert!(matches!(
        db.subscribe("tail", again, SubscribeFrom::Now),
        Err(AzothError::Config(_))
    ));
    for bad in ["", "a/b"] {
        let (_, h) = recorder();
        assert!(matches!(
            db.subscribe(bad, h, SubscribeFrom::Now),
            Err(AzothError::Config(_))
        ));
    }
}

#[test]
fn async_subscribe_unsubscribe_and_event_stream() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = Database::open_with(config(dir.path())).unwrap().to_async();
        db.put(b"before".to_vec(), b"v".to_vec()).await.unwrap();
        let (seen, handler) = recorder();
        // The seed API starts from now when no position is stored.
        db.subscribe("svc".into(), Box::new(handler)).await;
        let mut stream = db.events_from(0).await.unwrap();
        for i in 0..50u32 {
            db.put(i.to_be_bytes().to_vec(), b"v".to_vec())
                .await
                .unwrap();
        }
        for expected in 1..=51 {
            let (id, event) = stream.next().await.unwrap();
            assert_eq!(id, expected);
            assert_eq!(event.event_id(), expected);
        }
        wait_for("the async subscription", || len(&seen) == 50);
        assert_eq!(*seen.lock().unwrap(), (2..=51).collect::<Vec<_>>());
        // The same stream through `futures_core::Stream`, as combinators poll it.
        db.put(b"after".to_vec(), b"v".to_vec()).await.unwrap();
        let polled = std::future::poll_fn(|cx| {
            futures_core::Stream::poll_next(std::pin::Pin::new(&mut stream), cx)
        })
        .await;
        assert_eq!(polled.map(|(id, _)| id), Some(52));
        db.unsubscribe("svc").await;
        db.close().await.unwrap();
        // Closing ends the stream.
        let end = std::future::poll_fn(|cx| {
            futures_core::Stream::poll_next(std::pin::Pin::new(&mut stream), cx)
        })
        .await;
        assert!(end.is_none());
    });
}

#[test]
fn a_subscription_reads_archived_segments_like_live_ones() {
    // `Database` has no archive call yet, so the file log is built here and archived
    // directly; the subscription reads through the same `EventLog` the database uses.
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(
        azoth_file::FileLogOptions::default()
            .segment_size(4096)
            .sync_mode(SyncMode::Never)
            .open(dir.path().join("log"))
            .unwrap(),
    );
    let db = Database::open_with_backends(
        Config::new(dir.path()),
        Arc::clone(&log) as Arc<dyn azoth_core::EventLog>,
        Arc::new(azoth_core::MemoryStore::new()),
    )
    .unwrap();
    for i in 0..2_000u32 {
        db.put(&i.to_be_bytes(), &[7u8; 32]).unwrap();
    }
    let archived = log.archive(1_500).unwrap();
    assert!(!archived.is_empty(), "nothing was archived");
    let (all, handler) = recorder();
    db.subscribe("archived", handler, SubscribeFrom::Beginning)
        .unwrap();
    let (tail, handler) = recorder();
    db.subscribe("middle", handler, SubscribeFrom::After(100))
        .unwrap();
    db.put(b"live", b"v").unwrap();
    wait_for("the archived reader", || len(&all) == 2_001);
    wait_for("the middle reader", || len(&tail) == 1_901);
    assert_eq!(*all.lock().unwrap(), (1..=2_001).collect::<Vec<_>>());
    assert_eq!(*tail.lock().unwrap(), (101..=2_001).collect::<Vec<_>>());
}

#[test]
fn a_handler_may_write_and_unsubscribe_itself() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(config(dir.path())).unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    let (inner_db, count) = (db.clone(), Arc::clone(&calls));
    db.subscribe(
        "echo",
        move |e: &DatabaseEvent| {
            count.fetch_add(1, Ordering::SeqCst);
            if let DatabaseEvent::WriteEvent { .. } = e {
                // A write from inside a handler: published to this subscription too.
                inner_db.append_event("Echo", &e.event_id().to_be_bytes())?;
            }
            if e.event_id() == 4 {
                inner_db.unsubscribe("echo")?;
            }
            Ok(())
        },
        SubscribeFrom::Beginning,
    )
    .unwrap();
    db.put(b"a", b"1").unwrap();
    db.put(b"b", b"2").unwrap();
    wait_for("the self-unsubscribe", || {
        db.stats().unwrap().subscriptions.is_empty()
    });
    std::thread::sleep(Duration::from_millis(20));
    db.put(b"c", b"3").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    // Event 4 was in flight when it unsubscribed, so the stored position stops before it.
    assert_eq!(db.subscription_position("echo").unwrap(), Some(3));
    db.close().unwrap();
}

/// `rebuild_view` replaces the view's store; what subscriptions keep there (positions, dead
/// letters) comes along, so a rebuild neither replays a subscription from the start nor lets
/// retention free events a durable subscription still needs.
#[test]
fn a_rebuilt_view_keeps_subscription_positions_and_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(failing_config(dir.path(), FailurePolicy::DeadLetter)).unwrap();
    for i in 0..50u32 {
        db.put(&i.to_be_bytes(), b"v").unwrap();
    }
    let handled = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&handled);
    db.subscribe(
        "audit",
        move |event: &DatabaseEvent| {
            count.fetch_add(1, Ordering::SeqCst);
            if event.event_id() == 7 {
                return Err(AzothError::Config("event 7 is refused".into()));
            }
            Ok(())
        },
        SubscribeFrom::Stored,
    )
    .unwrap();
    wait_for("the handler", || {
        db.subscription_position("audit").unwrap() == Some(50)
    });
    db.unsubscribe("audit").unwrap();
    let position = db.subscription_position("audit").unwrap();
    assert_eq!(position, Some(50));
    assert_eq!(db.dead_letters("audit").unwrap().len(), 1);
    db.rebuild_view().unwrap();
    assert_eq!(db.subscription_position("audit").unwrap(), position);
    assert_eq!(db.lowest_durable_position().unwrap(), position);
    let letters = db.dead_letters("audit").unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].event_id, 7);
    assert!(letters[0].event.is_some());
    db.close().unwrap();
    let db = Database::open_with(failing_config(dir.path(), FailurePolicy::DeadLetter)).unwrap();
    assert_eq!(db.subscription_position("audit").unwrap(), position);
    assert_eq!(db.dead_letters("audit").unwrap().len(), 1);
}

#[test]
fn a_backoff_too_long_for_the_clock_waits_until_unsubscribe() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(
        config(dir.path()).subscriptions(
            SubscriptionConfig::default()
                .max_retries(3)
                .retry_backoff(Duration::MAX, Duration::MAX),
        ),
    )
    .unwrap();
    let attempts = Arc::new(AtomicU64::new(0));
    let tries = Arc::clone(&attempts);
    db.subscribe(
        "patient",
        move |_: &DatabaseEvent| {
            tries.fetch_add(1, Ordering::SeqCst);
            Err(AzothError::Config("not yet".into()))
        },
        SubscribeFrom::Beginning,
    )
    .unwrap();
    db.put(b"k", b"v").unwrap();
    wait_for("the first attempt", || attempts.load(Ordering::SeqCst) == 1);
    // In its backoff now, which no clock can end: it neither fails nor retries (a panic
    // there, with its backtrace printed, took over 100 ms to show as a failure)...
    std::thread::sleep(Duration::from_secs(1));
    let stats = db.stats().unwrap().subscriptions;
    assert_eq!(stats.len(), 1);
    assert_ne!(
        stats[0].mode,
        SubscriptionMode::Failed,
        "{:?}",
        stats[0].failure
    );
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
    // ... and stops at once when asked.
    db.unsubscribe("patient").unwrap();
    assert!(db.stats().unwrap().subscriptions.is_empty());
    db.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_or_subscription_after_the_last_possible_id_stays_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(config(dir.path())).unwrap();
    let adb = db.to_async();
    let (seen, handler) = recorder();
    db.subscribe("far", handler, SubscribeFrom::After(EventId::MAX))
        .unwrap();
    let mut stream = adb.events_from(EventId::MAX).await.unwrap();
    adb.put(b"k".to_vec(), b"v".to_vec()).await.unwrap();
    // Nothing comes after the last id there is, and nothing fails or ends either.
    let next = tokio::time::timeout(Duration::from_millis(500), stream.next()).await;
    assert!(next.is_err(), "the stream yielded or ended: {next:?}");
    let mode = |db: &Database| db.stats().unwrap().subscriptions[0].mode;
    wait_for("the subscription to go live", || {
        mode(&db) != SubscriptionMode::CatchUp
    });
    let stats = db.stats().unwrap().subscriptions;
    assert_eq!(
        stats[0].mode,
        SubscriptionMode::Live,
        "{:?}",
        stats[0].failure
    );
    assert!(seen.lock().unwrap().is_empty());
    adb.close().await.unwrap();
    assert!(stream.next().await.is_none());
}

/// The event streams registered as retention holders.
fn stream_holds(db: &Database) -> Vec<String> {
    db.stats()
        .unwrap()
        .retention
        .holds
        .into_iter()
        .filter_map(|h| match h.holder {
            azoth_projector::RetentionHolder::Stream(name) => Some(name),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_stream_ends_its_reader_with_no_new_event() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(config(dir.path())).unwrap();
    let adb = db.to_async();
    for i in 0..5u8 {
        adb.put(vec![i], b"v".to_vec()).await.unwrap();
    }
    let mut stream = adb.events_from(0).await.unwrap();
    for expected in 1..=5 {
        assert_eq!(stream.next().await.unwrap().0, expected);
    }
    assert_eq!(stream_holds(&db).len(), 1);
    drop(stream);
    // No event is committed after the drop: the reader must notice on its own.
    wait_for("the dropped stream's reader to end", || {
        stream_holds(&db).is_empty()
    });
    db.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_and_named_subscriptions_never_share_a_name() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(config(dir.path())).unwrap();
    let adb = db.to_async();
    for n in 0..4 {
        db.subscribe(
            &format!("stream-{n}"),
            |_: &DatabaseEvent| Ok(()),
            SubscribeFrom::Now,
        )
        .unwrap();
    }
    // An application's own subscription names do not keep a stream from starting...
    let mut stream = adb.events_from(0).await.unwrap();
    let names = stream_holds(&db);
    assert_eq!(names.len(), 1);
    // ... and unsubscribing by name stops a named subscription, never a stream.
    assert!(db.unsubscribe(&names[0]).is_err());
    for n in 0..4 {
        db.unsubscribe(&format!("stream-{n}")).unwrap();
    }
    adb.put(b"k".to_vec(), b"v".to_vec()).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(30), stream.next()).await;
    assert_eq!(next.unwrap().map(|(id, _)| id), Some(1));
    adb.close().await.unwrap();
}
