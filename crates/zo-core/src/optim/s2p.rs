//! S2P: stochastic two points (Pang & Zhou, arXiv 2402.01621, Algorithm 1):
//!
//!   x ← argmin { f(x + α_k s), f(x − α_k s) }      (the move is always taken; ties → +α)
//!
//! with one of the paper's four step sizes (d = number of parameters, K = steps,
//! A = B = 1.01, γ_k = (f(x+ρs) − f(x−ρs))/(2ρ)):
//! 1. α_k = α₀/√(Kd)                          — 2 queries
//! 2. α_k = |γ_k|/(L d)                       — 4 queries (γ needs the ±ρ probes first)
//! 3. α_k = √2/(B L₁ √(dK))                   — 2 queries
//! 4. α_k = |γ_k|/((A L₀ + √2 B L₁|γ_k|) d)   — 4 queries
//!
//! [decision] The LR schedule factor multiplies every option: α_k = c_k·(formula). With the
//! constant schedule (c_k = 1) α_k is exactly the paper's formula.

use serde::{Deserialize, Serialize};

use super::{load_no_state, no_state, positive, query, record, Optimizer, StepContext, Sweeper};
use crate::perturb::{Op, Term};
use crate::record::StepRecord;
use crate::{Distribution, Error, ParamSet, Result};

/// The paper's constants A = B = 1.01.
pub const A: f64 = 1.01;
/// See [`A`].
pub const B: f64 = 1.01;

fn default_rho() -> f64 {
    1e-3
}

/// S2P hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S2pConfig {
    /// Step-size option 1, 2, 3 or 4.
    pub option: u8,
    /// α₀ (option 1).
    #[serde(default)]
    pub lr: Option<f64>,
    /// L, the smoothness constant (option 2).
    #[serde(default)]
    pub l: Option<f64>,
    /// L₀ of (L₀, L₁)-smoothness (option 4).
    #[serde(default)]
    pub l0: Option<f64>,
    /// L₁ of (L₀, L₁)-smoothness (options 3 and 4).
    #[serde(default)]
    pub l1: Option<f64>,
    /// ρ of the γ probes (options 2 and 4). Default 1e-3.
    #[serde(default = "default_rho")]
    pub rho: f64,
    /// Direction distribution.
    #[serde(default)]
    pub dist: Distribution,
}

fn required(field: &str, v: Option<f64>, option: u8) -> Result<f64> {
    let v = v.ok_or_else(|| Error::invalid(field, format!("is required by option {option}")))?;
    positive(field, v)?;
    Ok(v)
}

impl S2pConfig {
    /// Validates the option and the constants it needs.
    pub fn build(&self) -> Result<S2p> {
        match self.option {
            1 => {
                required("s2p.lr", self.lr, 1)?;
            }
            2 => {
                required("s2p.l", self.l, 2)?;
            }
            3 => {
                required("s2p.l1", self.l1, 3)?;
            }
            4 => {
                required("s2p.l0", self.l0, 4)?;
                required("s2p.l1", self.l1, 4)?;
            }
            o => {
                return Err(Error::invalid(
                    "s2p.option",
                    format!("must be 1, 2, 3 or 4, got {o}"),
                ))
            }
        }
        positive("s2p.rho", self.rho)?;
        Ok(S2p { cfg: self.clone() })
    }
}

/// The S2P optimizer (stateless).
#[derive(Clone, Debug)]
pub struct S2p {
    cfg: S2pConfig,
}

impl S2p {
    /// The step size α_k before the schedule factor, from γ (options 2/4), d and K.
    pub fn step_size(&self, gamma: f64, d: f64, k_total: f64) -> f64 {
        let c = &self.cfg;
        let v = |o: Option<f64>| o.unwrap_or(f64::NAN);
        match c.option {
            1 => v(c.lr) / (k_total * d).sqrt(),
            2 => gamma.abs() / (v(c.l) * d),
            3 => std::f64::consts::SQRT_2 / (B * v(c.l1) * (d * k_total).sqrt()),
            _ => {
                gamma.abs()
                    / ((A * v(c.l0) + std::f64::consts::SQRT_2 * B * v(c.l1) * gamma.abs()) * d)
            }
        }
    }
}

impl Optimizer for S2p {
    fn method(&self) -> &'static str {
        "s2p"
    }

    fn distribution(&self) -> Distribution {
        self.cfg.dist
    }

    fn queries_per_step(&self) -> u64 {
        if matches!(self.cfg.option, 2 | 4) {
            4
        } else {
            2
        }
    }

    fn step(
        &mut self,
        params: &ParamSet,
        ctx: &StepContext,
        sweeper: &mut Sweeper,
        loss: &mut dyn FnMut() -> Result<f64>,
    ) -> Result<StepRecord> {
        let (k, key) = (ctx.step, ctx.key());
        let d = params.numel() as f64;
        let k_total = ctx.total_steps.max(1) as f64;
        let mut queries = 0;
        let mut gamma = None;
        let mut rho_used = None;
        let mut probe_loss = None;
        if matches!(self.cfg.option, 2 | 4) {
            let rho = self.cfg.rho as f32;
            sweeper.probe(params, k, key, rho)?;
            let fp = query(loss, k, &mut queries)?;
            sweeper.probe(params, k, key, -rho)?;
            let fm = query(loss, k, &mut queries)?;
            gamma = Some((fp - fm) / (2.0 * f64::from(rho)));
            probe_loss = Some(fp.min(fm));
            rho_used = Some(f64::from(rho));
        }
        let alpha = ctx.lr_factor * self.step_size(gamma.unwrap_or(0.0), d, k_total);
        let a = alpha as f32;
        let mut r = record(ctx, 0, f64::NAN);
        r.gamma = gamma;
        r.rho = rho_used;
        r.lr = alpha;
        if a == 0.0 || !a.is_finite() {
            // γ = 0 (or c_k = 0): nothing to move along. The loss reported is the lower probe,
            // or (options 1/3) one evaluation at x so that every record carries a loss.
            sweeper.commit(params, k, &[], None)?;
            r.loss = match probe_loss {
                Some(l) => l,
                None => query(loss, k, &mut queries)?,
            };
            r.queries = queries;
            r.skipped = Some(format!("step size α = {alpha}"));
            return Ok(r);
        }
        sweeper.probe(params, k, key, a)?;
        let f_plus = query(loss, k, &mut queries)?;
        sweeper.probe(params, k, key, -a)?;
        let f_minus = query(loss, k, &mut queries)?;
        let coef = if f_plus <= f_minus { a } else { -a };
        sweeper.commit(params, k, &[Op::Add(Term::new(key, coef))], None)?;
        r.queries = queries;
        r.f_plus = Some(f_plus);
        r.f_minus = Some(f_minus);
        r.loss = f_plus.min(f_minus);
        r.coef = f64::from(coef);
        Ok(r)
    }

    fn state(&self) -> serde_json::Value {
        no_state()
    }

    fn load_state(&mut self, state: &serde_json::Value) -> Result<()> {
        load_no_state("s2p", state)
    }
}
