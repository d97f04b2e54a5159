//! The shared `EventLog` conformance suite of `azoth-core`, run against the file log.

azoth_core::event_log_conformance_tests!(file_log, |dir: &std::path::Path| {
    azoth_file::FileEventLog::open(dir)
});

// The suite models units as made by `rotate()` only, so automatic rotation (a small
// segment size) would change what `delete_range` frees; the interval sync thread, though,
// must change nothing.
azoth_core::event_log_conformance_tests!(file_log_interval_sync, |dir: &std::path::Path| {
    azoth_file::FileLogOptions::default()
        .sync_mode(azoth_core::SyncMode::IntervalMs(5))
        .open(dir)
});

// Blocks gathered in memory (`write_buffer`) must be invisible to every reader of the trait:
// the suite runs with a buffer small enough to fill now and then, under both modes that use it.
azoth_core::event_log_conformance_tests!(file_log_write_buffer, |dir: &std::path::Path| {
    azoth_file::FileLogOptions::default()
        .sync_mode(azoth_core::SyncMode::Never)
        .write_buffer(4096)
        .open(dir)
});

azoth_core::event_log_conformance_tests!(
    file_log_write_buffer_interval_sync,
    |dir: &std::path::Path| {
        azoth_file::FileLogOptions::default()
            .sync_mode(azoth_core::SyncMode::IntervalMs(5))
            .write_buffer(64 * 1024)
            .open(dir)
    }
);
