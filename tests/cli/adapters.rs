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

/// `zo eval` of `model` (with `adapter`) on the quickstart's 16 SST-2 test rows, as the
/// `quick` runs evaluate at the end.
fn eval_test(dir: &Path, model: &str, adapter: Option<&str>) -> std::process::Output {
    let mut v = vec!["eval", "-q", "--model", model];
    if let Some(a) = adapter {
        v.extend(["--adapter", a]);
    }
    v.extend([
        "--task",
        "sst2",
        "--data",
        "builtin:quickstart",
        "--split",
        "test",
        "--set",
        "task.num_eval=16",
    ]);
    run_in(dir, &v)
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
    let eval_adapter = eval_test(d.path(), "base/final", Some("lora/final"));
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
    let eval_merged = eval_test(d.path(), "merged", None);
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

/// Every tensor of a saved OPT directory, by name.
fn tensors(dir: &Path) -> std::collections::BTreeMap<String, Vec<f32>> {
    zo_models::opt::load::read_safetensors_file(
        &dir.join("model.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap()
    .into_iter()
    .map(|(k, t)| {
        let v = t
            .to_dtype(candle_core::DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        (k, v)
    })
    .collect()
}

#[test]
fn prefix_trains_only_the_prefix_evaluates_and_replays() {
    let d = tempfile::tempdir().unwrap();
    assert_code(&run(d.path(), &quick(1, "base", &[])), 0);
    let base = d.path().join("base/final");
    let before = fs::read(base.join("model.safetensors")).unwrap();
    let src = "model.source=\"base/final\"";
    let o = run(
        d.path(),
        &quick(
            8,
            "prefix",
            &[src, "adapter.kind=\"prefix\"", "optimizer.lr=1e-2"],
        ),
    );
    assert_code(&o, 0);
    let trained = json(&o);
    assert_eq!(fs::read(base.join("model.safetensors")).unwrap(), before);
    let fin = d.path().join("prefix/final");
    let cfg: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(fin.join("adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["peft_type"], "PREFIX_TUNING");
    assert_eq!(cfg["num_virtual_tokens"], 5);
    assert!(!fin.join("model.safetensors").exists());
    assert!(!fin.join("zo_prefix_reparam.safetensors").exists());

    let eval = eval_test(d.path(), "base/final", Some("prefix/final"));
    assert_code(&eval, 0);
    assert_eq!(json(&eval)["accuracy"], trained["accuracy"]);
    let m = run_in(
        d.path(),
        &["merge", "-q", "base/final", "prefix/final", "merged"],
    );
    assert_code(&m, 2);
    assert!(crate::common::stderr(&m).contains("cannot be merged"));

    assert_code(
        &run_in(d.path(), &["replay", "-q", "prefix", "--out", "re"]),
        0,
    );
    assert_eq!(
        fs::read(d.path().join("re/adapter_model.safetensors")).unwrap(),
        fs::read(fin.join("adapter_model.safetensors")).unwrap()
    );

    // The reparameterised prefix keeps its own tensors beside PEFT's; real activations do
    // not initialise it (MeZO asserts the same), which is a named error.
    let reparam = [
        "adapter.kind=\"prefix\"",
        "adapter.prefix_reparam=true",
        "adapter.prefix_init_by_real_act=false",
    ];
    assert_code(&run(d.path(), &quick(2, "rp", &reparam)), 0);
    assert!(d
        .path()
        .join("rp/final/zo_prefix_reparam.safetensors")
        .is_file());
    let o = run(
        d.path(),
        &quick(
            1,
            "bad",
            &["adapter.kind=\"prefix\"", "adapter.prefix_reparam=true"],
        ),
    );
    assert_code(&o, 2);
    assert!(crate::common::stderr(&o).contains("adapter.prefix_init_by_real_act"));
}

/// MeZO's head tuning: `--untie_emb --head_tuning` is `model.untie_embeddings = true` with
/// `train.trainable = ["lm_head"]`: the head moves, every other tensor stays the base's.
#[test]
fn head_tuning_moves_the_untied_head_alone() {
    let d = tempfile::tempdir().unwrap();
    assert_code(&run(d.path(), &quick(1, "base", &[])), 0);
    let o = run(
        d.path(),
        &quick(
            6,
            "head",
            &[
                "model.source=\"base/final\"",
                "model.untie_embeddings=true",
                "train.trainable=[\"lm_head\"]",
                "optimizer.lr=1e-2",
            ],
        ),
    );
    assert_code(&o, 0);
    let base = tensors(&d.path().join("base/final"));
    let head = tensors(&d.path().join("head/final"));
    let lm = head.get("lm_head.weight").expect("an untied head is saved");
    assert_ne!(lm, &base["model.decoder.embed_tokens.weight"]);
    assert_eq!(head.len(), base.len() + 1);
    for (name, v) in &base {
        assert!(head[name] == *v, "{name} changed under head tuning");
    }
    let cfg: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(d.path().join("head/final/config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["tie_word_embeddings"], false);
    // The saved model is evaluated as it is (its config says untied).
    let eval = eval_test(d.path(), "head/final", None);
    assert_code(&eval, 0);
    assert_eq!(json(&eval)["accuracy"], json(&o)["accuracy"]);
}

/// A prefix run killed mid-way resumes to the uninterrupted run's prefix, byte for byte.
#[test]
fn a_killed_prefix_run_resumes_to_the_uninterrupted_prefix() {
    let d = tempfile::tempdir().unwrap();
    let settings = [
        "adapter.kind=\"prefix\"",
        "optimizer.lr=1e-2",
        "train.checkpoint_every=5",
    ];
    assert_code(&run(d.path(), &quick(40, "full", &settings)), 0);
    let mut cut = quick(40, "unused", &settings);
    let at = cut.iter().position(|a| a == "--out").unwrap();
    cut.drain(at..at + 2);
    let o = crate::common::kill_and_resume(d.path(), &cut, "cut", 15);
    assert_code(&o, 0);
    let file = "final/adapter_model.safetensors";
    assert!(
        fs::read(d.path().join("full").join(file)).unwrap()
            == fs::read(d.path().join("cut").join(file)).unwrap(),
        "the resumed prefix differs from the uninterrupted run's"
    );
}
