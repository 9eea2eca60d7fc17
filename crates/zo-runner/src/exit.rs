//! Errors with their exit status, shared by the subcommands and the training loop.

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
