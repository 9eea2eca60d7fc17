//! One test per bad input: each is a one-line error naming the file/key, exit code 2, no panic.

use std::fs;

use crate::common::{assert_code, expect_usage_error, run_in, stderr, stdout};

#[test]
fn unknown_config_key_is_named() {
    let d = tempfile::tempdir().unwrap();
    fs::write(d.path().join("c.toml"), "[train]\nstepz = 10\n").unwrap();
    expect_usage_error(
        d.path(),
        &["train", "--config", "c.toml", "--dry-run"],
        &["c.toml", "unknown field `stepz`"],
    );
    expect_usage_error(
        d.path(),
        &["train", "--set", "optimizer.eta_c=1", "--dry-run"],
        &["unknown field `eta_c`"],
    );
}

#[test]
fn wrong_type_is_named_with_its_key() {
    let d = tempfile::tempdir().unwrap();
    expect_usage_error(
        d.path(),
        &["train", "--set", "train.batch_size=\"many\"", "--dry-run"],
        &["key `train.batch_size`"],
    );
    expect_usage_error(
        d.path(),
        &["train", "--set", "model.dtype=f64", "--dry-run"],
        &["key `model.dtype`", "f64"],
    );
    expect_usage_error(
        d.path(),
        &["train", "--set", "optimizer.rho=-1", "--dry-run"],
        &["rho"],
    );
    // Non-finite values through the shorthands meet the optimizer's check, not a type error.
    for (flag, key) in [
        ("--lr=nan", "lr"),
        ("--rho=NaN", "rho"),
        ("--lr=inf", "lr"),
        ("--rho=-inf", "rho"),
    ] {
        expect_usage_error(
            d.path(),
            &["train", flag, "--dry-run"],
            &[&format!("{key}`: must be a finite number > 0")],
        );
    }
}

#[test]
fn missing_model_dir() {
    let d = tempfile::tempdir().unwrap();
    expect_usage_error(
        d.path(),
        &[
            "train",
            "--set",
            "model.source=\"./no-such-model\"",
            "--set",
            "task.data=\"builtin:quickstart\"",
            "--out",
            "r",
        ],
        &["no-such-model"],
    );
    // A run directory given as the model: pointed to its saved weights.
    fs::create_dir(d.path().join("run")).unwrap();
    fs::write(d.path().join("run/run.toml"), "").unwrap();
    expect_usage_error(
        d.path(),
        &[
            "eval",
            "--model",
            "run",
            "--task",
            "sst2",
            "--data",
            "builtin:quickstart",
        ],
        &["`run` is a run directory", "zo eval --run run"],
    );
    // A weights file with no config.json beside it: the file is named, not its directory.
    fs::write(d.path().join("w.safetensors"), b"not safetensors").unwrap();
    expect_usage_error(
        d.path(),
        &[
            "eval",
            "--model",
            "w.safetensors",
            "--task",
            "sst2",
            "--data",
            "builtin:quickstart",
        ],
        &["w.safetensors", "config.json"],
    );
}

#[test]
fn corrupt_safetensors_names_the_file() {
    let d = tempfile::tempdir().unwrap();
    // A real model directory (from a short run), then its weights cut in half.
    let o = run_in(
        d.path(),
        &[
            "quickstart",
            "-q",
            "--steps",
            "1",
            "--set",
            "train.eval_every=0",
            "--set",
            "train.batch_size=2",
        ],
    );
    assert_code(&o, 0);
    let w = d.path().join("runs/quickstart/final/model.safetensors");
    let bytes = fs::read(&w).unwrap();
    fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
    expect_usage_error(
        d.path(),
        &[
            "eval",
            "--model",
            "runs/quickstart/final",
            "--task",
            "sst2",
            "--data",
            "builtin:quickstart",
            "--set",
            "model.tokenizer=\"builtin:tiny\"",
        ],
        &["model.safetensors"],
    );
}

#[test]
fn task_model_mismatch() {
    let d = tempfile::tempdir().unwrap();
    // A ResNet cannot train on a text task.
    expect_usage_error(
        d.path(),
        &["train", "--set", "model.kind=\"resnet\"", "--dry-run"],
        &["key `model.kind`", "sst2"],
    );
    // A tokenizer larger than the model's vocabulary does not belong to it.
    let mut cfg =
        String::from("[model]\nsource = \"builtin:tiny-opt\"\ntokenizer = \"builtin:tiny\"\n");
    cfg.push_str("[task]\ndata = \"builtin:quickstart\"\n");
    fs::write(d.path().join("c.toml"), cfg).unwrap();
    let o = run_in(
        d.path(),
        &[
            "train",
            "--config",
            "c.toml",
            "--set",
            "train.steps=1",
            "--out",
            "r",
            "--dry-run",
        ],
    );
    assert_code(&o, 0);
    assert!(stdout(&o).contains("source = \"builtin:tiny-opt\""));
    expect_usage_error(
        d.path(),
        &["train", "--set", "task.name=\"mnli\"", "--dry-run"],
        &["key `task.name`", "mnli"],
    );
}

#[test]
fn unwritable_run_dir() {
    let d = tempfile::tempdir().unwrap();
    fs::write(d.path().join("file"), "not a directory").unwrap();
    expect_usage_error(
        d.path(),
        &["quickstart", "-q", "--steps", "1", "--out", "file/run"],
        &["file/run", "cannot create the run directory"],
    );
    // An existing run is never overwritten.
    let o = run_in(
        d.path(),
        &[
            "quickstart",
            "-q",
            "--steps",
            "1",
            "--set",
            "train.eval_every=0",
            "--out",
            "r",
        ],
    );
    assert_code(&o, 0);
    expect_usage_error(
        d.path(),
        &["quickstart", "-q", "--steps", "1", "--out", "r"],
        &["already holds a run", "--resume"],
    );
}

#[test]
fn dry_run_prints_the_resolved_config() {
    let d = tempfile::tempdir().unwrap();
    let o = run_in(
        d.path(),
        &[
            "train",
            "--dry-run",
            "--set",
            "task.name=rte",
            "--set",
            "optimizer.method=ga",
            "--set",
            "optimizer.lr=1e-7",
        ],
    );
    assert_code(&o, 0);
    insta::assert_snapshot!("dry_run_rte_ga", stdout(&o));
}

#[test]
fn a_start_that_fails_on_bad_input_can_be_retried() {
    let d = tempfile::tempdir().unwrap();
    let bad = [
        "train",
        "--set",
        "model.source=\"./no-such-model\"",
        "--set",
        "task.data=\"builtin:quickstart\"",
        "--out",
        "r",
    ];
    expect_usage_error(d.path(), &bad, &["no-such-model"]);
    // The failed start left no run behind, so the same directory is still free.
    assert!(!d.path().join("r/run.toml").exists());
    let o = run_in(
        d.path(),
        &[
            "quickstart",
            "-q",
            "--steps",
            "1",
            "--set",
            "train.eval_every=0",
            "--out",
            "r",
        ],
    );
    assert_code(&o, 0);
}

#[test]
fn train_flags_are_shorthands_for_config_keys_and_set_wins() {
    let d = tempfile::tempdir().unwrap();
    let o = run_in(
        d.path(),
        &[
            "train",
            "--dry-run",
            "--task",
            "rte",
            "--optimizer",
            "ga",
            "--lr",
            "1e-7",
            "--rho",
            "0.002",
            "--steps",
            "100",
            "--batch-size",
            "8",
            "--seed",
            "3",
            "--data-seed",
            "7",
            "--dtype",
            "bf16",
            "--schedule",
            "constant",
            "--eval-every",
            "10",
            "--checkpoint-every",
            "20",
            "--model",
            "builtin:tiny-opt",
            "--set",
            "train.seed=5",
        ],
    );
    assert_code(&o, 0);
    let t: toml::Table = stdout(&o).parse().unwrap();
    assert_eq!(t["task"]["name"].as_str(), Some("rte"));
    assert_eq!(t["task"]["data_seed"].as_integer(), Some(7));
    assert_eq!(t["optimizer"]["method"].as_str(), Some("ga"));
    assert_eq!(t["optimizer"]["lr"].as_float(), Some(1e-7));
    assert_eq!(t["optimizer"]["rho"].as_float(), Some(0.002));
    assert_eq!(t["train"]["steps"].as_integer(), Some(100));
    assert_eq!(t["train"]["batch_size"].as_integer(), Some(8));
    assert_eq!(
        t["train"]["seed"].as_integer(),
        Some(5),
        "--set applies last"
    );
    assert_eq!(t["train"]["schedule"].as_str(), Some("constant"));
    assert_eq!(t["train"]["eval_every"].as_integer(), Some(10));
    assert_eq!(t["train"]["checkpoint_every"].as_integer(), Some(20));
    assert_eq!(t["model"]["dtype"].as_str(), Some("bf16"));
    assert_eq!(t["model"]["source"].as_str(), Some("builtin:tiny-opt"));
    // A key the method does not have is named; so is a bad value.
    expect_usage_error(
        d.path(),
        &["train", "--dry-run", "--optimizer", "stp", "--rho", "1e-3"],
        &["rho"],
    );
    expect_usage_error(
        d.path(),
        &["train", "--dry-run", "--dtype", "f64"],
        &["model.dtype", "f64"],
    );
    // A method's keys without a default say what to give.
    expect_usage_error(
        d.path(),
        &["train", "--dry-run", "--optimizer", "ga"],
        &[
            "key `optimizer.lr`: method `ga` has no default step size",
            "--lr",
        ],
    );
    expect_usage_error(
        d.path(),
        &["train", "--dry-run", "--optimizer", "s2p"],
        &["key `optimizer.option`: method `s2p` needs its step-size option"],
    );
    // --resume takes the run's own settings only.
    expect_usage_error(
        d.path(),
        &["train", "--resume", "r", "--steps", "5"],
        &["--resume"],
    );
}

/// Under a launcher with several processes: a `zo` built without the `mpi` feature refuses to
/// train (each process would train the whole run alone), and the commands that do not split
/// their work refuse in any build; nothing is written.
#[test]
fn several_ranks_are_refused_where_they_cannot_work() {
    let d = tempfile::tempdir().unwrap();
    let replay: (&[&str], &str) = (
        &["replay", "runs/x", "--out", "rebuilt"],
        "zo replay runs in one process, not under an MPI launcher (2 processes)",
    );
    let train: (&[&str], &str) = (
        &["train", "--steps", "1", "--out", "runs/x"],
        "started by an MPI launcher with 2 processes, but this zo was built without the `mpi` feature",
    );
    let cases = std::iter::once(replay).chain(cfg!(not(feature = "mpi")).then_some(train));
    for (args, needle) in cases {
        let o = crate::common::zo()
            .current_dir(d.path())
            .args(args)
            .env("OMPI_COMM_WORLD_RANK", "0")
            .env("OMPI_COMM_WORLD_SIZE", "2")
            .output()
            .unwrap();
        assert_code(&o, 2);
        let err = stderr(&o);
        assert!(err.contains(needle), "{err}");
        assert!(err.trim_end().lines().count() == 1, "not one line:\n{err}");
    }
    assert_eq!(
        fs::read_dir(d.path()).unwrap().count(),
        0,
        "something was written"
    );
}

/// `zo bench`'s bad arguments are usage errors (exit 2), found before its probe runs.
#[test]
fn bench_arguments_are_checked_before_any_work() {
    let d = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (&["bench", "-B", "0"][..], "-B must be at least 1"),
        (&["bench", "-T", "1"][..], "-T values must be at least 2"),
        (
            &["bench", "--model", "./no-such-model"][..],
            "no-such-model",
        ),
        (
            &["bench", "--model", "resnet18", "--classes", "1"][..],
            "--classes values must be at least 2",
        ),
        (
            &["bench", "--model", "resnet18", "--figure", "b3"][..],
            "a ResNet has the figures",
        ),
        (&["bench", "--classes", "10"][..], "are for ResNet models"),
    ] {
        expect_usage_error(d.path(), args, &[needle]);
    }
}

#[test]
fn a_parquet_file_the_reader_panics_on_is_one_line() {
    // Byte 849 of the SST-2 fixture set to 229: the parquet crate panics while decoding it;
    // the report is the one line naming the file, without the panic's message and backtrace.
    let d = tempfile::tempdir().unwrap();
    let mut b = fs::read(crate::common::repo_root().join("tasks/sst2/fixture.parquet")).unwrap();
    b[849] = 229;
    fs::write(d.path().join("p.parquet"), b).unwrap();
    expect_usage_error(
        d.path(),
        &["prompts", "--task", "sst2", "--data", "p.parquet"],
        &["p.parquet: corrupt parquet file"],
    );
}
