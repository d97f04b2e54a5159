//! The store conformance suite can fail: run its bodies against deliberately broken stores and
//! check that they panic.

use std::panic::{AssertUnwindSafe, catch_unwind};

use azoth_core::testing::{Harness, store};
use azoth_core::{
    AzothError, CanonicalStore, EventId, MemoryStore, Result, StoreBatch, StoreIter, StoreStats,
    VersionedValue,
};

/// A store whose `range` ignores its end bound.
#[derive(Default)]
struct IgnoresEnd(MemoryStore);

/// A store that keeps the first checkpoint it is given and ignores later ones.
#[derive(Default)]
struct KeepsFirstCheckpoint(MemoryStore);

trait Broken {
    fn inner(&self) -> &MemoryStore;
    fn end<'a>(&self, end: Option<&'a [u8]>) -> Option<&'a [u8]> {
        end
    }
    fn batch(&self, batch: &StoreBatch) -> Result<()> {
        self.inner().apply(batch)
    }
}

impl Broken for IgnoresEnd {
    fn inner(&self) -> &MemoryStore {
        &self.0
    }
    fn end<'a>(&self, _end: Option<&'a [u8]>) -> Option<&'a [u8]> {
        None
    }
}

impl Broken for KeepsFirstCheckpoint {
    fn inner(&self) -> &MemoryStore {
        &self.0
    }
    fn batch(&self, batch: &StoreBatch) -> Result<()> {
        let mut batch = batch.clone();
        if self.0.checkpoint()? != 0 {
            batch.checkpoint = None;
        }
        self.0.apply(&batch)
    }
}

/// Forwards the trait to the broken behaviour of a [`Broken`] store.
macro_rules! broken_store {
    ($ty:ty) => {
        impl CanonicalStore for $ty {
            fn get(&self, key: &[u8]) -> Result<Option<VersionedValue>> {
                self.inner().get(key)
            }
            fn range(&self, start: Option<&[u8]>, end: Option<&[u8]>) -> Result<StoreIter> {
                self.inner().range(start, self.end(end))
            }
            fn apply(&self, batch: &StoreBatch) -> Result<()> {
                self.batch(batch)
            }
            fn checkpoint(&self) -> Result<EventId> {
                self.inner().checkpoint()
            }
            fn get_metadata(&self, name: &str) -> Result<Option<Vec<u8>>> {
                self.inner().get_metadata(name)
            }
            fn list_metadata(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
                self.inner().list_metadata(prefix)
            }
            fn sync(&self) -> Result<()> {
                self.inner().sync()
            }
            fn stats(&self) -> Result<StoreStats> {
                self.inner().stats()
            }
            fn compact(&self) -> Result<u64> {
                self.inner().compact()
            }
        }
    };
}

broken_store!(IgnoresEnd);
broken_store!(KeepsFirstCheckpoint);

fn fails<S: CanonicalStore + Default + 'static>(body: fn(&Harness<S>)) -> bool {
    let harness = Harness::new(|_| Ok::<_, AzothError>(S::default()), true);
    catch_unwind(AssertUnwindSafe(|| body(&harness))).is_err()
}

#[test]
fn the_suite_catches_a_range_past_its_end() {
    assert!(fails::<IgnoresEnd>(store::range_order_and_bounds));
    assert!(fails::<IgnoresEnd>(store::scan_prefix_bounds));
    assert!(!fails::<IgnoresEnd>(store::versioned_get));
}

#[test]
fn the_suite_catches_a_lost_checkpoint() {
    assert!(fails::<KeepsFirstCheckpoint>(
        store::apply_is_atomic_with_checkpoint
    ));
    assert!(fails::<KeepsFirstCheckpoint>(
        store::concurrent_readers_see_whole_applies
    ));
}

#[test]
fn the_suite_passes_the_reference_store() {
    assert!(!fails::<MemoryStore>(store::range_order_and_bounds));
    assert!(!fails::<MemoryStore>(
        store::apply_is_atomic_with_checkpoint
    ));
}
