//! `--candle-ops` / ZO_CANDLE_OPS: the whole command on candle's own ops, the op sequence a
//! model runs on `--device cuda` (training with the task's scoring, evaluation, SQuAD-format
//! generation through the KV cache, a ResNet), here on the CPU. It runs, its losses are zo's
//! kernels' within rounding, and the run directory and the log say what it ran on.

use std::fs;
use std::path::Path;

use crate::common::{assert_code, run_in, stderr, stdout, zo};
use crate::protocol::{eval, fixture_data};
use crate::train::{args, quick, steps_of as steps};
use crate::vision::{resnet_args, synthetic_cifar10};

/// The first step's two losses of runs `a` and `b` agree to `rel` (the same weights, the same
/// direction: only the forward's rounding differs), and every later loss is finite.
fn assert_first_losses_close(root: &Path, a: &str, b: &str, rel: f64) {
    let (sa, sb) = (steps(&root.join(a)), steps(&root.join(b)));
    assert_eq!(sa.len(), sb.len(), "{a} vs {b}: step lines");
    for key in ["f_plus", "f_minus"] {
        let (x, y) = (sa[0][key].as_f64().unwrap(), sb[0][key].as_f64().unwrap());
        assert!(
            (x - y).abs() <= rel * x.abs().max(y.abs()),
            "{a} vs {b}: step 1 {key} {x} vs {y}"
        );
    }
    for v in sa.iter().chain(&sb) {
        assert!(v["loss"].as_f64().is_some_and(f64::is_finite), "{v}");
    }
}

/// Whether a run directory's `versions.json` records candle's ops.
fn recorded_candle(dir: &Path) -> bool {
    let v: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("versions.json")).unwrap()).unwrap();
    match v.get("ops") {
        None => false,
        Some(o) => {
            assert_eq!(o, "candle", "{v}");
            true
        }
    }
}

/// An OPT run and a ResNet run (f32 and bf16 weights: GPU runs are 16-bit) and a
/// SQuAD-format evaluation, each on zo's kernels and on candle's ops.
#[test]
fn runs_on_candle_ops_land_where_the_kernels_do() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    synthetic_cifar10(&root.join("cifar"), 8, 10);
    let squad = fixture_data(root, "squad");
    for (tag, flag) in [("kernels", None), ("candle", Some("--candle-ops"))] {
        for dtype in ["f32", "bf16"] {
            let mut a = quick(3, &[&format!("model.dtype=\"{dtype}\"")]);
            a.extend(flag.map(String::from));
            a.extend(["--out".into(), format!("opt-{dtype}-{tag}")]);
            assert_code(&run_in(root, &args(&a)), 0);
        }
        let mut a = resnet_args("cifar", "ga", 2, &["train.eval_every=0"]);
        a.extend(flag.map(String::from));
        a.extend(["--out".into(), format!("resnet-{tag}")]);
        assert_code(&run_in(root, &args(&a)), 0);
        // A bf16 ResNet (candle's CPU convolution has no bf16 product: zo widens it).
        let bf16 = ["train.eval_every=0", "model.dtype=\"bf16\""];
        let mut a = resnet_args("cifar", "ga", 2, &bf16);
        a.extend(flag.map(String::from));
        a.extend(["--out".into(), format!("resnet-bf16-{tag}")]);
        assert_code(&run_in(root, &args(&a)), 0);
        let preds = root.join(format!("squad-{tag}.jsonl"));
        let mut extra = vec!["-q", "--set", "task.max_new_tokens=16"];
        extra.extend(flag);
        extra.extend(["--predictions", preds.to_str().unwrap()]);
        let o = eval(root, Path::new("builtin:tiny-opt"), "squad", &squad, &extra);
        assert_code(&o, 0);
    }
    let runs = [
        ("opt-f32", 1e-5),
        ("opt-bf16", 1e-3),
        ("resnet", 1e-5),
        ("resnet-bf16", 1e-3),
    ];
    for (run, rel) in runs {
        let (k, c) = (format!("{run}-kernels"), format!("{run}-candle"));
        assert_first_losses_close(root, &k, &c, rel);
        assert!(!recorded_candle(&root.join(&k)), "{k}");
        assert!(recorded_candle(&root.join(&c)), "{c}");
    }
    // A ZO signal in bf16 on both: the two points' losses differ (scored from logits rounded
    // to bf16, they came out equal on candle's ops and every step was 0).
    for run in ["opt-bf16-kernels", "opt-bf16-candle", "resnet-bf16-candle"] {
        let s = steps(&root.join(run));
        assert_ne!(s[0]["f_plus"], s[0]["f_minus"], "{run}: {}", s[0]);
    }
    // Greedy decoding of a random model in f32: the same tokens (no near-tie at these seeds).
    let answers = |tag: &str| -> Vec<String> {
        fs::read_to_string(root.join(format!("squad-{tag}.jsonl")))
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    };
    let kernels = answers("kernels");
    assert!(!kernels.is_empty(), "no SQuAD predictions written");
    assert_eq!(kernels, answers("candle"));
}

/// The evaluation of every task format on candle's ops: each candidate's score within rounding
/// of zo's kernels' (ties, which a random model has, may break either way, so the scores are
/// compared, not the picks), and DROP's generations the same tokens.
#[test]
fn every_task_evaluates_on_candle_ops() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    for task in ["sst2", "rte", "copa", "record", "drop"] {
        let data = fixture_data(root, task);
        let lines = |tag: &str, flag: Option<&str>| -> Vec<serde_json::Value> {
            let preds = root.join(format!("{task}-{tag}.jsonl"));
            let mut extra = vec!["-q", "--set", "task.max_new_tokens=8"];
            extra.extend(flag);
            extra.extend(["--predictions", preds.to_str().unwrap()]);
            let o = eval(root, Path::new("builtin:tiny-opt"), task, &data, &extra);
            assert_code(&o, 0);
            fs::read_to_string(&preds)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        };
        let (k, c) = (
            lines("kernels", None),
            lines("candle", Some("--candle-ops")),
        );
        assert!(!k.is_empty(), "{task}");
        assert_eq!(k.len(), c.len(), "{task}");
        for (k, c) in k.iter().zip(&c) {
            assert_eq!(k["id"], c["id"], "{task}");
            match k["scores"].as_array() {
                Some(ks) => {
                    let cs = c["scores"].as_array().unwrap();
                    assert_eq!(ks.len(), cs.len(), "{task}");
                    for (x, y) in ks.iter().zip(cs) {
                        let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                        assert!((x - y).abs() <= 1e-4, "{task} {}: {x} vs {y}", k["id"]);
                    }
                }
                None => assert_eq!(k, c, "{task}"),
            }
        }
    }
}

/// The log names candle's ops; ZO_CANDLE_OPS turns them on as the flag does, and a value that
/// is neither on nor off is one line and exit 2 before anything runs.
#[test]
fn the_environment_switch_is_read_and_checked() {
    let d = tempfile::tempdir().unwrap();
    let with_env = |value: &str, out: &str| {
        zo().current_dir(d.path())
            .env("ZO_CANDLE_OPS", value)
            .args(["quickstart", "-v", "--steps", "1", "--out", out])
            .output()
            .unwrap()
    };
    let o = with_env("maybe", "x");
    assert_code(&o, 2);
    let err = stderr(&o);
    assert!(
        err.contains("ZO_CANDLE_OPS=maybe") && err.lines().count() == 1,
        "{err}"
    );
    assert!(!d.path().join("x").exists());
    let o = with_env("on", "y");
    assert_code(&o, 0);
    assert!(stderr(&o).contains("candle's own ops"), "{}", stderr(&o));
    assert!(recorded_candle(&d.path().join("y")));
    let res: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(res["accuracy"].as_f64().is_some(), "{res}");
    let o = with_env("0", "z");
    assert_code(&o, 0);
    assert!(!stderr(&o).contains("candle's own ops"));
    assert!(!recorded_candle(&d.path().join("z")));
    // `zo bench` names candle's products as the kernel it timed.
    let o = run_in(
        d.path(),
        &[
            "bench",
            "-q",
            "--model",
            "tiny-opt",
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--figure",
            "b1",
            "-B",
            "1",
            "--candle-ops",
        ],
    );
    assert_code(&o, 0);
    let b1: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["figure"] == "B1")
        .collect();
    assert!(!b1.is_empty());
    for v in b1 {
        assert_eq!(v["kernel"], "candle", "{v}");
    }
}

/// A run started on candle's ops and resumed on zo's kernels (or the other way) says that its
/// steps from there are not an uninterrupted run's bits; the same ops resume silently.
#[test]
fn resuming_on_other_ops_warns() {
    let d = tempfile::tempdir().unwrap();
    let mut a = quick(2, &["train.checkpoint_every=1"]);
    a.extend(["--candle-ops".into(), "--out".into(), "r".into()]);
    assert_code(&run_in(d.path(), &args(&a)), 0);
    let warning = "started on candle's ops and resumes on zo's CPU kernels";
    let o = run_in(d.path(), &["train", "--resume", "r", "--candle-ops"]);
    assert_code(&o, 0);
    assert!(!stderr(&o).contains("resumes on"), "{}", stderr(&o));
    let o = run_in(d.path(), &["train", "--resume", "r"]);
    assert_code(&o, 0);
    assert!(stderr(&o).contains(warning), "{}", stderr(&o));
}
