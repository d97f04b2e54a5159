//! The `azoth` command: inspect and maintain an Azoth data directory.
//!
//! | module | what it holds |
//! | --- | --- |
//! | `args` | the command line (clap): global options, subcommands, the help text |
//! | `open` | the data directory: backend detection, the writer, the read handle |
//! | `commands` | one file per command group: `init`, `kv`, `events`, `stats`, `verify`, `maintenance`, `import` |
//! | `repl` | `azoth interactive` |
//! | `record` | the dump format: one event as one JSON line |
//! | `bytes` | keys and values as text or base64 |
//! | `output` | text and JSON output |
//! | `progress` | progress bars on a terminal |
//! | `error` | errors, their messages and the exit codes |
//!
//! Diagnostics (the library's `tracing` events) go to stderr when the environment variable
//! `AZOTH_LOG` names a level: `error`, `warn`, `info`, `debug` or `trace`.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod args;
mod bytes;
mod commands;
mod error;
mod open;
mod output;
mod progress;
mod record;
mod repl;

use std::io::{BufWriter, Write};

use clap::Parser;

use crate::error::{CliError, EXIT_OK, EXIT_USAGE, is_broken_pipe};

/// Sends `tracing` events at or above the level `AZOTH_LOG` names to stderr.
fn init_diagnostics() {
    let Some(level) = std::env::var("AZOTH_LOG")
        .ok()
        .and_then(|l| l.parse::<tracing::Level>().ok())
    else {
        return;
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .init();
}

fn main() {
    init_diagnostics();
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print to stdout and succeed; usage errors exit with 2.
            let _ = e.print();
            std::process::exit(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    let stdout = std::io::stdout();
    let mut writer = BufWriter::new(stdout.lock());
    let result = {
        let mut out = output::Output::new(&mut writer, cli.json);
        commands::run(&cli, &mut out)
    };
    let flushed = writer
        .flush()
        .map_err(|e| CliError::io("writing the output", e));
    let code = match result.and(flushed) {
        Ok(()) => EXIT_OK,
        Err(e) if is_broken_pipe(&e) => EXIT_OK,
        // The report is already printed.
        Err(e @ CliError::Damaged) => e.exit_code(),
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}
