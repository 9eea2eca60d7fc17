//! One file per subcommand; `dispatch` maps errors to exit codes.

mod report;

use crate::cli::{Cli, Command};

/// An error with its exit status: 1 = the run failed, 2 = bad usage or bad input.
pub struct CmdError {
    pub code: u8,
    pub error: anyhow::Error,
}

/// Marks an error as bad usage / bad input (exit 2).
pub fn usage(error: anyhow::Error) -> CmdError {
    CmdError { code: 2, error }
}

/// Marks an error as a failed run (exit 1).
pub fn failed(error: anyhow::Error) -> CmdError {
    CmdError { code: 1, error }
}

pub type CmdResult = std::result::Result<(), CmdError>;

pub fn dispatch(cli: Cli) -> CmdResult {
    match cli.command {
        Some(Command::Report(a)) => report::run(&a),
        Some(Command::Train(_)) | Some(Command::Quickstart(_)) | None => Err(failed(
            anyhow::anyhow!("training is not wired into the binary yet"),
        )),
    }
}
