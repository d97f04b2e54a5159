//! The conformance suites run against the in-memory reference implementations.

azoth_core::event_log_conformance_tests!(
    memory_log,
    |_dir: &std::path::Path| Ok::<_, azoth_core::AzothError>(azoth_core::MemoryEventLog::new()),
    volatile
);

azoth_core::canonical_store_conformance_tests!(
    memory_store,
    |_dir: &std::path::Path| Ok::<_, azoth_core::AzothError>(azoth_core::MemoryStore::new()),
    volatile
);
