//! The run directory's sinks: `metrics.jsonl` and `trajectory.jsonl` lines (appended, or on a
//! resume truncated to the steps the checkpoint holds) and the progress bar with a line per
//! evaluation.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use zo_core::{EvalRecord, Sink, StepRecord, SweepRecord};

use super::core_err;
use crate::dist::World;
use crate::rundir::JsonlWriter;

/// Writes metrics.jsonl / trajectory.jsonl lines and drives the progress bar (rank 0); on the
/// other ranks of a multi-rank run, writes nothing.
pub struct RunSink<'w> {
    /// None on a rank that does not write.
    metrics: Option<JsonlWriter>,
    trajectory: Option<JsonlWriter>,
    /// The run's world, for the time its exchanges took.
    world: &'w dyn World,
    /// `world.exchange_seconds()` at the end of the previous step.
    exchanged: f64,
    start: Instant,
    bar: indicatif::ProgressBar,
    /// Training losses since the last evaluation (their mean is shown beside it).
    recent: Vec<f64>,
    quiet: bool,
}

impl RunSink<'_> {
    /// A line for people: above the bar on a terminal, plain stderr otherwise, nothing with -q.
    pub fn say(&self, line: String) {
        if self.quiet {
            return;
        }
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }
}

#[derive(Serialize)]
struct StepLine<'a> {
    kind: &'static str,
    #[serde(flatten)]
    rec: &'a StepRecord,
    seconds: f64,
    /// Milliseconds this step spent in the all-gathers of the losses (multi-rank runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    exchange_ms: Option<f64>,
}

#[derive(Serialize)]
struct EvalLine<'a> {
    kind: &'static str,
    step: u64,
    queries_total: u64,
    #[serde(flatten)]
    metrics: &'a BTreeMap<String, f64>,
    seconds: f64,
}

impl Sink for RunSink<'_> {
    fn on_step(&mut self, r: &StepRecord) -> zo_core::Result<()> {
        let exchanged = self.world.exchange_seconds();
        let line = StepLine {
            kind: "step",
            rec: r,
            seconds: self.start.elapsed().as_secs_f64(),
            exchange_ms: (self.world.size() > 1).then_some((exchanged - self.exchanged) * 1e3),
        };
        self.exchanged = exchanged;
        if let Some(m) = self.metrics.as_mut() {
            m.write(&line).map_err(core_err)?;
        }
        self.recent.push(r.loss);
        self.bar.set_position(r.step + 1);
        self.bar.set_message(format!(
            "queries {}  loss {:.4}  γ {}",
            r.queries_total,
            r.loss,
            r.gamma.map_or("-".to_string(), |g| format!("{g:.3e}"))
        ));
        Ok(())
    }
    fn on_eval(&mut self, e: &EvalRecord) -> zo_core::Result<()> {
        // The dev loss's exchanges (just before this call) are not the next step's.
        self.exchanged = self.world.exchange_seconds();
        let line = EvalLine {
            kind: "eval",
            step: e.step,
            queries_total: e.queries_so_far,
            metrics: &e.metrics,
            seconds: self.start.elapsed().as_secs_f64(),
        };
        if let Some(m) = self.metrics.as_mut() {
            m.write(&line).map_err(core_err)?;
        }
        let shown: Vec<String> = e
            .metrics
            .iter()
            .map(|(k, v)| format!("{k} {v:.4}"))
            .collect();
        let train = if self.recent.is_empty() {
            String::new()
        } else {
            let mean = self.recent.iter().sum::<f64>() / self.recent.len() as f64;
            format!(
                "train_loss {mean:.4} (mean of {} steps)  ",
                self.recent.len()
            )
        };
        self.recent.clear();
        self.say(format!(
            "step {:>6}  queries {:>8}  {train}{}",
            e.step,
            e.queries_so_far,
            shown.join("  ")
        ));
        Ok(())
    }
    fn on_sweep(&mut self, r: &SweepRecord) -> zo_core::Result<()> {
        match self.trajectory.as_mut() {
            Some(t) => t.write(r).map_err(core_err),
            None => Ok(()),
        }
    }
}

impl<'w> RunSink<'w> {
    /// Opens the logs of `out`: new files for a fresh run; for a resume from `resume`'s
    /// checkpoint, the existing files truncated to the lines those steps wrote
    /// ([`crate::rundir::reopen_logs`]).
    pub fn open(
        out: &Path,
        resume: Option<&zo_core::trainer::TrainerState>,
        bar: indicatif::ProgressBar,
        quiet: bool,
        world: &'w dyn World,
    ) -> anyhow::Result<Self> {
        let (metrics, trajectory) = match resume {
            Some(state) => crate::rundir::reopen_logs(out, state)?,
            None => (
                JsonlWriter::create(&out.join("metrics.jsonl"))?,
                JsonlWriter::create(&out.join("trajectory.jsonl"))?,
            ),
        };
        Ok(Self {
            metrics: Some(metrics),
            trajectory: Some(trajectory),
            world,
            exchanged: world.exchange_seconds(),
            start: Instant::now(),
            bar,
            recent: Vec::new(),
            quiet,
        })
    }

    /// The sink of a rank that does not write the run directory: no file, no output.
    pub fn silent(bar: indicatif::ProgressBar, world: &'w dyn World) -> Self {
        Self {
            metrics: None,
            trajectory: None,
            world,
            exchanged: world.exchange_seconds(),
            start: Instant::now(),
            bar,
            recent: Vec::new(),
            quiet: true,
        }
    }
}
