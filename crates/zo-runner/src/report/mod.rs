//! `zo report`: training-cost-ratio tables and loss plots rebuilt from run directories' logs.

pub mod plot;
pub mod ratio;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{anyhow, bail, Result};

use crate::rundir::read_jsonl;
use ratio::{cost_ratios, Curve, SMOOTHING};

/// What the report needs of one run directory.
#[derive(Clone, Debug)]
pub struct RunSummary {
    /// The table the run belongs to: `report.group`, else the task name.
    pub task: String,
    pub label: String,
    /// "opt" or "resnet": picks the default thresholds.
    pub model_kind: String,
    pub curve: Curve,
}

/// The method label used in tables: the paper's names (GA, GA_sign, STP, S2P, AS2P, AS2P_sign),
/// with " constant" for GA with a constant LR schedule (Table 6's "GA constant").
pub fn method_label(method: &str, distribution: &str, schedule: &str) -> String {
    let mut label = match method {
        "ga" => "GA".to_string(),
        "stp" => "STP".to_string(),
        "s2p" => "S2P".to_string(),
        "as2p" => "AS2P".to_string(),
        other => other.to_uppercase(),
    };
    if distribution == "rademacher" {
        label.push_str("_sign");
    } else if distribution == "uniform" {
        label.push_str("_uniform");
    }
    if method == "ga" && schedule == "constant" {
        label.push_str(" constant");
    }
    label
}

/// What a curve plots, the same quantity for every method: f(x) where the step measured it
/// (STP), else (f₊ + f₋)/2 = f(x) + O(ρ²) (the methods' own "loss" differs: GA logs f₊ like
/// MeZO, S2P/AS2P min(f₊, f₋), which sits below f(x) by about |f₊ − f₋|/2 and would flatter
/// them), else the logged loss.
pub const CURVE_QUANTITY: &str = "f(x) where measured (STP), else (f₊ + f₋)/2";

fn curve_loss(row: &serde_json::Value) -> Option<f64> {
    if let Some(fx) = row["f_x"].as_f64() {
        return Some(fx);
    }
    match (row["f_plus"].as_f64(), row["f_minus"].as_f64()) {
        (Some(a), Some(b)) => Some(0.5 * (a + b)),
        _ => row["loss"].as_f64(),
    }
}

/// Reads run.toml and metrics.jsonl of a run directory.
pub fn load_run(dir: &Path) -> Result<RunSummary> {
    let run_toml = dir.join("run.toml");
    let text = crate::rundir::read_run_toml(dir)?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        anyhow!("{}: invalid TOML: {}", run_toml.display(), e.message())
    })?;
    let get = |section: &str, key: &str| -> Option<String> {
        table.get(section)?.get(key)?.as_str().map(str::to_string)
    };
    let task = match get("report", "group") {
        Some(g) => g,
        None => {
            get("task", "name").ok_or_else(|| anyhow!("{}: no `task.name`", run_toml.display()))?
        }
    };
    let method = get("optimizer", "method")
        .ok_or_else(|| anyhow!("{}: no `optimizer.method`", run_toml.display()))?;
    let label = get("report", "label").unwrap_or_else(|| {
        method_label(
            &method,
            &get("optimizer", "dist").unwrap_or_else(|| "normal".into()),
            &get("train", "schedule").unwrap_or_else(|| "constant".into()),
        )
    });
    let model_kind = get("model", "kind").unwrap_or_else(|| "opt".into());
    let metrics = dir.join("metrics.jsonl");
    let mut curve = Curve::default();
    for (i, row) in read_jsonl(&metrics)?.iter().enumerate() {
        if row["kind"] != "step" {
            continue;
        }
        let (Some(q), Some(l)) = (row["queries_total"].as_u64(), curve_loss(row)) else {
            bail!(
                "{}:{}: step line without `queries_total` and `loss`",
                metrics.display(),
                i + 1
            );
        };
        curve.queries.push(q);
        curve.loss.push(l);
    }
    if curve.loss.is_empty() {
        bail!("{}: no step lines", metrics.display());
    }
    Ok(RunSummary {
        task,
        label,
        model_kind,
        curve,
    })
}

/// Parses `--fractions`.
pub fn parse_fractions(spec: &str) -> Result<Vec<f64>> {
    match spec {
        "llm" => Ok(vec![1.0, 0.75, 0.5, 0.25]),
        "resnet" => Ok(vec![1.0, 0.8, 0.6, 0.4, 0.2]),
        list => list
            .split(',')
            .map(|s| {
                let f: f64 = s
                    .trim()
                    .parse()
                    .map_err(|_| anyhow!("--fractions: `{s}` is not a number"))?;
                if !(f > 0.0 && f <= 1.0) {
                    bail!("--fractions: {f} is not in (0, 1]");
                }
                Ok(f)
            })
            .collect(),
    }
}

/// One task's table.
pub struct TaskTable {
    pub task: String,
    pub base_label: String,
    pub fractions: Vec<f64>,
    /// (label, base total queries is implicit) → ratios per fraction.
    pub rows: Vec<(String, Vec<Option<f64>>)>,
}

/// Builds the per-task tables. Runs are grouped by task; the base run of a task is the one
/// labelled `base` (it must exist, exactly once).
pub fn build_tables(
    runs: &[RunSummary],
    base: &str,
    fractions: Option<&[f64]>,
) -> Result<Vec<TaskTable>> {
    let mut by_task: BTreeMap<&str, Vec<&RunSummary>> = BTreeMap::new();
    for r in runs {
        by_task.entry(r.task.as_str()).or_default().push(r);
    }
    let mut tables = Vec::new();
    for (task, rs) in by_task {
        let bases: Vec<&&RunSummary> = rs.iter().filter(|r| r.label == base).collect();
        let base_run = match bases.as_slice() {
            [one] => **one,
            [] => bail!(
                "task {task}: no run labelled `{base}` to use as the base (labels: {})",
                rs.iter()
                    .map(|r| r.label.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => bail!(
                "task {task}: several runs labelled `{base}`; pass --base or set report.label"
            ),
        };
        let fr = match fractions {
            Some(f) => f.to_vec(),
            None if base_run.model_kind == "resnet" => parse_fractions("resnet")?,
            None => parse_fractions("llm")?,
        };
        let curves: Vec<&Curve> = rs.iter().map(|r| &r.curve).collect();
        let ratios = cost_ratios(&base_run.curve, &curves, &fr);
        let rows = rs.iter().map(|r| r.label.clone()).zip(ratios).collect();
        tables.push(TaskTable {
            task: task.to_string(),
            base_label: base.to_string(),
            fractions: fr,
            rows,
        });
    }
    Ok(tables)
}

/// The markdown form of the tables, with the smoothing rule stated.
pub fn markdown(tables: &[TaskTable]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Training-cost ratio (queries to reach the base method's loss, / base total queries)\n"
    );
    let _ = writeln!(
        s,
        "Loss per step: {CURVE_QUANTITY}. Smoothing: {SMOOTHING}. \"–\": never reached.\n"
    );
    for t in tables {
        let _ = writeln!(s, "## {} (base: {})\n", t.task, t.base_label);
        s.push_str(&zo_core::cost::markdown_table(&t.fractions, &t.rows));
        s.push('\n');
    }
    s
}

/// The CSV form: task,method,fraction,ratio (empty ratio = never reached).
pub fn csv(tables: &[TaskTable]) -> String {
    let mut s = String::from("task,method,fraction,ratio\n");
    for t in tables {
        for (label, r) in &t.rows {
            for (f, v) in t.fractions.iter().zip(r) {
                let _ = writeln!(
                    s,
                    "{},{},{},{}",
                    t.task,
                    label,
                    f,
                    v.map_or(String::new(), |x| format!("{x:.6}"))
                );
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn curves_use_the_same_quantity_for_every_method() {
        // STP: the unperturbed f(x).
        assert_eq!(
            curve_loss(&json!({"f_x": 0.5, "f_plus": 0.4, "f_minus": 0.7, "loss": 0.4})),
            Some(0.5)
        );
        // GA / AS2P: the probes' mean, not min(f₊, f₋) nor f₊.
        assert_eq!(
            curve_loss(&json!({"f_x": null, "f_plus": 0.6, "f_minus": 0.4, "loss": 0.4})),
            Some(0.5)
        );
        // A line with only the logged loss.
        assert_eq!(curve_loss(&json!({"loss": 0.3})), Some(0.3));
        assert_eq!(curve_loss(&json!({"step": 1})), None);
    }
}
