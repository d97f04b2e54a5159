//! Opening the data directory: which log backend it holds, the writer for write commands, and
//! the handle read commands use.
//!
//! Only `init`, and `import` into a directory that does not exist or is empty, create a
//! database here (`restore` copies a backup in without opening one). Every other command
//! refuses a directory that holds none, so that a mistyped path is an error rather than a new,
//! empty database.
//!
//! The backend named by `--backend` applies when a database is created. An existing
//! directory's backend is read from disk: the LMDB log keeps its environment in
//! `<dir>/log/env/data.mdb`, the file log keeps `.seg` / `.azarc` files in `<dir>/log` and
//! never an `env` directory.

use std::path::{Path, PathBuf};

use azoth::{Config, Database, LogBackend, ReadOnlyDatabase, VerifyProgress};

use crate::args::{Backend, Cli};
use crate::error::{CliError, CliResult};

/// Where the command works and how a new directory is created.
#[derive(Debug, Clone)]
pub struct Target {
    /// The data directory as the user named it (messages show it this way).
    pub dir: PathBuf,
    /// `--backend`, if given.
    pub backend: Option<Backend>,
    /// Open a view built with the application's projections without them, and let its
    /// application events go unprojected (`rebuild --allow-app-events`).
    pub allow_missing_projections: bool,
}

impl Target {
    /// The target the global options name.
    pub fn from_cli(cli: &Cli) -> Self {
        Self {
            dir: cli.data_dir.clone(),
            backend: cli.backend,
            allow_missing_projections: false,
        }
    }

    /// This target, allowing (or not) an open without the view's projections.
    pub fn allowing_missing_projections(&self, allow: bool) -> Self {
        Self {
            allow_missing_projections: allow,
            ..self.clone()
        }
    }

    /// True when the directory holds a database (a log directory).
    fn holds_database(&self) -> CliResult<bool> {
        check_is_directory(&self.dir)?;
        let log = self.dir.join("log");
        match std::fs::metadata(&log) {
            Ok(meta) => Ok(meta.is_dir()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            // Permission denied and the like: say so rather than "no database".
            Err(e) => Err(CliError::io(format!("reading {}", log.display()), e)),
        }
    }

    /// The backend to open with: detected for an existing database, else `--backend` (file by
    /// default). `--backend` naming another backend than the one on disk is an error.
    fn backend(&self) -> CliResult<LogBackend> {
        let detected = detect_backend(&self.dir);
        match (detected, self.backend) {
            (Some(found), Some(asked)) if found != to_log_backend(asked) => {
                Err(CliError::Input(format!(
                    "{} holds a {} log; --backend applies only when a directory is created",
                    self.dir.display(),
                    backend_name(found)
                )))
            }
            (Some(found), _) => Ok(found),
            (None, Some(asked)) => Ok(to_log_backend(asked)),
            (None, None) => Ok(LogBackend::File),
        }
    }

    fn config(&self) -> CliResult<Config> {
        Ok(Config::new(&self.dir)
            .log_backend(self.backend()?)
            .allow_missing_projections(self.allow_missing_projections))
    }

    /// Opens the existing database for a write command.
    ///
    /// # Errors
    /// [`CliError::NoDatabase`] when the directory holds none (nothing is created: a mistyped
    /// `-d` must not get a new database), [`CliError::Locked`] when another process holds it.
    pub fn open_writer(&self) -> CliResult<Database> {
        if !self.holds_database()? {
            return Err(CliError::NoDatabase {
                dir: self.dir.clone(),
            });
        }
        let config = self.config()?;
        // A held directory is reported as locked, whatever its tail holds.
        drop(azoth::DirLock::acquire(&self.dir).map_err(|e| {
            CliError::azoth(format!("opening {}", self.dir.display()), &self.dir, e)
        })?);
        self.check_tail_has_no_app_events()?;
        tracing::debug!(dir = %self.dir.display(), "opening the database for writing");
        self.open(config)
    }

    /// Creates a database (`init`), with the backend `--backend` names, in a directory that
    /// holds none; the directory is created if it does not exist.
    ///
    /// # Errors
    /// [`CliError::Input`] when the directory already holds a database.
    pub fn create(&self) -> CliResult<Database> {
        if self.holds_database()? {
            return Err(CliError::Input(format!(
                "{} already holds an Azoth database",
                self.dir.display()
            )));
        }
        let config = self.config()?;
        tracing::debug!(dir = %self.dir.display(), "creating a database");
        self.open(config)
    }

    /// Opens the database for `import`: an existing one, or a new one when the directory does
    /// not exist or is empty. A directory with other files in it is refused, as by
    /// [`open_writer`](Self::open_writer): it is more likely a wrong path than a place for a
    /// new database.
    pub fn open_or_create_if_fresh(&self) -> CliResult<Database> {
        if self.is_fresh()? {
            self.create()
        } else {
            self.open_writer()
        }
    }

    /// True when the directory does not exist or is empty.
    fn is_fresh(&self) -> CliResult<bool> {
        check_is_directory(&self.dir)?;
        match std::fs::read_dir(&self.dir) {
            Ok(mut entries) => Ok(entries.next().is_none()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(CliError::io(format!("reading {}", self.dir.display()), e)),
        }
    }

    fn open(&self, config: Config) -> CliResult<Database> {
        Database::open_with(config)
            .map_err(|e| CliError::azoth(format!("opening {}", self.dir.display()), &self.dir, e))
    }

    /// Refuses to open a database whose log has application events after the view's
    /// checkpoint. Opening replays that tail into the view and closing flushes it; the
    /// command has none of the application's projections, so the keys they derive from those
    /// events would be missing from the view for good.
    fn check_tail_has_no_app_events(&self) -> CliResult {
        let failed = |e| CliError::azoth(format!("opening {}", self.dir.display()), &self.dir, e);
        // Dropped before the writer opens: in one process LMDB environments are shared.
        let reader = ReadOnlyDatabase::open(&self.dir).map_err(failed)?;
        let checkpoint = reader.stats().map_err(failed)?.store.checkpoint;
        for item in reader.events_since(checkpoint).map_err(failed)? {
            let (id, event) = item.map_err(failed)?;
            if matches!(event, azoth::DatabaseEvent::AppEvent { .. }) {
                return Err(CliError::Input(format!(
                    "{} has application events that its view has not stored yet (the first is \
                     event {id}); their effect on the view comes from the application's \
                     projections, which this command does not have. Open and close the \
                     database with the application first, then retry",
                    self.dir.display()
                )));
            }
        }
        Ok(())
    }

    /// Opens an existing database for a read command, read-only: no lock is taken and
    /// nothing is written, so it works beside a running application and never keeps one from
    /// opening its directory.
    ///
    /// # Errors
    /// [`CliError::NoDatabase`] when the directory holds none.
    pub fn open_reader(&self) -> CliResult<Handle> {
        if !self.holds_database()? {
            return Err(CliError::NoDatabase {
                dir: self.dir.clone(),
            });
        }
        // Checks that --backend agrees with the directory.
        self.backend()?;
        tracing::debug!(dir = %self.dir.display(), "opening the database read-only");
        ReadOnlyDatabase::open(&self.dir)
            .map(Handle::Reader)
            .map_err(|e| CliError::azoth(format!("opening {}", self.dir.display()), &self.dir, e))
    }

    /// Opens the database for an interactive session: exclusively when possible, read-only
    /// when another process holds it (write commands then fail with
    /// [`CliError::Locked`]).
    pub fn open_session(&self) -> CliResult<Handle> {
        match self.open_writer() {
            Ok(db) => Ok(Handle::Writer(db)),
            Err(CliError::Locked { .. }) => self.open_reader(),
            Err(e) => Err(e),
        }
    }
}

/// `dir` must be a directory or not exist yet.
fn check_is_directory(dir: &Path) -> CliResult<()> {
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => Err(CliError::Input(format!(
            "{} is not a directory",
            dir.display()
        ))),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CliError::io(format!("reading {}", dir.display()), e)),
    }
}

/// The backend of the log in `dir`, or `None` when there is no log yet.
pub fn detect_backend(dir: &Path) -> Option<LogBackend> {
    let log = dir.join("log");
    if !log.is_dir() {
        return None;
    }
    if log.join("env").join("data.mdb").exists() {
        Some(LogBackend::Lmdb)
    } else {
        Some(LogBackend::File)
    }
}

fn to_log_backend(backend: Backend) -> LogBackend {
    match backend {
        Backend::File => LogBackend::File,
        Backend::Lmdb => LogBackend::Lmdb,
    }
}

/// The backend's name as `--backend` spells it.
pub fn backend_name(backend: LogBackend) -> &'static str {
    match backend {
        LogBackend::Lmdb => "lmdb",
        _ => "file",
    }
}

/// Live entries, lazily, in key order.
pub type EntryIter = Box<dyn Iterator<Item = azoth::Result<azoth::Entry>>>;
/// Events with their ids, lazily, in log order.
pub type EventIter =
    Box<dyn Iterator<Item = azoth::Result<(azoth::EventId, azoth::DatabaseEvent)>>>;

/// What read commands read through: the database itself, or a read-only open of a directory
/// another process holds.
pub enum Handle {
    /// An exclusive open.
    Writer(Database),
    /// A read-only open: no lock, follows a writer in another process.
    Reader(ReadOnlyDatabase),
}

impl Handle {
    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> azoth::Result<Option<Vec<u8>>> {
        match self {
            Handle::Writer(db) => db.get(key),
            Handle::Reader(db) => db.get(key),
        }
    }

    /// Whether `key` exists.
    pub fn exists(&self, key: &[u8]) -> azoth::Result<bool> {
        match self {
            Handle::Writer(db) => db.exists(key),
            Handle::Reader(db) => db.exists(key),
        }
    }

    /// Live entries in `[start, end)`, lazily.
    pub fn range(&self, start: Option<&[u8]>, end: Option<&[u8]>) -> azoth::Result<EntryIter> {
        match self {
            Handle::Writer(db) => Ok(Box::new(db.range(start, end)?)),
            Handle::Reader(db) => Ok(Box::new(db.range(start, end)?)),
        }
    }

    /// The events after `after`, lazily.
    pub fn events_since(&self, after: azoth::EventId) -> azoth::Result<EventIter> {
        match self {
            Handle::Writer(db) => Ok(Box::new(db.events_since(after)?)),
            Handle::Reader(db) => Ok(Box::new(db.events_since(after)?)),
        }
    }

    /// Statistics.
    pub fn stats(&self) -> azoth::Result<azoth::DatabaseStats> {
        match self {
            Handle::Writer(db) => db.stats(),
            Handle::Reader(db) => db.stats(),
        }
    }

    /// Integrity check of the log, calling `progress` after each unit checked.
    pub fn verify(
        &self,
        progress: impl FnMut(VerifyProgress),
    ) -> azoth::Result<azoth::VerifyReport> {
        match self {
            Handle::Writer(db) => db.verify_with_progress(progress),
            Handle::Reader(db) => db.verify_with_progress(progress),
        }
    }

    /// Catches up with what another process wrote since the open or the last call (the
    /// read-only open: its view is a snapshot); nothing to do for an exclusive open.
    pub fn refresh(&self) -> azoth::Result<u64> {
        match self {
            Handle::Writer(_) => Ok(0),
            Handle::Reader(db) => db.refresh(),
        }
    }

    /// The writer, for write commands in the REPL.
    pub fn writer(&self, dir: &Path) -> CliResult<&Database> {
        match self {
            Handle::Writer(db) => Ok(db),
            Handle::Reader(_) => Err(CliError::Locked {
                dir: dir.to_path_buf(),
            }),
        }
    }

    /// Closes the handle (the writer flushes; the read-only open has nothing to do).
    pub fn close(&self) -> azoth::Result<()> {
        match self {
            Handle::Writer(db) => db.close(),
            Handle::Reader(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_is_detected_from_the_log_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(detect_backend(dir.path()), None);
        std::fs::create_dir(dir.path().join("log")).unwrap();
        assert_eq!(detect_backend(dir.path()), Some(LogBackend::File));
        std::fs::create_dir(dir.path().join("log/env")).unwrap();
        std::fs::write(dir.path().join("log/env/data.mdb"), b"").unwrap();
        assert_eq!(detect_backend(dir.path()), Some(LogBackend::Lmdb));
    }
}
