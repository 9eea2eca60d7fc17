#![no_main]
//! Fuzz target `tokenizer`: see `zo_runner::fuzzing::tokenizer` for the input layout.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = zo_runner::fuzzing::run("tokenizer", &zo_runner::fuzzing::scratch("tokenizer"), data);
});
