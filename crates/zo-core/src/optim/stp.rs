//! STP: stochastic three points (Bergou, Gorbunov & Richtárik 2020, Algorithm 1):
//!
//!   x ← argmin { f(x + α_k s), f(x − α_k s), f(x) },  α_k = α₀·c_k
//!
//! Three queries per step: f(x) cannot be reused, the mini-batch changed. Ties keep x first,
//! then prefer +α over −α. Sweeps: +α, −2α, then +2α / +α / none (when −α wins the weights are
//! already there, exactly).

use serde::{Deserialize, Serialize};

use super::{load_no_state, no_state, positive, query, record, Optimizer, StepContext, Sweeper};
use crate::perturb::{Op, Term};
use crate::record::StepRecord;
use crate::{Distribution, ParamSet, Result};

/// STP hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StpConfig {
    /// α₀, the step before the schedule factor (paper: 2e-5 for OPT-13B).
    pub lr: f64,
    /// Direction distribution.
    #[serde(default)]
    pub dist: Distribution,
}

impl StpConfig {
    /// Validates: lr > 0.
    pub fn build(&self) -> Result<Stp> {
        positive("stp.lr", self.lr)?;
        Ok(Stp { cfg: self.clone() })
    }
}

/// The STP optimizer (stateless).
#[derive(Clone, Debug)]
pub struct Stp {
    cfg: StpConfig,
}

impl Optimizer for Stp {
    fn method(&self) -> &'static str {
        "stp"
    }

    fn distribution(&self) -> Distribution {
        self.cfg.dist
    }

    fn queries_per_step(&self) -> u64 {
        3
    }

    fn step(
        &mut self,
        params: &ParamSet,
        ctx: &StepContext,
        sweeper: &mut Sweeper,
        loss: &mut dyn FnMut() -> Result<f64>,
    ) -> Result<StepRecord> {
        let (k, key) = (ctx.step, ctx.key());
        let alpha = self.cfg.lr * ctx.lr_factor;
        let a = alpha as f32;
        let mut queries = 0;
        sweeper.clean(params, k)?;
        let f_x = query(loss, k, &mut queries)?;
        sweeper.probe(params, k, key, a)?;
        let f_plus = query(loss, k, &mut queries)?;
        sweeper.probe(params, k, key, -a)?;
        let f_minus = query(loss, k, &mut queries)?;
        let (mut best, mut coef) = (f_x, 0.0f32);
        if f_plus < best {
            (best, coef) = (f_plus, a);
        }
        if f_minus < best {
            (best, coef) = (f_minus, -a);
        }
        sweeper.commit(params, k, &[Op::Add(Term::new(key, coef))], None)?;
        let mut r = record(ctx, queries, best);
        r.f_plus = Some(f_plus);
        r.f_minus = Some(f_minus);
        r.f_x = Some(f_x);
        r.coef = f64::from(coef);
        r.lr = alpha;
        Ok(r)
    }

    fn state(&self) -> serde_json::Value {
        no_state()
    }

    fn load_state(&mut self, state: &serde_json::Value) -> Result<()> {
        load_no_state("stp", state)
    }
}
