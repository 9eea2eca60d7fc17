//! The optimizers of docs/ALGORITHMS.md: GA (MeZO's ZO-SGD), STP, S2P (step-size options 1–4) and
//! AS2P, each with any direction distribution (GA_sign / AS2P_sign = rademacher).
//!
//! Shape (burn's `SgdConfig`/candle's `Optimizer`): a serde-tagged [`OptimizerConfig`] whose
//! [`OptimizerConfig::build`] validates every field (errors name it) and returns a boxed
//! [`Optimizer`]; a step reports its facts in a [`StepRecord`] rather than stashing them.
//! Every weight move goes through the [`Sweeper`], which fuses and records sweeps.

mod as2p;
mod ga;
mod s2p;
mod stp;
mod sweeper;

use serde::{Deserialize, Serialize};

pub use as2p::{As2p, As2pConfig};
pub use ga::{Ga, GaConfig};
pub use s2p::{S2p, S2pConfig};
pub use stp::{Stp, StpConfig};
pub use sweeper::Sweeper;

use crate::record::StepRecord;
use crate::{Distribution, Error, Key, ParamSet, Result};

/// What the trainer tells the optimizer about the step it asks for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepContext {
    /// Step index k (0-based).
    pub step: u64,
    /// Number of steps of the run, K.
    pub total_steps: u64,
    /// The run seed: the direction of step k is z(Key { seed, step: k }).
    pub seed: u64,
    /// The LR schedule factor c_k ∈ [0, 1].
    pub lr_factor: f64,
}

impl StepContext {
    /// The key of this step's direction.
    pub fn key(&self) -> Key {
        Key::new(self.seed, self.step)
    }

    /// The key of the next step's direction (for a fused probe).
    pub fn next_key(&self) -> Key {
        Key::new(self.seed, self.step + 1)
    }
}

/// A zeroth-order optimizer. `loss` evaluates the objective on the current mini-batch at the
/// current weights (one query per call).
pub trait Optimizer: Send {
    /// The method's name ("ga", "stp", "s2p", "as2p").
    fn method(&self) -> &'static str;
    /// The direction distribution.
    fn distribution(&self) -> Distribution;
    /// Forward passes per step (docs/ALGORITHMS.md "Cost accounting").
    fn queries_per_step(&self) -> u64;
    /// Performs step `ctx.step`. On error (including a non-finite loss) the weights may hold a
    /// probe offset: the caller cleans them with `sweeper.clean`.
    fn step(
        &mut self,
        params: &ParamSet,
        ctx: &StepContext,
        sweeper: &mut Sweeper,
        loss: &mut dyn FnMut() -> Result<f64>,
    ) -> Result<StepRecord>;
    /// Everything a resumed run needs to continue bit-identically.
    fn state(&self) -> serde_json::Value;
    /// Restores [`Optimizer::state`].
    fn load_state(&mut self, state: &serde_json::Value) -> Result<()>;
}

/// Which optimizer, with its hyper-parameters (TOML/JSON: `method = "as2p"` plus the fields).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum OptimizerConfig {
    /// MeZO's ZO-SGD.
    Ga(GaConfig),
    /// Stochastic three points.
    Stp(StpConfig),
    /// Stochastic two points (Algorithm 1).
    S2p(S2pConfig),
    /// Accelerated S2P (Algorithm 2).
    As2p(As2pConfig),
}

impl OptimizerConfig {
    /// Validates and builds the optimizer.
    pub fn build(&self) -> Result<Box<dyn Optimizer>> {
        Ok(match self {
            OptimizerConfig::Ga(c) => Box::new(c.build()?),
            OptimizerConfig::Stp(c) => Box::new(c.build()?),
            OptimizerConfig::S2p(c) => Box::new(c.build()?),
            OptimizerConfig::As2p(c) => Box::new(c.build()?),
        })
    }
}

/// `v` must be finite, > 0 and within f32's normal range (steps and radii are f32 coefficients).
pub(crate) fn positive(field: &str, v: f64) -> Result<()> {
    if !(v.is_finite() && v > 0.0) {
        return Err(Error::invalid(
            field,
            format!("must be a finite number > 0, got {v}"),
        ));
    }
    // Steps and radii are applied to the weights as f32 coefficients.
    if !(f64::from(f32::MIN_POSITIVE)..=f64::from(f32::MAX)).contains(&v) {
        return Err(Error::invalid(
            field,
            format!(
                "{v:e} is outside the range of f32 ({:e} to {:e}), the precision it is applied in",
                f32::MIN_POSITIVE,
                f32::MAX
            ),
        ));
    }
    Ok(())
}

/// Calls the objective and checks its value: a NaN/inf loss is [`Error::NonFiniteLoss`].
pub(crate) fn query(
    loss: &mut dyn FnMut() -> Result<f64>,
    step: u64,
    queries: &mut u64,
) -> Result<f64> {
    let v = loss()?;
    *queries += 1;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(Error::NonFiniteLoss { step, value: v })
    }
}

/// A step record with the common fields filled and the rest empty.
pub(crate) fn record(ctx: &StepContext, queries: u64, loss: f64) -> StepRecord {
    StepRecord {
        step: ctx.step,
        queries,
        queries_total: 0,
        f_plus: None,
        f_minus: None,
        f_x: None,
        loss,
        gamma: None,
        sigma: None,
        coef: 0.0,
        lr: 0.0,
        lr_factor: ctx.lr_factor,
        rho: None,
        sweeps: 0,
        skipped: None,
        ms: 0.0,
    }
}

/// State of a stateless optimizer.
pub(crate) fn no_state() -> serde_json::Value {
    serde_json::json!({})
}

/// Accepts only the empty state.
pub(crate) fn load_no_state(method: &str, v: &serde_json::Value) -> Result<()> {
    match v.as_object() {
        Some(m) if m.is_empty() => Ok(()),
        _ => Err(Error::invalid(
            format!("{method}.state"),
            format!("expected {{}}, got {v}"),
        )),
    }
}

#[cfg(test)]
mod tests;
