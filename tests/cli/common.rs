//! Helpers shared by the end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `zo` binary built by cargo for this test target.
pub fn zo() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_zo"));
    c.env_remove("RUST_LOG");
    c.env("HF_HUB_OFFLINE", "1");
    c
}

/// Runs `zo` with `args` in `cwd`, returning its output.
pub fn run_in(cwd: &Path, args: &[&str]) -> Output {
    zo().current_dir(cwd).args(args).output().expect("spawn zo")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the exit code, printing both streams when it differs.
pub fn assert_code(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
}

/// The repository root (where tasks/ and configs/ live).
#[allow(dead_code)]
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
