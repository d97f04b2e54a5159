//! [`AsyncDatabase`]: the database with async methods, for tokio programs.

use std::path::{Path, PathBuf};

use azoth_core::{
    AzothError, DatabaseEvent, DatabaseResult, Entry, EventId, Key, Operation, OperationId, Value,
    VerifyProgress, VerifyReport,
};

use crate::backup::{BackupOptions, BackupReport, RestoreReport};
use crate::config::Config;
use crate::database::Database;
use crate::lifecycle::{ArchiveBoundary, CompactionReport};
use crate::retention::RetentionReport;
use crate::stats::DatabaseStats;
use crate::validation::{check_key, check_operation, check_value};
use crate::view_check::ViewVerifyReport;
use crate::writer::Draft;

/// The same database as [`Database`], with async methods.
///
/// Writes (`put`, `delete`, `batch_put`, `batch_delete`, `append_event`) hand their request
/// to the writer's group-commit queue, the one blocking callers use, and await its outcome:
/// the database's writer thread leads the group, so a runtime thread never waits for an
/// fsync, and concurrent async writers share syncs like threads do. Other calls that may
/// wait for a sync (flush, compact, close, transactions) or scan a range run on tokio's
/// blocking pool (`spawn_blocking`). Point reads without read auditing are answered on the
/// calling task: they touch only memory and the store's memory map.
///
/// The methods must be called within a tokio runtime.
#[derive(Clone, Debug)]
pub struct AsyncDatabase {
    db: Database,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> DatabaseResult<T> + Send + 'static,
) -> DatabaseResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        AzothError::Io(std::io::Error::other(format!(
            "a database task failed: {e}"
        )))
    })?
}

impl AsyncDatabase {
    pub(crate) fn from_database(db: Database) -> Self {
        Self { db }
    }

    /// Opens the database in `dir` with the defaults, as [`Database::open`].
    ///
    /// # Errors
    /// As [`Database::open`].
    pub async fn open(dir: impl AsRef<Path>) -> DatabaseResult<Self> {
        Self::open_with(Config::new(dir)).await
    }

    /// Opens the database `config` describes, as [`Database::open_with`].
    ///
    /// # Errors
    /// As [`Database::open_with`].
    pub async fn open_with(config: Config) -> DatabaseResult<Self> {
        let db = blocking(move || Database::open_with(config)).await?;
        Ok(Self { db })
    }

    /// Writes a consistent backup into `dest` while writes go on, as [`Database::backup`],
    /// on the blocking pool.
    ///
    /// # Errors
    /// As [`Database::backup`].
    pub async fn backup(&self, dest: impl AsRef<Path>) -> DatabaseResult<BackupReport> {
        self.backup_with(dest, BackupOptions::default()).await
    }

    /// As [`Database::backup_with`], on the blocking pool.
    ///
    /// # Errors
    /// As [`Database::backup_with`].
    pub async fn backup_with(
        &self,
        dest: impl AsRef<Path>,
        options: BackupOptions,
    ) -> DatabaseResult<BackupReport> {
        let (db, dest) = (self.db.clone(), dest.as_ref().to_path_buf());
        blocking(move || db.backup_with(&dest, options)).await
    }

    /// Restores the backup in `backup` into the data directory `dir`, as
    /// [`Database::restore`], on the blocking pool.
    ///
    /// # Errors
    /// As [`Database::restore`].
    pub async fn restore(
        backup: impl AsRef<Path>,
        dir: impl AsRef<Path>,
    ) -> DatabaseResult<RestoreReport> {
        let (backup, dir) = (backup.as_ref().to_path_buf(), dir.as_ref().to_path_buf());
        blocking(move || Database::restore(&backup, &dir)).await
    }

    /// The blocking handle of the same database.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Sets `key` to `value`, as [`Database::put`].
    ///
    /// # Errors
    /// As [`Database::put`].
    pub async fn put(&self, key: Key, value: Value) -> DatabaseResult<OperationId> {
        check_key(&key)?;
        check_value(&value, self.db.config().max_value_len)?;
        self.one(Draft::Write(Operation::Put { key, value })).await
    }

    /// Hands `drafts` to the writer as one atomic request and awaits their ids.
    async fn write(&self, drafts: Vec<Draft>) -> DatabaseResult<Vec<OperationId>> {
        Ok(self
            .db
            .core_arc()
            .clone()
            .write_task(drafts)
            .await?
            .to_vec())
    }

    async fn one(&self, draft: Draft) -> DatabaseResult<OperationId> {
        self.db
            .core_arc()
            .clone()
            .write_task(vec![draft])
            .await?
            .first()
            .ok_or_else(|| AzothError::Config("a write returned no id".into()))
    }

    /// Removes `key`, as [`Database::delete`].
    ///
    /// # Errors
    /// As [`Database::delete`].
    pub async fn delete(&self, key: Key) -> DatabaseResult<OperationId> {
        check_key(&key)?;
        self.one(Draft::Write(Operation::Delete { key })).await
    }

    /// Puts every `(key, value)` atomically, as [`Database::batch`].
    ///
    /// # Errors
    /// As [`Database::batch`].
    pub async fn batch_put(
        &self,
        operations: Vec<(Key, Value)>,
    ) -> DatabaseResult<Vec<OperationId>> {
        let ops = operations
            .into_iter()
            .map(|(key, value)| Operation::Put { key, value })
            .collect();
        self.batch(ops).await
    }

    /// Checks every operation, then writes them as one request, as [`Database::batch`].
    async fn batch(&self, ops: Vec<Operation>) -> DatabaseResult<Vec<OperationId>> {
        let max = self.db.config().max_value_len;
        for op in &ops {
            check_operation(op, max)?;
        }
        if ops.is_empty() {
            self.db.core_arc().check_open()?;
            return Ok(Vec::new());
        }
        self.write(ops.into_iter().map(Draft::Write).collect())
            .await
    }

    /// Deletes every key atomically, as [`Database::batch`].
    ///
    /// # Errors
    /// As [`Database::batch`].
    pub async fn batch_delete(&self, keys: Vec<Key>) -> DatabaseResult<Vec<OperationId>> {
        let ops = keys
            .into_iter()
            .map(|key| Operation::Delete { key })
            .collect();
        self.batch(ops).await
    }

    /// Runs `f` in a transaction and commits it, re-running it on conflict, as
    /// [`Database::transact`]. The closure runs on tokio's blocking pool, so its reads and
    /// the commit's sync never block a runtime thread.
    ///
    /// # Errors
    /// As [`Database::transact`].
    pub async fn transact<T, F>(&self, f: F) -> DatabaseResult<T>
    where
        T: Send + 'static,
        F: FnMut(&mut crate::Transaction) -> DatabaseResult<T> + Send + 'static,
    {
        let db = self.db.clone();
        blocking(move || db.transact(f)).await
    }

    /// Appends an application event, as [`Database::append_event`].
    ///
    /// # Errors
    /// As [`Database::append_event`].
    pub async fn append_event(
        &self,
        kind: String,
        payload: Vec<u8>,
    ) -> DatabaseResult<OperationId> {
        self.one(Draft::App { kind, payload }).await
    }

    /// The live entry of `key`, as [`Database::get_entry`].
    ///
    /// # Errors
    /// As [`Database::get_entry`].
    pub async fn get(&self, key: &Key) -> DatabaseResult<Option<Entry>> {
        if self.db.config().read_auditing {
            let db = self.db.clone();
            let key = key.clone();
            return blocking(move || db.get_entry(&key)).await;
        }
        self.db.get_entry(key)
    }

    /// The live entries in `[start_key, end_key)`, as [`Database::scan`].
    ///
    /// # Errors
    /// As [`Database::scan`].
    pub async fn scan(
        &self,
        start_key: Option<Key>,
        end_key: Option<Key>,
    ) -> DatabaseResult<Vec<Entry>> {
        let db = self.db.clone();
        blocking(move || db.scan(start_key.as_deref(), end_key.as_deref())).await
    }

    /// Moves the memtable into the store, as [`Database::flush`].
    ///
    /// # Errors
    /// As [`Database::flush`].
    pub async fn flush(&self) -> DatabaseResult<()> {
        let db = self.db.clone();
        blocking(move || db.flush()).await
    }

    /// Compacts, as [`Database::compact`] (flush, view store compaction, retention, a
    /// `CompactionEvent`); [`compact_with_report`](Self::compact_with_report) returns what
    /// it did.
    ///
    /// # Errors
    /// As [`Database::compact`].
    pub async fn compact(&self) -> DatabaseResult<()> {
        self.compact_with_report().await.map(|_| ())
    }

    /// Compacts, as [`Database::compact`], and returns its report.
    ///
    /// # Errors
    /// As [`Database::compact`].
    pub async fn compact_with_report(&self) -> DatabaseResult<CompactionReport> {
        let db = self.db.clone();
        blocking(move || db.compact()).await
    }

    /// Seals the active log unit, as [`Database::rotate`].
    ///
    /// # Errors
    /// As [`Database::rotate`].
    pub async fn rotate(&self) -> DatabaseResult<PathBuf> {
        let db = self.db.clone();
        blocking(move || db.rotate()).await
    }

    /// Archives the sealed units at or below `up_to`, as [`Database::archive`].
    ///
    /// # Errors
    /// As [`Database::archive`].
    pub async fn archive(&self, up_to: EventId) -> DatabaseResult<Vec<PathBuf>> {
        let db = self.db.clone();
        blocking(move || db.archive(up_to)).await
    }

    /// Archives the sealed units `boundary` selects, as [`Database::archive_by`].
    ///
    /// # Errors
    /// As [`Database::archive_by`].
    pub async fn archive_by(&self, boundary: ArchiveBoundary) -> DatabaseResult<Vec<PathBuf>> {
        let db = self.db.clone();
        blocking(move || db.archive_by(boundary)).await
    }

    /// Applies the retention policy, as [`Database::apply_retention`].
    ///
    /// # Errors
    /// As [`Database::apply_retention`].
    pub async fn apply_retention(&self) -> DatabaseResult<RetentionReport> {
        let db = self.db.clone();
        blocking(move || db.apply_retention()).await
    }

    /// Checks the log's integrity, as [`Database::verify`].
    ///
    /// # Errors
    /// As [`Database::verify`].
    pub async fn verify(&self) -> DatabaseResult<VerifyReport> {
        let db = self.db.clone();
        blocking(move || db.verify()).await
    }

    /// Checks the log's integrity, calling `progress` after each unit (on a blocking-pool
    /// thread), as [`Database::verify_with_progress`].
    ///
    /// # Errors
    /// As [`Database::verify_with_progress`].
    pub async fn verify_with_progress(
        &self,
        progress: impl FnMut(VerifyProgress) + Send + 'static,
    ) -> DatabaseResult<VerifyReport> {
        let db = self.db.clone();
        blocking(move || db.verify_with_progress(progress)).await
    }

    /// Checks that the view equals a replay of the log, as [`Database::verify_view`].
    ///
    /// # Errors
    /// As [`Database::verify_view`].
    pub async fn verify_view(&self) -> DatabaseResult<ViewVerifyReport> {
        let db = self.db.clone();
        blocking(move || db.verify_view()).await
    }

    /// Checks the view from a backup's view, as [`Database::verify_view_from_backup`].
    ///
    /// # Errors
    /// As [`Database::verify_view_from_backup`].
    pub async fn verify_view_from_backup(
        &self,
        backup: PathBuf,
    ) -> DatabaseResult<ViewVerifyReport> {
        let db = self.db.clone();
        blocking(move || db.verify_view_from_backup(backup)).await
    }

    /// Counts, sizes and latencies, as [`Database::stats`].
    ///
    /// # Errors
    /// As [`Database::stats`].
    pub async fn stats(&self) -> DatabaseResult<DatabaseStats> {
        let db = self.db.clone();
        blocking(move || db.stats()).await
    }

    /// Closes the database, as [`Database::close`].
    ///
    /// # Errors
    /// As [`Database::close`].
    pub async fn close(&self) -> DatabaseResult<()> {
        let db = self.db.clone();
        blocking(move || db.close()).await
    }

    /// Every event in the log, as [`Database::get_events`].
    ///
    /// # Errors
    /// As [`Database::get_events`].
    pub async fn get_events(&self) -> DatabaseResult<Vec<DatabaseEvent>> {
        let db = self.db.clone();
        blocking(move || db.get_events()).await
    }

    /// The events strictly after `operation_id`, as [`Database::get_events_since`].
    ///
    /// # Errors
    /// As [`Database::get_events_since`].
    pub async fn get_events_since(
        &self,
        operation_id: OperationId,
    ) -> DatabaseResult<Vec<DatabaseEvent>> {
        let db = self.db.clone();
        blocking(move || db.get_events_since(operation_id)).await
    }
}
