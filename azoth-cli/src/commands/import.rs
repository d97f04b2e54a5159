//! `import FILE`: applies a dump (JSON lines, see `record.rs`) to the database.
//!
//! Puts and deletes are committed in atomic batches of `--batch-size` operations; an app
//! event is appended on its own, after the batch before it. Every line of a batch is parsed
//! before the batch is committed, so a bad line stops the import with nothing of its batch
//! written and the batches before it committed (the message says how far it got).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use azoth::{Database, Operation};
use indicatif::ProgressBar;
use serde_json::json;

use crate::error::{CliError, CliResult};
use crate::output::Output;
use crate::progress;
use crate::record::{Record, parse_line};

#[derive(Debug, Default)]
struct Counts {
    writes: u64,
    batches: u64,
    app_events: u64,
    skipped: u64,
}

/// Counts the bytes read, for the progress bar.
struct Counting<R> {
    inner: R,
    bar: ProgressBar,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

/// The dump `import` reads, opened before the database so that a dump that cannot be read
/// leaves no new database behind.
pub struct Input {
    /// The file as the user named it (`-` for standard input).
    name: String,
    reader: Box<dyn Read>,
    /// The file's length, for the progress bar; `None` for standard input.
    len: Option<u64>,
}

impl Input {
    /// Opens `file`, or standard input for `-`.
    ///
    /// # Errors
    /// [`CliError::Io`] when the file cannot be opened.
    pub fn open(file: &Path) -> CliResult<Self> {
        let name = file.display().to_string();
        if name == "-" {
            return Ok(Self {
                name,
                reader: Box::new(std::io::stdin()),
                len: None,
            });
        }
        let opened = File::open(file).map_err(|e| CliError::io(format!("opening {name}"), e))?;
        let len = opened.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Self {
            name,
            reader: Box::new(opened),
            len: Some(len),
        })
    }
}

/// `import FILE [--batch-size N]`.
pub fn import(db: &Database, input: Input, batch_size: u32, out: &mut Output<'_>) -> CliResult {
    let Input { name, reader, len } = input;
    let bar = match len {
        Some(len) => progress::bar(len, "importing", true),
        None => progress::spinner("importing"),
    };
    let reader = BufReader::new(Counting {
        inner: reader,
        bar: bar.clone(),
    });
    let result = apply(db, reader, &name, batch_size as usize);
    bar.finish_and_clear();
    let counts = result?;
    if out.json {
        out.json_line(&json!({
            "writes": counts.writes,
            "batches": counts.batches,
            "app_events": counts.app_events,
            "skipped": counts.skipped,
        }))
    } else {
        out.line(format_args!(
            "imported {} puts and deletes in {} batches and {} app events; skipped {} read and compaction events",
            counts.writes, counts.batches, counts.app_events, counts.skipped
        ))
    }
}

fn apply(db: &Database, reader: impl BufRead, name: &str, batch_size: usize) -> CliResult<Counts> {
    let mut counts = Counts::default();
    let mut batch: Vec<Operation> = Vec::with_capacity(batch_size.min(4096));
    let mut batch_start_line = 1;
    for (index, line) in reader.lines().enumerate() {
        let number = index + 1;
        let line = line.map_err(|e| CliError::io(format!("reading {name} at line {number}"), e))?;
        if line.trim().is_empty() {
            continue;
        }
        let record = parse_line(&line).map_err(|detail| {
            let pending_from = if batch.is_empty() {
                number
            } else {
                batch_start_line
            };
            CliError::Input(format!(
                "{name} line {number}: {detail}{}",
                progress_note(&counts, pending_from)
            ))
        })?;
        match record {
            Record::Write(op) => {
                if batch.is_empty() {
                    batch_start_line = number;
                }
                batch.push(op);
                if batch.len() >= batch_size {
                    commit(db, &mut batch, &mut counts, batch_start_line)?;
                }
            }
            Record::App { kind, payload } => {
                commit(db, &mut batch, &mut counts, batch_start_line)?;
                db.append_event(&kind, &payload)
                    .map_err(|source| CliError::Azoth {
                        context: format!(
                            "appending the app event of line {number}{}",
                            progress_note(&counts, number)
                        ),
                        source,
                    })?;
                counts.app_events += 1;
            }
            Record::Skip => counts.skipped += 1,
        }
    }
    commit(db, &mut batch, &mut counts, batch_start_line)?;
    Ok(counts)
}

fn commit(
    db: &Database,
    batch: &mut Vec<Operation>,
    counts: &mut Counts,
    start_line: usize,
) -> CliResult {
    if batch.is_empty() {
        return Ok(());
    }
    let n = batch.len() as u64;
    db.batch(std::mem::take(batch))
        .map_err(|source| CliError::Azoth {
            context: format!(
                "committing the batch starting at line {start_line}{}",
                progress_note(counts, start_line)
            ),
            source,
        })?;
    counts.writes += n;
    counts.batches += 1;
    Ok(())
}

/// What is already committed when the import stops.
fn progress_note(counts: &Counts, batch_start_line: usize) -> String {
    if counts.writes == 0 && counts.app_events == 0 {
        " (nothing was imported)".to_owned()
    } else {
        format!(
            " ({} puts and deletes and {} app events before line {batch_start_line} were imported)",
            counts.writes, counts.app_events
        )
    }
}
