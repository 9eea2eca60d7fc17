//! `zo report RUN_DIR...`

use anyhow::Context;

use super::{failed, usage, CmdResult};
use crate::cli::ReportArgs;
use crate::report::{
    build_tables, csv, load_run, markdown, parse_fractions, plot, plot_series, ratio::SMOOTHING,
};
use crate::rundir::write_atomic;

pub fn run(a: &ReportArgs) -> CmdResult {
    let runs = a
        .runs
        .iter()
        .map(|d| load_run(d))
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(usage)?;
    let fractions = a
        .fractions
        .as_deref()
        .map(parse_fractions)
        .transpose()
        .map_err(usage)?;
    let tables = build_tables(&runs, &a.base, fractions.as_deref()).map_err(usage)?;
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("{}: cannot create report directory", a.out.display()))
        .map_err(failed)?;
    let md = markdown(&tables);
    write_atomic(&a.out.join("report.md"), md.as_bytes()).map_err(failed)?;
    write_atomic(&a.out.join("report.csv"), csv(&tables).as_bytes()).map_err(failed)?;
    for t in &tables {
        let series = plot_series(&runs, &t.task);
        let mut title = format!(
            "{}: training loss vs queries (centred moving average)",
            t.task
        );
        if !t.base_check.testable() {
            title.push_str(" — NOT MEANINGFUL: base runs too short to test");
        } else if !t.base_check.meaningful() {
            title.push_str(" — NOT MEANINGFUL: base loss flat");
        }
        let file: String = t
            .task
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        plot::loss_plot(&a.out, &format!("loss_{file}"), &title, &series).map_err(failed)?;
    }
    print!("{md}");
    for t in &tables {
        for w in t.warnings() {
            eprintln!("warning: {}: {w}", t.task);
        }
    }
    eprintln!(
        "report written to {} (smoothing: {SMOOTHING})",
        a.out.display()
    );
    Ok(())
}
