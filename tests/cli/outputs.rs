//! What the commands write never costs the user data: outputs that would replace something
//! that is not an earlier output of the same kind are refused (one line, exit 2) and left as
//! they were, files are replaced only once complete, and a run directory whose logs cannot
//! rebuild its weights is refused before anything in it is cut.

use std::fs;
use std::path::Path;

use crate::common::{assert_code, expect_usage_error, run_in, stderr};

const QUICK: &[&str] = &[
    "--model",
    "builtin:quickstart-opt",
    "--task",
    "sst2",
    "--data",
    "builtin:quickstart",
    "-q",
];

/// `zo train QUICK --steps N --out OUT [extra…]`, which must succeed.
fn train(dir: &Path, steps: &str, out: &str, extra: &[&str]) {
    let mut args = vec!["train"];
    args.extend_from_slice(QUICK);
    args.extend_from_slice(&["--steps", steps, "--out", out]);
    args.extend_from_slice(extra);
    assert_code(&run_in(dir, &args), 0);
}

/// Every file under `dir` with its bytes, for "left as it was" (the run lock aside: it holds
/// the pid of its last holder).
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    for e in walk(dir).into_iter().filter(|p| !p.ends_with(".lock")) {
        v.push((e.display().to_string(), fs::read(&e).unwrap()));
    }
    v.sort();
    v
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn replay_and_merge_replace_only_an_earlier_saved_model() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    train(dir, "3", "run", &[]);
    train(dir, "3", "lora", &["--set", "adapter.kind=\"lora\""]);
    fs::create_dir(dir.join("mine")).unwrap();
    fs::write(dir.join("mine/thesis.txt"), "years of work").unwrap();
    fs::write(dir.join("afile"), "hi").unwrap();
    let before: Vec<_> = ["run", "lora", "mine"]
        .iter()
        .map(|p| snapshot(&dir.join(p)))
        .collect();
    // Replay into the run itself, a folder of the user's, a file.
    for (out, needle) in [
        ("run", "is this command's input"),
        ("mine", "holds `thesis.txt`"),
        ("afile", "exists and is not a directory"),
    ] {
        expect_usage_error(dir, &["replay", "run", "--out", out], &[out, needle]);
    }
    // Merge into the run directory, or over the adapter it reads.
    let merge = |out: &str| -> Vec<String> {
        ["merge", "builtin:quickstart-opt", "lora/final", out]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    for (out, needle) in [
        ("lora", "holds `"),
        ("lora/final", "is this command's input"),
    ] {
        let args = merge(out);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        expect_usage_error(dir, &args, &[out, needle]);
    }
    let after: Vec<_> = ["run", "lora", "mine"]
        .iter()
        .map(|p| snapshot(&dir.join(p)))
        .collect();
    assert!(before == after, "a refused output changed files");
    assert_eq!(fs::read_to_string(dir.join("afile")).unwrap(), "hi");
    // New or earlier outputs are written, and rewritten.
    for _ in 0..2 {
        assert_code(&run_in(dir, &["replay", "run", "--out", "rebuilt"]), 0);
        let args = merge("merged");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_code(&run_in(dir, &args), 0);
    }
    assert_eq!(
        fs::read(dir.join("rebuilt/model.safetensors")).unwrap(),
        fs::read(dir.join("run/final/model.safetensors")).unwrap()
    );
    assert!(dir.join("merged/model.safetensors").is_file());
}

#[test]
fn a_new_run_does_not_write_into_a_folder_of_the_users() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    fs::create_dir_all(dir.join("mx/final")).unwrap();
    fs::write(dir.join("mx/final/notes.txt"), "x").unwrap();
    fs::write(dir.join("mx/metrics.jsonl"), "{}\n").unwrap();
    let before = snapshot(&dir.join("mx"));
    let mut args = vec!["train"];
    args.extend_from_slice(QUICK);
    args.extend_from_slice(&["--steps", "2", "--out", "mx"]);
    expect_usage_error(dir, &args, &["mx", "but no run", "another --out"]);
    assert!(before == snapshot(&dir.join("mx")));
    // An empty directory is fine.
    fs::create_dir(dir.join("empty")).unwrap();
    train(dir, "2", "empty", &[]);
}

#[test]
fn eval_replaces_its_predictions_only_when_done() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    train(dir, "2", "run", &[]);
    fs::write(dir.join("p.jsonl"), "{\"old\":1}\n").unwrap();
    // A model that fails to load: the old predictions stay.
    fs::create_dir(dir.join("bad")).unwrap();
    for f in walk(&dir.join("run/final")) {
        fs::copy(&f, dir.join("bad").join(f.file_name().unwrap())).unwrap();
    }
    let cfg = fs::read_to_string(dir.join("bad/config.json")).unwrap();
    let cfg = cfg.replace("\"pad_token_id\": 1", "\"pad_token_id\": 1000000");
    assert!(cfg.contains("1000000"), "{cfg}");
    fs::write(dir.join("bad/config.json"), cfg).unwrap();
    let eval = |model: &str| {
        run_in(
            dir,
            &[
                "eval",
                "--model",
                model,
                "--task",
                "sst2",
                "--data",
                "builtin:quickstart",
                "--predictions",
                "p.jsonl",
            ],
        )
    };
    let o = eval("bad");
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("config.json") && stderr(&o).contains("`pad_token_id` = 1000000"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        fs::read_to_string(dir.join("p.jsonl")).unwrap(),
        "{\"old\":1}\n"
    );
    assert_code(&eval("run/final"), 0);
    let preds = fs::read_to_string(dir.join("p.jsonl")).unwrap();
    assert!(
        !preds.contains("\"old\"") && preds.lines().count() > 10,
        "{preds}"
    );
    // An output path that cannot be written is refused before the evaluation.
    expect_usage_error(
        dir,
        &[
            "eval",
            "--model",
            "run/final",
            "--task",
            "sst2",
            "--data",
            "builtin:quickstart",
            "--predictions",
            "nowhere/p.jsonl",
        ],
        &["nowhere/p.jsonl", "no directory"],
    );
}

#[test]
fn a_trajectory_that_cannot_rebuild_the_weights_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    // 12 steps, a checkpoint every 4 (the last one at the end).
    train(dir, "12", "run", &["--set", "train.checkpoint_every=4"]);
    let traj = dir.join("run/trajectory.jsonl");
    let text = fs::read_to_string(&traj).unwrap();
    let cut: String = text.lines().skip(3).map(|l| format!("{l}\n")).collect();
    fs::write(&traj, &cut).unwrap();
    expect_usage_error(
        dir,
        &["replay", "run", "--out", "rebuilt"],
        &["trajectory.jsonl", "incomplete"],
    );
    // A stopped run (its checkpoint at step 8, say) whose trajectory lost lines: the resume
    // refuses before cutting either log.
    fs::remove_file(dir.join("run/results.json")).unwrap();
    let state = dir.join("run/checkpoint/state.json");
    let s = fs::read_to_string(&state).unwrap();
    let v: serde_json::Value = serde_json::from_str(&s).unwrap();
    assert_eq!(v["trainer"]["step"], 12, "{s}");
    let before = snapshot(&dir.join("run"));
    expect_usage_error(
        dir,
        &["train", "-q", "--resume", "run"],
        &["trajectory.jsonl", "the checkpoint records", "incomplete"],
    );
    assert!(
        before == snapshot(&dir.join("run")),
        "the resume cut the logs"
    );
}

#[test]
fn reproduce_does_not_reuse_a_cell_run_with_other_settings() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let mini = |steps: &str| {
        run_in(
            dir,
            &[
                "reproduce",
                "-q",
                "--mini",
                "--seeds",
                "1",
                "--steps",
                steps,
                "--model",
                "builtin:tiny-opt",
                "--set",
                "train.batch_size=2",
                "--out",
                "rp",
            ],
        )
    };
    assert_code(&mini("3"), 0);
    let before = snapshot(&dir.join("rp"));
    let o = mini("6");
    assert_code(&o, 2);
    let err = stderr(&o);
    assert!(
        err.contains("holds a run of other settings") && err.contains("steps = 3"),
        "{err}"
    );
    assert!(before == snapshot(&dir.join("rp")));
    // The same settings again: every cell is done already.
    assert_code(&mini("3"), 0);
}

#[test]
fn command_line_mistakes_are_one_line_naming_the_help() {
    let d = tempfile::tempdir().unwrap();
    for (args, needles) in [
        (
            &["train", "--steps=-1"][..],
            &["--steps", "zo train --help"][..],
        ),
        (
            &["train", "--sett", "x=1"],
            &["--sett", "'--set'", "zo train --help"],
        ),
        (
            &["bench", "--figure", "b9"],
            &["possible values", "zo bench --help"],
        ),
        (
            &["--threads", "0", "train"],
            &["--threads", "zo train --help"],
        ),
        (&["nonsense"], &["nonsense", "zo --help"]),
        (&["train", "--seed", "9223372036854775808"], &["--seed"]),
    ] {
        expect_usage_error(d.path(), args, needles);
    }
    // Negative numbers reach the check that names the key.
    expect_usage_error(
        d.path(),
        &["train", "--lr", "-1", "--dry-run"],
        &["lr", "must be a finite number > 0"],
    );
    // So do values beyond what an f32 step can hold.
    for v in ["--lr=1e300", "--rho=1e-50"] {
        expect_usage_error(
            d.path(),
            &["train", v, "--dry-run"],
            &["outside the range of f32"],
        );
    }
}
