//! The backup manifest: what a backup holds and the checksum of every file, so that a restore
//! can refuse a damaged, incomplete or unknown backup. `azoth-projector/FORMAT.md` documents
//! the bytes; this file repeats the layout:
//!
//! ```text
//! AZOTH-BACKUP 1\n                         magic and format version
//! log_backend file\n                       file | lmdb
//! compression none\n                       none | zstd
//! checkpoint 1200\n                        the view's checkpoint (0: no view in the backup)
//! oldest_event_id 1\n                      the first event the log copy holds
//! newest_event_id 1350\n                   the last event the log copy holds (0: none)
//! created_micros 1764000000000000\n        when the backup finished, µs since the epoch
//! file <stored b3> <b3> <len> <path>\n     one line per file, `path` relative, '/'-separated
//! end <b3 of every byte above>\n           the manifest's own checksum
//! ```

use std::path::{Component, Path, PathBuf};

use azoth_core::{AzothError, EventId, Location, Result};

use crate::config::LogBackend;

/// The first line's word.
pub(crate) const MAGIC: &str = "AZOTH-BACKUP";
/// The format version this build writes and reads.
pub(crate) const VERSION: u32 = 1;
/// The manifest's file name in a backup directory.
pub(crate) const MANIFEST_FILE: &str = "MANIFEST";
/// The suffix of a file stored compressed.
pub(crate) const ZSTD_SUFFIX: &str = ".zst";

/// One file of a backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileEntry {
    /// Where it goes in the data directory, relative, '/'-separated.
    pub(crate) path: String,
    /// Its length in the data directory (after decompression).
    pub(crate) len: u64,
    /// BLAKE3 of its contents in the data directory.
    pub(crate) hash: blake3::Hash,
    /// BLAKE3 of the bytes stored in the backup (equal to `hash` without compression).
    pub(crate) stored_hash: blake3::Hash,
}

/// What a manifest says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub(crate) log_backend: LogBackend,
    pub(crate) compressed: bool,
    pub(crate) checkpoint: EventId,
    pub(crate) oldest_event_id: EventId,
    pub(crate) newest_event_id: EventId,
    pub(crate) created_micros: u64,
    pub(crate) files: Vec<FileEntry>,
}

impl FileEntry {
    /// Where the file is stored in the backup directory.
    pub(crate) fn stored_path(&self, compressed: bool) -> String {
        if compressed {
            format!("{}{ZSTD_SUFFIX}", self.path)
        } else {
            self.path.clone()
        }
    }
}

impl Manifest {
    /// The manifest's bytes, its checksum line last.
    pub(crate) fn encode(&self) -> String {
        let backend = match self.log_backend {
            LogBackend::Lmdb => "lmdb",
            LogBackend::File => "file",
        };
        let mut out = format!(
            "{MAGIC} {VERSION}\nlog_backend {backend}\ncompression {}\ncheckpoint {}\n\
             oldest_event_id {}\nnewest_event_id {}\ncreated_micros {}\n",
            if self.compressed { "zstd" } else { "none" },
            self.checkpoint,
            self.oldest_event_id,
            self.newest_event_id,
            self.created_micros,
        );
        for f in &self.files {
            out.push_str(&format!(
                "file {} {} {} {}\n",
                f.stored_hash.to_hex(),
                f.hash.to_hex(),
                f.len,
                f.path
            ));
        }
        let end = blake3::hash(out.as_bytes());
        out.push_str(&format!("end {}\n", end.to_hex()));
        out
    }

    /// Parses and checks a manifest read from `path`.
    ///
    /// # Errors
    /// `Config` for what is not a backup manifest or has a version this build does not read;
    /// `Corruption` naming `path` for a damaged one.
    pub(crate) fn decode(bytes: &[u8], path: &Path) -> Result<Self> {
        let damaged = |detail: String| AzothError::corruption(Location::file(path), detail);
        let text = std::str::from_utf8(bytes)
            .map_err(|_| damaged("the backup manifest is not UTF-8".into()))?;
        let first = text.lines().next().unwrap_or_default();
        let version = match first.split_once(' ') {
            Some((MAGIC, v)) => v,
            _ => {
                return Err(AzothError::Config(format!(
                    "{} is not an Azoth backup manifest",
                    path.display()
                )));
            }
        };
        if version != VERSION.to_string() {
            return Err(AzothError::Config(format!(
                "the backup at {} has format version {version:?}; this build reads version {VERSION}",
                path.display()
            )));
        }
        let Some(end_at) = text.rfind("\nend ") else {
            return Err(damaged("the backup manifest has no checksum line".into()));
        };
        let (body, end_line) = text.split_at(end_at + 1);
        let expected = end_line
            .strip_prefix("end ")
            .and_then(|l| l.strip_suffix('\n'))
            .and_then(|hex| blake3::Hash::from_hex(hex).ok())
            .ok_or_else(|| damaged("the backup manifest's checksum line is malformed".into()))?;
        if blake3::hash(body.as_bytes()) != expected {
            return Err(damaged(
                "the backup manifest does not match its checksum".into(),
            ));
        }
        let mut lines = body.lines().skip(1);
        let mut field = |name: &str| -> Result<String> {
            lines
                .next()
                .and_then(|l| l.strip_prefix(name))
                .and_then(|l| l.strip_prefix(' '))
                .map(str::to_owned)
                .ok_or_else(|| damaged(format!("the backup manifest lacks `{name}`")))
        };
        let number = |name: &str, s: String| -> Result<u64> {
            s.parse()
                .map_err(|_| damaged(format!("`{name}` is not a number: {s:?}")))
        };
        let log_backend = match field("log_backend")?.as_str() {
            "file" => LogBackend::File,
            "lmdb" => LogBackend::Lmdb,
            other => return Err(damaged(format!("unknown log backend {other:?}"))),
        };
        let compressed = match field("compression")?.as_str() {
            "none" => false,
            "zstd" => true,
            other => return Err(damaged(format!("unknown compression {other:?}"))),
        };
        let checkpoint = number("checkpoint", field("checkpoint")?)?;
        let oldest_event_id = number("oldest_event_id", field("oldest_event_id")?)?;
        let newest_event_id = number("newest_event_id", field("newest_event_id")?)?;
        let created_micros = number("created_micros", field("created_micros")?)?;
        let mut files = Vec::new();
        for line in lines {
            let parts: Vec<&str> = line.splitn(5, ' ').collect();
            let [word, stored, hash, len, path] = parts[..] else {
                return Err(damaged(format!("malformed manifest line {line:?}")));
            };
            if word != "file" {
                return Err(damaged(format!("malformed manifest line {line:?}")));
            }
            let hash_of = |hex: &str| {
                blake3::Hash::from_hex(hex)
                    .map_err(|_| damaged(format!("malformed checksum in {line:?}")))
            };
            check_relative(path).map_err(damaged)?;
            files.push(FileEntry {
                path: path.to_owned(),
                len: number("file length", len.to_owned())?,
                hash: hash_of(hash)?,
                stored_hash: hash_of(stored)?,
            });
        }
        Ok(Self {
            log_backend,
            compressed,
            checkpoint,
            oldest_event_id,
            newest_event_id,
            created_micros,
            files,
        })
    }
}

/// Refuses a path that could leave the directory it is joined to.
fn check_relative(path: &str) -> std::result::Result<(), String> {
    let plain = !path.is_empty()
        && !path.contains('\\')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
    if plain {
        Ok(())
    } else {
        Err(format!("unsafe path in the backup manifest: {path:?}"))
    }
}

/// `rel` as a manifest path ('/'-separated).
///
/// # Errors
/// `Config` for a path that is not valid UTF-8 or not plain.
pub(crate) fn manifest_path(rel: &Path) -> Result<String> {
    let parts: Option<Vec<&str>> = rel
        .components()
        .map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect();
    let joined = parts.map(|p| p.join("/")).unwrap_or_default();
    check_relative(&joined).map_err(|_| {
        AzothError::Config(format!(
            "cannot back up the file {}: a backup names files by relative UTF-8 paths \
                 without `.`, `..`, empty parts or backslashes",
            rel.display()
        ))
    })?;
    Ok(joined)
}

/// `path` of a manifest under `dir`.
pub(crate) fn under(dir: &Path, path: &str) -> PathBuf {
    path.split('/').fold(dir.to_path_buf(), |p, c| p.join(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            log_backend: LogBackend::Lmdb,
            compressed: true,
            checkpoint: 10,
            oldest_event_id: 1,
            newest_event_id: 12,
            created_micros: 99,
            files: vec![FileEntry {
                path: "log/env/data.mdb".into(),
                len: 4096,
                hash: blake3::hash(b"a"),
                stored_hash: blake3::hash(b"b"),
            }],
        }
    }

    #[test]
    fn round_trip() {
        let m = sample();
        let bytes = m.encode();
        assert!(bytes.starts_with("AZOTH-BACKUP 1\n"));
        assert_eq!(
            Manifest::decode(bytes.as_bytes(), Path::new("M")).unwrap(),
            m
        );
    }

    #[test]
    fn every_changed_byte_is_refused() {
        let bytes = sample().encode().into_bytes();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            assert!(
                Manifest::decode(&b, Path::new("M")).is_err(),
                "byte {i} changed and accepted"
            );
        }
        for len in 0..bytes.len() {
            assert!(Manifest::decode(&bytes[..len], Path::new("M")).is_err());
        }
    }

    #[test]
    fn versions_and_paths() {
        let text = sample()
            .encode()
            .replace("AZOTH-BACKUP 1", "AZOTH-BACKUP 2");
        match Manifest::decode(text.as_bytes(), Path::new("M")) {
            Err(AzothError::Config(msg)) => assert!(msg.contains("version")),
            other => panic!("{other:?}"),
        }
        assert!(check_relative("../x").is_err());
        assert!(check_relative("/etc/passwd").is_err());
        assert!(check_relative("a/./b").is_err());
        assert!(check_relative("log/00000000000000000001.seg").is_ok());
        assert_eq!(
            manifest_path(Path::new("view/env-0/data.mdb")).unwrap(),
            "view/env-0/data.mdb"
        );
    }
}
