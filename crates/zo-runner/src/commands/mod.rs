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
    let only_one = |name: &str| {
        crate::dist::single_process_only(name, |k| std::env::var(k).ok()).map_err(usage)
    };
    match &cli.command {
        Some(Command::Report(_)) => only_one("report")?,
        Some(Command::Merge(_)) => only_one("merge")?,
        Some(Command::Replay(_)) => only_one("replay")?,
        Some(Command::Prompts(_)) => only_one("prompts")?,
        Some(Command::Bench(_)) => only_one("bench")?,
        Some(
            Command::Train(_) | Command::Quickstart(_) | Command::Eval(_) | Command::Reproduce(_),
        )
        | None => {}
    }
    match cli.command {
        Some(Command::Report(a)) => report::run(&a),
        Some(Command::Eval(a)) => eval::run(&cli.global, &a),
        Some(Command::Merge(a)) => merge::run(&cli.global, &a),
        Some(Command::Replay(a)) => replay::run(&cli.global, &a),
        Some(Command::Reproduce(a)) => reproduce::run(&cli.global, &a),
        Some(Command::Prompts(a)) => prompts::run(&cli.global, &a),
        Some(Command::Bench(a)) => crate::bench::run(&a, cli.global.quiet),
        Some(Command::Train(a)) if a.is_empty() => {
            quickstart::run(&cli.global, &Default::default())
        }
        Some(Command::Train(a)) => train::run(&cli.global, &a),
        Some(Command::Quickstart(a)) => quickstart::run(&cli.global, &a),
        None => quickstart::run(&cli.global, &Default::default()),
    }
}
