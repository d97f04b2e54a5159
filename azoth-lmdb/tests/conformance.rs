//! The shared conformance suites of `azoth-core`, run against the LMDB backends.

azoth_core::event_log_conformance_tests!(lmdb_log, |dir: &std::path::Path| {
    azoth_lmdb::LmdbEventLog::open(dir)
});

azoth_core::canonical_store_conformance_tests!(lmdb_store, |dir: &std::path::Path| {
    azoth_lmdb::LmdbStore::open(dir)
});
