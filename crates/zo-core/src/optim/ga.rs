//! GA: two-sided Gaussian-smoothing gradient estimate, i.e. MeZO's ZO-SGD
//! (Malladi et al. 2023, Algorithm 1; princeton-nlp/MeZO `large_models/trainer.py`
//! `zo_step`/`zo_update`):
//!
//!   f₊ = f(x + ρs), f₋ = f(x − ρs), g = (f₊ − f₋)/(2ρ), x ← x − lr_k·(g·s + wd·x)
//!
//! with weight decay only on tensors whose names contain none of "bias", "layer_norm",
//! "layernorm" (MeZO). Sweeps: +ρ, −2ρ, then restore+update(+next probe) in one.

use serde::{Deserialize, Serialize};

use super::{load_no_state, no_state, positive, query, record, Optimizer, StepContext, Sweeper};
use crate::perturb::{Op, Term};
use crate::record::StepRecord;
use crate::{Distribution, Error, ParamSet, Result};

fn default_rho() -> f64 {
    1e-3
}

/// GA hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GaConfig {
    /// α₀, the learning rate before the schedule factor (MeZO: 1e-6 or 1e-7 for OPT-13B).
    pub lr: f64,
    /// ρ (MeZO's ε), the probe radius. Default 1e-3.
    #[serde(default = "default_rho")]
    pub rho: f64,
    /// Weight decay (default 0, as in MeZO's experiments).
    #[serde(default)]
    pub weight_decay: f64,
    /// Direction distribution (rademacher = GA_sign).
    #[serde(default)]
    pub dist: Distribution,
}

impl GaConfig {
    /// Validates: lr > 0, rho > 0, weight_decay ≥ 0.
    pub fn build(&self) -> Result<Ga> {
        positive("ga.lr", self.lr)?;
        positive("ga.rho", self.rho)?;
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::invalid(
                "ga.weight_decay",
                format!("must be ≥ 0, got {}", self.weight_decay),
            ));
        }
        Ok(Ga { cfg: self.clone() })
    }
}

/// The GA optimizer (stateless).
#[derive(Clone, Debug)]
pub struct Ga {
    cfg: GaConfig,
}

impl Optimizer for Ga {
    fn method(&self) -> &'static str {
        "ga"
    }

    fn distribution(&self) -> Distribution {
        self.cfg.dist
    }

    fn queries_per_step(&self) -> u64 {
        2
    }

    fn step(
        &mut self,
        params: &ParamSet,
        ctx: &StepContext,
        sweeper: &mut Sweeper,
        loss: &mut dyn FnMut() -> Result<f64>,
    ) -> Result<StepRecord> {
        let (k, key) = (ctx.step, ctx.key());
        let rho = self.cfg.rho as f32;
        let mut queries = 0;
        sweeper.probe(params, k, key, rho)?;
        let f_plus = query(loss, k, &mut queries)?;
        sweeper.probe(params, k, key, -rho)?;
        let f_minus = query(loss, k, &mut queries)?;
        // ρ as applied (rounded to f32) so g is the exact finite difference taken.
        let g = (f_plus - f_minus) / (2.0 * f64::from(rho));
        let lr = self.cfg.lr * ctx.lr_factor;
        let coef = (-lr * g) as f32;
        let mut update = Vec::with_capacity(2);
        if self.cfg.weight_decay > 0.0 {
            // MeZO: x ← x − lr(g s + wd x) = (1 − lr·wd)·x − lr·g·s, on the restored x.
            update.push(Op::ScaleDecayed((1.0 - lr * self.cfg.weight_decay) as f32));
        }
        update.push(Op::Add(Term::new(key, coef)));
        sweeper.commit(params, k, &update, Some(Term::new(ctx.next_key(), rho)))?;
        let mut r = record(ctx, queries, f_plus);
        r.f_plus = Some(f_plus);
        r.f_minus = Some(f_minus);
        r.gamma = Some(g);
        r.coef = f64::from(coef);
        r.lr = lr;
        r.rho = Some(f64::from(rho));
        Ok(r)
    }

    fn state(&self) -> serde_json::Value {
        no_state()
    }

    fn load_state(&mut self, state: &serde_json::Value) -> Result<()> {
        load_no_state("ga", state)
    }
}
