//! Where commands print: standard output for the command line, the same writer for the REPL,
//! in text or JSON.

use std::fmt::Display;
use std::io::Write;

use serde_json::Value;

use crate::error::{CliResult, output_error};

/// A command's output.
pub struct Output<'a> {
    /// Print JSON instead of text.
    pub json: bool,
    writer: &'a mut dyn Write,
}

impl<'a> Output<'a> {
    /// Output to `writer`, in JSON when `json` is set.
    pub fn new(writer: &'a mut dyn Write, json: bool) -> Self {
        Self { json, writer }
    }

    /// One line of text.
    pub fn line(&mut self, text: impl Display) -> CliResult {
        writeln!(self.writer, "{text}").map_err(output_error)
    }

    /// Raw bytes and a newline (a value, exactly as stored).
    pub fn raw_line(&mut self, bytes: &[u8]) -> CliResult {
        self.writer.write_all(bytes).map_err(output_error)?;
        self.writer.write_all(b"\n").map_err(output_error)
    }

    /// One JSON value on one line.
    pub fn json_line(&mut self, value: &Value) -> CliResult {
        serde_json::to_writer(&mut *self.writer, value)
            .map_err(|e| output_error(std::io::Error::from(e)))?;
        self.writer.write_all(b"\n").map_err(output_error)
    }

    /// Text without a newline (a prompt).
    pub fn text(&mut self, text: &str) -> CliResult {
        self.writer.write_all(text.as_bytes()).map_err(output_error)
    }

    /// Pushes what was printed to the terminal or pipe (`--follow` prints as events come).
    pub fn flush(&mut self) -> CliResult {
        self.writer.flush().map_err(output_error)
    }
}
