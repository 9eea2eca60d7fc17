//! Ctrl-C / SIGTERM: the first finishes the current step and writes a checkpoint (the trainer
//! polls the flag between steps); a second, while that checkpoint is written, exits at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Installs the handler and returns the flag it raises. Installing twice in one process (a
/// second run from the same binary, as `zo reproduce` does) keeps the first handler, whose
/// flag is then shared.
pub fn stop_flag() -> Arc<AtomicBool> {
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    let flag = FLAG
        .get_or_init(|| {
            let stop = Arc::new(AtomicBool::new(false));
            let handler_flag = stop.clone();
            let _ = ctrlc::set_handler(move || {
                if handler_flag.swap(true, Ordering::SeqCst) {
                    std::process::exit(130);
                }
                eprintln!("\nzo: interrupted: finishing the step and writing a checkpoint (Ctrl-C again to abort)");
            });
            stop
        })
        .clone();
    flag
}
