#![no_main]
//! Fuzz target `pytorch_bin`: see `zo_runner::fuzzing::pytorch_bin` for the input layout.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = zo_runner::fuzzing::run(
        "pytorch_bin",
        &zo_runner::fuzzing::scratch("pytorch_bin"),
        data,
    );
});
