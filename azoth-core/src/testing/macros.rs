//! The macros that instantiate the conformance suites for one backend.

/// Expands to `mod $name { … }` holding one `#[test]` per rule of the
/// [`EventLog`](crate::EventLog) contract (the bodies of [`testing::event_log`](crate::testing::event_log)).
///
/// `$open` is a closure `|dir: &std::path::Path| -> Result<L, AzothError>` opening the log in
/// `dir`; every test gets a fresh temporary directory, and the reopen checks drop the log and
/// call `$open` again on the same directory. Add `, volatile` for a backend that keeps nothing
/// across reopening (the reopen checks then keep using the same handle).
///
/// ```ignore
/// azoth_core::event_log_conformance_tests!(file_log, |dir: &std::path::Path| {
///     azoth_file::FileEventLog::open(dir)
/// });
/// ```
#[macro_export]
macro_rules! event_log_conformance_tests {
    ($name:ident, $open:expr, volatile) => {
        $crate::event_log_conformance_tests!(@expand $name, $open, true);
    };
    ($name:ident, $open:expr) => {
        $crate::event_log_conformance_tests!(@expand $name, $open, false);
    };
    (@expand $name:ident, $open:expr, $volatile:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $crate::event_log_conformance_tests!(@tests $open, $volatile;
                empty_log,
                ids_dense_from_one,
                wrong_id_refused,
                batch_atomicity,
                iter_range_bounds,
                get_missing_and_deleted,
                rotate_and_read_across,
                delete_range_semantics,
                iter_range_beside_delete_range,
                stats_consistent,
                reopen_keeps_synced,
                large_and_empty_events,
                concurrent_readers_see_whole_batches,
                edge_cases,
                model,
            );
        }
    };
    (@tests $open:expr, $volatile:expr; $($test:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                let harness = $crate::testing::Harness::new($open, $volatile);
                $crate::testing::event_log::$test(&harness);
            }
        )*
    };
}

/// Expands to `mod $name { … }` holding one `#[test]` per rule of the
/// [`CanonicalStore`](crate::CanonicalStore) contract (the bodies of
/// [`testing::store`](crate::testing::store)).
///
/// `$open` is a closure `|dir: &std::path::Path| -> Result<S, AzothError>`; `, volatile` as
/// for [`event_log_conformance_tests!`](crate::event_log_conformance_tests).
///
/// ```ignore
/// azoth_core::canonical_store_conformance_tests!(lmdb_store, |dir: &std::path::Path| {
///     azoth_lmdb::LmdbStore::open(dir)
/// });
/// ```
#[macro_export]
macro_rules! canonical_store_conformance_tests {
    ($name:ident, $open:expr, volatile) => {
        $crate::canonical_store_conformance_tests!(@expand $name, $open, true);
    };
    ($name:ident, $open:expr) => {
        $crate::canonical_store_conformance_tests!(@expand $name, $open, false);
    };
    (@expand $name:ident, $open:expr, $volatile:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $crate::canonical_store_conformance_tests!(@tests $open, $volatile;
                empty_store,
                versioned_get,
                range_order_and_bounds,
                scan_prefix_bounds,
                apply_is_atomic_with_checkpoint,
                apply_sorted_equals_apply,
                apply_sorted_after_commits_only_past_before_commit,
                concurrent_readers_see_whole_applies,
                metadata,
                snapshot_iterators,
                reopen_persists,
                large_values,
                stats,
            );
        }
    };
    (@tests $open:expr, $volatile:expr; $($test:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                let harness = $crate::testing::Harness::new($open, $volatile);
                $crate::testing::store::$test(&harness);
            }
        )*
    };
}
