//! The workload of B2/B4/B5 and the scaling table: the benchmark batch, its two losses, and
//! optimizer steps (GA = MeZO's ZO-SGD, and AS2P) run by zo-core's own training loop
//! ([`zo_core::Trainer`] with the [`zo_core::optim`] optimizers), so the figure times exactly
//! what `zo train` does per step: the Sweeper's fused probes (+ρ fused into the previous
//! step's update sweep), two forwards, the γ statistics, the update sweep. Each step's time is
//! the trainer's own `StepRecord::ms`; its sweep count is `StepRecord::sweeps`.
use anyhow::{Context, Result};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use zo_core::optim::{As2pConfig, GaConfig};
use zo_core::{
    Budget, Distribution, MemorySink, OptimizerConfig, Schedule, StepRecord, Trainer, TrainerConfig,
};
use zo_models::scoring::lm_loss;
use zo_models::{Batch, OptModel};

use super::measure::{process_cpu_s, Summary};

/// Which loss a forward computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// Causal-LM loss over every position (`labels = input_ids`): the peer's definition.
    FullLm,
    /// One scored label per sequence (SST-2's shape): logits at B rows only.
    Task,
}

/// The benchmark batch: B random sequences of T tokens, under both losses.
pub struct Inputs {
    pub batch: usize,
    pub seq: usize,
    pub full_lm: Batch,
    pub task: Batch,
}

/// SplitMix64 (Steele, Lea & Flood 2014): a fixed, dependency-free stream for the token ids.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Inputs {
    /// Token ids uniform in `[3, vocab)` (no pad/bos/eos id, so every label is scored), no
    /// padding, as the peer's `torch.randint(3, vocab, (B, T))`.
    pub fn random(model: &OptModel, batch: usize, seq: usize, seed: u64) -> Result<Self> {
        anyhow::ensure!(
            batch >= 1 && seq >= 2,
            "need B ≥ 1 and T ≥ 2 (got B={batch}, T={seq})"
        );
        let cfg = model.config();
        let vocab = cfg.vocab_size as u64;
        anyhow::ensure!(vocab > 3, "vocab_size {vocab} is too small");
        let mut state = seed ^ 0x005E_ED0F_B3AC;
        let seqs: Vec<Vec<u32>> = (0..batch)
            .map(|_| {
                (0..seq)
                    .map(|_| (3 + splitmix64(&mut state) % (vocab - 3)) as u32)
                    .collect()
            })
            .collect();
        let pad = cfg.pad_token_id;
        Ok(Inputs {
            batch,
            seq,
            full_lm: Batch::full_lm(&seqs, pad)?,
            task: Batch::left_padded(&seqs, &vec![1; batch], pad, None)?,
        })
    }

    pub fn get(&self, kind: LossKind) -> &Batch {
        match kind {
            LossKind::FullLm => &self.full_lm,
            LossKind::Task => &self.task,
        }
    }

    /// Positions where the lm_head runs for `kind` (one per scored label).
    pub fn logit_rows(&self, kind: LossKind) -> u64 {
        match kind {
            LossKind::FullLm => (self.batch * (self.seq - 1)) as u64,
            LossKind::Task => self.batch as u64,
        }
    }
}

/// One forward + loss.
pub fn loss(model: &OptModel, inputs: &Inputs, kind: LossKind) -> Result<f64> {
    lm_loss(model, inputs.get(kind)).context("forward + loss")
}

/// The optimizers B2 times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// MeZO's ZO-SGD (two-sided Gaussian smoothing).
    Ga,
    /// Accelerated stochastic two points (arXiv 2402.01621, Algorithm 2).
    As2p,
}

impl Method {
    /// Hyper-parameters of the timed steps: the peer's (`--eps 1e-3 --lr 1e-6`) for GA; the
    /// paper's OPT row (Table 4: ρ₀ = 1e-3, ρ_end = ρ₀/10, η_a = 5, η_b = 50, window 10 %)
    /// for AS2P. They change the numbers of a step, not its cost.
    fn config(self) -> OptimizerConfig {
        match self {
            Method::Ga => OptimizerConfig::Ga(GaConfig {
                lr: 1e-6,
                rho: 1e-3,
                weight_decay: 0.0,
                dist: Distribution::Normal,
            }),
            Method::As2p => OptimizerConfig::As2p(As2pConfig {
                eta_b: 50.0,
                ..As2pConfig::default()
            }),
        }
    }
}

/// The timed steps of one run of the training loop.
pub struct StepRun {
    /// Wall time of the timed steps (the trainer's `StepRecord::ms`).
    pub summary: Summary,
    /// Every step's record, warm-up included.
    pub records: Vec<StepRecord>,
    /// Index of the first timed record.
    pub first_timed: usize,
}

impl StepRun {
    /// The timed records.
    pub fn timed(&self) -> &[StepRecord] {
        &self.records[self.first_timed..]
    }

    /// Median of the timed steps' sweep counts (the steady state).
    pub fn sweeps_median(&self) -> u32 {
        let mut s: Vec<u32> = self.timed().iter().map(|r| r.sweeps).collect();
        s.sort_unstable();
        s.get(s.len() / 2).copied().unwrap_or(0)
    }
}

/// Runs `warmup + repeats + 1` steps of `method` through zo-core's trainer on the fixed batch
/// and keeps steps `warmup .. warmup + repeats`. The extra last step is dropped because it
/// ends the run: it cannot fuse the next probe (3 sweeps instead of the steady state's 2), as
/// the first step cannot receive one; with `warmup ≥ 1` every timed step is a steady-state
/// step, as in a long run.
pub fn run_steps(
    model: &OptModel,
    inputs: &Inputs,
    method: Method,
    kind: LossKind,
    seed: u64,
    warmup: usize,
    repeats: usize,
) -> Result<StepRun> {
    run_steps_on(
        model.params(),
        || loss(model, inputs, kind),
        method,
        seed,
        warmup,
        repeats,
    )
}

/// [`run_steps`] for any model: `params` are trained on the loss `objective` computes.
pub fn run_steps_on(
    params: &zo_core::ParamSet,
    mut objective: impl FnMut() -> Result<f64>,
    method: Method,
    seed: u64,
    warmup: usize,
    repeats: usize,
) -> Result<StepRun> {
    let repeats = repeats.max(1);
    let steps = (warmup + repeats + 1) as u64;
    let mut cfg = TrainerConfig::new(seed, Budget::Steps(steps));
    cfg.schedule = Schedule::Cosine;
    let optimizer = method.config().build()?;
    let mut sink = MemorySink::default();
    let mut objective = |_step: u64, _rows: &[usize]| -> zo_core::Result<f64> {
        objective().map_err(|e| zo_core::Error::Msg(format!("{e:#}")))
    };
    let cpu0 = process_cpu_s();
    Trainer::new(cfg, optimizer)
        .sink(&mut sink)
        .run(params, &mut objective)
        .with_context(|| format!("{method:?} steps"))?;
    let cpu1 = process_cpu_s();
    let records = sink.steps;
    anyhow::ensure!(
        records.len() == steps as usize,
        "the trainer ran {} steps, not {steps}",
        records.len()
    );
    let timed = &records[warmup..warmup + repeats];
    let samples: Vec<f64> = timed.iter().map(|r| r.ms / 1e3).collect();
    // CPU time of the whole run spread over all its steps (warm-up steps cost the same).
    let cpu = match (cpu0, cpu1) {
        (Some(a), Some(b)) => Some((b - a) / steps as f64),
        _ => None,
    };
    let summary = Summary::of(samples, warmup, cpu);
    let mut records = records;
    records.truncate(warmup + repeats);
    Ok(StepRun {
        summary,
        records,
        first_timed: warmup,
    })
}
