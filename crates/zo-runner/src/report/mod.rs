//! `zo report`: training-cost-ratio tables and loss plots rebuilt from run directories' logs.

pub mod plot;
pub mod ratio;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};

use crate::rundir::read_jsonl;
use ratio::{cost_ratios, smooth, window, Curve, SMOOTHING};

/// What the report needs of one run directory.
#[derive(Clone, Debug)]
pub struct RunSummary {
    /// The table the run belongs to: `report.group`, else the task name.
    pub task: String,
    pub label: String,
    /// "opt" or "resnet": picks the default thresholds.
    pub model_kind: String,
    /// `train.seed`: runs of one method under several seeds are aggregated.
    pub seed: Option<u64>,
    pub dir: PathBuf,
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
    let seed = table
        .get("train")
        .and_then(|t| t.get("seed"))
        .and_then(|v| v.as_integer())
        .and_then(|v| u64::try_from(v).ok());
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
        seed,
        dir: dir.to_path_buf(),
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

/// How many standard errors the base method's loss must fall by for a table to mean anything.
pub const FLAT_K: f64 = 3.0;

/// The test of the base method, stated in every report.
pub const BASE_TEST: &str = "with s a run's smoothed curve (window w, so each end of s averages \
h+1 = ⌊w/2⌋+1 raw losses), drop = s(first) − s(last) and σ² = the mean square of the raw \
losses' residual around s, the table is meaningful only if the mean drop over the base \
method's n seeds exceeds 3 × its standard error √(Σ 2σ²/(h+1)) / n";

/// The test of every run: it diverged if a loss is non-finite, and rose if its last smoothed
/// loss is above its first.
pub const RUN_TEST: &str = "a run diverged if a logged loss is not finite, and rose if its last \
smoothed loss is above its first";

/// How the cells aggregate a method's runs over seeds, stated when a method has several.
pub const OVER_SEEDS: &str = "each run's ratio against the base run of the same seed \
(train.seed; against the only base run when there is one), then the mean ± sample std over \
the seeds; \"(k/n)\": only k of the n seeds got there, the mean is over those k";

/// One cell of a table: a method's cost ratio at one fraction, over its runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    pub mean: f64,
    /// Sample standard deviation over the runs that reached the threshold (0 for one run).
    pub std: f64,
    /// Runs that reached the threshold, of `runs`.
    pub reached: usize,
    pub runs: usize,
}

/// One method's row.
pub struct Row {
    pub label: String,
    /// Its runs (one per seed).
    pub runs: usize,
    /// None: no run reached the threshold.
    pub cells: Vec<Option<Cell>>,
    /// Runs that diverged or rose (see [`RUN_TEST`]), described.
    pub problems: Vec<String>,
}

/// The base method's drop against its noise (see [`BASE_TEST`]).
#[derive(Clone, Debug, PartialEq)]
pub struct BaseCheck {
    /// Mean over the base runs of s(first) − s(last).
    pub drop: f64,
    /// Standard error of that mean.
    pub noise: f64,
    pub runs: usize,
    /// The fewest steps of a base run: below [`MIN_TESTABLE_STEPS`] its smoothing window is one
    /// point, the residual is zero by construction and the noise cannot be estimated.
    pub min_steps: usize,
}

/// The fewest steps a base run needs for the test: its window ([`window`]) must span 3 points.
pub const MIN_TESTABLE_STEPS: usize = 21;

impl BaseCheck {
    /// Whether the base runs are long enough for the test to say anything.
    pub fn testable(&self) -> bool {
        self.min_steps >= MIN_TESTABLE_STEPS
    }

    pub fn meaningful(&self) -> bool {
        self.testable() && self.drop > FLAT_K * self.noise
    }

    /// The base curves' check.
    pub fn of(curves: &[&Curve]) -> Self {
        let n = curves.len().max(1) as f64;
        let (mut drop, mut var) = (0.0, 0.0);
        for c in curves {
            let l = &c.loss;
            if l.is_empty() {
                drop = f64::NAN;
                continue;
            }
            let s = smooth(l);
            drop += s[0] - s[s.len() - 1];
            let sigma2 =
                l.iter().zip(&s).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / l.len() as f64;
            let h = (window(l.len()) / 2) as f64;
            var += 2.0 * sigma2 / (h + 1.0);
        }
        Self {
            drop: drop / n,
            noise: var.sqrt() / n,
            runs: curves.len(),
            min_steps: curves.iter().map(|c| c.loss.len()).min().unwrap_or(0),
        }
    }
}

/// What is wrong with a run, if anything (see [`RUN_TEST`]).
pub fn run_problem(c: &Curve) -> Option<String> {
    if let Some(i) = c.loss.iter().position(|v| !v.is_finite()) {
        return Some(format!("diverged (loss {} at step {})", c.loss[i], i + 1));
    }
    let s = smooth(&c.loss);
    let (first, last) = (*s.first()?, *s.last()?);
    (last > first).then(|| format!("rose (smoothed loss {first:.4} → {last:.4})"))
}

/// One task's table.
pub struct TaskTable {
    pub task: String,
    pub base_label: String,
    pub fractions: Vec<f64>,
    pub rows: Vec<Row>,
    pub base_check: BaseCheck,
}

impl TaskTable {
    /// The table's warnings, one sentence each (empty: none).
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        let b = &self.base_check;
        if !b.testable() {
            w.push(format!(
                "this table is not meaningful: {}'s runs are too short to test ({} steps; the \
                 smoothing needs at least {MIN_TESTABLE_STEPS} to estimate the noise its loss \
                 must fall by more than), so the ratios below may compare noise, not optimizers",
                self.base_label, b.min_steps
            ));
        } else if !b.meaningful() {
            w.push(format!(
                "this table is not meaningful: {}'s smoothed training loss fell by {:.4} \
                 (mean over {} run{}), not more than {FLAT_K} × its standard error {:.4}, so \
                 the ratios below compare noise, not optimizers",
                self.base_label,
                b.drop,
                b.runs,
                if b.runs == 1 { "" } else { "s" },
                b.noise
            ));
        }
        for r in &self.rows {
            for p in &r.problems {
                w.push(format!("{}: {p}", r.label));
            }
        }
        w
    }
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let std = if v.len() > 1 {
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (mean, std)
}

fn seed_name(r: &RunSummary) -> String {
    r.seed
        .map_or_else(|| "no seed".into(), |s| format!("seed {s}"))
}

/// Builds the per-task tables. Runs are grouped by task, then by label; a label with several
/// runs (seeds) is aggregated as [`OVER_SEEDS`] says. The base label must have a run, and its
/// runs distinct seeds.
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
        let bases: Vec<&RunSummary> = rs.iter().copied().filter(|r| r.label == base).collect();
        if bases.is_empty() {
            let mut labels: Vec<&str> = rs.iter().map(|r| r.label.as_str()).collect();
            labels.sort_unstable();
            labels.dedup();
            bail!(
                "task {task}: no run labelled `{base}` to use as the base (labels: {}); \
                 pass --base {} to measure against that one",
                labels.join(", "),
                labels[0]
            );
        }
        if bases.len() > 1 {
            let mut seeds: Vec<Option<u64>> = bases.iter().map(|r| r.seed).collect();
            seeds.sort_unstable();
            seeds.dedup();
            if seeds.len() != bases.len() || seeds.contains(&None) {
                bail!(
                    "task {task}: several runs labelled `{base}` with the same seed; pass --base or set report.label"
                );
            }
        }
        let base_for = |r: &RunSummary| -> Result<&RunSummary> {
            if let [one] = bases.as_slice() {
                return Ok(one);
            }
            bases
                .iter()
                .copied()
                .find(|b| b.seed == r.seed)
                .ok_or_else(|| {
                    anyhow!(
                        "task {task}: {} ({}) has no `{base}` run with its seed to compare with",
                        r.dir.display(),
                        seed_name(r)
                    )
                })
        };
        let fr = match fractions {
            Some(f) => f.to_vec(),
            None if bases[0].model_kind == "resnet" => parse_fractions("resnet")?,
            None => parse_fractions("llm")?,
        };
        // The base row first, then the others in the order of their first run.
        let mut labels: Vec<&str> = vec![base];
        for r in &rs {
            if !labels.contains(&r.label.as_str()) {
                labels.push(&r.label);
            }
        }
        let mut rows = Vec::new();
        for label in labels {
            let mine: Vec<&RunSummary> = rs.iter().copied().filter(|r| r.label == label).collect();
            let mut per_fraction: Vec<Vec<f64>> = vec![Vec::new(); fr.len()];
            let mut problems = Vec::new();
            for r in &mine {
                let b = base_for(r)?;
                let ratios = cost_ratios(&b.curve, &[&r.curve], &fr).remove(0);
                for (acc, v) in per_fraction.iter_mut().zip(ratios) {
                    acc.extend(v);
                }
                if let Some(p) = run_problem(&r.curve) {
                    problems.push(if mine.len() > 1 {
                        format!("{} {p}", seed_name(r))
                    } else {
                        p
                    });
                }
            }
            let cells = per_fraction
                .iter()
                .map(|v| {
                    (!v.is_empty()).then(|| {
                        let (mean, std) = mean_std(v);
                        Cell {
                            mean,
                            std,
                            reached: v.len(),
                            runs: mine.len(),
                        }
                    })
                })
                .collect();
            rows.push(Row {
                label: label.to_string(),
                runs: mine.len(),
                cells,
                problems,
            });
        }
        let base_curves: Vec<&Curve> = bases.iter().map(|r| &r.curve).collect();
        tables.push(TaskTable {
            task: task.to_string(),
            base_label: base.to_string(),
            fractions: fr,
            rows,
            base_check: BaseCheck::of(&base_curves),
        });
    }
    Ok(tables)
}

fn cell_text(c: &Option<Cell>) -> String {
    match c {
        None => "–".into(),
        Some(c) if c.runs == 1 => format!("{:.2}", c.mean),
        Some(c) if c.reached == c.runs => format!("{:.2} ± {:.2}", c.mean, c.std),
        // One seed got there: its ratio alone (a spread of one value would read as 0.00).
        Some(c) if c.reached == 1 => format!("{:.2} (1/{})", c.mean, c.runs),
        Some(c) => format!("{:.2} ± {:.2} ({}/{})", c.mean, c.std, c.reached, c.runs),
    }
}

/// The markdown form of the tables, with the smoothing, the aggregation over seeds and the
/// tests stated, and every warning before the numbers it concerns.
pub fn markdown(tables: &[TaskTable]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Training-cost ratio (queries to reach the base method's loss, / base total queries)\n"
    );
    let flagged = tables.iter().filter(|t| !t.warnings().is_empty()).count();
    if flagged > 0 {
        let _ = writeln!(
            s,
            "**WARNING: {flagged} of {} table{} {} warnings (below); read {} numbers with them.**\n",
            tables.len(),
            if tables.len() == 1 { "" } else { "s" },
            if flagged == 1 { "has" } else { "have" },
            if flagged == 1 { "its" } else { "their" },
        );
    }
    let _ = writeln!(
        s,
        "Loss per step: {CURVE_QUANTITY}. Smoothing: {SMOOTHING}. \"–\": never reached."
    );
    if tables.iter().any(|t| t.rows.iter().any(|r| r.runs > 1)) {
        let _ = writeln!(s, "Over seeds: {OVER_SEEDS}.");
    }
    let _ = writeln!(s, "Checks: {BASE_TEST}; {RUN_TEST}.\n");
    for t in tables {
        let base_runs = t.base_check.runs;
        let _ = writeln!(
            s,
            "## {} (base: {}{})\n",
            t.task,
            t.base_label,
            if base_runs > 1 {
                format!(", {base_runs} seeds")
            } else {
                String::new()
            }
        );
        let warnings = t.warnings();
        for w in &warnings {
            let _ = writeln!(s, "> **WARNING:** {w}.");
        }
        if !warnings.is_empty() {
            s.push('\n');
        }
        if t.base_check.meaningful() {
            let _ = writeln!(
                s,
                "{}'s smoothed loss fell by {:.4}, {:.1} × its standard error {:.4} (test passed).\n",
                t.base_label,
                t.base_check.drop,
                t.base_check.drop / t.base_check.noise,
                t.base_check.noise
            );
        }
        s.push_str("| method |");
        for f in &t.fractions {
            let _ = write!(s, " {:.0}% |", f * 100.0);
        }
        s.push_str("\n|---|");
        s.push_str(&"---:|".repeat(t.fractions.len()));
        s.push('\n');
        for r in &t.rows {
            let _ = write!(s, "| {} |", r.label);
            for c in &r.cells {
                let _ = write!(s, " {} |", cell_text(c));
            }
            s.push('\n');
        }
        s.push('\n');
    }
    s
}

/// The CSV form: task,method,fraction,ratio,std,reached,runs,warning. `ratio` is the mean over
/// the runs that reached the threshold (empty: none did); `warning` is `base_flat` when the
/// table failed the base test, `base_short` when the base runs were too short to take it, `diverged` when this method's runs failed theirs.
pub fn csv(tables: &[TaskTable]) -> String {
    let mut s = String::from("task,method,fraction,ratio,std,reached,runs,warning\n");
    for t in tables {
        for r in &t.rows {
            let mut warn = Vec::new();
            if !t.base_check.testable() {
                warn.push("base_short");
            } else if !t.base_check.meaningful() {
                warn.push("base_flat");
            }
            if !r.problems.is_empty() {
                warn.push("diverged");
            }
            for (f, c) in t.fractions.iter().zip(&r.cells) {
                let (ratio, std, reached) = match c {
                    Some(c) => (format!("{:.6}", c.mean), format!("{:.6}", c.std), c.reached),
                    None => (String::new(), String::new(), 0),
                };
                let _ = writeln!(
                    s,
                    "{},{},{},{ratio},{std},{reached},{},{}",
                    t.task,
                    r.label,
                    f,
                    r.runs,
                    warn.join(";")
                );
            }
        }
    }
    s
}

/// The plot of one task: per method the mean of its runs' smoothed curves (pointwise, over the
/// shortest run) against the mean queries, with a ±1 sample-std band when it has several runs.
pub fn plot_series(runs: &[RunSummary], task: &str) -> Vec<plot::Series> {
    let mut labels: Vec<&str> = Vec::new();
    for r in runs.iter().filter(|r| r.task == task) {
        if !labels.contains(&r.label.as_str()) {
            labels.push(&r.label);
        }
    }
    labels
        .into_iter()
        .map(|label| {
            let mine: Vec<&RunSummary> = runs
                .iter()
                .filter(|r| r.task == task && r.label == label)
                .collect();
            let smoothed: Vec<Vec<f64>> = mine.iter().map(|r| smooth(&r.curve.loss)).collect();
            let n = smoothed.iter().map(Vec::len).min().unwrap_or(0);
            let mut x = Vec::with_capacity(n);
            let mut y = Vec::with_capacity(n);
            let mut lo = Vec::with_capacity(n);
            let mut hi = Vec::with_capacity(n);
            for i in 0..n {
                let xs: Vec<f64> = mine.iter().map(|r| r.curve.queries[i] as f64).collect();
                let ys: Vec<f64> = smoothed.iter().map(|s| s[i]).collect();
                let (m, sd) = mean_std(&ys);
                x.push(mean_std(&xs).0);
                y.push(m);
                lo.push(m - sd);
                hi.push(m + sd);
            }
            let label = if mine.len() > 1 {
                format!("{label} (mean ± std, {} seeds)", mine.len())
            } else {
                label.to_string()
            };
            plot::Series {
                label,
                x,
                y,
                band: (mine.len() > 1).then_some((lo, hi)),
            }
        })
        .collect()
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
