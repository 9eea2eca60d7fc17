//! MeZO's protocol options end to end: `task.max_length` truncation on a model with few
//! positions, in-context evaluation (`zo eval --demos K`) and the non-differentiable objective
//! (`task.objective = "non_diff"`).

use std::fs;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use zo_models::opt::config::{Config, Preset};
use zo_models::opt::save::SaveOptions;
use zo_models::OptModel;

use crate::common::{assert_code, repo_root, run_in, stderr, stdout};

/// A random tiny OPT with only `positions` learned positions, saved in the HF layout.
fn small_window_model(dir: &Path, positions: usize) -> PathBuf {
    let mut cfg = Config::preset(Preset::Tiny);
    cfg.max_position_embeddings = positions;
    let m = OptModel::random(&cfg, 7, DType::F32, &Device::Cpu).unwrap();
    let out = dir.join(format!("opt-{positions}pos"));
    m.save_pretrained(&out, None, &SaveOptions::default())
        .unwrap();
    out
}

/// A data directory whose train and validation files are the task's fixture rows.
pub(crate) fn fixture_data(dir: &Path, task: &str) -> PathBuf {
    let out = dir.join(format!("data-{task}"));
    fs::create_dir_all(&out).unwrap();
    let rows = repo_root().join(format!("tasks/{task}/fixture.jsonl"));
    fs::copy(&rows, out.join("train.jsonl")).unwrap();
    fs::copy(&rows, out.join("validation.jsonl")).unwrap();
    out
}

fn predictions(path: &Path) -> Vec<serde_json::Value> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub(crate) fn eval(
    cwd: &Path,
    model: &Path,
    task: &str,
    data: &Path,
    extra: &[&str],
) -> std::process::Output {
    let mut a: Vec<String> = [
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--task",
        task,
        "--data",
        data.to_str().unwrap(),
        "--split",
        "test",
        "--set",
        "model.tokenizer=builtin:tiny",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(extra.iter().map(|s| s.to_string()));
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    run_in(cwd, &a)
}

#[test]
fn a_64_position_model_evaluates_long_prompts_with_mezos_truncation() {
    let d = tempfile::tempdir().unwrap();
    let model = small_window_model(d.path(), 64);
    for task in ["rte", "record", "squad", "drop"] {
        let data = fixture_data(d.path(), task);
        let preds = d.path().join(format!("{task}.jsonl"));
        let o = eval(
            d.path(),
            &model,
            task,
            &data,
            &["--predictions", preds.to_str().unwrap()],
        );
        assert_code(&o, 0);
        let rows = predictions(&preds);
        assert!(!rows.is_empty(), "{task}");
        for p in &rows {
            if task == "squad" || task == "drop" {
                // max_length 64 − 50 new tokens: the prompt is cut to 14 tokens, and the
                // generation has its whole budget (never an empty answer for lack of room).
                let n = p["new_tokens"].as_u64().unwrap();
                assert!(n >= 1, "{task}: {p}");
            } else {
                assert!(p["scores"].as_array().unwrap().len() >= 2, "{task}: {p}");
            }
        }
    }
    // A max_length beyond the model's positions is refused, naming the key.
    let data = fixture_data(d.path(), "rte");
    let o = eval(
        d.path(),
        &model,
        "rte",
        &data,
        &["--set", "task.max_length=100"],
    );
    assert_code(&o, 2);
    assert!(stderr(&o).contains("task.max_length"), "{}", stderr(&o));
    // A generation budget that leaves no prompt is refused, naming the key.
    let data = fixture_data(d.path(), "squad");
    let o = eval(
        d.path(),
        &model,
        "squad",
        &data,
        &["--set", "task.max_new_tokens=63"],
    );
    assert_code(&o, 2);
    assert!(stderr(&o).contains("task.max_new_tokens"), "{}", stderr(&o));
}

#[test]
fn in_context_evaluation_puts_demonstrations_before_each_example() {
    let d = tempfile::tempdir().unwrap();
    let model = Path::new("builtin:tiny-opt");
    let data = fixture_data(d.path(), "sst2");
    let mut scores = Vec::new();
    for k in ["0", "2"] {
        let preds = d.path().join(format!("icl{k}.jsonl"));
        let o = eval(
            d.path(),
            model,
            "sst2",
            &data,
            &["--demos", k, "--predictions", preds.to_str().unwrap()],
        );
        assert_code(&o, 0);
        let out: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(out["demos"], k.parse::<u64>().unwrap());
        assert!(out["accuracy"].is_number(), "{out}");
        scores.push(
            predictions(&preds)
                .iter()
                .map(|p| p["scores"].clone())
                .collect::<Vec<_>>(),
        );
    }
    // Zero-shot is the plain evaluation; demonstrations change every prompt, so every score.
    let plain = d.path().join("plain.jsonl");
    let o = eval(
        d.path(),
        model,
        "sst2",
        &data,
        &["--predictions", plain.to_str().unwrap()],
    );
    assert_code(&o, 0);
    let plain: Vec<_> = predictions(&plain)
        .iter()
        .map(|p| p["scores"].clone())
        .collect();
    assert_eq!(scores[0], plain);
    assert_eq!(scores[1].len(), plain.len());
    for (a, b) in scores[1].iter().zip(&plain) {
        assert_ne!(a, b);
    }
    // The in-context protocol has no dev split.
    let o = run_in(
        d.path(),
        &[
            "eval",
            "--model",
            "builtin:tiny-opt",
            "--task",
            "sst2",
            "--data",
            data.to_str().unwrap(),
            "--demos",
            "2",
            "--split",
            "dev",
        ],
    );
    assert_code(&o, 2);
    assert!(stderr(&o).contains("--demos"), "{}", stderr(&o));
}

#[test]
fn the_non_differentiable_objective_trains_with_every_optimizer() {
    let d = tempfile::tempdir().unwrap();
    let data = fixture_data(d.path(), "squad");
    let methods: [(&str, &[&str]); 4] = [
        ("ga", &["optimizer.method=\"ga\"", "optimizer.lr=1e-3"]),
        ("stp", &["optimizer.method=\"stp\"", "optimizer.lr=1e-3"]),
        (
            "s2p",
            &[
                "optimizer.method=\"s2p\"",
                "optimizer.option=2",
                "optimizer.l=1e3",
            ],
        ),
        ("as2p", &[]),
    ];
    for (method, opt) in methods {
        let out = format!("run-{method}");
        let mut a: Vec<&str> = vec![
            "train",
            "-q",
            "--model",
            "builtin:tiny-opt",
            "--task",
            "squad",
            "--data",
            data.to_str().unwrap(),
            "--steps",
            "2",
            "--batch-size",
            "2",
            "--out",
            &out,
            "--set",
            "model.tokenizer=builtin:tiny",
            "--set",
            "task.objective=non_diff",
            "--set",
            "task.max_new_tokens=4",
            "--set",
            "task.num_dev=1",
            "--set",
            "train.eval_every=0",
        ];
        for kv in opt {
            a.extend(["--set", kv]);
        }
        let o = run_in(d.path(), &a);
        assert_code(&o, 0);
        let metrics = fs::read_to_string(d.path().join(&out).join("metrics.jsonl")).unwrap();
        let losses: Vec<f64> = metrics
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["kind"] == "step")
            .map(|v| v["loss"].as_f64().unwrap())
            .collect();
        assert_eq!(losses.len(), 2, "{method}: {metrics}");
        // f = −F1 ∈ [−1, 0].
        assert!(
            losses.iter().all(|l| (-1.0..=0.0).contains(l)),
            "{method}: {losses:?}"
        );
    }
    // Candidate tasks have no generation to score: refused, naming the key.
    let data = fixture_data(d.path(), "sst2");
    let o = run_in(
        d.path(),
        &[
            "train",
            "--model",
            "builtin:tiny-opt",
            "--task",
            "sst2",
            "--data",
            data.to_str().unwrap(),
            "--set",
            "task.objective=non_diff",
        ],
    );
    assert_code(&o, 2);
    assert!(stderr(&o).contains("task.objective"), "{}", stderr(&o));
}

/// `model.compute = "bf16"`: on a CPU with AVX512-BF16 the products round their inputs to bf16,
/// so the losses move a little off the f32 ones (and stay close); elsewhere the products stay
/// f32 and the run says so.
#[test]
fn bf16_compute_changes_the_losses_only_where_the_cpu_has_bf16_products() {
    let d = tempfile::tempdir().unwrap();
    let mut losses = Vec::new();
    for c in ["f32", "bf16"] {
        let out = format!("run-{c}");
        let o = run_in(
            d.path(),
            &[
                "quickstart",
                "-q",
                "--steps",
                "3",
                "--set",
                "train.eval_every=0",
                "--set",
                "train.eval_at_start=false",
                "--set",
                "train.checkpoint_every=0",
                "--set",
                &format!("model.compute=\"{c}\""),
                "--out",
                &out,
            ],
        );
        assert_code(&o, 0);
        let run = fs::read_to_string(d.path().join(&out).join("run.toml")).unwrap();
        assert!(run.contains(&format!("compute = \"{c}\"")), "{run}");
        let metrics = fs::read_to_string(d.path().join(&out).join("metrics.jsonl")).unwrap();
        let f: Vec<f64> = metrics
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["kind"] == "step")
            .map(|v| v["f_plus"].as_f64().unwrap())
            .collect();
        assert_eq!(f.len(), 3);
        losses.push((f, stderr(&o)));
    }
    let (f32, bf16) = (&losses[0].0, &losses[1].0);
    #[cfg(target_arch = "x86_64")]
    let has_bf16 = std::arch::is_x86_feature_detected!("avx512bf16")
        && std::arch::is_x86_feature_detected!("avx512f");
    #[cfg(not(target_arch = "x86_64"))]
    let has_bf16 = false;
    if has_bf16 {
        assert_ne!(f32, bf16);
        for (a, b) in f32.iter().zip(bf16) {
            assert!((a - b).abs() < 0.05 * a.abs(), "f32 {a} vs bf16 {b}");
        }
    } else {
        assert_eq!(f32, bf16);
        assert!(losses[1].1.contains("AVX512-BF16"), "{}", losses[1].1);
    }
}
