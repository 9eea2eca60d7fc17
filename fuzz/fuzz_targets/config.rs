#![no_main]
//! Fuzz target `config`: see `zo_runner::fuzzing::config` for the input layout.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = zo_runner::fuzzing::run("config", &zo_runner::fuzzing::scratch("config"), data);
});
