//! The zeroth-order engine: parameters as plain candle tensors in a fixed order, counter-based
//! directions, fused in-place perturbation sweeps, and the optimizers of
//! "Stochastic Two Points Method for Deep Model Zeroth-order Optimization" (arXiv 2402.01621)
//! with MeZO's ZO-SGD as the baseline. This crate knows tensors, never a model or a task.

pub mod error;
pub mod params;

pub use error::{Error, Result};
pub use params::ParamSet;
