//! `--max-isa` / ZO_MAX_ISA: the kernels of narrower CPUs (AVX2 only, AVX-512 without bf16,
//! no AMX tiles) run on this one, and an f32 run gives the same bits at every vector level.

use std::fs;
use std::path::Path;

use zo_core::cpu::{self, Level};

use crate::common::{assert_code, run_in, stderr, stdout, zo};
use crate::protocol::{eval, fixture_data};
use crate::train::{args, assert_same_run, quick};
use crate::vision::{resnet_args, synthetic_cifar10};

/// The vector levels this CPU can run, narrowest first (AVX2 up to the CPU's own), by name.
fn vector_levels(test: &str) -> Vec<&'static str> {
    let v: Vec<_> = Level::ALL
        .into_iter()
        .filter(|&l| l >= Level::Avx2 && l <= cpu::detected())
        .map(Level::name)
        .collect();
    if v.len() < 2 {
        println!("{test}: this CPU has fewer than two vector levels, nothing to compare");
    }
    v
}

/// A run's files at each vector level: an OPT run in f32 and with bf16 and f16 weights (the
/// perturbation sweeps, the products, attention, the row operations and the evaluation's
/// scoring), a ResNet run, and a SQuAD-format evaluation that decodes 16 new tokens per
/// example through the KV cache. The narrowest level is the reference.
#[test]
fn runs_give_the_same_bits_at_every_vector_level() {
    let levels = vector_levels("runs_give_the_same_bits_at_every_vector_level");
    if levels.len() < 2 {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    synthetic_cifar10(&root.join("cifar"), 8, 10);
    let squad = fixture_data(root, "squad");
    for level in &levels {
        for dtype in ["f32", "bf16", "f16"] {
            let mut a = quick(4, &[&format!("model.dtype=\"{dtype}\"")]);
            a.extend(["--max-isa".into(), (*level).into()]);
            a.extend(["--out".into(), format!("opt-{dtype}-{level}")]);
            assert_code(&run_in(root, &args(&a)), 0);
        }
        let mut a = resnet_args("cifar", "ga", 2, &["train.eval_every=0"]);
        a.extend(["--max-isa".into(), (*level).into()]);
        a.extend(["--out".into(), format!("resnet-{level}")]);
        assert_code(&run_in(root, &args(&a)), 0);
        let preds = root.join(format!("squad-{level}.jsonl"));
        let o = eval(
            root,
            Path::new("builtin:tiny-opt"),
            "squad",
            &squad,
            &[
                "-q",
                "--set",
                "task.max_new_tokens=16",
                "--max-isa",
                level,
                "--predictions",
                preds.to_str().unwrap(),
            ],
        );
        assert_code(&o, 0);
    }
    let first = levels[0];
    for level in &levels[1..] {
        for dtype in ["f32", "bf16", "f16"] {
            assert_same_run(
                root,
                &format!("opt-{dtype}-{first}"),
                &format!("opt-{dtype}-{level}"),
            );
            let preds =
                |l: &str| fs::read(root.join(format!("opt-{dtype}-{l}/predictions_test.jsonl")));
            assert!(
                preds(first).unwrap() == preds(level).unwrap(),
                "{dtype}: {first} vs {level}"
            );
        }
        assert_same_run(root, &format!("resnet-{first}"), &format!("resnet-{level}"));
        let squad = |l: &str| fs::read(root.join(format!("squad-{l}.jsonl"))).unwrap();
        assert!(
            squad(first) == squad(level),
            "SQuAD predictions: {first} vs {level}"
        );
    }
    assert!(
        !fs::read(root.join(format!("squad-{first}.jsonl")))
            .unwrap()
            .is_empty(),
        "no SQuAD predictions written"
    );
}

/// The portable level (no zo kernel: candle's products) trains too, and the log names the cap.
#[test]
fn the_generic_level_runs_and_the_log_names_the_cap() {
    let d = tempfile::tempdir().unwrap();
    let mut a = quick(3, &[]);
    a[1] = "-v".into();
    a.extend([
        "--max-isa".into(),
        "generic".into(),
        "--out".into(),
        "g".into(),
    ]);
    let o = run_in(d.path(), &args(&a));
    assert_code(&o, 0);
    let res: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(res["accuracy"].as_f64().is_some(), "{res}");
    let log = stderr(&o);
    if cpu::detected() > Level::Generic {
        assert!(
            log.contains("capped by ZO_MAX_ISA=generic"),
            "the log does not name the cap:\n{log}"
        );
    }
    // The environment's cap, named in the log the same way.
    if cpu::detected() >= Level::Avx512 {
        let o = zo()
            .current_dir(d.path())
            .env("ZO_MAX_ISA", "AVX2")
            .args(["quickstart", "-v", "--steps", "1", "--out", "e"])
            .output()
            .unwrap();
        assert_code(&o, 0);
        assert!(stderr(&o).contains("isa=avx2 ("), "{}", stderr(&o));
    }
}

#[test]
fn a_level_that_is_not_one_is_refused_before_the_run() {
    let d = tempfile::tempdir().unwrap();
    let o = run_in(
        d.path(),
        &["quickstart", "-q", "--max-isa", "avx1024", "--out", "x"],
    );
    assert_code(&o, 2);
    assert!(stderr(&o).contains("--max-isa"), "{}", stderr(&o));
    assert!(stderr(&o).contains("avx512bf16"), "{}", stderr(&o));
    let with_env = |value: &str, extra: &[&str]| {
        let mut c = zo();
        c.current_dir(d.path()).env("ZO_MAX_ISA", value);
        c.args(["quickstart", "-q", "--steps", "1", "--out", "y"]);
        c.args(extra).output().unwrap()
    };
    let o = with_env("avx1024", &[]);
    assert_code(&o, 2);
    let err = stderr(&o);
    assert!(
        err.contains("ZO_MAX_ISA=avx1024") && err.lines().count() == 1,
        "{err}"
    );
    assert!(!d.path().join("y").exists());
    // The flag wins over the environment, which is then not read.
    assert_code(&with_env("avx1024", &["--max-isa", "native"]), 0);
    assert!(Path::new(&d.path().join("y/results.json")).exists());
}

/// `zo bench` under a cap: every line names the level, the products run on that level's
/// kernel, and the figures are fractions of that level's FMA peak (the probe itself:
/// `bench::tests::fma_probes_keep_their_chains_in_registers`).
#[test]
fn bench_lines_name_the_capped_level_and_its_kernel() {
    if cpu::detected() < Level::Avx2 {
        println!("bench_lines_name_the_capped_level_and_its_kernel: no AVX2 here");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    // `zo bench -q --model tiny-opt --repeats 1 --warmup 0 --max-isa avx2` with `extra`: its
    // lines, each of which names the level.
    let bench = |extra: &[&str]| -> Vec<serde_json::Value> {
        let mut a = vec!["bench", "-q", "--model", "tiny-opt", "--repeats", "1"];
        a.extend(["--warmup", "0", "--max-isa", "avx2"]);
        a.extend(extra);
        let o = run_in(d.path(), &a);
        assert_code(&o, 0);
        let lines: Vec<serde_json::Value> = stdout(&o)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        for v in &lines {
            assert_eq!(v["isa"], "avx2", "{v}");
        }
        lines
    };
    let lines = bench(&["--figure", "b1", "-B", "2"]);
    let b1: Vec<_> = lines.iter().filter(|v| v["figure"] == "B1").collect();
    assert_eq!(b1.len(), 4, "T 64 and 128, full LM and task loss");
    for v in b1 {
        assert_eq!(v["kernel"], "avx2", "{v}");
        assert!(
            v["fma_peak_gflops"].as_f64().is_some_and(|p| p > 0.0),
            "{v}"
        );
        assert!(
            v["fraction_of_fma_peak"].as_f64().is_some_and(|f| f > 0.0),
            "{v}"
        );
    }
    // B4's child process runs under the same cap (it refuses to report a kernel or level
    // other than the parent's).
    let lines = bench(&["--figure", "b4", "-B", "1", "-T", "16"]);
    let b4: Vec<_> = lines.iter().filter(|v| v["figure"] == "B4").collect();
    assert_eq!(b4.len(), 2, "full LM and task loss");
    assert!(b4.iter().all(|v| v["kernel"] == "avx2"));
}

/// A run records the level it started at (`versions.json`), and resuming it at a level whose
/// products round differently (bf16 products on `vdpbf16ps` against f32 ones) says so; f32
/// products resume silently at any vector level.
#[test]
fn resuming_at_a_level_that_rounds_differently_warns() {
    if cpu::detected() < Level::Avx512Bf16 {
        println!("resuming_at_a_level_that_rounds_differently_warns: no AVX512-BF16 here");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    for compute in ["f32", "bf16"] {
        let out = format!("r-{compute}");
        let compute_set = format!("model.compute=\"{compute}\"");
        let mut a = quick(2, &[&compute_set, "train.checkpoint_every=1"]);
        a.extend([
            "--max-isa".into(),
            "avx2".into(),
            "--out".into(),
            out.clone(),
        ]);
        assert_code(&run_in(d.path(), &args(&a)), 0);
        let v: serde_json::Value =
            serde_json::from_slice(&fs::read(d.path().join(&out).join("versions.json")).unwrap())
                .unwrap();
        assert_eq!(v["isa"], "avx2", "{v}");
        let o = run_in(
            d.path(),
            &["train", "--resume", &out, "--max-isa", "native"],
        );
        assert_code(&o, 0);
        let warned = stderr(&o).contains("started with its kernels at avx2 and resumes at");
        assert_eq!(warned, compute == "bf16", "{compute}: {}", stderr(&o));
    }
}
