//! One file per subcommand; `dispatch` maps errors to exit codes.

mod eval;
mod merge;
mod prompts;
mod quickstart;
mod replay;
mod report;
mod reproduce;
pub mod train;

use crate::cli::{Cli, Command};
pub use crate::exit::{failed, usage, CmdError, CmdResult};

pub fn dispatch(cli: Cli) -> CmdResult {
    match cli.command {
        Some(Command::Report(a)) => report::run(&a),
        Some(Command::Eval(a)) => eval::run(&cli.global, &a),
        Some(Command::Merge(a)) => merge::run(&cli.global, &a),
        Some(Command::Replay(a)) => replay::run(&cli.global, &a),
        Some(Command::Reproduce(a)) => reproduce::run(&cli.global, &a),
        Some(Command::Prompts(a)) => prompts::run(&cli.global, &a),
        Some(Command::Bench(a)) => crate::bench::run(&a, cli.global.quiet).map_err(failed),
        Some(Command::Train(a)) if a.is_empty() => {
            quickstart::run(&cli.global, &Default::default())
        }
        Some(Command::Train(a)) => train::run(&cli.global, &a),
        Some(Command::Quickstart(a)) => quickstart::run(&cli.global, &a),
        None => quickstart::run(&cli.global, &Default::default()),
    }
}
