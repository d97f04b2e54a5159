//! The command line: global options and every subcommand, parsed by clap.
//!
//! The argument structs are shared with the REPL (`repl.rs`), which parses each line it reads
//! with the same definitions, so a command means the same in both places.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The text appended to `azoth --help`: exit codes and the dump format.
const AFTER_HELP: &str = "\
Exit codes:
  0  success
  1  error (one line on stderr, starting with `error:`)
  2  usage error (missing or invalid arguments)
  3  `verify` found damage

Keys and values are taken as UTF-8 text; with --base64 they are base64 (standard alphabet).

Diagnostics: set AZOTH_LOG=warn (or error, info, debug, trace) to see them on stderr.

Commands need a database in the data directory and create none, so a mistyped path is an
error. `azoth init` creates one (with the backend --backend names); `restore`, and `import`
into a directory that does not exist or is empty, create one too.

Read commands (get, exists, scan, events, stats, verify, dump) work on a directory an
application has open, through a read-only open. Write commands need exclusive access.

Dump format (`azoth dump`, `azoth import`, `azoth events --json`): one JSON object per line,
  {\"id\":1,\"ts\":1700000000000000,\"type\":\"put\",\"key\":\"user:1\",\"value\":\"Ada\"}
  {\"id\":2,\"ts\":1700000000000001,\"type\":\"delete\",\"key\":\"user:1\"}
  {\"id\":3,\"ts\":1700000000000002,\"type\":\"app\",\"kind\":\"Deposited\",\"payload_b64\":\"AQI=\"}
  {\"id\":4,\"ts\":...,\"type\":\"read\",\"key\":\"user:1\"}   {\"id\":5,\"ts\":...,\"type\":\"compaction\",\"level\":0}
`id` is the event id, `ts` the commit time in microseconds since the Unix epoch. Bytes that are
valid UTF-8 are written as `key` / `value` / `payload`; other bytes as `key_b64` / `value_b64` /
`payload_b64` (base64). `import` accepts either form, ignores `id` and `ts` (the target assigns
its own), applies puts and deletes, appends app events, and skips read and compaction events.";

/// Inspect and maintain an Azoth data directory.
#[derive(Debug, Parser)]
#[command(name = "azoth", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// The data directory.
    #[arg(short = 'd', long, global = true, default_value = "./azoth_data")]
    pub data_dir: PathBuf,

    /// Machine-readable output (JSON).
    #[arg(long, global = true)]
    pub json: bool,

    /// The log backend of a database this command creates (`init`, `import` into a fresh
    /// directory). An existing database's backend is detected from what is on disk.
    #[arg(long, global = true, value_enum)]
    pub backend: Option<Backend>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The log backend named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// Segmented append-only files (the default).
    File,
    /// LMDB.
    Lmdb,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an empty database in the data directory (which holds none yet).
    Init,
    /// Store a key-value pair.
    Put(PutArgs),
    /// Print the value of a key (nothing, exit 0, when the key is absent).
    Get(KeyArgs),
    /// Delete a key (succeeds when the key is absent).
    Delete(KeyArgs),
    /// Print `true` or `false`: whether a key exists.
    Exists(KeyArgs),
    /// List live entries in key order.
    Scan(ScanArgs),
    /// Print the events of the log, in order.
    Events(EventsArgs),
    /// Print statistics: the log, the view, latencies, subscriptions.
    Stats(StatsArgs),
    /// Check the log's checksums and hash chain.
    Verify,
    /// Seal the active log segment and start a new one.
    Rotate,
    /// Archive sealed segments (zstd) up to an event id; they stay readable.
    Archive(ArchiveArgs),
    /// Flush the view, give its free space back, apply the retention policy.
    Compact,
    /// Rebuild the view from the log (built-in put/delete projection only).
    Rebuild(RebuildArgs),
    /// Write a consistent copy of the database into a new directory.
    Backup(BackupArgs),
    /// Restore a backup into the data directory (which must not exist or be empty).
    Restore(RestoreArgs),
    /// Write every event as JSON lines (see the dump format below).
    Dump(DumpArgs),
    /// Apply a dump (JSON lines) to the database; into a directory that does not exist or is
    /// empty, create the database first.
    Import(ImportArgs),
    /// An interactive session: put, get, delete, exists, scan, events, stats, verify.
    Interactive,
}

/// `put KEY VALUE`.
#[derive(Debug, Args)]
pub struct PutArgs {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
    /// KEY and VALUE are base64.
    #[arg(long)]
    pub base64: bool,
}

/// A command taking one key.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// The key.
    pub key: String,
    /// KEY is base64, and so is the value printed.
    #[arg(long)]
    pub base64: bool,
}

/// `scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Only keys starting with this prefix.
    #[arg(long, conflicts_with_all = ["start", "end"])]
    pub prefix: Option<String>,
    /// The first key (inclusive).
    #[arg(long)]
    pub start: Option<String>,
    /// The end key (exclusive).
    #[arg(long)]
    pub end: Option<String>,
    /// At most this many entries.
    #[arg(long)]
    pub limit: Option<usize>,
    /// The prefix, start and end are base64, and so are the keys and values printed.
    #[arg(long)]
    pub base64: bool,
}

/// `events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only events after this id.
    #[arg(long, default_value_t = 0)]
    pub since: u64,
    /// At most this many events.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Keep printing new events as they are written (like `tail -f`); stop with Ctrl-C.
    #[arg(long)]
    pub follow: bool,
}

/// `stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The Prometheus text exposition format (instead of the table or --json).
    #[arg(long)]
    pub prometheus: bool,
}

/// `archive`.
#[derive(Debug, Args)]
pub struct ArchiveArgs {
    /// Archive sealed segments whose events are all at or below this id (default: every
    /// sealed segment).
    #[arg(long)]
    pub up_to: Option<u64>,
}

/// `backup DEST`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The backup directory to create.
    pub dest: PathBuf,
}

/// `restore SRC`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup directory.
    pub src: PathBuf,
}

/// `rebuild`.
#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// Rebuild even when the log holds application events, whose effect on the view (made by
    /// the application's projections) this command cannot reproduce.
    #[arg(long)]
    pub allow_app_events: bool,
}

/// `dump`.
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// Only events after this id.
    #[arg(long, default_value_t = 0)]
    pub since: u64,
}

/// `import FILE`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The dump to read (`-` for standard input).
    pub file: PathBuf,
    /// Puts and deletes per atomic batch.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_definitions_are_consistent() {
        Cli::command().debug_assert();
    }
}
