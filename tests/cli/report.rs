//! `zo report` on run directories written by hand (the same files `zo train` writes).

use std::fs;
use std::path::Path;

use crate::common::{assert_code, run_in, stdout};

fn fake_run(dir: &Path, method: &str, schedule: &str, losses: &[f64]) {
    fake_seeded_run(dir, method, schedule, None, losses)
}

fn fake_seeded_run(dir: &Path, method: &str, schedule: &str, seed: Option<u64>, losses: &[f64]) {
    fs::create_dir_all(dir).unwrap();
    let seed = seed.map_or(String::new(), |s| format!("seed = {s}\n"));
    fs::write(
        dir.join("run.toml"),
        format!(
            "[task]\nname = \"sst2\"\n[optimizer]\nmethod = \"{method}\"\ndist = \"normal\"\n\
             [train]\nschedule = \"{schedule}\"\n{seed}[model]\nkind = \"opt\"\n"
        ),
    )
    .unwrap();
    let mut m = String::new();
    for (k, l) in losses.iter().enumerate() {
        m.push_str(&format!(
            "{{\"kind\":\"step\",\"step\":{},\"queries_total\":{},\"loss\":{l}}}\n",
            k + 1,
            2 * (k + 1)
        ));
        if k % 10 == 9 {
            m.push_str(&format!(
                "{{\"kind\":\"eval\",\"step\":{},\"dev_loss\":0.5}}\n",
                k + 1
            ));
        }
    }
    fs::write(dir.join("metrics.jsonl"), m).unwrap();
}

#[test]
fn report_builds_table_csv_and_plots_from_runs() {
    let d = tempfile::tempdir().unwrap();
    // GA decays like 1/(1+k/20); AS2P twice as fast; GA constant never gets to GA's final loss.
    let ga: Vec<f64> = (0..100).map(|k| 1.0 / (1.0 + k as f64 / 20.0)).collect();
    let as2p: Vec<f64> = (0..100).map(|k| 1.0 / (1.0 + k as f64 / 10.0)).collect();
    let flat: Vec<f64> = (0..100).map(|k| 1.0 / (1.0 + k as f64 / 80.0)).collect();
    fake_run(&d.path().join("ga"), "ga", "cosine", &ga);
    fake_run(&d.path().join("as2p"), "as2p", "cosine", &as2p);
    fake_run(&d.path().join("gac"), "ga", "constant", &flat);
    let o = run_in(d.path(), &["report", "ga", "as2p", "gac", "--out", "rep"]);
    assert_code(&o, 0);
    let md = stdout(&o);
    assert!(md.contains("## sst2 (base: GA)"), "{md}");
    assert!(md.contains("| method | 100% | 75% | 50% | 25% |"), "{md}");
    assert!(md.contains("Smoothing: centred moving average"), "{md}");

    // The CSV parses, has a row per (method, fraction), and AS2P costs about half of GA.
    let csv = fs::read_to_string(d.path().join("rep/report.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 12);
    let get = |m: &str, f: &str| -> Option<f64> {
        let r = rows.iter().find(|r| r[1] == m && r[2] == f).unwrap();
        r[3].parse().ok()
    };
    let as2p_full = get("AS2P", "1").unwrap();
    assert!((as2p_full - 0.5).abs() < 0.03, "AS2P at 100 %: {as2p_full}");
    let ga_half = get("GA", "0.5").unwrap();
    assert!((ga_half - 0.5).abs() < 0.03, "GA at 50 %: {ga_half}");
    assert_eq!(get("GA constant", "1"), None, "never reached must be empty");
    assert!(md.contains('–'), "{md}");

    // The SVG is XML with one path per method and the legend labels.
    let svg = fs::read_to_string(d.path().join("rep/loss_sst2.svg")).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
    // Series are the 2-px polylines: per method one curve of 100 points and one legend mark.
    let series: Vec<(String, Vec<(f64, f64)>)> = svg
        .split("<polyline")
        .skip(1)
        .filter(|p| p.contains("stroke-width=\"2\""))
        .map(|p| {
            let attr = |name: &str| {
                p.split(&format!("{name}=\""))
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap()
            };
            let points = attr("points")
                .split_whitespace()
                .map(|xy| {
                    let (x, y) = xy.split_once(',').unwrap();
                    (x.parse().unwrap(), y.parse().unwrap())
                })
                .collect();
            (attr("stroke").to_string(), points)
        })
        .collect();
    let curves: Vec<&Vec<(f64, f64)>> = series
        .iter()
        .map(|s| &s.1)
        .filter(|p| p.len() == 100)
        .collect();
    assert_eq!(curves.len(), 3, "one 100-point curve per method");
    assert_eq!(series.len(), 6, "3 curves + 3 legend marks");
    for c in &curves {
        // Losses fall, so the curves go down the page (SVG y grows downwards) as x grows.
        assert!(
            c.windows(2).all(|w| w[1].0 >= w[0].0 && w[1].1 >= w[0].1),
            "{c:?}"
        );
    }
    for label in ["GA", "AS2P", "GA constant"] {
        assert!(
            svg.contains(&format!(">\n{label}\n</text>")),
            "legend {label}"
        );
    }
    // The PNG decodes to the advertised size and is not blank.
    let decoder = png::Decoder::new(std::io::BufReader::new(
        fs::File::open(d.path().join("rep/loss_sst2.png")).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (900, 560));
    let non_white = buf.chunks(3).filter(|p| p != &[255, 255, 255]).count();
    assert!(
        non_white > 5_000,
        "plot looks blank: {non_white} non-white pixels"
    );
}

#[test]
fn report_errors_are_usage_errors_naming_the_file() {
    let d = tempfile::tempdir().unwrap();
    let o = run_in(d.path(), &["report", "nope"]);
    assert_code(&o, 2);
    assert!(crate::common::stderr(&o).contains("nope/run.toml"));
    fake_run(&d.path().join("as2p"), "as2p", "cosine", &[1.0, 0.5]);
    let o = run_in(d.path(), &["report", "as2p"]);
    assert_code(&o, 2);
    let err = crate::common::stderr(&o);
    assert!(err.contains("no run labelled `GA`"), "{err}");
    assert!(err.contains("pass --base AS2P"), "{err}");
    // As the message says: the run's own label as the base.
    let o = run_in(d.path(), &["report", "as2p", "--base", "AS2P"]);
    assert_code(&o, 0);
    assert!(d.path().join("report/report.md").is_file());
    fs::write(d.path().join("as2p/metrics.jsonl"), "{\"kind\":\"step\"\n").unwrap();
    let o = run_in(d.path(), &["report", "as2p", "--base", "AS2P"]);
    assert_code(&o, 2);
    assert!(crate::common::stderr(&o).contains("metrics.jsonl:1: invalid JSON line"));
}

/// Deterministic zero-mean noise of standard deviation about 0.03, different per `salt`.
fn noise(k: usize, salt: usize) -> f64 {
    let h = (k * 7919 + salt * 104_729) % 1009;
    (h as f64 / 1009.0 - 0.5) * 0.1
}

#[test]
fn report_warns_when_the_base_curve_is_flat() {
    let d = tempfile::tempdir().unwrap();
    // Losses of a model that learns nothing: 0.69 plus noise, for every method.
    let flat = |salt| -> Vec<f64> { (0..200).map(|k| 0.69 + noise(k, salt)).collect() };
    fake_run(&d.path().join("ga"), "ga", "cosine", &flat(1));
    fake_run(&d.path().join("as2p"), "as2p", "cosine", &flat(2));
    let o = run_in(d.path(), &["report", "ga", "as2p", "--out", "rep"]);
    assert_code(&o, 0);
    let md = stdout(&o);
    for text in [
        md.as_str(),
        &fs::read_to_string(d.path().join("rep/report.md")).unwrap(),
    ] {
        assert!(
            text.contains("**WARNING: 1 of 1 table has warnings"),
            "{text}"
        );
        assert!(
            text.contains(
                "> **WARNING:** this table is not meaningful: GA's smoothed training loss fell by"
            ),
            "{text}"
        );
    }
    assert!(
        crate::common::stderr(&o).contains("warning: sst2: this table is not meaningful"),
        "{}",
        crate::common::stderr(&o)
    );
    // The warning precedes the numbers it concerns.
    assert!(
        md.find("not meaningful").unwrap() < md.find("| GA |").unwrap(),
        "{md}"
    );
    let csv = fs::read_to_string(d.path().join("rep/report.csv")).unwrap();
    assert!(
        csv.lines().skip(1).all(|l| l.contains("base_flat")),
        "{csv}"
    );
    let svg = fs::read_to_string(d.path().join("rep/loss_sst2.svg")).unwrap();
    assert!(svg.contains("NOT MEANINGFUL"));
}

#[test]
fn report_does_not_warn_when_the_base_curve_falls() {
    let d = tempfile::tempdir().unwrap();
    // The same noise on a loss that falls by 0.2 over the run: about 10 standard errors.
    let falling = |salt, rate: f64| -> Vec<f64> {
        (0..200)
            .map(|k| 0.69 - 0.2 * (1.0 - (-(k as f64) * rate / 200.0).exp()) + noise(k, salt))
            .collect()
    };
    fake_run(&d.path().join("ga"), "ga", "cosine", &falling(1, 2.0));
    fake_run(&d.path().join("as2p"), "as2p", "cosine", &falling(2, 4.0));
    let o = run_in(d.path(), &["report", "ga", "as2p", "--out", "rep"]);
    assert_code(&o, 0);
    let md = stdout(&o);
    assert!(!md.contains("WARNING"), "{md}");
    assert!(md.contains("(test passed)"), "{md}");
    assert!(!crate::common::stderr(&o).contains("warning"));
    let csv = fs::read_to_string(d.path().join("rep/report.csv")).unwrap();
    assert!(csv.lines().skip(1).all(|l| l.ends_with(',')), "{csv}");
}

#[test]
fn report_says_when_the_base_runs_are_too_short_to_test() {
    // 12 steps: a window of one point, whose residual is zero whatever the noise; the test
    // would pass with any drop over a standard error of 0.
    let d = tempfile::tempdir().unwrap();
    let short = |salt| -> Vec<f64> {
        (0..12)
            .map(|k| 0.69 - 0.001 * k as f64 + noise(k, salt))
            .collect()
    };
    fake_run(&d.path().join("ga"), "ga", "cosine", &short(1));
    fake_run(&d.path().join("as2p"), "as2p", "cosine", &short(2));
    let o = run_in(d.path(), &["report", "ga", "as2p", "--out", "rep"]);
    assert_code(&o, 0);
    let md = stdout(&o);
    assert!(!md.contains("test passed"), "{md}");
    assert!(
        md.contains("GA's runs are too short to test (12 steps; the smoothing needs at least 21"),
        "{md}"
    );
    let csv = fs::read_to_string(d.path().join("rep/report.csv")).unwrap();
    assert!(
        csv.lines().skip(1).all(|l| l.contains("base_short")),
        "{csv}"
    );
    let svg = fs::read_to_string(d.path().join("rep/loss_sst2.svg")).unwrap();
    assert!(svg.contains("too short to test"));
}

#[test]
fn report_warns_about_a_rising_run() {
    let d = tempfile::tempdir().unwrap();
    let ga: Vec<f64> = (0..100).map(|k| 1.0 / (1.0 + k as f64 / 20.0)).collect();
    let up: Vec<f64> = (0..100).map(|k| 1.0 + k as f64 / 50.0).collect();
    fake_run(&d.path().join("ga"), "ga", "cosine", &ga);
    fake_run(&d.path().join("stp"), "stp", "cosine", &up);
    let o = run_in(d.path(), &["report", "ga", "stp", "--out", "rep"]);
    assert_code(&o, 0);
    let md = stdout(&o);
    assert!(
        md.contains("> **WARNING:** STP: rose (smoothed loss"),
        "{md}"
    );
    assert!(!md.contains("not meaningful"), "{md}");
}

#[test]
fn report_aggregates_seeds_as_mean_and_std() {
    let d = tempfile::tempdir().unwrap();
    for seed in [1u64, 2, 3] {
        let s = seed as f64;
        // GA decays at a seed-dependent rate; AS2P 1.8 to 2.5 times as fast.
        let ga: Vec<f64> = (0..100)
            .map(|k| 1.0 / (1.0 + k as f64 * (0.9 + 0.1 * s) / 20.0))
            .collect();
        let as2p: Vec<f64> = (0..100)
            .map(|k| 1.0 / (1.0 + k as f64 * (1.2 + 0.6 * s) / 20.0))
            .collect();
        fake_seeded_run(
            &d.path().join(format!("ga-s{seed}")),
            "ga",
            "cosine",
            Some(seed),
            &ga,
        );
        fake_seeded_run(
            &d.path().join(format!("as2p-s{seed}")),
            "as2p",
            "cosine",
            Some(seed),
            &as2p,
        );
    }
    let args = [
        "report", "ga-s1", "ga-s2", "ga-s3", "as2p-s1", "as2p-s2", "as2p-s3", "--out", "rep",
    ];
    let o = run_in(d.path(), &args);
    assert_code(&o, 0);
    let md = stdout(&o);
    assert!(md.contains("## sst2 (base: GA, 3 seeds)"), "{md}");
    assert!(
        md.contains("Over seeds: each run's ratio against the base run of the same seed"),
        "{md}"
    );
    // GA against itself: exactly the fractions, no spread; the base row comes first.
    assert!(
        md.contains("| GA | 1.00 ± 0.00 | 0.75 ± 0.00 | 0.50 ± 0.00 | 0.25 ± 0.00 |"),
        "{md}"
    );
    assert!(
        md.find("| GA |").unwrap() < md.find("| AS2P |").unwrap(),
        "{md}"
    );
    let csv = fs::read_to_string(d.path().join("rep/report.csv")).unwrap();
    let row = csv.lines().find(|l| l.starts_with("sst2,AS2P,1,")).unwrap();
    let f: Vec<&str> = row.split(',').collect();
    let (mean, std): (f64, f64) = (f[3].parse().unwrap(), f[4].parse().unwrap());
    assert!(
        (mean - 0.47).abs() < 0.05 && std > 0.02 && std < 0.15,
        "{row}"
    );
    assert_eq!((f[5], f[6]), ("3", "3"), "{row}");
    // The plot shows one mean curve per method, with its band.
    let svg = fs::read_to_string(d.path().join("rep/loss_sst2.svg")).unwrap();
    assert!(svg.contains("AS2P (mean ± std, 3 seeds)"));
    assert_eq!(svg.matches("<polygon").count(), 2, "one band per method");

    // A run whose seed has no base run is an error naming it.
    fake_seeded_run(
        &d.path().join("as2p-s9"),
        "as2p",
        "cosine",
        Some(9),
        &[1.0, 0.5],
    );
    let o = run_in(d.path(), &["report", "ga-s1", "ga-s2", "as2p-s9"]);
    assert_code(&o, 2);
    assert!(crate::common::stderr(&o).contains("as2p-s9 (seed 9) has no `GA` run with its seed"));
}
