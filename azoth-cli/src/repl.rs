//! `azoth interactive`: a read-eval-print loop over one open database.
//!
//! Each line is split like a shell would (spaces separate words; "double" and 'single' quotes
//! keep them together; a backslash escapes the next character) and parsed with the same
//! argument definitions as the command line, so `put KEY VALUE --base64` means the same here.
//! On a terminal the line editor keeps a history (`~/.azoth_history`); from a pipe the lines
//! are read as they come, without prompts, and the session exits with code 1 if a command
//! failed.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::args::{KeyArgs, PutArgs, ScanArgs, StatsArgs};
use crate::commands::{events, kv, stats, verify};
use crate::error::{CliError, CliResult, is_broken_pipe};
use crate::open::{Handle, Target, detect_backend};
use crate::output::Output;

/// One line of the session.
#[derive(Debug, Parser)]
#[command(
    name = "",
    no_binary_name = true,
    disable_help_subcommand = true,
    disable_help_flag = true,
    disable_version_flag = true
)]
struct Line {
    #[command(subcommand)]
    command: ReplCommand,
}

/// The session's commands.
#[derive(Debug, Subcommand)]
enum ReplCommand {
    /// Store a key-value pair.
    Put(PutArgs),
    /// Print the value of a key.
    Get(KeyArgs),
    /// Delete a key.
    Delete(KeyArgs),
    /// Whether a key exists.
    Exists(KeyArgs),
    /// List live entries in key order.
    Scan(ScanArgs),
    /// Print events of the log.
    Events(ReplEventsArgs),
    /// Print statistics.
    Stats(StatsArgs),
    /// Check the log's integrity.
    Verify,
    /// Show the commands.
    Help,
    /// End the session.
    #[command(alias = "quit")]
    Exit,
}

/// `events` in a session (no `--follow`: it would never return to the prompt).
#[derive(Debug, Args)]
struct ReplEventsArgs {
    /// Only events after this id.
    #[arg(long, default_value_t = 0)]
    since: u64,
    /// At most this many events.
    #[arg(long)]
    limit: Option<usize>,
}

/// Where lines come from.
enum Source {
    Editor(Box<rustyline::DefaultEditor>, Option<PathBuf>),
    Pipe(std::io::StdinLock<'static>),
}

impl Source {
    /// The next line, or `None` at the end of input (Ctrl-D) or on Ctrl-C. A line that is not
    /// UTF-8 is an error of that line only (`Some(Err(…))`): the session goes on.
    fn next_line(&mut self) -> CliResult<Option<CliResult<String>>> {
        match self {
            Source::Editor(editor, _) => match editor.readline("azoth> ") {
                Ok(line) => {
                    if !line.trim().is_empty() {
                        let _ = editor.add_history_entry(line.as_str());
                    }
                    Ok(Some(Ok(line)))
                }
                Err(rustyline::error::ReadlineError::Eof)
                | Err(rustyline::error::ReadlineError::Interrupted) => Ok(None),
                Err(e) => Err(CliError::io(
                    "reading a line",
                    std::io::Error::other(e.to_string()),
                )),
            },
            Source::Pipe(stdin) => {
                let mut line = Vec::new();
                match stdin.read_until(b'\n', &mut line) {
                    Ok(0) => Ok(None),
                    Ok(_) => Ok(Some(String::from_utf8(line).map_err(|_| {
                        CliError::Input(
                            "the line is not UTF-8 (give binary keys and values with --base64)"
                                .to_owned(),
                        )
                    }))),
                    Err(e) => Err(CliError::io("reading standard input", e)),
                }
            }
        }
    }

    fn save_history(&mut self) {
        if let Source::Editor(editor, Some(path)) = self {
            if let Err(e) = editor.save_history(path) {
                tracing::debug!(error = %e, "could not save the session history");
            }
        }
    }
}

fn open_source() -> CliResult<Source> {
    if !std::io::stdin().is_terminal() {
        return Ok(Source::Pipe(std::io::stdin().lock()));
    }
    let mut editor = rustyline::DefaultEditor::new().map_err(|e| {
        CliError::io(
            "starting the line editor",
            std::io::Error::other(e.to_string()),
        )
    })?;
    let history = std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".azoth_history"));
    if let Some(path) = &history {
        // A missing history file is the normal first run.
        let _ = editor.load_history(path);
    }
    Ok(Source::Editor(Box::new(editor), history))
}

/// What the loop does after a line.
enum Flow {
    Continue,
    Exit,
}

/// Runs the session until `exit`, the end of input or Ctrl-C.
pub fn run(target: &Target, out: &mut Output<'_>) -> CliResult {
    let handle = target.open_session()?;
    let mut source = open_source()?;
    let terminal = matches!(source, Source::Editor(..));
    if terminal {
        out.line("Azoth interactive mode")?;
        out.line("Type 'help' for available commands, 'exit' to quit.")?;
    }
    let mut failures = 0_u64;
    let result = loop {
        // What was printed must be out before the line editor draws its prompt.
        if let Err(e) = out.flush() {
            break Err(e);
        }
        let line = match source.next_line() {
            Ok(Some(line)) => line,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        match line.and_then(|line| execute(&handle, target, &line, out)) {
            Ok(Flow::Continue) => {}
            Ok(Flow::Exit) => break Ok(()),
            Err(e) if is_broken_pipe(&e) => break Err(e),
            Err(e) => {
                failures += 1;
                // Output printed before the error comes first.
                let _ = out.flush();
                eprintln!("error: {e}");
            }
        }
    };
    source.save_history();
    if terminal && result.is_ok() {
        out.line("Goodbye!")?;
    }
    let closed = handle.close().map_err(|source| CliError::Azoth {
        context: format!("closing {}", target.dir.display()),
        source,
    });
    result?;
    closed?;
    if failures > 0 && !terminal {
        return Err(CliError::Input(format!(
            "{failures} command(s) of the session failed"
        )));
    }
    Ok(())
}

fn execute(handle: &Handle, target: &Target, line: &str, out: &mut Output<'_>) -> CliResult<Flow> {
    let words = split_words(line).map_err(CliError::Input)?;
    if words.is_empty() {
        return Ok(Flow::Continue);
    }
    let parsed = Line::try_parse_from(&words).map_err(|e| CliError::Input(one_line(&e)))?;
    // Beside a running application, see what it wrote since the last command.
    handle.refresh().map_err(|source| CliError::Azoth {
        context: "refreshing the read-only view".to_owned(),
        source,
    })?;
    match parsed.command {
        ReplCommand::Put(args) => kv::put(handle.writer(&target.dir)?, &args, out)?,
        ReplCommand::Delete(args) => kv::delete(handle.writer(&target.dir)?, &args, out)?,
        ReplCommand::Get(args) => kv::get(handle, &args, out)?,
        ReplCommand::Exists(args) => kv::exists(handle, &args, out)?,
        ReplCommand::Scan(args) => kv::scan(handle, &args, out)?,
        ReplCommand::Events(args) => {
            let selection = events::Selection {
                since: args.since,
                limit: args.limit,
                follow: false,
                dump: false,
            };
            events::print(handle, selection, out)?;
        }
        ReplCommand::Stats(args) => stats::stats(
            handle,
            &target.dir,
            detect_backend(&target.dir),
            args.prometheus,
            out,
        )?,
        ReplCommand::Verify => verify::verify(handle, out)?,
        ReplCommand::Help => {
            use clap::CommandFactory;
            let help = Line::command()
                .override_usage("COMMAND [ARGS]")
                .render_help()
                .to_string();
            out.text(&help)?;
        }
        ReplCommand::Exit => return Ok(Flow::Exit),
    }
    Ok(Flow::Continue)
}

/// clap's message without its usage block, on one line.
fn one_line(error: &clap::Error) -> String {
    let text = error.to_string();
    let message: Vec<&str> = text
        .lines()
        .take_while(|line| !line.starts_with("Usage:"))
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    message.join(" ").trim_start_matches("error: ").to_owned()
}

/// Splits a line into words: whitespace separates, quotes group, a backslash escapes.
fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '"' | '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some('\\') if c == '"' => match chars.next() {
                            Some(escaped) => word.push(escaped),
                            None => return Err("unterminated quote".into()),
                        },
                        Some(other) => word.push(other),
                        None => return Err("unterminated quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(escaped) => word.push(escaped),
                    None => return Err("a backslash at the end of the line".into()),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_like_a_shell() {
        assert_eq!(
            split_words(r#"put user:1001 "Alice Smith""#).unwrap(),
            ["put", "user:1001", "Alice Smith"]
        );
        assert_eq!(
            split_words(r#"put 'a b' c\ d "say \"hi\"" """#).unwrap(),
            ["put", "a b", "c d", "say \"hi\"", ""]
        );
        assert!(split_words("  ").unwrap().is_empty());
        assert_eq!(
            split_words(r#"put "open"#).unwrap_err(),
            "unterminated quote"
        );
        assert!(split_words("put \\").is_err());
    }

    #[test]
    fn lines_parse_with_the_command_line_definitions() {
        use clap::CommandFactory;
        Line::command().debug_assert();
        let line = Line::try_parse_from(["put", "k", "v", "--base64"]).unwrap();
        assert!(matches!(
            line.command,
            ReplCommand::Put(PutArgs { base64: true, .. })
        ));
        assert!(matches!(
            Line::try_parse_from(["quit"]).unwrap().command,
            ReplCommand::Exit
        ));
        assert!(Line::try_parse_from(["get"]).is_err());
    }
}
