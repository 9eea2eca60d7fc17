#![no_main]
//! Fuzz target `task_rows`: see `zo_runner::fuzzing::task_rows` for the input layout.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = zo_runner::fuzzing::run("task_rows", &zo_runner::fuzzing::scratch("task_rows"), data);
});
