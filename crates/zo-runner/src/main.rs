//! `zo`: zeroth-order fine-tuning (GA/MeZO, STP, S2P, AS2P) of OPT and ResNet on candle.
//! CLI and glue only; the training loop lives in zo-core.

mod bench;
mod cli;
mod commands;
mod exit;
mod layers;
mod paper;
mod pipeline;
mod progress;
mod report;
mod rundir;
mod settings;
mod training;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::parse();
    cli::init_logging(&args.global);
    match commands::dispatch(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("zo: {}", one_line(&err.error));
            ExitCode::from(err.code)
        }
    }
}

/// The cause chain on one line, "what: why: root cause", skipping a cause whose text its
/// parent already includes (typed errors often quote their source).
fn one_line(err: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !msg.contains(&text) {
            if !msg.is_empty() {
                msg.push_str(": ");
            }
            msg.push_str(&text);
        }
    }
    msg.replace('\n', " ")
}
