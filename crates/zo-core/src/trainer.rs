//! THE training loop, for every optimizer, model and task (docs/ARCHITECTURE.md trap 1).
//!
//! Determinism: the direction of step k is z(Key { seed, step: k }), the batch of step k is
//! `BatchSampler::batch(k)`, the LR factor is `schedule.factor(k, K)`, all pure functions; the
//! optimizer's own state is serialised in [`TrainerState`]. Hence a run stopped after step k
//! (stop flag, or a checkpoint) and resumed from its checkpoint reproduces the uninterrupted
//! run bit for bit (see `Sweeper` for why fusing the next probe keeps that true).
//!
//! Clean weights: whenever the weights leave the loop's hands (evaluation, checkpoint, stop,
//! error, end) they are the clean iterate x_k, never a probe.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use candle_core::DType;
use serde::{Deserialize, Serialize};

use crate::objective::{BatchSampler, DataOrder, Objective};
use crate::optim::{Optimizer, StepContext, Sweeper};
use crate::record::{EvalRecord, Sink};
use crate::schedule::Schedule;
use crate::{Error, ParamSet, Result};

/// How long to train.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Budget {
    /// K optimizer steps.
    Steps(u64),
    /// A number of forward passes: K = ⌊queries / queries_per_step⌋ steps.
    Queries(u64),
}

/// Loop settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainerConfig {
    /// Run seed: the directions.
    pub seed: u64,
    /// Budget.
    pub budget: Budget,
    /// LR schedule (the factor c_k).
    #[serde(default)]
    pub schedule: Schedule,
    /// Mini-batch order; None for objectives that ignore the batch (full-data losses).
    #[serde(default)]
    pub data: Option<DataOrder>,
    /// Evaluate every N steps (and never when None).
    #[serde(default)]
    pub eval_every: Option<u64>,
    /// Call the checkpoint hook every N steps (and never when None).
    #[serde(default)]
    pub checkpoint_every: Option<u64>,
    /// Fuse the next step's +ρ probe into the update sweep (2 sweeps per GA/AS2P step instead
    /// of 3). Only f32 weights are fused (see `Sweeper`). Default true.
    #[serde(default = "yes")]
    pub fuse_next_probe: bool,
}

fn yes() -> bool {
    true
}

impl TrainerConfig {
    /// A config with the given seed and budget and every option at its default.
    pub fn new(seed: u64, budget: Budget) -> Self {
        TrainerConfig {
            seed,
            budget,
            schedule: Schedule::Constant,
            data: None,
            eval_every: None,
            checkpoint_every: None,
            fuse_next_probe: true,
        }
    }
}

/// Everything needed to resume: written with each checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainerState {
    /// Steps completed (the next step to run).
    pub step: u64,
    /// Forward passes so far.
    pub queries: u64,
    /// Sweeps so far.
    pub sweeps: u64,
    /// The run seed (checked on resume).
    pub seed: u64,
    /// K (checked on resume).
    pub total_steps: u64,
    /// The optimizer's method (checked on resume).
    pub method: String,
    /// The optimizer's state.
    pub optimizer: serde_json::Value,
}

/// What `run` returns.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSummary {
    /// The final state (also what a resume would start from).
    pub state: TrainerState,
    /// True when the stop flag ended the run early.
    pub stopped: bool,
}

/// Evaluation hook: (steps done, clean weights) → metrics.
pub type EvalHook<'a> = Box<dyn FnMut(u64, &ParamSet) -> Result<BTreeMap<String, f64>> + 'a>;
/// Checkpoint hook: (clean weights, state to resume from).
pub type CheckpointHook<'a> = Box<dyn FnMut(&ParamSet, &TrainerState) -> Result<()> + 'a>;

/// The loop (builder style: `Trainer::new(cfg, opt).sink(&mut s).on_eval(..).run(..)`).
pub struct Trainer<'a> {
    cfg: TrainerConfig,
    optimizer: Box<dyn Optimizer>,
    sinks: Vec<&'a mut dyn Sink>,
    eval: Option<EvalHook<'a>>,
    checkpoint: Option<CheckpointHook<'a>>,
    stop: Option<Arc<AtomicBool>>,
    start: Option<TrainerState>,
}

impl<'a> Trainer<'a> {
    /// A trainer for `optimizer` under `cfg`.
    pub fn new(cfg: TrainerConfig, optimizer: Box<dyn Optimizer>) -> Self {
        Trainer {
            cfg,
            optimizer,
            sinks: Vec::new(),
            eval: None,
            checkpoint: None,
            stop: None,
            start: None,
        }
    }

    /// Adds a sink.
    pub fn sink(mut self, sink: &'a mut dyn Sink) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Sets the evaluation hook (called every `eval_every` steps with clean weights).
    pub fn on_eval(
        mut self,
        f: impl FnMut(u64, &ParamSet) -> Result<BTreeMap<String, f64>> + 'a,
    ) -> Self {
        self.eval = Some(Box::new(f));
        self
    }

    /// Sets the checkpoint hook (every `checkpoint_every` steps and on stop, clean weights).
    pub fn on_checkpoint(
        mut self,
        f: impl FnMut(&ParamSet, &TrainerState) -> Result<()> + 'a,
    ) -> Self {
        self.checkpoint = Some(Box::new(f));
        self
    }

    /// A flag (set on Ctrl-C) that ends the run after the current step, with a checkpoint.
    pub fn stop_flag(mut self, flag: Arc<AtomicBool>) -> Self {
        self.stop = Some(flag);
        self
    }

    /// Continues from a checkpoint's state (the weights passed to `run` must be that
    /// checkpoint's). The method, seed and K must match this trainer's.
    pub fn resume(mut self, state: TrainerState) -> Result<Self> {
        if state.method != self.optimizer.method() {
            return Err(Error::invalid(
                "resume.method",
                format!(
                    "checkpoint is {}, this run is {}",
                    state.method,
                    self.optimizer.method()
                ),
            ));
        }
        if state.seed != self.cfg.seed {
            return Err(Error::invalid(
                "resume.seed",
                format!(
                    "checkpoint has seed {}, this run {}",
                    state.seed, self.cfg.seed
                ),
            ));
        }
        if state.total_steps != self.total_steps() {
            return Err(Error::invalid(
                "resume.total_steps",
                format!(
                    "checkpoint has K = {}, this run {}",
                    state.total_steps,
                    self.total_steps()
                ),
            ));
        }
        if state.step > state.total_steps {
            return Err(Error::invalid(
                "resume.step",
                format!(
                    "checkpoint is at step {} of a run of {} steps",
                    state.step, state.total_steps
                ),
            ));
        }
        self.optimizer.load_state(&state.optimizer)?;
        self.start = Some(state);
        Ok(self)
    }

    /// K, the number of steps of the run.
    pub fn total_steps(&self) -> u64 {
        match self.cfg.budget {
            Budget::Steps(n) => n,
            Budget::Queries(q) => q / self.optimizer.queries_per_step().max(1),
        }
    }

    fn due(every: Option<u64>, step: u64) -> bool {
        matches!(every, Some(n) if n > 0 && step.is_multiple_of(n))
    }

    fn stop_requested(&self) -> bool {
        self.stop.as_ref().is_some_and(|f| f.load(Ordering::SeqCst))
    }

    fn state(&self, step: u64, queries: u64, sweeps: u64) -> TrainerState {
        TrainerState {
            step,
            queries,
            sweeps,
            seed: self.cfg.seed,
            total_steps: self.total_steps(),
            method: self.optimizer.method().to_string(),
            optimizer: self.optimizer.state(),
        }
    }

    fn flush(&mut self, sweeper: &mut Sweeper) -> Result<u32> {
        let recs = sweeper.drain();
        for r in &recs {
            for s in self.sinks.iter_mut() {
                s.on_sweep(r)?;
            }
        }
        Ok(recs.len() as u32)
    }

    /// Makes the weights clean and hands every pending sweep to the sinks.
    fn settle(&mut self, params: &ParamSet, sweeper: &mut Sweeper, step: u64) -> Result<()> {
        sweeper.clean(params, step)?;
        self.flush(sweeper)?;
        Ok(())
    }

    /// Runs (or resumes) the loop on `params` with `objective`.
    pub fn run(&mut self, params: &ParamSet, objective: &mut dyn Objective) -> Result<RunSummary> {
        let total = self.total_steps();
        let (mut step, mut queries, base_sweeps) = match &self.start {
            Some(s) => (s.step, s.queries, s.sweeps),
            None => (0, 0, 0),
        };
        let mut sweeper = Sweeper::new(self.optimizer.distribution());
        sweeper.set_stop_flag(self.stop.clone());
        let fuse_ok = self.cfg.fuse_next_probe && params.dtype() == Some(DType::F32);
        let mut sampler = self.cfg.data.map(BatchSampler::new);
        let mut stopped = false;
        while step < total {
            let batch = sampler.as_mut().map(|s| s.batch(step)).unwrap_or_default();
            let next = step + 1;
            let boundary = next == total
                || (self.eval.is_some() && Self::due(self.cfg.eval_every, next))
                || (self.checkpoint.is_some() && Self::due(self.cfg.checkpoint_every, next))
                || self.stop_requested();
            sweeper.set_fuse_next(fuse_ok && !boundary);
            let ctx = StepContext {
                step,
                total_steps: total,
                seed: self.cfg.seed,
                lr_factor: self.cfg.schedule.factor(step, total),
            };
            let t0 = Instant::now();
            let mut loss = || objective.loss(step, &batch);
            let outcome = self.optimizer.step(params, &ctx, &mut sweeper, &mut loss);
            let mut rec = match outcome {
                Ok(r) => r,
                Err(e) => {
                    // Leave clean weights behind, and a trajectory that includes the restore.
                    self.settle(params, &mut sweeper, step)?;
                    return Err(e);
                }
            };
            queries += rec.queries;
            rec.queries_total = queries;
            rec.sweeps = self.flush(&mut sweeper)?;
            rec.ms = t0.elapsed().as_secs_f64() * 1e3;
            for s in self.sinks.iter_mut() {
                s.on_step(&rec)?;
            }
            step = next;
            if self.eval.is_some() && Self::due(self.cfg.eval_every, step) {
                self.settle(params, &mut sweeper, step - 1)?;
                let metrics = match self.eval.as_mut() {
                    Some(f) => f(step, params)?,
                    None => BTreeMap::new(),
                };
                let e = EvalRecord {
                    step,
                    queries_so_far: queries,
                    metrics,
                };
                for s in self.sinks.iter_mut() {
                    s.on_eval(&e)?;
                }
            }
            let stop = self.stop_requested();
            if Self::due(self.cfg.checkpoint_every, step) || stop {
                self.settle(params, &mut sweeper, step - 1)?;
                let st = self.state(step, queries, base_sweeps + sweeper.sweeps_total());
                if let Some(f) = self.checkpoint.as_mut() {
                    f(params, &st)?;
                }
            }
            if stop {
                stopped = true;
                break;
            }
        }
        self.settle(params, &mut sweeper, step.saturating_sub(1))?;
        Ok(RunSummary {
            state: self.state(step, queries, base_sweeps + sweeper.sweeps_total()),
            stopped,
        })
    }
}

#[cfg(test)]
mod tests;
