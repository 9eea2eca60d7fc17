//! `zo`: zeroth-order fine-tuning (GA/MeZO, STP, S2P, AS2P) of OPT and ResNet on candle.
//! CLI and glue only; the training loop lives in zo-core.

mod bench;
mod cli;
mod commands;
mod layers;
mod pipeline;
mod progress;
mod report;
mod rundir;
mod settings;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::parse();
    cli::init_logging(&args.global);
    match commands::dispatch(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // The whole cause chain on one line: "zo: <what> : <why> : <root cause>".
            eprintln!("zo: {:#}", err.error);
            ExitCode::from(err.code)
        }
    }
}
