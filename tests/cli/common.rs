//! Helpers shared by the end-to-end tests.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

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

/// Runs `zo` and checks exit code 2, a message containing every `needle`, and no panic.
#[allow(dead_code)]
pub fn expect_usage_error(dir: &Path, args: &[&str], needles: &[&str]) {
    let o = run_in(dir, args);
    assert_code(&o, 2);
    let err = stderr(&o);
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}:\n{err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.trim_end().lines().count() == 1, "not one line:\n{err}");
}

/// The repository root (where tasks/ and configs/ live).
#[allow(dead_code)]
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Starts `zo args` in `dir`, SIGKILLs it once `out/checkpoint/state.json` records at least
/// `min_step` steps (polling), checks it had not finished, and resumes it with
/// `zo train -q --resume out`, returning the resume's output. The run must write checkpoints
/// often enough (and run long enough) for the kill to land mid-run; a run that ends first, or
/// that writes no checkpoint within two minutes, fails the test.
#[allow(dead_code)]
pub fn kill_and_resume(dir: &Path, args: &[String], out: &str, min_step: u64) -> Output {
    let mut child = zo()
        .current_dir(dir)
        .args(args)
        .args(["--out", out])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn zo");
    let state = dir.join(out).join("checkpoint/state.json");
    let t0 = Instant::now();
    loop {
        let done = fs::read_to_string(&state)
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .and_then(|v| v["trainer"]["step"].as_u64())
            .unwrap_or(0);
        if done >= min_step {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no checkpoint at step {min_step}"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !dir.join(out).join("final").exists(),
        "killed too late to test anything"
    );
    let o = run_in(dir, &["train", "-q", "--resume", out]);
    assert_code(&o, 0);
    o
}
