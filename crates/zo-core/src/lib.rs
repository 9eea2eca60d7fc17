//! The zeroth-order engine: parameters as plain candle tensors in a fixed order, counter-based
//! directions, fused in-place perturbation sweeps, and the optimizers of
//! "Stochastic Two Points Method for Deep Model Zeroth-order Optimization" (arXiv 2402.01621)
//! with MeZO's ZO-SGD as the baseline. This crate knows tensors, never a model or a task.

pub mod convert;
pub mod cost;
pub mod cpu;
pub mod error;
pub mod gamma;
pub mod objective;
pub mod optim;
pub mod params;
pub mod perturb;
pub mod record;
pub mod rng;
pub mod schedule;
pub mod synthetic;
pub mod trainer;

pub use error::{Error, Result};
pub use objective::{BatchSampler, DataOrder, Objective};
pub use optim::{Optimizer, OptimizerConfig, StepContext, Sweeper};
pub use params::ParamSet;
pub use perturb::{apply, sweep, Op, Sweep, Term};
pub use record::{replay, EvalRecord, MemorySink, Sink, StepRecord, SweepRecord};
pub use rng::{Distribution, Key};
pub use schedule::Schedule;
pub use trainer::{Budget, RunSummary, Trainer, TrainerConfig, TrainerState};
