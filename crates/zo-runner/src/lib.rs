//! `zo`: zeroth-order fine-tuning (GA/MeZO, STP, S2P, AS2P) of OPT and ResNet on candle.
//! CLI and glue only; the training loop lives in zo-core.
//!
//! The binary (`main.rs`) calls [`main`]. The library target exists so that the input parsers
//! of the runner (layered TOML settings, a run directory's resume state) can be driven from
//! outside the binary: [`fuzzing`] holds one entry point per input format, shared by the
//! fuzz targets in `fuzz/` and the corpus replay test.

mod adapters;
mod bench;
mod cli;
mod commands;
pub mod dist;
mod exit;
pub mod fuzzing;
mod layers;
mod lock;
mod paper;
mod pipeline;
mod progress;
mod report;
mod rundir;
mod settings;
mod training;

use std::process::ExitCode;

/// The whole program: parse the command line, run the command, map its error to an exit
/// status and one line on stderr.
pub fn main() -> ExitCode {
    // Past a file-size limit (RLIMIT_FSIZE) a write then fails with EFBIG, reported like a
    // full disk, instead of the signal killing the process mid-save.
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
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
