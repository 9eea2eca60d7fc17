//! What a run reports: one [`StepRecord`] per optimizer step, one [`EvalRecord`] per
//! evaluation, one [`SweepRecord`] per sweep applied to the weights, and the [`Sink`] trait that
//! receives them (the runner writes metrics.jsonl and trajectory.jsonl; tests keep them in
//! memory with [`MemorySink`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::perturb::Sweep;
use crate::Result;

/// The facts of one optimizer step (a metrics.jsonl line).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepRecord {
    /// Step index k (0-based).
    pub step: u64,
    /// Forward passes used by this step.
    pub queries: u64,
    /// Forward passes used by the run up to and including this step.
    pub queries_total: u64,
    /// f(x + ρs) (GA, AS2P, S2P 1/3: the probe; S2P 2/4: f(x + αs); STP: f(x + αs)).
    pub f_plus: Option<f64>,
    /// f(x − ρs), same conventions as `f_plus`.
    pub f_minus: Option<f64>,
    /// f(x) (STP only).
    pub f_x: Option<f64>,
    /// The value reported as the training loss: f(x + ρs) for GA (as MeZO logs it);
    /// min(f₊, f₋) for S2P and AS2P; min(f₊, f₋, f(x)) for STP.
    pub loss: f64,
    /// γ = (f₊ − f₋)/(2ρ): GA's projected gradient, AS2P's and S2P 2/4's γ_k; None for STP and
    /// S2P 1/3.
    pub gamma: Option<f64>,
    /// σ_k of the γ window (AS2P).
    pub sigma: Option<f64>,
    /// The coefficient c of the move x ← x + c·s actually applied (weight decay aside).
    pub coef: f64,
    /// The step size of the method at this step: GA lr_k = α₀c_k; STP/S2P α_k; AS2P the
    /// automatic α_k (or lr_k·γ' without auto-LR).
    pub lr: f64,
    /// The schedule factor c_k.
    pub lr_factor: f64,
    /// The probe radius ρ_k, where the method probes at ±ρ.
    pub rho: Option<f64>,
    /// Sweeps over the weights during this step.
    pub sweeps: u32,
    /// Why no move was made (AS2P with σ = 0 or γ = 0, S2P 2/4 with γ = 0); None when it moved
    /// or legitimately stayed (STP keeping x).
    pub skipped: Option<String>,
    /// Wall time of the step in milliseconds (not deterministic; excluded from comparisons).
    pub ms: f64,
}

/// One evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalRecord {
    /// Steps completed when the evaluation ran.
    pub step: u64,
    /// Forward passes of training so far.
    pub queries_so_far: u64,
    /// Metric name → value (sorted by name).
    pub metrics: BTreeMap<String, f64>,
}

/// One sweep applied to the weights during step `step`, in application order: replaying all of
/// them on the initial weights reproduces the trained weights bit for bit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepRecord {
    /// The step during which it was applied.
    pub step: u64,
    /// The sweep.
    pub sweep: Sweep,
}

/// Receives the records of a run, in order: a step's sweeps, then the step, then any evaluation.
pub trait Sink {
    /// After every step.
    fn on_step(&mut self, record: &StepRecord) -> Result<()>;
    /// After every evaluation.
    fn on_eval(&mut self, _record: &EvalRecord) -> Result<()> {
        Ok(())
    }
    /// For every sweep applied to the weights (the trajectory).
    fn on_sweep(&mut self, _record: &SweepRecord) -> Result<()> {
        Ok(())
    }
}

/// Keeps everything in memory (tests, the synthetic suite).
#[derive(Clone, Debug, Default)]
pub struct MemorySink {
    /// Step records.
    pub steps: Vec<StepRecord>,
    /// Evaluation records.
    pub evals: Vec<EvalRecord>,
    /// The trajectory.
    pub sweeps: Vec<SweepRecord>,
}

impl Sink for MemorySink {
    fn on_step(&mut self, record: &StepRecord) -> Result<()> {
        self.steps.push(record.clone());
        Ok(())
    }
    fn on_eval(&mut self, record: &EvalRecord) -> Result<()> {
        self.evals.push(record.clone());
        Ok(())
    }
    fn on_sweep(&mut self, record: &SweepRecord) -> Result<()> {
        self.sweeps.push(record.clone());
        Ok(())
    }
}

/// Re-applies a recorded trajectory to `params` (which must hold the run's initial weights),
/// reproducing the trained weights bit for bit.
pub fn replay(params: &crate::ParamSet, trajectory: &[SweepRecord]) -> Result<()> {
    for r in trajectory {
        crate::perturb::apply(params, &r.sweep)?;
    }
    Ok(())
}
