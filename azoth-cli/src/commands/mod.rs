//! Running one command: open the directory the way the command needs, run it, close.
//!
//! Write commands open the database exclusively; read commands go through
//! [`Target::open_reader`], which also works on a directory an application holds. Only
//! `init`, and `import` into a fresh directory, create a database.

pub mod backup;
pub mod events;
pub mod import;
pub mod init;
pub mod kv;
pub mod maintenance;
pub mod stats;
pub mod verify;

use azoth::Database;

use crate::args::{Cli, Command};
use crate::error::{CliError, CliResult};
use crate::open::{Handle, Target, detect_backend};
use crate::output::Output;
use crate::repl;

/// Runs the command `cli` names, printing to `out`.
pub fn run(cli: &Cli, out: &mut Output<'_>) -> CliResult {
    let target = Target::from_cli(cli);
    match &cli.command {
        Command::Init => {
            let db = target.create()?;
            // Reported only once the new database is closed, and so complete on disk.
            close(&target, &db, Ok(()))?;
            init::report(&target.dir, out)
        }
        Command::Put(args) => with_writer(&target, |db| kv::put(db, args, out)),
        Command::Delete(args) => with_writer(&target, |db| kv::delete(db, args, out)),
        Command::Get(args) => with_reader(&target, |h| kv::get(h, args, out)),
        Command::Exists(args) => with_reader(&target, |h| kv::exists(h, args, out)),
        Command::Scan(args) => with_reader(&target, |h| kv::scan(h, args, out)),
        Command::Events(args) => {
            let selection = events::Selection {
                since: args.since,
                limit: args.limit,
                follow: args.follow,
                dump: false,
            };
            with_reader(&target, |h| events::print(h, selection, out))
        }
        Command::Dump(args) => {
            let selection = events::Selection {
                since: args.since,
                limit: None,
                follow: false,
                dump: true,
            };
            with_reader(&target, |h| events::print(h, selection, out))
        }
        Command::Stats(args) => {
            let backend = detect_backend(&target.dir);
            with_reader(&target, |h| {
                stats::stats(h, &target.dir, backend, args.prometheus, out)
            })
        }
        Command::Verify => match target.open_reader() {
            // Damage that stops the open (inside the active segment) is still a finding of
            // verify, reported the same way.
            Err(CliError::Azoth {
                source: azoth::AzothError::Corruption { location, detail },
                ..
            }) => verify::report_damage(&location, &detail, out),
            Err(e) => Err(e),
            Ok(handle) => finish(&target, &handle, verify::verify(&handle, out)),
        },
        Command::Rotate => with_writer(&target, |db| maintenance::rotate(db, out)),
        Command::Archive(args) => with_writer(&target, |db| maintenance::archive(db, args, out)),
        Command::Backup(args) => with_writer(&target, |db| backup::backup(db, &args.dest, out)),
        Command::Restore(args) => backup::restore(&args.src, &target.dir, out),
        Command::Compact => with_writer(&target, |db| maintenance::compact(db, out)),
        Command::Rebuild(args) => with_writer(
            &target.allowing_missing_projections(args.allow_app_events),
            |db| maintenance::rebuild(db, args, out),
        ),
        Command::Import(args) => {
            let input = import::Input::open(&args.file)?;
            let db = target.open_or_create_if_fresh()?;
            let result = import::import(&db, input, args.batch_size, out);
            close(&target, &db, result)
        }
        Command::Interactive => repl::run(&target, out),
    }
}

/// Opens the existing database exclusively, runs `f`, and closes it (flushing the view).
fn with_writer(target: &Target, f: impl FnOnce(&Database) -> CliResult) -> CliResult {
    let db = target.open_writer()?;
    let result = f(&db);
    close(target, &db, result)
}

/// Closes the database after `result`; the first error wins.
fn close(target: &Target, db: &Database, result: CliResult) -> CliResult {
    let closed = db.close().map_err(|source| CliError::Azoth {
        context: format!("closing {}", target.dir.display()),
        source,
    });
    result.and(closed)
}

/// Opens the directory for reading, runs `f`, and closes it.
fn with_reader(target: &Target, f: impl FnOnce(&Handle) -> CliResult) -> CliResult {
    let handle = target.open_reader()?;
    let result = f(&handle);
    finish(target, &handle, result)
}

/// Closes a read handle after `result`; the first error wins.
fn finish(target: &Target, handle: &Handle, result: CliResult) -> CliResult {
    let closed = handle.close().map_err(|source| CliError::Azoth {
        context: format!("closing {}", target.dir.display()),
        source,
    });
    result.and(closed)
}
