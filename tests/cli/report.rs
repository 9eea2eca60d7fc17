//! `zo report` on run directories written by hand (the same files `zo train` writes).

use std::fs;
use std::path::Path;

use crate::common::{assert_code, run_in, stdout};

fn fake_run(dir: &Path, method: &str, schedule: &str, losses: &[f64]) {
    fs::create_dir_all(dir).unwrap();
    fs::write(
        dir.join("run.toml"),
        format!(
            "[task]\nname = \"sst2\"\n[optimizer]\nmethod = \"{method}\"\ndist = \"normal\"\n\
             [train]\nschedule = \"{schedule}\"\n[model]\nkind = \"opt\"\n"
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
    assert!(crate::common::stderr(&o).contains("no run labelled `GA`"));
    fs::write(d.path().join("as2p/metrics.jsonl"), "{\"kind\":\"step\"\n").unwrap();
    let o = run_in(d.path(), &["report", "as2p", "--base", "AS2P"]);
    assert_code(&o, 2);
    assert!(crate::common::stderr(&o).contains("metrics.jsonl:1: invalid JSON line"));
}
