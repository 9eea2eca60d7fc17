//! The `zo` binary: everything lives in the library target (`lib.rs`).

fn main() -> std::process::ExitCode {
    zo_runner::main()
}
