//! The command's errors, their one-line messages and the exit codes.

use std::fmt;
use std::path::{Path, PathBuf};

use azoth::AzothError;

/// Exit code of a successful command.
pub const EXIT_OK: i32 = 0;
/// Exit code of a failed command.
pub const EXIT_ERROR: i32 = 1;
/// Exit code of a usage error (clap's convention).
pub const EXIT_USAGE: i32 = 2;
/// Exit code of `verify` when it found damage.
pub const EXIT_DAMAGED: i32 = 3;

/// Why a command failed.
#[derive(Debug)]
pub enum CliError {
    /// A write command found the directory held by another process.
    Locked {
        /// The data directory as the user named it.
        dir: PathBuf,
    },
    /// A command other than `init` and `import` named a directory that holds no database.
    NoDatabase {
        /// The data directory as the user named it.
        dir: PathBuf,
    },
    /// An error of the database, with what the command was doing.
    Azoth {
        /// What failed, e.g. "opening ./azoth_data".
        context: String,
        /// The cause.
        source: AzothError,
    },
    /// Invalid input: an argument, a line of a dump, a base64 string.
    Input(String),
    /// An I/O error outside the database (reading a dump, writing output).
    Io {
        /// What failed.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// `verify` found damage; the report was already printed.
    Damaged,
}

impl CliError {
    /// Wraps a database error with what the command was doing; `Locked` becomes the plain
    /// message about exclusive access.
    pub fn azoth(context: impl Into<String>, dir: &Path, source: AzothError) -> Self {
        match source {
            AzothError::Locked { .. } => CliError::Locked {
                dir: dir.to_path_buf(),
            },
            source => CliError::Azoth {
                context: context.into(),
                source,
            },
        }
    }

    /// An I/O error with what the command was doing.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        CliError::Io {
            context: context.into(),
            source,
        }
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Damaged => EXIT_DAMAGED,
            _ => EXIT_ERROR,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Locked { dir } => write!(
                f,
                "the data directory {} is locked by another process (an application has it \
                 open); write commands need exclusive access",
                dir.display()
            ),
            CliError::NoDatabase { dir } => write!(
                f,
                "no Azoth database in {0}; to create one there, run `azoth -d {0} init`",
                dir.display()
            ),
            CliError::Azoth { context, source } => write!(f, "{context}: {source}"),
            CliError::Input(message) => f.write_str(message),
            CliError::Io { context, source } => write!(f, "{context}: {source}"),
            CliError::Damaged => f.write_str("verification found damage"),
        }
    }
}

impl std::error::Error for CliError {}

/// The result of a command.
pub type CliResult<T = ()> = Result<T, CliError>;

/// Output errors: a closed pipe (`azoth dump | head`) is not worth a message.
pub fn output_error(e: std::io::Error) -> CliError {
    CliError::io("writing the output", e)
}

/// True when the error is a closed output pipe, which ends the command quietly.
pub fn is_broken_pipe(e: &CliError) -> bool {
    matches!(e, CliError::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locked_becomes_the_plain_message() {
        let e = CliError::azoth(
            "opening",
            Path::new("./x"),
            AzothError::Locked {
                path: PathBuf::from("/abs/x"),
            },
        );
        assert_eq!(
            e.to_string(),
            "the data directory ./x is locked by another process (an application has it open); \
             write commands need exclusive access"
        );
        assert_eq!(e.exit_code(), EXIT_ERROR);
    }

    #[test]
    fn no_database_names_the_directory_and_how_to_create_one() {
        let e = CliError::NoDatabase {
            dir: PathBuf::from("./azoth_dta"),
        };
        assert_eq!(
            e.to_string(),
            "no Azoth database in ./azoth_dta; to create one there, run `azoth -d ./azoth_dta init`"
        );
        assert_eq!(e.exit_code(), EXIT_ERROR);
    }

    #[test]
    fn damage_has_its_own_exit_code() {
        assert_eq!(CliError::Damaged.exit_code(), EXIT_DAMAGED);
    }
}
