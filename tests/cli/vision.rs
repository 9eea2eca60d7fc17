//! ResNet × CIFAR end to end (the paper's Table 5 path): `zo train`, `zo eval`, `zo replay`,
//! resume and `zo reproduce --table 5` on `builtin:tiny-resnet` and a small synthetic CIFAR-10
//! written in the binary format.

use std::fs;
use std::path::Path;

use crate::common::{assert_code, kill_and_resume, run_in, stderr, stdout, zo};

/// Writes CIFAR-10 binary batches (`data_batch_{1..5}.bin`, `test_batch.bin`) into `dir`:
/// `per_batch` training images per file and `test` test images, label `i % 10`, each channel a
/// class-dependent level plus deterministic noise, so the classes are learnable.
pub(crate) fn synthetic_cifar10(dir: &Path, per_batch: usize, test: usize) {
    fs::create_dir_all(dir).unwrap();
    let mut state: u32 = 12345;
    let mut noise = move || {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (state >> 24) as i32 - 128
    };
    let mut write = |name: &str, n: usize| {
        let mut bytes = Vec::with_capacity(n * 3073);
        for i in 0..n {
            let label = (i % 10) as u8;
            bytes.push(label);
            for c in 0..3i32 {
                let level = (i32::from(label) * 25 + c * 60) % 256;
                for _ in 0..1024 {
                    bytes.push((level + noise() / 4).clamp(0, 255) as u8);
                }
            }
        }
        fs::write(dir.join(name), bytes).unwrap();
    };
    for k in 1..=5 {
        write(&format!("data_batch_{k}.bin"), per_batch);
    }
    write("test_batch.bin", test);
}

/// `zo train` arguments for a tiny ResNet run on the synthetic data in `data`.
pub(crate) fn resnet_args(data: &str, method: &str, steps: u64, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = vec!["train".into(), "-q".into()];
    for s in [
        "model.kind=resnet",
        "model.source=builtin:tiny-resnet",
        "task.name=cifar10",
        &format!("task.data={data}"),
        "task.num_train=40",
        "task.num_dev=20",
        "task.num_eval=30",
        &format!("optimizer.method={method}"),
        // GA and STP need a learning rate; AS2P sets its own.
        if method == "as2p" {
            "optimizer.eta_b=5"
        } else {
            "optimizer.lr=1e-4"
        },
        &format!("train.steps={steps}"),
        "train.batch_size=8",
    ]
    .iter()
    .chain(extra)
    {
        v.push("--set".into());
        v.push((*s).to_string());
    }
    v
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn resnet_trains_on_cifar_and_its_checkpoints_evaluate_and_replay_exactly() {
    let d = tempfile::tempdir().unwrap();
    synthetic_cifar10(&d.path().join("cifar"), 12, 30);
    let mut a = resnet_args(
        "cifar",
        "ga",
        6,
        &["train.eval_every=3", "train.checkpoint_every=3"],
    );
    a.extend(["--out".into(), "r".into()]);
    let o = run_in(d.path(), &args(&a));
    assert_code(&o, 0);
    let res: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let acc = res["accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc), "{res}");
    assert!(res["dev_accuracy"].as_f64().is_some(), "{res}");
    assert_eq!(res["steps"], 6);
    assert_eq!(res["queries"], 12);

    let m = lines(&d.path().join("r/metrics.jsonl"));
    let steps: Vec<_> = m.iter().filter(|v| v["kind"] == "step").collect();
    assert_eq!(steps.len(), 6);
    for (k, s) in steps.iter().enumerate() {
        assert_eq!(s["queries_total"], 2 * (k as u64 + 1));
        let (fp, fm) = (
            s["f_plus"].as_f64().unwrap(),
            s["f_minus"].as_f64().unwrap(),
        );
        // Cross-entropies: positive and finite, the two probes close (ρ = 1e-3).
        assert!(
            fp > 0.0 && fp.is_finite() && fm > 0.0 && fm.is_finite(),
            "{s}"
        );
        assert!((fp - fm).abs() < 0.5 * fp, "{s}");
    }
    let evals: Vec<_> = m.iter().filter(|v| v["kind"] == "eval").collect();
    assert_eq!(evals.len(), 2);
    assert!(evals
        .iter()
        .all(|e| e["dev_loss"].is_f64() && e["dev_accuracy"].is_f64()));
    let preds = lines(&d.path().join("r/predictions_test.jsonl"));
    assert_eq!(preds.len(), 30);
    let correct = preds
        .iter()
        .filter(|p| p["prediction"] == p["gold"])
        .count();
    assert_eq!(correct as f64 / 30.0, acc);

    // The saved weights (best by dev loss) evaluate to the same accuracy and predictions.
    let o = run_in(
        d.path(),
        &[
            "eval",
            "--run",
            "r",
            "--split",
            "test",
            "--predictions",
            "p.jsonl",
        ],
    );
    assert_code(&o, 0);
    let ev: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(ev["accuracy"], res["accuracy"]);
    assert_eq!(lines(&d.path().join("p.jsonl")), preds);
    // The same file named directly (`--model FILE`) with the run's task settings.
    let best = if res["evaluated"] == "best" {
        "best"
    } else {
        "final"
    };
    let file = format!("r/{best}/model.safetensors");
    let mut e = vec!["eval", "--model", &file, "--split", "test"];
    for kv in [
        "model.kind=resnet",
        "task.name=cifar10",
        "task.data=cifar",
        "task.num_train=40",
        "task.num_dev=20",
        "task.num_eval=30",
    ] {
        e.extend(["--set", kv]);
    }
    let o = run_in(d.path(), &e);
    assert_code(&o, 0);
    let ev: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(ev["accuracy"], res["accuracy"]);

    // Base model + trajectory = the final weights, bit for bit.
    let o = run_in(d.path(), &["replay", "r", "--out", "rebuilt"]);
    assert_code(&o, 0);
    let a = fs::read(d.path().join("r/final/model.safetensors")).unwrap();
    let b = fs::read(d.path().join("rebuilt/model.safetensors")).unwrap();
    assert!(
        a == b,
        "replayed ResNet weights differ from the trained ones"
    );
    // ... and training moved them: replaying no sweep gives the base model, which differs.
    fs::create_dir_all(d.path().join("r0")).unwrap();
    for f in ["run.toml", "versions.json"] {
        fs::copy(d.path().join("r").join(f), d.path().join("r0").join(f)).unwrap();
    }
    fs::write(d.path().join("r0/trajectory.jsonl"), "").unwrap();
    let o = run_in(d.path(), &["replay", "r0", "--out", "base"]);
    assert_code(&o, 0);
    let base = fs::read(d.path().join("base/model.safetensors")).unwrap();
    assert_eq!(base.len(), a.len());
    assert!(base != a, "six GA steps left the weights unchanged");
}

#[test]
fn resnet_resume_after_sigkill_gives_the_uninterrupted_weights() {
    let d = tempfile::tempdir().unwrap();
    synthetic_cifar10(&d.path().join("cifar"), 12, 10);
    let settings = ["train.checkpoint_every=4", "train.eval_every=0"];
    let steps = 60;
    let mut full = resnet_args("cifar", "as2p", steps, &settings);
    let cut = full.clone();
    full.extend(["--out".into(), "full".into()]);
    assert_code(&run_in(d.path(), &args(&full)), 0);

    let o = kill_and_resume(d.path(), &cut, "cut", 8);
    let a = fs::read(d.path().join("full/final/model.safetensors")).unwrap();
    let b = fs::read(d.path().join("cut/final/model.safetensors")).unwrap();
    assert!(
        a == b,
        "resumed ResNet weights differ from the uninterrupted run"
    );
    let _ = stderr(&o);
}

#[test]
fn reproduce_table5_runs_the_cifar10_cells_and_reports_per_model() {
    let d = tempfile::tempdir().unwrap();
    synthetic_cifar10(&d.path().join("cifar"), 8, 10);
    let configs = crate::common::repo_root().join("configs/paper");
    let o = run_in(
        d.path(),
        &[
            "reproduce",
            "-q",
            "--table",
            "5",
            "--configs",
            configs.to_str().unwrap(),
            "--tasks",
            "cifar10",
            "--model",
            "builtin:tiny-resnet",
            "--steps",
            "4",
            "--set",
            "task.data=cifar",
            "--set",
            "task.num_train=24",
            "--set",
            "task.num_dev=8",
            "--set",
            "task.num_eval=10",
            "--set",
            "train.batch_size=4",
        ],
    );
    assert_code(&o, 0);
    let cells = [
        "cifar10-resnet18-ga",
        "cifar10-resnet18-stp",
        "cifar10-resnet18-as2p",
        "cifar10-resnet50-ga",
        "cifar10-resnet50-stp",
        "cifar10-resnet50-as2p",
    ];
    for cell in cells {
        let dir = d.path().join("runs/table5").join(cell);
        let steps = lines(&dir.join("metrics.jsonl"))
            .into_iter()
            .filter(|v| v["kind"] == "step")
            .count();
        assert_eq!(steps, 4, "{cell}");
        let run = fs::read_to_string(dir.join("run.toml")).unwrap();
        assert!(run.contains("kind = \"resnet\""), "{run}");
    }
    // Not the CIFAR-100 cells.
    assert!(!d.path().join("runs/table5/cifar100-resnet101-ga").exists());
    // One table per model × dataset, the ResNet thresholds (100/80/60/40/20 %), GA's own row
    // equal to the fractions.
    let csv = fs::read_to_string(d.path().join("runs/table5/report/report.csv")).unwrap();
    for group in ["resnet18-cifar10", "resnet50-cifar10"] {
        for label in ["GA", "STP", "AS2P"] {
            let rows: Vec<&str> = csv
                .lines()
                .filter(|l| l.starts_with(&format!("{group},{label},")))
                .collect();
            assert_eq!(rows.len(), 5, "{group} {label}\n{csv}");
            for r in rows {
                // A ratio, or empty for "never reached"; GA always reaches its own losses.
                let f: Vec<&str> = r.split(',').collect();
                assert!(f[3].is_empty() || f[3].parse::<f64>().unwrap() > 0.0, "{r}");
                if label == "GA" {
                    assert!(f[3].parse::<f64>().unwrap() <= 1.0, "{r}");
                }
            }
        }
        let png = fs::read(
            d.path()
                .join(format!("runs/table5/report/loss_{group}.png")),
        )
        .unwrap();
        let dec = png::Decoder::new(std::io::Cursor::new(png));
        let info = dec.read_info().unwrap().info().clone();
        assert!(info.width > 100 && info.height > 100);
    }
}

#[test]
fn resnet_bad_inputs_are_named() {
    let d = tempfile::tempdir().unwrap();
    let expect = |a: &[&str], needles: &[&str]| {
        let o = run_in(d.path(), a);
        assert_code(&o, 2);
        let e = stderr(&o);
        assert_eq!(e.trim().lines().count(), 1, "{e}");
        for n in needles {
            assert!(e.contains(n), "`{n}` not in: {e}");
        }
    };
    // Missing data directory.
    let a = resnet_args("no-such-dir", "ga", 2, &[]);
    expect(&args(&a), &["no-such-dir", "not a directory"]);
    // A directory without CIFAR files.
    fs::create_dir_all(d.path().join("empty")).unwrap();
    let a = resnet_args("empty", "ga", 2, &["train.steps=2"]);
    let mut a2 = a.clone();
    a2.extend(["--out".into(), "r2".into()]);
    expect(&args(&a2), &["empty", "no CIFAR files"]);
    // A truncated batch file.
    synthetic_cifar10(&d.path().join("cut"), 4, 4);
    let f = d.path().join("cut/data_batch_3.bin");
    let bytes = fs::read(&f).unwrap();
    fs::write(&f, &bytes[..bytes.len() - 100]).unwrap();
    let mut a3 = resnet_args("cut", "ga", 2, &[]);
    a3.extend(["--out".into(), "r3".into()]);
    expect(&args(&a3), &["data_batch_3.bin", "records"]);
    // A corrupt checkpoint as the model.
    fs::write(d.path().join("bad.safetensors"), b"not a safetensors file").unwrap();
    synthetic_cifar10(&d.path().join("ok"), 4, 4);
    let mut a4 = resnet_args("ok", "ga", 2, &["model.source=bad.safetensors"]);
    a4.extend(["--out".into(), "r4".into()]);
    expect(&args(&a4), &["bad.safetensors"]);
    // An OPT cannot train on CIFAR, a ResNet not on SST-2.
    expect(
        &["train", "--set", "task.name=cifar10", "--dry-run"],
        &["key `model.kind`", "cifar10"],
    );
    expect(
        &["train", "--set", "model.kind=resnet", "--dry-run"],
        &["key `model.kind`", "sst2"],
    );
}

/// Lays out `files` (path in repo → bytes) as the hub cache holds a repo at `main`.
fn fake_hub_repo(cache: &Path, folder: &str, files: &[(&str, Vec<u8>)]) {
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let root = cache.join(folder);
    fs::create_dir_all(root.join("refs")).unwrap();
    fs::write(root.join("refs/main"), commit).unwrap();
    for (name, bytes) in files {
        let p = root.join("snapshots").join(commit).join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, bytes).unwrap();
    }
}

#[test]
fn resnet_checkpoint_and_cifar_parquet_come_from_the_hub_cache_offline() {
    let d = tempfile::tempdir().unwrap();
    // A checkpoint to publish: a tiny ResNet trained for one step.
    synthetic_cifar10(&d.path().join("cifar"), 4, 4);
    let mut a = resnet_args("cifar", "ga", 1, &["task.num_train=10", "task.num_dev=0"]);
    a.extend(["--out".into(), "seed".into()]);
    assert_code(&run_in(d.path(), &args(&a)), 0);
    let ckpt = fs::read(d.path().join("seed/final/model.safetensors")).unwrap();
    let parquet = fs::read(
        crate::common::repo_root().join("crates/zo-tasks/tests/data/cifar10_tiny.parquet"),
    )
    .unwrap();
    let cache = d.path().join("hub");
    fake_hub_repo(
        &cache,
        "models--someone--tiny-resnet",
        &[("model.safetensors", ckpt)],
    );
    fake_hub_repo(
        &cache,
        "datasets--uoft-cs--cifar10",
        &[
            ("plain_text/train-00000-of-00001.parquet", parquet.clone()),
            ("plain_text/test-00000-of-00001.parquet", parquet),
        ],
    );
    let mut a = resnet_args(
        "hub",
        "ga",
        2,
        &[
            "model.source=someone/tiny-resnet",
            "task.num_train=2",
            "task.num_dev=0",
            "train.batch_size=2",
        ],
    );
    a.extend(["--out".into(), "r".into()]);
    let o = zo()
        .current_dir(d.path())
        .env("HF_HUB_CACHE", &cache)
        .args(&a)
        .output()
        .unwrap();
    assert_code(&o, 0);
    let res: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(res["steps"], 2);
    assert_eq!(lines(&d.path().join("r/predictions_test.jsonl")).len(), 3);
    let run = fs::read_to_string(d.path().join("r/run.toml")).unwrap();
    assert!(run.contains("source = \"someone/tiny-resnet\""), "{run}");
}
