//! LoRA and trainable subsets end to end on the quickstart's small OPT: the base files stay
//! byte-identical (so their sha256 too), the adapter is saved alone in PEFT's layout, `zo eval
//! --adapter` and `zo merge` give the same scores, resume continues exactly.

use std::fs;
use std::path::Path;

use crate::common::{assert_code, run_in, stdout};

fn quick(steps: u64, out: &str, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "quickstart".into(),
        "-q".into(),
        "--steps".into(),
        steps.to_string(),
        "--out".into(),
        out.into(),
    ];
    for s in [
        "train.batch_size=4",
        "train.eval_every=0",
        "train.eval_at_start=false",
        "train.checkpoint_every=0",
        "task.num_eval=16",
        "task.num_dev=8",
    ]
    .iter()
    .chain(extra)
    {
        v.push("--set".into());
        v.push((*s).to_string());
    }
    v
}

fn run(dir: &Path, v: &[String]) -> std::process::Output {
    let a: Vec<&str> = v.iter().map(String::as_str).collect();
    run_in(dir, &a)
}

fn json(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

#[test]
fn lora_trains_only_the_adapter_and_merges() {
    let d = tempfile::tempdir().unwrap();
    // A base model on disk: one full-parameter step of the quickstart, saved in HF layout.
    assert_code(&run(d.path(), &quick(1, "base", &[])), 0);
    let base = d.path().join("base/final");
    let before = fs::read(base.join("model.safetensors")).unwrap();
    let src = "model.source=\"base/final\"";
    let lora = "adapter.kind=\"lora\"";
    let o = run(
        d.path(),
        &quick(8, "lora", &[src, lora, "optimizer.lr=1e-2"]),
    );
    assert_code(&o, 0);
    let trained = json(&o);
    // The base is never written; the run's directories hold the adapter alone.
    assert_eq!(fs::read(base.join("model.safetensors")).unwrap(), before);
    let fin = d.path().join("lora/final");
    assert!(fin.join("adapter_config.json").is_file());
    assert!(fin.join("adapter_model.safetensors").is_file());
    assert!(!fin.join("model.safetensors").exists());
    let run_toml = fs::read_to_string(d.path().join("lora/run.toml")).unwrap();
    assert!(run_toml.contains("[adapter]"), "{run_toml}");

    // eval base + adapter = the run's own final evaluation = eval of the merged model.
    let eval_adapter = run_in(
        d.path(),
        &[
            "eval",
            "-q",
            "--model",
            "base/final",
            "--adapter",
            "lora/final",
            "--task",
            "sst2",
            "--data",
            "builtin:quickstart",
            "--split",
            "test",
            "--set",
            "task.num_eval=16",
        ],
    );
    assert_code(&eval_adapter, 0);
    let with_adapter = json(&eval_adapter);
    assert_eq!(with_adapter["accuracy"], trained["accuracy"]);
    let m = run_in(
        d.path(),
        &["merge", "-q", "base/final", "lora/final", "merged"],
    );
    assert_code(&m, 0);
    let cfg: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(d.path().join("merged/config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["model_type"], "opt");
    assert_ne!(
        fs::read(d.path().join("merged/model.safetensors")).unwrap(),
        before
    );
    let eval_merged = run_in(
        d.path(),
        &[
            "eval",
            "-q",
            "--model",
            "merged",
            "--task",
            "sst2",
            "--data",
            "builtin:quickstart",
            "--split",
            "test",
            "--set",
            "task.num_eval=16",
        ],
    );
    assert_code(&eval_merged, 0);
    assert_eq!(json(&eval_merged)["accuracy"], with_adapter["accuracy"]);

    // replay rebuilds the adapter bit for bit.
    assert_code(
        &run_in(d.path(), &["replay", "-q", "lora", "--out", "re"]),
        0,
    );
    assert_eq!(
        fs::read(d.path().join("re/adapter_model.safetensors")).unwrap(),
        fs::read(fin.join("adapter_model.safetensors")).unwrap()
    );
}

#[test]
fn trainable_subset_trains_and_bad_settings_are_named() {
    let d = tempfile::tempdir().unwrap();
    let o = run(
        d.path(),
        &quick(
            4,
            "sub",
            &["train.trainable=[\"fc2\"]", "optimizer.lr=1e-2"],
        ),
    );
    assert_code(&o, 0);
    let o = run(d.path(), &quick(1, "x", &["train.trainable=[\"nosuch\"]"]));
    assert_code(&o, 2);
    let err = crate::common::stderr(&o);
    assert!(
        err.contains("`nosuch`") && err.contains("train.trainable"),
        "{err}"
    );
    let o = run(
        d.path(),
        &quick(
            1,
            "y",
            &["adapter.kind=\"lora\"", "adapter.lora_targets=[\"qproj\"]"],
        ),
    );
    assert_code(&o, 2);
    assert!(crate::common::stderr(&o).contains("adapter.lora_targets"));
}

/// A LoRA run killed mid-way (SIGKILL) and resumed from its checkpoint ends with the adapter
/// of the uninterrupted run, byte for byte.
#[test]
fn a_killed_lora_run_resumes_to_the_uninterrupted_adapter() {
    let d = tempfile::tempdir().unwrap();
    let settings = [
        "adapter.kind=\"lora\"",
        "optimizer.lr=1e-2",
        "train.checkpoint_every=5",
    ];
    let full = quick(60, "full", &settings);
    assert_code(&run(d.path(), &full), 0);
    // The same arguments without `--out full` (kill_and_resume adds its own).
    let mut cut = quick(60, "unused", &settings);
    let at = cut.iter().position(|a| a == "--out").unwrap();
    cut.drain(at..at + 2);
    let o = crate::common::kill_and_resume(d.path(), &cut, "cut", 15);
    assert_code(&o, 0);
    let file = "final/adapter_model.safetensors";
    let a = fs::read(d.path().join("full").join(file)).unwrap();
    let b = fs::read(d.path().join("cut").join(file)).unwrap();
    assert!(
        a == b,
        "the resumed adapter differs from the uninterrupted run's"
    );
    assert!(!d.path().join("cut/final/model.safetensors").exists());
}
