//! `zo reproduce` from outside the source tree: the cell configs built into the binary,
//! `--configs DIR`, and the miniature Table 6 (`--mini`) over seeds.

use std::fs;

use crate::common::{assert_code, run_in, stderr, stdout};

#[test]
fn reproduce_uses_the_built_in_configs_from_any_directory() {
    let d = tempfile::tempdir().unwrap();
    let o = run_in(d.path(), &["reproduce", "--table", "6", "--dry-run"]);
    assert_code(&o, 0);
    let out = stdout(&o);
    assert_eq!(
        out.matches("# builtin:configs/paper/table6/").count(),
        24,
        "{out}"
    );
    assert!(
        out.contains("# builtin:configs/paper/table6/sst2-as2p.toml\n"),
        "{out}"
    );
    assert!(out.contains("source = \"facebook/opt-13b\""), "{out}");
    let o = run_in(
        d.path(),
        &[
            "reproduce",
            "--table",
            "5",
            "--dry-run",
            "--tasks",
            "cifar100",
        ],
    );
    assert_code(&o, 0);
    assert_eq!(
        stdout(&o)
            .matches("# builtin:configs/paper/table5/cifar100-")
            .count(),
        6
    );
    // Nothing was written.
    assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
}

#[test]
fn reproduce_reads_configs_from_a_directory_and_names_it_when_missing() {
    let d = tempfile::tempdir().unwrap();
    let t6 = d.path().join("mine/table6");
    fs::create_dir_all(&t6).unwrap();
    fs::write(
        t6.join("copa-ga.toml"),
        "[task]\nname = \"copa\"\n[optimizer]\nmethod = \"ga\"\nlr = 3e-7\n",
    )
    .unwrap();
    let o = run_in(d.path(), &["reproduce", "--configs", "mine", "--dry-run"]);
    assert_code(&o, 0);
    let out = stdout(&o);
    assert_eq!(
        out.matches("\n# ").count() + usize::from(out.starts_with("# ")),
        1,
        "{out}"
    );
    assert!(out.contains("lr = 0.0000003"), "{out}");
    let o = run_in(
        d.path(),
        &["reproduce", "--configs", "nowhere", "--dry-run"],
    );
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("nowhere/table6: cannot read the cell configs"),
        "{}",
        stderr(&o)
    );
    fs::write(
        t6.join("copa-stp.toml"),
        "[optimizer]\nmethod = \"stp\"\nlr = \"x\"\n",
    )
    .unwrap();
    let o = run_in(d.path(), &["reproduce", "--configs", "mine", "--dry-run"]);
    assert_code(&o, 2);
    let e = stderr(&o);
    assert!(
        e.contains("copa-stp.toml") && e.contains("key `optimizer"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");
}

#[test]
fn reproduce_rejects_bad_mini_and_seed_options() {
    let d = tempfile::tempdir().unwrap();
    let o = run_in(d.path(), &["reproduce", "--table", "5", "--mini"]);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("--mini"), "{}", stderr(&o));
    for bad in ["1,x", "1,1"] {
        let o = run_in(
            d.path(),
            &["reproduce", "--mini", "--seeds", bad, "--dry-run"],
        );
        assert_code(&o, 2);
        assert!(stderr(&o).contains("--seeds"), "{}", stderr(&o));
    }
}

#[test]
fn mini_table_runs_every_method_over_seeds_and_reports_mean_and_std() {
    let d = tempfile::tempdir().unwrap();
    let o = run_in(d.path(), &["reproduce", "--mini", "--dry-run"]);
    assert_code(&o, 0);
    let out = stdout(&o);
    for seed in 1..=3 {
        assert_eq!(
            out.matches(&format!(".toml (seed {seed})")).count(),
            4,
            "{out}"
        );
    }
    assert!(out.contains("data = \"builtin:quickstart\""), "{out}");
    // A shrunk run: 2 seeds × 4 methods × 6 steps, on the random tiny OPT (the machinery,
    // not the learning).
    let o = run_in(
        d.path(),
        &[
            "reproduce",
            "-q",
            "--mini",
            "--seeds",
            "1,2",
            "--steps",
            "6",
            "--model",
            "builtin:tiny-opt",
            "--set",
            "train.batch_size=2",
        ],
    );
    assert_code(&o, 0);
    let root = d.path().join("runs/table6-mini");
    for cell in ["sst2-ga", "sst2-ga-constant", "sst2-stp", "sst2-as2p"] {
        for seed in [1, 2] {
            let run = fs::read_to_string(root.join(format!("{cell}-s{seed}/run.toml"))).unwrap();
            assert!(run.contains(&format!("seed = {seed}\n")), "{run}");
        }
    }
    let md = fs::read_to_string(root.join("report/report.md")).unwrap();
    assert!(stdout(&o).contains(&md));
    assert!(md.contains("## sst2 (base: GA, 2 seeds)"), "{md}");
    assert!(md.contains("Over seeds:"), "{md}");
    assert!(md.contains(" ± "), "{md}");
    assert!(
        stderr(&o).contains("8 runs (4 cells × 2 seeds)"),
        "{}",
        stderr(&o)
    );
}
