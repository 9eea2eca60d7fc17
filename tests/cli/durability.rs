//! A run directory under hostile conditions: kills during checkpoint writes, a full disk
//! during a save, a second writer, torn or corrupt logs, a checkpoint that executes code, and
//! the hub token kept out of every output.

use std::fs;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::{assert_code, repo_root, run_in, stderr, zo};

/// A short quickstart run that saves a checkpoint after every step (and best/ at every
/// evaluation), so that most of its time is spent writing checkpoints.
fn saving_run(steps: u64, out: &str) -> Vec<String> {
    let mut v: Vec<String> = ["quickstart", "-q", "--steps", &steps.to_string()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for s in [
        "train.batch_size=4",
        "train.eval_every=4",
        "train.checkpoint_every=1",
    ] {
        v.push("--set".into());
        v.push(s.into());
    }
    v.extend(["--out".into(), out.into()]);
    v
}

fn spawn(dir: &Path, args: &[String]) -> Child {
    zo().current_dir(dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn zo")
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ready() {
        assert!(t0.elapsed() < Duration::from_secs(120), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn sha(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn kills_during_checkpoint_writes_resume_to_the_uninterrupted_weights() {
    let d = tempfile::tempdir().unwrap();
    let steps = 16;
    assert_code(&run_in(d.path(), &args(&saving_run(steps, "ref"))), 0);
    let reference = sha(&d.path().join("ref/final/model.safetensors"));
    // Kills spread over the run: each lands after a number of checkpoint files appeared.
    for (trial, polls) in [(0, 3u32), (1, 25), (2, 60)] {
        let out = format!("t{trial}");
        let mut child = spawn(d.path(), &saving_run(steps, &out));
        let state = d.path().join(&out).join("checkpoint/state.json");
        wait_for("a first checkpoint", || state.exists());
        for _ in 0..polls {
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let o = run_in(d.path(), &["train", "-q", "--resume", &out]);
        if !d.path().join(&out).join("final").exists() {
            assert_code(&o, 0);
        }
        assert!(
            sha(&d.path().join(&out).join("final/model.safetensors")) == reference,
            "trial {trial}: resumed weights differ"
        );
    }
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn a_full_disk_during_a_save_is_one_line_exit_1_and_keeps_the_checkpoint() {
    let d = tempfile::tempdir().unwrap();
    let mut run = saving_run(40, "cut");
    run.extend(["--set".into(), "train.eval_every=0".into()]);
    let child = spawn(d.path(), &run);
    let state = d.path().join("cut/checkpoint/state.json");
    wait_for("a checkpoint", || state.exists());
    // Stopped cleanly (SIGTERM: a checkpoint, exit 130), so no torn log line warns on resume.
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    assert_eq!(child.wait_with_output().unwrap().status.code(), Some(130));
    let ckpt = d.path().join("cut/checkpoint");
    let before = (
        sha(&ckpt.join("state.json")),
        sha(&ckpt.join("model.safetensors")),
    );
    let model_kib = fs::metadata(ckpt.join("model.safetensors")).unwrap().len() / 1024;
    // RLIMIT_FSIZE below the model's size: the checkpoint copy cannot be written.
    let o = std::process::Command::new("sh")
        .current_dir(d.path())
        .env_remove("RUST_LOG")
        .env("HF_HUB_OFFLINE", "1")
        .arg("-c")
        .arg(format!(
            "ulimit -f {} && exec \"$0\" train -q --resume cut",
            model_kib / 2
        ))
        .arg(env!("CARGO_BIN_EXE_zo"))
        .output()
        .unwrap();
    assert_code(&o, 1);
    let err = stderr(&o);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("checkpoint") && err.contains("large"), "{err}");
    let after = (
        sha(&ckpt.join("state.json")),
        sha(&ckpt.join("model.safetensors")),
    );
    assert!(before == after, "the previous checkpoint changed");
    assert!(!d.path().join("cut/.checkpoint.tmp").exists());
    assert_code(&run_in(d.path(), &["train", "-q", "--resume", "cut"]), 0);
}

#[test]
fn a_run_stopped_before_its_first_checkpoint_resumes_from_step_0() {
    // What a kill before the first checkpoint leaves: run.toml, versions.json, the logs of the
    // steps so far (the first 9 lines), best/ of the first evaluation; no checkpoint.
    let d = tempfile::tempdir().unwrap();
    let mut run = saving_run(12, "ref");
    run.extend(["--set".into(), "train.checkpoint_every=0".into()]);
    assert_code(&run_in(d.path(), &args(&run)), 0);
    let (r, cut) = (d.path().join("ref"), d.path().join("cut"));
    fs::create_dir(&cut).unwrap();
    for f in ["run.toml", "versions.json"] {
        fs::copy(r.join(f), cut.join(f)).unwrap();
    }
    for f in ["metrics.jsonl", "trajectory.jsonl"] {
        let text = fs::read_to_string(r.join(f)).unwrap();
        let head: String = text.lines().take(9).map(|l| format!("{l}\n")).collect();
        fs::write(cut.join(f), head).unwrap();
    }
    fs::create_dir(cut.join("best")).unwrap();
    for e in fs::read_dir(r.join("best")).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), cut.join("best").join(e.file_name())).unwrap();
    }
    let o = run_in(d.path(), &["train", "-q", "--resume", "cut"]);
    assert_code(&o, 0);
    assert!(stderr(&o).contains("no checkpoint yet"), "{}", stderr(&o));
    for f in [
        "final/model.safetensors",
        "trajectory.jsonl",
        "results.json",
    ] {
        assert!(sha(&cut.join(f)) == sha(&r.join(f)), "{f} differs");
    }
}

#[test]
fn a_run_whose_run_toml_was_edited_is_neither_resumed_nor_replayed() {
    let d = tempfile::tempdir().unwrap();
    let run = saving_run(6, "r");
    assert_code(&run_in(d.path(), &args(&run)), 0);
    fs::remove_file(d.path().join("r/results.json")).unwrap();
    let toml = d.path().join("r/run.toml");
    let text = fs::read_to_string(&toml).unwrap();
    assert!(text.contains("batch_size = 4"), "{text}");
    fs::write(&toml, text.replace("batch_size = 4", "batch_size = 5")).unwrap();
    for cmd in [
        &["train", "-q", "--resume", "r"][..],
        &["replay", "r", "--out", "rebuilt"],
    ] {
        crate::common::expect_usage_error(
            d.path(),
            cmd,
            &["r/run.toml: changed since the run started"],
        );
    }
}

#[test]
fn a_second_writer_is_refused_naming_the_pid_and_a_stale_lock_does_not_block() {
    let d = tempfile::tempdir().unwrap();
    let mut first = spawn(d.path(), &saving_run(400, "run"));
    let lock = d.path().join("run/.lock");
    let pid = first.id().to_string();
    wait_for("the run's lock", || {
        fs::read_to_string(&lock).is_ok_and(|s| s.trim() == pid)
            && d.path().join("run/checkpoint/state.json").exists()
    });
    for second in [
        vec!["train", "-q", "--resume", "run"],
        vec!["quickstart", "-q", "--steps", "3", "--out", "run"],
    ] {
        let o = run_in(d.path(), &second);
        assert_code(&o, 2);
        let err = stderr(&o);
        assert!(err.contains(&format!("process {pid}")), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
    first.kill().unwrap();
    first.wait().unwrap();
    // The killed run's lock file remains, naming a dead process: it does not block.
    assert_eq!(fs::read_to_string(&lock).unwrap().trim(), pid);
    assert_code(&run_in(d.path(), &["train", "-q", "--resume", "run"]), 0);
}

#[test]
fn a_torn_last_log_line_is_dropped_and_a_corrupt_one_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let mut run = saving_run(40, "cut");
    run.extend(["--set".into(), "train.eval_every=0".into()]);
    let mut child = spawn(d.path(), &run);
    let state = d.path().join("cut/checkpoint/state.json");
    wait_for("a checkpoint", || state.exists());
    child.kill().unwrap();
    child.wait().unwrap();
    let metrics = d.path().join("cut/metrics.jsonl");
    let traj = d.path().join("cut/trajectory.jsonl");
    // A corrupt line in the middle: refused, naming the file and line.
    let good_metrics = fs::read_to_string(&metrics).unwrap();
    let mut lines: Vec<&str> = good_metrics.lines().collect();
    lines[0] = "{\"kind\": \"step\", garbage";
    fs::write(&metrics, lines.join("\n") + "\n").unwrap();
    let o = run_in(d.path(), &["train", "-q", "--resume", "cut"]);
    assert_code(&o, 2);
    let err = stderr(&o);
    assert!(err.contains("metrics.jsonl:1: corrupt line"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    // A torn last line (the write a kill cut): dropped with a warning, and the run goes on.
    fs::write(&metrics, good_metrics.clone() + "{\"kind\":\"st").unwrap();
    let mut t = fs::read(&traj).unwrap();
    t.extend_from_slice(b"{\"step\": 9");
    fs::write(&traj, t).unwrap();
    let o = zo()
        .current_dir(d.path())
        .args(["train", "-q", "--resume", "cut"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert!(stderr(&o).contains("torn last line"), "{}", stderr(&o));
}

#[test]
fn a_checkpoint_whose_pickle_runs_a_command_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let fixtures = repo_root().join("crates/zo-models/tests/data/pickle");
    let model = d.path().join("evil");
    fs::create_dir(&model).unwrap();
    fs::copy(
        fixtures.join("evil_posix_system.bin"),
        model.join("pytorch_model.bin"),
    )
    .unwrap();
    fs::write(
        model.join("config.json"),
        r#"{"vocab_size": 8, "hidden_size": 4, "num_hidden_layers": 1, "ffn_dim": 8,
            "max_position_embeddings": 8, "num_attention_heads": 1}"#,
    )
    .unwrap();
    let o = run_in(
        d.path(),
        &[
            "train",
            "--model",
            "evil",
            "--set",
            "model.tokenizer=builtin:tiny",
            "--steps",
            "1",
        ],
    );
    assert_code(&o, 2);
    let err = stderr(&o);
    assert!(
        err.contains("pytorch_model.bin: unsafe pickle") && err.contains("posix.system"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!d
        .path()
        .join("runs")
        .join("sst2-as2p-s0")
        .join("run.toml")
        .exists());
}

#[test]
fn the_hub_token_never_appears_in_output_or_run_toml() {
    let d = tempfile::tempdir().unwrap();
    let token = "hf_zoTestSecretToken0123456789";
    // A hub model over the network (an endpoint that refuses connections) and cache-only,
    // with every log level on.
    for offline in ["0", "1"] {
        let o = zo()
            .current_dir(d.path())
            .env("HF_TOKEN", token)
            .env("HF_HUB_OFFLINE", offline)
            .env("HF_ENDPOINT", "http://127.0.0.1:9")
            .env("HF_HOME", d.path().join("hf"))
            .env("RUST_LOG", "trace")
            .args([
                "-v",
                "train",
                "--model",
                "someone/private-model",
                "--steps",
                "1",
            ])
            .output()
            .unwrap();
        assert_code(&o, 2);
        let all = format!("{}{}", stderr(&o), String::from_utf8_lossy(&o.stdout));
        assert!(!all.contains(token), "the token leaked:\n{all}");
        assert!(!all.contains("zoTestSecret"), "the token leaked:\n{all}");
    }
    // A run made with the token set: nothing of it in the run directory's text files.
    let o = zo()
        .current_dir(d.path())
        .env("HF_TOKEN", token)
        .env("RUST_LOG", "trace")
        .args(["-v", "quickstart", "--steps", "2", "--out", "r"])
        .output()
        .unwrap();
    assert_code(&o, 0);
    let all = format!("{}{}", stderr(&o), String::from_utf8_lossy(&o.stdout));
    assert!(!all.contains(token), "the token leaked:\n{all}");
    for f in ["run.toml", "versions.json", "metrics.jsonl", "results.json"] {
        let text = fs::read_to_string(d.path().join("r").join(f)).unwrap();
        assert!(!text.contains(token), "{f} holds the token");
    }
}
