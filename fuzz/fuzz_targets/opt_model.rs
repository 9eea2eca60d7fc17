#![no_main]
//! Fuzz target `opt_model`: see `zo_runner::fuzzing::opt_model` for the input layout.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = zo_runner::fuzzing::run("opt_model", &zo_runner::fuzzing::scratch("opt_model"), data);
});
