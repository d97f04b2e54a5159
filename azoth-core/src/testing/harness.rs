//! [`Harness`]: a fresh directory and the backend's open function, for one test.

use std::path::Path;
use std::rc::Rc;

use crate::error::Result;

type OpenFn<T> = Rc<dyn Fn(&Path) -> Result<T>>;

/// What one conformance test needs: a fresh temporary directory, a way to open the backend in
/// it (again), and whether the backend keeps anything across reopening.
pub struct Harness<T> {
    dir: tempfile::TempDir,
    open: OpenFn<T>,
    volatile: bool,
}

impl<T> Harness<T> {
    /// A harness over a new temporary directory; `volatile` backends skip reopen checks.
    ///
    /// # Panics
    /// If the temporary directory cannot be created: this is test code.
    pub fn new(open: impl Fn(&Path) -> Result<T> + 'static, volatile: bool) -> Self {
        Self {
            dir: tempfile::tempdir().expect("create a temporary directory"),
            open: Rc::new(open),
            volatile,
        }
    }

    /// Another harness over a new temporary directory with the same backend, for a test that
    /// runs many independent cases.
    ///
    /// # Panics
    /// If the temporary directory cannot be created.
    pub fn fresh(&self) -> Self {
        Self {
            dir: tempfile::tempdir().expect("create a temporary directory"),
            open: Rc::clone(&self.open),
            volatile: self.volatile,
        }
    }

    /// The test's directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// True when the backend keeps nothing across reopening.
    pub fn is_volatile(&self) -> bool {
        self.volatile
    }

    /// Opens the backend in the test's directory.
    ///
    /// # Panics
    /// If opening fails.
    pub fn open(&self) -> T {
        match (self.open)(self.dir.path()) {
            Ok(backend) => backend,
            Err(e) => panic!(
                "opening the backend in {} failed: {e}",
                self.dir().display()
            ),
        }
    }

    /// Drops `backend` and opens it again on the same directory; a volatile backend is
    /// handed back as it is, so the checks after a reopen still run against it.
    ///
    /// # Panics
    /// If opening fails.
    pub fn reopen(&self, backend: T) -> T {
        if self.volatile {
            return backend;
        }
        drop(backend);
        self.open()
    }
}
