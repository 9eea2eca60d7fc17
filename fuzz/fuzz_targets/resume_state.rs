#![no_main]
//! Fuzz target `resume_state`: see `zo_runner::fuzzing::resume_state` for the input layout.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = zo_runner::fuzzing::run(
        "resume_state",
        &zo_runner::fuzzing::scratch("resume_state"),
        data,
    );
});
