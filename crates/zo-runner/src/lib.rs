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
    keep_freed_activations();
    let args = cli::parse();
    if let Err(msg) = args
        .global
        .apply_threads()
        .and_then(|()| args.global.apply_max_isa())
        .and_then(|()| args.global.apply_candle_ops())
    {
        eprintln!("zo: {msg}");
        return ExitCode::from(2);
    }
    cli::init_logging(&args.global);
    tracing::info!(isa = %zo_core::cpu::describe(), "instruction set of the CPU kernels");
    if zo_models::candle_ops() {
        tracing::info!("models run on candle's own ops (--candle-ops), not zo's CPU kernels");
    }
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

/// glibc's allocator, left as it is, hands a forward's activations (candle tensors of 3–13 MB
/// at opt-125m's B16 × T64) fresh pages on every call: its dynamic mmap threshold and the heap
/// trim at 2× that threshold give the freed buffers back to the kernel, and the next forward
/// faults them in again, zeroed. On `zo bench --figure b2 --loss task` (opt-125m shapes) that was
/// ≈ 62 000 page faults per optimizer step, ≈ 0.13–0.16 s of kernel CPU time per step
/// (docs/BENCH.md round 12). Buffers under 32 MB (the most glibc's `mallopt` accepts) now come
/// from the heap, and up to 1 GB of freed heap stays with the process for the next forward, so
/// a step after the first faults in nothing. Freed memory is reused, not added to: the peak RSS
/// is the live set's peak as before. Larger buffers (a 13B model's activations, the weights)
/// are mapped and unmapped as before. Other allocators and libcs: nothing to set.
fn keep_freed_activations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets the allocator's parameters; it is called before any thread
    // starts, and a refused value (return 0) leaves glibc's default in place.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// The cause chain on one line, "what: why: root cause", skipping a cause whose text its
/// parent already includes (typed errors often quote their source) and the backtrace candle
/// appends to its errors' text under RUST_BACKTRACE.
fn one_line(err: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in err.chain() {
        let text = without_backtrace(&cause.to_string());
        if !msg.contains(&text) {
            if !msg.is_empty() {
                msg.push_str(": ");
            }
            msg.push_str(&text);
        }
    }
    msg.replace('\n', " ")
}

/// `text` up to a backtrace's first frame (a line `   0: …`, as std's `Backtrace` prints it).
fn without_backtrace(text: &str) -> String {
    let mut kept = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("0: ") {
            break;
        }
        kept.push(line);
    }
    kept.join("\n").trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn an_error_is_one_line_without_a_backtrace() {
        // What candle's `Error::WithBacktrace` prints under RUST_BACKTRACE=1, inside a context.
        let candle = "unsupported dtype BF16 for op matmul\n   0: candle_core::error::Error::bt\n             at /src/error.rs:260:25\n   1: <candle_core::cpu_backend::MatMul as Map2>::f";
        let err = anyhow::anyhow!(candle.to_string()).context("training failed");
        assert_eq!(
            one_line(&err),
            "training failed: unsupported dtype BF16 for op matmul"
        );
        let plain = anyhow::anyhow!("first line\nsecond line: row 0: bad").context("data.jsonl");
        assert_eq!(
            one_line(&plain),
            "data.jsonl: first line second line: row 0: bad"
        );
    }
}
