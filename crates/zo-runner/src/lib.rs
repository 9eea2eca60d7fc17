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
mod fingerprint;
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
    let result = commands::dispatch(args);
    if let Err(err) = &result {
        // An interrupted run (130) stopped on every rank after the same step: a normal end.
        match dist::current().filter(|w| w.size() > 1 && err.code != 130) {
            // A failed rank ends every rank (the others would wait for it in the next
            // exchange); the error names the rank.
            Some(w) => {
                // One write, so that the launcher does not interleave it with another rank's.
                let line = format!(
                    "zo: rank {} of {}: {}; stopping every rank\n",
                    w.rank(),
                    w.size(),
                    one_line(&err.error)
                );
                let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
                w.abort(i32::from(err.code))
            }
            None => eprintln!("zo: {}", one_line(&err.error)),
        }
    }
    dist::finalize();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => ExitCode::from(err.code),
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
