//! `zo train` / `zo quickstart` / `zo eval` / `zo replay` end to end on the built-in tiny OPT.

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{assert_code, kill_and_resume, run_in, stderr, stdout, zo};

/// Quickstart settings shrunk for tests: 4 examples per batch, no evaluation before the end.
pub(crate) fn quick(steps: u64, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "quickstart".into(),
        "-q".into(),
        "--steps".into(),
        steps.to_string(),
    ];
    for s in [
        "train.batch_size=4",
        "train.eval_every=0",
        "train.eval_at_start=false",
        "train.checkpoint_every=0",
    ]
    .iter()
    .chain(extra)
    {
        v.push("--set".into());
        v.push((*s).to_string());
    }
    v
}

pub(crate) fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The step lines of a run directory's `metrics.jsonl`.
pub(crate) fn steps_of(dir: &Path) -> Vec<serde_json::Value> {
    fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "step")
        .collect()
}

#[test]
fn every_optimizer_trains_and_logs_its_queries() {
    let d = tempfile::tempdir().unwrap();
    // (optimizer settings, queries per step)
    let cases: [(&[&str], u64); 5] = [
        (&["optimizer.method=\"ga\"", "optimizer.lr=1e-3"], 2),
        (
            &[
                "optimizer.method=\"ga\"",
                "optimizer.lr=1e-3",
                "optimizer.dist=\"rademacher\"",
            ],
            2,
        ),
        (&["optimizer.method=\"stp\"", "optimizer.lr=1e-3"], 3),
        (
            &[
                "optimizer.method=\"s2p\"",
                "optimizer.option=2",
                "optimizer.l=1e3",
            ],
            4,
        ),
        (&[], 2), // AS2P, the quickstart's own
    ];
    for (i, (opt, q)) in cases.iter().enumerate() {
        let out = format!("run{i}");
        // Setting optimizer.method to another method replaces the quickstart's AS2P table.
        let mut v = quick(6, opt);
        v.extend(["--out".to_string(), out.clone()]);
        let o = run_in(d.path(), &args(&v));
        assert_code(&o, 0);
        let res: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert!(res["accuracy"].as_f64().is_some(), "{res}");
        let steps = steps_of(&d.path().join(&out));
        assert_eq!(steps.len(), 6);
        for (k, s) in steps.iter().enumerate() {
            assert_eq!(s["step"], k as u64);
            assert_eq!(s["queries"], *q, "{s}");
            assert_eq!(s["queries_total"], (k as u64 + 1) * q);
            assert!(s["loss"].as_f64().unwrap().is_finite());
            for key in [
                "f_plus", "f_minus", "gamma", "sigma", "coef", "lr", "rho", "ms", "seconds",
                "sweeps",
            ] {
                assert!(s.get(key).is_some(), "{key} missing in {s}");
            }
        }
        // GA and AS2P fuse: at most 3 sweeps in any step, 2 in steady state.
        if *q == 2 {
            assert!(
                steps.iter().all(|s| s["sweeps"].as_u64().unwrap() <= 3),
                "{steps:?}"
            );
        }
        assert!(d
            .path()
            .join(&out)
            .join("final/model.safetensors")
            .is_file());
    }
}

#[test]
fn quickstart_learns_and_report_reads_it() {
    // The quickstart's own settings, shortened to 100 steps: dev evaluated before the first
    // step and at steps 50 and 100.
    let d = tempfile::tempdir().unwrap();
    let o = run_in(
        d.path(),
        &[
            "quickstart",
            "--steps",
            "100",
            "--set",
            "train.eval_every=50",
            "--set",
            "train.checkpoint_every=50",
        ],
    );
    assert_code(&o, 0);
    let steps = steps_of(&d.path().join("runs/quickstart"));
    let mean = |s: &[serde_json::Value]| {
        s.iter().map(|v| v["loss"].as_f64().unwrap()).sum::<f64>() / s.len() as f64
    };
    // First and last fifths (20 steps each); with the quickstart's seed the mean falls from
    // ≈ 0.67 to ≈ 0.55 (release build).
    let (first, last) = (mean(&steps[..20]), mean(&steps[80..]));
    assert!(
        last < first - 0.05,
        "loss did not fall: first 20 steps {first:.4}, last 20 {last:.4}"
    );
    let evals: Vec<serde_json::Value> =
        fs::read_to_string(d.path().join("runs/quickstart/metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["kind"] == "eval")
            .collect();
    let at: Vec<(u64, f64)> = evals
        .iter()
        .map(|v| {
            (
                v["step"].as_u64().unwrap(),
                v["dev_accuracy"].as_f64().unwrap(),
            )
        })
        .collect();
    // The pre-trained model scores SST-2's label words alike: chance before the first step
    // (0.50: every example a tie); then 1.00 on the 200 dev rows (release build, seed 42).
    assert_eq!(at.iter().map(|a| a.0).collect::<Vec<_>>(), [0, 50, 100]);
    assert!((at[0].1 - 0.5).abs() <= 0.05, "{at:?}");
    assert!(at[2].1 >= 0.9, "dev accuracy did not rise: {at:?}");
    assert!(
        stderr(&o).contains(&format!(
            "dev accuracy {:.2} (step 0) → {:.2} (step 100)",
            at[0].1, at[2].1
        )),
        "{}",
        stderr(&o)
    );
    assert!(d
        .path()
        .join("runs/quickstart/best/model.safetensors")
        .is_file());
    let o = run_in(
        d.path(),
        &[
            "report",
            "runs/quickstart",
            "--base",
            "AS2P",
            "--out",
            "rep",
        ],
    );
    assert_code(&o, 0);
    // The base row: every threshold is reached within the base run (≤ 1), none is "–".
    let md = stdout(&o);
    let row = md
        .lines()
        .find(|l| l.starts_with("| AS2P |"))
        .unwrap_or_else(|| panic!("{md}"));
    let cells: Vec<f64> = row
        .split('|')
        .skip(2)
        .filter(|c| !c.trim().is_empty())
        .map(|c| c.trim().parse().unwrap())
        .collect();
    assert_eq!(cells.len(), 4, "{row}");
    // (Printed with two decimals: a threshold met in the first 0.5 % of queries shows 0.00.)
    assert!(cells.iter().all(|&c| (0.0..=1.0).contains(&c)), "{row}");
}

#[test]
fn eval_of_saved_model_equals_the_in_memory_evaluation() {
    let d = tempfile::tempdir().unwrap();
    let o = run_in(d.path(), &args(&quick(8, &[])));
    assert_code(&o, 0);
    let res: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(res["evaluated"], "final");
    // `zo eval` of the saved file on the test split, from `cwd`, with `extra` options.
    let eval = |cwd: &std::path::Path, model: &str, extra: &[&str]| {
        let mut a = vec![
            "eval",
            "--model",
            model,
            "--task",
            "sst2",
            "--data",
            "builtin:quickstart",
            "--set",
            "model.tokenizer=builtin:tiny",
            "--split",
            "test",
        ];
        a.extend_from_slice(extra);
        let o = run_in(cwd, &a);
        assert_code(&o, 0);
        serde_json::from_str::<serde_json::Value>(&stdout(&o)).unwrap()
    };
    let file = "runs/quickstart/final/model.safetensors";
    let ev = eval(d.path(), file, &["--predictions", "p.jsonl"]);
    assert_eq!(ev["accuracy"], res["accuracy"]);
    // Per-example scores are identical too (weights are stored exactly).
    let a = fs::read_to_string(d.path().join("runs/quickstart/predictions_test.jsonl")).unwrap();
    let b = fs::read_to_string(d.path().join("p.jsonl")).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.lines().count(), 200);
    // The file named bare, from its own directory: that directory, not an empty hub id.
    let bare = eval(
        &d.path().join("runs/quickstart/final"),
        "model.safetensors",
        &[],
    );
    assert_eq!(bare["accuracy"], res["accuracy"]);
}

#[test]
fn replaying_the_trajectory_rebuilds_the_weights_exactly() {
    let d = tempfile::tempdir().unwrap();
    let o = run_in(
        d.path(),
        &args(&quick(
            10,
            &["train.eval_every=4", "train.checkpoint_every=3"],
        )),
    );
    assert_code(&o, 0);
    let o = run_in(d.path(), &["replay", "runs/quickstart", "--out", "rebuilt"]);
    assert_code(&o, 0);
    let a = fs::read(d.path().join("runs/quickstart/final/model.safetensors")).unwrap();
    let b = fs::read(d.path().join("rebuilt/model.safetensors")).unwrap();
    assert!(a == b, "replayed weights differ from the trained ones");
    // `--device` picks where to replay (a GPU run's weights rebuilt on the CPU); a device this
    // build lacks, or no device at all, is a clean error.
    let o = run_in(
        d.path(),
        &[
            "replay",
            "runs/quickstart",
            "--device",
            "cpu",
            "--out",
            "on-cpu",
        ],
    );
    assert_code(&o, 0);
    assert!(fs::read(d.path().join("on-cpu/model.safetensors")).unwrap() == a);
    let o = run_in(
        d.path(),
        &["replay", "runs/quickstart", "--device", "tpu", "--out", "x"],
    );
    assert_code(&o, 2);
    assert!(stderr(&o).contains("`tpu` is not one of"), "{}", stderr(&o));
    let o = run_in(
        d.path(),
        &[
            "replay",
            "runs/quickstart",
            "--device",
            "cuda:0",
            "--out",
            "x",
        ],
    );
    assert_ne!(o.status.code(), Some(0));
    assert_ne!(o.status.code(), Some(101), "{}", stderr(&o));
    assert!(!d.path().join("x").exists());
    let traj = fs::metadata(d.path().join("runs/quickstart/trajectory.jsonl"))
        .unwrap()
        .len();
    assert!(traj < 64 * 1024, "trajectory of 10 steps is {traj} bytes");
    // A run made with another direction generator is neither replayed nor resumed.
    let v = d.path().join("runs/quickstart/versions.json");
    let text = fs::read_to_string(&v).unwrap();
    // A one-process run records its one rank.
    let versions: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(versions["world_size"], 1, "{text}");
    let run_toml = fs::read_to_string(d.path().join("runs/quickstart/run.toml")).unwrap();
    assert!(run_toml.trim_end().ends_with(", 1 rank"), "{run_toml}");
    let ours = serde_json::from_str::<serde_json::Value>(&text).unwrap()["generator"]
        .as_u64()
        .unwrap();
    fs::write(
        &v,
        text.replace(&format!("\"generator\": {ours}"), "\"generator\": 1"),
    )
    .unwrap();
    for a in [
        &["replay", "runs/quickstart", "--out", "other"][..],
        &["train", "--resume", "runs/quickstart"][..],
    ] {
        let o = run_in(d.path(), a);
        assert_code(&o, 2);
        assert!(stderr(&o).contains("generator version 1"), "{}", stderr(&o));
    }
    assert!(!d.path().join("other").exists());
}

#[test]
fn resume_after_sigkill_gives_the_uninterrupted_weights() {
    let d = tempfile::tempdir().unwrap();
    let steps = 60;
    let settings = ["train.checkpoint_every=5", "train.eval_every=10"];
    let mut full = quick(steps, &settings);
    full.extend(["--out".into(), "full".into()]);
    assert_code(&run_in(d.path(), &args(&full)), 0);

    let o = kill_and_resume(d.path(), &quick(steps, &settings), "cut", 15);
    assert_same_run(d.path(), "full", "cut");
    let _ = stderr(&o);
}

/// Two run directories under `root` hold the same run: final weights, step lines (apart from
/// wall times) and trajectory, bit for bit.
pub(crate) fn assert_same_run(root: &Path, a: &str, b: &str) {
    let weights = |dir: &str| fs::read(root.join(dir).join("final/model.safetensors")).unwrap();
    assert!(
        weights(a) == weights(b),
        "{a} and {b}: the final weights differ"
    );
    let strip = |dir: &str| -> Vec<String> {
        steps_of(&root.join(dir))
            .into_iter()
            .map(|mut v| {
                v.as_object_mut().unwrap().remove("ms");
                v.as_object_mut().unwrap().remove("seconds");
                v.to_string()
            })
            .collect()
    };
    let (la, lb) = (strip(a), strip(b));
    assert_eq!(la.len(), lb.len(), "step lines");
    for (x, y) in la.iter().zip(&lb) {
        assert_eq!(x, y, "first differing step line");
    }
    let trajectory = |dir: &str| fs::read(root.join(dir).join("trajectory.jsonl")).unwrap();
    assert!(trajectory(a) == trajectory(b), "trajectories differ");
}

#[test]
fn the_thread_count_is_the_users_and_changes_no_bit_of_a_run() {
    let d = tempfile::tempdir().unwrap();
    for n in ["1", "3"] {
        let mut a = quick(6, &[]);
        // -v instead of -q: the training's first log line names the thread count.
        a[1] = "-v".into();
        a.extend([
            "--threads".into(),
            n.into(),
            "--out".into(),
            format!("t{n}"),
        ]);
        let o = run_in(d.path(), &args(&a));
        assert_code(&o, 0);
        // Plain text: stderr is a pipe here, so the log has no colour codes.
        assert!(
            stderr(&o).contains(&format!("threads={n}")),
            "{}",
            stderr(&o)
        );
    }
    assert_same_run(d.path(), "t1", "t3");
    // 1025 and more: a typo's thousands of threads would stall the machine before any step.
    for bad in ["0", "-1", "two", "1025", "100000"] {
        let o = run_in(d.path(), &["quickstart", &format!("--threads={bad}")]);
        assert_code(&o, 2);
        assert!(stderr(&o).contains("--threads"), "{}", stderr(&o));
    }
    // The same bound on rayon's own variable; --threads overrides it.
    let with_5000 = |a: &[&str]| {
        let mut c = zo();
        c.current_dir(d.path()).env("RAYON_NUM_THREADS", "5000");
        c.args(a).output().unwrap()
    };
    let o = with_5000(&["quickstart", "-q", "--steps", "1", "--out", "env"]);
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("RAYON_NUM_THREADS=5000"),
        "{}",
        stderr(&o)
    );
    assert!(!d.path().join("env").exists());
    let mut a = quick(1, &[]);
    a.extend(["--threads".into(), "1".into(), "--out".into(), "env".into()]);
    assert_code(&with_5000(&args(&a)), 0);
}

#[test]
fn reproduce_runs_the_table6_cells_of_a_task_and_reports_them() {
    let d = tempfile::tempdir().unwrap();
    let configs = crate::common::repo_root().join("configs/paper");
    let configs = configs.to_str().unwrap();
    let o = run_in(
        d.path(),
        &[
            "reproduce",
            "-q",
            "--configs",
            configs,
            "--tasks",
            "sst2",
            "--model",
            "builtin:tiny-opt",
            "--steps",
            "5",
            "--set",
            "task.data=builtin:quickstart",
            "--set",
            "model.tokenizer=builtin:tiny",
            "--set",
            "train.batch_size=2",
        ],
    );
    assert_code(&o, 0);
    for cell in ["sst2-ga", "sst2-ga-constant", "sst2-stp", "sst2-as2p"] {
        let dir = d.path().join("runs/table6").join(cell);
        assert_eq!(steps_of(&dir).len(), 5, "{cell}");
        let run = fs::read_to_string(dir.join("run.toml")).unwrap();
        assert!(run.contains("source = \"builtin:tiny-opt\""), "{run}");
    }
    let csv = fs::read_to_string(d.path().join("runs/table6/report/report.csv")).unwrap();
    for label in ["GA", "GA constant", "STP", "AS2P"] {
        assert_eq!(
            csv.lines()
                .filter(|l| l.split(',').nth(1) == Some(label))
                .count(),
            4,
            "{label}\n{csv}"
        );
    }
    // Running it again keeps the finished cells.
    let o = run_in(
        d.path(),
        &[
            "reproduce",
            "--configs",
            configs,
            "--tasks",
            "sst2",
            "--model",
            "builtin:tiny-opt",
            "--steps",
            "5",
            "--set",
            "task.data=builtin:quickstart",
            "--set",
            "model.tokenizer=builtin:tiny",
            "--set",
            "train.batch_size=2",
            "--baselines",
            "--demos",
            "2",
        ],
    );
    assert_code(&o, 0);
    assert_eq!(
        stderr(&o).matches("done already").count(),
        4,
        "{}",
        stderr(&o)
    );
    // The baselines: the untrained model zero-shot (= a plain `zo eval`) and in context.
    let md = fs::read_to_string(d.path().join("runs/table6/report/report.md")).unwrap();
    assert!(md.contains("## Baselines without training"), "{md}");
    let b: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(d.path().join("runs/table6/baselines/sst2.json")).unwrap(),
    )
    .unwrap();
    let o = run_in(
        d.path(),
        &[
            "eval",
            "--model",
            "builtin:tiny-opt",
            "--task",
            "sst2",
            "--data",
            "builtin:quickstart",
            "--set",
            "model.tokenizer=builtin:tiny",
            "--split",
            "test",
        ],
    );
    assert_code(&o, 0);
    let plain: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(b["zero_shot"], plain["accuracy"], "{b}");
    assert_eq!(b["demos"], 2);
    assert!(
        md.contains("| sst2 | builtin:tiny-opt | accuracy |"),
        "{md}"
    );
}

#[test]
fn ctrl_c_checkpoints_and_the_run_resumes_to_the_same_weights() {
    let d = tempfile::tempdir().unwrap();
    let steps = 150;
    let mut full = quick(steps, &[]);
    full.extend(["--out".into(), "full".into()]);
    let mut cut = quick(steps, &[]);
    cut.extend(["--out".into(), "cut".into()]);
    let child = zo()
        .current_dir(d.path())
        .args(&cut)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the run is under way (a few steps logged).
    let t0 = Instant::now();
    while fs::read_to_string(d.path().join("cut/metrics.jsonl")).map_or(0, |s| s.lines().count())
        < 5
    {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the run did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("--resume"), "{err}");
    let state: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(d.path().join("cut/checkpoint/state.json")).unwrap(),
    )
    .unwrap();
    let stopped_at = state["trainer"]["step"].as_u64().unwrap();
    assert!(
        stopped_at > 0 && stopped_at < steps,
        "stopped at {stopped_at}"
    );
    assert_eq!(steps_of(&d.path().join("cut")).len() as u64, stopped_at);

    assert_code(&run_in(d.path(), &["train", "-q", "--resume", "cut"]), 0);
    assert_code(&run_in(d.path(), &args(&full)), 0);
    let a = fs::read(d.path().join("full/final/model.safetensors")).unwrap();
    let b = fs::read(d.path().join("cut/final/model.safetensors")).unwrap();
    assert!(
        a == b,
        "interrupted + resumed weights differ from the uninterrupted run"
    );
}

#[test]
fn a_non_finite_loss_stops_the_run_naming_the_step() {
    let d = tempfile::tempdir().unwrap();
    // A learning rate that sends the weights to infinity within a few steps.
    let o = run_in(
        d.path(),
        &args(&quick(
            50,
            &[
                "optimizer.method=\"ga\"",
                "optimizer.lr=1e30",
                "train.checkpoint_every=1",
            ],
        )),
    );
    assert_code(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains("the loss became") && err.contains("at step"),
        "{err}"
    );
    assert!(err.contains("checkpoint"), "{err}");
    // The last good checkpoint is there and loads.
    let state: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(d.path().join("runs/quickstart/checkpoint/state.json")).unwrap(),
    )
    .unwrap();
    assert!(state["trainer"]["step"].as_u64().unwrap() < 50);
    assert!(!d.path().join("runs/quickstart/final").exists());
}
