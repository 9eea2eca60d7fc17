//! AS2P (Pang & Zhou, arXiv 2402.01621, Algorithm 2; "VS2P" in later versions), as settled in
//! docs/ALGORITHMS.md:
//!
//!   ρ_k = decay(ρ₀ → ρ_end, k)                 cosine; fixed ρ₀ with `rho_decay = false`
//!   f₊, f₋ = f(x ± ρ_k s);  γ_k = (f₊ − f₋)/(2ρ_k);  β_k = sign(f₊ − f₋)
//!   σ_k = std dev of the last ⌈w·K⌉ γ values (|γ_k| while fewer than 2)
//!   τa_k = decay(2η_a → η_a, k)·σ_k;  γ'_k = 1/(1/|γ_k| + 1/τa_k)
//!   α_k = ρ_k c_k γ'_k/(η_b σ_k);  x ← x − β_k α_k s
//!
//! [decision] sign: the move is −sign(f₊ − f₋)·|α|·s, towards the lower probe (the paper's
//! literal "+α s" climbs). [decision] σ of the signed γ, population std, in f64 (`gamma.rs`).
//! [decision] σ = 0 or γ = 0 → no move, reported in `skipped`.
//! Ablations (paper Fig. 3a): `auto_lr = false` → α_k = lr·c_k·γ'_k; `gamma_clip = false` →
//! γ'_k = |γ_k|. `tau_decay = false` keeps τa = η_a σ (the paper's short form).

use serde::{Deserialize, Serialize};

use super::{positive, query, record, Optimizer, StepContext, Sweeper};
use crate::gamma::{soft_clip, GammaWindow, SigmaOf};
use crate::perturb::{Op, Term};
use crate::record::StepRecord;
use crate::schedule::Schedule;
use crate::{Distribution, Error, ParamSet, Result};

fn default_rho() -> f64 {
    1e-3
}
fn default_eta() -> f64 {
    5.0
}
fn default_window() -> f64 {
    0.1
}
fn yes() -> bool {
    true
}

/// AS2P hyper-parameters (defaults: the paper's Tables 3–4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct As2pConfig {
    /// ρ₀. Default 1e-3 (LLMs, ResNet-18; 5e-4 for the other ResNets).
    #[serde(default = "default_rho")]
    pub rho: f64,
    /// ρ_end; default ρ₀/10.
    #[serde(default)]
    pub rho_end: Option<f64>,
    /// Cosine decay of ρ from ρ₀ to ρ_end (default true; false when f is the full-data loss).
    #[serde(default = "yes")]
    pub rho_decay: bool,
    /// η_a, the clipping scale. Default 5.
    #[serde(default = "default_eta")]
    pub eta_a: f64,
    /// η_b, the automatic-LR scale. Default 5 (ResNets; 3 for ResNet-101, 50 for OPT-13B).
    #[serde(default = "default_eta")]
    pub eta_b: f64,
    /// Fraction w of the run's steps in the γ window, in (0, 1]. Default 0.1.
    #[serde(default = "default_window")]
    pub window: f64,
    /// σ of the signed γ (default) or of |γ|.
    #[serde(default)]
    pub sigma: SigmaOf,
    /// Automatic learning rate (default true); false is the "no auto-LR" ablation and needs `lr`.
    #[serde(default = "yes")]
    pub auto_lr: bool,
    /// α₀ of the "no auto-LR" ablation.
    #[serde(default)]
    pub lr: Option<f64>,
    /// Progressive γ-clipping (default true); false is the "no γ-clipping" ablation.
    #[serde(default = "yes")]
    pub gamma_clip: bool,
    /// τa's factor decays from 2η_a to η_a (default true).
    #[serde(default = "yes")]
    pub tau_decay: bool,
    /// Direction distribution (rademacher = AS2P_sign).
    #[serde(default)]
    pub dist: Distribution,
}

impl Default for As2pConfig {
    fn default() -> Self {
        As2pConfig {
            rho: default_rho(),
            rho_end: None,
            rho_decay: true,
            eta_a: default_eta(),
            eta_b: default_eta(),
            window: default_window(),
            sigma: SigmaOf::Signed,
            auto_lr: true,
            lr: None,
            gamma_clip: true,
            tau_decay: true,
            dist: Distribution::Normal,
        }
    }
}

impl As2pConfig {
    /// Validates: ρ > 0, 0 < ρ_end ≤ ρ, η_a > 0, η_b > 0, window ∈ (0, 1], lr > 0 when
    /// `auto_lr` is off.
    pub fn build(&self) -> Result<As2p> {
        positive("as2p.rho", self.rho)?;
        if let Some(e) = self.rho_end {
            positive("as2p.rho_end", e)?;
            if e > self.rho {
                return Err(Error::invalid(
                    "as2p.rho_end",
                    format!("must be ≤ rho = {}, got {e}", self.rho),
                ));
            }
        }
        positive("as2p.eta_a", self.eta_a)?;
        positive("as2p.eta_b", self.eta_b)?;
        if !(self.window > 0.0 && self.window <= 1.0) {
            return Err(Error::invalid(
                "as2p.window",
                format!("must be in (0, 1], got {}", self.window),
            ));
        }
        match (self.auto_lr, self.lr) {
            (false, None) => {
                return Err(Error::invalid(
                    "as2p.lr",
                    "is required when auto_lr = false",
                ))
            }
            (_, Some(lr)) => positive("as2p.lr", lr)?,
            (true, None) => {}
        }
        Ok(As2p {
            cfg: self.clone(),
            window: GammaWindow::new(1),
        })
    }
}

/// The AS2P optimizer. State: the γ window.
#[derive(Clone, Debug)]
pub struct As2p {
    cfg: As2pConfig,
    window: GammaWindow,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    window: GammaWindow,
}

impl As2p {
    /// ρ_k.
    pub fn rho_at(&self, step: u64, total: u64) -> f64 {
        let end = self.cfg.rho_end.unwrap_or(self.cfg.rho / 10.0);
        if self.cfg.rho_decay {
            Schedule::Cosine.decay(self.cfg.rho, end, step, total)
        } else {
            self.cfg.rho
        }
    }

    /// The γ window (for inspection).
    pub fn window(&self) -> &GammaWindow {
        &self.window
    }
}

impl Optimizer for As2p {
    fn method(&self) -> &'static str {
        "as2p"
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
        let (k, key, total) = (ctx.step, ctx.key(), ctx.total_steps);
        let c = &self.cfg;
        let rho = self.rho_at(k, total) as f32;
        let rho_k = f64::from(rho);
        let mut queries = 0;
        sweeper.probe(params, k, key, rho)?;
        let f_plus = query(loss, k, &mut queries)?;
        sweeper.probe(params, k, key, -rho)?;
        let f_minus = query(loss, k, &mut queries)?;
        let gamma = (f_plus - f_minus) / (2.0 * rho_k);
        let beta = if f_plus > f_minus {
            1.0
        } else if f_plus < f_minus {
            -1.0
        } else {
            0.0
        };
        self.window
            .set_capacity(GammaWindow::capacity_for(c.window, total));
        self.window.push(gamma)?;
        let sigma = if self.window.len() < 2 {
            gamma.abs()
        } else {
            self.window.std(c.sigma).unwrap_or(0.0)
        };
        let (mut alpha, mut skipped) = (0.0, None);
        if sigma == 0.0 || gamma == 0.0 {
            skipped = Some(format!("no step: sigma = {sigma}, gamma = {gamma}"));
        } else {
            let eta_a_k = if c.tau_decay {
                Schedule::Cosine.decay(2.0 * c.eta_a, c.eta_a, k, total)
            } else {
                c.eta_a
            };
            let gp = if c.gamma_clip {
                soft_clip(gamma.abs(), eta_a_k * sigma)
            } else {
                gamma.abs()
            };
            alpha = if c.auto_lr {
                rho_k * ctx.lr_factor * gp / (c.eta_b * sigma)
            } else {
                c.lr.unwrap_or(0.0) * ctx.lr_factor * gp
            };
        }
        let coef = (-beta * alpha) as f32;
        let next_rho = self.rho_at(k + 1, total) as f32;
        sweeper.commit(
            params,
            k,
            &[Op::Add(Term::new(key, coef))],
            Some(Term::new(ctx.next_key(), next_rho)),
        )?;
        let mut r = record(ctx, queries, f_plus.min(f_minus));
        r.f_plus = Some(f_plus);
        r.f_minus = Some(f_minus);
        r.gamma = Some(gamma);
        r.sigma = Some(sigma);
        r.coef = f64::from(coef);
        r.lr = alpha;
        r.rho = Some(rho_k);
        r.skipped = skipped;
        Ok(r)
    }

    fn state(&self) -> serde_json::Value {
        serde_json::to_value(State {
            window: self.window.clone(),
        })
        .unwrap_or(serde_json::Value::Null)
    }

    fn load_state(&mut self, state: &serde_json::Value) -> Result<()> {
        let s: State = serde_json::from_value(state.clone())
            .map_err(|e| Error::invalid("as2p.state", e.to_string()))?;
        self.window = s.window;
        Ok(())
    }
}
