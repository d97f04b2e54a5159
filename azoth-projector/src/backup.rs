//! Online backup and restore: [`Database::backup`], [`Database::backup_with`],
//! [`Database::restore`], with [`BackupOptions`], [`BackupReport`] and [`RestoreReport`].
//!
//! # Why a backup is consistent while writes go on
//!
//! The log is the source of truth and the view is its replay up to a checkpoint, so a backup
//! needs a view at some checkpoint `C` and a log holding at least every event up to `C` (and
//! whatever after it, which the open replays). It is taken in this order:
//!
//! 1. Flush, so that `C` is recent and the restore's replay is short (not needed for
//!    correctness).
//! 2. Pin a snapshot of the view store ([`LmdbStoreSnapshot`]: one LMDB read transaction) and
//!    read its checkpoint `C`. The write-ahead rule says the log was durable up to `C` before
//!    the store said `C`.
//! 3. Copy the log, after the snapshot, so it holds at least `(…, C]`:
//!    - file log: `rotate()` seals the active segment (everything appended so far, so at
//!      least `C`); sealed segments, their indexes and archives never change, so they are
//!      copied as they are; the active segment (the highest) is copied as its header only: an
//!      empty active segment that continues the ids and the hash chain;
//!    - LMDB log: LMDB copies the environment from one read transaction
//!      ([`LmdbEventLog::copy_to`](azoth_lmdb::LmdbEventLog::copy_to)), then the archives.
//! 4. Check the copy's ends: it must hold every event after `C` from `C + 1` on. Retention may
//!    have removed segments between steps 2 and 3 (it follows the live checkpoint, which may
//!    have moved past `C`), and archival may have replaced a segment while it was copied;
//!    then the attempt is thrown away and the backup starts again from step 1 (a few times).
//! 5. Export the pinned view snapshot into a fresh LMDB store (`view/`), with its checkpoint
//!    `C` and its metadata (durable subscription positions). An export rather than a file
//!    copy because it reads exactly the pinned snapshot, whose checkpoint is known; it also
//!    compacts.
//! 6. Checksum every file (BLAKE3), compress it if asked (zstd, one `.zst` per file), and write
//!    the manifest last (`azoth-projector/FORMAT.md`).
//!
//! Writers are never stopped: they wait only for the rotation (one short lock, file log).
//!
//! # Why a crash never leaves a half backup that looks whole
//!
//! Everything is written into a hidden staging directory beside the destination
//! (`.<name>.partial-<pid>-<time>`), synced, and renamed to the destination at the very end;
//! the manifest is written last inside it. A crash leaves a staging directory (safe to delete)
//! and no destination. Restore works the same way (`.<name>.restoring-…`), and checks every
//! file's checksum, the log's ends and the log's own `verify()` before the rename, so a
//! damaged backup leaves nothing behind.
//!
//! # What is kept, and the limits
//!
//! Event ids, the hash chain and segment boundaries are kept, including a log whose oldest
//! event is above 1 after retention. The view is restored as `view/` whatever directory
//! `VIEW` named, and archives as the default archive location (`<dir>/log` for the file log,
//! `<dir>/log/archive` for LMDB) whatever `Config::archive_dir` said. Not included: the
//! application's projections (code, not data: open the restored directory
//! with the same `Config`). A `Database` opened with
//! [`open_with_backends`](Database::open_with_backends) has no directory to back up: `Config`.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use azoth_core::{
    AzothError, CanonicalStore, EventId, EventLog, Location, Result, StoreBatch, StoreWrite,
};
use azoth_file::file_name::{self, FileKind};
use azoth_file::format::SEGMENT_HEADER_LEN;
use azoth_lmdb::{LmdbStoreOptions, LmdbStoreSnapshot};

use crate::backend::{self, LogHandle};
use crate::backup_manifest::{FileEntry, MANIFEST_FILE, Manifest, manifest_path, under};
use crate::config::{LogBackend, StoreBackend};
use crate::database::Database;

/// Attempts at a consistent copy before the backup gives up (see step 4).
const ATTEMPTS: u32 = 5;
/// Entries per store transaction when the view is exported.
const EXPORT_BATCH: usize = 16 * 1024;
/// The buffer of streamed copies and checksums.
const BUFFER: usize = 1 << 20;
/// Files a backup leaves out: locks (LMDB's reader table and the directory locks) belong to
/// a running process, not to the data.
const NOT_DATA: [&str; 2] = ["LOCK", "lock.mdb"];
/// The file log's record of retention gaps (`azoth-file`'s `gaps.rs`).
const GAPS_FILE: &str = "GAPS";

/// How [`Database::backup_with`] writes a backup.
///
/// ```
/// use azoth_projector::BackupOptions;
///
/// let plain = BackupOptions::default();
/// assert_eq!(plain.compression(), None);
/// let small = BackupOptions::default().zstd(9);
/// assert_eq!(small.compression(), Some(9));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackupOptions {
    compression: Option<i32>,
}

impl BackupOptions {
    /// Compresses every file with zstd at `level` (1..=22; 3 is a good default).
    /// Default: no compression.
    pub fn zstd(mut self, level: i32) -> Self {
        self.compression = Some(level);
        self
    }

    /// Sets the zstd level, or `None` for no compression. Default: `None`.
    pub fn compression_level(mut self, level: Option<i32>) -> Self {
        self.compression = level;
        self
    }

    /// The zstd level, or `None` when files are stored as they are.
    pub fn compression(&self) -> Option<i32> {
        self.compression
    }
}

/// What [`Database::backup`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupReport {
    /// The backup directory.
    pub path: PathBuf,
    /// The log backend of the backup (restored as it was).
    pub log_backend: LogBackend,
    /// The view's checkpoint in the backup: the restore replays the log after it.
    pub checkpoint: EventId,
    /// The first event the backup's log holds.
    pub oldest_event_id: EventId,
    /// The last event the backup's log holds: the state a restore reaches (0: none).
    pub newest_event_id: EventId,
    /// Files in the backup, the manifest not counted.
    pub files: usize,
    /// Bytes of the files as restored.
    pub bytes: u64,
    /// Bytes of the files as stored (smaller than `bytes` when compressed).
    pub stored_bytes: u64,
    /// Whether the files are zstd-compressed.
    pub compressed: bool,
}

/// What [`Database::restore`] restored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RestoreReport {
    /// The restored data directory.
    pub dir: PathBuf,
    /// Its log backend: open it with `Config::new(dir).log_backend(report.log_backend)`.
    pub log_backend: LogBackend,
    /// The view's checkpoint.
    pub checkpoint: EventId,
    /// The first event of the restored log.
    pub oldest_event_id: EventId,
    /// The last event of the restored log.
    pub newest_event_id: EventId,
    /// Files restored.
    pub files: usize,
    /// Bytes restored.
    pub bytes: u64,
}

impl Database {
    /// Writes a consistent backup of this database into `dest` (which must not exist, or be
    /// an empty directory) while writes go on, uncompressed. See
    /// [`backup_with`](Self::backup_with).
    ///
    /// ```
    /// use azoth_projector::{Config, Database, SyncMode};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let db = Database::open_with(Config::new(dir.path().join("db")).sync_mode(SyncMode::Never))?;
    /// db.put(b"k", b"v")?;
    /// let backup = db.backup(dir.path().join("backup"))?;
    /// assert!(backup.newest_event_id >= 1);
    /// db.close()?;
    ///
    /// let restored = Database::restore(&backup.path, dir.path().join("restored"))?;
    /// let copy = Database::open_with(
    ///     Config::new(&restored.dir).log_backend(restored.log_backend).sync_mode(SyncMode::Never),
    /// )?;
    /// assert_eq!(copy.get(b"k")?.as_deref(), Some(&b"v"[..]));
    /// # Ok::<(), azoth_core::AzothError>(())
    /// ```
    ///
    /// # Errors
    /// As [`backup_with`](Self::backup_with).
    pub fn backup(&self, dest: impl AsRef<Path>) -> Result<BackupReport> {
        self.backup_with(dest, BackupOptions::default())
    }

    /// Writes a consistent backup of this database into `dest`: the view at a checkpoint and
    /// the log holding at least every event up to it, with a manifest of checksums. Writers go
    /// on meanwhile; the backup holds every write acknowledged before the call, and a restore
    /// reaches the state of the log's prefix up to [`BackupReport::newest_event_id`].
    ///
    /// `dest` appears only when the backup is complete (it is written beside it and renamed).
    /// The design is described in `backup.rs`; the format in `azoth-projector/FORMAT.md`.
    ///
    /// # Errors
    /// `Config` if `dest` is not empty or the database has no directory of its own (opened
    /// with [`open_with_backends`](Self::open_with_backends)); `Closed`; I/O errors; errors of
    /// the log and store.
    pub fn backup_with(
        &self,
        dest: impl AsRef<Path>,
        options: BackupOptions,
    ) -> Result<BackupReport> {
        let dest = dest.as_ref();
        check_target(dest, "back up into")?;
        let staging = Staging::new(dest, "partial")?;
        let mut manifest = self.copy_consistently(&staging.path)?;
        let (files, totals) = seal_files(&staging.path, options.compression)?;
        manifest.compressed = options.compression.is_some();
        manifest.files = files;
        manifest.created_micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        write_synced(
            &staging.path.join(MANIFEST_FILE),
            manifest.encode().as_bytes(),
        )?;
        sync_dir(&staging.path)?;
        staging.finish(dest)?;
        tracing::info!(
            dest = %dest.display(),
            checkpoint = manifest.checkpoint,
            newest = manifest.newest_event_id,
            bytes = totals.0,
            stored_bytes = totals.1,
            "backup written"
        );
        Ok(BackupReport {
            path: dest.to_path_buf(),
            log_backend: manifest.log_backend,
            checkpoint: manifest.checkpoint,
            oldest_event_id: manifest.oldest_event_id,
            newest_event_id: manifest.newest_event_id,
            files: manifest.files.len(),
            bytes: totals.0,
            stored_bytes: totals.1,
            compressed: manifest.compressed,
        })
    }

    /// Restores the backup in `backup` into the data directory `dir`, which must not exist or
    /// be empty. Every file is checked against the manifest's checksums, and the log against
    /// its ends and its own `verify()`, before `dir` appears (restored beside it and renamed).
    /// Open the result with the same projections as the source and the reported log backend.
    ///
    /// # Errors
    /// `Config` if `dir` is not empty, `backup` is not an Azoth backup or has a format
    /// version this build does not read; `NotFound` if `backup` has no manifest; `Corruption`
    /// naming the file for a damaged or incomplete backup; I/O errors.
    pub fn restore(backup: impl AsRef<Path>, dir: impl AsRef<Path>) -> Result<RestoreReport> {
        let (backup, dir) = (backup.as_ref(), dir.as_ref());
        let manifest_file = backup.join(MANIFEST_FILE);
        let bytes = match fs::read(&manifest_file) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(AzothError::NotFound(format!(
                    "no Azoth backup at {}: it has no {MANIFEST_FILE}",
                    backup.display()
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let manifest = Manifest::decode(&bytes, &manifest_file)?;
        check_target(dir, "restore into")?;
        let staging = Staging::new(dir, "restoring")?;
        let mut restored_bytes = 0;
        for entry in &manifest.files {
            restored_bytes += restore_file(backup, &staging.path, entry, manifest.compressed)?;
        }
        check_restored(&staging.path, &manifest)?;
        staging.finish(dir)?;
        tracing::info!(
            dir = %dir.display(),
            checkpoint = manifest.checkpoint,
            newest = manifest.newest_event_id,
            "backup restored"
        );
        Ok(RestoreReport {
            dir: dir.to_path_buf(),
            log_backend: manifest.log_backend,
            checkpoint: manifest.checkpoint,
            oldest_event_id: manifest.oldest_event_id,
            newest_event_id: manifest.newest_event_id,
            files: manifest.files.len(),
            bytes: restored_bytes,
        })
    }

    /// Steps 1 to 5 of the module docs into `staging`; the manifest without its files.
    fn copy_consistently(&self, staging: &Path) -> Result<Manifest> {
        let core = self.shared_core();
        let dir = core.config.dir.clone();
        for attempt in 1..=ATTEMPTS {
            clear_dir(staging)?;
            self.flush()?;
            // A memory view has nothing on disk; a view directory left from an earlier
            // configuration is not this database's view.
            let snapshot = match core.config.store_backend {
                StoreBackend::Memory => None,
                _ => view_snapshot(&dir)?,
            };
            let checkpoint = match &snapshot {
                Some(s) => s.checkpoint()?,
                None => 0,
            };
            let log_dir = staging.join("log");
            let copied = match core.log_handle()? {
                LogHandle::File(log) => {
                    log.rotate()?;
                    let archives = core.config.archive_dir.as_deref();
                    copy_file_log(&dir.join("log"), archives, &log_dir).map(|()| LogBackend::File)
                }
                LogHandle::Lmdb(log) => log.copy_to(&log_dir).map(|_| LogBackend::Lmdb),
                LogHandle::Custom(_) => {
                    return Err(AzothError::Config(
                        "a database opened over caller-built backends has no directory to back up"
                            .into(),
                    ));
                }
            };
            let log_backend = match copied {
                Ok(backend) => backend,
                Err(AzothError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                    tracing::info!(
                        attempt,
                        "a log file went away while it was copied; retrying"
                    );
                    continue;
                }
                Err(e) => return Err(e),
            };
            let (oldest, newest) = copied_log_ends(log_backend, &log_dir)?;
            if newest < checkpoint || oldest > checkpoint.saturating_add(1) {
                tracing::info!(
                    attempt,
                    checkpoint,
                    oldest,
                    newest,
                    "the log copy does not cover the view's checkpoint (retention ran); retrying"
                );
                continue;
            }
            if let Some(snapshot) = &snapshot {
                export_view(snapshot, checkpoint, &staging.join("view"))?;
            }
            return Ok(Manifest {
                log_backend,
                compressed: false,
                checkpoint,
                oldest_event_id: oldest,
                newest_event_id: newest,
                created_micros: 0,
                files: Vec::new(),
            });
        }
        Err(AzothError::Io(std::io::Error::other(format!(
            "no consistent copy of the log after {ATTEMPTS} attempts: retention or archival \
             kept removing what the backup needed"
        ))))
    }
}

/// A directory that is being written, removed unless [`finish`](Self::finish)ed.
struct Staging {
    path: PathBuf,
    done: bool,
}

impl Staging {
    /// A hidden, unique directory beside `target`.
    fn new(target: &Path, what: &str) -> Result<Self> {
        let name = target.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
            AzothError::Config(format!("not a usable path: {}", target.display()))
        })?;
        let parent = parent_of(target);
        fs::create_dir_all(&parent)?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = parent.join(format!(".{name}.{what}-{}-{nanos}", std::process::id()));
        fs::create_dir(&path)?;
        Ok(Self { path, done: false })
    }

    /// Renames the staging directory to `target` (replacing an empty directory) durably:
    /// every directory inside is synced first, so that after a power loss the renamed tree
    /// holds every entry (its files were synced as they were written).
    fn finish(mut self, target: &Path) -> Result<()> {
        sync_tree(&self.path)?;
        if target.is_dir() {
            // Checked empty before; `remove_dir` refuses a directory that filled meanwhile.
            fs::remove_dir(target)?;
        }
        fs::rename(&self.path, target)?;
        self.done = true;
        sync_dir(&parent_of(target))?;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.done {
            if let Err(e) = fs::remove_dir_all(&self.path) {
                tracing::warn!(dir = %self.path.display(), error = %e, "could not remove a staging directory");
            }
        }
    }
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Refuses a target that exists and is not an empty directory.
fn check_target(target: &Path, what: &str) -> Result<()> {
    if !target.exists() {
        return Ok(());
    }
    if !target.is_dir() || fs::read_dir(target)?.next().is_some() {
        return Err(AzothError::Config(format!(
            "cannot {what} {}: it exists and is not an empty directory",
            target.display()
        )));
    }
    Ok(())
}

/// Empties `dir` (a staging directory) for another attempt.
fn clear_dir(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            fs::remove_dir_all(&path)?;
        } else {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// A snapshot of the current view store of the data directory `dir`, if it has one.
fn view_snapshot(dir: &Path) -> Result<Option<LmdbStoreSnapshot>> {
    let view_dir = dir.join(backend::current_view_dir(dir)?);
    if !view_dir.join("CURRENT").is_file() {
        return Ok(None);
    }
    LmdbStoreSnapshot::open(&view_dir).map(Some)
}

/// Copies the file log's sealed units from `src` (and the archives from `archive_dir`, if the
/// log keeps them elsewhere) into `dest`, and the active (highest) segment as its header only
/// (see the module docs). The copy keeps its archives beside its segments, where a log opened
/// with the default options finds them.
fn copy_file_log(src: &Path, archive_dir: Option<&Path>, dest: &Path) -> Result<()> {
    fs::create_dir_all(dest)?;
    let mut units: Vec<(FileKind, EventId, PathBuf)> = Vec::new();
    let mut gaps = None;
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        match file_name::parse(name) {
            Some((kind, id)) if kind != FileKind::Temp => units.push((kind, id, entry.path())),
            _ if name == GAPS_FILE => gaps = Some(entry.path()),
            _ => {}
        }
    }
    if let Some(archives) = archive_dir.filter(|a| *a != src && a.is_dir()) {
        for entry in fs::read_dir(archives)? {
            let entry = entry?;
            let name = entry.file_name();
            if let Some((FileKind::Archive, id)) = name.to_str().and_then(file_name::parse) {
                units.push((FileKind::Archive, id, entry.path()));
            }
        }
    }
    let active = units
        .iter()
        .filter(|(kind, ..)| *kind == FileKind::Segment)
        .map(|(_, id, _)| *id)
        .max();
    let archived: Vec<EventId> = units
        .iter()
        .filter(|(kind, ..)| *kind == FileKind::Archive)
        .map(|(_, id, _)| *id)
        .collect();
    for (kind, id, path) in &units {
        let Some(name) = path.file_name() else {
            continue;
        };
        let to = dest.join(name);
        match kind {
            FileKind::Segment if Some(*id) == active => copy_prefix(path, &to, SEGMENT_HEADER_LEN)?,
            // A segment already archived (its removal was interrupted): the archive holds it.
            FileKind::Segment | FileKind::Index if archived.contains(id) => {}
            // A stale index beside the active segment is removed at open anyway.
            FileKind::Index if Some(*id) == active => {}
            _ => {
                fs::copy(path, &to)?;
            }
        }
    }
    if let Some(path) = gaps {
        fs::copy(&path, dest.join(GAPS_FILE))?;
    }
    Ok(())
}

/// Copies at most the first `len` bytes of `from`.
fn copy_prefix(from: &Path, to: &Path, len: usize) -> Result<()> {
    let mut head = Vec::with_capacity(len);
    File::open(from)?.take(len as u64).read_to_end(&mut head)?;
    fs::write(to, head)?;
    Ok(())
}

/// The first and last event of the log copied into `log_dir`, read without changing it
/// beyond LMDB's reader table, which is removed with the other lock files afterwards.
fn copied_log_ends(backend: LogBackend, log_dir: &Path) -> Result<(EventId, EventId)> {
    let log = backend::open_log_read_only(backend, log_dir)?.log();
    Ok((log.oldest_event_id()?, log.newest_event_id()?))
}

/// Writes the pinned view `snapshot` into a new LMDB store in `dest`: every entry with its
/// version, its metadata, and `checkpoint`.
fn export_view(snapshot: &LmdbStoreSnapshot, checkpoint: EventId, dest: &Path) -> Result<()> {
    let store = LmdbStoreOptions::default()
        .durable_apply(false)
        .open(dest)?;
    let mut writes = Vec::with_capacity(EXPORT_BATCH);
    for item in snapshot.range(None, None)? {
        let (key, versioned) = item?;
        writes.push(StoreWrite {
            key,
            value: Some(versioned.value),
            operation_id: versioned.operation_id,
        });
        if writes.len() == EXPORT_BATCH {
            store.apply(&StoreBatch {
                writes: std::mem::take(&mut writes),
                checkpoint: None,
                metadata: Vec::new(),
            })?;
        }
    }
    let metadata = snapshot
        .list_metadata("")?
        .into_iter()
        .map(|(name, value)| (name, Some(value)))
        .collect();
    store.apply(&StoreBatch {
        writes,
        checkpoint: Some(checkpoint),
        metadata,
    })?;
    store.sync()?;
    Ok(())
}

/// Every file under `dir`, relative, sorted; lock files are removed instead.
fn data_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in fs::read_dir(dir.join(&rel))? {
            let entry = entry?;
            let child = rel.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                stack.push(child);
            } else if NOT_DATA.iter().any(|n| entry.file_name() == *n) {
                fs::remove_file(entry.path())?;
            } else if child != Path::new(MANIFEST_FILE) {
                out.push(child);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Checksums (and compresses) every file of the staging directory and syncs it (its
/// directories are synced by [`Staging::finish`]); returns the manifest entries and the
/// (restored, stored) byte totals.
fn seal_files(staging: &Path, compression: Option<i32>) -> Result<(Vec<FileEntry>, (u64, u64))> {
    let mut entries = Vec::new();
    let (mut bytes, mut stored_bytes) = (0, 0);
    for rel in data_files(staging)? {
        let path = staging.join(&rel);
        let (len, hash) = hash_file(&path)?;
        let entry_path = manifest_path(&rel)?;
        let stored_hash = match compression {
            None => {
                File::open(&path)?.sync_all()?;
                stored_bytes += len;
                hash
            }
            Some(level) => {
                let entry = FileEntry {
                    path: entry_path.clone(),
                    len,
                    hash,
                    stored_hash: hash,
                };
                let packed = under(staging, &entry.stored_path(true));
                {
                    let mut out = File::create(&packed)?;
                    zstd::stream::copy_encode(File::open(&path)?, &mut out, level)?;
                    out.sync_all()?;
                }
                fs::remove_file(&path)?;
                let (packed_len, packed_hash) = hash_file(&packed)?;
                stored_bytes += packed_len;
                packed_hash
            }
        };
        bytes += len;
        entries.push(FileEntry {
            path: entry_path,
            len,
            hash,
            stored_hash,
        });
    }
    Ok((entries, (bytes, stored_bytes)))
}

/// Restores one file of `backup` into `staging`, checking it; returns its length.
fn restore_file(backup: &Path, staging: &Path, entry: &FileEntry, compressed: bool) -> Result<u64> {
    let stored = under(backup, &entry.stored_path(compressed));
    let damaged = |detail: String| AzothError::corruption(Location::file(&stored), detail);
    let (_, stored_hash) = match hash_file(&stored) {
        Ok(found) => found,
        Err(AzothError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(damaged("the backup lacks this file".into()));
        }
        Err(e) => return Err(e),
    };
    if stored_hash != entry.stored_hash {
        return Err(damaged(
            "the file does not match the backup's checksum".into(),
        ));
    }
    let to = under(staging, &entry.path);
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent)?;
    }
    {
        let mut out = File::create(&to)?;
        if compressed {
            zstd::stream::copy_decode(File::open(&stored)?, &mut out)
                .map_err(|e| damaged(format!("the file does not decompress: {e}")))?;
        } else {
            std::io::copy(&mut File::open(&stored)?, &mut out)?;
        }
        out.sync_all()?;
    }
    let (len, hash) = hash_file(&to)?;
    if len != entry.len || hash != entry.hash {
        return Err(damaged(format!(
            "the restored file ({len} bytes) does not match the backup's checksum of its contents"
        )));
    }
    Ok(len)
}

/// Checks the restored directory in `staging` against the manifest: the log's ends and its
/// verification, the view's checkpoint. Leaves no lock files behind.
fn check_restored(staging: &Path, manifest: &Manifest) -> Result<()> {
    let log_dir = staging.join("log");
    let damaged = |detail: String| AzothError::corruption(Location::file(&log_dir), detail);
    {
        let handle = backend::open_log_read_only(manifest.log_backend, &log_dir)?;
        let report = handle.verify()?;
        let log = handle.log();
        if let Some(failure) = report.first_failure {
            return Err(damaged(format!(
                "the restored log does not verify: {failure:?}"
            )));
        }
        let ends = (log.oldest_event_id()?, log.newest_event_id()?);
        if manifest.checkpoint > ends.1 || ends.0 > manifest.checkpoint.saturating_add(1) {
            return Err(damaged(format!(
                "the restored log (events {}..={}) does not hold what the view's checkpoint {} needs",
                ends.0, ends.1, manifest.checkpoint
            )));
        }
        if ends != (manifest.oldest_event_id, manifest.newest_event_id) {
            return Err(damaged(format!(
                "the restored log holds events {}..={}, the manifest says {}..={}",
                ends.0, ends.1, manifest.oldest_event_id, manifest.newest_event_id
            )));
        }
    }
    let view_dir = staging.join("view");
    if view_dir.exists() {
        let checkpoint = LmdbStoreSnapshot::open(&view_dir)?.checkpoint()?;
        if checkpoint != manifest.checkpoint {
            return Err(AzothError::corruption(
                Location::file(&view_dir),
                format!(
                    "the restored view's checkpoint is {checkpoint}, the manifest says {}",
                    manifest.checkpoint
                ),
            ));
        }
    }
    // The checks' read-only opens made LMDB reader tables: not part of the data.
    data_files(staging)?;
    Ok(())
}

/// The length and BLAKE3 hash of a file, streamed.
fn hash_file(path: &Path) -> Result<(u64, blake3::Hash)> {
    let mut file = File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; BUFFER];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((len, hasher.finalize()))
}

/// Writes `bytes` to a new file at `path` and syncs it.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

/// Syncs every directory under `dir`, deepest first, then `dir` itself.
fn sync_tree(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            sync_tree(&entry.path())?;
        }
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}
